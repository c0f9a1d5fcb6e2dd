//! The command line: every setting of a run, its default, and the checks that
//! turn a bad flag into a clear message.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// How text becomes tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// One token per character; the vocabulary is the sorted set of the
    /// characters of the whole text.
    Char,
    /// Byte-level byte-pair encoding with `--vocab` ids, trained on the training
    /// text.
    Bpe,
}

/// The learning rate over the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleKind {
    /// Linear warm-up from 0 over `--warmup` steps, then a cosine down to lr/10
    /// at the last step (nanoGPT's).
    Cosine,
    /// `--lr` at every step.
    Constant,
}

/// Where the positions come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PositionsKind {
    /// A learned embedding per position (`wpe.weight`).
    Learned,
    /// Fixed sine/cosine waves (Vaswani et al.), nothing to learn.
    Sinusoidal,
}

macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Its name on the command line.
            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
            fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some($ty::$variant),)+ _ => None }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
names!(TokenizerKind { Char => "char", Bpe => "bpe" });
names!(ScheduleKind { Cosine => "cosine", Constant => "constant" });
names!(PositionsKind { Learned => "learned", Sinusoidal => "sinusoidal" });

/// Everything a run can be told.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The text to learn; `None`: the additions corpus the example generates.
    pub corpus: Option<PathBuf>,
    /// Char or BPE tokens.
    pub tokenizer: TokenizerKind,
    /// The BPE vocabulary size (256 bytes + merges).
    pub vocab: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// The model's width (d_model).
    pub width: usize,
    /// Tokens the model sees at once.
    pub context: usize,
    /// Windows per training batch.
    pub batch: usize,
    /// The peak learning rate.
    pub lr: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// Training steps of the whole run (the schedule's length).
    pub steps: usize,
    /// Dropout probability (embeddings, attention weights, residual branches).
    pub dropout: f64,
    /// Evaluate every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Batches of random windows per split in each periodic evaluation.
    pub eval_batches: usize,
    /// AdamW's weight decay, on the 2-D weights only.
    pub weight_decay: f64,
    /// The bound on the global gradient norm (0: no clipping).
    pub clip: f64,
    /// Biases in the linear layers and layer norms.
    pub bias: bool,
    /// Seeds the weights, the dropout masks, the batches and the sampling.
    pub seed: u64,
    /// Threads the kernels run on, the calling one included (`None`: one per core).
    pub threads: Option<usize>,
    /// Where the checkpoint, the loss curve and the CSV go.
    pub out: PathBuf,
    /// Continue from the checkpoint in `out`.
    pub resume: bool,
    /// The learning-rate schedule.
    pub schedule: ScheduleKind,
    /// AdamW's β₂.
    pub beta2: f64,
    /// Learned or sinusoidal positions.
    pub positions: PositionsKind,
    /// The output layer shares the token embedding's weights.
    pub tied: bool,
    /// Tokens to sample at the end (0: none).
    pub sample: usize,
    /// Sampling temperature (0: greedy).
    pub temperature: f64,
    /// Sample among the `k` likeliest tokens only.
    pub top_k: Option<usize>,
    /// The text the samples start from (default: a newline, or a held-out
    /// addition's prompt).
    pub prompt: Option<String>,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// The loss counts the answers' tokens only (the additions corpus only).
    pub answers_only: bool,
    /// Held-out additions (the additions corpus only).
    pub holdout: usize,
    /// Stop after this step, as if interrupted (the checkpoint is written).
    pub stop_after: Option<usize>,
    /// No progress bar.
    pub quiet: bool,
    /// Draw a progress bar (set by `main` when stdout is a terminal).
    pub progress: bool,
    /// The flags given on the command line (names without `--`), for `--resume`
    /// to tell a setting asked for from a default.
    pub given: Vec<String>,
}

impl Default for Options {
    /// The default run: the additions corpus.
    fn default() -> Self {
        Options {
            corpus: None,
            tokenizer: TokenizerKind::Char,
            vocab: 512,
            layers: 2,
            heads: 4,
            width: 128,
            context: 12,
            batch: 128,
            lr: 1e-3,
            warmup: 100,
            steps: 1500,
            dropout: 0.0,
            eval_every: 250,
            eval_batches: 4,
            weight_decay: 0.1,
            clip: 1.0,
            bias: true,
            seed: 1,
            threads: None,
            out: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tiny_gpt"),
            resume: false,
            schedule: ScheduleKind::Cosine,
            beta2: 0.99,
            positions: PositionsKind::Learned,
            tied: true,
            sample: 50,
            temperature: 0.8,
            top_k: None,
            prompt: None,
            checkpoint_every: 500,
            holdout: 1000,
            answers_only: false,
            stop_after: None,
            quiet: false,
            progress: false,
            given: Vec::new(),
        }
    }
}

impl Options {
    /// The defaults for a `--corpus` run: nanoGPT's CPU configuration for
    /// character-level Shakespeare (4 layers, 4 heads, width 128, context 64,
    /// batch 12, lr 1e-3, 100 warm-up steps, 2000 steps), with biases.
    pub fn corpus_defaults(path: PathBuf) -> Self {
        Options {
            corpus: Some(path),
            answers_only: false,
            layers: 4,
            heads: 4,
            width: 128,
            context: 64,
            batch: 12,
            lr: 1e-3,
            warmup: 100,
            steps: 2000,
            eval_every: 250,
            eval_batches: 20,
            sample: 200,
            ..Options::default()
        }
    }
}

/// The command-line help.
pub const USAGE: &str = "\
usage: cargo run --release --example tiny_gpt -- [options]

Trains a small GPT. Without --corpus, on additions it generates itself:
lines `a+b=c` with a and b in 100..=999 and the sum c written with its digits
REVERSED and padded to 4 digits (123+456=579 is the line `123+456=9750`): a
model writes the ones digit first, as one adds by hand. 1000 pairs {a, b} are
held out (neither a+b nor b+a is ever trained on); the model answers them by
greedy decoding and the exact-match accuracy is reported.

data
  --corpus FILE            train on a UTF-8 text; its last 10% (characters) held out
  --tokenizer char|bpe     tokens (default char; bpe needs --corpus)
  --vocab N                BPE vocabulary size, 256 bytes + merges (default 512)
  --holdout N              held-out additions (default 1000)
  --loss all|answers       what the loss counts on the additions: every token
                           (default), or the answers' tokens only (the 4 digits
                           and the newline, as minGPT's adder)
model
  --layers N               transformer blocks (default 2; corpus 4)
  --heads N                attention heads (default 4)
  --width N                model width d_model (default 128)
  --context N              tokens seen at once (default 12, one addition; corpus 64)
  --dropout X              dropout probability (default 0)
  --no-bias                no biases in the linear layers and layer norms
  --positions learned|sinusoidal   position embeddings (default learned)
  --untied                 an output layer of its own (default: tied to the embedding)
training
  --batch N                windows per batch (default 128; corpus 12)
  --steps N                training steps (default 1500; corpus 2000)
  --lr X                   peak learning rate (default 0.001)
  --warmup N               linear warm-up steps (default 100)
  --schedule cosine|constant   cosine: warm-up, then cosine to lr/10 at the last
                           step (default); constant: lr throughout
  --beta2 X                AdamW's beta2 (default 0.99; beta1 0.9)
  --weight-decay X         AdamW's decay of the 2-D weights (default 0.1)
  --clip X                 global gradient-norm bound, 0 = off (default 1)
  --seed N                 weights, dropout, batches and sampling (default 1)
  --threads N              threads, the main one included (default: one per core)
evaluation and files
  --eval-every N           evaluate every N steps, 0 = only at the end (default 250)
  --eval-batches N         batches of random windows per evaluation (default 4; corpus 20)
  --out DIR                checkpoint, loss curve (SVG) and losses (CSV)
                           (default target/tiny_gpt in the crate)
  --checkpoint-every N     also checkpoint every N steps, 0 = only at the end (default 500)
  --resume                 continue from DIR/checkpoint.safetensors (its settings are
                           used; --steps may extend the run; --steps 0 only samples)
  --stop-after N           stop after step N as if interrupted, checkpoint written
                           (to try --resume)
  --quiet                  no progress bar
sampling (at the end)
  --sample N               tokens to sample, 0 = none (default 50: the answers to 10
                           held-out prompts, 5 tokens each; corpus 200)
  --temperature X          0 = greedy (default 0.8)
  --top-k K                sample among the K likeliest tokens only
  --prompt S               where the sample starts (default: a newline; on the
                           additions, each held-out prompt a+b=)
  --help                   this text";

/// The flags that take no value.
const SWITCHES: [&str; 5] = ["no-bias", "untied", "resume", "quiet", "help"];

/// The flags that take a value.
const VALUED: &[&str] = &[
    "corpus",
    "loss",
    "tokenizer",
    "vocab",
    "holdout",
    "layers",
    "heads",
    "width",
    "context",
    "batch",
    "lr",
    "warmup",
    "steps",
    "dropout",
    "eval-every",
    "eval-batches",
    "weight-decay",
    "clip",
    "seed",
    "threads",
    "out",
    "schedule",
    "beta2",
    "positions",
    "sample",
    "temperature",
    "top-k",
    "prompt",
    "checkpoint-every",
    "stop-after",
];

/// The flags that set the model, the data or the training: on `--resume` they
/// come from the checkpoint, and one given on the command line must agree.
pub const RUN_SETTINGS: [&str; 22] = [
    "corpus",
    "tokenizer",
    "vocab",
    "holdout",
    "loss",
    "layers",
    "heads",
    "width",
    "context",
    "dropout",
    "no-bias",
    "positions",
    "untied",
    "batch",
    "lr",
    "warmup",
    "schedule",
    "beta2",
    "weight-decay",
    "clip",
    "seed",
    "eval-batches",
];

impl Options {
    /// Parses the command-line arguments (without the program name): each
    /// option as `--name value` or `--name=value`. `Ok(None)` means `--help`.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, String> {
        let pairs = split_args(args)?;
        if pairs.iter().any(|(n, _)| n == "help") {
            return Ok(None);
        }
        let mut o = match pairs.iter().rev().find(|(n, _)| n == "corpus") {
            Some((_, Some(path))) => Options::corpus_defaults(PathBuf::from(path)),
            _ => Options::default(),
        };
        for (name, value) in &pairs {
            o.set(name, value.as_deref())?;
            if !o.given.contains(name) {
                o.given.push(name.clone());
            }
        }
        o.check()?;
        Ok(Some(o))
    }

    /// Applies one flag.
    fn set(&mut self, name: &str, value: Option<&str>) -> Result<(), String> {
        let v = value.unwrap_or("");
        let bad = |what: &str| format!("--{name}: expected {what}, got '{v}'");
        let count = || v.parse::<usize>().map_err(|_| bad("a whole number"));
        let at_least_1 = || {
            v.parse::<usize>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| bad("a whole number ≥ 1"))
        };
        let number = |ok: fn(f64) -> bool, what: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && ok(*x))
                .ok_or_else(|| bad(what))
        };
        match name {
            "corpus" => self.corpus = Some(PathBuf::from(v)),
            "tokenizer" => {
                self.tokenizer = TokenizerKind::parse(v).ok_or_else(|| bad("char or bpe"))?
            }
            "vocab" => {
                self.vocab = v
                    .parse()
                    .ok()
                    .filter(|&n| n >= 256)
                    .ok_or_else(|| bad("a whole number ≥ 256 (the bytes and the merges)"))?
            }
            "holdout" => self.holdout = at_least_1()?,
            "loss" => {
                self.answers_only = match v {
                    "answers" => true,
                    "all" => false,
                    _ => return Err(bad("answers or all")),
                }
            }
            "layers" => self.layers = at_least_1()?,
            "heads" => self.heads = at_least_1()?,
            "width" => self.width = at_least_1()?,
            "context" => self.context = at_least_1()?,
            "batch" => self.batch = at_least_1()?,
            "lr" => self.lr = number(|x| x > 0.0, "a positive number")?,
            "warmup" => self.warmup = count()?,
            "steps" => self.steps = count()?,
            "dropout" => self.dropout = number(|x| (0.0..1.0).contains(&x), "a number in [0, 1)")?,
            "eval-every" => self.eval_every = count()?,
            "eval-batches" => self.eval_batches = at_least_1()?,
            "weight-decay" => self.weight_decay = number(|x| x >= 0.0, "a number ≥ 0")?,
            "clip" => self.clip = number(|x| x >= 0.0, "a number ≥ 0")?,
            "no-bias" => self.bias = false,
            "seed" => self.seed = v.parse().map_err(|_| bad("a whole number"))?,
            "threads" => self.threads = Some(at_least_1()?),
            "out" => self.out = PathBuf::from(v),
            "resume" => self.resume = true,
            "schedule" => {
                self.schedule = ScheduleKind::parse(v).ok_or_else(|| bad("cosine or constant"))?
            }
            "beta2" => self.beta2 = number(|x| (0.0..1.0).contains(&x), "a number in [0, 1)")?,
            "positions" => {
                self.positions =
                    PositionsKind::parse(v).ok_or_else(|| bad("learned or sinusoidal"))?
            }
            "untied" => self.tied = false,
            "sample" => self.sample = count()?,
            "temperature" => self.temperature = number(|x| x >= 0.0, "a number ≥ 0")?,
            "top-k" => self.top_k = Some(at_least_1()?),
            "prompt" => self.prompt = Some(v.to_string()),
            "checkpoint-every" => self.checkpoint_every = count()?,
            "stop-after" => self.stop_after = Some(count()?),
            "quiet" => self.quiet = true,
            _ => return Err(format!("unknown option '--{name}'")),
        }
        Ok(())
    }

    /// The checks between flags.
    pub fn check(&self) -> Result<(), String> {
        if !self.width.is_multiple_of(self.heads) {
            return Err(format!(
                "--width {} is not a multiple of --heads {}: each head gets width/heads dimensions",
                self.width, self.heads
            ));
        }
        if self.corpus.is_none() && self.tokenizer == TokenizerKind::Bpe {
            return Err(
                "--tokenizer bpe needs --corpus: the additions corpus uses one token per character"
                    .to_string(),
            );
        }
        if self.corpus.is_some() && self.answers_only {
            return Err("--loss answers is for the additions corpus: a text has no answers".into());
        }
        if self.corpus.is_none() && self.holdout > super::additions::MAX_HOLDOUT {
            return Err(format!(
                "--holdout {}: at most {} pairs can be held out",
                self.holdout,
                super::additions::MAX_HOLDOUT
            ));
        }
        Ok(())
    }

    /// The settings that define a run (the model, the data, the training), as
    /// text: what a checkpoint keeps in its metadata, and what `--resume` reads
    /// back with [`Options::with_run_settings`].
    pub fn run_settings(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put(
            "corpus",
            self.corpus
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string()),
        );
        put("tokenizer", self.tokenizer.to_string());
        put("vocab", self.vocab.to_string());
        put("holdout", self.holdout.to_string());
        put(
            "loss",
            (if self.answers_only { "answers" } else { "all" }).to_string(),
        );
        put("layers", self.layers.to_string());
        put("heads", self.heads.to_string());
        put("width", self.width.to_string());
        put("context", self.context.to_string());
        put("dropout", self.dropout.to_string());
        put("bias", self.bias.to_string());
        put("positions", self.positions.to_string());
        put("tied", self.tied.to_string());
        put("batch", self.batch.to_string());
        put("lr", self.lr.to_string());
        put("warmup", self.warmup.to_string());
        put("steps", self.steps.to_string());
        put("schedule", self.schedule.to_string());
        put("beta2", self.beta2.to_string());
        put("weight-decay", self.weight_decay.to_string());
        put("clip", self.clip.to_string());
        put("seed", self.seed.to_string());
        put("eval-batches", self.eval_batches.to_string());
        m
    }

    /// These options with the run settings of a checkpoint (as
    /// [`run_settings`](Options::run_settings) wrote them). A setting given on
    /// the command line that differs from the checkpoint's is an error naming
    /// it; `--steps` given on the command line extends (or shortens) the run,
    /// and the schedule with it.
    pub fn with_run_settings(&self, saved: &BTreeMap<String, String>) -> Result<Options, String> {
        let mut o = self.clone();
        let get = |k: &str| {
            saved
                .get(k)
                .cloned()
                .ok_or_else(|| format!("the checkpoint's settings lack '{k}'"))
        };
        let corpus = get("corpus")?;
        o.corpus = (!corpus.is_empty()).then(|| PathBuf::from(corpus));
        for key in RUN_SETTINGS {
            match key {
                "corpus" => {}
                "no-bias" => o.bias = get("bias")? == "true",
                "untied" => o.tied = get("tied")? == "true",
                _ => o
                    .set(key, Some(&get(key)?))
                    .map_err(|e| format!("the checkpoint's settings: {e}"))?,
            }
        }
        if !self.given.iter().any(|g| g == "steps") {
            o.set("steps", Some(&get("steps")?))?;
        }
        for key in RUN_SETTINGS {
            if self.given.iter().any(|g| g == key) && o.run_setting(key) != self.run_setting(key) {
                return Err(format!(
                    "--resume: the checkpoint was trained with {}, not {} as asked \
                     (leave the option out to use the checkpoint's)",
                    o.run_setting(key),
                    self.run_setting(key)
                ));
            }
        }
        o.check()?;
        Ok(o)
    }

    /// One run setting as it would be written on the command line.
    fn run_setting(&self, key: &str) -> String {
        match key {
            "no-bias" => (if self.bias { "biases" } else { "--no-bias" }).to_string(),
            "untied" => (if self.tied {
                "tied weights"
            } else {
                "--untied"
            })
            .to_string(),
            "corpus" => match &self.corpus {
                Some(p) => format!("--corpus {}", p.display()),
                None => "the additions corpus".to_string(),
            },
            _ => format!("--{key} {}", self.run_settings()[key]),
        }
    }
}

/// Splits the arguments into `(name, value)` pairs, names without the `--`.
fn split_args<I: IntoIterator<Item = String>>(
    args: I,
) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" {
            out.push(("help".to_string(), None));
            continue;
        }
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument '{arg}'"));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        if SWITCHES.contains(&name.as_str()) {
            if inline.is_some() {
                return Err(format!("--{name} takes no value"));
            }
            out.push((name, None));
            continue;
        }
        if !VALUED.contains(&name.as_str()) {
            return Err(format!("unknown option '--{name}'"));
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("--{name} needs a value")),
        };
        out.push((name, Some(value)));
    }
    Ok(out)
}
