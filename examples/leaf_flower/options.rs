//! The command line: which loss, which optimizer, how many epochs, where the files go.

use std::path::{Path, PathBuf};

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

    pub fn describe(self) -> &'static str {
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
