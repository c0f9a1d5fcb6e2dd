//! Tokenizers: text to token ids and back, for language models.
//!
//! - [`CharTokenizer`]: one token per character; the vocabulary is the sorted
//!   set of the characters of a training text.
//! - [`BpeTokenizer`]: byte-level byte-pair encoding; the 256 bytes are the base
//!   vocabulary, and training learns merges of frequent adjacent pairs,
//!   deterministically.
//! - [`Tokenizer`]: the trait both implement (object safe), so code can pick a
//!   tokenizer at run time as a `Box<dyn Tokenizer>`.
//!
//! Both save to and load from a small text file (see [`CharTokenizer::save`] and
//! [`BpeTokenizer::save`] for the formats); loading a corrupt file is an
//! [`Error::Format`], never a panic.
//!
//! ```
//! use ferrograd::text::{BpeTokenizer, CharTokenizer, Tokenizer};
//!
//! let corpus = "the cat sat on the mat";
//! let tokenizers: Vec<Box<dyn Tokenizer>> = vec![
//!     Box::new(CharTokenizer::train(corpus)),
//!     Box::new(BpeTokenizer::train(corpus, 270)?),
//! ];
//! for tok in &tokenizers {
//!     let ids = tok.encode("the mat")?;
//!     assert!(ids.iter().all(|&id| id < tok.vocab_size()));
//!     assert_eq!(tok.decode(&ids)?, "the mat");
//! }
//! # Ok::<(), ferrograd::Error>(())
//! ```

mod bpe;
mod char;

pub use self::bpe::BpeTokenizer;
pub use self::char::CharTokenizer;

use crate::{Error, Result};

/// Turns text into token ids in `0..vocab_size()` and back.
///
/// Object safe: `Box<dyn Tokenizer>` holds either tokenizer of this module.
///
/// ```
/// use ferrograd::text::{CharTokenizer, Tokenizer};
///
/// fn count_tokens(tok: &dyn Tokenizer, text: &str) -> ferrograd::Result<usize> {
///     Ok(tok.encode(text)?.len())
/// }
/// let tok = CharTokenizer::train("abc");
/// assert_eq!(count_tokens(&tok, "cab")?, 3);
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub trait Tokenizer {
    /// The token ids of `text`. Fails when the text cannot be represented (a
    /// character outside a [`CharTokenizer`]'s vocabulary).
    fn encode(&self, text: &str) -> Result<Vec<usize>>;
    /// The text of `ids`. Fails on an id outside the vocabulary (and, for
    /// [`BpeTokenizer`], on a sequence whose bytes are not UTF-8).
    fn decode(&self, ids: &[usize]) -> Result<String>;
    /// The number of token ids: every id is below it.
    fn vocab_size(&self) -> usize;
}

/// Splits a tokenizer file into its lines (each ending with `\n`; the final
/// newline may be missing), checks the first line is `header`, and returns the
/// count announced on the second line (`"{key} N"`) with the remaining lines,
/// which must be exactly `N`.
fn parse_file<'a>(text: &'a str, header: &str, key: &str) -> Result<Vec<&'a str>> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut lines = body.split('\n');
    let first = lines.next().unwrap_or("");
    if first != header {
        return Err(Error::Format(format!(
            "tokenizer file: expected the first line {header:?}, found {:?}",
            truncate(first)
        )));
    }
    let second = lines
        .next()
        .ok_or_else(|| Error::Format(format!("tokenizer file: missing the line \"{key} N\"")))?;
    let n: usize = second
        .strip_prefix(key)
        .and_then(|rest| rest.strip_prefix(' '))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            Error::Format(format!(
                "tokenizer file: expected \"{key} N\" on line 2, found {:?}",
                truncate(second)
            ))
        })?;
    let rest: Vec<&str> = lines.collect();
    if rest.len() != n {
        return Err(Error::Format(format!(
            "tokenizer file: line 2 announces {n} entries, the file has {} lines after it",
            rest.len()
        )));
    }
    Ok(rest)
}

/// A line shortened for an error message.
fn truncate(line: &str) -> String {
    line.chars().take(60).collect()
}

/// Reads a tokenizer file as UTF-8 text.
fn read_text(path: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(path)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::Format(format!(
            "tokenizer file {}: not UTF-8 ({e})",
            path.display()
        ))
    })
}
