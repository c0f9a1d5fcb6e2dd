//! Reading a safetensors header without trusting it.
//!
//! The header is parsed by a small JSON reader that accepts exactly the header's
//! grammar (an object of tensor entries and an optional `"__metadata__"` object of
//! strings). It is not recursive, so hostile nesting cannot exhaust the stack, and it
//! allocates only what the header bytes themselves hold. Every declared size is then
//! checked, with overflow-checked arithmetic, against the actual length of the data
//! section before anything is allocated from it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use crate::error::{Error, Result};

/// Bytes of the little-endian `u64` header-length prefix.
pub(super) const PREFIX_LEN: usize = 8;

/// The key of the optional string-to-string metadata object in a header.
pub(super) const METADATA_KEY: &str = "__metadata__";

/// The longest header accepted, in bytes: the limit of the reference
/// implementation (the `safetensors` crate), which no real header comes near.
pub(super) const MAX_HEADER_LEN: u64 = 100_000_000;

/// The largest product of a shape's non-zero dimensions accepted: 2^45 elements.
/// A tensor of that many `f64`s would fill 256 TiB, the whole 48-bit address space
/// of x86-64 and AArch64, so no tensor of a larger shape (nor what an op could make
/// of one of zero elements, such as its sum over the zero-length axis) could exist.
pub(super) const MAX_SPAN: u64 = 1 << 45;

/// One tensor entry of a header, checked against the data section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    /// The tensor's name (the header key).
    pub(super) name: String,
    /// The dtype as written in the header (`"F32"`, `"BF16"`, …), a known one.
    pub(super) dtype: String,
    /// The shape; the product of its non-zero dimensions is at most [`MAX_SPAN`].
    pub(super) shape: Vec<usize>,
    /// Start of the tensor's bytes, relative to the data section.
    pub(super) begin: usize,
    /// End (exclusive) of the tensor's bytes, relative to the data section.
    pub(super) end: usize,
}

/// A parsed and validated header.
#[derive(Debug)]
pub(super) struct Header {
    /// The tensors, in the order of their bytes in the data section.
    pub(super) tensors: Vec<Entry>,
    /// The `"__metadata__"` object (empty when absent).
    pub(super) metadata: BTreeMap<String, String>,
}

/// An [`Error::Format`] whose message starts with `safetensors: `.
pub(super) fn format_error(msg: impl Display) -> Error {
    Error::Format(format!("safetensors: {msg}"))
}

/// Reads the header length from the first bytes of a file of `file_len` bytes and
/// checks that the header fits in the file and in [`MAX_HEADER_LEN`].
pub(super) fn header_len(prefix: &[u8], file_len: u64) -> Result<usize> {
    let Some(prefix) = prefix.first_chunk::<PREFIX_LEN>() else {
        return Err(format_error(format!(
            "the file is {file_len} bytes long, too short for the {PREFIX_LEN}-byte header length"
        )));
    };
    let n = u64::from_le_bytes(*prefix);
    let available = file_len.saturating_sub(PREFIX_LEN as u64);
    if n > available {
        return Err(format_error(format!(
            "the header length {n} is larger than the {available} bytes that follow it \
             (truncated or not a safetensors file)"
        )));
    }
    if n > MAX_HEADER_LEN {
        return Err(format_error(format!(
            "the header length {n} exceeds the limit of {MAX_HEADER_LEN} bytes \
             (not a safetensors file?)"
        )));
    }
    usize::try_from(n).map_err(|_| format_error(format!("the header length {n} is too large")))
}

/// Parses `header` (the JSON bytes after the length prefix) and checks every
/// tensor entry against a data section of `data_len` bytes.
pub(super) fn parse(header: &[u8], data_len: usize) -> Result<Header> {
    let text = std::str::from_utf8(header).map_err(|e| {
        format_error(format!(
            "the header is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let mut p = Parser {
        b: text.as_bytes(),
        pos: 0,
    };
    let (tensors, metadata) = parse_json(&mut p)
        .map_err(|msg| format_error(format!("invalid header at byte {}: {msg}", p.pos)))?;
    let tensors = validate(tensors, data_len)?;
    Ok(Header { tensors, metadata })
}

/// The size in bits of one element of each dtype of the safetensors format.
fn dtype_bits(dtype: &str) -> Option<u32> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ"
        | "F8_E5M2FNUZ" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

/// The byte length of a tensor of `shape` and `bits`-bit elements, or a message.
///
/// The product of the non-zero dimensions must be at most [`MAX_SPAN`] (and fit
/// the crate's own limit of `isize::MAX` bytes of `f64`s), even when another
/// dimension is 0: no tensor of such a shape could exist.
fn byte_len(shape: &[usize], bits: u32) -> std::result::Result<usize, String> {
    let limit = MAX_SPAN.min(isize::MAX as u64 / 8);
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1u64, |acc, &d| {
            u64::try_from(d)
                .ok()
                .and_then(|d| acc.checked_mul(d))
                .filter(|&n| n <= limit)
        })
        .ok_or_else(|| {
            format!(
                "shape {shape:?} is too large: its non-zero dimensions multiply to more \
                 elements than any tensor can have (at most 2^{})",
                limit.ilog2()
            )
        })?;
    let numel = if shape.contains(&0) { 0 } else { nonzero };
    let total_bits = u128::from(numel) * u128::from(bits);
    if total_bits % 8 != 0 {
        return Err(format!(
            "shape {shape:?} does not fill a whole number of bytes"
        ));
    }
    usize::try_from(total_bits / 8)
        .map_err(|_| format!("shape {shape:?} is too large (its byte length overflows)"))
}

/// Checks each entry's dtype, offsets and byte length, and that the entries tile the
/// data section exactly (no overlap, no hole, nothing after the last one). Returns
/// the entries sorted by offset.
fn validate(mut tensors: Vec<Entry>, data_len: usize) -> Result<Vec<Entry>> {
    for t in &tensors {
        let name = &t.name;
        let (begin, end) = (t.begin, t.end);
        let bits = dtype_bits(&t.dtype).ok_or_else(|| {
            format_error(format!(
                "tensor {name:?} has an unknown dtype {:?}",
                t.dtype
            ))
        })?;
        if end < begin {
            return Err(format_error(format!(
                "tensor {name:?}: data_offsets [{begin}, {end}] end before they begin"
            )));
        }
        if end > data_len {
            return Err(format_error(format!(
                "tensor {name:?}: data_offsets [{begin}, {end}] run past the end of the \
                 {data_len}-byte data section (truncated file?)"
            )));
        }
        let bytes = byte_len(&t.shape, bits)
            .map_err(|msg| format_error(format!("tensor {name:?}: {msg}")))?;
        if bytes != end - begin {
            return Err(format_error(format!(
                "tensor {name:?}: dtype {} and shape {:?} need {bytes} bytes, but \
                 data_offsets [{begin}, {end}] hold {}",
                t.dtype,
                t.shape,
                end - begin
            )));
        }
    }
    tensors.sort_by_key(|t| (t.begin, t.end));
    let mut covered = 0;
    let mut previous: Option<&str> = None;
    for t in &tensors {
        if t.begin < covered {
            return Err(format_error(format!(
                "tensors {:?} and {:?} overlap (data_offsets [{}, {}] start before byte {covered})",
                previous.unwrap_or_default(),
                t.name,
                t.begin,
                t.end
            )));
        }
        if t.begin > covered {
            return Err(format_error(format!(
                "bytes {covered}..{} of the data section belong to no tensor (a hole before {:?})",
                t.begin, t.name
            )));
        }
        covered = t.end;
        previous = Some(&t.name);
    }
    if covered != data_len {
        return Err(format_error(format!(
            "the data section has {} bytes after the last tensor's data",
            data_len - covered
        )));
    }
    Ok(tensors)
}

type PResult<X> = std::result::Result<X, String>;

/// Everything in a header: tensor entries (unvalidated) and the metadata.
fn parse_json(p: &mut Parser<'_>) -> PResult<(Vec<Entry>, BTreeMap<String, String>)> {
    let mut tensors = Vec::new();
    let mut names = BTreeSet::new();
    let mut metadata: Option<BTreeMap<String, String>> = None;
    p.skip_ws();
    p.object(|p, key| {
        if key == METADATA_KEY {
            if metadata.is_some() {
                return Err(format!("duplicate key {METADATA_KEY:?}"));
            }
            let mut map = BTreeMap::new();
            p.object(|p, k| {
                let v = p
                    .string()
                    .map_err(|e| format!("{METADATA_KEY} {k:?}: {e} (values must be strings)"))?;
                match map.entry(k) {
                    std::collections::btree_map::Entry::Occupied(o) => {
                        Err(format!("duplicate {METADATA_KEY} key {:?}", o.key()))
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(v);
                        Ok(())
                    }
                }
            })
            .map_err(|e| format!("{METADATA_KEY}: {e}"))?;
            metadata = Some(map);
        } else {
            if names.contains(&key) {
                return Err(format!("duplicate tensor name {key:?}"));
            }
            let entry = tensor_entry(p, &key).map_err(|e| format!("tensor {key:?}: {e}"))?;
            names.insert(key);
            tensors.push(entry);
        }
        Ok(())
    })?;
    p.skip_ws();
    if p.peek().is_some() {
        return Err(format!(
            "unexpected {} after the header object",
            p.describe()
        ));
    }
    Ok((tensors, metadata.unwrap_or_default()))
}

/// One `{"dtype": …, "shape": […], "data_offsets": [begin, end]}` entry.
fn tensor_entry(p: &mut Parser<'_>, name: &str) -> PResult<Entry> {
    fn set<X>(slot: &mut Option<X>, value: X, field: &str) -> PResult<()> {
        if slot.replace(value).is_some() {
            return Err(format!("duplicate field {field:?}"));
        }
        Ok(())
    }
    let mut dtype = None;
    let mut shape = None;
    let mut offsets = None;
    p.object(|p, field| match field.as_str() {
        "dtype" => {
            let v = p.string().map_err(|e| format!("dtype: {e}"))?;
            set(&mut dtype, v, "dtype")
        }
        "shape" => {
            let v = p.uint_list().map_err(|e| format!("shape: {e}"))?;
            set(&mut shape, v, "shape")
        }
        "data_offsets" => {
            let v = p.uint_list().map_err(|e| format!("data_offsets: {e}"))?;
            let [begin, end] = v[..] else {
                return Err(format!(
                    "data_offsets: expected [begin, end], found {} numbers",
                    v.len()
                ));
            };
            set(&mut offsets, (begin, end), "data_offsets")
        }
        other => Err(format!(
            "unknown field {other:?} (expected dtype, shape and data_offsets)"
        )),
    })?;
    let missing = |field: &str| format!("missing field {field:?}");
    let (begin, end) = offsets.ok_or_else(|| missing("data_offsets"))?;
    Ok(Entry {
        name: name.to_owned(),
        dtype: dtype.ok_or_else(|| missing("dtype"))?,
        shape: shape.ok_or_else(|| missing("shape"))?,
        begin,
        end,
    })
}

/// A cursor over the header's bytes (known to be valid UTF-8).
struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// What is at the cursor, for messages.
    fn describe(&self) -> String {
        match self.peek() {
            None => "the end of the header".to_owned(),
            Some(c) if c.is_ascii_graphic() => format!("'{}'", c as char),
            Some(c) => format!("byte 0x{c:02x}"),
        }
    }

    /// Skips whitespace, then consumes `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8, what: &str) -> PResult<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected {what}, found {}", self.describe()))
        }
    }

    /// An object: calls `member` with each key, the cursor before the value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, String) -> PResult<()>) -> PResult<()> {
        self.expect(b'{', "'{'")?;
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':', "':'")?;
            member(self, key)?;
            if !self.eat(b',') {
                return self.expect(b'}', "',' or '}'");
            }
        }
    }

    /// A string, unescaped.
    fn string(&mut self) -> PResult<String> {
        self.expect(b'"', "a string")?;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err("unterminated string".to_owned());
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err("unterminated string".to_owned());
                    };
                    self.pos += 1;
                    let byte = match e {
                        b'"' | b'\\' | b'/' => e,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let ch = self.unicode_escape()?;
                            out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                            continue;
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(format!(
                                "invalid escape: backslash then {}",
                                self.describe()
                            ));
                        }
                    };
                    out.push(byte);
                }
                0x00..=0x1f => {
                    return Err(format!("unescaped control character 0x{c:02x} in a string"))
                }
                _ => out.push(c),
            }
        }
        // The input is valid UTF-8 and escapes produce whole characters.
        String::from_utf8(out).map_err(|_| "a string is not valid UTF-8".to_owned())
    }

    /// Four hex digits.
    fn hex4(&mut self) -> PResult<u32> {
        let digits = self
            .b
            .get(self.pos..self.pos + 4)
            .ok_or("truncated \\u escape")?;
        let mut v = 0;
        for &d in digits {
            let x = char::from(d)
                .to_digit(16)
                .ok_or("invalid \\u escape (expected four hex digits)")?;
            v = v * 16 + x;
        }
        self.pos += 4;
        Ok(v)
    }

    /// The character of a `\u` escape (the `\u` consumed), joining surrogate pairs.
    fn unicode_escape(&mut self) -> PResult<char> {
        const UNPAIRED: &str = "unpaired UTF-16 surrogate in a \\u escape";
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if self.b.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(UNPAIRED.to_owned());
                }
                self.pos += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(UNPAIRED.to_owned());
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(UNPAIRED.to_owned()),
            _ => hi,
        };
        char::from_u32(code).ok_or_else(|| UNPAIRED.to_owned())
    }

    /// A non-negative integer that fits in `usize`.
    fn uint(&mut self) -> PResult<usize> {
        self.skip_ws();
        match self.peek() {
            Some(b'0'..=b'9') => {}
            Some(b'-') => return Err("expected a non-negative integer, found '-'".to_owned()),
            _ => {
                return Err(format!(
                    "expected a non-negative integer, found {}",
                    self.describe()
                ))
            }
        }
        let start = self.pos;
        let mut v: usize = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(usize::from(d - b'0')))
                .ok_or_else(|| format!("integer too large (more than {})", usize::MAX))?;
            self.pos += 1;
        }
        if self.pos - start > 1 && self.b[start] == b'0' {
            return Err("integer with a leading zero".to_owned());
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return Err("expected an integer, found a fraction or an exponent".to_owned());
        }
        Ok(v)
    }

    /// An array of non-negative integers.
    fn uint_list(&mut self) -> PResult<Vec<usize>> {
        self.expect(b'[', "'['")?;
        let mut v = Vec::new();
        if self.eat(b']') {
            return Ok(v);
        }
        loop {
            v.push(self.uint()?);
            if !self.eat(b',') {
                self.expect(b']', "',' or ']'")?;
                return Ok(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<Header>) -> String {
        match r {
            Err(Error::Format(m)) => m,
            Err(e) => panic!("expected a format error, got {e:?}"),
            Ok(h) => panic!("expected an error, got {h:?}"),
        }
    }

    fn entry(name: &str, dtype: &str, shape: &[usize], begin: usize, end: usize) -> Entry {
        Entry {
            name: name.into(),
            dtype: dtype.into(),
            shape: shape.to_vec(),
            begin,
            end,
        }
    }

    #[test]
    fn parses_entries_metadata_and_whitespace() {
        let json = br#" { "b" : {"shape":[2], "dtype":"F64","data_offsets":[8,24]},
            "__metadata__": {"format": "pt", "step": "10"},
            "a": {"dtype": "F32", "shape": [], "data_offsets": [4, 8]},
            "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]},
            "z": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]} }    "#;
        let h = parse(json, 24).unwrap();
        let names: Vec<_> = h.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["e", "z", "a", "b"]);
        assert_eq!(h.tensors[2], entry("a", "F32", &[], 4, 8));
        assert_eq!(h.tensors[3], entry("b", "F64", &[2], 8, 24));
        assert_eq!(h.metadata["format"], "pt");
        assert_eq!(h.metadata["step"], "10");
    }

    #[test]
    fn empty_header_means_no_tensors() {
        let h = parse(b"{}", 0).unwrap();
        assert!(h.tensors.is_empty() && h.metadata.is_empty());
        assert!(msg(parse(b"{}", 1)).contains("1 bytes after the last tensor"));
    }

    #[test]
    fn string_escapes() {
        let json = r#"{"__metadata__": {"k": "a\"b\\c\/d\b\f\n\r\t \u00e9 \ud83d\ude00 é"}}"#;
        let h = parse(json.as_bytes(), 0).unwrap();
        assert_eq!(h.metadata["k"], "a\"b\\c/d\u{8}\u{c}\n\r\t é 😀 é");
        for (bad, expect) in [
            (r#"{"__metadata__": {"k": "\ud83d"}}"#, "unpaired"),
            (r#"{"__metadata__": {"k": "\ude00x"}}"#, "unpaired"),
            (r#"{"__metadata__": {"k": "\ud83d\u0041"}}"#, "unpaired"),
            (r#"{"__metadata__": {"k": "\u12"}}"#, "\\u escape"),
            (r#"{"__metadata__": {"k": "\q"}}"#, "invalid escape"),
            (
                "{\"__metadata__\": {\"k\": \"a\nb\"}}",
                "control character 0x0a",
            ),
            (r#"{"__metadata__": {"k": "abc"#, "unterminated"),
            (r#"{"__metadata__": {"k": 3}}"#, "values must be strings"),
            (
                r#"{"__metadata__": {"k": "a", "k": "b"}}"#,
                "duplicate __metadata__ key",
            ),
            (
                r#"{"__metadata__": {}, "__metadata__": {}}"#,
                "duplicate key",
            ),
        ] {
            let m = msg(parse(bad.as_bytes(), 0));
            assert!(m.contains(expect), "{bad}: {m}");
        }
    }

    #[test]
    fn numbers() {
        let ok = |s: &str| {
            let json =
                format!(r#"{{"t": {{"dtype": "U8", "shape": [{s}], "data_offsets": [0, 0]}}}}"#);
            parse(json.as_bytes(), 0).map(|h| h.tensors[0].shape.clone())
        };
        assert_eq!(ok("0").unwrap(), [0]);
        let mut p = Parser {
            b: b"[0, 18446744073709551615]",
            pos: 0,
        };
        assert_eq!(p.uint_list().unwrap(), [0, usize::MAX]);
        for (bad, expect) in [
            ("-1", "non-negative"),
            ("1.0", "fraction"),
            ("1e3", "exponent"),
            ("00", "leading zero"),
            ("18446744073709551616", "too large"),
            ("\"1\"", "non-negative integer"),
            ("1 2", "',' or ']'"),
            ("1,", "non-negative integer"),
        ] {
            let m = msg(ok(bad).map(|_| panic!("{bad} parsed")));
            assert!(m.contains(expect), "{bad}: {m}");
        }
    }

    #[test]
    fn structural_errors_name_the_problem() {
        for (bad, expect) in [
            ("", "expected '{'"),
            ("[]", "expected '{'"),
            ("{", "expected a string"),
            (r#"{"a" 1}"#, "expected ':'"),
            (r#"{"a": {"dtype": "F32"}"#, "tensor \"a\""),
            (r#"{} x"#, "unexpected 'x' after the header object"),
            (r#"{"a": 1}"#, "expected '{'"),
            (
                r#"{"a": {"dtype": "F32", "shape": [1]}}"#,
                "missing field \"data_offsets\"",
            ),
            (
                r#"{"a": {"shape": [1], "data_offsets": [0, 4]}}"#,
                "missing field \"dtype\"",
            ),
            (
                r#"{"a": {"dtype": "F32", "dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#,
                "duplicate field \"dtype\"",
            ),
            (
                r#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}}"#,
                "unknown field \"x\"",
            ),
            (
                r#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}"#,
                "found 3 numbers",
            ),
            (
                r#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {}}"#,
                "duplicate tensor name \"a\"",
            ),
        ] {
            let m = msg(parse(bad.as_bytes(), 4));
            assert!(m.contains(expect), "{bad}: {m}");
            assert!(m.starts_with("safetensors: invalid header at byte"), "{m}");
        }
    }

    #[test]
    fn deep_nesting_is_rejected_without_recursion() {
        let json = format!(r#"{{"a": {}"#, "[".repeat(1_000_000));
        let m = msg(parse(json.as_bytes(), 0));
        assert!(m.contains("expected '{'"), "{m}");
    }

    #[test]
    fn byte_lengths() {
        assert_eq!(byte_len(&[], 32), Ok(4));
        assert_eq!(byte_len(&[2, 3], 64), Ok(48));
        assert_eq!(byte_len(&[0, 1 << 45], 64), Ok(0));
        assert!(byte_len(&[0, usize::MAX], 64)
            .unwrap_err()
            .contains("more elements than any tensor can have (at most 2^45)"));
        assert!(byte_len(&[0, (1 << 45) + 1], 8).is_err());
        assert!(byte_len(&[1 << 20, 0, 1 << 26], 8).is_err());
        assert_eq!(
            byte_len(&[3], 4),
            Err("shape [3] does not fill a whole number of bytes".into())
        );
        assert_eq!(byte_len(&[4], 4), Ok(2));
        assert!(byte_len(&[1 << 32, 1 << 32], 8)
            .unwrap_err()
            .contains("is too large"));
        // The non-zero dimensions must multiply within the limit even next to a 0.
        assert!(byte_len(&[0, 1 << 32, 1 << 32], 8)
            .unwrap_err()
            .contains("is too large"));
        assert!(byte_len(&[1 << 62], 64)
            .unwrap_err()
            .contains("more elements than any tensor can have"));
    }

    #[test]
    fn offsets_must_tile_the_data() {
        let v = |ts: Vec<Entry>, len| msg(validate(ts, len).map(|_| panic!("accepted")));
        let m = v(vec![entry("a", "F32", &[1], 4, 0)], 4);
        assert!(m.contains("end before they begin"), "{m}");
        let m = v(vec![entry("a", "F32", &[1], 0, 8)], 4);
        assert!(
            m.contains("run past the end of the 4-byte data section"),
            "{m}"
        );
        let m = v(
            vec![entry("a", "F32", &[2], 0, 8), entry("b", "F32", &[1], 4, 8)],
            8,
        );
        assert!(m.contains("tensors \"a\" and \"b\" overlap"), "{m}");
        let m = v(vec![entry("a", "F32", &[1], 4, 8)], 8);
        assert!(
            m.contains("bytes 0..4 of the data section belong to no tensor"),
            "{m}"
        );
        let m = v(vec![entry("a", "F32", &[1], 0, 4)], 8);
        assert!(m.contains("4 bytes after the last tensor"), "{m}");
        let m = v(vec![entry("a", "Q7", &[1], 0, 4)], 4);
        assert!(m.contains("unknown dtype \"Q7\""), "{m}");
        let m = v(vec![entry("a", "F64", &[1], 0, 4)], 4);
        assert!(m.contains("dtype F64 and shape [1] need 8 bytes"), "{m}");
        // Zero-size tensors may sit anywhere between others, not inside one.
        validate(
            vec![entry("a", "F32", &[1], 0, 4), entry("e", "F32", &[0], 4, 4)],
            4,
        )
        .unwrap();
        let m = v(
            vec![entry("a", "F32", &[2], 0, 8), entry("e", "F32", &[0], 4, 4)],
            8,
        );
        assert!(m.contains("tensors \"a\" and \"e\" overlap"), "{m}");
    }

    #[test]
    fn header_length_is_capped_at_100_mb() {
        let len = |n: u64| header_len(&n.to_le_bytes(), 1 << 40);
        assert_eq!(len(100_000_000).unwrap(), 100_000_000);
        let m = match len(100_000_001) {
            Err(Error::Format(m)) => m,
            r => panic!("{r:?}"),
        };
        assert!(
            m.contains("the header length 100000001 exceeds the limit of 100000000 bytes"),
            "{m}"
        );
    }

    #[test]
    fn header_length_prefix() {
        assert_eq!(header_len(&[2, 0, 0, 0, 0, 0, 0, 0], 10).unwrap(), 2);
        let m = match header_len(&[3, 0, 0, 0, 0, 0, 0, 0], 10) {
            Err(Error::Format(m)) => m,
            r => panic!("{r:?}"),
        };
        assert!(
            m.contains("header length 3 is larger than the 2 bytes"),
            "{m}"
        );
        assert!(header_len(&[0xff; 8], 100).is_err());
        assert!(header_len(&[0; 5], 5).is_err());
    }
}
