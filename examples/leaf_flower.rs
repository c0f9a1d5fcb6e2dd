//! Leaf or flower? ferrograd's teaching example: a small network learns to tell
//! leaves from flowers by their colour and size, and the program tells every step
//! of how it learns.
//!
//! 1. It generates a labelled data set of (R, G, B, Vol) measurements from a fixed
//!    seed and splits it into a training and a test part.
//! 2. It builds a network 4 → hidden → 2 with random weights and softmax outputs.
//! 3. It shows one sample's forward pass, its L1 loss, one weight's gradient and one
//!    gradient-descent update, with the numbers.
//! 4. It trains for epochs of mini-batches, printing the average loss per epoch,
//!    and measures the accuracy on the test split.
//! 5. It saves the trained weights (safetensors) and the loss curve (SVG).
//!
//! Run it with `cargo run --release --example leaf_flower`, and add options after
//! `--`: `--epochs N`, `--lr X`, `--loss l1|mse|ce`, `--optimizer sgd|adam`,
//! `--seed N`, `--hidden N`, `--batch-size N`, `--samples N`, `--out DIR`
//! (`--help` lists them).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ferrograd::data::{gather_rows, Batches};
use ferrograd::io::save_safetensors_with_metadata;
use ferrograd::loss::per_sample;
use ferrograd::nn::init::xavier_normal;
use ferrograd::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use ferrograd::rand::{rngs::StdRng, seq::SliceRandom, RngExt, SeedableRng};
use ferrograd::{no_grad, Error, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

/// The inputs, in column order.
pub const FEATURES: [&str; 4] = ["R", "G", "B", "Vol"];
/// The classes, in output order: target (1, 0) is a leaf, (0, 1) a flower.
pub const CLASSES: [&str; 2] = ["leaf", "flower"];

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// The loss that training minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// `|target − softmax|`, summed over the two outputs (the loss of the story).
    L1,
    /// `(target − softmax)²`, summed over the two outputs.
    Mse,
    /// Cross-entropy of the logits, `−log softmax[class]`.
    Ce,
}

impl LossKind {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "l1" => Some(LossKind::L1),
            "mse" => Some(LossKind::Mse),
            "ce" => Some(LossKind::Ce),
            _ => None,
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::L1 => "l1",
            LossKind::Mse => "mse",
            LossKind::Ce => "ce",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            LossKind::L1 => "|target − output|, summed over the two softmax outputs",
            LossKind::Mse => "(target − output)², summed over the two softmax outputs",
            LossKind::Ce => "cross-entropy, −ln(the softmax output of the right class)",
        }
    }
}

/// The optimizer that applies the gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// Plain gradient descent, `new = old − lr × grad`.
    Sgd,
    /// Adam: a step per weight scaled by running averages of its gradients.
    Adam,
}

impl OptimizerKind {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "sgd" => Some(OptimizerKind::Sgd),
            "adam" => Some(OptimizerKind::Adam),
            _ => None,
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
        }
    }
}

/// The learning rate used when `--lr` is not given, per loss and optimizer.
///
/// Plain gradient descent moves each weight by `lr × grad`; the squared error's
/// gradients shrink with the error, so it gets a larger rate. Adam moves each weight
/// by about `lr` whatever the gradient's size, so it needs a smaller one.
pub fn default_lr(loss: LossKind, optimizer: OptimizerKind) -> f32 {
    match (optimizer, loss) {
        (OptimizerKind::Sgd, LossKind::L1) => 0.1,
        (OptimizerKind::Sgd, LossKind::Mse) => 0.2,
        (OptimizerKind::Sgd, LossKind::Ce) => 0.1,
        (OptimizerKind::Adam, _) => 0.01,
    }
}

/// Everything a run can be told.
#[derive(Clone, Debug)]
pub struct Options {
    /// Passes over the training split.
    pub epochs: usize,
    /// Learning rate; `None` takes [`default_lr`].
    pub lr: Option<f32>,
    /// The loss to minimise.
    pub loss: LossKind,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// Seeds the data, the initial weights and the batch order.
    pub seed: u64,
    /// Samples generated in all (a quarter of them for the test split).
    pub samples: usize,
    /// Hidden units.
    pub hidden: usize,
    /// Samples per mini-batch.
    pub batch_size: usize,
    /// Where the weights and the loss curve are written.
    pub out: PathBuf,
    /// Draw a progress bar (else plain lines).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            epochs: 30,
            lr: None,
            loss: LossKind::L1,
            optimizer: OptimizerKind::Sgd,
            seed: 2,
            samples: 1000,
            hidden: 16,
            batch_size: 32,
            out: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/leaf_flower"),
            progress: false,
        }
    }
}

/// The command-line help.
pub const USAGE: &str = "\
usage: cargo run --release --example leaf_flower -- [options]

  --epochs N           passes over the training data (default 30)
  --lr X               learning rate (default: sgd 0.1 with l1 or ce and 0.2 with mse,
                       adam 0.01)
  --loss l1|mse|ce     the loss to minimise (default l1)
  --optimizer sgd|adam the optimizer (default sgd)
  --seed N             seed of the data, the initial weights and the batch order (default 2)
  --hidden N           hidden units (default 16)
  --batch-size N       samples per mini-batch (default 32)
  --samples N          samples generated, a quarter of them for testing (default 1000)
  --out DIR            where to write the weights and the loss curve
                       (default target/leaf_flower in the crate)
  --help               this text";

impl Options {
    /// Parses the command-line arguments (without the program name): each option
    /// as `--name value` or `--name=value`. `Ok(None)` means `--help`.
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
            let value = match inline.or_else(|| args.next()) {
                Some(v) => v,
                None => return Err(format!("{name} needs a value")),
            };
            let bad = |what: &str| format!("{name}: expected {what}, got '{value}'");
            match name.as_str() {
                "--epochs" => o.epochs = value.parse().map_err(|_| bad("a number"))?,
                "--lr" => {
                    let lr: f32 = value.parse().map_err(|_| bad("a number"))?;
                    if !(lr.is_finite() && lr > 0.0) {
                        return Err(bad("a positive number"));
                    }
                    o.lr = Some(lr);
                }
                "--loss" => o.loss = LossKind::parse(&value).ok_or_else(|| bad("l1, mse or ce"))?,
                "--optimizer" => {
                    o.optimizer = OptimizerKind::parse(&value).ok_or_else(|| bad("sgd or adam"))?
                }
                "--seed" => o.seed = value.parse().map_err(|_| bad("a whole number"))?,
                "--hidden" => o.hidden = positive(&value).ok_or_else(|| bad("a number ≥ 1"))?,
                "--batch-size" => {
                    o.batch_size = positive(&value).ok_or_else(|| bad("a number ≥ 1"))?
                }
                "--samples" => {
                    o.samples = value
                        .parse()
                        .ok()
                        .filter(|&n: &usize| n >= 8)
                        .ok_or_else(|| bad("a number ≥ 8"))?
                }
                "--out" => o.out = PathBuf::from(value),
                _ => return Err(format!("unknown option '{name}'")),
            }
        }
        Ok(Some(o))
    }

    /// The learning rate this run uses.
    pub fn learning_rate(&self) -> f32 {
        self.lr
            .unwrap_or_else(|| default_lr(self.loss, self.optimizer))
    }
}

fn positive(s: &str) -> Option<usize> {
    s.parse().ok().filter(|&n| n >= 1)
}

// ---------------------------------------------------------------------------
// The data
// ---------------------------------------------------------------------------

/// One labelled measurement: colour in [0, 1] per channel, volume in cm³.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// R, G, B and Vol, in the order of [`FEATURES`].
    pub features: [f32; 4],
    /// 0 for a leaf, 1 for a flower (an index into [`CLASSES`]).
    pub class: usize,
}

/// A standard normal number (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>(); // in (0, 1], so the log is finite
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// `n` samples, half leaves and half flowers, in random order.
///
/// Leaves are mostly green and small (a median of 1.2 cm³); one in ten is an
/// autumn leaf, yellow to red. Flowers come in red, yellow, purple, pink, white and
/// blue, and one in twenty is green; they are larger (a median of 4.5 cm³). Every
/// colour channel gets noise, and the volumes spread widely (log-normal), so that
/// the classes overlap a little: no rule is right every time.
pub fn generate(n: usize, rng: &mut StdRng) -> Vec<Sample> {
    const FLOWER_COLOURS: [[f64; 3]; 6] = [
        [0.85, 0.15, 0.20], // red
        [0.95, 0.85, 0.15], // yellow
        [0.55, 0.20, 0.75], // purple
        [0.95, 0.55, 0.70], // pink
        [0.92, 0.92, 0.88], // white
        [0.30, 0.40, 0.90], // blue
    ];
    let mut samples: Vec<Sample> = (0..n)
        .map(|i| {
            let class = i % 2;
            let (base, median_volume, spread): ([f64; 3], f64, f64) = if class == 0 {
                // one leaf in ten is an autumn leaf, yellow to red
                let base = if rng.random_bool(0.1) {
                    [rng.random_range(0.6..0.9), rng.random_range(0.35..0.6), 0.1]
                } else {
                    [
                        rng.random_range(0.15..0.45),
                        rng.random_range(0.45..0.85),
                        rng.random_range(0.05..0.35),
                    ]
                };
                (base, 1.2, 0.4)
            } else {
                let base = if rng.random_bool(0.05) {
                    [0.45, 0.70, 0.35] // a green flower
                } else {
                    FLOWER_COLOURS[rng.random_range(0..FLOWER_COLOURS.len())]
                };
                (base, 4.5, 0.45)
            };
            let mut f = [0f32; 4];
            for (c, b) in f.iter_mut().zip(base) {
                *c = (b + 0.07 * normal(rng)).clamp(0.0, 1.0) as f32;
            }
            f[3] = (median_volume * (spread * normal(rng)).exp()) as f32;
            Sample { features: f, class }
        })
        .collect();
    // shuffle, so that the split into train and test takes both classes at random
    samples.shuffle(rng);
    samples
}

/// A split of the data as tensors, its inputs scaled with the training statistics.
pub struct Split {
    /// The samples as generated.
    pub samples: Vec<Sample>,
    /// `[n, 4]`: each feature minus the training mean, over the training standard deviation.
    pub x: Tensor,
    /// `[n, 2]`: the one-hot targets, (1, 0) for a leaf and (0, 1) for a flower.
    pub onehot: Tensor,
    /// The class of each sample.
    pub labels: Vec<usize>,
}

/// Per-feature mean and standard deviation of the training split.
pub struct Scaling {
    /// The means, in the order of [`FEATURES`].
    pub mean: [f32; 4],
    /// The standard deviations.
    pub std: [f32; 4],
}

impl Scaling {
    fn of(samples: &[Sample]) -> Scaling {
        let n = samples.len() as f64;
        let mut mean = [0f32; 4];
        let mut std = [0f32; 4];
        for j in 0..4 {
            let m = samples.iter().map(|s| s.features[j] as f64).sum::<f64>() / n;
            let v = samples
                .iter()
                .map(|s| (s.features[j] as f64 - m).powi(2))
                .sum::<f64>()
                / n;
            mean[j] = m as f32;
            std[j] = v.sqrt().max(1e-6) as f32;
        }
        Scaling { mean, std }
    }

    fn split(&self, samples: Vec<Sample>) -> Result<Split, Error> {
        let n = samples.len();
        let x = samples
            .iter()
            .flat_map(|s| (0..4).map(move |j| (s.features[j] - self.mean[j]) / self.std[j]))
            .collect();
        let labels: Vec<usize> = samples.iter().map(|s| s.class).collect();
        let onehot = labels
            .iter()
            .flat_map(|&c| [(c == 0) as u8 as f32, (c == 1) as u8 as f32])
            .collect();
        Ok(Split {
            x: Tensor::from_vec(x, &[n, 4])?,
            onehot: Tensor::from_vec(onehot, &[n, 2])?,
            labels,
            samples,
        })
    }
}

// ---------------------------------------------------------------------------
// The network
// ---------------------------------------------------------------------------

/// `4 → hidden (tanh) → 2`, written out by hand so that every weight has a name:
/// `w1[i, k]` connects input `i` to hidden unit `k`, `w2[k, c]` hidden unit `k` to
/// output `c`.
#[derive(Clone, Debug)]
pub struct Net {
    /// `[4, hidden]`
    pub w1: Tensor,
    /// `[hidden]`
    pub b1: Tensor,
    /// `[hidden, 2]`
    pub w2: Tensor,
    /// `[2]`
    pub b2: Tensor,
}

impl Net {
    /// Random weights (Xavier-normal: small enough that tanh does not saturate),
    /// zero biases, all asking for gradients.
    pub fn new(hidden: usize, rng: &mut StdRng) -> Net {
        Net {
            w1: xavier_normal(&[4, hidden], 1.0, rng).requires_grad(),
            b1: Tensor::zeros(&[hidden]).requires_grad(),
            w2: xavier_normal(&[hidden, 2], 1.0, rng).requires_grad(),
            b2: Tensor::zeros(&[2]).requires_grad(),
        }
    }

    /// The logits `[n, 2]` of inputs `[n, 4]`; `softmax(-1)` of them are the outputs.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let hidden = (x.matmul(&self.w1) + &self.b1).tanh();
        hidden.matmul(&self.w2) + &self.b2
    }

    /// The parameters by name, as they are saved.
    pub fn named(&self) -> [(&'static str, &Tensor); 4] {
        [
            ("w1", &self.w1),
            ("b1", &self.b1),
            ("w2", &self.w2),
            ("b2", &self.b2),
        ]
    }

    /// Handles to the four parameter tensors (sharing their data).
    pub fn parameters(&self) -> Vec<Tensor> {
        self.named().iter().map(|(_, t)| (*t).clone()).collect()
    }

    fn count(&self) -> usize {
        self.named().iter().map(|(_, t)| t.numel()).sum()
    }
}

/// Each sample's loss, `[n]`, from the logits, the one-hot targets and the classes.
///
/// `l1` and `mse` compare the softmax outputs with the one-hot targets and sum over
/// the two outputs, as the story does (`|1 − 0.6| + |0 − 0.4| = 0.8`); `ce` is the
/// cross-entropy of the logits. A batch's loss is the mean of these.
pub fn sample_losses(
    kind: LossKind,
    logits: &Tensor,
    onehot: &Tensor,
    labels: &[usize],
) -> Result<Tensor, Error> {
    Ok(match kind {
        LossKind::L1 => per_sample::l1(&logits.softmax(-1), onehot)?.sum_axis(1, false),
        LossKind::Mse => per_sample::mse(&logits.softmax(-1), onehot)?.sum_axis(1, false),
        LossKind::Ce => per_sample::cross_entropy(logits, labels)?,
    })
}

/// The average loss and the accuracy on a split, without recording a graph.
pub fn evaluate(net: &Net, data: &Split, kind: LossKind) -> Result<(f32, f32), Error> {
    let _guard = no_grad();
    let logits = net.forward(&data.x);
    let loss = sample_losses(kind, &logits, &data.onehot, &data.labels)?.mean();
    let predicted = logits.argmax(-1).to_vec();
    let hits = predicted
        .iter()
        .zip(&data.labels)
        .filter(|(p, &c)| **p as usize == c)
        .count();
    Ok((loss.item(), hits as f32 / data.labels.len() as f32))
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

/// The numbers of the first forward pass, backward pass and update.
#[derive(Clone, Debug)]
pub struct FirstStep {
    /// The sample's softmax outputs (leaf, flower) with the random weights.
    pub outputs: [f32; 2],
    /// Its L1 loss against (1, 0), summed over the outputs.
    pub loss: f32,
    /// The hidden unit whose weight to the "leaf" output is shown, `w2[k, 0]`.
    pub unit: usize,
    /// That weight before the update.
    pub old: f32,
    /// Its gradient, ∂loss/∂w.
    pub grad: f32,
    /// The learning rate of the update.
    pub lr: f32,
    /// The weight after `new = old − lr × grad`.
    pub new: f32,
    /// The sample's loss after the update.
    pub loss_after: f32,
}

/// What a run measured and wrote.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The trained network.
    pub net: Net,
    /// The first step, in numbers.
    pub first: FirstStep,
    /// The average training loss of each epoch; `epoch_losses[0]` is the loss of
    /// the random weights, before training.
    pub epoch_losses: Vec<f32>,
    /// The test loss after each epoch (`[0]`: before training).
    pub test_losses: Vec<f32>,
    /// Accuracy on the training split at the end, in [0, 1].
    pub train_accuracy: f32,
    /// Accuracy on the test split at the end, in [0, 1].
    pub test_accuracy: f32,
    /// How many test samples there were.
    pub test_samples: usize,
    /// The safetensors file with the trained weights.
    pub weights: PathBuf,
    /// The SVG loss curve.
    pub curve: PathBuf,
}

/// Runs the whole story: data, first step, training, evaluation, files.
pub fn run(o: &Options) -> Result<Summary, Error> {
    let lr = o.learning_rate();
    let mut rng = StdRng::seed_from_u64(o.seed);

    println!("Leaf or flower? A network learns to tell them apart by colour and size.");
    println!();

    // 1. the data -----------------------------------------------------------
    let mut samples = generate(o.samples, &mut rng);
    let test_samples = samples.split_off(o.samples - o.samples / 4);
    let scaling = Scaling::of(&samples);
    let train = scaling.split(samples)?;
    let test = scaling.split(test_samples)?;
    let leaves = |s: &Split| s.labels.iter().filter(|&&c| c == 0).count();
    println!("1. The data");
    println!(
        "   {} samples of (R, G, B, Vol), generated from seed {}:",
        o.samples, o.seed
    );
    println!("   colour channels in [0, 1] and volume in cm³, each labelled leaf or flower.");
    println!(
        "   Leaves are greener and smaller, flowers more colourful and larger; autumn leaves,"
    );
    println!("   green flowers and noisy measurements make the classes overlap a little.");
    println!(
        "   train: {} ({} leaves, {} flowers)   test: {} ({} leaves, {} flowers)",
        train.labels.len(),
        leaves(&train),
        train.labels.len() - leaves(&train),
        test.labels.len(),
        leaves(&test),
        test.labels.len() - leaves(&test),
    );
    println!(
        "   Training sees only the train split; the test split checks the network on new samples."
    );
    println!("   Each feature is scaled to mean 0 and standard deviation 1 (train statistics),");
    println!("   so that volume, in cm³, does not drown out colour.");
    println!();

    // 2. the network --------------------------------------------------------
    let net = Net::new(o.hidden, &mut rng);
    println!("2. The network");
    println!(
        "   4 inputs → {} hidden (tanh) → 2 outputs (softmax: leaf, flower); {} weights, random for now.",
        o.hidden,
        net.count()
    );
    println!("   Softmax makes the two outputs positive and sum to 1, like probabilities.");
    println!();

    // 3–5. one forward pass, its gradient, one update -----------------------
    let first = first_step(&net, &train, lr)?;

    // 6. training -----------------------------------------------------------
    // the optimizer holds handles to the weights and updates them in place
    let mut opt: Box<dyn Optimizer> = match o.optimizer {
        OptimizerKind::Sgd => Box::new(Sgd::new(
            net.parameters(),
            SgdConfig {
                lr,
                ..Default::default()
            },
        )),
        OptimizerKind::Adam => Box::new(Adam::new(
            net.parameters(),
            AdamConfig {
                lr,
                ..Default::default()
            },
        )),
    };
    let n_train = train.labels.len();
    let batches_per_epoch = n_train.div_ceil(o.batch_size);
    println!(
        "6. Training: {} epochs of mini-batches of {}",
        o.epochs, o.batch_size
    );
    println!(
        "   loss:          {:<4}  {}",
        o.loss.name(),
        o.loss.describe()
    );
    println!(
        "   optimizer:     {:<4}  {}",
        o.optimizer.name(),
        match o.optimizer {
            OptimizerKind::Sgd => "plain gradient descent, new = old − lr × grad",
            OptimizerKind::Adam => "Adam, each weight's step scaled by its recent gradients",
        },
    );
    println!("   learning rate: {lr}");
    println!("   An epoch visits every training sample once, in a new random order, in {batches_per_epoch} batches;");
    println!(
        "   after each batch, every weight steps against its gradient of the batch's mean loss."
    );
    println!("   The average loss of an epoch is the mean of its {n_train} samples' losses: it should fall.");
    println!("   Epoch 0 is the random network, before any update.");
    // a line per epoch, or per few epochs in a long run (the loss curve has them all)
    let every = o.epochs.div_ceil(30).max(1);
    if every > 1 {
        println!("   (a line every {every} epochs; the loss curve shows them all)");
    }

    let bar = o.progress.then(|| {
        let bar = ProgressBar::new((o.epochs * batches_per_epoch) as u64);
        bar.set_style(
            ProgressStyle::with_template("   [{bar:40}] epoch {msg}  {elapsed}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar
    });
    let say = |line: String| match &bar {
        Some(bar) => bar.println(line),
        None => println!("{line}"),
    };

    let epoch_line = |epoch: usize, train_loss: f32, (test_loss, test_acc): (f32, f32)| {
        format!(
            "   epoch {epoch:>w$}/{}   average loss {train_loss:.4}   test loss {test_loss:.4}   test accuracy {:5.1}%",
            o.epochs,
            100.0 * test_acc,
            w = o.epochs.to_string().len()
        )
    };
    // epoch 0: where the random weights start
    let (initial_loss, _) = evaluate(&net, &train, o.loss)?;
    let initial_test = evaluate(&net, &test, o.loss)?;
    say(epoch_line(0, initial_loss, initial_test));
    let mut epoch_losses = vec![initial_loss];
    let mut test_losses = vec![initial_test.0];
    let mut shuffle_rng = StdRng::seed_from_u64(o.seed ^ 0x5eed);
    for epoch in 1..=o.epochs {
        if let Some(bar) = &bar {
            bar.set_message(format!("{epoch}/{}", o.epochs));
        }
        let mut total = 0.0f64;
        for batch in &Batches::new(n_train, o.batch_size).shuffle(&mut shuffle_rng) {
            // forward: the batch's outputs and its mean loss
            let logits = net.forward(&gather_rows(&train.x, batch));
            let onehot = gather_rows(&train.onehot, batch);
            let labels: Vec<usize> = batch.iter().map(|&i| train.labels[i]).collect();
            let loss = sample_losses(o.loss, &logits, &onehot, &labels)?.mean();
            // backward: the gradient of that loss for every weight
            let grads = loss.backward()?;
            // update: every weight steps against its gradient
            opt.step(&grads)?;
            total += f64::from(loss.item()) * batch.len() as f64;
            if let Some(bar) = &bar {
                bar.inc(1);
            }
        }
        let average = (total / n_train as f64) as f32;
        let tested = evaluate(&net, &test, o.loss)?;
        epoch_losses.push(average);
        test_losses.push(tested.0);
        if epoch % every == 0 || epoch == o.epochs {
            say(epoch_line(epoch, average, tested));
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    println!();

    // 7. the result ---------------------------------------------------------
    let (_, train_accuracy) = evaluate(&net, &train, o.loss)?;
    let (_, test_accuracy) = evaluate(&net, &test, o.loss)?;
    let n_test = test.labels.len();
    println!("7. The result");
    println!(
        "   test accuracy: {:.1}% ({} of {n_test} right; train accuracy {:.1}%)",
        100.0 * test_accuracy,
        (test_accuracy * n_test as f32).round() as usize,
        100.0 * train_accuracy,
    );

    std::fs::create_dir_all(&o.out)?;
    let weights = o.out.join("leaf_flower.safetensors");
    let mean = Tensor::from_slice(&scaling.mean, &[4])?;
    let std = Tensor::from_slice(&scaling.std, &[4])?;
    let mut tensors: Vec<(&str, &Tensor)> = net.named().to_vec();
    tensors.push(("input_mean", &mean));
    tensors.push(("input_std", &std));
    let metadata = BTreeMap::from([
        ("inputs".to_string(), FEATURES.join(",")),
        ("outputs".to_string(), CLASSES.join(",")),
        (
            "model".to_string(),
            "softmax(tanh(((x - input_mean) / input_std) @ w1 + b1) @ w2 + b2)".to_string(),
        ),
        ("loss".to_string(), o.loss.name().to_string()),
        ("optimizer".to_string(), o.optimizer.name().to_string()),
        ("test_accuracy".to_string(), format!("{test_accuracy:.4}")),
    ]);
    save_safetensors_with_metadata(&weights, &tensors, &metadata)?;
    let curve = o.out.join("loss_curve.svg");
    let title = format!(
        "leaf_flower: {} loss, {}, lr {lr}",
        o.loss.name(),
        o.optimizer.name()
    );
    std::fs::write(
        &curve,
        loss_curve_svg(
            &title,
            &[
                ("train (epoch average)", &epoch_losses),
                ("test", &test_losses),
            ],
        ),
    )?;
    println!(
        "   weights:    {}  (w1, b1, w2, b2 and the input scaling)",
        weights.display()
    );
    println!("   loss curve: {}  (open it in a browser)", curve.display());

    Ok(Summary {
        net,
        first,
        epoch_losses,
        test_losses,
        train_accuracy,
        test_accuracy,
        test_samples: n_test,
        weights,
        curve,
    })
}

/// `+0.1234` or `−0.1234` (with a real minus sign, as in the formulas).
fn signed(v: f32) -> String {
    format!("{v:+.4}").replace('-', "−")
}

/// Chapters 3 to 5: the first training sample that is a leaf, through the random
/// network, its L1 loss, one weight's gradient and one update of that weight.
fn first_step(net: &Net, train: &Split, lr: f32) -> Result<FirstStep, Error> {
    // the train split holds three quarters of the samples, more than the flowers
    // (half of them): it has a leaf
    let i = train
        .labels
        .iter()
        .position(|&c| c == 0)
        .expect("a leaf among the training samples");
    let sample = train.samples[i];
    let x = gather_rows(&train.x, &[i]);
    let target = Tensor::<f32>::from_vec(vec![1.0, 0.0], &[1, 2])?;
    let f = sample.features;

    // forward: inputs → logits → softmax outputs → loss
    let outputs = net.forward(&x).softmax(-1);
    let loss = per_sample::l1(&outputs, &target)?.sum();
    let [p_leaf, p_flower] = <[f32; 2]>::try_from(outputs.to_vec()).expect("two outputs");
    println!("3. One forward pass, with the random weights");
    println!(
        "   a sample: R {:.2}  G {:.2}  B {:.2}  Vol {:.2} cm³, a leaf: the target is (1, 0)",
        f[0], f[1], f[2], f[3]
    );
    println!(
        "   outputs: leaf {p_leaf:.4}  flower {p_flower:.4}   (a guess: the weights are random)"
    );
    println!(
        "   L1 loss, summed over the outputs: |1 − {p_leaf:.4}| + |0 − {p_flower:.4}| = {:.4}",
        loss.item()
    );
    println!("   The loss is 0 only for a perfect answer (1, 0); training lowers it.");
    println!();

    // backward: the gradient of the loss for every weight; show the largest in w2
    let grads = loss.backward()?;
    let g2 = grads.get(&net.w2).expect("w2 is used").to_vec();
    let unit = (0..g2.len() / 2)
        .max_by(|&a, &b| g2[2 * a].abs().total_cmp(&g2[2 * b].abs()))
        .expect("at least one hidden unit");
    let w2 = net.w2.to_vec();
    let (old, grad) = (w2[2 * unit], g2[2 * unit]);
    println!("4. Backward: one weight's gradient");
    println!(
        "   loss.backward() gives ∂loss/∂w for all {} weights at once. One of them:",
        net.count()
    );
    println!(
        "   w2[{unit}, 0] (hidden unit {unit} → output \"leaf\") = {old:.4}, its gradient ∂loss/∂w = {}",
        signed(grad)
    );
    println!(
        "   The sign says which way to move: {}.",
        if grad < 0.0 {
            "negative, so increasing this weight lowers the loss"
        } else {
            "positive, so decreasing this weight lowers the loss"
        }
    );
    println!(
        "   The size says how fast: the loss changes by about {:.4} per unit of weight.",
        grad.abs()
    );
    println!();

    // update: new = old − lr × grad, for this one weight
    let new = old - lr * grad;
    let mut updated = w2;
    updated[2 * unit] = new;
    net.w2.assign(&Tensor::from_vec(updated, net.w2.shape())?)?;
    let loss_after = {
        let _guard = no_grad();
        per_sample::l1(&net.forward(&x).softmax(-1), &target)?
            .sum()
            .item()
    };
    println!("5. One gradient-descent update: new = old − lr × grad");
    println!("   new = {old:.4} − {lr} × ({}) = {new:.4}", signed(grad));
    println!(
        "   this sample's loss: {:.4} → {loss_after:.4}",
        loss.item()
    );
    println!(
        "   as the gradient predicted: loss + grad × change = {:.4} + ({}) × ({}) = {:.4}",
        loss.item(),
        signed(grad),
        signed(new - old),
        loss.item() + grad * (new - old),
    );
    println!("   Training does this for every weight at once, batch after batch.");
    println!();

    Ok(FirstStep {
        outputs: [p_leaf, p_flower],
        loss: loss.item(),
        unit,
        old,
        grad,
        lr,
        new,
        loss_after,
    })
}

// ---------------------------------------------------------------------------
// The loss curve, as a hand-written SVG
// ---------------------------------------------------------------------------

/// A "nice" step (1, 2 or 5 times a power of ten) near `range / target_ticks`.
fn nice_step(range: f64, target_ticks: f64) -> f64 {
    let raw = (range / target_ticks).max(f64::MIN_POSITIVE);
    let power = 10f64.powf(raw.log10().floor());
    let m = raw / power;
    power
        * if m <= 1.0 {
            1.0
        } else if m <= 2.0 {
            2.0
        } else if m <= 5.0 {
            5.0
        } else {
            10.0
        }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG line chart of loss series against the epoch (value `e` of a series is
/// drawn at epoch `e`, so the first one, at 0, is the loss before training): axes
/// with ticks and labels, one polyline per series, a legend.
pub fn loss_curve_svg(title: &str, series: &[(&str, &[f32])]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 440.0;
    const LEFT: f64 = 72.0;
    const RIGHT: f64 = 24.0;
    const TOP: f64 = 48.0;
    const BOTTOM: f64 = 64.0;
    const COLOURS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];
    let last_epoch = series
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(0)
        .max(2)
        - 1;
    let top_value = series
        .iter()
        .flat_map(|(_, v)| v.iter())
        .filter(|v| v.is_finite())
        .fold(0f64, |m, &v| m.max(f64::from(v)));
    let y_step = nice_step(if top_value > 0.0 { top_value } else { 1.0 }, 5.0);
    let y_max = (top_value / y_step).ceil().max(1.0) * y_step;
    let x_step = nice_step(last_epoch as f64, 8.0).max(1.0) as usize;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x_of = |epoch: f64| LEFT + epoch / last_epoch as f64 * plot_w;
    let y_of = |v: f64| TOP + plot_h * (1.0 - v / y_max);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="16">{}</text>"#,
        W / 2.0,
        xml_escape(title)
    );
    // horizontal grid lines and y ticks
    let mut k = 0;
    while f64::from(k) * y_step <= y_max * (1.0 + 1e-9) {
        let v = f64::from(k) * y_step;
        let y = y_of(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e0e0e0"/>"##,
            W - RIGHT
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + 4.0,
            trim_number(v)
        );
        k += 1;
    }
    // x ticks at epochs 0, x_step, 2·x_step, …
    for e in (0..=last_epoch).step_by(x_step) {
        let x = x_of(e as f64);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="black"/>"#,
            H - BOTTOM,
            H - BOTTOM + 5.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{e}</text>"#,
            H - BOTTOM + 20.0
        );
    }
    // axes and their labels
    let _ = writeln!(
        s,
        r#"<polyline points="{LEFT},{TOP} {LEFT},{:.1} {:.1},{:.1}" fill="none" stroke="black"/>"#,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">epoch</text>"#,
        LEFT + plot_w / 2.0,
        H - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">average loss</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    // the series and the legend
    for (i, (name, values)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(e, &v)| format!("{:.1},{:.1}", x_of(e as f64), y_of(f64::from(v))))
            .collect();
        let dash = if i == 0 {
            ""
        } else {
            r#" stroke-dasharray="6 4""#
        };
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
            points.join(" ")
        );
        let ly = TOP + 12.0 + 20.0 * i as f64;
        let lx = W - RIGHT - 200.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/>"#,
            lx + 28.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{}</text>"#,
            lx + 36.0,
            ly + 4.0,
            xml_escape(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// `0.30000000000000004` → `0.3`.
fn trim_number(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
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
