//! Newton's method without the Hessian: Hessian-vector products and conjugate
//! gradient on a logistic regression.
//!
//! Gradient descent steps along −∇f, whatever the shape of the valley it is in:
//! along a steep direction the step must be small or it overshoots, and along a
//! flat one that same small step barely moves, so it needs many steps (about the
//! condition number of the Hessian times the digits wanted). Newton's method
//! models f near w by its second-order Taylor expansion
//!
//! ```text
//! f(w + p) ≈ f(w) + ∇f·p + ½ pᵀ·H·p,      H = ∇²f(w) (the Hessian)
//! ```
//!
//! and jumps to the minimum of that model: the step p solves `H·p = −∇f`. Near
//! the minimum it converges quadratically (the number of correct digits doubles
//! at each step), whatever the conditioning: a handful of steps.
//!
//! Forming H costs n backward passes and n² numbers for n weights, and solving
//! with it n³ operations: fine for the 6 weights here, impossible for a network's
//! millions. But the conjugate-gradient method solves `H·p = −∇f` touching H only
//! through products `H·v`, and a Hessian-vector product costs a few gradients
//! (one forward pass, a recorded backward pass, and one backward pass through it:
//! `H·v = ∇(∇f·v)`), whatever n is. That is [`functional::hvp`]. CG needs at most
//! n of them in exact arithmetic (rounding costs a few more), and far fewer when
//! H's eigenvalues cluster, or when a rough step is good enough ("Hessian-free" or
//! truncated Newton).
//!
//! The example generates two overlapping Gaussian classes in 5-D (no plane
//! separates them, so the logistic loss has a minimiser; a small L2 term makes it
//! strictly convex as well), minimises the mean binary cross-entropy by Newton
//! with hvp + CG, then by gradient descent from the same start, and checks once
//! that the hvp + CG step equals the one from the explicit Hessian
//! ([`functional::hessian`]) solved by Gaussian elimination.
//!
//! Run it with `cargo run --release --example newton`; options after `--`:
//! `--seed N`, `--samples N`, `--l2 X`, `--gd-steps N` (`--help` lists them).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{functional, grad, loss, no_grad, Error, GradOptions, Tensor};

/// Everything a run can be told.
#[derive(Clone, Debug)]
pub struct Options {
    /// Seeds the data.
    pub seed: u64,
    /// Points generated (half of each class).
    pub samples: usize,
    /// Strength λ of the L2 term λ·|w|²/2.
    pub l2: f64,
    /// Newton stops when the gradient norm is below this.
    pub tol: f64,
    /// Newton steps at most.
    pub newton_steps: usize,
    /// Gradient-descent steps at most.
    pub gd_steps: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 1,
            samples: 400,
            l2: 1e-3,
            tol: 1e-10,
            newton_steps: 20,
            gd_steps: 20_000,
        }
    }
}

/// The command-line help.
pub const USAGE: &str = "\
usage: cargo run --release --example newton -- [options]

  --seed N       seed of the data set (default 1)
  --samples N    points generated, half of each class (default 400)
  --l2 X         strength λ of the L2 term λ·|w|²/2 (default 0.001)
  --gd-steps N   gradient-descent steps at most (default 20000)
  --help         this text";

impl Options {
    /// Parses the command-line arguments (without the program name), each option as
    /// `--name value` or `--name=value`. `Ok(None)` means `--help`.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, String> {
        let mut o = Options::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Ok(None);
            }
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            if !name.starts_with("--") {
                return Err(format!("unexpected argument '{arg}'"));
            }
            let Some(value) = inline.or_else(|| args.next()) else {
                return Err(format!("{name} needs a value"));
            };
            let bad = |what: &str| format!("{name}: expected {what}, got '{value}'");
            let count = |min: usize| {
                value
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n >= min)
                    .ok_or_else(|| bad(&format!("a number ≥ {min}")))
            };
            match name.as_str() {
                "--seed" => o.seed = value.parse().map_err(|_| bad("a whole number"))?,
                "--samples" => o.samples = count(2)?,
                "--l2" => {
                    o.l2 = value
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v >= 0.0)
                        .ok_or_else(|| bad("a number ≥ 0"))?
                }
                "--gd-steps" => o.gd_steps = count(0)?,
                _ => return Err(format!("unknown option '{name}'")),
            }
        }
        Ok(Some(o))
    }
}

/// Features per point (the weights are one more: the bias).
pub const FEATURES: usize = 5;

/// `n` points in 5-D, alternating classes 0 and 1, as `(X, y)`: `X` is `[n, 6]`
/// with a last column of ones (so that the bias is the last weight), `y` is `[n]`
/// of 0s and 1s. Each class is a Gaussian; the two means differ by less than the
/// spread, so the classes overlap. The features have different scales and are
/// not centred, as raw data often is: that is what makes gradient descent slow.
pub fn two_gaussians(n: usize, rng: &mut StdRng) -> Result<(Tensor<f64>, Tensor<f64>), Error> {
    const SCALE: [f64; FEATURES] = [1.0, 3.0, 0.5, 2.0, 0.3];
    const CENTRE: [f64; FEATURES] = [1.0, -2.0, 0.5, 3.0, 0.0];
    // class 1's mean minus class 0's, in units of each feature's spread
    const SHIFT: [f64; FEATURES] = [0.6, -0.4, 0.5, 0.3, 0.8];
    let noise = Tensor::<f64>::randn(&[n, FEATURES], rng).to_vec();
    let mut x = Vec::with_capacity(n * (FEATURES + 1));
    let mut y = Vec::with_capacity(n);
    for (i, z) in noise.chunks(FEATURES).enumerate() {
        let class = (i % 2) as f64;
        let side = class - 0.5; // −½ or +½
        for j in 0..FEATURES {
            x.push(CENTRE[j] + SCALE[j] * (z[j] + side * SHIFT[j]));
        }
        x.push(1.0);
        y.push(class);
    }
    Ok((
        Tensor::from_vec(x, &[n, FEATURES + 1])?,
        Tensor::from_vec(y, &[n])?,
    ))
}

/// The objective, f(w) = mean BCE(X·w, y) + λ·|w|²/2, as a closure of the kind
/// the [`functional`] transforms take.
pub fn objective(
    x: &Tensor<f64>,
    y: &Tensor<f64>,
    l2: f64,
) -> impl Fn(&Tensor<f64>) -> Tensor<f64> {
    let (x, y) = (x.clone(), y.clone());
    move |w: &Tensor<f64>| {
        let logits = x.matmul(w); // [n, 6]·[6] = [n]
        let bce = loss::bce_with_logits(&logits, &y).expect("logits and labels are both [n]");
        bce + w.square().sum() * (0.5 * l2)
    }
}

/// `(f(w), ∇f(w))`: one forward and one backward pass.
pub fn value_and_grad(
    f: impl Fn(&Tensor<f64>) -> Tensor<f64>,
    w: &Tensor<f64>,
) -> Result<(f64, Tensor<f64>), Error> {
    let leaf = w.detach().requires_grad();
    let value = f(&leaf);
    let g = grad(&value, &[&leaf], GradOptions::default())?.remove(0);
    Ok((value.item(), g))
}

fn dot(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    (a * b).sum().item()
}

fn norm(a: &Tensor<f64>) -> f64 {
    dot(a, a).sqrt()
}

/// Solves `H·p = b` by conjugate gradient, where `H` is the Hessian of `f` at `w`,
/// seen only through Hessian-vector products. Stops when the residual
/// `|b − H·p|` is below `rel_tol·|b|` or after `max_iter` products; returns `p`
/// and the number of products used.
///
/// CG builds p from directions that are conjugate (`dᵢᵀ·H·dⱼ = 0`): each new one
/// is the residual made conjugate to the previous direction (and so, it turns
/// out, to all earlier ones), and the step along
/// it is exact, so the error in the H-norm never grows and, in exact
/// arithmetic, vanishes after n steps. It needs H symmetric positive definite,
/// as a strictly convex f's Hessian is; on non-positive curvature it stops with
/// what it has (a Newton step would head for a saddle or a maximum there).
pub fn conjugate_gradient(
    f: impl Fn(&Tensor<f64>) -> Tensor<f64>,
    w: &Tensor<f64>,
    b: &Tensor<f64>,
    rel_tol: f64,
    max_iter: usize,
) -> Result<(Tensor<f64>, usize), Error> {
    let mut p = Tensor::zeros(b.shape());
    let mut r = b.clone(); // the residual b − H·p, at p = 0
    let mut d = r.clone(); // the search direction
    let mut rr = dot(&r, &r);
    let stop = rel_tol * rr.sqrt();
    let mut products = 0;
    while rr.sqrt() > stop && products < max_iter {
        // H·d, without H: a forward pass, a recorded backward pass, and a
        // backward pass through that (hvp redoes the first two for each d).
        let (_, hd) = functional::hvp(&f, w, &d)?;
        products += 1;
        let curvature = dot(&d, &hd);
        if curvature <= 0.0 {
            break;
        }
        let alpha = rr / curvature; // the exact minimiser of the model along d
        p = &p + &(&d * alpha);
        r = &r - &(&hd * alpha);
        let rr_next = dot(&r, &r);
        d = &r + &(&d * (rr_next / rr));
        rr = rr_next;
    }
    Ok((p, products))
}

/// Solves the dense system `a·x = b` (`a` row-major `n×n`) by Gaussian
/// elimination with partial pivoting; `None` when `a` is singular.
pub fn solve_dense(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    assert_eq!(a.len(), n * n, "a is n×n for b of length n");
    for col in 0..n {
        let pivot =
            (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        if a[pivot * n + col] == 0.0 {
            return None;
        }
        for k in 0..n {
            a.swap(col * n + k, pivot * n + k);
        }
        b.swap(col, pivot);
        for row in col + 1..n {
            let factor = a[row * n + col] / a[col * n + col];
            for k in col..n {
                a[row * n + k] -= factor * a[col * n + k];
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let tail: f64 = (row + 1..n).map(|k| a[row * n + k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row * n + row];
    }
    Some(x)
}

/// One Newton step as the run recorded it.
#[derive(Clone, Debug)]
pub struct NewtonStep {
    /// f at the start of the step.
    pub loss: f64,
    /// |∇f| at the start of the step.
    pub grad_norm: f64,
    /// Hessian-vector products CG used for this step (0 for the last line,
    /// where the gradient was already small enough).
    pub cg_iterations: usize,
    /// The fraction of the Newton step taken (1 unless the line search cut it).
    pub step_length: f64,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Each Newton iterate, from w = 0 to the last one.
    pub newton: Vec<NewtonStep>,
    /// True when Newton's gradient norm fell below `tol`.
    pub newton_converged: bool,
    /// Newton's final weights (the bias last).
    pub newton_weights: Vec<f64>,
    /// f at Newton's final weights.
    pub newton_loss: f64,
    /// Wall time of the Newton iterations.
    pub newton_time: Duration,
    /// The first Newton direction by hvp + CG and by the explicit Hessian.
    pub first_step_cg: Vec<f64>,
    /// The same direction from `functional::hessian` and Gaussian elimination.
    pub first_step_explicit: Vec<f64>,
    /// The learning rate of gradient descent: 1/L, L the largest curvature.
    pub gd_lr: f64,
    /// Steps gradient descent took to bring f within 1e-6 of Newton's minimum.
    pub gd_steps_to_loss: Option<usize>,
    /// Steps gradient descent took to bring |∇f| below `tol`, if it did.
    pub gd_steps_to_tol: Option<usize>,
    /// Steps gradient descent ran.
    pub gd_steps_run: usize,
    /// Gradient descent's final weights.
    pub gd_weights: Vec<f64>,
    /// |∇f| at gradient descent's final weights.
    pub gd_grad_norm: f64,
    /// Wall time of gradient descent.
    pub gd_time: Duration,
}

/// How close to Newton's minimum counts as "reached" for gradient descent's loss.
pub const LOSS_GAP: f64 = 1e-6;

fn fmt_weights(w: &[f64]) -> String {
    let parts: Vec<String> = w.iter().map(|v| format!("{v:+.6}")).collect();
    format!("[{}]", parts.join(", "))
}

/// Generates the data, runs Newton (hvp + CG) and gradient descent, and checks
/// the first Newton step against the explicit Hessian.
pub fn run(o: &Options) -> Result<Summary, Error> {
    let mut rng = StdRng::seed_from_u64(o.seed);
    let (x, y) = two_gaussians(o.samples, &mut rng)?;
    let f = objective(&x, &y, o.l2);
    let n = FEATURES + 1;
    println!(
        "Logistic regression: {} points in {FEATURES}-D, two overlapping Gaussian classes (seed {}); \
         {n} weights (the bias last); loss = mean BCE + {}·|w|²/2",
        o.samples, o.seed, o.l2
    );

    // ----- Newton: solve H·p = −∇f by CG on Hessian-vector products -----
    println!("\nNewton's method, each step solving H·p = −∇f by conjugate gradient on hvp:");
    println!("  step          loss          |∇f|   CG iterations (hvp calls)   step length");
    let start = Instant::now();
    let mut w = Tensor::<f64>::zeros(&[n]);
    let mut newton = Vec::new();
    let mut newton_converged = false;
    let mut first_step_cg = Vec::new();
    let mut first_g = None;
    for step in 0..=o.newton_steps {
        let (value, g) = value_and_grad(&f, &w)?;
        let grad_norm = norm(&g);
        if grad_norm < o.tol || step == o.newton_steps {
            newton_converged = grad_norm < o.tol;
            println!("  {step:>4}  {value:>12.9}  {grad_norm:>12.3e}");
            newton.push(NewtonStep {
                loss: value,
                grad_norm,
                cg_iterations: 0,
                step_length: 0.0,
            });
            break;
        }
        // Solved to a tight tolerance, so that each step is the exact Newton
        // step (and comparable with the explicit Hessian's). With many weights
        // one would stop CG much earlier: a rough direction is still a descent
        // direction, and each iteration costs an hvp.
        let (p, cg_iterations) = conjugate_gradient(&f, &w, &-&g, 1e-12, 4 * n)?;
        if step == 0 {
            first_step_cg = p.to_vec();
            first_g = Some(g.clone());
        }
        // Backtracking (Armijo) line search: take the full step unless it fails
        // to decrease f by a fair share of what the slope ∇f·p promises (halving
        // it until it does). Near the minimum the promised decrease, about
        // |∇f|²/curvature, falls below f's rounding error and the test would judge
        // noise: there the full step is taken unchecked. For this convex loss
        // started at 0 the full step is always accepted anyway.
        let slope = dot(&g, &p);
        let mut t = 1.0;
        if -slope > 1e-12 * value.abs().max(1.0) {
            loop {
                let value_next = {
                    let _guard = no_grad();
                    f(&(&w + &(&p * t))).item()
                };
                if value_next <= value + 1e-4 * t * slope || t < 1e-10 {
                    break;
                }
                t *= 0.5;
            }
        }
        let next = &w + &(&p * t);
        println!("  {step:>4}  {value:>12.9}  {grad_norm:>12.3e}   {cg_iterations:>25}   {t:>11}");
        newton.push(NewtonStep {
            loss: value,
            grad_norm,
            cg_iterations,
            step_length: t,
        });
        w = next;
    }
    let newton_time = start.elapsed();
    let newton_weights = w.to_vec();
    let newton_loss = newton.last().map_or(f64::NAN, |s| s.loss);
    let hvps: usize = newton.iter().map(|s| s.cg_iterations).sum();
    println!(
        "Newton: {} after {} steps ({hvps} Hessian-vector products in all), {:.1} ms",
        if newton_converged {
            format!("|∇f| < {:.0e}", o.tol)
        } else {
            format!(
                "not converged{}",
                if o.l2 == 0.0 {
                    " (without L2, separable classes have no minimiser)"
                } else {
                    ""
                }
            )
        },
        newton.len() - 1,
        newton_time.as_secs_f64() * 1e3
    );
    println!("  weights {}", fmt_weights(&newton_weights));

    // ----- the same first step, with the Hessian formed explicitly -----
    // functional::hessian costs one backward pass per weight and stores n² numbers;
    // for 6 weights that is nothing, and it lets us check what CG found.
    let w0 = Tensor::<f64>::zeros(&[n]);
    let h = functional::hessian(&f, &w0)?; // [6, 6]
    let minus_g: Vec<f64> = first_g.map_or_else(Vec::new, |g| (-g).to_vec());
    let first_step_explicit =
        solve_dense(h.to_vec(), minus_g).ok_or_else(|| Error::InvalidArgument {
            op: "newton",
            msg: "the Hessian at w = 0 is singular".to_string(),
        })?;
    let gap = first_step_cg
        .iter()
        .zip(&first_step_explicit)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!(
        "\nCheck: the first Newton step from the explicit {n}×{n} Hessian (functional::hessian, \
         solved by Gaussian elimination)"
    );
    println!("  explicit H: {}", fmt_weights(&first_step_explicit));
    println!("  hvp + CG:   {}", fmt_weights(&first_step_cg));
    println!("  largest difference {gap:.1e}: CG never formed H, and found the same step");

    // ----- gradient descent from the same start -----
    // The step 1/L, with L the largest eigenvalue of the Hessian, is the classic
    // safe choice. Here the largest curvature is at w = 0: the Hessian is
    // Xᵀ·diag(σ'(X·w))·X / N + λI, and σ'(z) = σ(z)(1 − σ(z)) is largest (¼) at
    // z = 0. Power iteration finds L, again with Hessian-vector products only.
    let mut v = Tensor::<f64>::ones(&[n]) * (1.0 / (n as f64).sqrt());
    let mut curvature = 0.0;
    for _ in 0..200 {
        let (_, hv) = functional::hvp(&f, &w0, &v)?;
        curvature = dot(&v, &hv); // the Rayleigh quotient vᵀ·H·v, |v| = 1
        v = &hv * (1.0 / norm(&hv));
    }
    let gd_lr = 1.0 / curvature;
    println!(
        "\nGradient descent from w = 0 with learning rate 1/L = {gd_lr:.4} \
         (L = {curvature:.4}, the largest curvature, by power iteration on hvp):"
    );
    let start = Instant::now();
    let mut w = Tensor::<f64>::zeros(&[n]);
    let mut gd_steps_to_loss = None;
    let mut gd_steps_to_tol = None;
    let mut gd_steps_run = 0;
    let mut next_report = 1;
    let mut gd_grad_norm;
    loop {
        let (value, g) = value_and_grad(&f, &w)?;
        gd_grad_norm = norm(&g);
        if gd_steps_to_loss.is_none() && value - newton_loss < LOSS_GAP {
            gd_steps_to_loss = Some(gd_steps_run);
            println!(
                "  step {gd_steps_run:>6}  loss {value:.9}  |∇f| {gd_grad_norm:.3e}   \
                 ← loss within {LOSS_GAP:.0e} of Newton's minimum"
            );
        } else if gd_steps_run == next_report || gd_steps_run == 0 {
            println!("  step {gd_steps_run:>6}  loss {value:.9}  |∇f| {gd_grad_norm:.3e}");
        }
        if gd_steps_run >= next_report {
            next_report *= 10;
        }
        if gd_grad_norm < o.tol {
            gd_steps_to_tol = Some(gd_steps_run);
            break;
        }
        if gd_steps_run == o.gd_steps {
            break;
        }
        w = &w - &(&g * gd_lr);
        gd_steps_run += 1;
    }
    let gd_time = start.elapsed();
    let gd_weights = w.to_vec();
    let reached = |steps: Option<usize>| match steps {
        Some(s) => format!("after {s} steps"),
        None => format!("not reached in {} steps", o.gd_steps),
    };
    println!(
        "Gradient descent: loss within {LOSS_GAP:.0e} of the minimum {}; |∇f| < {:.0e} {} \
         (|∇f| = {gd_grad_norm:.1e} at the end), {:.1} ms",
        reached(gd_steps_to_loss),
        o.tol,
        reached(gd_steps_to_tol),
        gd_time.as_secs_f64() * 1e3
    );
    println!("  weights {}", fmt_weights(&gd_weights));
    let weight_gap = newton_weights
        .iter()
        .zip(&gd_weights)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!(
        "\nNewton: {} steps and {hvps} hvp calls; gradient descent: {} steps. \
         Largest weight difference {weight_gap:.1e}.",
        newton.len() - 1,
        gd_steps_to_tol.map_or_else(|| format!("more than {}", o.gd_steps), |s| s.to_string()),
    );

    Ok(Summary {
        newton,
        newton_converged,
        newton_weights,
        newton_loss,
        newton_time,
        first_step_cg,
        first_step_explicit,
        gd_lr,
        gd_steps_to_loss,
        gd_steps_to_tol,
        gd_steps_run,
        gd_weights,
        gd_grad_norm,
        gd_time,
    })
}

fn main() -> ExitCode {
    let options = match Options::from_args(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
