//! Derivatives of derivatives through the public API, against closed forms and
//! finite differences: `grad` with `create_graph`, the `functional` transforms,
//! and the errors a user meets.

use ferrograd::functional::{hessian, hvp, jacobian, jvp, vjp};
use ferrograd::nn::{Activation, Mlp, Module};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{grad, loss, Error, GradOptions, Tensor};

fn t(v: &[f64], s: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), s).unwrap()
}

fn recorded() -> GradOptions<f64> {
    GradOptions {
        create_graph: true,
        ..Default::default()
    }
}

/// d/dx of a scalar function of a scalar, recorded.
fn d(y: &Tensor<f64>, x: &Tensor<f64>) -> Tensor<f64> {
    grad(y, &[x], recorded()).unwrap().remove(0)
}

#[track_caller]
fn close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, want {w}\n got {got:?}\nwant {want:?}"
        );
    }
}

#[test]
fn second_derivatives_in_closed_form() {
    for &v in &[-1.3, -0.2, 0.7, 2.1] {
        let x = t(&[v], &[]).requires_grad();
        let d2 = |y: Tensor<f64>| d(&d(&y, &x), &x).item();
        close(&[d2(x.powi(3))], &[6.0 * v], 1e-14);
        close(&[d2(x.sin())], &[-v.sin()], 1e-14);
        let (th, sech2) = (v.tanh(), 1.0 - v.tanh().powi(2));
        close(&[d2(x.tanh())], &[-2.0 * th * sech2], 1e-14);
        if v > 0.0 {
            // (eˣ·log x)'' = eˣ·(log x + 2/x − 1/x²)
            let want = v.exp() * (v.ln() + 2.0 / v - 1.0 / (v * v));
            close(&[d2(x.exp().mul(&x.log()))], &[want], 1e-13);
        }
    }
}

#[test]
fn third_derivative_of_a_polynomial() {
    // p = 2x⁴ − 3x³ + x: p''' = 48x − 18, p'''' = 48, p''''' = 0
    let x = t(&[0.75], &[]).requires_grad();
    let p = x.powi(4).mul_scalar(2.0) - x.powi(3).mul_scalar(3.0) + &x;
    let p3 = d(&d(&d(&p, &x), &x), &x);
    assert_eq!(p3.item(), 48.0 * 0.75 - 18.0);
    let p4 = d(&p3, &x);
    assert_eq!(p4.item(), 48.0);
    let p5 = grad(
        &p4,
        &[&x],
        GradOptions {
            allow_unused: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(p5[0].item(), 0.0);
}

fn rosenbrock(p: &Tensor<f64>) -> Tensor<f64> {
    let (x, y) = (p.narrow(0, 0, 1), p.narrow(0, 1, 1));
    ((1.0 - &x).square() + (y - x.square()).square() * 100.0).sum()
}

#[test]
fn hessian_of_rosenbrock() {
    let h = hessian(rosenbrock, &t(&[1.0, 1.0], &[2])).unwrap();
    assert_eq!(h.shape(), &[2, 2]);
    close(&h.to_vec(), &[802.0, -400.0, -400.0, 200.0], 1e-14);
    // H = [[2 − 400(y − x²) + 800x², −400x], [−400x, 200]] at (−1.2, 1)
    let h = hessian(rosenbrock, &t(&[-1.2, 1.0], &[2])).unwrap();
    close(&h.to_vec(), &[1330.0, 480.0, 480.0, 200.0], 1e-13);
}

#[test]
fn hessian_of_logsumexp_is_diag_p_minus_p_pt() {
    let v = [0.3, -1.1, 2.0, 0.5];
    let h = hessian(|x| x.logsumexp(0, false), &t(&v, &[4])).unwrap();
    let z: f64 = v.iter().map(|a| a.exp()).sum();
    let p: Vec<f64> = v.iter().map(|a| a.exp() / z).collect();
    let mut want = vec![0.0; 16];
    for i in 0..4 {
        for j in 0..4 {
            want[i * 4 + j] = if i == j { p[i] } else { 0.0 } - p[i] * p[j];
        }
    }
    close(&h.to_vec(), &want, 1e-14);
}

#[test]
fn mixed_partials_are_symmetric() {
    // f(x, y) = sin(x·y) + x²·y³
    let x = t(&[0.4], &[]).requires_grad();
    let y = t(&[-0.9], &[]).requires_grad();
    let f = x.mul(&y).sin() + x.square().mul(&y.powi(3));
    let g = grad(&f, &[&x, &y], recorded()).unwrap();
    let fxy = grad(&g[0], &[&y], recorded()).unwrap()[0].item();
    let fyx = grad(&g[1], &[&x], recorded()).unwrap()[0].item();
    let (a, b) = (0.4f64, -0.9f64);
    let want = (a * b).cos() - a * b * (a * b).sin() + 6.0 * a * b * b;
    close(&[fxy, fyx], &[want, want], 1e-14);
}

/// A small MLP's mean squared error on fixed data, and its pieces.
fn mlp_setup() -> (Mlp<f64>, Tensor<f64>, Tensor<f64>) {
    let mut rng = StdRng::seed_from_u64(11);
    let mlp = Mlp::<f64>::new(&[3, 5, 2], Activation::Tanh, &mut rng);
    let x = Tensor::<f64>::randn(&[4, 3], &mut rng);
    let y = Tensor::<f64>::randn(&[4, 2], &mut rng);
    (mlp, x, y)
}

#[test]
fn hvp_equals_hessian_times_v_for_an_mlp_loss_in_its_input() {
    let (mlp, x, y) = mlp_setup();
    let f = |x: &Tensor<f64>| loss::mse(&mlp.forward(x), &y).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let v = Tensor::<f64>::randn(&[4, 3], &mut rng);
    let (fx, hv) = hvp(f, &x, &v).unwrap();
    assert_eq!(fx.to_vec(), f(&x).to_vec());
    let h = hessian(f, &x).unwrap().reshape(&[12, 12]);
    let hv_full = h.matmul(&v.reshape(&[12])).reshape(&[4, 3]);
    close(&hv.to_vec(), &hv_full.to_vec(), 1e-12);
}

#[test]
fn hvp_equals_hessian_times_v_for_an_mlp_loss_in_its_weights() {
    let (mlp, x, y) = mlp_setup();
    let params = mlp.parameters();
    let sizes: Vec<usize> = params.iter().map(|p| p.numel()).collect();
    let flat = Tensor::cat(
        &params
            .iter()
            .map(|p| p.reshape(&[p.numel()]))
            .collect::<Vec<_>>()
            .iter()
            .collect::<Vec<_>>(),
        0,
    )
    .detach();
    let n = flat.numel();
    // the same loss as a function of one flat parameter vector
    let loss_of = |theta: &Tensor<f64>| {
        let mut h = x.clone();
        let mut start = 0;
        let mut pieces = Vec::new();
        for (p, &k) in params.iter().zip(&sizes) {
            pieces.push(theta.narrow(0, start, k).reshape(p.shape()));
            start += k;
        }
        for (i, pair) in pieces.chunks(2).enumerate() {
            h = h.matmul(&pair[0].t()) + &pair[1];
            if i == 0 {
                h = h.tanh();
            }
        }
        loss::mse(&h, &y).unwrap()
    };
    // the flat form is the same function as the module
    close(
        &loss_of(&flat).to_vec(),
        &loss::mse(&mlp.forward(&x), &y).unwrap().to_vec(),
        1e-14,
    );
    let mut rng = StdRng::seed_from_u64(5);
    let v = Tensor::<f64>::randn(&[n], &mut rng);
    let h = hessian(loss_of, &flat).unwrap();
    let want = h.matmul(&v).to_vec();
    // hvp with grad twice, on the module's own weight tensors
    let l = loss::mse(&mlp.forward(&x), &y).unwrap();
    let refs: Vec<&Tensor<f64>> = params.iter().collect();
    let g = grad(&l, &refs, recorded()).unwrap();
    let mut start = 0;
    let mut gv = Vec::new();
    for (gi, &k) in g.iter().zip(&sizes) {
        gv.push(gi.reshape(&[k]).mul(&v.narrow(0, start, k)).sum());
        start += k;
    }
    let dot = gv.into_iter().reduce(|a, b| a + b).unwrap();
    let hv = grad(&dot, &refs, GradOptions::default()).unwrap();
    let got: Vec<f64> = hv.iter().flat_map(|t| t.to_vec()).collect();
    close(&got, &want, 1e-12);
    // and the functional form agrees
    let (_, hv2) = hvp(loss_of, &flat, &v).unwrap();
    close(&hv2.to_vec(), &want, 1e-12);
}

/// f: R³ → R², f(x) = (x₀·x₁·x₂, sin(x₀) + x₂²)
fn nonsquare(x: &Tensor<f64>) -> Tensor<f64> {
    let (a, b, c) = (x.narrow(0, 0, 1), x.narrow(0, 1, 1), x.narrow(0, 2, 1));
    Tensor::cat(&[&a.mul(&b).mul(&c), &(a.sin() + c.square())], 0)
}

#[test]
fn jacobian_of_a_non_square_map_against_finite_differences() {
    let x0 = [0.3, -1.2, 0.8];
    let j = jacobian(nonsquare, &t(&x0, &[3])).unwrap();
    assert_eq!(j.shape(), &[2, 3]);
    let eps = 1e-6;
    let mut fd = vec![0.0; 6];
    for k in 0..3 {
        let (mut p, mut m) = (x0, x0);
        p[k] += eps;
        m[k] -= eps;
        let (fp, fm) = (
            nonsquare(&t(&p, &[3])).to_vec(),
            nonsquare(&t(&m, &[3])).to_vec(),
        );
        for i in 0..2 {
            fd[i * 3 + k] = (fp[i] - fm[i]) / (2.0 * eps);
        }
    }
    close(&j.to_vec(), &fd, 1e-8);
    // the closed form too
    let [a, b, c] = x0;
    close(
        &j.to_vec(),
        &[b * c, a * c, a * b, a.cos(), 0.0, 2.0 * c],
        1e-15,
    );
}

#[test]
fn jvp_equals_j_times_v_and_vjp_equals_vt_times_j() {
    let x = t(&[0.3, -1.2, 0.8], &[3]);
    let j = jacobian(nonsquare, &x).unwrap();
    let v = t(&[0.5, 2.0, -1.0], &[3]);
    let (y, jv) = jvp(nonsquare, &x, &v).unwrap();
    assert_eq!(y.to_vec(), nonsquare(&x).to_vec());
    close(&jv.to_vec(), &j.matmul(&v).to_vec(), 1e-14);
    let u = t(&[1.5, -0.5], &[2]);
    let (_, uj) = vjp(nonsquare, &x, &u).unwrap();
    close(&uj.to_vec(), &u.matmul(&j).to_vec(), 1e-14);
}

#[test]
fn transforms_make_their_own_leaf_and_record_inside_no_grad() {
    let w = t(&[2.0], &[]).requires_grad();
    let x = (&w * 1.5).detach(); // x need not require a gradient
    let _off = ferrograd::no_grad();
    let (fx, hv) = hvp(|x| x.powi(3).sum(), &x, &t(&[1.0], &[])).unwrap();
    assert_eq!((fx.item(), hv.item()), (27.0, 18.0));
    assert!(!hv.needs_grad() && !fx.needs_grad(), "plain results");
    let h = hessian(|x| x.powi(3).sum(), &t(&[1.0, 2.0], &[2])).unwrap();
    assert_eq!(h.to_vec(), vec![6.0, 0.0, 0.0, 12.0]);
}

#[test]
fn affine_functions_have_zero_second_derivatives() {
    let f = |x: &Tensor<f64>| (x * 3.0 + 1.0).sum();
    assert_eq!(
        hessian(f, &t(&[1.0, 2.0], &[2])).unwrap().to_vec(),
        vec![0.0; 4]
    );
    let (_, hv) = hvp(f, &t(&[1.0, 2.0], &[2]), &t(&[1.0, 1.0], &[2])).unwrap();
    assert_eq!(hv.to_vec(), vec![0.0, 0.0]);
    // with grad: the gradient of an affine map is constant, so it needs no
    // gradient; allow_unused gives zeros, and without it the error says why
    let x = t(&[1.0, 2.0], &[2]).requires_grad();
    let g = grad(&f(&x), &[&x], recorded()).unwrap().remove(0);
    assert_eq!(g.to_vec(), vec![3.0, 3.0]);
    let zero = grad(
        &g.sum(),
        &[&x],
        GradOptions {
            allow_unused: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(zero[0].to_vec(), vec![0.0, 0.0]);
    assert!(matches!(
        grad(&g.sum(), &[&x], GradOptions::default()),
        Err(Error::NoGraph)
    ));
}

#[test]
fn errors_name_their_cause() {
    let x = t(&[1.0, 2.0], &[2]).requires_grad();
    let y = x.square();
    // a non-scalar output without an upstream names `upstream`
    let e = grad(&y, &[&x], GradOptions::default()).unwrap_err();
    assert!(matches!(&e, Error::NeedsUpstream { shape } if shape == &[2]));
    let msg = e.to_string();
    assert!(
        msg.contains("upstream") && !msg.contains("backward_with"),
        "{msg}"
    );
    // an upstream of the wrong shape
    let e = grad(
        &y,
        &[&x],
        GradOptions {
            upstream: Some(t(&[1.0], &[1])),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "grad: incompatible shapes [2] and [1]");
    // an input the output does not depend on: its position, or zeros
    let unused = t(&[5.0, 6.0, 7.0], &[3]).requires_grad();
    let s = y.sum();
    let e = grad(&s, &[&x, &unused], GradOptions::default()).unwrap_err();
    assert!(matches!(&e, Error::UnusedInput { position: 1, shape } if shape == &[3]));
    assert!(e.to_string().contains("allow_unused"), "{e}");
    let g = grad(
        &s,
        &[&x, &unused],
        GradOptions {
            allow_unused: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(g[0].to_vec(), vec![2.0, 4.0]);
    assert_eq!(g[1].to_vec(), vec![0.0; 3]);
    // a constant (no requires_grad) is unused too
    let c = t(&[1.0, 1.0], &[2]);
    let e = grad(&x.mul(&c).sum(), &[&c], GradOptions::default()).unwrap_err();
    assert!(matches!(e, Error::UnusedInput { position: 0, .. }));
    // differentiating a gradient taken without create_graph names create_graph
    let g = grad(&s, &[&x], GradOptions::default()).unwrap().remove(0);
    let e = grad(&g.sum(), &[&x], GradOptions::default()).unwrap_err();
    assert!(matches!(e, Error::GradientWithoutGraph));
    assert!(e.to_string().contains("create_graph"), "{e}");
    let e = s
        .backward()
        .unwrap()
        .get(&x)
        .unwrap()
        .square()
        .sum()
        .backward()
        .unwrap_err();
    assert!(matches!(e, Error::GradientWithoutGraph));
    // hessian and hvp want a scalar function
    let e = hessian(|x| x.square(), &t(&[1.0, 2.0], &[2])).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("hessian: f must return a single element"),
        "{e}"
    );
}

#[test]
fn gradient_penalty_trains_through_a_second_backward() {
    // WGAN-GP style: a penalty on the input-gradient's norm, differentiated with
    // respect to the weights, matches finite differences of the penalty.
    let (mlp, x, _) = mlp_setup();
    let penalty = |mlp: &Mlp<f64>| {
        let xi = x.requires_grad();
        let out = mlp.forward(&xi).sum();
        let gx = grad(&out, &[&xi], recorded()).unwrap().remove(0);
        gx.square()
            .sum_axis(1, false)
            .sqrt()
            .sub_scalar(1.0)
            .square()
            .mean()
    };
    let p = penalty(&mlp);
    let w = &mlp.parameters()[0];
    let gw = grad(&p, &[w], GradOptions::default())
        .unwrap()
        .remove(0)
        .to_vec();
    let eps = 1e-6;
    let base = w.to_vec();
    for k in [0, 4, 9] {
        let mut plus = base.clone();
        plus[k] += eps;
        w.assign(&t(&plus, w.shape())).unwrap();
        let fp = penalty(&mlp).item();
        let mut minus = base.clone();
        minus[k] -= eps;
        w.assign(&t(&minus, w.shape())).unwrap();
        let fm = penalty(&mlp).item();
        w.assign(&t(&base, w.shape())).unwrap();
        close(&[gw[k]], &[(fp - fm) / (2.0 * eps)], 1e-6);
    }
}

#[test]
fn every_loss_is_twice_differentiable() {
    use ferrograd::gradcheck::gradgradcheck;
    use ferrograd::loss::{self, CrossEntropyOptions};
    let mut rng = StdRng::seed_from_u64(21);
    let mut leaf = |shape: &[usize]| Tensor::<f64>::randn(shape, &mut rng).requires_grad();
    let (pred, target) = (leaf(&[3, 2]), leaf(&[3, 2]));
    let logits = leaf(&[4, 3]);
    let probs = Tensor::<f64>::from_vec(vec![0.2, 0.7, 0.4, 0.9, 0.55, 0.1], &[3, 2])
        .unwrap()
        .requires_grad();
    let soft = Tensor::<f64>::from_vec(vec![0.0, 1.0, 0.3, 1.0, 0.5, 0.0], &[3, 2]).unwrap();
    let p = Tensor::<f64>::from_vec(vec![0.2, 0.3, 0.5, 0.6, 0.3, 0.1], &[2, 3])
        .unwrap()
        .requires_grad();
    let classes = [2usize, 0, 1, 2];
    type Case = (
        &'static str,
        Box<dyn Fn(&[Tensor<f64>]) -> Tensor<f64>>,
        Vec<Tensor<f64>>,
    );
    let cases: Vec<Case> = vec![
        (
            "mse",
            Box::new(|t| loss::mse(&t[0], &t[1]).unwrap()),
            vec![pred.clone(), target.clone()],
        ),
        (
            "l1",
            Box::new(|t| loss::l1(&t[0], &t[1]).unwrap()),
            vec![pred.clone(), target.clone()],
        ),
        (
            "huber",
            Box::new(|t| loss::huber(&t[0], &t[1], 0.8).unwrap()),
            vec![pred.clone(), target.clone()],
        ),
        (
            "cross_entropy",
            Box::new(move |t| loss::cross_entropy(&t[0], &classes).unwrap()),
            vec![logits.clone()],
        ),
        (
            "cross_entropy_with",
            Box::new(move |t| {
                let o = CrossEntropyOptions {
                    label_smoothing: 0.1,
                    ignore_index: Some(0),
                };
                loss::cross_entropy_with(&t[0], &classes, o).unwrap()
            }),
            vec![logits.clone()],
        ),
        (
            "nll",
            Box::new(move |t| loss::nll(&t[0].log_softmax(1), &classes).unwrap()),
            vec![logits.clone()],
        ),
        (
            "bce",
            Box::new(move |t| loss::bce(&t[0], &soft).unwrap()),
            vec![probs.clone()],
        ),
        (
            "bce_with_logits",
            Box::new(|t| loss::bce_with_logits(&t[0], &t[1]).unwrap()),
            vec![pred.clone(), target.clone()],
        ),
        (
            "kl_div",
            Box::new(|t| loss::kl_div(&t[0].log_softmax(1), &t[1]).unwrap()),
            vec![leaf(&[2, 3]), p.clone()],
        ),
    ];
    for (name, f, inputs) in cases {
        if let Err(e) = gradgradcheck(&f, &inputs) {
            panic!("{name}: {e}");
        }
    }
}
