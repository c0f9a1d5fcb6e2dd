//! Zero-size dimensions flow through every op family, forward and backward, on
//! contiguous inputs and on transposed views: no panic, gradients of the input's
//! shape (a property test over random shapes with zeros), plus the cases that
//! once failed.

use ferrograd::nn::functional::layer_norm;
use ferrograd::{grad, GradOptions, Tensor};
use proptest::prelude::*;

/// A shape of rank 1..=3 with dims in 0..=3, at least one of them 0 half the time.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..=3, 1..=3)
}

fn leaf(shape: &[usize]) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| 0.1 + i as f64 * 0.01).collect(), shape)
        .unwrap()
        .requires_grad()
}

/// The same values seen through a transposed view (last two axes swapped), when
/// the rank allows: a non-contiguous input.
fn views(shape: &[usize]) -> Vec<(Tensor<f64>, Tensor<f64>)> {
    let x = leaf(shape);
    let mut out = vec![(x.clone(), x)];
    if shape.len() >= 2 {
        let mut s = shape.to_vec();
        let n = s.len();
        s.swap(n - 1, n - 2);
        let base = leaf(&s);
        out.push((base.clone(), base.transpose(-1, -2)));
    }
    out
}

/// Backward through `y`, first order and recorded (second order): the leaf
/// gets a gradient of its shape, or none when it is empty.
#[track_caller]
fn check_backward(op: &str, leaf: &Tensor<f64>, y: &Tensor<f64>) {
    let g = y.sum().backward().unwrap();
    if let Some(gx) = g.get(leaf) {
        assert_eq!(gx.shape(), leaf.shape(), "{op}");
    }
    let options = GradOptions {
        create_graph: true,
        allow_unused: true,
        ..Default::default()
    };
    let gx = grad(&y.sum(), &[leaf], options).unwrap().remove(0);
    assert_eq!(gx.shape(), leaf.shape(), "{op} (recorded)");
    let again = GradOptions {
        allow_unused: true,
        ..Default::default()
    };
    let ggx = grad(&gx.sum(), &[leaf], again).unwrap().remove(0);
    assert_eq!(ggx.shape(), leaf.shape(), "{op} (second order)");
}

/// A unary op under test.
type Op = fn(&Tensor<f64>) -> Tensor<f64>;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn elementwise_and_reductions(s in shape()) {
        for (leaf, x) in views(&s) {
            let unary: &[(&str, Op)] = &[
                ("exp", |x| x.exp()),
                ("tanh", |x| x.tanh()),
                ("relu", |x| x.relu()),
                ("square", |x| x.square()),
                ("gelu_erf", |x| x.gelu_erf()),
                ("mul_scalar", |x| x.mul_scalar(3.0)),
                ("mul", |x| x.mul(x)),
                ("div", |x| x.div(&x.add_scalar(1.0))),
            ];
            for &(op, f) in unary {
                let y = f(&x);
                prop_assert_eq!(y.shape(), x.shape());
                check_backward(op, &leaf, &y);
            }
            // a broadcast partner of shape [1, .., 1, last]
            let last = *s.last().unwrap();
            let b = leaf_like(&[last]);
            check_backward("add (broadcast)", &leaf, &x.add(&b));
            check_backward("maximum (broadcast)", &leaf, &x.maximum(&b));
            check_backward("sum", &leaf, &x.sum());
            check_backward("mean", &leaf, &x.mean());
            for axis in [0isize, -1] {
                for keep in [false, true] {
                    check_backward("sum_axis", &leaf, &x.sum_axis(axis, keep));
                    check_backward("mean_axis", &leaf, &x.mean_axis(axis, keep));
                    check_backward("logsumexp", &leaf, &x.logsumexp(axis, keep));
                    check_backward("var_axis", &leaf, &x.var_axis(axis, keep));
                    // max over an empty axis is an error, never a panic
                    match x.try_max_axis(axis, keep) {
                        Ok(y) => check_backward("max_axis", &leaf, &y),
                        Err(e) => prop_assert!(e.to_string().contains("size 0"), "{}", e),
                    }
                }
                check_backward("softmax", &leaf, &x.softmax(axis));
                check_backward("log_softmax", &leaf, &x.log_softmax(axis));
            }
            check_backward("layer_norm", &leaf, &layer_norm(&x, None, None, 1e-5));
        }
    }

    #[test]
    fn movement_and_indexing(s in shape()) {
        for (leaf, x) in views(&s) {
            let n = x.numel();
            check_backward("reshape", &leaf, &x.reshape(&[n]));
            check_backward("flatten", &leaf, &x.flatten());
            check_backward("unsqueeze", &leaf, &x.unsqueeze(0));
            check_backward("squeeze", &leaf, &x.unsqueeze(-1).squeeze(-1));
            check_backward("transpose", &leaf, &x.transpose(0, -1));
            let perm: Vec<usize> = (0..x.ndim()).rev().collect();
            check_backward("permute", &leaf, &x.permute(&perm));
            let mut big = vec![2];
            big.extend_from_slice(x.shape());
            check_backward("broadcast_to", &leaf, &x.broadcast_to(&big));
            check_backward("contiguous", &leaf, &x.contiguous());
            let d0 = x.shape()[0];
            check_backward("narrow", &leaf, &x.narrow(0, d0 / 2, d0 - d0 / 2));
            check_backward("narrow (empty)", &leaf, &x.narrow(0, 0, 0));
            let picks: Vec<usize> = (0..d0).rev().chain(0..d0).collect();
            check_backward("index_select", &leaf, &x.index_select(0, &picks));
            check_backward("index_select (none)", &leaf, &x.index_select(0, &[]));
            let mask = Tensor::<f64>::ones(x.shape());
            check_backward("masked_fill", &leaf, &x.masked_fill(&mask, -1.0));
            check_backward("cat", &leaf, &Tensor::cat(&[&x, &x.narrow(0, 0, 0), &x], 0));
            check_backward("stack", &leaf, &Tensor::stack(&[&x, &x], -1));
            // splitting into views, empty pieces included
            for part in x.chunk(2, 0) {
                check_backward("chunk", &leaf, &part);
            }
            prop_assert_eq!(x.chunk(3, 0).len(), if d0 == 0 { 3 } else { d0.min(3) });
            for part in x.split(&[d0 / 2, 0, d0 - d0 / 2], 0) {
                check_backward("split", &leaf, &part);
            }
            if d0 > 0 {
                check_backward("select", &leaf, &x.select(0, d0 - 1));
            }
            let last = x.ndim() as isize - 1;
            if x.shape()[last as usize] > 0 {
                check_backward("select (last axis)", &leaf, &x.select(last, 0));
            }
            if x.ndim() >= 2 {
                check_backward("tril", &leaf, &x.tril(0));
                check_backward("triu", &leaf, &x.triu(-1));
            }
            // masks and selection by a mask
            let mask = x.greater_scalar(0.15);
            prop_assert_eq!(mask.shape(), x.shape());
            prop_assert!(!mask.needs_grad());
            prop_assert_eq!(x.less(&x.sum()).shape().to_vec(), x.shape().to_vec());
            let zero = Tensor::<f64>::scalar(0.0);
            check_backward("where_cond", &leaf, &Tensor::where_cond(&mask, &x, &zero));
            check_backward("where_cond (b)", &leaf, &Tensor::where_cond(&mask, &zero, &x));
            check_backward("Iterator::sum", &leaf, &[x.clone(), x.square()].iter().sum());
            prop_assert_eq!(x.detach().cast::<f32>().shape().to_vec(), x.shape().to_vec());
        }
    }

    #[test]
    fn matmul_with_zero_sizes(m in 0usize..=2, k in 0usize..=2, n in 0usize..=2, batch in 0usize..=2) {
        let a = leaf(&[batch, m, k]);
        let b2 = leaf(&[k, n]);
        let b3 = leaf(&[batch, k, n]);
        let y = a.matmul(&b2);
        prop_assert_eq!(y.shape(), &[batch, m, n]);
        prop_assert!(y.to_vec().iter().all(|&v| k > 0 || v == 0.0));
        check_backward("matmul [b,m,k]·[k,n] (a)", &a, &y);
        check_backward("matmul [b,m,k]·[k,n] (b)", &b2, &y);
        let y = a.matmul(&b3);
        check_backward("matmul batched (a)", &a, &y);
        check_backward("matmul batched (b)", &b3, &y);
        let at = leaf(&[k, m]).t();
        check_backward("matmul transposed", &b2, &at.matmul(&b2));
        let v = leaf(&[k]);
        check_backward("matmul vector", &v, &leaf(&[m, k]).matmul(&v));
    }
}

fn leaf_like(shape: &[usize]) -> Tensor<f64> {
    leaf(shape).detach()
}

#[test]
fn matmul_backward_with_an_empty_inner_dimension() {
    // [2, 3, 0]·[0, 4] once panicked in backward: "reshape: incompatible shapes
    // [2, 3, 4] and [0, 4]"
    let a = Tensor::<f64>::zeros(&[2, 3, 0]).requires_grad();
    let b = Tensor::<f64>::zeros(&[0, 4]).requires_grad();
    let y = a.matmul(&b);
    assert_eq!(y.shape(), &[2, 3, 4]);
    assert_eq!(y.to_vec(), vec![0.0; 24]);
    let g = y.sum().backward().unwrap();
    assert_eq!(g.get(&a).unwrap().shape(), &[2, 3, 0]);
    assert_eq!(g.get(&b).unwrap().shape(), &[0, 4]);
}

#[test]
fn variance_over_an_empty_axis_is_nan() {
    // it once returned -0.0; PyTorch (and our own mean) give NaN
    let x = Tensor::<f64>::zeros(&[0, 3]);
    assert!(x.var_axis(0, false).to_vec().iter().all(|v| v.is_nan()));
    assert!(x.mean_axis(0, false).to_vec().iter().all(|v| v.is_nan()));
    assert!(Tensor::<f32>::zeros(&[2, 0])
        .var_axis(-1, true)
        .to_vec()
        .iter()
        .all(|v| v.is_nan()));
}

#[test]
fn new_ops_on_empty_tensors() {
    let e = Tensor::<f64>::zeros(&[0, 3]).requires_grad();
    // torch.empty(0, 3).chunk(3): three empty chunks
    let parts = e.chunk(3, 0);
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|p| p.shape() == [0, 3]));
    assert_eq!(e.chunk(2, 1).len(), 2);
    assert!(e.split(&[], 0).is_empty());
    assert_eq!(e.select(1, 2).shape(), &[0]);
    assert_eq!(e.tril(0).shape(), &[0, 3]);
    assert_eq!(e.t().triu(5).shape(), &[3, 0]);
    // a mask, a branch and a 0-d branch broadcast to an empty shape
    let w = Tensor::where_cond(&e.detach().equal_scalar(0.0), &Tensor::ones(&[3]), &e);
    assert_eq!(w.shape(), &[0, 3]);
    let g = w.sum().backward().unwrap();
    assert_eq!(g.get(&e).unwrap().shape(), &[0, 3]);
    assert_eq!(e.less(&Tensor::scalar(1.0)).shape(), &[0, 3]);
    assert_eq!(e.detach().cast::<f32>().shape(), &[0, 3]);
    let s: Tensor<f64> = [e.clone(), e.clone()].iter().sum();
    assert_eq!(s.shape(), &[0, 3]);
}
