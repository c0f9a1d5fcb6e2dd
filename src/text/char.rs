//! Character-level tokenizer.

use std::path::Path;

use super::{parse_file, read_text, Tokenizer};
use crate::{Error, Result};

/// The first line of a character tokenizer file.
const HEADER: &str = "ferrograd-tokenizer char 1";

/// One token per character: the vocabulary is the sorted set of the characters
/// (Unicode scalar values) of a training text, and a character's id is its
/// rank in that set.
///
/// ```
/// use ferrograd::text::CharTokenizer;
///
/// let tok = CharTokenizer::train("hello");
/// assert_eq!(tok.vocab_size(), 4); // e, h, l, o
/// assert_eq!(tok.encode("hole")?, vec![1, 3, 2, 0]);
/// assert_eq!(tok.decode(&[1, 0, 2, 2, 3])?, "hello");
/// assert!(tok.encode("help").is_err()); // no 'p' in the vocabulary
/// # Ok::<(), ferrograd::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CharTokenizer {
    /// The vocabulary, strictly increasing; id = index.
    chars: Vec<char>,
}

impl CharTokenizer {
    /// The tokenizer whose vocabulary is the sorted set of the characters of
    /// `text` (empty for an empty text).
    ///
    /// ```
    /// let tok = ferrograd::text::CharTokenizer::train("banana");
    /// assert_eq!(tok.chars(), &['a', 'b', 'n']);
    /// ```
    pub fn train(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        CharTokenizer { chars }
    }

    /// The vocabulary: the character of each id.
    ///
    /// ```
    /// let tok = ferrograd::text::CharTokenizer::train("ba");
    /// assert_eq!(tok.chars(), &['a', 'b']);
    /// ```
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The number of characters in the vocabulary.
    ///
    /// ```
    /// assert_eq!(ferrograd::text::CharTokenizer::train("aab").vocab_size(), 2);
    /// ```
    pub fn vocab_size(&self) -> usize {
        self.chars.len()
    }

    /// The id of each character of `text`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] (op `"CharTokenizer::encode"`) naming the first
    /// character outside the vocabulary, its code point and its position (in
    /// characters and in bytes).
    ///
    /// ```
    /// let tok = ferrograd::text::CharTokenizer::train("ab");
    /// assert_eq!(tok.encode("ba")?, vec![1, 0]);
    /// let err = tok.encode("abc").unwrap_err();
    /// assert!(err.to_string().contains("'c'"), "{err}");
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn encode(&self, text: &str) -> Result<Vec<usize>> {
        text.char_indices()
            .enumerate()
            .map(|(i, (byte, c))| {
                self.id_of(c).ok_or_else(|| {
                    Error::invalid(
                        "CharTokenizer::encode",
                        format!(
                            "character {c:?} (U+{:04X}) at character {i} (byte {byte}) is not \
                             in the vocabulary of {} characters",
                            c as u32,
                            self.chars.len()
                        ),
                    )
                })
            })
            .collect()
    }

    /// The text of `ids`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] (op `"CharTokenizer::decode"`) naming the first
    /// id that is not below [`vocab_size`](Self::vocab_size) and its position.
    ///
    /// ```
    /// let tok = ferrograd::text::CharTokenizer::train("ab");
    /// assert_eq!(tok.decode(&[0, 1, 0])?, "aba");
    /// assert!(tok.decode(&[2]).is_err());
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn decode(&self, ids: &[usize]) -> Result<String> {
        ids.iter()
            .enumerate()
            .map(|(i, &id)| {
                self.chars.get(id).copied().ok_or_else(|| {
                    Error::invalid(
                        "CharTokenizer::decode",
                        format!(
                            "id {id} at position {i} is out of range for a vocabulary of {} \
                             characters",
                            self.chars.len()
                        ),
                    )
                })
            })
            .collect()
    }

    /// The id of a character, if it is in the vocabulary.
    fn id_of(&self, c: char) -> Option<usize> {
        self.chars.binary_search(&c).ok()
    }

    /// The tokenizer as the text of its file (see [`save`](Self::save)).
    ///
    /// ```
    /// let tok = ferrograd::text::CharTokenizer::train("a\n");
    /// assert_eq!(tok.to_text(), "ferrograd-tokenizer char 1\nchars 2\na\n61\n");
    /// ```
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\nchars {}\n", self.chars.len());
        for &c in &self.chars {
            out.push_str(&format!("{:x}\n", c as u32));
        }
        out
    }

    /// Reads a tokenizer from the text of its file (see [`save`](Self::save)).
    ///
    /// # Errors
    ///
    /// [`Error::Format`] when the header or count line is wrong, the number of
    /// lines does not match the count, a line is not a hexadecimal Unicode scalar
    /// value, or a character appears twice.
    ///
    /// ```
    /// use ferrograd::text::CharTokenizer;
    /// let tok = CharTokenizer::train("héllo");
    /// assert_eq!(CharTokenizer::from_text(&tok.to_text())?, tok);
    /// assert!(CharTokenizer::from_text("ferrograd-tokenizer char 1\nchars 1\nzz\n").is_err());
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn from_text(text: &str) -> Result<Self> {
        let lines = parse_file(text, HEADER, "chars")?;
        let mut chars = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let c = u32::from_str_radix(line, 16)
                .ok()
                .filter(|_| !line.is_empty() && !line.starts_with('+'))
                .and_then(char::from_u32)
                .ok_or_else(|| {
                    Error::Format(format!(
                        "char tokenizer file, line {}: {:?} is not a hexadecimal Unicode \
                         scalar value",
                        i + 3,
                        super::truncate(line)
                    ))
                })?;
            chars.push(c);
        }
        if let Some(i) = chars.windows(2).position(|w| w[0] >= w[1]) {
            return Err(Error::Format(format!(
                "char tokenizer file, line {}: characters must be strictly increasing \
                 ({:?} follows {:?})",
                i + 4,
                chars[i + 1],
                chars[i]
            )));
        }
        Ok(CharTokenizer { chars })
    }

    /// Writes the tokenizer to `path`.
    ///
    /// The file is UTF-8 text, each line ending with `\n`: the line
    /// `ferrograd-tokenizer char 1` (kind and format version), the line
    /// `chars N`, then `N` lines, the code point of id `0`, `1`, … in lowercase
    /// hexadecimal (so newlines and spaces in the vocabulary need no escaping),
    /// strictly increasing.
    ///
    /// ```
    /// use ferrograd::text::CharTokenizer;
    /// let path = std::env::temp_dir().join(format!("ferrograd-char-{}.txt", std::process::id()));
    /// let tok = CharTokenizer::train("hello, world");
    /// tok.save(&path)?;
    /// assert_eq!(CharTokenizer::load(&path)?, tok);
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
    /// not a valid character tokenizer file (see [`from_text`](Self::from_text)).
    ///
    /// ```
    /// let missing = std::env::temp_dir().join("ferrograd-no-such-tokenizer.txt");
    /// assert!(ferrograd::text::CharTokenizer::load(&missing).is_err());
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_text(&read_text(path.as_ref())?)
    }
}

impl Tokenizer for CharTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<usize>> {
        CharTokenizer::encode(self, text)
    }

    fn decode(&self, ids: &[usize]) -> Result<String> {
        CharTokenizer::decode(self, ids)
    }

    fn vocab_size(&self) -> usize {
        CharTokenizer::vocab_size(self)
    }
}
