//! Byte-level byte-pair encoding.

use std::collections::BTreeMap;
use std::path::Path;

use super::{parse_file, read_text, Tokenizer};
use crate::{Error, Result};

/// The first line of a BPE tokenizer file.
const HEADER: &str = "ferrograd-tokenizer bpe 1";

/// The number of base tokens: one per byte value.
const BYTES: usize = 256;

/// Byte-level byte-pair encoding (BPE), as GPT-2 uses.
///
/// Ids `0..256` are the bytes; merge `k` (see [`merges`](Self::merges)) joins
/// two earlier ids into the new id `256 + k`. Any string encodes (it is bytes),
/// and decoding the encoding gives the string back.
///
/// # Chunks
///
/// Training and encoding first cut the text into chunks, and merges never cross
/// a chunk boundary: a new chunk starts at every whitespace character
/// ([`char::is_whitespace`]) that follows a non-whitespace character. So
/// `"the cat\n  sat"` is cut into `"the"`, `" cat"`, `"\n  sat"`: words carry
/// their leading whitespace, as in GPT-2, and a token never holds the end of
/// one word and the start of the next.
///
/// # Training
///
/// [`train`](Self::train) repeatedly merges the most frequent adjacent pair of
/// ids (counted within chunks, each chunk as often as it occurs); among pairs
/// with the same count, the smallest `(left, right)` pair wins. Training only
/// uses ordered maps and sorted orders, so it gives the same merges on every
/// run, in every process, on every platform.
///
/// ```
/// use ferrograd::text::BpeTokenizer;
///
/// let tok = BpeTokenizer::train("low lower lowest low low", 260)?;
/// assert_eq!(tok.vocab_size(), 260);
/// assert_eq!(tok.merges()[0], (b'l' as usize, b'o' as usize)); // "lo" is the most frequent
/// let ids = tok.encode("lowest slow");
/// assert!(ids.len() < "lowest slow".len());
/// assert_eq!(tok.decode(&ids)?, "lowest slow");
/// assert_eq!(tok.decode(&tok.encode("日本 ✓ 🦀"))?, "日本 ✓ 🦀"); // unseen text too
/// # Ok::<(), ferrograd::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpeTokenizer {
    /// The learned merges, in order: merge `k` makes id `256 + k`.
    merges: Vec<(usize, usize)>,
    /// The rank (merge index) of each merged pair.
    ranks: BTreeMap<(usize, usize), usize>,
    /// The bytes of each id.
    pieces: Vec<Vec<u8>>,
}

impl Default for BpeTokenizer {
    /// The tokenizer without merges: one token per byte.
    fn default() -> Self {
        Self::build(Vec::new())
    }
}

impl BpeTokenizer {
    /// Learns merges from `text` until the vocabulary holds `vocab_size` ids
    /// (the 256 bytes and `vocab_size - 256` merges), or until no adjacent pair
    /// is left to merge (then the vocabulary is smaller: check
    /// [`vocab_size`](Self::vocab_size)). See [the type's docs](Self) for the
    /// rule; a pair that occurs once is still merged.
    ///
    /// Each merge recounts the pairs of the distinct chunks: the cost is about
    /// `merges × (length of the distinct chunks)`, meant for small corpora.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `vocab_size` is below 256.
    ///
    /// ```
    /// use ferrograd::text::BpeTokenizer;
    /// let tok = BpeTokenizer::train("aaaa", 1000)?;
    /// assert_eq!(tok.merges(), &[(97, 97), (256, 256)]); // "aa", then "aaaa"
    /// assert_eq!(tok.vocab_size(), 258); // nothing left to merge
    /// assert!(BpeTokenizer::train("aaaa", 100).is_err());
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn train(text: &str, vocab_size: usize) -> Result<Self> {
        if vocab_size < BYTES {
            return Err(Error::invalid(
                "BpeTokenizer::train",
                format!("vocab_size {vocab_size} is below the 256 byte tokens"),
            ));
        }
        let mut chunk_counts: BTreeMap<&str, usize> = BTreeMap::new();
        for chunk in chunks(text) {
            *chunk_counts.entry(chunk).or_default() += 1;
        }
        // Each distinct chunk as ids, with its count; single tokens cannot merge.
        let mut words: Vec<(Vec<usize>, usize)> = chunk_counts
            .into_iter()
            .filter(|(chunk, _)| chunk.len() > 1)
            .map(|(chunk, n)| (chunk.bytes().map(usize::from).collect(), n))
            .collect();
        let mut merges = Vec::new();
        while BYTES + merges.len() < vocab_size {
            let mut pair_counts: BTreeMap<(usize, usize), usize> = BTreeMap::new();
            for (ids, n) in &words {
                for w in ids.windows(2) {
                    *pair_counts.entry((w[0], w[1])).or_default() += n;
                }
            }
            // Ascending pair order, replaced only by a strictly higher count:
            // the smallest pair wins a tie.
            let mut best: Option<((usize, usize), usize)> = None;
            for (&pair, &n) in &pair_counts {
                if best.is_none_or(|(_, m)| n > m) {
                    best = Some((pair, n));
                }
            }
            let Some((pair, _)) = best else { break };
            let id = BYTES + merges.len();
            for (ids, _) in &mut words {
                merge_pair(ids, pair, id);
            }
            words.retain(|(ids, _)| ids.len() > 1);
            merges.push(pair);
        }
        Ok(Self::build(merges))
    }

    /// The tokenizer with these merges (merge `k` makes id `256 + k`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when a merge refers to an id that is not
    /// below its own (`256 + k`), or repeats an earlier merge's pair.
    ///
    /// ```
    /// use ferrograd::text::BpeTokenizer;
    /// let tok = BpeTokenizer::from_merges(vec![(104, 105)])?; // "hi"
    /// assert_eq!(tok.encode("hi hi"), vec![256, 32, 256]);
    /// assert!(BpeTokenizer::from_merges(vec![(104, 256)]).is_err());
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn from_merges(merges: Vec<(usize, usize)>) -> Result<Self> {
        check_merges(&merges)
            .map_err(|(_, msg)| Error::invalid("BpeTokenizer::from_merges", msg))?;
        Ok(Self::build(merges))
    }

    /// Builds the tables of valid merges.
    fn build(merges: Vec<(usize, usize)>) -> Self {
        let mut pieces: Vec<Vec<u8>> = (0..=u8::MAX).map(|b| vec![b]).collect();
        let mut ranks = BTreeMap::new();
        for (k, &(l, r)) in merges.iter().enumerate() {
            let piece = [pieces[l].as_slice(), pieces[r].as_slice()].concat();
            pieces.push(piece);
            ranks.insert((l, r), k);
        }
        BpeTokenizer {
            merges,
            ranks,
            pieces,
        }
    }

    /// The learned merges, in order: merge `k` joins `(left, right)` into the
    /// id `256 + k`.
    ///
    /// ```
    /// let tok = ferrograd::text::BpeTokenizer::train("abab", 257)?;
    /// assert_eq!(tok.merges(), &[(97, 98)]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn merges(&self) -> &[(usize, usize)] {
        &self.merges
    }

    /// The number of ids: 256 plus the number of merges.
    ///
    /// ```
    /// assert_eq!(ferrograd::text::BpeTokenizer::default().vocab_size(), 256);
    /// ```
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The bytes of token `id`, or `None` when it is out of range.
    ///
    /// ```
    /// let tok = ferrograd::text::BpeTokenizer::train("abab", 257)?;
    /// assert_eq!(tok.token_bytes(256), Some(&b"ab"[..]));
    /// assert_eq!(tok.token_bytes(257), None);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn token_bytes(&self, id: usize) -> Option<&[u8]> {
        self.pieces.get(id).map(Vec::as_slice)
    }

    /// The ids of `text`: each chunk's bytes (see [Chunks](Self#chunks)), with
    /// the merges applied in the order they were learned (in a chunk, the
    /// adjacent pair of lowest rank is merged, everywhere in the chunk, until no
    /// pair has a merge). Never fails: every string is bytes.
    ///
    /// ```
    /// let tok = ferrograd::text::BpeTokenizer::train("abab", 257)?;
    /// assert_eq!(tok.encode("abc"), vec![256, 99]);
    /// assert_eq!(tok.encode(""), Vec::<usize>::new());
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn encode(&self, text: &str) -> Vec<usize> {
        let mut out = Vec::with_capacity(text.len());
        for chunk in chunks(text) {
            let mut ids: Vec<usize> = chunk.bytes().map(usize::from).collect();
            while ids.len() > 1 {
                let best = ids
                    .windows(2)
                    .filter_map(|w| self.ranks.get(&(w[0], w[1])).map(|&k| (k, (w[0], w[1]))))
                    .min();
                let Some((k, pair)) = best else { break };
                merge_pair(&mut ids, pair, BYTES + k);
            }
            out.extend(ids);
        }
        out
    }

    /// The bytes of `ids`, concatenated.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] (op `"BpeTokenizer::decode"`) naming the first
    /// id that is not below [`vocab_size`](Self::vocab_size) and its position.
    ///
    /// ```
    /// let tok = ferrograd::text::BpeTokenizer::default();
    /// assert_eq!(tok.decode_bytes(&[0xe2, 0x9c])?, vec![0xe2, 0x9c]); // half a '✓'
    /// assert!(tok.decode_bytes(&[256]).is_err());
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn decode_bytes(&self, ids: &[usize]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let piece = self.pieces.get(id).ok_or_else(|| {
                Error::invalid(
                    "BpeTokenizer::decode",
                    format!(
                        "id {id} at position {i} is out of range for a vocabulary of {} ids",
                        self.pieces.len()
                    ),
                )
            })?;
            out.extend_from_slice(piece);
        }
        Ok(out)
    }

    /// The text of `ids`. Strict: a sequence whose bytes are not UTF-8 (which
    /// arbitrary ids can give, e.g. half of a multi-byte character, as a model
    /// may sample) is an error; for lossy decoding, use
    /// `String::from_utf8_lossy(&tok.decode_bytes(ids)?)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] (op `"BpeTokenizer::decode"`) for an id out of
    /// range (see [`decode_bytes`](Self::decode_bytes)), or bytes that are not
    /// UTF-8 (naming the byte offset).
    ///
    /// ```
    /// let tok = ferrograd::text::BpeTokenizer::default();
    /// assert_eq!(tok.decode(&[104, 105])?, "hi");
    /// assert!(tok.decode(&[0xe2, 0x9c]).is_err());
    /// assert_eq!(String::from_utf8_lossy(&tok.decode_bytes(&[104, 0xe2])?), "h\u{fffd}");
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn decode(&self, ids: &[usize]) -> Result<String> {
        String::from_utf8(self.decode_bytes(ids)?).map_err(|e| {
            Error::invalid(
                "BpeTokenizer::decode",
                format!(
                    "the ids' bytes are not UTF-8 (invalid from byte {}); decode_bytes \
                     gives the raw bytes",
                    e.utf8_error().valid_up_to()
                ),
            )
        })
    }

    /// The tokenizer as the text of its file (see [`save`](Self::save)).
    ///
    /// ```
    /// let tok = ferrograd::text::BpeTokenizer::train("abab", 257)?;
    /// assert_eq!(tok.to_text(), "ferrograd-tokenizer bpe 1\nmerges 1\n97 98\n");
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\nmerges {}\n", self.merges.len());
        for &(l, r) in &self.merges {
            out.push_str(&format!("{l} {r}\n"));
        }
        out
    }

    /// Reads a tokenizer from the text of its file (see [`save`](Self::save)).
    ///
    /// # Errors
    ///
    /// [`Error::Format`] when the header or count line is wrong, the number of
    /// lines does not match the count, a line is not two decimal ids separated
    /// by one space, a merge refers to an id not below its own, or a pair
    /// repeats.
    ///
    /// ```
    /// use ferrograd::text::BpeTokenizer;
    /// let tok = BpeTokenizer::train("banana bandana", 262)?;
    /// assert_eq!(BpeTokenizer::from_text(&tok.to_text())?, tok);
    /// let bad = "ferrograd-tokenizer bpe 1\nmerges 1\n97 300\n";
    /// assert!(matches!(BpeTokenizer::from_text(bad), Err(ferrograd::Error::Format(_))));
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn from_text(text: &str) -> Result<Self> {
        let lines = parse_file(text, HEADER, "merges")?;
        let mut merges = Vec::with_capacity(lines.len());
        for (k, line) in lines.iter().enumerate() {
            let pair = line
                .split_once(' ')
                .and_then(|(l, r)| Some((parse_id(l)?, parse_id(r)?)))
                .ok_or_else(|| {
                    Error::Format(format!(
                        "bpe tokenizer file, line {}: expected two decimal ids separated \
                         by a space, found {:?}",
                        k + 3,
                        super::truncate(line)
                    ))
                })?;
            merges.push(pair);
        }
        check_merges(&merges).map_err(|(k, msg)| {
            Error::Format(format!("bpe tokenizer file, line {}: {msg}", k + 3))
        })?;
        Ok(Self::build(merges))
    }

    /// Writes the tokenizer to `path`.
    ///
    /// The file is ASCII text, each line ending with `\n`: the line
    /// `ferrograd-tokenizer bpe 1` (kind and format version), the line
    /// `merges M`, then `M` lines `LEFT RIGHT`, the two ids of merge `k` (which
    /// makes id `256 + k`) in decimal, separated by one space. Each id is below
    /// `256 + k`. The bytes need no table: ids `0..256` are the bytes.
    ///
    /// ```
    /// use ferrograd::text::BpeTokenizer;
    /// let path = std::env::temp_dir().join(format!("ferrograd-bpe-{}.txt", std::process::id()));
    /// let tok = BpeTokenizer::train("to be or not to be", 270)?;
    /// tok.save(&path)?;
    /// assert_eq!(BpeTokenizer::load(&path)?, tok);
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        std::fs::write(path, self.to_text())?;
        Ok(())
    }

    /// Reads a tokenizer written by [`save`](Self::save).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; [`Error::Format`] when it is
    /// not a valid BPE tokenizer file (see [`from_text`](Self::from_text)).
    ///
    /// ```
    /// let missing = std::env::temp_dir().join("ferrograd-no-such-bpe.txt");
    /// assert!(ferrograd::text::BpeTokenizer::load(&missing).is_err());
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_text(&read_text(path.as_ref())?)
    }
}

impl Tokenizer for BpeTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<usize>> {
        Ok(BpeTokenizer::encode(self, text))
    }

    fn decode(&self, ids: &[usize]) -> Result<String> {
        BpeTokenizer::decode(self, ids)
    }

    fn vocab_size(&self) -> usize {
        BpeTokenizer::vocab_size(self)
    }
}

/// Cuts `text` into chunks: a new chunk starts at every whitespace character
/// that follows a non-whitespace character. The chunks concatenate to `text`.
fn chunks(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut prev_space = true; // no boundary at the start
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            let space = c.is_whitespace();
            if space && !prev_space && i > 0 {
                end = i;
                break;
            }
            prev_space = space;
        }
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

/// Replaces every occurrence of `pair` in `ids`, left to right, by `id`.
fn merge_pair(ids: &mut Vec<usize>, pair: (usize, usize), id: usize) {
    let mut out = 0;
    let mut i = 0;
    while i < ids.len() {
        if i + 1 < ids.len() && (ids[i], ids[i + 1]) == pair {
            ids[out] = id;
            i += 2;
        } else {
            ids[out] = ids[i];
            i += 1;
        }
        out += 1;
    }
    ids.truncate(out);
}

/// Checks that merge `k` refers to ids below `256 + k` and that no pair
/// repeats; on failure, the merge's index and what is wrong.
fn check_merges(merges: &[(usize, usize)]) -> std::result::Result<(), (usize, String)> {
    let mut seen = BTreeMap::new();
    for (k, &(l, r)) in merges.iter().enumerate() {
        let own = BYTES + k;
        if let Some(bad) = [l, r].into_iter().find(|&id| id >= own) {
            return Err((
                k,
                format!("merge {k} ({l}, {r}) refers to id {bad}, not below its own id {own}"),
            ));
        }
        if let Some(first) = seen.insert((l, r), k) {
            return Err((k, format!("merge {k} ({l}, {r}) repeats merge {first}")));
        }
    }
    Ok(())
}

/// A decimal id: ASCII digits only (no sign, no spaces), fitting a `usize`.
fn parse_id(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_start_at_whitespace_after_a_word() {
        let got: Vec<&str> = chunks("the cat\n  sat ").collect();
        assert_eq!(got, ["the", " cat", "\n  sat", " "]);
        assert_eq!(chunks("  a").collect::<Vec<_>>(), ["  a"]);
        assert_eq!(chunks("").count(), 0);
        assert_eq!(
            chunks("日本\u{3000}語").collect::<Vec<_>>(),
            ["日本", "\u{3000}語"]
        );
    }

    #[test]
    fn merge_pair_replaces_left_to_right() {
        let mut ids = vec![1, 1, 1, 2, 1, 1];
        merge_pair(&mut ids, (1, 1), 9);
        assert_eq!(ids, [9, 1, 2, 9]);
    }

    #[test]
    fn check_merges_names_the_bad_merge() {
        assert!(check_merges(&[(1, 2), (256, 256)]).is_ok());
        assert_eq!(check_merges(&[(1, 2), (257, 0)]).unwrap_err().0, 1);
        assert_eq!(check_merges(&[(1, 2), (1, 2)]).unwrap_err().0, 1);
    }
}
