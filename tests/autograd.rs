//! Autograd semantics through the public API: fan-out, shared subexpressions,
//! detach, no_grad, backward_with, repeated passes, in-place versions, and the
//! ownership of returned gradients.

use approx::assert_abs_diff_eq;
use ferrograd::{no_grad, Error, Tensor};

fn t(v: &[f64], s: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), s).unwrap()
}

#[test]
fn fan_out_x_times_x_plus_x() {
    // y = x² + x, dy/dx = 2x + 1
    let x = t(&[-1.0, 0.5, 3.0], &[3]).requires_grad();
    let y = (&x * &x + &x).sum();
    let g = y.backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec(), vec![-1.0, 2.0, 7.0]);
}

#[test]
fn reused_subexpression_accumulates_once_per_use() {
    // h = tanh(x); y = h·h + 3h  ⇒ dy/dx = (2h + 3)(1 − h²)
    let x = t(&[0.3, -0.7], &[2]).requires_grad();
    let h = x.tanh();
    let y = (&h * &h + &h * 3.0).sum();
    let g = y.backward().unwrap();
    let expected: Vec<f64> = [0.3f64, -0.7]
        .iter()
        .map(|v| {
            let h = v.tanh();
            (2.0 * h + 3.0) * (1.0 - h * h)
        })
        .collect();
    assert_abs_diff_eq!(
        g.get(&x).unwrap().clone(),
        t(&expected, &[2]),
        epsilon = 1e-12
    );
}

#[test]
fn a_leaf_used_in_two_branches_gets_the_sum() {
    let w = t(&[2.0], &[]).requires_grad();
    let a = &w * 3.0; // da/dw = 3
    let b = w.exp(); // db/dw = e^w
    let y = &a + &b;
    let g = y.backward().unwrap();
    assert!((g.get(&w).unwrap().item() - (3.0 + 2f64.exp())).abs() < 1e-12);
}

#[test]
fn detach_cuts_the_graph() {
    let x = t(&[2.0], &[]).requires_grad();
    let y = &x * &x.detach(); // only one factor is differentiated
    assert_eq!(y.backward().unwrap().get(&x).unwrap().item(), 2.0);
    let d = x.detach();
    assert!(!d.needs_grad() && d.is_leaf());
    assert_eq!(d.item(), 2.0);
    assert_eq!(
        (&d * 3.0).backward().unwrap_err().to_string(),
        Error::NoGraph.to_string()
    );
}

#[test]
fn no_grad_records_nothing_and_nests() {
    let w = t(&[1.0, 2.0], &[2]).requires_grad();
    {
        let _outer = no_grad();
        assert!(!ferrograd::is_grad_enabled());
        {
            let _inner = no_grad();
            assert!(!(&w * 2.0).needs_grad());
        }
        assert!(
            !ferrograd::is_grad_enabled(),
            "inner guard restores the outer mode"
        );
        let y = w.exp().sum();
        assert!(!y.needs_grad() && y.op_name().is_none());
        assert!(matches!(y.backward(), Err(Error::NoGraph)));
    }
    assert!(ferrograd::is_grad_enabled());
    assert!((&w * 2.0).needs_grad());
}

#[test]
fn ops_on_tensors_without_gradients_record_nothing() {
    let a = t(&[1.0, 2.0], &[2]);
    let m = a.reshape(&[1, 2]);
    let b = m.exp().matmul(&m.t());
    assert!(!b.needs_grad() && b.op_name().is_none() && b.is_leaf());
    let w = m.requires_grad();
    let c = w.exp().matmul(&m.t());
    assert_eq!(c.op_name(), Some("matmul"));
    assert!(c.needs_grad() && !c.is_leaf());
}

#[test]
fn backward_with_is_a_vector_jacobian_product() {
    // y = W·x, J = W; vᵀJ for x, and v ⊗ x for W
    let w = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).requires_grad();
    let x = t(&[1.0, -1.0, 2.0], &[3]).requires_grad();
    let y = w.matmul(&x);
    let v = t(&[10.0, 1.0], &[2]);
    let g = y.backward_with(&v).unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec(), vec![14.0, 25.0, 36.0]);
    assert_eq!(
        g.get(&w).unwrap().to_vec(),
        vec![10.0, -10.0, 20.0, 1.0, -1.0, 2.0]
    );
    let bad = y.backward_with(&t(&[1.0], &[1])).unwrap_err();
    assert_eq!(
        bad.to_string(),
        "backward_with: incompatible shapes [2] and [1]"
    );
}

#[test]
fn two_backward_passes_over_one_graph_do_not_mix() {
    let x = t(&[1.5], &[]).requires_grad();
    let y = x.square().mul_scalar(2.0); // dy/dx = 4x = 6
    let g1 = y.backward().unwrap();
    let g2 = y.backward().unwrap();
    assert_eq!(g1.get(&x).unwrap().item(), 6.0);
    assert_eq!(g2.get(&x).unwrap().item(), 6.0);
    // two different losses from one shared graph
    let h = x.exp();
    let (a, b) = (h.mul_scalar(2.0), h.square());
    assert!((a.backward().unwrap().get(&x).unwrap().item() - 2.0 * 1.5f64.exp()).abs() < 1e-12);
    assert!((b.backward().unwrap().get(&x).unwrap().item() - 2.0 * 3f64.exp()).abs() < 1e-12);
}

#[test]
fn backward_needs_a_single_element() {
    let x = t(&[1.0, 2.0], &[2]).requires_grad();
    let e = x.exp().backward().unwrap_err();
    assert!(matches!(&e, Error::NotScalar { shape } if shape == &[2]));
    assert!(e
        .to_string()
        .starts_with("backward: expected a tensor with exactly one element, got shape [2]"));
    // [1] and [1, 1] hold one element: fine
    let one = t(&[3.0], &[1, 1]).requires_grad();
    assert_eq!(
        one.square().backward().unwrap().get(&one).unwrap().to_vec(),
        vec![6.0]
    );
}

#[test]
fn gradients_are_contiguous_owned_and_never_alias() {
    // add's backward hands the same gradient to both inputs; broadcasting hands
    // out stride-0 views; the seed is shared. The walk must copy where needed.
    let a = t(&[1.0, 2.0, 3.0], &[3]).requires_grad();
    let b = t(&[4.0, 5.0, 6.0], &[3]).requires_grad();
    let s = t(&[7.0], &[]).requires_grad();
    let y = (&a + &b + &s).sum();
    let g = y.backward().unwrap();
    let (ga, gb, gs) = (g.get(&a).unwrap(), g.get(&b).unwrap(), g.get(&s).unwrap());
    assert_eq!(ga.to_vec(), vec![1.0; 3]);
    assert_eq!(gs.item(), 3.0);
    for gr in [ga, gb, gs] {
        assert!(gr.is_contiguous() && gr.is_leaf() && !gr.needs_grad());
    }
    // writing into one gradient (as clipping does) leaves the others alone
    let mut g = g;
    g.clip_value(0.5);
    assert_eq!(g.get(&a).unwrap().to_vec(), vec![0.5; 3]);
    assert_eq!(g.get(&s).unwrap().item(), 0.5);
    // the loss graph and parameters are untouched
    assert_eq!(a.to_vec(), vec![1.0, 2.0, 3.0]);
    assert_eq!(
        y.backward().unwrap().get(&b).unwrap().to_vec(),
        vec![1.0; 3]
    );
    // a strided leaf's gradient is contiguous and has the leaf's shape
    let m = Tensor::<f64>::arange(6)
        .reshape(&[2, 3])
        .t()
        .requires_grad();
    let gm = m.square().sum().backward().unwrap();
    let gm = gm.get(&m).unwrap();
    assert_eq!(gm.shape(), &[3, 2]);
    assert!(gm.is_contiguous());
    assert_eq!(gm.to_vec(), vec![0.0, 6.0, 2.0, 8.0, 4.0, 10.0]);
}

#[test]
fn in_place_update_after_forward_is_an_error_not_a_wrong_gradient() {
    let w = t(&[1.0, 2.0], &[2]).requires_grad();
    let x = t(&[3.0, 4.0], &[2]);
    let loss = w.mul(&x).square().sum(); // mul saves w... and square saves w·x
    w.assign(&t(&[0.0, 0.0], &[2])).unwrap();
    // mul's backward reads x (unchanged) and w (changed)
    let e = loss.backward().unwrap_err();
    assert!(matches!(e, Error::ModifiedInPlace { op: "mul", .. }), "{e}");
    assert!(e.to_string().contains("was modified in place"));
    // ops that save nothing are unaffected: d(sum(w + x))/dw = 1
    let loss2 = (&w + &x).sum();
    w.assign(&t(&[5.0, 5.0], &[2])).unwrap();
    assert_eq!(
        loss2.backward().unwrap().get(&w).unwrap().to_vec(),
        vec![1.0, 1.0]
    );
    // a fresh forward pass after the update works, and every handle sees the new values
    let w2 = w.clone();
    let loss3 = w.mul(&x).sum();
    assert_eq!(
        loss3.backward().unwrap().get(&w2).unwrap().to_vec(),
        vec![3.0, 4.0]
    );
    assert_eq!(w2.to_vec(), vec![5.0, 5.0]);
    // exp saves its own (fresh) output, not w: unaffected by the update
    let loss4 = w.exp().sum();
    w.assign(&t(&[1.0, 1.0], &[2])).unwrap();
    assert!(loss4.backward().is_ok());
    // a view that shares the updated buffer is caught
    let v = w.reshape(&[1, 2]);
    let loss5 = v.matmul(&x.reshape(&[2, 1])).sum();
    w.assign(&t(&[0.0, 0.0], &[2])).unwrap();
    assert!(matches!(
        loss5.backward(),
        Err(Error::ModifiedInPlace { op: "matmul", .. })
    ));
}

#[test]
fn assign_checks_shapes_and_handles_self_aliasing() {
    let w = Tensor::<f64>::arange(4).reshape(&[2, 2]);
    assert!(w.assign(&Tensor::zeros(&[3])).is_err());
    w.assign(&w.t()).unwrap(); // reads before writing: no deadlock, no torn values
    assert_eq!(w.to_vec(), vec![0.0, 2.0, 1.0, 3.0]);
    w.assign(&Tensor::scalar(1.5)).unwrap(); // broadcasts
    assert_eq!(w.to_vec(), vec![1.5; 4]);
    // a broadcast view cannot hold different values in its aliased slots
    let s = Tensor::<f64>::scalar(1.0);
    let b = s.broadcast_to(&[3]);
    let e = b.assign(&t(&[1.0, 2.0, 3.0], &[3])).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("assign: cannot write into a broadcast view"),
        "{e}"
    );
    assert_eq!(s.item(), 1.0);
}

#[test]
fn gradients_collection() {
    let a = t(&[3.0, 4.0], &[2]).requires_grad();
    let unused = t(&[1.0], &[1]).requires_grad();
    let mut g = (&a * &a).sum().backward().unwrap();
    assert_eq!(g.len(), 1);
    assert!(g.get(&unused).is_none());
    assert!((g.global_norm() - 10.0).abs() < 1e-12); // |(6, 8)| = 10
    assert_eq!(g.clip_norm(5.0), 10.0);
    assert_abs_diff_eq!(
        g.get(&a).unwrap().clone(),
        t(&[3.0, 4.0], &[2]),
        epsilon = 1e-5
    );
    assert_eq!(
        g.clip_norm(100.0),
        g.global_norm(),
        "below the limit nothing changes"
    );
    let pairs: Vec<_> = g
        .iter()
        .map(|(leaf, grad)| (leaf.id(), grad.shape().to_vec()))
        .collect();
    assert_eq!(pairs, vec![(a.id(), vec![2])]);
    assert!(g.remove(&a).is_some() && g.is_empty());
}

#[test]
fn backward_never_writes_into_the_callers_tensors() {
    // rules may reuse the gradient buffer they are handed, but never one the
    // caller can see: the upstream of backward_with, or a tensor of the graph
    let x = t(&[0.5, -1.0, 2.0], &[3]).requires_grad();
    let y = (&x * 3.0).tanh().neg().exp() / 2.0;
    let v = t(&[1.0, 2.0, 3.0], &[3]);
    let snapshot = (v.to_vec(), y.to_vec(), x.to_vec());
    let g1 = y.backward_with(&v).unwrap().get(&x).unwrap().to_vec();
    let g2 = y.backward_with(&v).unwrap().get(&x).unwrap().to_vec();
    assert_eq!(g1, g2);
    assert_eq!((v.to_vec(), y.to_vec(), x.to_vec()), snapshot);
    // the same gradient by hand: d/dx exp(-tanh(3x))/2 = -3·(1 − tanh²)·exp(−tanh)/2
    for (i, &xi) in [0.5f64, -1.0, 2.0].iter().enumerate() {
        let th = (3.0 * xi).tanh();
        let want = (i + 1) as f64 * -3.0 * (1.0 - th * th) * (-th).exp() / 2.0;
        assert!((g1[i] - want).abs() < 1e-12, "{} vs {want}", g1[i]);
    }
}
