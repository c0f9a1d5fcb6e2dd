//! Custom differentiable functions (`Function`, `Tensor::apply`), hooks
//! (`register_hook`) and retained intermediate gradients (`retain_grad`),
//! through the public API.

#![allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in gradchecks

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ferrograd::autograd::{with_slices, BackwardCtx, ForwardCtx, Function};
use ferrograd::gradcheck::{gradcheck, gradgradcheck};
use ferrograd::nn::{Linear, Module};
use ferrograd::optim::{Optimizer, Sgd, SgdConfig};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{grad, Error, GradOptions, Result, Tensor};

type Grads = Result<Vec<Option<Tensor<f64>>>>;

/// `x·y` with its own rule, saving both inputs (two inputs, both saved).
#[derive(Clone)]
struct MyMul;

impl Function<f64> for MyMul {
    fn name(&self) -> &'static str {
        "my_mul"
    }
    fn forward(&self, ctx: &mut ForwardCtx<f64>, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        ctx.save_for_backward(&[x[0], x[1]]);
        let out = with_slices(&[x[0], x[1]], |s| {
            s[0].iter()
                .zip(s[1])
                .map(|(a, b)| a * b)
                .collect::<Vec<_>>()
        });
        Tensor::from_vec(out, x[0].shape())
    }
    fn backward(&self, ctx: &BackwardCtx<'_, f64>, g: &Tensor<f64>) -> Grads {
        let s = ctx.saved();
        Ok(vec![
            ctx.needs_input_grad(0).then(|| g * &s[1]),
            ctx.needs_input_grad(1).then(|| g * &s[0]),
        ])
    }
}

/// `exp(x)` whose rule reads the output.
#[derive(Clone)]
struct MyExp;

impl Function<f64> for MyExp {
    fn name(&self) -> &'static str {
        "my_exp"
    }
    fn forward(&self, ctx: &mut ForwardCtx<f64>, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        ctx.save_output();
        Ok(x[0].exp())
    }
    fn backward(&self, ctx: &BackwardCtx<'_, f64>, g: &Tensor<f64>) -> Grads {
        Ok(vec![Some(g * ctx.output())])
    }
}

/// `log(1 + exp(x))` on raw slices, stable for any x; backward sigmoid(x).
#[derive(Clone)]
struct StableSoftplus;

impl Function<f64> for StableSoftplus {
    fn name(&self) -> &'static str {
        "stable_softplus"
    }
    fn forward(&self, ctx: &mut ForwardCtx<f64>, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        ctx.save_for_backward(&[x[0]]);
        let out = with_slices(&[x[0]], |s| {
            s[0].iter()
                .map(|&v| v.max(0.0) + (-v.abs()).exp().ln_1p())
                .collect::<Vec<_>>()
        });
        Tensor::from_vec(out, x[0].shape())
    }
    fn backward(&self, ctx: &BackwardCtx<'_, f64>, g: &Tensor<f64>) -> Grads {
        Ok(vec![Some(g * &ctx.saved()[0].sigmoid())])
    }
}

fn leaf(v: Vec<f64>, shape: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(v, shape).unwrap().requires_grad()
}

#[test]
fn custom_functions_pass_gradcheck_and_gradgradcheck() {
    let a = leaf(vec![0.3, -1.2, 2.0, 0.7], &[2, 2]);
    let b = leaf(vec![1.5, 0.4, -0.8, -2.2], &[2, 2]);
    let f = |t: &[Tensor<f64>]| Tensor::apply(&MyMul, &[&t[0], &t[1]]).tanh();
    gradcheck(f, &[a.clone(), b.clone()]).unwrap();
    gradgradcheck(f, &[a.clone(), b.clone()]).unwrap();

    let g = |t: &[Tensor<f64>]| Tensor::apply(&MyExp, &[&t[0]]).sin();
    gradcheck(g, &[a.clone()]).unwrap();
    gradgradcheck(g, &[a.clone()]).unwrap();

    let h = |t: &[Tensor<f64>]| Tensor::apply(&StableSoftplus, &[&t[0]]).square();
    gradcheck(h, &[b.clone()]).unwrap();
    gradgradcheck(h, &[b]).unwrap();
}

#[test]
fn custom_function_values_match_the_builtin_ops() {
    let x = leaf(vec![-30.0, -1.0, 0.0, 0.5, 30.0], &[5]);
    let mine = Tensor::apply(&StableSoftplus, &[&x]);
    let builtin = x.softplus();
    for (m, b) in mine.to_vec().iter().zip(builtin.to_vec()) {
        assert!((m - b).abs() < 1e-14, "{m} vs {b}");
    }
    let gm = mine.sum().backward().unwrap().get(&x).unwrap().to_vec();
    let gb = builtin.sum().backward().unwrap().get(&x).unwrap().to_vec();
    for (m, b) in gm.iter().zip(&gb) {
        assert!((m - b).abs() < 1e-14, "{m} vs {b}");
    }
    // far outside exp's range the raw-slice form stays finite
    let big = leaf(vec![-1000.0, 1000.0], &[2]);
    assert_eq!(
        Tensor::apply(&StableSoftplus, &[&big]).to_vec(),
        vec![0.0, 1000.0]
    );
}

#[test]
fn second_derivative_through_a_custom_rule() {
    // y = my_exp(x)·x; dy/dx = e^x (1 + x), d²y/dx² = e^x (2 + x)
    let x = Tensor::<f64>::scalar(0.7).requires_grad();
    let y = &Tensor::apply(&MyExp, &[&x]) * &x;
    let opts = GradOptions {
        create_graph: true,
        ..Default::default()
    };
    let dy = grad(&y, &[&x], opts).unwrap().remove(0);
    assert!((dy.item() - 0.7f64.exp() * 1.7).abs() < 1e-12);
    let d2 = grad(&dy, &[&x], GradOptions::default()).unwrap().remove(0);
    assert!((d2.item() - 0.7f64.exp() * 2.7).abs() < 1e-12);
}

#[test]
fn name_shows_in_display_and_in_errors() {
    let a = leaf(vec![1.0, 2.0], &[2]);
    let y = Tensor::apply(&MyMul, &[&a, &a]);
    assert_eq!(y.op_name(), Some("my_mul"));
    assert!(format!("{y}").contains("grad_fn=<my_mul>"), "{y}");
    // a saved input updated in place: the version check names the function
    let loss = y.sum();
    a.assign(&Tensor::from_vec(vec![5.0, 6.0], &[2]).unwrap())
        .unwrap();
    match loss.backward() {
        Err(Error::ModifiedInPlace { op, which, .. }) => {
            assert_eq!(op, "my_mul");
            assert_eq!(which, "saved tensor 0");
        }
        other => panic!("expected ModifiedInPlace, got {other:?}"),
    }
    // the saved output, too
    let x = leaf(vec![0.0], &[1]);
    let e = Tensor::apply(&MyExp, &[&x]);
    let loss = e.sum();
    e.assign(&Tensor::from_vec(vec![9.0], &[1]).unwrap())
        .unwrap();
    let err = loss.backward().unwrap_err();
    assert!(
        matches!(err, Error::ModifiedInPlace { op: "my_exp", ref which, .. } if which == "output"),
        "{err}"
    );
}

#[test]
fn a_rule_returning_the_wrong_gradients_is_an_error() {
    #[derive(Clone)]
    struct Bad(usize);
    impl Function<f64> for Bad {
        fn name(&self) -> &'static str {
            "bad"
        }
        fn forward(&self, _: &mut ForwardCtx<f64>, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
            Ok(x[0] * 2.0)
        }
        fn backward(&self, _: &BackwardCtx<'_, f64>, g: &Tensor<f64>) -> Grads {
            match self.0 {
                0 => Ok(vec![]),
                1 => Ok(vec![Some(Tensor::zeros(&[3]))]),
                _ => Err(Error::NoGraph),
            }
            .inspect(|_| {
                let _ = g;
            })
        }
    }
    let x = leaf(vec![1.0, 2.0], &[2]);
    let e0 = Tensor::apply(&Bad(0), &[&x]).sum().backward().unwrap_err();
    assert_eq!(
        e0.to_string(),
        "bad: backward returned 0 gradients for 1 inputs"
    );
    let e1 = Tensor::apply(&Bad(1), &[&x]).sum().backward().unwrap_err();
    assert_eq!(
        e1.to_string(),
        "bad: backward returned a gradient of shape [3] for input 0 of shape [2]"
    );
    let e2 = Tensor::apply(&Bad(2), &[&x]).sum().backward().unwrap_err();
    assert!(matches!(e2, Error::NoGraph), "the rule's own error: {e2}");
}

#[test]
fn broadcast_gradients_are_summed_down_and_unneeded_inputs_skipped() {
    /// `x + b` with b broadcast: the rule returns g for both.
    #[derive(Clone)]
    struct AddBias(Arc<AtomicUsize>);
    impl Function<f64> for AddBias {
        fn name(&self) -> &'static str {
            "add_bias"
        }
        fn forward(&self, _: &mut ForwardCtx<f64>, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
            Ok(x[0] + x[1])
        }
        fn backward(&self, ctx: &BackwardCtx<'_, f64>, g: &Tensor<f64>) -> Grads {
            if ctx.needs_input_grad(0) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
            Ok(vec![Some(g.clone()), Some(g.clone())])
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let x = Tensor::<f64>::ones(&[3, 2]); // no gradient wanted
    let b = leaf(vec![0.5, -0.5], &[2]);
    let y = Tensor::apply(&AddBias(calls.clone()), &[&x, &b]);
    let grads = (&y * &y).sum().backward().unwrap();
    assert_eq!(grads.get(&b).unwrap().to_vec(), vec![9.0, 3.0]); // Σ 2(1 ± 0.5) over 3 rows
    assert!(grads.get(&x).is_none());
    assert_eq!(calls.load(Ordering::Relaxed), 0, "x needs no gradient");
}

#[test]
fn not_recorded_without_a_gradient_or_under_no_grad() {
    let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2]).unwrap();
    let y = Tensor::apply(&MyExp, &[&x]);
    assert!(!y.needs_grad() && y.is_leaf());
    let w = leaf(vec![1.0], &[1]);
    let z = {
        let _g = ferrograd::no_grad();
        Tensor::apply(&MyExp, &[&w])
    };
    assert!(!z.needs_grad());
    // the forward's own ops are not recorded either: they run with recording off
    #[derive(Clone)]
    struct SeesMode(Arc<Mutex<Vec<bool>>>);
    impl Function<f64> for SeesMode {
        fn name(&self) -> &'static str {
            "sees_mode"
        }
        fn forward(&self, _: &mut ForwardCtx<f64>, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
            self.0.lock().unwrap().push(ferrograd::is_grad_enabled());
            let inner = x[0] * 2.0;
            assert!(!inner.needs_grad(), "an op inside forward was recorded");
            Ok(inner)
        }
        fn backward(&self, _: &BackwardCtx<'_, f64>, g: &Tensor<f64>) -> Grads {
            Ok(vec![Some(g * 2.0)])
        }
    }
    let modes = Arc::new(Mutex::new(Vec::new()));
    let y = Tensor::apply(&SeesMode(modes.clone()), &[&w]);
    assert_eq!(*modes.lock().unwrap(), [false]);
    assert!(
        ferrograd::is_grad_enabled(),
        "recording is back on after apply"
    );
    assert_eq!(y.op_name(), Some("sees_mode"));
    // one recorded op over one leaf: the forward's `* 2.0` left no node behind
    assert!(y
        .to_dot(&[])
        .starts_with("// ferrograd graph: 1 ops, 1 leaves"));
    assert_eq!(y.sum().backward().unwrap().get(&w).unwrap().to_vec(), [2.0]);
}

#[test]
fn try_apply_returns_the_forward_error() {
    #[derive(Clone)]
    struct NeedsTwo;
    impl Function<f64> for NeedsTwo {
        fn name(&self) -> &'static str {
            "needs_two"
        }
        fn forward(&self, _: &mut ForwardCtx<f64>, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
            x[0].try_matmul(x[1])
        }
        fn backward(&self, _: &BackwardCtx<'_, f64>, _: &Tensor<f64>) -> Grads {
            Ok(vec![None, None])
        }
    }
    let a = Tensor::<f64>::zeros(&[2, 3]);
    let e = Tensor::try_apply(&NeedsTwo, &[&a, &a]).unwrap_err();
    assert!(
        matches!(e, Error::ShapeMismatch { op: "matmul", .. }),
        "{e}"
    );
}

// ----- hooks -----

#[test]
fn a_hook_sees_the_summed_gradient_once_and_can_replace_it() {
    let x = leaf(vec![1.0, 2.0], &[2]);
    let h = &x * 2.0;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let _handle = h
        .register_hook(move |g| {
            s.lock().unwrap().push(g.to_vec());
            Some(g * 10.0)
        })
        .unwrap();
    // h used twice: d/dh (h·h + h) = 2h + 1 = [5, 9]
    let loss = (&h * &h + &h).sum();
    let grads = loss.backward().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![vec![5.0, 9.0]]);
    assert_eq!(grads.get(&x).unwrap().to_vec(), vec![100.0, 180.0]);
}

#[test]
fn hooks_chain_in_order_and_a_handle_removes_one() {
    let x = leaf(vec![3.0], &[1]);
    let y = &x * 1.0;
    let add = y.register_hook(|g| Some(g + 1.0)).unwrap();
    let _double = y.register_hook(|g| Some(g * 2.0)).unwrap();
    let g = |y: &Tensor<f64>| y.sum().backward().unwrap().get(&x).unwrap().item();
    assert_eq!(g(&y), 4.0); // (1 + 1)·2
    assert!(add.remove());
    assert_eq!(g(&y), 2.0);
    // a hook on a leaf changes what backward returns for it
    let _clip = x.register_hook(|g| Some(g.clamp(-0.5, 0.5))).unwrap();
    assert_eq!(g(&y), 0.5);
    // a hook that returns None only observes
    let z = leaf(vec![1.0], &[1]);
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    z.register_hook(move |_| {
        c.fetch_add(1, Ordering::Relaxed);
        None
    })
    .unwrap();
    let gz = (&z * 4.0).sum().backward().unwrap();
    assert_eq!(gz.get(&z).unwrap().item(), 4.0);
    assert_eq!(count.load(Ordering::Relaxed), 1);
}

#[test]
fn hooks_fire_in_grad_and_under_create_graph() {
    let x = Tensor::<f64>::scalar(2.0).requires_grad();
    let y = &x * &x; // dy/dx = 2x
    let _h = y.register_hook(|g| Some(g * 3.0)).unwrap();
    let z = &y * 1.0;
    let opts = GradOptions {
        create_graph: true,
        ..Default::default()
    };
    let dz = grad(&z, &[&x], opts).unwrap().remove(0);
    assert_eq!(dz.item(), 12.0); // 3 · 2x
    let d2 = grad(&dz, &[&x], GradOptions::default()).unwrap().remove(0);
    assert_eq!(d2.item(), 6.0);
}

#[test]
fn a_hook_that_changes_the_gradient_changes_the_optimizer_update() {
    let mut rng = StdRng::seed_from_u64(0);
    let fc = Linear::<f64>::new(3, 2, true, &mut rng);
    let x = Tensor::<f64>::from_vec(vec![0.5, -1.0, 2.0], &[1, 3]).unwrap();
    let w0 = fc.weight().to_vec();
    // per-layer gradient reversal on the weight
    let _h = fc.weight().register_hook(|g| Some(-g)).unwrap();
    let loss = fc.forward(&x).sum();
    let grads = loss.backward().unwrap();
    let mut opt = Sgd::new(
        fc.parameters(),
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    );
    opt.step(&grads).unwrap();
    // d loss / d W[i][j] = x[j]; reversed, SGD moves W by +0.1·x[j]
    let w1 = fc.weight().to_vec();
    for i in 0..2 {
        for j in 0..3 {
            let want = w0[i * 3 + j] + 0.1 * x.to_vec()[j];
            assert!((w1[i * 3 + j] - want).abs() < 1e-15);
        }
    }
}

#[test]
fn hook_errors_and_misuse() {
    let x = leaf(vec![1.0, 2.0], &[2]);
    let y = &x * 2.0;
    y.register_hook(|_| Some(Tensor::zeros(&[3]))).unwrap();
    let e = y.sum().backward().unwrap_err();
    assert_eq!(
        e.to_string(),
        "register_hook: a hook on a tensor of shape [2] returned a gradient of shape [3]"
    );
    let c = Tensor::<f64>::ones(&[2]);
    assert!(c.register_hook(|_| None).is_err());
    assert!(c.retain_grad().is_err());
}

#[test]
fn a_hook_capturing_its_own_tensor_is_freed_by_remove() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let x = leaf(vec![1.0], &[1]);
    let y = &x * 2.0;
    let me = y.clone();
    let flag = Flag(dropped.clone());
    let handle = y
        .register_hook(move |_| {
            let _keep = (&me, &flag);
            None
        })
        .unwrap();
    drop(y);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        0,
        "the table keeps the hook"
    );
    assert!(handle.remove());
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "remove drops the hook");

    // a hook that does not capture its tensor goes away with the tensor
    let dropped2 = Arc::new(AtomicUsize::new(0));
    let flag2 = Flag(dropped2.clone());
    let z = &x * 3.0;
    let handle2 = z
        .register_hook(move |_| {
            let _keep = &flag2;
            None
        })
        .unwrap();
    drop(z);
    assert_eq!(dropped2.load(Ordering::SeqCst), 1);
    assert!(!handle2.remove(), "already gone with its tensor");
}

// ----- retain_grad -----

#[test]
fn retain_grad_keeps_intermediate_gradients_apart_from_the_leaves() {
    let x = leaf(vec![1.0, -2.0], &[2]);
    let w = leaf(vec![0.5, 3.0], &[2]);
    let h = &x * &w; // [0.5, -6]
    let r = h.relu(); // [0.5, 0]
    h.retain_grad().unwrap();
    r.retain_grad().unwrap();
    let not_retained = &r * 1.0;
    let loss = (&not_retained * &not_retained).sum(); // d/dr = 2r
    let grads = loss.backward().unwrap();
    assert_eq!(grads.get(&r).unwrap().to_vec(), vec![1.0, 0.0]);
    assert_eq!(grads.get(&h).unwrap().to_vec(), vec![1.0, 0.0]);
    assert!(grads.get(&not_retained).is_none());
    assert_eq!(grads.len(), 2, "x and w only");
    let gn = grads.global_norm();
    // ‖(d/dx, d/dw)‖ = ‖(0.5, 0, 1, 0)‖
    assert!((gn - (0.25f64 + 1.0).sqrt()).abs() < 1e-15);
    assert_eq!(grads.get(&x).unwrap().to_vec(), vec![0.5, 0.0]);
    // retain_grad on a leaf is allowed and changes nothing
    x.retain_grad().unwrap();
    assert_eq!(loss.backward().unwrap().len(), 2);
}
