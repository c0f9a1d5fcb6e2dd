//! A physics-informed neural network (PINN): a network learns to solve a
//! differential equation from the equation alone, with no solution data.
//!
//! The problem is the boundary-value problem
//!
//! ```text
//!     u''(x) = −π² sin(πx)   on [0, 1],     u(0) = u(1) = 0,
//! ```
//!
//! whose exact solution is `u(x) = sin(πx)`. A small multi-layer perceptron
//! `u(x)` (one input, one output, tanh between the layers) is trained so that
//!
//! - the *residual* `u''(x) + π² sin(πx)` is close to zero at a set of
//!   collocation points spread over `[0, 1]`, and
//! - `u(0)` and `u(1)` are close to zero (the boundary conditions).
//!
//! That is all a PINN is: the loss is the equation itself, evaluated on the
//! network. The only new ingredient compared with ordinary training is that the
//! loss contains derivatives of the network *with respect to its input* — here
//! the second derivative `u''(x)` — and the optimizer needs the gradient of that
//! loss with respect to the weights. So we differentiate three times in a row:
//!
//! 1. `du/dx`   — `ferrograd::grad` of `u` with respect to the input `x`,
//! 2. `d²u/dx²` — `ferrograd::grad` of `du/dx` with respect to `x` again,
//! 3. `d loss / d weights` — `loss.backward()`, through both of the above.
//!
//! Steps 2 and 3 differentiate the *result* of a gradient computation, which is
//! only possible when that gradient was itself recorded as a graph of tensor
//! operations: that is what `GradOptions { create_graph: true, .. }` asks for.
//! Nowhere in this file is a derivative of the network written by hand.
//!
//! Run it with `cargo run --release --example pinn`; options after `--`:
//! `--epochs N`, `--lr X`, `--points N`, `--hidden N`, `--seed N`, `--out DIR`
//! (`--help` lists them). It prints the largest error against `sin(πx)` over
//! 1001 evenly spaced points and writes a picture of `u` beside `sin(πx)`.

use std::f64::consts::PI;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ferrograd::nn::{Activation, Mlp, Module};
use ferrograd::optim::lr::{CosineAnnealingLr, Scheduler};
use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{grad, no_grad, Error, GradOptions, Tensor};

/// Everything a run can be told.
#[derive(Clone, Debug)]
pub struct Options {
    /// Optimizer steps; each one uses every collocation point (full batch).
    pub epochs: usize,
    /// Adam's initial learning rate (cosine-annealed towards `lr / 100`).
    pub lr: f64,
    /// Collocation points, evenly spaced over `[0, 1]` (both ends included).
    pub points: usize,
    /// Units in each of the two hidden layers.
    pub hidden: usize,
    /// Weight of the boundary term `u(0)² + u(1)²` in the loss.
    pub boundary_weight: f64,
    /// Seeds the initial weights.
    pub seed: u64,
    /// Where the picture is written.
    pub out: PathBuf,
    /// Print the loss this many times during training (0: never).
    pub reports: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            epochs: 2000,
            lr: 1e-2,
            points: 64,
            hidden: 32,
            boundary_weight: 100.0,
            seed: 0,
            out: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pinn"),
            reports: 10,
        }
    }
}

/// The command-line help.
pub const USAGE: &str = "\
usage: cargo run --release --example pinn -- [options]

  --epochs N   optimizer steps, each over all collocation points (default 2000)
  --lr X       Adam's initial learning rate, annealed to a hundredth of it (default 0.01)
  --points N   collocation points, evenly spaced over [0, 1] (default 64)
  --hidden N   units in each of the two hidden layers (default 32)
  --seed N     seed of the initial weights (default 0)
  --out DIR    where to write the picture (default target/pinn in the crate)
  --help       this text";

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
                "--epochs" => o.epochs = count(0)?,
                "--lr" => {
                    o.lr = value
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v > 0.0)
                        .ok_or_else(|| bad("a number > 0"))?
                }
                "--points" => o.points = count(2)?,
                "--hidden" => o.hidden = count(1)?,
                "--seed" => o.seed = value.parse().map_err(|_| bad("a whole number"))?,
                "--out" => o.out = PathBuf::from(value),
                _ => return Err(format!("unknown option '{name}'")),
            }
        }
        Ok(Some(o))
    }
}

/// What a run measured and wrote.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The loss before each optimizer step, and after the last one.
    pub losses: Vec<f64>,
    /// `max |u(x) − sin(πx)|` over 1001 evenly spaced points of `[0, 1]`.
    pub max_error: f64,
    /// The 1001 evaluation points, the network's `u` there and the exact `sin(πx)`.
    pub curve: Vec<(f64, f64, f64)>,
    /// The SVG picture of `u` beside `sin(πx)`.
    pub picture: PathBuf,
    /// How long the run took (training, evaluation and writing).
    pub elapsed: Duration,
}

/// `n` evenly spaced points from `a` to `b` (both included), as a column `[n, 1]`.
fn linspace(a: f64, b: f64, n: usize) -> Result<Tensor<f64>, Error> {
    let step = (b - a) / (n - 1).max(1) as f64;
    Tensor::from_vec((0..n).map(|i| a + step * i as f64).collect(), &[n, 1])
}

/// The network's `u` at each row of `x` (`[N, 1]` → `[N, 1]`).
///
/// The input is first mapped from `[0, 1]` to `[−1, 1]`, where tanh layers work
/// best. That affine map is an ordinary recorded op, so the derivatives with
/// respect to `x` below include its factor 2 (twice, for `u''`) automatically.
fn u_of(net: &Mlp<f64>, x: &Tensor<f64>) -> Tensor<f64> {
    net.forward(&(x * 2.0 - 1.0))
}

/// The PINN loss and its two parts: `(loss, mean squared residual, boundary term)`.
///
/// `x` must be a leaf that requires a gradient: it is the variable the equation
/// differentiates with respect to.
fn pinn_loss(
    net: &Mlp<f64>,
    x: &Tensor<f64>,
    forcing: &Tensor<f64>,
    ends: &Tensor<f64>,
    boundary_weight: f64,
) -> Result<(Tensor<f64>, f64, f64), Error> {
    let u = u_of(net, x); // [N, 1]

    // du/dx. `grad` computes a vector-Jacobian product: with `upstream` all ones
    // it returns, for each x_j, Σ_i ∂u_i/∂x_j. Row i of the batch depends only on
    // x_i (the network treats rows independently), so the sum has one nonzero
    // term and this is exactly u'(x_j) at every point, in one backward walk.
    // (PyTorch: `torch.autograd.grad(u, x, grad_outputs=torch.ones_like(u),
    // create_graph=True)`.)
    //
    // `create_graph: true` records this walk as tensor operations of its own, so
    // that `du` is not just numbers but a function of x *and of the weights*
    // that can be differentiated again. Without it `du` would carry no graph,
    // and the next `grad` would fail with an error saying so.
    let du = grad(
        &u,
        &[x],
        GradOptions {
            create_graph: true,
            upstream: Some(Tensor::ones_like(&u)),
            ..Default::default()
        },
    )?
    .remove(0); // [N, 1]: u'(x_i)

    // d²u/dx²: the same again, now of du with respect to x. This second walk
    // goes through the graph the first one recorded (the backward rules of tanh
    // and matmul, themselves run as tensor ops). It must be recorded too: the
    // loss below contains u'', and `loss.backward()` has to go through it to
    // reach the weights. Without `create_graph` here, u'' would be a constant
    // to autograd; since the boundary term still has a graph, `backward` would
    // then succeed *silently* and train the boundary values alone.
    let d2u = grad(
        &du,
        &[x],
        GradOptions {
            create_graph: true,
            upstream: Some(Tensor::ones_like(&du)),
            ..Default::default()
        },
    )?
    .remove(0); // [N, 1]: u''(x_i)

    // The equation's residual u'' + π² sin(πx) should vanish everywhere.
    let residual = (&d2u + forcing).square().mean();
    // The boundary conditions u(0) = u(1) = 0: `ends` is the column [0, 1]ᵀ.
    let boundary = u_of(net, ends).square().sum();
    let loss = &residual + &boundary * boundary_weight;
    let (r, b) = (residual.item(), boundary.item());
    Ok((loss, r, b))
}

/// Trains the network, measures its error against `sin(πx)` and writes the picture.
pub fn run(o: &Options) -> Result<Summary, Error> {
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(o.seed);
    // 1 → hidden → hidden → 1 with tanh: smooth, so u'' exists and is smooth too
    // (with ReLU, u'' would be zero almost everywhere). In f64, so that rounding
    // stays far below the errors measured here.
    let sizes = [1, o.hidden, o.hidden, 1];
    let net: Mlp<f64> = Mlp::new(&sizes, Activation::Tanh, &mut rng);

    // The collocation points, a leaf that requires a gradient: `grad` needs a
    // tensor to differentiate with respect to, and this one is x itself. It is
    // not a weight; the optimizer never sees it.
    let x = linspace(0.0, 1.0, o.points)?.requires_grad();
    // The right-hand side moved over: u'' + π² sin(πx) = 0. A constant, so it
    // is computed from a copy of x outside the graph.
    let forcing = (x.detach() * PI).sin() * (PI * PI);
    let ends = Tensor::from_vec(vec![0.0, 1.0], &[2, 1])?;

    println!(
        "PINN for u''(x) = −π² sin(πx) on [0, 1], u(0) = u(1) = 0 (exact: sin(πx)); seed {}",
        o.seed
    );
    let mut opt = Adam::new_named(
        net.named_parameters(),
        AdamConfig {
            lr: o.lr,
            ..Default::default()
        },
    );
    let mut sched = Scheduler::new(
        &mut opt,
        CosineAnnealingLr::new(o.epochs.max(1), o.lr / 100.0),
    );
    println!(
        "network 1 → {h} → {h} → 1 (tanh), {} weights; {} collocation points; \
         Adam, learning rate {} cosine-annealed to {} over {} steps; boundary weight {}",
        net.parameters().iter().map(Tensor::numel).sum::<usize>(),
        o.points,
        o.lr,
        o.lr / 100.0,
        o.epochs,
        o.boundary_weight,
        h = o.hidden
    );

    let report_every = if o.reports == 0 {
        usize::MAX
    } else {
        o.epochs.div_ceil(o.reports).max(1)
    };
    let mut losses = Vec::with_capacity(o.epochs + 1);
    for epoch in 0..=o.epochs {
        let (loss, residual, boundary) = pinn_loss(&net, &x, &forcing, &ends, o.boundary_weight)?;
        losses.push(loss.item());
        if epoch % report_every == 0 || epoch == o.epochs {
            println!(
                "step {epoch:>5}/{}   loss {:.3e}   (residual² {residual:.3e}, boundary {boundary:.3e})",
                o.epochs,
                loss.item()
            );
        }
        if epoch == o.epochs {
            break;
        }
        // The weight gradients of a loss that contains u'': backward walks the
        // loss's graph, which includes the graphs the two `grad` calls recorded.
        opt.step(&loss.backward()?)?;
        sched.step(&mut opt);
    }

    // The error against the exact solution, on 1001 evenly spaced points.
    let eval_x = linspace(0.0, 1.0, 1001)?;
    let u = {
        let _guard = no_grad();
        u_of(&net, &eval_x).to_vec()
    };
    let curve: Vec<(f64, f64, f64)> = eval_x
        .to_vec()
        .into_iter()
        .zip(u)
        .map(|(x, u)| (x, u, (PI * x).sin()))
        .collect();
    let max_error = curve
        .iter()
        .map(|&(_, u, exact)| (u - exact).abs())
        .fold(0.0, f64::max);
    println!("largest |u(x) − sin(πx)| over 1001 evenly spaced points of [0, 1]:");
    println!("max error {max_error:.3e}");

    std::fs::create_dir_all(&o.out)?;
    let picture = o.out.join("pinn.svg");
    std::fs::write(&picture, solution_svg(&curve, max_error))?;
    println!("picture: {}  (u beside sin(πx))", picture.display());
    let elapsed = start.elapsed();
    println!("elapsed {:.2} s", elapsed.as_secs_f64());

    Ok(Summary {
        losses,
        max_error,
        curve,
        picture,
        elapsed,
    })
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A number for a tick label, without float noise (`0.2`, not `0.20000000000000001`)
/// and with a typographic minus.
fn tick_label(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    match s.strip_prefix('-') {
        Some("0") => "0".to_string(),
        Some(magnitude) => format!("−{magnitude}"),
        None => s.to_string(),
    }
}

/// A hand-written SVG of the solution, `curve` holding `(x, u(x), sin(πx))`
/// rows: on top the network's `u` (solid, class `"u"`) and the exact `sin(πx)`
/// (dashed, class `"exact"`) over `[0, 1]`; below, on its own scale, the error
/// `u(x) − sin(πx)` (class `"error"`). Axes, ticks and a legend included.
pub fn solution_svg(curve: &[(f64, f64, f64)], max_error: f64) -> String {
    const W: f64 = 720.0;
    const LEFT: f64 = 84.0;
    const RIGHT: f64 = 24.0;
    // top panel: the solution; bottom panel: the error
    const TOP: f64 = 48.0;
    const TOP_H: f64 = 300.0;
    const GAP: f64 = 56.0;
    const BOTTOM_H: f64 = 120.0;
    const H: f64 = TOP + TOP_H + GAP + BOTTOM_H + 56.0;
    let plot_w = W - LEFT - RIGHT;
    let x_of = |x: f64| LEFT + x * plot_w;
    let error_top = TOP + TOP_H + GAP;
    let bound = if max_error > 0.0 && max_error.is_finite() {
        max_error * 1.1
    } else {
        1.0
    };
    // the upper panel shows [−0.1, 1.1], widened to every finite value of u
    let (lo, hi) = curve
        .iter()
        .map(|p| p.1)
        .filter(|u| u.is_finite())
        .fold((-0.1f64, 1.1f64), |(lo, hi), u| {
            (lo.min(u - 0.05), hi.max(u + 0.05))
        });
    // a tick step of 0.2, 0.5, 1, 2, 5, … that makes at most 8 intervals
    let step = (0..)
        .map(|k| [0.2, 0.5, 1.0][k % 3] * 10f64.powi((k / 3) as i32))
        .find(|step| (hi - lo) / step <= 8.0)
        .unwrap_or(1.0);
    // (top pixel, height, lowest value, highest value) of each panel
    let panels = [(TOP, TOP_H, lo, hi), (error_top, BOTTOM_H, -bound, bound)];
    let y_in = |panel: usize, v: f64| {
        let (top, h, lo, hi) = panels[panel];
        top + h * (hi - v) / (hi - lo)
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    // a curve that leaves its panel (an untrained network) is cut at the edge
    s.push_str("<defs>");
    for (panel, (top, h, _, _)) in panels.iter().enumerate() {
        let _ = write!(
            s,
            r#"<clipPath id="panel{panel}"><rect x="{LEFT}" y="{top}" width="{plot_w}" height="{h}"/></clipPath>"#
        );
    }
    s.push_str("</defs>\n");
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="16">{}</text>"#,
        W / 2.0,
        xml_escape("PINN: u'' = −π² sin(πx) on [0, 1], u(0) = u(1) = 0")
    );

    // horizontal grid lines with their labels: every `step` on top; at 0 and ± the
    // max error below
    let e = bound / 1.1;
    let e_ticks = [
        (-e, format!("−{e:.1e}")),
        (0.0, "0".into()),
        (e, format!("{e:.1e}")),
    ];
    let top_ticks = ((lo / step).ceil() as i64..=(hi / step).floor() as i64).map(|k| {
        let v = step * k as f64;
        (v, tick_label(v))
    });
    let ticks: Vec<(usize, f64, String)> = top_ticks
        .map(|(v, l)| (0, v, l))
        .chain(e_ticks.into_iter().map(|(v, l)| (1, v, l)))
        .collect();
    for (panel, v, label) in &ticks {
        let y = y_in(*panel, *v);
        let colour = if *v == 0.0 { "#909090" } else { "#e0e0e0" };
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}"/>"#,
            W - RIGHT
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#,
            LEFT - 8.0,
            y + 4.0
        );
    }
    // each panel's axes, x ticks every 0.1 and labels every 0.2
    for (panel, (top, h, _, _)) in panels.iter().enumerate() {
        let bottom = top + h;
        let _ = writeln!(
            s,
            r#"<polyline points="{LEFT},{top} {LEFT},{bottom:.1} {:.1},{bottom:.1}" fill="none" stroke="black"/>"#,
            W - RIGHT
        );
        for k in 0..=10 {
            let x = x_of(0.1 * f64::from(k));
            let _ = writeln!(
                s,
                r#"<line x1="{x:.1}" y1="{bottom:.1}" x2="{x:.1}" y2="{:.1}" stroke="black"/>"#,
                bottom + if k % 2 == 0 { 5.0 } else { 3.0 }
            );
            if k % 2 == 0 {
                let _ = writeln!(
                    s,
                    r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                    bottom + 20.0,
                    tick_label(0.1 * f64::from(k))
                );
            }
        }
        let label = ["u(x)", "u(x) − sin(πx)"][panel];
        let mid = top + h / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="20" y="{mid:.1}" text-anchor="middle" transform="rotate(-90 20 {mid:.1})">{label}</text>"#
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">x</text>"#,
        LEFT + plot_w / 2.0,
        H - 12.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">error, max |u(x) − sin(πx)| = {max_error:.2e}</text>"#,
        LEFT + plot_w / 2.0,
        error_top - 12.0
    );

    // the curves: u (solid, wide) and sin(πx) (dashed, on top) share the upper
    // panel, the error has the lower one
    type Value = fn(&(f64, f64, f64)) -> f64;
    let series: [(&str, &str, usize, &str, f64, &str, Value); 3] = [
        ("u", "network u(x)", 0, "#1f77b4", 4.0, "", |p| p.1),
        (
            "exact",
            "exact sin(πx)",
            0,
            "#ff7f0e",
            2.0,
            r#" stroke-dasharray="6 4""#,
            |p| p.2,
        ),
        ("error", "", 1, "#d62728", 1.5, "", |p| p.1 - p.2),
    ];
    for (i, (class, name, panel, colour, width, dash, value)) in series.iter().enumerate() {
        let points: Vec<String> = curve
            .iter()
            .map(|p| format!("{:.2},{:.2}", x_of(p.0), y_in(*panel, value(p))))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline class="{class}" points="{}" fill="none" stroke="{colour}" stroke-width="{width}"{dash} clip-path="url(#panel{panel})"/>"#,
            points.join(" ")
        );
        if !name.is_empty() {
            let ly = y_in(0, 0.35) + 20.0 * i as f64; // under the arch
            let lx = LEFT + plot_w / 2.0 - 60.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="{width}"{dash}/>"#,
                lx + 28.0
            );
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}">{name}</text>"#,
                lx + 36.0,
                ly + 4.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
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
