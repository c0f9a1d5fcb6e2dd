//! Two moons: a multi-layer perceptron learns a curved boundary.
//!
//! The two-moons data set is two interleaved half circles in the plane, one per
//! class, with Gaussian noise: no straight line separates them, but a small
//! network with a hidden layer or two does. This example generates it, trains an
//! [`Mlp`] with plain stochastic gradient descent on the cross-entropy loss, and
//! reports the test accuracy. It writes the weights (safetensors, with the `Mlp`'s
//! PyTorch-style names) and a picture of the learned regions with the test points
//! (SVG).
//!
//! Run it with `cargo run --release --example moons`; options after `--`:
//! `--epochs N`, `--lr X`, `--seed N`, `--samples N`, `--noise X`, `--hidden N`,
//! `--batch-size N`, `--out DIR` (`--help` lists them).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ferrograd::data::{gather_rows, Batches};
use ferrograd::io::save_module;
use ferrograd::loss;
use ferrograd::nn::{Activation, Mlp, Module};
use ferrograd::optim::{Optimizer, Sgd, SgdConfig};
use ferrograd::rand::{rngs::StdRng, RngExt, SeedableRng};
use ferrograd::{no_grad, Error, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

/// Everything a run can be told.
#[derive(Clone, Debug)]
pub struct Options {
    /// Passes over the training split.
    pub epochs: usize,
    /// Learning rate of plain SGD.
    pub lr: f32,
    /// Seeds the data, the initial weights and the batch order.
    pub seed: u64,
    /// Points generated in all (a quarter of them for the test split).
    pub samples: usize,
    /// Standard deviation of the Gaussian noise added to each coordinate.
    pub noise: f32,
    /// Units in each of the two hidden layers.
    pub hidden: usize,
    /// Points per mini-batch.
    pub batch_size: usize,
    /// Where the weights and the picture are written.
    pub out: PathBuf,
    /// Draw a progress bar (else plain lines).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            epochs: 100,
            lr: 0.3,
            seed: 1,
            samples: 1000,
            noise: 0.1,
            hidden: 16,
            batch_size: 32,
            out: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/moons"),
            progress: false,
        }
    }
}

/// The command-line help.
pub const USAGE: &str = "\
usage: cargo run --release --example moons -- [options]

  --epochs N       passes over the training data (default 100)
  --lr X           learning rate of SGD (default 0.3)
  --seed N         seed of the data, the initial weights and the batch order (default 1)
  --samples N      points generated, a quarter of them for testing (default 1000)
  --noise X        standard deviation of the noise on each coordinate (default 0.1)
  --hidden N       units in each of the two hidden layers (default 16)
  --batch-size N   points per mini-batch (default 32)
  --out DIR        where to write the weights and the picture (default target/moons in the crate)
  --help           this text";

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
            let real = || {
                value
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| bad("a number ≥ 0"))
            };
            match name.as_str() {
                "--epochs" => o.epochs = count(0)?,
                "--lr" => o.lr = real()?,
                "--seed" => o.seed = value.parse().map_err(|_| bad("a whole number"))?,
                "--samples" => o.samples = count(8)?,
                "--noise" => o.noise = real()?,
                "--hidden" => o.hidden = count(1)?,
                "--batch-size" => o.batch_size = count(1)?,
                "--out" => o.out = PathBuf::from(value),
                _ => return Err(format!("unknown option '{name}'")),
            }
        }
        Ok(Some(o))
    }
}

/// A standard normal number (Box–Muller).
fn normal(rng: &mut StdRng) -> f32 {
    let u: f64 = 1.0 - rng.random::<f64>(); // in (0, 1], so the log is finite
    let v: f64 = rng.random();
    ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
}

/// `n` points of two moons, alternating classes: class 0 on the upper half circle
/// `(cos t, sin t)`, class 1 on the lower one `(1 − cos t, ½ − sin t)`, `t` uniform
/// in `[0, π]`, plus Gaussian noise of standard deviation `noise` on each coordinate.
pub fn two_moons(n: usize, noise: f32, rng: &mut StdRng) -> (Vec<[f32; 2]>, Vec<usize>) {
    (0..n)
        .map(|i| {
            let t = rng.random_range(0.0..std::f32::consts::PI);
            let class = i % 2;
            let (x, y) = if class == 0 {
                (t.cos(), t.sin())
            } else {
                (1.0 - t.cos(), 0.5 - t.sin())
            };
            ([x + noise * normal(rng), y + noise * normal(rng)], class)
        })
        .unzip()
}

fn points_tensor(points: &[[f32; 2]]) -> Result<Tensor, Error> {
    Tensor::from_vec(
        points.iter().flatten().copied().collect(),
        &[points.len(), 2],
    )
}

/// The fraction of `points` whose predicted class (the larger logit) is `labels`'.
pub fn accuracy(net: &Mlp, x: &Tensor, labels: &[usize]) -> f32 {
    let _guard = no_grad();
    let predicted = net.forward(x).argmax(-1).to_vec();
    let hits = predicted
        .iter()
        .zip(labels)
        .filter(|(p, &c)| **p as usize == c)
        .count();
    hits as f32 / labels.len() as f32
}

/// What a run measured and wrote.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The average training loss of each epoch (`[0]`: before training).
    pub epoch_losses: Vec<f32>,
    /// Accuracy on the training split at the end, in [0, 1].
    pub train_accuracy: f32,
    /// Accuracy on the test split at the end, in [0, 1].
    pub test_accuracy: f32,
    /// The safetensors file with the trained weights.
    pub weights: PathBuf,
    /// The SVG picture of the learned regions and the test points.
    pub picture: PathBuf,
}

/// Generates the data, trains, evaluates and writes the files.
pub fn run(o: &Options) -> Result<Summary, Error> {
    let mut rng = StdRng::seed_from_u64(o.seed);
    let (mut points, mut labels) = two_moons(o.samples, o.noise, &mut rng);
    let n_test = o.samples / 4;
    let test_points = points.split_off(o.samples - n_test);
    let test_labels = labels.split_off(o.samples - n_test);
    let (x, x_test) = (points_tensor(&points)?, points_tensor(&test_points)?);
    println!(
        "Two moons: {} points ({} to train, {n_test} to test), noise {}, seed {}",
        o.samples,
        points.len(),
        o.noise,
        o.seed
    );

    // 2 → hidden → hidden → 2, tanh between the layers, PyTorch's default init
    let net: Mlp = Mlp::new(&[2, o.hidden, o.hidden, 2], Activation::Tanh, &mut rng);
    let mut opt = Sgd::new_named(
        net.named_parameters(),
        SgdConfig {
            lr: o.lr,
            ..Default::default()
        },
    );
    println!(
        "network 2 → {h} → {h} → 2 (tanh), {} weights; cross-entropy loss; SGD, learning rate {}, batches of {}",
        net.parameters().iter().map(Tensor::numel).sum::<usize>(),
        o.lr,
        o.batch_size,
        h = o.hidden
    );

    let n_train = points.len();
    let initial = {
        let _guard = no_grad();
        loss::cross_entropy(&net.forward(&x), &labels)?.item()
    };
    println!(
        "epoch {:>4}/{}   average loss {initial:.4}   (the random weights)",
        0, o.epochs
    );
    let mut epoch_losses = vec![initial];
    let bar = o.progress.then(|| {
        let bar = ProgressBar::new(o.epochs as u64);
        bar.set_style(
            ProgressStyle::with_template("[{bar:40}] epoch {pos}/{len}  {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar
    });
    let report_every = o.epochs.div_ceil(10).max(1);
    let mut shuffle_rng = StdRng::seed_from_u64(o.seed.wrapping_add(1));
    for epoch in 1..=o.epochs {
        let mut total = 0.0f64;
        for batch in &Batches::new(n_train, o.batch_size).shuffle(&mut shuffle_rng) {
            let targets: Vec<usize> = batch.iter().map(|&i| labels[i]).collect();
            let loss = loss::cross_entropy(&net.forward(&gather_rows(&x, batch)), &targets)?;
            opt.step(&loss.backward()?)?;
            total += f64::from(loss.item()) * batch.len() as f64;
        }
        let average = (total / n_train as f64) as f32;
        epoch_losses.push(average);
        let line = format!("epoch {epoch:>4}/{}   average loss {average:.4}", o.epochs);
        match &bar {
            Some(bar) => {
                bar.set_message(format!("average loss {average:.4}"));
                bar.inc(1);
                if epoch % report_every == 0 || epoch == o.epochs {
                    bar.println(line);
                }
            }
            None if epoch % report_every == 0 || epoch == o.epochs => println!("{line}"),
            None => {}
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    let train_accuracy = accuracy(&net, &x, &labels);
    let test_accuracy = accuracy(&net, &x_test, &test_labels);
    println!(
        "test accuracy: {:.1}% (train {:.1}%)",
        100.0 * test_accuracy,
        100.0 * train_accuracy
    );

    std::fs::create_dir_all(&o.out)?;
    let weights = o.out.join("moons.safetensors");
    save_module(&net, &weights)?;
    let picture = o.out.join("moons.svg");
    std::fs::write(&picture, regions_svg(&net, &test_points, &test_labels)?)?;
    println!("weights: {}", weights.display());
    println!(
        "picture: {}  (the learned regions and the test points)",
        picture.display()
    );

    Ok(Summary {
        epoch_losses,
        train_accuracy,
        test_accuracy,
        weights,
        picture,
    })
}

/// An SVG of the plane: each cell of a grid shaded by the class the network
/// predicts there, and the points on top, coloured by their true class.
pub fn regions_svg(net: &Mlp, points: &[[f32; 2]], labels: &[usize]) -> Result<String, Error> {
    const CELLS: usize = 60;
    const SIZE: f32 = 480.0;
    let (x0, x1, y0, y1) = (-1.5f32, 2.5f32, -1.25f32, 1.75f32);
    let cell_w = SIZE / CELLS as f32;
    let height = SIZE * (y1 - y0) / (x1 - x0);
    let cell_h = height / CELLS as f32;
    let to_px = |[x, y]: [f32; 2]| ((x - x0) / (x1 - x0) * SIZE, (y1 - y) / (y1 - y0) * height);
    // the class predicted at the centre of each cell, in one forward pass
    let centres: Vec<[f32; 2]> = (0..CELLS * CELLS)
        .map(|k| {
            let (row, col) = (k / CELLS, k % CELLS);
            [
                x0 + (col as f32 + 0.5) / CELLS as f32 * (x1 - x0),
                y1 - (row as f32 + 0.5) / CELLS as f32 * (y1 - y0),
            ]
        })
        .collect();
    let predicted = {
        let _guard = no_grad();
        net.forward(&points_tensor(&centres)?).argmax(-1).to_vec()
    };
    let fills = ["#cfe3f5", "#fde0c5"];
    let colours = ["#1f77b4", "#e4670c"];
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{height}" viewBox="0 0 {SIZE} {height}">"#
    );
    for (k, class) in predicted.iter().enumerate() {
        let (row, col) = (k / CELLS, k % CELLS);
        let _ = writeln!(
            s,
            r#"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="{}"/>"#,
            col as f32 * cell_w,
            row as f32 * cell_h,
            cell_w + 0.05,
            cell_h + 0.05,
            fills[*class as usize % 2]
        );
    }
    for (p, &c) in points.iter().zip(labels) {
        let (x, y) = to_px(*p);
        let _ = writeln!(
            s,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{}" stroke="white" stroke-width="0.5"/>"#,
            colours[c % 2]
        );
    }
    s.push_str("</svg>\n");
    Ok(s)
}

fn main() -> ExitCode {
    let options = match Options::from_args(std::env::args().skip(1)) {
        Ok(Some(o)) => Options {
            progress: std::io::stdout().is_terminal(),
            ..o
        },
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
