//! The walk at every order, seen from inside the crate: what `create_graph`
//! records, which rules run, in-place updates racing the walk, and memory.

use super::test_hooks::{self, Point};
use super::{grad, live_nodes, no_grad, GradOptions};
use crate::{Error, Tensor};

fn t(v: &[f64], s: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), s).unwrap()
}

fn recorded() -> GradOptions<f64> {
    GradOptions {
        create_graph: true,
        ..Default::default()
    }
}

fn plain() -> GradOptions<f64> {
    GradOptions::default()
}

#[test]
fn create_graph_records_the_walk_and_plain_walks_do_not() {
    let x = t(&[0.5, -1.0], &[2]).requires_grad();
    let y = x.tanh().sum();
    let g = grad(&y, &[&x], recorded()).unwrap().remove(0);
    assert!(
        g.needs_grad() && !g.is_leaf(),
        "a recorded gradient has a graph"
    );
    let g = grad(&y, &[&x], plain()).unwrap().remove(0);
    assert!(!g.needs_grad());
    assert!(
        matches!(
            grad(&g.sum(), &[&x], plain()),
            Err(Error::GradientWithoutGraph)
        ),
        "differentiating a plain gradient names create_graph"
    );
    let g = y.backward().unwrap();
    let gx = g.get(&x).unwrap();
    assert!(matches!(
        gx.sum().backward(),
        Err(Error::GradientWithoutGraph)
    ));
    // an unrelated constant still gets the plain error
    assert!(matches!(t(&[1.0], &[]).backward(), Err(Error::NoGraph)));
}

#[test]
fn fan_in_is_summed_with_a_recorded_add() {
    // x feeds two ops: its gradient exp(x) + cos(x) is the sum of two
    // contributions, and its derivative exp(x) − sin(x) needs both.
    let x = t(&[0.3], &[]).requires_grad();
    let y = x.exp().add(&x.sin());
    let g = grad(&y, &[&x], recorded()).unwrap().remove(0);
    let h = grad(&g, &[&x], plain()).unwrap().remove(0);
    let v = 0.3f64;
    assert!((g.item() - (v.exp() + v.cos())).abs() < 1e-15);
    assert!((h.item() - (v.exp() - v.sin())).abs() < 1e-15);
}

#[test]
fn results_are_handed_out_through_a_recorded_copy() {
    // The gradient of x + 0 is the upstream itself: handed out as a copy (its
    // own buffer), recorded, so that d(result)/d(upstream) exists.
    let x = t(&[1.0, 2.0], &[2]).requires_grad();
    let u = t(&[3.0, -4.0], &[2]).requires_grad();
    let y = x.add_scalar(0.0);
    let options = GradOptions {
        upstream: Some(u.clone()),
        ..recorded()
    };
    let g = grad(&y, &[&x], options).unwrap().remove(0);
    assert_eq!(g.to_vec(), vec![3.0, -4.0]);
    assert!(!g.shares_storage(&u), "never an alias of the upstream");
    assert!(g.needs_grad());
    let du = grad(&g.mul(&t(&[5.0, 7.0], &[2])).sum(), &[&u], plain()).unwrap();
    assert_eq!(du[0].to_vec(), vec![5.0, 7.0]);
    // a root that is itself requested gets the upstream, copied the same way
    let options = GradOptions {
        upstream: Some(u.clone()),
        ..recorded()
    };
    let gy = grad(&y, &[&y], options).unwrap().remove(0);
    assert!(!gy.shares_storage(&u) && gy.needs_grad());
}

#[test]
fn the_upstream_stays_attached() {
    // g = u·2x, so dg/du = 2x and d(Σg)/dx = 2u
    let x = t(&[1.5, -0.5], &[2]).requires_grad();
    let u = t(&[2.0, 3.0], &[2]).requires_grad();
    let options = GradOptions {
        upstream: Some(u.clone()),
        ..recorded()
    };
    let g = grad(&x.square(), &[&x], options).unwrap().remove(0);
    let both = grad(&g.sum(), &[&u, &x], plain()).unwrap();
    assert_eq!(both[0].to_vec(), vec![3.0, -1.0]);
    assert_eq!(both[1].to_vec(), vec![4.0, 6.0]);
}

#[test]
fn create_graph_records_inside_a_callers_no_grad() {
    let x = t(&[0.5], &[]).requires_grad();
    let y = x.powi(3);
    let _off = no_grad();
    let g = grad(&y, &[&x], recorded()).unwrap().remove(0);
    assert!(g.needs_grad());
    assert_eq!(grad(&g, &[&x], plain()).unwrap()[0].item(), 3.0);
    assert!(
        !x.exp().needs_grad(),
        "the caller's mode is restored after the walk"
    );
}

/// A two-layer net with a weight penalty; returns (input, weights, loss).
fn pinn_like() -> (Tensor<f64>, [Tensor<f64>; 2], Tensor<f64>) {
    let x = t(&[0.1, 0.4, 0.9], &[3, 1]).requires_grad();
    let w1 = t(&[0.3, -0.2, 0.5, 0.7], &[1, 4]).requires_grad();
    let w2 = t(&[0.2, 0.1, -0.4, 0.6], &[4, 1]).requires_grad();
    let u = x.matmul(&w1.t().t()).tanh().matmul(&w2);
    let loss = u.sum().add(&w1.square().sum());
    (x, [w1, w2], loss)
}

#[test]
fn grad_runs_only_the_rules_on_a_path_to_the_inputs() {
    let (x, [w1, w2], loss) = pinn_like();
    let runs = |f: &dyn Fn()| {
        let before = test_hooks::rules_run();
        f();
        test_hooks::rules_run() - before
    };
    // loss = add(sum(matmul(tanh(matmul(x, t(t(w1)))), w2)), sum(square(w1)))
    let all = runs(&|| {
        loss.backward().unwrap();
    });
    assert_eq!(
        all, 9,
        "every node: add, 2 sums, square, 2 matmuls, tanh, 2 t"
    );
    let to_x = runs(&|| {
        grad(&loss, &[&x], plain()).unwrap();
    });
    assert_eq!(
        to_x, 5,
        "add, sum, matmul, tanh, matmul: no penalty, no views of w1"
    );
    let to_w2 = runs(&|| {
        grad(&loss, &[&w2], plain()).unwrap();
    });
    assert_eq!(to_w2, 3, "add, sum, matmul");
    // and the gradients agree with backward's
    let g = loss.backward().unwrap();
    let gx = grad(&loss, &[&x, &w1], plain()).unwrap();
    assert_eq!(gx[0].to_vec(), g.get(&x).unwrap().to_vec());
    assert_eq!(gx[1].to_vec(), g.get(&w1).unwrap().to_vec());
}

#[test]
fn gradients_of_intermediates() {
    // the gradient of a hidden activation h, where loss = Σ h·c
    let x = t(&[0.5, -0.5], &[2]).requires_grad();
    let h = x.tanh();
    let c = t(&[2.0, 3.0], &[2]);
    let loss = h.mul(&c).sum();
    let gh = grad(&loss, &[&h, &x], plain()).unwrap();
    assert_eq!(gh[0].to_vec(), vec![2.0, 3.0]);
    let dt = |v: f64| 1.0 - v.tanh().powi(2);
    let gx = gh[1].to_vec();
    assert!((gx[0] - 2.0 * dt(0.5)).abs() < 1e-15 && (gx[1] - 3.0 * dt(-0.5)).abs() < 1e-15);
}

#[test]
fn an_update_between_read_and_record_is_an_error_not_a_wrong_gradient() {
    // The forward pass of w·w reads w = 1; before the node is recorded, w is set
    // to 3. The gradient must not be 2·3 (a gradient at values the forward pass
    // never saw): the versions tell, and backward refuses.
    let w = Tensor::<f64>::full(&[4], 1.0).requires_grad();
    let w2 = w.clone();
    test_hooks::set(Point::BetweenReadAndRecord, move |op| {
        if op != "mul" {
            return false;
        }
        w2.assign(&Tensor::full(&[4], 3.0)).unwrap();
        true
    });
    let y = w.mul(&w);
    assert_eq!(
        y.to_vec(),
        vec![1.0; 4],
        "the forward pass read the old values"
    );
    let r = y.sum().backward();
    assert!(
        matches!(r, Err(Error::ModifiedInPlace { op: "mul", .. })),
        "{:?}",
        r.map(|g| g.get(&w).unwrap().to_vec())
    );
}

#[test]
fn an_update_during_a_rule_is_an_error_not_a_wrong_gradient() {
    // The walk checks mul's saved versions, then w changes before the rule reads
    // it: the check after the rule catches it.
    let w = Tensor::<f64>::full(&[4], 1.0).requires_grad();
    let y = w.mul(&w).sum();
    let w2 = w.clone();
    test_hooks::set(Point::BetweenCheckAndRule, move |op| {
        if op != "mul" {
            return false;
        }
        w2.assign(&Tensor::full(&[4], 3.0)).unwrap();
        true
    });
    let r = y.backward();
    assert!(
        matches!(r, Err(Error::ModifiedInPlace { op: "mul", .. })),
        "{:?}",
        r.map(|g| g.get(&w).unwrap().to_vec())
    );
}

#[test]
fn an_update_after_a_recorded_first_backward_makes_the_second_an_error() {
    let w = t(&[0.5, -1.0], &[2]).requires_grad();
    let x = t(&[1.0, 2.0], &[2]);
    let loss = x.mul(&w).tanh().sum();
    let g = grad(&loss, &[&w], recorded()).unwrap().remove(0);
    w.assign(&t(&[0.0, 0.0], &[2])).unwrap();
    assert!(matches!(
        grad(&g.sum(), &[&w], plain()),
        Err(Error::ModifiedInPlace { .. })
    ));
    // updating the recorded gradient itself in place has the same effect
    let w = t(&[0.5, -1.0], &[2]).requires_grad();
    let loss = w.powi(3).sum();
    let g = grad(&loss, &[&w], recorded()).unwrap().remove(0);
    let s = g.square().sum();
    g.assign(&t(&[9.0, 9.0], &[2])).unwrap();
    assert!(matches!(s.backward(), Err(Error::ModifiedInPlace { .. })));
}

#[test]
fn gradient_graphs_are_freed_when_their_tensors_drop() {
    let x = t(&[0.3, -0.8, 1.2], &[3]).requires_grad();
    let w = t(&[0.5, 0.25, -1.0], &[3]).requires_grad();
    let start = live_nodes::count();
    for _ in 0..10_000 {
        let y = x.mul(&w).tanh().softmax(0).log().sum();
        let g = grad(&y, &[&x, &w], recorded()).unwrap();
        let gg = grad(&g[0].square().sum(), &[&x, &w], recorded()).unwrap();
        let third = grad(&gg[1].sum(), &[&x], plain()).unwrap();
        assert_eq!(third[0].shape(), &[3]);
    }
    assert_eq!(
        live_nodes::count(),
        start,
        "every node made in the loop was freed"
    );
}

#[test]
fn fan_in_of_views_in_any_memory_order_sums_right() {
    // w reaches the loss through two transposed views and directly: the walk
    // sums gradients of the same memory order buffer to buffer, and adds into
    // whichever gradient nothing else holds.
    let w = t(&[0.5, -1.0, 2.0, 0.25, 1.5, -0.75], &[2, 3]).requires_grad();
    let a = t(&[1.0, 2.0, 3.0, -1.0, 0.5, 4.0], &[2, 3]);
    let b = t(&[0.0, 1.0, -2.0, 3.0, 1.0, 1.0], &[2, 3]);
    let fanned = a.matmul(&w.t()).tanh().sum() + b.matmul(&w.t()).tanh().sum() + w.square().sum();
    let g = fanned.backward().unwrap().get(&w).unwrap().to_vec();
    // the same function written with each term's gradient computed alone
    let mut want = vec![0.0; 6];
    for term in [
        a.matmul(&w.t()).tanh().sum(),
        b.matmul(&w.t()).tanh().sum(),
        w.square().sum(),
    ] {
        let gt = term.backward().unwrap().get(&w).unwrap().to_vec();
        want.iter_mut().zip(gt).for_each(|(s, v)| *s += v);
    }
    for (x, y) in g.iter().zip(&want) {
        assert!((x - y).abs() < 1e-14, "{g:?} vs {want:?}");
    }
}

#[test]
fn a_frozen_first_layer_costs_fewer_rules_and_gets_no_gradient() {
    use crate::nn::{Activation, Mlp, Module};
    use rand::{rngs::StdRng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(3);
    let model = Mlp::<f64>::new(&[4, 8, 8, 2], Activation::Tanh, &mut rng);
    let x = Tensor::<f64>::randn(&[5, 4], &mut rng);
    let params = model.named_parameters();
    let first: Vec<&Tensor<f64>> = params
        .iter()
        .filter(|(n, _)| n.starts_with("0."))
        .map(|(_, p)| p)
        .collect();
    assert_eq!(first.len(), 2, "{params:?}");
    let step = || {
        let before = test_hooks::rules_run();
        let grads = model.forward(&x).square().sum().backward().unwrap();
        (test_hooks::rules_run() - before, grads)
    };
    let (all, full) = step();
    first.iter().for_each(|p| p.set_requires_grad(false));
    let (frozen, part) = step();
    // the first layer's output is a constant to the rest of the graph: its
    // linear (one node: product and bias) and activation are not recorded
    assert!(frozen < all, "frozen {frozen} rules, trainable {all}");
    assert_eq!(all - frozen, 2, "linear and tanh of the first layer");
    for (name, p) in &params {
        match part.get(p) {
            None => assert!(name.starts_with("0."), "{name} lost its gradient"),
            Some(g) => {
                assert!(!name.starts_with("0."), "{name} is frozen");
                assert_eq!(g.to_vec(), full.get(p).unwrap().to_vec(), "{name}");
            }
        }
    }
    // thawed: the same identities get gradients again
    first.iter().for_each(|p| p.set_requires_grad(true));
    let (again, grads) = step();
    assert_eq!(again, all);
    for p in &first {
        assert_eq!(
            grads.get(p).unwrap().to_vec(),
            full.get(p).unwrap().to_vec()
        );
    }
}

#[test]
fn a_leaf_frozen_after_the_forward_pass_gets_no_gradient_from_it() {
    let w = t(&[2.0], &[1]).requires_grad();
    let b = t(&[5.0], &[1]).requires_grad();
    let y = (&w * &b).sum();
    w.set_requires_grad(false);
    let grads = y.backward().unwrap();
    assert!(grads.get(&w).is_none());
    assert_eq!(grads.get(&b).unwrap().item(), 2.0);
    let err = grad(&y, &[&w], plain()).unwrap_err();
    assert!(matches!(err, Error::UnusedInput { .. }), "{err:?}");
}

#[test]
#[should_panic(
    expected = "set_requires_grad: only a leaf can stop requiring a gradient; this tensor is the output of `mul_scalar`"
)]
fn only_leaves_can_be_frozen() {
    let w = t(&[2.0], &[1]).requires_grad();
    let y = &w * 3.0;
    y.set_requires_grad(true); // a no-op: it already needs one
    y.set_requires_grad(false);
}

#[test]
fn pieces_of_a_split_add_into_one_gradient() {
    // y's gradient comes from narrow/split pieces along a middle axis: one
    // piece used twice, one piece unused, one narrow overlapping two pieces.
    // The second and later pieces add into the gradient the first one made.
    let x = Tensor::<f64>::arange(24)
        .reshape(&[2, 6, 2])
        .mul_scalar(0.1)
        .requires_grad();
    let w = t(
        &(0..24).map(|i| (i % 5) as f64 - 2.0).collect::<Vec<_>>(),
        &[2, 6, 2],
    );
    let terms = |y: &Tensor<f64>| {
        let p = y.split(&[1, 2, 3], 1);
        let wp = w.split(&[1, 2, 3], 1);
        vec![
            p[0].mul(&wp[0]).sum(),
            p[2].square().sum(),
            p[0].sum(),
            y.narrow(1, 1, 3).tanh().sum(),
        ]
    };
    let before = super::walk::REGION_ADDS.with(|c| c.get());
    let y = x.mul_scalar(2.0);
    let total = terms(&y).into_iter().reduce(|a, b| a.add(&b)).unwrap();
    let g = total.backward().unwrap().get(&x).unwrap().to_vec();
    let adds = super::walk::REGION_ADDS.with(|c| c.get()) - before;
    assert!(adds >= 2, "region adds: {adds}");
    let mut want = vec![0.0; 24];
    for term in terms(&x.mul_scalar(2.0)) {
        let gt = term.backward().unwrap().get(&x).unwrap().to_vec();
        want.iter_mut().zip(gt).for_each(|(s, v)| *s += v);
    }
    for (a, b) in g.iter().zip(&want) {
        assert!((a - b).abs() < 1e-14, "{g:?} vs {want:?}");
    }
    // one piece alone (no earlier gradient to add into): only its rows get one
    let y = x.mul_scalar(2.0);
    let g = y.split(&[1, 2, 3], 1)[1].sum().backward().unwrap();
    let gx = g.get(&x).unwrap().to_vec();
    for (e, v) in gx.iter().enumerate() {
        let row = (e / 2) % 6;
        assert_eq!(*v, if (1..3).contains(&row) { 2.0 } else { 0.0 }, "{e}");
    }
}
