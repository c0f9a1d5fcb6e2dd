//! The additions corpus: every sum of two 3-digit numbers, written with the
//! answer's digits reversed, with a held-out set of pairs that training never
//! sees in either order.
//!
//! A line is `a+b=r\n` with `a, b` in `100..=999` and `r` the sum `a + b`
//! padded to 4 digits and written backwards: `123+456=579` is the line
//! `123+456=9750`. Reversed, the answer comes out in the order one adds by hand,
//! ones first, each digit depending on digits already written (and a carry);
//! every line has the same 13 characters, so each digit has its own position.
//!
//! The held-out pairs are disjoint from the training pairs by construction: the
//! 405 450 unordered pairs `{a, b}` are permuted with a fixed seed; the first
//! `holdout` of them are held out (each in one order, chosen by a coin of the
//! same stream), and every other pair is a training line in both orders
//! (`a+b` and `b+a`, once when `a = b`). So neither `a+b` nor `b+a` of a
//! held-out pair is ever trained on. The corpus does not depend on `--seed`:
//! every run is scored on the same held-out pairs.

use ferrograd::rand::rngs::StdRng;
use ferrograd::rand::seq::SliceRandom;
use ferrograd::rand::{RngExt, SeedableRng};

/// The smallest operand.
pub const LOW: u32 = 100;
/// The largest operand.
pub const HIGH: u32 = 999;
/// Characters per line: `ddd+ddd=dddd\n`.
pub const LINE_LEN: usize = 13;
/// Characters of a prompt, `ddd+ddd=`.
pub const PROMPT_LEN: usize = 8;
/// Digits of an answer.
pub const ANSWER_DIGITS: usize = 4;
/// The seed of the permutation of the pairs (fixed: the held-out pairs are the
/// same in every run).
pub const DATA_SEED: u64 = 0xadd5;
/// At most this many pairs are held out (a quarter of them).
pub const MAX_HOLDOUT: usize = 100_000;
/// The characters of the corpus.
pub const ALPHABET: &str = "\n+0123456789=";

/// An addition `a + b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pair {
    pub a: u32,
    pub b: u32,
}

impl Pair {
    /// The prompt the model continues: `a+b=`.
    pub fn prompt(self) -> String {
        format!("{}+{}=", self.a, self.b)
    }

    /// The answer as written in the corpus: the sum's 4 digits reversed.
    pub fn answer(self) -> String {
        format!("{:04}", self.a + self.b).chars().rev().collect()
    }

    /// The whole line, newline included.
    pub fn line(self) -> String {
        format!("{}{}\n", self.prompt(), self.answer())
    }

    /// Appends the line's char-tokenizer ids (ranks in [`ALPHABET`], which is
    /// sorted) to `out`: what the tokenizer gives for [`line`](Pair::line),
    /// without making the text.
    pub fn push_ids(self, out: &mut Vec<u32>) {
        const NEWLINE: u32 = 0;
        const PLUS: u32 = 1;
        const ZERO: u32 = 2;
        const EQUALS: u32 = 12;
        let digits = |n: u32, out: &mut Vec<u32>| {
            out.extend([n / 100, n / 10 % 10, n % 10].map(|d| ZERO + d));
        };
        digits(self.a, out);
        out.push(PLUS);
        digits(self.b, out);
        out.push(EQUALS);
        let sum = self.a + self.b;
        out.extend([sum % 10, sum / 10 % 10, sum / 100 % 10, sum / 1000].map(|d| ZERO + d));
        out.push(NEWLINE);
    }
}

/// Reads an answer written as the corpus writes it (reversed digits) back into
/// the number, when it is 4 digits.
pub fn read_answer(reversed: &str) -> Option<u32> {
    if reversed.len() != ANSWER_DIGITS || !reversed.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    reversed.chars().rev().collect::<String>().parse().ok()
}

/// Reads a line `a+b=r` (r reversed) into the pair and the number the model
/// wrote, when it has the corpus's form.
pub fn parse_line(line: &str) -> Option<(Pair, u32)> {
    let (a, rest) = line.split_once('+')?;
    let (b, r) = rest.split_once('=')?;
    let operand = |s: &str| {
        (s.len() == 3 && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
            .filter(|v| (LOW..=HIGH).contains(v))
    };
    Some((
        Pair {
            a: operand(a)?,
            b: operand(b)?,
        },
        read_answer(r)?,
    ))
}

/// In a sampled text, the complete lines that have the corpus's form, and how
/// many of them are right sums: (right, well-formed, complete lines).
pub fn check_sample(text: &str) -> (usize, usize, usize) {
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines.pop(); // the last one is unfinished
    let complete: Vec<&str> = lines.into_iter().filter(|l| !l.is_empty()).collect();
    let parsed: Vec<(Pair, u32)> = complete.iter().filter_map(|l| parse_line(l)).collect();
    let right = parsed.iter().filter(|(p, r)| p.a + p.b == *r).count();
    (right, parsed.len(), complete.len())
}

/// The training and held-out pairs.
#[derive(Clone, Debug)]
pub struct Additions {
    /// Every training line's pair, in a fixed shuffled order.
    pub train: Vec<Pair>,
    /// The held-out pairs, each in the order it is asked.
    pub held_out: Vec<Pair>,
}

impl Additions {
    /// The corpus with `holdout` held-out pairs.
    ///
    /// # Panics
    /// When `holdout` is above [`MAX_HOLDOUT`].
    pub fn new(holdout: usize) -> Additions {
        assert!(
            holdout <= MAX_HOLDOUT,
            "at most {MAX_HOLDOUT} held-out pairs"
        );
        let mut rng = StdRng::seed_from_u64(DATA_SEED);
        let mut unordered: Vec<Pair> = (LOW..=HIGH)
            .flat_map(|a| (a..=HIGH).map(move |b| Pair { a, b }))
            .collect();
        unordered.shuffle(&mut rng);
        let held_out: Vec<Pair> = unordered[..holdout]
            .iter()
            .map(|&p| {
                if rng.random::<bool>() {
                    Pair { a: p.b, b: p.a }
                } else {
                    p
                }
            })
            .collect();
        let mut train: Vec<Pair> = unordered[holdout..]
            .iter()
            .flat_map(|&p| {
                let swapped = Pair { a: p.b, b: p.a };
                std::iter::once(p).chain((p.a != p.b).then_some(swapped))
            })
            .collect();
        train.shuffle(&mut rng);
        Additions { train, held_out }
    }

    /// The text of lines of `pairs`, one after the other.
    pub fn text(pairs: &[Pair]) -> String {
        let mut s = String::with_capacity(pairs.len() * LINE_LEN);
        for p in pairs {
            s.push_str(&p.line());
        }
        s
    }
}
