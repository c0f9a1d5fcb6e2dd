//! One table with every public differentiable op, each checked on several
//! shapes (broadcasting, 0-d, transposed and narrowed inputs), in f64:
//!
//! - first derivatives against finite differences (`gradcheck`);
//! - second derivatives against finite differences of the gradient
//!   (`gradgradcheck`, seeded with a random upstream that requires a gradient);
//! - the fused first-order rule against the recorded (`create_graph`) rule: the
//!   same first derivative from both.
//!
//! Another test reads the op table in `src/ops/mod.rs`, so an op listed there
//! without an entry here fails the suite, and so does a row whose "order" column
//! is not ∞.

use std::collections::BTreeSet;

use ferrograd::gradcheck::{gradcheck, gradgradcheck};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{grad, GradOptions, Tensor};

type F = Box<dyn Fn(&[Tensor<f64>]) -> Tensor<f64>>;

struct Case {
    op: &'static str,
    f: F,
    inputs: Vec<Tensor<f64>>,
}

/// Seeded values in [-1, 1) shifted away from 0 (kinks and poles).
fn leaf(shape: &[usize], seed: u64) -> Tensor<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let v: Vec<f64> = Tensor::<f64>::rand_uniform(shape, -1.0, 1.0, &mut rng)
        .to_vec()
        .into_iter()
        .map(|v| if v >= 0.0 { v + 0.2 } else { v - 0.2 })
        .collect();
    Tensor::from_vec(v, shape).unwrap().requires_grad()
}

/// Seeded positive values in [0.3, 1.5).
fn pos(shape: &[usize], seed: u64) -> Tensor<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Tensor::<f64>::rand_uniform(shape, 0.3, 1.5, &mut rng).requires_grad()
}

/// A strided (transposed) leaf of shape `[a, b]`.
fn strided(a: usize, b: usize, seed: u64) -> Tensor<f64> {
    leaf(&[b, a], seed).detach().t().requires_grad()
}

fn case(
    op: &'static str,
    f: impl Fn(&[Tensor<f64>]) -> Tensor<f64> + 'static,
    inputs: Vec<Tensor<f64>>,
) -> Case {
    Case {
        op,
        f: Box::new(f),
        inputs,
    }
}

fn table() -> Vec<Case> {
    let mut c = Vec::new();
    // binary, with broadcasting, 0-d and strided operands
    type Bin = fn(&Tensor<f64>, &Tensor<f64>) -> Tensor<f64>;
    let binaries: &[(&str, Bin, bool)] = &[
        ("add", |a, b| a.add(b), false),
        ("sub", |a, b| a.sub(b), false),
        ("mul", |a, b| a.mul(b), false),
        ("div", |a, b| a.div(b), false),
        ("pow", |a, b| a.pow(b), true),
        ("maximum", |a, b| a.maximum(b), false),
        ("minimum", |a, b| a.minimum(b), false),
    ];
    for (i, &(op, f, positive_base)) in binaries.iter().enumerate() {
        let s = 100 * i as u64;
        let base = |shape: &[usize], seed| {
            if positive_base {
                pos(shape, seed)
            } else {
                leaf(shape, seed)
            }
        };
        c.push(case(
            op,
            move |x| f(&x[0], &x[1]),
            vec![base(&[2, 3], s), leaf(&[2, 3], s + 1)],
        ));
        c.push(case(
            op,
            move |x| f(&x[0], &x[1]),
            vec![base(&[2, 3], s + 2), leaf(&[3], s + 3)],
        ));
        c.push(case(
            op,
            move |x| f(&x[0], &x[1]),
            vec![base(&[2, 1], s + 4), leaf(&[1, 3], s + 5)],
        ));
        c.push(case(
            op,
            move |x| f(&x[0], &x[1]),
            vec![base(&[], s + 6), leaf(&[], s + 7)],
        ));
        c.push(case(
            op,
            move |x| f(&x[0], &x[1]),
            vec![base(&[], s + 8), leaf(&[2, 2], s + 9)],
        ));
        let st = if positive_base {
            pos(&[2, 3], s + 10).detach().t().requires_grad()
        } else {
            strided(3, 2, s + 10)
        };
        c.push(case(
            op,
            move |x| f(&x[0].t(), &x[1].narrow(1, 1, 3)),
            vec![st, leaf(&[2, 4], s + 11)],
        ));
    }
    // scalar operand
    type Sc = fn(&Tensor<f64>) -> Tensor<f64>;
    let scalars: &[(&str, Sc)] = &[
        ("add_scalar", |a| a.add_scalar(0.7)),
        ("sub_scalar", |a| a.sub_scalar(0.7)),
        ("rsub_scalar", |a| a.rsub_scalar(0.7)),
        ("mul_scalar", |a| a.mul_scalar(-1.3)),
        ("div_scalar", |a| a.div_scalar(-1.3)),
        ("rdiv_scalar", |a| a.rdiv_scalar(0.9)),
    ];
    // unary
    let unaries: &[(&str, Sc, bool)] = &[
        ("neg", |a| a.neg(), false),
        ("exp", |a| a.exp(), false),
        ("log", |a| a.log(), true),
        ("sqrt", |a| a.sqrt(), true),
        ("abs", |a| a.abs(), false),
        ("square", |a| a.square(), false),
        ("recip", |a| a.recip(), false),
        ("sin", |a| a.sin(), false),
        ("cos", |a| a.cos(), false),
        ("tanh", |a| a.tanh(), false),
        ("sigmoid", |a| a.sigmoid(), false),
        ("relu", |a| a.relu(), false),
        ("leaky_relu", |a| a.leaky_relu(0.05), false),
        ("gelu", |a| a.gelu(), false),
        ("gelu_erf", |a| a.gelu_erf(), false),
        ("silu", |a| a.silu(), false),
        ("softplus", |a| a.softplus(), false),
        ("clamp", |a| a.clamp(-0.6, 0.6), false),
        ("powf", |a| a.powf(2.5), true),
        ("powi", |a| a.powi(-3), false),
        ("erf", |a| a.erf(), false),
    ];
    let all_unary = scalars
        .iter()
        .map(|&(op, f)| (op, f, false))
        .chain(unaries.iter().copied());
    for (i, (op, f, positive)) in all_unary.enumerate() {
        let s = 1000 + 10 * i as u64;
        let mk = |shape: &[usize], seed| {
            if positive {
                pos(shape, seed)
            } else {
                leaf(shape, seed)
            }
        };
        c.push(case(op, move |x| f(&x[0]), vec![mk(&[], s)]));
        c.push(case(op, move |x| f(&x[0]), vec![mk(&[2, 3], s + 1)]));
        c.push(case(op, move |x| f(&x[0].t()), vec![mk(&[3, 2], s + 2)]));
        c.push(case(
            op,
            move |x| f(&x[0].narrow(0, 1, 2)),
            vec![mk(&[4, 2], s + 3)],
        ));
    }
    // reductions
    c.push(case("sum", |x| x[0].sum(), vec![leaf(&[2, 3], 2000)]));
    c.push(case(
        "sum",
        |x| x[0].t().sum(),
        vec![leaf(&[], 2001)
            .detach()
            .unsqueeze(0)
            .unsqueeze(0)
            .requires_grad()],
    ));
    c.push(case("mean", |x| x[0].mean(), vec![leaf(&[2, 3], 2002)]));
    c.push(case("mean", |x| x[0].t().mean(), vec![strided(3, 2, 2003)]));
    type Ax = fn(&Tensor<f64>, isize, bool) -> Tensor<f64>;
    let axis_ops: &[(&str, Ax)] = &[
        ("sum_axis", |a, ax, k| a.sum_axis(ax, k)),
        ("mean_axis", |a, ax, k| a.mean_axis(ax, k)),
        ("max_axis", |a, ax, k| a.max_axis(ax, k)),
        ("min_axis", |a, ax, k| a.min_axis(ax, k)),
        ("logsumexp", |a, ax, k| a.logsumexp(ax, k)),
        ("var_axis", |a, ax, k| a.var_axis(ax, k)),
    ];
    for (i, &(op, f)) in axis_ops.iter().enumerate() {
        let s = 2100 + 10 * i as u64;
        c.push(case(op, move |x| f(&x[0], 0, false), vec![leaf(&[3], s)]));
        c.push(case(
            op,
            move |x| f(&x[0], -1, true),
            vec![leaf(&[2, 3, 4], s + 1)],
        ));
        c.push(case(
            op,
            move |x| f(&x[0], 1, false),
            vec![leaf(&[2, 3, 4], s + 2)],
        ));
        c.push(case(
            op,
            move |x| f(&x[0].t(), 0, false),
            vec![strided(4, 3, s + 3)],
        ));
    }
    // softmax family: weighted so the sum-to-one constraint cannot hide errors
    for (op, f) in [
        (
            "softmax",
            Tensor::<f64>::softmax as fn(&Tensor<f64>, isize) -> Tensor<f64>,
        ),
        ("log_softmax", Tensor::<f64>::log_softmax),
    ] {
        let w = leaf(&[2, 3, 4], 2200).detach();
        let w2 = w.clone();
        c.push(case(
            op,
            move |x| f(&x[0], -1).mul(&w),
            vec![leaf(&[2, 3, 4], 2201)],
        ));
        c.push(case(
            op,
            move |x| f(&x[0], 1).mul(&w2),
            vec![leaf(&[2, 3, 4], 2202)],
        ));
        c.push(case(
            op,
            move |x| f(&x[0].t(), 0),
            vec![strided(3, 2, 2203)],
        ));
        c.push(case(op, move |x| f(&x[0], 0), vec![leaf(&[1], 2204)]));
    }
    // matmul in every NumPy form
    let mm: &[(&[usize], &[usize])] = &[
        (&[3], &[3]),
        (&[2, 3], &[3, 4]),
        (&[2, 3], &[3]),
        (&[3], &[3, 2]),
        (&[2, 2, 3], &[3, 2]),
        (&[2, 1, 2, 3], &[3, 3, 2]),
        (&[1, 2, 3], &[2, 3, 1]),
    ];
    for (i, &(a, b)) in mm.iter().enumerate() {
        c.push(case(
            "matmul",
            |x| x[0].matmul(&x[1]),
            vec![leaf(a, 2300 + i as u64), leaf(b, 2400 + i as u64)],
        ));
    }
    c.push(case(
        "matmul",
        |x| x[0].t().matmul(&x[1].narrow(1, 1, 2)),
        vec![leaf(&[3, 2], 2410), leaf(&[3, 4], 2411)],
    ));
    // movement (weighted by a fixed tensor so every element's gradient differs)
    let w24 = leaf(&[24], 2500).detach();
    let weigh = move |t: Tensor<f64>| t.reshape(&[24]).mul(&w24);
    let wv = weigh.clone();
    c.push(case(
        "reshape",
        move |x| wv(x[0].reshape(&[4, 6])),
        vec![leaf(&[2, 3, 4], 2501)],
    ));
    let wv = weigh.clone();
    c.push(case(
        "reshape",
        move |x| wv(x[0].transpose(0, 2).reshape(&[6, 4])),
        vec![leaf(&[2, 3, 4], 2502)],
    ));
    // a narrowed row split into heads: a strided view, no copy (attention's
    // pattern), then permuted and multiplied as attention does
    let wv = weigh.clone();
    c.push(case(
        "reshape",
        move |x| wv(x[0].narrow(2, 4, 4).reshape(&[2, 3, 2, 2]).transpose(1, 2)),
        vec![leaf(&[2, 3, 12], 2505)],
    ));
    c.push(case(
        "reshape",
        |x| {
            let h = x[0].narrow(2, 4, 4).reshape(&[2, 3, 2, 2]).transpose(1, 2);
            h.matmul(&h.transpose(-2, -1)).square()
        },
        vec![leaf(&[2, 3, 12], 2506)],
    ));
    let wv = weigh.clone();
    c.push(case(
        "flatten",
        move |x| wv(x[0].t().flatten()),
        vec![leaf(&[4, 6], 2503)],
    ));
    c.push(case(
        "squeeze",
        |x| x[0].squeeze(1).square(),
        vec![leaf(&[3, 1, 2], 2504)],
    ));
    c.push(case(
        "unsqueeze",
        |x| x[0].unsqueeze(-1).square(),
        vec![leaf(&[3, 2], 2505)],
    ));
    c.push(case(
        "unsqueeze",
        |x| x[0].unsqueeze(0).mul_scalar(3.0),
        vec![leaf(&[], 2506)],
    ));
    let wv = weigh.clone();
    c.push(case(
        "transpose",
        move |x| wv(x[0].transpose(0, -1)),
        vec![leaf(&[2, 3, 4], 2507)],
    ));
    let wv = weigh.clone();
    c.push(case("t", move |x| wv(x[0].t()), vec![leaf(&[4, 6], 2508)]));
    let wv = weigh.clone();
    c.push(case(
        "permute",
        move |x| wv(x[0].permute(&[1, 2, 0])),
        vec![leaf(&[2, 3, 4], 2509)],
    ));
    let wv = weigh.clone();
    c.push(case(
        "broadcast_to",
        move |x| wv(x[0].broadcast_to(&[2, 3, 4])),
        vec![leaf(&[3, 1], 2510)],
    ));
    c.push(case(
        "broadcast_to",
        |x| x[0].broadcast_to(&[3]).square(),
        vec![leaf(&[], 2511)],
    ));
    c.push(case(
        "narrow",
        |x| x[0].narrow(1, 1, 2).square(),
        vec![leaf(&[3, 4], 2512)],
    ));
    c.push(case(
        "narrow",
        |x| x[0].t().narrow(0, 2, 2).square(),
        vec![leaf(&[3, 4], 2513)],
    ));
    let wv = weigh;
    c.push(case(
        "contiguous",
        move |x| wv(x[0].permute(&[2, 0, 1]).contiguous()),
        vec![leaf(&[2, 3, 4], 2514)],
    ));
    // linear (x·Wᵀ + b as one op): 2-D, batched 3-D, a 1-D input, no bias, and
    // strided inputs (a transposed x, whose rows no single stride walks, and a
    // transposed W)
    use ferrograd::nn::functional::linear;
    c.push(case(
        "linear",
        |x| linear(&x[0], &x[1], Some(&x[2])),
        vec![leaf(&[2, 3], 2600), leaf(&[4, 3], 2601), leaf(&[4], 2602)],
    ));
    c.push(case(
        "linear",
        |x| linear(&x[0], &x[1], Some(&x[2])),
        vec![
            leaf(&[2, 2, 3], 2603),
            leaf(&[2, 3], 2604),
            leaf(&[2], 2605),
        ],
    ));
    c.push(case(
        "linear",
        |x| linear(&x[0], &x[1], None),
        vec![leaf(&[3], 2606), leaf(&[2, 3], 2607)],
    ));
    c.push(case(
        "linear",
        |x| linear(&x[0].transpose(0, 1), &x[1].t(), Some(&x[2])),
        vec![
            leaf(&[2, 4, 3], 2620),
            leaf(&[3, 2], 2621),
            leaf(&[2], 2622),
        ],
    ));
    // layer norm over the last axis, with and without weight and bias
    let wl = leaf(&[2, 3, 4], 2700).detach();
    let wl2 = wl.clone();
    c.push(case(
        "layer_norm",
        move |x| {
            ferrograd::nn::functional::layer_norm(&x[0], Some(&x[1]), Some(&x[2]), 1e-5).mul(&wl)
        },
        vec![leaf(&[2, 3, 4], 2701), leaf(&[4], 2702), leaf(&[4], 2703)],
    ));
    c.push(case(
        "layer_norm",
        move |x| {
            ferrograd::nn::functional::layer_norm(&x[0].transpose(1, 2), None, None, 1e-5).mul(&wl2)
        },
        vec![leaf(&[2, 4, 3], 2704)],
    ));
    // attention: Tq ≠ Tk and Dv ≠ D, with a mask (nonzero = masked out), causal,
    // both, a fully masked query row, dropout from a seeded stream, and shared,
    // strided inputs
    {
        use ferrograd::nn::functional::{
            scaled_dot_product_attention as sdpa, scaled_dot_product_attention_with_rng as sdpa_rng,
        };
        let w = leaf(&[2, 3, 2], 2720).detach();
        let pad =
            Tensor::<f64>::from_vec(vec![0., 0., 1., 0., 1., 1., 0., 0.], &[2, 1, 4]).unwrap();
        let full_row = Tensor::<f64>::from_vec(
            vec![0., 1., 0., 0., 1., 1., 1., 1., 0., 0., 1., 0.],
            &[3, 4],
        )
        .unwrap();
        let qkv = || {
            vec![
                leaf(&[2, 3, 5], 2721),
                leaf(&[2, 4, 5], 2722),
                leaf(&[2, 4, 2], 2723),
            ]
        };
        let w1 = w.clone();
        c.push(case(
            "scaled_dot_product_attention",
            move |x| sdpa(&x[0], &x[1], &x[2], None, false, 0.0, None).mul(&w1),
            qkv(),
        ));
        let w1 = w.clone();
        c.push(case(
            "scaled_dot_product_attention",
            move |x| sdpa(&x[0], &x[1], &x[2], Some(&pad), false, 0.0, None).mul(&w1),
            qkv(),
        ));
        let w1 = w.clone();
        c.push(case(
            "scaled_dot_product_attention",
            move |x| sdpa(&x[0], &x[1], &x[2], None, true, 0.0, Some(0.8)).mul(&w1),
            qkv(),
        ));
        let w1 = w.clone();
        c.push(case(
            "scaled_dot_product_attention",
            move |x| sdpa(&x[0], &x[1], &x[2], Some(&full_row), true, 0.0, None).mul(&w1),
            qkv(),
        ));
        c.push(case(
            "scaled_dot_product_attention",
            move |x| {
                let mut rng = StdRng::seed_from_u64(2724);
                sdpa_rng(&x[0], &x[1], &x[2], None, true, 0.3, None, &mut rng).mul(&w)
            },
            qkv(),
        ));
        c.push(case(
            "scaled_dot_product_attention",
            |x| {
                let h = x[0].reshape(&[3, 2, 2]).transpose(0, 1);
                sdpa(&h, &h, &x[0].t().reshape(&[2, 3, 2]), None, true, 0.0, None).square()
            },
            vec![strided(3, 4, 2725)],
        ));
    }
    // losses with a primitive of their own
    let y = pos(&[2, 3], 2800).detach().mul_scalar(0.6);
    c.push(case(
        "bce",
        move |x| ferrograd::loss::per_sample::bce(&x[0], &y).unwrap(),
        vec![pos(&[2, 3], 2801).detach().mul_scalar(0.6).requires_grad()],
    ));
    c.push(case(
        "bce",
        |x| ferrograd::loss::per_sample::bce(&x[0].t(), &x[1]).unwrap(),
        vec![
            pos(&[3, 2], 2802).detach().mul_scalar(0.6).requires_grad(),
            pos(&[2, 3], 2803).detach().mul_scalar(0.6).requires_grad(),
        ],
    ));
    // index ops
    c.push(case(
        "index_select",
        |x| x[0].index_select(0, &[2, 0, 2, 1]).square(),
        vec![leaf(&[3, 2], 2600)],
    ));
    c.push(case(
        "index_select",
        |x| x[0].t().index_select(-1, &[1, 1]).square(),
        vec![leaf(&[3, 2], 2601)],
    ));
    let mask = Tensor::<f64>::from_vec(vec![1., 0., 0., 1.], &[4]).unwrap();
    let mask2 = mask.reshape(&[4, 1]);
    c.push(case(
        "masked_fill",
        move |x| x[0].masked_fill(&mask, -2.0).square(),
        vec![leaf(&[3, 4], 2602)],
    ));
    c.push(case(
        "masked_fill",
        move |x| x[0].t().masked_fill(&mask2, 0.5).square(),
        vec![leaf(&[3, 4], 2603)],
    ));
    c.push(case(
        "cat",
        |x| Tensor::cat(&[&x[0], &x[1]], 1).square(),
        vec![leaf(&[2, 3], 2604), leaf(&[2, 1], 2605)],
    ));
    c.push(case(
        "cat",
        |x| Tensor::cat(&[&x[0].t(), &x[0]], 0).square(),
        vec![leaf(&[2, 2], 2606)],
    ));
    c.push(case(
        "stack",
        |x| Tensor::stack(&[&x[0], &x[1]], -1).square(),
        vec![leaf(&[2, 3], 2607), leaf(&[2, 3], 2608)],
    ));
    c.push(case(
        "stack",
        |x| Tensor::stack(&[&x[0], &x[0]], 0).mul_scalar(2.0),
        vec![leaf(&[], 2609)],
    ));
    // selection by a mask: differentiable in both branches, broadcast together
    let m23 = Tensor::<f64>::from_vec(vec![1., 0., 0., 1., 1., 0.], &[2, 3]).unwrap();
    let m3 = Tensor::<f64>::from_vec(vec![0., 1., 1.], &[3]).unwrap();
    let m21 = Tensor::<f64>::from_vec(vec![1., 0.], &[2, 1]).unwrap();
    c.push(case(
        "where_cond",
        move |x| Tensor::where_cond(&m23, &x[0], &x[1]),
        vec![leaf(&[2, 3], 2900), leaf(&[2, 3], 2901)],
    ));
    c.push(case(
        "where_cond",
        move |x| Tensor::where_cond(&m3, &x[0].square(), &x[1]),
        vec![leaf(&[2, 3], 2902), leaf(&[], 2903)],
    ));
    c.push(case(
        "where_cond",
        move |x| Tensor::where_cond(&m21, &x[0], &x[1]).mul(&x[0]),
        vec![leaf(&[1, 3], 2904), strided(2, 3, 2905)],
    ));
    // triangles of the last two axes
    c.push(case(
        "tril",
        |x| x[0].tril(0).square(),
        vec![leaf(&[3, 4], 2910)],
    ));
    c.push(case(
        "tril",
        |x| x[0].transpose(1, 2).tril(-1).square(),
        vec![leaf(&[2, 4, 3], 2911)],
    ));
    c.push(case(
        "triu",
        |x| x[0].triu(1).square(),
        vec![leaf(&[2, 3, 3], 2912)],
    ));
    c.push(case(
        "triu",
        |x| x[0].t().triu(-1).mul(&x[0].t()),
        vec![leaf(&[4, 3], 2913)],
    ));
    // splitting into views
    c.push(case(
        "chunk",
        |x| {
            let parts = x[0].chunk(3, 1);
            parts[0].mul(&parts[2].square())
        },
        vec![leaf(&[2, 5], 2920)],
    ));
    c.push(case(
        "chunk",
        |x| x[0].t().chunk(2, 0)[1].exp(),
        vec![leaf(&[2, 3], 2921)],
    ));
    c.push(case(
        "split",
        |x| {
            let parts = x[0].split(&[1, 0, 2], 0);
            parts[2].square().add(&parts[0])
        },
        vec![leaf(&[3, 2], 2922)],
    ));
    c.push(case(
        "split",
        |x| x[0].t().split(&[2, 1], -1)[0].square(),
        vec![leaf(&[3, 2], 2923)],
    ));
    c.push(case(
        "select",
        |x| x[0].select(1, 2).square(),
        vec![leaf(&[2, 3, 2], 2924)],
    ));
    c.push(case(
        "select",
        |x| x[0].t().select(-1, 0).mul(&x[0].select(1, 1)),
        vec![leaf(&[3, 3], 2925)],
    ));
    // summing an iterator of tensors: a broadcasting chain of add
    c.push(case(
        "Iterator::sum",
        |x| [x[0].square(), x[1].clone(), x[0].mul(&x[1])].iter().sum(),
        vec![leaf(&[2, 3], 2930), leaf(&[3], 2931)],
    ));
    c.push(case(
        "Iterator::sum",
        |x| x[0].chunk(2, 0).into_iter().sum(),
        vec![strided(4, 3, 2932)],
    ));
    c
}

/// Runs `check` on every case; fails listing every case that failed.
fn for_each_case(what: &str, check: impl Fn(&Case) -> Result<(), String>) {
    let mut failures = Vec::new();
    let mut count = 0;
    for case in table() {
        count += 1;
        if let Err(e) = check(&case) {
            let shapes: Vec<_> = case.inputs.iter().map(|t| t.shape().to_vec()).collect();
            failures.push(format!("{} {shapes:?}: {e}", case.op));
        }
    }
    assert!(
        failures.is_empty(),
        "{what}: {} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_differentiable_op_passes_gradcheck() {
    for_each_case("gradcheck", |c| {
        gradcheck(&c.f, &c.inputs)
            .map(drop)
            .map_err(|e| e.to_string())
    });
}

#[test]
fn every_differentiable_op_passes_gradgradcheck() {
    for_each_case("gradgradcheck", |c| {
        gradgradcheck(&c.f, &c.inputs)
            .map(drop)
            .map_err(|e| e.to_string())
    });
}

#[test]
fn fused_and_recorded_rules_give_the_same_first_derivative() {
    for_each_case("fused vs recorded", |c| {
        let y = (c.f)(&c.inputs);
        let mut rng = StdRng::seed_from_u64(7);
        let u = Tensor::<f64>::randn(y.shape(), &mut rng);
        let fused = y.backward_with(&u).map_err(|e| e.to_string())?;
        let inputs: Vec<&Tensor<f64>> = c.inputs.iter().collect();
        let options = GradOptions {
            create_graph: true,
            upstream: Some(u),
            ..Default::default()
        };
        let recorded = grad(&y, &inputs, options).map_err(|e| e.to_string())?;
        for (i, (x, r)) in c.inputs.iter().zip(&recorded).enumerate() {
            let f = fused.get(x).unwrap().to_vec();
            for (k, (a, b)) in f.iter().zip(r.to_vec()).enumerate() {
                if (a - b).abs() > 1e-12 * (1.0 + a.abs()) {
                    return Err(format!("input {i}, element {k}: fused {a}, recorded {b}"));
                }
            }
        }
        Ok(())
    });
}

/// The rows of the table in `src/ops/mod.rs`: the op names of the first cell and
/// the "order" cell, minus the non-differentiable rows.
fn documented_rows() -> Vec<(Vec<String>, String)> {
    let src =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/ops/mod.rs")).unwrap();
    let header = src
        .lines()
        .find(|l| l.starts_with("//! | op |"))
        .expect("the op table's header");
    let order_col = header
        .split('|')
        .position(|c| c.trim() == "order")
        .expect("an order column");
    let mut rows = Vec::new();
    for line in src.lines().filter(|l| l.starts_with("//! | `")) {
        if line.contains("not differentiable") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').collect();
        let ops = cells[1]
            .split('`')
            .skip(1)
            .step_by(2)
            .flat_map(|chunk| chunk.split_whitespace().map(str::to_string))
            .collect();
        rows.push((ops, cells[order_col].trim().to_string()));
    }
    rows
}

#[test]
fn the_table_covers_every_op_in_the_op_table_at_every_order() {
    let rows = documented_rows();
    let documented: BTreeSet<String> = rows.iter().flat_map(|(ops, _)| ops.clone()).collect();
    assert!(documented.len() > 50, "parsed {documented:?}");
    for (ops, order) in &rows {
        assert_eq!(order, "∞", "the op table gives {ops:?} order {order}");
    }
    let tested: BTreeSet<String> = table().iter().map(|c| c.op.to_string()).collect();
    let missing: Vec<_> = documented.difference(&tested).collect();
    assert!(
        missing.is_empty(),
        "ops without a gradcheck and gradgradcheck entry: {missing:?}"
    );
    let unknown: Vec<_> = tested.difference(&documented).collect();
    assert!(
        unknown.is_empty(),
        "entries for ops missing from the op table: {unknown:?}"
    );
}
