//! The data: the text, its tokens, the training and held-out splits, and the
//! windows that make batches.
//!
//! - `--corpus FILE`: the whole file read as UTF-8; the first 90% of its
//!   characters (`n · 9 / 10`, rounded down) are the training text, the rest
//!   the held-out text. The char vocabulary is the sorted set of the characters
//!   of the whole file; BPE is trained on the training text only.
//! - the additions corpus: the training lines and the held-out lines (see
//!   [`additions`](super::additions)), char tokens.
//!
//! A training batch is `batch` windows of `context + 1` tokens (inputs the first
//! `context`, targets the same shifted by one) at uniformly random starts. In a
//! `--corpus` run a window may start at any token; in the additions corpus it
//! starts at the beginning of a line (every line has 13 tokens), so that the
//! default context of 12 holds one addition and its answer, as a prompt does.

use std::path::Path;

use ferrograd::data::gather_rows;
use ferrograd::nn::{Gpt, RngState};
use ferrograd::rand::RngExt;
use ferrograd::text::{BpeTokenizer, CharTokenizer, Tokenizer};
use ferrograd::Error;
use ferrograd::{loss, Tensor};

use super::additions::{Additions, Pair, LINE_LEN, PROMPT_LEN};
use super::options::{Options, TokenizerKind};

/// A character or a BPE tokenizer.
#[derive(Clone, Debug)]
pub enum Tok {
    Char(CharTokenizer),
    Bpe(BpeTokenizer),
}

impl Tok {
    /// The tokenizer as the text of its file (kept in a checkpoint).
    pub fn to_text(&self) -> String {
        match self {
            Tok::Char(t) => t.to_text(),
            Tok::Bpe(t) => t.to_text(),
        }
    }

    /// Reads what [`to_text`](Tok::to_text) wrote.
    pub fn from_text(kind: TokenizerKind, text: &str) -> Result<Tok, Error> {
        Ok(match kind {
            TokenizerKind::Char => Tok::Char(CharTokenizer::from_text(text)?),
            TokenizerKind::Bpe => Tok::Bpe(BpeTokenizer::from_text(text)?),
        })
    }

    /// The tokenizer as the trait object.
    pub fn as_dyn(&self) -> &dyn Tokenizer {
        match self {
            Tok::Char(t) => t,
            Tok::Bpe(t) => t,
        }
    }

    /// The tokens of `text`, as `u32`s.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, Error> {
        Ok(self
            .as_dyn()
            .encode(text)?
            .into_iter()
            .map(|id| id as u32)
            .collect())
    }

    /// The text of `ids`; bytes that are not (yet) UTF-8 show as `�`.
    pub fn decode_lossy(&self, ids: &[usize]) -> String {
        match self {
            Tok::Char(t) => t.decode(ids).unwrap_or_default(),
            Tok::Bpe(t) => match t.decode_bytes(ids) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(_) => String::new(),
            },
        }
    }

    /// How many ids.
    pub fn vocab_size(&self) -> usize {
        self.as_dyn().vocab_size()
    }
}

/// The tokens of one split, and where windows may start.
#[derive(Clone, Debug)]
pub struct Split {
    /// The tokens, in order.
    pub tokens: Vec<u32>,
    /// Windows start at multiples of this (1: anywhere; 13: at line starts).
    pub align: usize,
    /// The loss is over the answers' tokens only (the 4 digits and the
    /// newline of each addition; `--loss answers`), not every token.
    pub answers_only: bool,
}

impl Split {
    /// How many windows of `context + 1` tokens can start in the split.
    pub fn window_starts(&self, context: usize) -> usize {
        if self.tokens.len() < context + 1 {
            0
        } else {
            (self.tokens.len() - context - 1) / self.align + 1
        }
    }

    /// The inputs and targets of the windows starting at `starts` (each
    /// `context` tokens, row after row).
    pub fn windows(&self, starts: &[usize], context: usize) -> (Vec<usize>, Vec<usize>) {
        let mut inputs = Vec::with_capacity(starts.len() * context);
        let mut targets = Vec::with_capacity(starts.len() * context);
        for &s in starts {
            let w = &self.tokens[s..s + context + 1];
            inputs.extend(w[..context].iter().map(|&t| t as usize));
            targets.extend(w[1..].iter().map(|&t| t as usize));
        }
        (inputs, targets)
    }

    /// The rows of the `[windows · context]` targets that the loss counts: all,
    /// or with `answers_only` those that predict an answer's token (a target
    /// at position `p` of a window is character `(p + 1) mod 13` of a line; the
    /// answer is characters 8 to 12).
    pub fn loss_rows(&self, windows: usize, context: usize) -> Option<Vec<usize>> {
        self.answers_only.then(|| {
            (0..windows * context)
                .filter(|&r| (r % context + 1) % LINE_LEN >= PROMPT_LEN)
                .collect()
        })
    }

    /// The mean next-token loss of the windows starting at `starts` (over
    /// their answers' tokens with `answers_only`), recorded for backward.
    pub fn loss(&self, gpt: &Gpt, starts: &[usize], context: usize) -> Tensor {
        let (inputs, targets) = self.windows(starts, context);
        match self.loss_rows(starts.len(), context) {
            None => gpt.loss(&inputs, &targets, starts.len()),
            Some(rows) => {
                let logits = gpt.forward_ids(&inputs, starts.len());
                let vocab = logits.shape()[2];
                let picked = gather_rows(&logits.reshape(&[starts.len() * context, vocab]), &rows);
                let picked_targets: Vec<usize> = rows.iter().map(|&r| targets[r]).collect();
                loss::cross_entropy(&picked, &picked_targets).expect("targets in the vocabulary")
            }
        }
    }

    /// `batch` random window starts drawn from `rng`.
    pub fn random_starts<R: ferrograd::rand::Rng + ?Sized>(
        &self,
        batch: usize,
        context: usize,
        rng: &mut R,
    ) -> Vec<usize> {
        let n = self.window_starts(context);
        (0..batch)
            .map(|_| rng.random_range(0..n) * self.align)
            .collect()
    }

    /// The starts of the non-overlapping windows over which `final val loss`
    /// is taken: window `i` starts at `i · stride`, with the stride `context`
    /// rounded up to a multiple of the alignment (so `context` itself in a
    /// `--corpus` run), for every `i` whose window fits.
    pub fn tiling_starts(&self, context: usize) -> Vec<usize> {
        let stride = context.div_ceil(self.align) * self.align;
        (0..)
            .map(|i| i * stride)
            .take_while(|&s| s + context < self.tokens.len())
            .collect()
    }
}

/// The two splits with their tokenizer.
#[derive(Clone, Debug)]
pub struct Data {
    pub tokenizer: Tok,
    pub train: Split,
    pub val: Split,
    /// The additions corpus's pairs, when it is the data.
    pub additions: Option<Additions>,
    /// One line about the data, for the run's log.
    pub description: String,
}

/// A stream of random batches whose whole state is an [`RngState`]: batch `n`
/// is drawn from the RNG of `(seed, n)`, so a checkpoint that saves the state
/// resumes with the same batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchStream {
    pub state: RngState,
}

/// Tells the data stream's seed from the other streams made from `--seed`.
pub const DATA_STREAM: u64 = 0x6461_7461_0000_0000;
/// The evaluation stream's tag: evaluation `k` (after step `k`) draws from
/// `(seed ^ EVAL_STREAM, k)`, with no state to keep.
pub const EVAL_STREAM: u64 = 0x6576_616c_0000_0000;

impl BatchStream {
    /// The stream of a run seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        BatchStream {
            state: RngState::new(seed ^ DATA_STREAM, 0),
        }
    }

    /// The next batch's window starts.
    pub fn next(&mut self, split: &Split, batch: usize, context: usize) -> Vec<usize> {
        let starts = split.random_starts(batch, context, &mut self.state.rng());
        self.state.draws += 1;
        starts
    }
}

impl Data {
    /// The data of a run: the additions corpus, or `--corpus` read, split and
    /// tokenized (with `saved`, the tokenizer of a checkpoint, if resuming).
    pub fn load(o: &Options, saved: Option<&str>) -> Result<Data, Error> {
        match &o.corpus {
            None => Ok(Self::additions(o.holdout)),
            Some(path) => Self::corpus(path, o, saved),
        }
        .map(|mut d| {
            d.train.answers_only = o.answers_only;
            d.val.answers_only = o.answers_only;
            d
        })
    }

    /// The additions corpus with `holdout` held-out pairs.
    pub fn additions(holdout: usize) -> Data {
        let adds = Additions::new(holdout);
        let tok = CharTokenizer::train(super::additions::ALPHABET);
        let encode = |pairs: &[Pair]| -> Vec<u32> {
            let mut out = Vec::with_capacity(pairs.len() * LINE_LEN);
            for p in pairs {
                p.push_ids(&mut out);
            }
            out
        };
        let train = encode(&adds.train);
        let val = encode(&adds.held_out);
        let description = format!(
            "additions a+b=c of 3-digit numbers, answer digits reversed: {} training lines, \
             {} held-out pairs (neither order trained on); {} tokens of {} characters",
            adds.train.len(),
            adds.held_out.len(),
            train.len(),
            tok.vocab_size(),
        );
        Data {
            tokenizer: Tok::Char(tok),
            train: Split {
                tokens: train,
                align: LINE_LEN,
                answers_only: false,
            },
            val: Split {
                tokens: val,
                align: LINE_LEN,
                answers_only: false,
            },
            additions: Some(adds),
            description,
        }
    }

    /// A text file, split 90/10 by characters.
    pub fn corpus(path: &Path, o: &Options, saved: Option<&str>) -> Result<Data, Error> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Format(format!("--corpus {}: {e}", path.display())))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| Error::Format(format!("--corpus {}: not UTF-8 ({e})", path.display())))?;
        let n_chars = text.chars().count();
        let cut = text
            .char_indices()
            .nth(n_chars * 9 / 10)
            .map_or(text.len(), |(i, _)| i);
        let (train_text, val_text) = text.split_at(cut);
        let tokenizer = match (saved, o.tokenizer) {
            (Some(saved), kind) => Tok::from_text(kind, saved)?,
            (None, TokenizerKind::Char) => Tok::Char(CharTokenizer::train(&text)),
            (None, TokenizerKind::Bpe) => Tok::Bpe(BpeTokenizer::train(train_text, o.vocab)?),
        };
        let train = tokenizer.encode(train_text)?;
        let val = tokenizer.encode(val_text)?;
        for (name, split) in [("training", &train), ("held-out", &val)] {
            if split.len() < o.context + 1 {
                return Err(Error::Format(format!(
                    "--corpus {}: the {name} split has {} tokens, fewer than a window of \
                     --context {} + 1",
                    path.display(),
                    split.len(),
                    o.context
                )));
            }
        }
        let description = format!(
            "{}: {n_chars} characters, {} training and {} held-out tokens ({} tokenizer, \
             {} ids)",
            path.display(),
            train.len(),
            val.len(),
            o.tokenizer,
            tokenizer.vocab_size()
        );
        Ok(Data {
            tokenizer,
            train: Split {
                tokens: train,
                align: 1,
                answers_only: false,
            },
            val: Split {
                tokens: val,
                align: 1,
                answers_only: false,
            },
            additions: None,
            description,
        })
    }
}
