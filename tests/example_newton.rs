//! `examples/newton.rs` run as a test: Newton's method with Hessian-vector
//! products and conjugate gradient converges in a handful of steps where gradient
//! descent needs thousands, to the same minimiser, and its first step equals the
//! one from the explicit Hessian.

#[allow(dead_code)]
#[path = "../examples/newton.rs"]
mod newton;

use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{functional, Tensor};

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// The minimiser by Newton's method with the Hessian formed explicitly
/// (`functional::hessian`) and solved densely: an independent reference.
fn explicit_newton(o: &newton::Options) -> Vec<f64> {
    let (x, y) = newton::two_gaussians(o.samples, &mut StdRng::seed_from_u64(o.seed)).unwrap();
    let f = newton::objective(&x, &y, o.l2);
    let mut w = Tensor::<f64>::zeros(&[newton::FEATURES + 1]);
    for _ in 0..20 {
        let (_, g) = newton::value_and_grad(&f, &w).unwrap();
        let h = functional::hessian(&f, &w).unwrap();
        let p = newton::solve_dense(h.to_vec(), (-g).to_vec()).expect("H is invertible");
        w = &w + &Tensor::from_vec(p, w.shape()).unwrap();
    }
    w.to_vec()
}

#[test]
fn newton_converges_in_a_handful_of_steps_where_gradient_descent_needs_thousands() {
    // The default problem. Gradient descent is capped at 2200 steps to keep a
    // debug build quick: past its 2050th step, where its loss comes within 1e-6
    // of Newton's minimum, but short of |∇f| < 1e-10 (7686 steps).
    let o = newton::Options {
        gd_steps: 2200,
        ..Default::default()
    };
    let s = newton::run(&o).expect("the run succeeds");

    // Newton: |∇f| below 1e-6 in at most 10 steps, each a full step, with the
    // gradient norm falling quadratically at the end
    assert!(s.newton_converged, "{:?}", s.newton);
    let steps = s.newton.len() - 1;
    assert!((2..=10).contains(&steps), "{:?}", s.newton);
    let last = s.newton.last().unwrap();
    assert!(last.grad_norm < 1e-6 && last.grad_norm < o.tol, "{last:?}");
    for (a, b) in s.newton.iter().zip(&s.newton[1..]) {
        assert!(b.loss <= a.loss, "{:?}", s.newton); // each step descends
        assert!(b.grad_norm < a.grad_norm, "{:?}", s.newton);
    }
    let g = |k: usize| s.newton[steps - k].grad_norm;
    assert!(g(1) < 1e-3 * g(2), "{:?}", s.newton); // quadratic: digits double
                                                   // CG used at most a few more hvps than the 6 weights (exact arithmetic: 6)
    for step in &s.newton[..steps] {
        assert!((1..=12).contains(&step.cg_iterations), "{step:?}");
        assert_eq!(step.step_length, 1.0, "{step:?}");
    }
    assert_eq!(s.newton[steps].cg_iterations, 0);
    assert!((s.newton[0].loss - std::f64::consts::LN_2).abs() < 1e-12); // w = 0: log 2

    // the gradient at Newton's weights, computed afresh, is small
    let (x, y) = newton::two_gaussians(o.samples, &mut StdRng::seed_from_u64(o.seed)).unwrap();
    let f = newton::objective(&x, &y, o.l2);
    let w = Tensor::from_vec(s.newton_weights.clone(), &[6]).unwrap();
    let (loss, grad) = newton::value_and_grad(&f, &w).unwrap();
    assert!((loss - s.newton_loss).abs() < 1e-12);
    assert!(grad.to_vec().iter().all(|g| g.abs() < 1e-8), "{grad}");

    // the first step by hvp + CG is the explicit Hessian's
    assert_eq!(s.first_step_cg.len(), 6);
    let d = max_diff(&s.first_step_cg, &s.first_step_explicit);
    assert!(
        d < 1e-8,
        "{d:e}: {:?} vs {:?}",
        s.first_step_cg,
        s.first_step_explicit
    );
    assert!(s.first_step_cg.iter().any(|v| v.abs() > 0.1)); // not a trivial step

    // Newton with the explicit Hessian lands on the same weights
    let reference = explicit_newton(&o);
    let d = max_diff(&s.newton_weights, &reference);
    assert!(d < 1e-10, "{d:e}: {:?} vs {reference:?}", s.newton_weights);

    // gradient descent at 1/L needs more than 100× as many steps to bring its
    // loss within 1e-6 of the minimum, and has not reached |∇f| < 1e-10 when capped
    assert!(s.gd_lr > 0.0 && s.gd_lr.is_finite());
    let to_loss = s
        .gd_steps_to_loss
        .expect("GD gets within 1e-6 of the minimum");
    assert!(to_loss >= 100 * steps, "{to_loss} vs {steps}");
    assert_eq!((s.gd_steps_to_tol, s.gd_steps_run), (None, 2200));
    assert!(s.gd_grad_norm > o.tol);
    // ... on its way to the same minimiser, never below it
    let (gd_loss, _) =
        newton::value_and_grad(&f, &Tensor::from_vec(s.gd_weights.clone(), &[6]).unwrap()).unwrap();
    assert!(
        gd_loss >= s.newton_loss && gd_loss - s.newton_loss < newton::LOSS_GAP,
        "{gd_loss} vs {}",
        s.newton_loss
    );
    let d = max_diff(&s.newton_weights, &s.gd_weights);
    assert!(
        d < 2e-2,
        "{d:e}: {:?} vs {:?}",
        s.newton_weights,
        s.gd_weights
    );
}

#[test]
fn gradient_descent_run_to_the_end_reaches_newtons_weights() {
    // A smaller problem (100 points, a stronger L2 term), so that gradient
    // descent reaches |∇f| < 1e-10 quickly even in a debug build: it agrees
    // with Newton's weights, and still needs far more steps.
    let o = newton::Options {
        seed: 2,
        samples: 100,
        l2: 0.05,
        gd_steps: 5000,
        ..Default::default()
    };
    let s = newton::run(&o).expect("the run succeeds");
    assert!(s.newton_converged, "{:?}", s.newton);
    let steps = s.newton.len() - 1;
    assert!(steps <= 10, "{:?}", s.newton);
    let n = s.gd_steps_to_tol.expect("GD reaches |∇f| < 1e-10");
    assert!(n >= 10 * steps, "{n} vs {steps}");
    assert_eq!(n, s.gd_steps_run);
    assert!(s.gd_grad_norm < o.tol);
    let d = max_diff(&s.newton_weights, &s.gd_weights);
    assert!(
        d < 1e-8,
        "{d:e}: {:?} vs {:?}",
        s.newton_weights,
        s.gd_weights
    );
}

#[test]
fn without_l2_the_overlapping_classes_still_have_a_minimiser_and_capped_descent_says_so() {
    // No L2 term: the loss has a minimiser only because no plane separates the
    // classes. Newton finds it; gradient descent, capped at 50 steps, does not.
    let o = newton::Options {
        seed: 5,
        samples: 200,
        l2: 0.0,
        gd_steps: 50,
        ..Default::default()
    };
    let s = newton::run(&o).expect("the run succeeds");
    assert!(s.newton_converged, "{:?}", s.newton);
    assert!(s.newton.len() - 1 <= 10, "{:?}", s.newton);
    assert!(s
        .newton_weights
        .iter()
        .all(|w| w.is_finite() && w.abs() < 20.0));
    assert!(s.newton_loss > 0.2, "{}", s.newton_loss); // the classes overlap
    assert_eq!((s.gd_steps_to_tol, s.gd_steps_run), (None, 50));
    assert_eq!(s.gd_steps_to_loss, None);
    let d = max_diff(&s.first_step_cg, &s.first_step_explicit);
    assert!(d < 1e-8, "{d:e}");
    let reference = explicit_newton(&o);
    assert!(max_diff(&s.newton_weights, &reference) < 1e-9);
}

#[test]
fn conjugate_gradient_and_gaussian_elimination_solve_a_quadratic() {
    // f(w) = ½ wᵀ·A·w with A symmetric positive definite: H = A everywhere
    let a = Tensor::<f64>::from_vec(vec![4.0, 1.0, 0.5, 1.0, 3.0, -1.0, 0.5, -1.0, 2.0], &[3, 3])
        .unwrap();
    let f = |w: &Tensor<f64>| (w * &a.matmul(w)).sum() * 0.5;
    let b = Tensor::<f64>::from_vec(vec![1.0, -2.0, 0.5], &[3]).unwrap();
    let w = Tensor::<f64>::zeros(&[3]);
    let (p, iterations) = newton::conjugate_gradient(f, &w, &b, 1e-12, 10).unwrap();
    assert!(iterations <= 4, "{iterations}");
    let exact = newton::solve_dense(a.to_vec(), b.to_vec()).unwrap();
    assert!(max_diff(&p.to_vec(), &exact) < 1e-12, "{p} vs {exact:?}");
    // A·x = b
    let ax = a.matmul(&Tensor::from_vec(exact, &[3]).unwrap()).to_vec();
    assert!(max_diff(&ax, &b.to_vec()) < 1e-12);
    // a singular matrix has no solution
    assert_eq!(
        newton::solve_dense(vec![1.0, 2.0, 2.0, 4.0], vec![1.0, 1.0]),
        None
    );
}

#[test]
fn data_is_seeded_balanced_with_a_bias_column_and_options_parse() {
    let (x, y) = newton::two_gaussians(100, &mut StdRng::seed_from_u64(3)).unwrap();
    let (x2, _) = newton::two_gaussians(100, &mut StdRng::seed_from_u64(3)).unwrap();
    let (x3, _) = newton::two_gaussians(100, &mut StdRng::seed_from_u64(4)).unwrap();
    assert_eq!((x.shape(), y.shape()), (&[100, 6][..], &[100][..]));
    assert_eq!(x.to_vec(), x2.to_vec());
    assert_ne!(x.to_vec(), x3.to_vec());
    assert_eq!(y.to_vec().iter().sum::<f64>(), 50.0);
    assert!(x.to_vec().chunks(6).all(|row| row[5] == 1.0));

    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let o = newton::Options::from_args(args(&["--seed", "9", "--l2=0.01", "--gd-steps", "7"]))
        .unwrap()
        .unwrap();
    assert_eq!((o.seed, o.l2, o.gd_steps, o.samples), (9, 0.01, 7, 400));
    assert!(newton::Options::from_args(args(&["--help"]))
        .unwrap()
        .is_none());
    assert_eq!(
        newton::Options::from_args(args(&["--l2", "-1"])).unwrap_err(),
        "--l2: expected a number ≥ 0, got '-1'"
    );
    assert_eq!(
        newton::Options::from_args(args(&["--fast"])).unwrap_err(),
        "--fast needs a value"
    );
    assert_eq!(
        newton::Options::from_args(args(&["fast"])).unwrap_err(),
        "unexpected argument 'fast'"
    );
}
