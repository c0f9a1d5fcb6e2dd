//! Writing a safetensors file: the header, then each tensor's bytes streamed from
//! its buffer in chunks, so that a save never holds a second copy of the model.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use crate::element::Element;
use crate::error::Result;
use crate::layout::for_each_row;
use crate::tensor::Tensor;

use super::header::{format_error, MAX_HEADER_LEN, METADATA_KEY, PREFIX_LEN};
use super::CHUNK;

/// What a save writes: the length prefix and header, and the tensors in the order
/// of their bytes.
pub(super) struct Plan<'a, T: Element> {
    /// The 8-byte length prefix and the header, padded with spaces to a multiple of 8.
    head: Vec<u8>,
    /// The tensors, in file order (by name).
    tensors: Vec<&'a Tensor<T>>,
    /// The length of the whole file.
    file_len: u64,
}

impl<'a, T: Element> Plan<'a, T> {
    /// Checks the names (unique, not `"__metadata__"`) and lays out the file: the
    /// header as the `safetensors` crate writes it (tensors sorted by name, the
    /// metadata first, in key order), then the tensors' bytes back to back.
    pub(super) fn new<S, B>(
        tensors: &'a [(S, B)],
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self>
    where
        S: AsRef<str>,
        B: Borrow<Tensor<T>>,
    {
        let dtype = match T::DTYPE {
            "f32" => "F32",
            "f64" => "F64",
            other => return Err(format_error(format!("no safetensors dtype for {other}"))),
        };
        let mut names = BTreeSet::new();
        let mut sorted = Vec::with_capacity(tensors.len());
        for (name, tensor) in tensors {
            let name = name.as_ref();
            if name == METADATA_KEY {
                return Err(format_error(format!(
                    "{METADATA_KEY:?} is reserved and cannot name a tensor"
                )));
            }
            if !names.insert(name) {
                return Err(format_error(format!("duplicate tensor name {name:?}")));
            }
            sorted.push((name, tensor.borrow()));
        }
        sorted.sort_unstable_by_key(|&(name, _)| name);

        let mut json = Vec::new();
        json.push(b'{');
        if !metadata.is_empty() {
            json_string(&mut json, METADATA_KEY);
            json.extend_from_slice(b":{");
            for (i, (k, v)) in metadata.iter().enumerate() {
                if i > 0 {
                    json.push(b',');
                }
                json_string(&mut json, k);
                json.push(b':');
                json_string(&mut json, v);
            }
            json.push(b'}');
        }
        let too_large = || {
            format_error(
                "the tensors hold more bytes than a file can (the sum of their sizes overflows)",
            )
        };
        let mut offset: u64 = 0;
        for (i, (name, tensor)) in sorted.iter().enumerate() {
            let bytes = u64::try_from(tensor.numel())
                .ok()
                .and_then(|n| n.checked_mul(std::mem::size_of::<T>() as u64))
                .ok_or_else(too_large)?;
            let end = offset.checked_add(bytes).ok_or_else(too_large)?;
            if i > 0 || !metadata.is_empty() {
                json.push(b',');
            }
            json_string(&mut json, name);
            json.extend_from_slice(b":{\"dtype\":\"");
            json.extend_from_slice(dtype.as_bytes());
            json.extend_from_slice(b"\",\"shape\":[");
            for (j, d) in tensor.shape().iter().enumerate() {
                if j > 0 {
                    json.push(b',');
                }
                json.extend_from_slice(d.to_string().as_bytes());
            }
            json.extend_from_slice(format!("],\"data_offsets\":[{offset},{end}]}}").as_bytes());
            offset = end;
        }
        json.push(b'}');
        json.resize(json.len().next_multiple_of(8), b' ');
        let n = json.len() as u64;
        if n > MAX_HEADER_LEN {
            return Err(format_error(format!(
                "the header would be {n} bytes, over the limit of {MAX_HEADER_LEN} bytes \
                 that readers accept (too many tensors, or too long names or metadata)"
            )));
        }
        let mut head = Vec::with_capacity(PREFIX_LEN + json.len());
        head.extend_from_slice(&n.to_le_bytes());
        head.extend_from_slice(&json);
        let file_len = (head.len() as u64)
            .checked_add(offset)
            .ok_or_else(too_large)?;
        Ok(Plan {
            head,
            tensors: sorted.into_iter().map(|(_, t)| t).collect(),
            file_len,
        })
    }

    /// The length of the file, in bytes.
    pub(super) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Writes the file to `out`: the header, then each tensor's elements in
    /// row-major order, encoded a chunk at a time from the tensor's buffer (under
    /// its read lock, so each tensor is written as one consistent snapshot).
    pub(super) fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(&self.head)?;
        let mut buf = Vec::with_capacity(CHUNK);
        for tensor in &self.tensors {
            write_tensor(tensor, out, &mut buf)?;
        }
        out.write_all(&buf)
    }
}

/// Appends the elements of `tensor` to `buf` as little-endian bytes, handing `buf`
/// to `out` whenever it is full.
fn write_tensor<T: Element>(
    tensor: &Tensor<T>,
    out: &mut impl Write,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let size = std::mem::size_of::<T>();
    let data = tensor.read();
    let layout = tensor.layout();
    let mut result = Ok(());
    for_each_row(
        &layout.shape,
        [&layout.strides],
        [layout.offset],
        |[start], [stride], len| {
            let mut i = 0;
            while i < len && result.is_ok() {
                let k = ((CHUNK - buf.len()) / size).clamp(1, len - i);
                if stride == 1 {
                    for &v in &data[start + i..start + i + k] {
                        push_le(v, buf);
                    }
                } else {
                    for j in i..i + k {
                        push_le(data[start + j * stride], buf);
                    }
                }
                i += k;
                if buf.len() + size > CHUNK {
                    result = out.write_all(buf);
                    buf.clear();
                }
            }
        },
    );
    result
}

/// Appends the little-endian bytes of `v`, bit for bit (NaN payloads included).
fn push_le<T: Element>(v: T, out: &mut Vec<u8>) {
    let any: &dyn std::any::Any = &v;
    if let Some(v) = any.downcast_ref::<f32>() {
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Some(v) = any.downcast_ref::<f64>() {
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        unreachable!("Element is sealed: f32 and f64 only");
    }
}

/// Appends `s` as a JSON string, escaped as `serde_json` escapes it (so that the
/// header is byte for byte the one the `safetensors` crate writes).
fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x00..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> String {
        let mut out = Vec::new();
        json_string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_does() {
        assert_eq!(json("plain"), r#""plain""#);
        assert_eq!(json("a\"b\\c/d"), r#""a\"b\\c/d""#);
        assert_eq!(json("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(json("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
        assert_eq!(json("é 😀"), "\"é 😀\"");
    }

    /// The writer hands over whole chunks, whatever the rows' lengths and strides.
    #[test]
    fn tensors_are_written_in_chunks() {
        struct Sizes(Vec<usize>, Vec<u8>);
        impl Write for Sizes {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.push(b.len());
                self.1.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let big = Tensor::<f64>::arange(3 * CHUNK / 8 + 5).reshape(&[3 * CHUNK / 8 + 5, 1]);
        let strided = Tensor::<f32>::arange(6 * 1001).reshape(&[6, 1001]).t();
        let named = [("a", big.clone())];
        let plan = Plan::new(&named, &BTreeMap::new()).unwrap();
        let mut out = Sizes(Vec::new(), Vec::new());
        plan.write_to(&mut out).unwrap();
        assert_eq!(out.1.len() as u64, plan.file_len());
        assert!(out.0[1..4].iter().all(|&n| n == CHUNK), "{:?}", out.0);
        let values: Vec<f64> = out.1[plan.head.len()..]
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(values, big.to_vec());

        let named = [("s", strided.clone())];
        let plan = Plan::new(&named, &BTreeMap::new()).unwrap();
        let mut out = Sizes(Vec::new(), Vec::new());
        plan.write_to(&mut out).unwrap();
        let values: Vec<f32> = out.1[plan.head.len()..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(values, strided.to_vec());
    }
}
