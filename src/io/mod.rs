//! Checkpoints in the [safetensors](https://github.com/huggingface/safetensors) format.
//!
//! A safetensors file is an 8-byte little-endian header length `N`, `N` bytes of JSON
//! header (`{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
//! "__metadata__": {…}}`), then the tensors' bytes: little-endian, row-major, packed
//! back to back. PyTorch (`safetensors.torch.load_file`), candle
//! (`candle_core::safetensors::load`), NumPy and JAX read and write the same files.
//!
//! - [`save_safetensors`] writes named tensors as `F32` (for `Tensor<f32>`) or `F64`
//!   (for `Tensor<f64>`), whatever their strides; [`save_safetensors_with_metadata`]
//!   adds the `"__metadata__"` strings; [`to_safetensors_bytes`] builds the bytes in
//!   memory.
//! - [`load_safetensors`] and [`load_safetensors_from_bytes`] read `F32` and `F64`
//!   tensors into either element type; [`load_safetensors_metadata`] reads only the
//!   header's metadata.
//! - [`save_module`], [`load_into`] (strict: the checkpoint must fit exactly),
//!   [`load_into_lenient`] and [`load_state_dict`] move a
//!   [`Module`](crate::nn::Module)'s parameters and buffers, by name, to and from a
//!   checkpoint.
//! - [`Checkpoint`] saves and restores a whole training run in one file: a
//!   model's weights and RNG states, an optimizer's and a scheduler's state, the
//!   step and named RNG states (see [its docs](Checkpoint#the-file) for the format).
//!
//! ```
//! use std::collections::BTreeMap;
//! use ferrograd::Tensor;
//!
//! let path = std::env::temp_dir().join(format!("ferrograd-io-{}.safetensors", std::process::id()));
//! let w = Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3])?;
//! let b = Tensor::<f32>::zeros(&[3]);
//! ferrograd::io::save_safetensors(&path, &[("w", &w), ("b", &b)])?;
//!
//! let named: BTreeMap<String, Tensor<f32>> = ferrograd::io::load_safetensors(&path)?;
//! assert_eq!(named["w"].shape(), &[2, 3]);
//! assert_eq!(named["w"].to_vec(), w.to_vec());
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), ferrograd::Error>(())
//! ```
//!
//! # Untrusted files
//!
//! Loading never panics and never allocates from a size the header declares before
//! checking it against the file's actual length. A truncated, corrupt or hostile file
//! (header length past the end or over 100 MB, the limit of the reference
//! implementation; a header that is not JSON; offsets that overlap, leave a hole or
//! run past the end; a dtype and shape that disagree with the byte range) is an
//! [`Error::Format`] whose message names the problem and the tensor. The header is
//! read by this module's own strict parser, which also rejects duplicate names and
//! fields, unknown fields in a tensor entry, and shapes whose non-zero dimensions
//! multiply past 2^45 elements, even next to a 0 (an `f64` tensor of 2^45 elements
//! would fill a 48-bit address space: no tensor of such a shape could exist, nor,
//! for one of zero elements, its sum over the zero-length axis). The tensors are
//! read from a file a chunk at a time into their own buffers: loading holds no
//! second copy of the file.
//!
//! # How a checkpoint is written
//!
//! A save streams the header and then each tensor's bytes, a chunk at a time, from
//! the tensor's buffer (under its read lock, so each tensor is one consistent
//! snapshot even while another thread updates it) to a temporary file beside the
//! target; it syncs the file, renames it over the target and syncs the directory, so
//! a reader sees the old checkpoint or the new one, never a mix, also after a crash
//! or a power loss.
//!
//! - The temporary is `.NAME.tmp-PID-N` (`NAME` shortened, with a hash of the whole
//!   name, when the temporary's name would pass 255 bytes), created exclusively
//!   (`O_EXCL`): it never opens a file that is already there, so concurrent saves
//!   cannot write into each other's files, nor through a planted symlink.
//! - A save killed midway (`kill -9`, a crash) leaves its temporary behind. The next
//!   save to the same target removes the temporaries of that target whose process
//!   is no longer running and that belong to the same user (on Linux, where
//!   `/proc/PID` tells; elsewhere they stay until removed by hand). A process in
//!   another PID namespace (another container sharing the directory) looks gone:
//!   if it is saving to the same target at that moment, its save fails with an
//!   [`Error::Io`] (nothing is corrupted).
//! - A symlink is followed (through a chain of links; a dangling link's target is
//!   created), as a plain `open(path, "wb")` would: the link stays, its target is
//!   replaced, and the temporary lives in the target's directory.
//! - On Unix, an existing file's permissions carry over to the new file (a `0600`
//!   checkpoint stays private; its owner and group do not carry over: the new file
//!   is the saving user's); a new file gets the permissions `std::fs::write` would
//!   give it (the process umask's).

mod checkpoint;
mod encode;
mod file;
mod header;
mod module;

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::element::{mono, Element};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub use checkpoint::Checkpoint;
#[allow(deprecated)]
pub use module::load_into_strict;
pub use module::{load_into, load_into_lenient, load_state_dict, save_module, LoadReport};

use encode::Plan;
use header::{format_error, Entry, PREFIX_LEN};

/// Bytes read or written at a time when tensors stream from or to a file.
const CHUNK: usize = 1 << 20;

/// Writes named tensors to a safetensors file at `path`.
///
/// `tensors` is a slice of `(name, tensor)` pairs: `&[("w", &w)]`, or the
/// `Vec<(String, Tensor<T>)>` of [`ModuleParams::named_parameters`](crate::nn::ModuleParams::named_parameters).
/// `Tensor<f32>` is written as `F32` and `Tensor<f64>` as `F64`, in row-major order
/// whatever the tensor's strides (a transposed view is written as the transposed
/// matrix); a 0-d tensor gets shape `[]`. The file is written to a temporary file
/// next to `path` and renamed over it, so a failed save leaves an existing file
/// intact; the bytes stream from the tensors' buffers to the file (a save needs
/// no memory for a copy of the model). See [how a checkpoint is
/// written](self#how-a-checkpoint-is-written) for temporaries, symlinks and
/// permissions.
///
/// ```
/// use ferrograd::Tensor;
/// let path = std::env::temp_dir().join(format!("ferrograd-save-{}.safetensors", std::process::id()));
/// let w = Tensor::<f32>::from_vec(vec![1., 2., 3., 4.], &[2, 2])?;
/// let b = Tensor::<f32>::scalar(0.5);
/// ferrograd::io::save_safetensors(&path, &[("w", &w), ("b", &b)])?;
///
/// // pairs of owned names and tensors work too
/// let named = vec![("w.t".to_string(), w.t())];
/// ferrograd::io::save_safetensors(&path, &named)?;
/// let back = ferrograd::io::load_safetensors::<f32, _>(&path)?;
/// assert_eq!(back["w.t"].to_vec(), vec![1., 3., 2., 4.]);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::Format`] when two tensors share a name or a name is `"__metadata__"`
/// (nothing is written then); [`Error::Io`] when the file cannot be written.
pub fn save_safetensors<T, P, S, B>(path: P, tensors: &[(S, B)]) -> Result<()>
where
    T: Element,
    P: AsRef<Path>,
    S: AsRef<str>,
    B: Borrow<Tensor<T>>,
{
    save_safetensors_with_metadata(path, tensors, &BTreeMap::new())
}

/// Like [`save_safetensors`], also writing `metadata` as the header's
/// `"__metadata__"` object (left out when `metadata` is empty).
///
/// Metadata is free-form strings; PyTorch's `save_file` writes `{"format": "pt"}`.
/// Read it back with [`load_safetensors_metadata`].
///
/// ```
/// use std::collections::BTreeMap;
/// use ferrograd::Tensor;
/// let path = std::env::temp_dir().join(format!("ferrograd-meta-{}.safetensors", std::process::id()));
/// let w = Tensor::<f64>::ones(&[3]);
/// let meta = BTreeMap::from([("step".to_string(), "1000".to_string())]);
/// ferrograd::io::save_safetensors_with_metadata(&path, &[("w", &w)], &meta)?;
/// assert_eq!(ferrograd::io::load_safetensors_metadata(&path)?, meta);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// As [`save_safetensors`].
pub fn save_safetensors_with_metadata<T, P, S, B>(
    path: P,
    tensors: &[(S, B)],
    metadata: &BTreeMap<String, String>,
) -> Result<()>
where
    T: Element,
    P: AsRef<Path>,
    S: AsRef<str>,
    B: Borrow<Tensor<T>>,
{
    let named = as_named(tensors);
    mono!(
        |path: &Path,
         tensors: &[(&str, &Tensor<T>)],
         metadata: &BTreeMap<String, String>|
         -> Result<()> {
            let plan = Plan::new(tensors, metadata)?;
            file::write_atomically(path, |f| plan.write_to(f)).map_err(|e| io_error(path, e))
        },
        (path.as_ref(), &named, metadata)
    )
}

/// The names and tensors of `tensors` as `&str` and `&Tensor`, the one form the
/// writers are compiled for (see [`mono!`]).
fn as_named<T: Element, S: AsRef<str>, B: Borrow<Tensor<T>>>(
    tensors: &[(S, B)],
) -> Vec<(&str, &Tensor<T>)> {
    tensors
        .iter()
        .map(|(name, t)| (name.as_ref(), t.borrow()))
        .collect()
}

/// The bytes of a safetensors file holding `tensors` and `metadata` (see
/// [`save_safetensors_with_metadata`]), built in memory.
///
/// ```
/// use std::collections::BTreeMap;
/// use ferrograd::Tensor;
/// let x = Tensor::<f32>::from_vec(vec![1.0, -2.0], &[2])?;
/// let bytes = ferrograd::io::to_safetensors_bytes(&[("x", &x)], &BTreeMap::new())?;
/// let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
/// let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
/// assert_eq!(header.trim_end(), r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#);
/// assert_eq!(&bytes[8 + n..], &[0, 0, 128, 63, 0, 0, 0, 192]); // 1.0 and -2.0, little-endian
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::Format`] when two tensors share a name or a name is `"__metadata__"`;
/// [`Error::Io`] (of kind `OutOfMemory`) when the bytes do not fit in memory.
pub fn to_safetensors_bytes<T, S, B>(
    tensors: &[(S, B)],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>>
where
    T: Element,
    S: AsRef<str>,
    B: Borrow<Tensor<T>>,
{
    let named = as_named(tensors);
    mono!(
        |tensors: &[(&str, &Tensor<T>)], metadata: &BTreeMap<String, String>| -> Result<Vec<u8>> {
            let plan = Plan::new(tensors, metadata)?;
            let mut bytes = Vec::new();
            usize::try_from(plan.file_len())
                .ok()
                .and_then(|n| bytes.try_reserve_exact(n).ok())
                .ok_or_else(|| {
                    out_of_memory(format!("{} bytes of safetensors", plan.file_len()))
                })?;
            plan.write_to(&mut bytes).map_err(Error::Io)?;
            Ok(bytes)
        },
        (&named, metadata)
    )
}

/// Reads every tensor of a safetensors file into `Tensor<T>`s, by name.
///
/// `F32` and `F64` tensors load into either element type: `F32` into `Tensor<f64>` is
/// exact; `F64` into `Tensor<f32>` rounds each value to the nearest `f32` (values
/// beyond `f32`'s range become ±∞, as `tensor.float()` does in PyTorch). The tensors
/// are fresh contiguous leaves that do not require gradients. The header is read and
/// checked first; then each tensor's bytes are read a chunk at a time into its own
/// buffer (loading needs no memory for a copy of the file).
///
/// ```
/// use std::collections::BTreeMap;
/// use ferrograd::Tensor;
/// let path = std::env::temp_dir().join(format!("ferrograd-load-{}.safetensors", std::process::id()));
/// let w = Tensor::<f64>::from_vec(vec![0.1, 0.2], &[2])?;
/// ferrograd::io::save_safetensors(&path, &[("w", &w)])?;
///
/// let exact: BTreeMap<String, Tensor<f64>> = ferrograd::io::load_safetensors(&path)?;
/// assert_eq!(exact["w"].to_vec(), vec![0.1, 0.2]);
/// let rounded: BTreeMap<String, Tensor<f32>> = ferrograd::io::load_safetensors(&path)?;
/// assert_eq!(rounded["w"].to_vec(), vec![0.1f32, 0.2f32]);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::Io`] when the file cannot be read (the message names the path), or when
/// a tensor does not fit in memory (of kind `OutOfMemory`, naming the tensor);
/// [`Error::Format`] when it is not a valid safetensors file (see the
/// [module docs](self#untrusted-files)) or holds a tensor of another dtype than `F32`
/// and `F64` (`F16`, `BF16`, integers…), naming the tensor and its dtype.
pub fn load_safetensors<T: Element, P: AsRef<Path>>(
    path: P,
) -> Result<BTreeMap<String, Tensor<T>>> {
    mono!(
        |path: &Path| -> Result<BTreeMap<String, Tensor<T>>> { load_file(path) },
        (path.as_ref())
    )
}

/// [`load_safetensors`] itself, compiled once per element type.
fn load_file<T: Element>(path: &Path) -> Result<BTreeMap<String, Tensor<T>>> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    if !file.metadata().map_err(|e| io_error(path, e))?.is_file() {
        // A pipe or a device: no length to check the header against; read it all.
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| io_error(path, e))?;
        return load_safetensors_from_bytes(&bytes);
    }
    let (entries, _) = read_header(&mut file, path)?;
    check_dtypes(&entries)?;
    let mut buf = Vec::new();
    entries
        .iter()
        .map(|t| {
            // The entries tile the data section in order: read on.
            let mut values = alloc_values::<T>(t)?;
            let mut left = t.end - t.begin;
            while left > 0 {
                let n = left.min(CHUNK);
                buf.resize(n, 0);
                file.read_exact(&mut buf).map_err(|e| io_error(path, e))?;
                decode_into(&t.dtype, &buf, &mut values);
                left -= n;
            }
            Ok((t.name.clone(), Tensor::from_vec(values, &t.shape)?))
        })
        .collect()
}

/// Like [`load_safetensors`], from the bytes of a whole file.
///
/// ```
/// use std::collections::BTreeMap;
/// use ferrograd::{Error, Tensor};
/// let x = Tensor::<f32>::eye(2);
/// let bytes = ferrograd::io::to_safetensors_bytes(&[("x", &x)], &BTreeMap::new())?;
/// let named = ferrograd::io::load_safetensors_from_bytes::<f64>(&bytes)?;
/// assert_eq!(named["x"].to_vec(), vec![1., 0., 0., 1.]);
///
/// let err = ferrograd::io::load_safetensors_from_bytes::<f32>(&bytes[..bytes.len() - 1]).unwrap_err();
/// assert!(matches!(err, Error::Format(_)));
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// As [`load_safetensors`]; [`Error::Io`] only when a tensor does not fit in memory.
pub fn load_safetensors_from_bytes<T: Element>(
    bytes: &[u8],
) -> Result<BTreeMap<String, Tensor<T>>> {
    mono!(
        |bytes: &[u8]| -> Result<BTreeMap<String, Tensor<T>>> {
            let n = header::header_len(bytes, bytes.len() as u64)?;
            let (head, data) = bytes[PREFIX_LEN..].split_at(n);
            let parsed = header::parse(head, data.len())?;
            check_dtypes(&parsed.tensors)?;
            parsed
                .tensors
                .iter()
                .map(|t| {
                    let mut values = alloc_values::<T>(t)?;
                    decode_into(&t.dtype, &data[t.begin..t.end], &mut values);
                    Ok((t.name.clone(), Tensor::from_vec(values, &t.shape)?))
                })
                .collect()
        },
        (bytes)
    )
}

/// Reads the `"__metadata__"` strings of a safetensors file (empty when it has none),
/// reading only the header from disk. The header is checked as
/// [`load_safetensors`] checks it, against the file's length; tensors of any dtype
/// are accepted.
///
/// ```
/// use std::collections::BTreeMap;
/// use ferrograd::Tensor;
/// let path = std::env::temp_dir().join(format!("ferrograd-readmeta-{}.safetensors", std::process::id()));
/// let w = Tensor::<f32>::zeros(&[2]);
/// ferrograd::io::save_safetensors(&path, &[("w", &w)])?;
/// assert!(ferrograd::io::load_safetensors_metadata(&path)?.is_empty());
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Format`] when its header is
/// invalid.
pub fn load_safetensors_metadata<P: AsRef<Path>>(path: P) -> Result<BTreeMap<String, String>> {
    let path = path.as_ref();
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    Ok(read_header(&mut file, path)?.1)
}

/// Reads and checks the header of the file `file` (opened from `path`), leaving the
/// file at the start of the data section. Returns the tensor entries, in the order
/// of their bytes, and the metadata.
fn read_header(file: &mut File, path: &Path) -> Result<(Vec<Entry>, BTreeMap<String, String>)> {
    let file_len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut prefix = Vec::with_capacity(PREFIX_LEN);
    file.by_ref()
        .take(PREFIX_LEN as u64)
        .read_to_end(&mut prefix)
        .map_err(|e| io_error(path, e))?;
    // n is at most the file's length and at most 100 MB, checked here.
    let n = header::header_len(&prefix, file_len)?;
    let mut head = vec![0; n];
    file.read_exact(&mut head).map_err(|e| io_error(path, e))?;
    let data_len = usize::try_from(file_len - PREFIX_LEN as u64 - n as u64)
        .map_err(|_| format_error("the file is too large for this platform"))?;
    let parsed = header::parse(&head, data_len)?;
    Ok((parsed.tensors, parsed.metadata))
}

/// Only `F32` and `F64` tensors load.
fn check_dtypes(entries: &[Entry]) -> Result<()> {
    match entries
        .iter()
        .find(|t| !matches!(t.dtype.as_str(), "F32" | "F64"))
    {
        Some(t) => Err(format_error(format!(
            "tensor {:?} has dtype {}; only F32 and F64 tensors can be loaded \
             (convert it first, e.g. with `.float()` in PyTorch)",
            t.name, t.dtype
        ))),
        None => Ok(()),
    }
}

/// An empty buffer with room for the elements of `t`; an [`Error::Io`] of kind
/// `OutOfMemory` (not an abort) when the allocator cannot provide it.
fn alloc_values<T: Element>(t: &Entry) -> Result<Vec<T>> {
    let numel = if t.dtype == "F32" {
        (t.end - t.begin) / 4
    } else {
        (t.end - t.begin) / 8
    };
    let mut values = Vec::new();
    values.try_reserve_exact(numel).map_err(|_| {
        out_of_memory(format!(
            "tensor {:?} of shape {:?} ({numel} elements of {})",
            t.name,
            t.shape,
            T::DTYPE
        ))
    })?;
    Ok(values)
}

/// Appends the values of little-endian `F32` or `F64` bytes (a whole number of
/// elements) to `out`.
fn decode_into<T: Element>(dtype: &str, bytes: &[u8], out: &mut Vec<T>) {
    if dtype == "F32" {
        out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| from_f32::<T>(f32::from_le_bytes(array(c)))),
        );
    } else {
        out.extend(
            bytes
                .chunks_exact(8)
                .map(|c| from_f64::<T>(f64::from_le_bytes(array(c)))),
        );
    }
}

/// The error of an allocation that failed.
fn out_of_memory(what: String) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::OutOfMemory,
        format!("safetensors: not enough memory for {what}"),
    ))
}

/// An I/O error that names the path.
fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

/// An `f32` as `T`: bit for bit when `T` is `f32`, exactly when it is `f64`.
fn from_f32<T: Element>(v: f32) -> T {
    match (&v as &dyn std::any::Any).downcast_ref::<T>() {
        Some(&same) => same,
        None => T::from_f64_lossy(f64::from(v)),
    }
}

/// An `f64` as `T`: bit for bit when `T` is `f64`, rounded to nearest when it is `f32`.
fn from_f64<T: Element>(v: f64) -> T {
    match (&v as &dyn std::any::Any).downcast_ref::<T>() {
        Some(&same) => same,
        None => T::from_f64_lossy(v),
    }
}

/// A chunk of `chunks_exact(N)` as an array.
fn array<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(chunk);
    a
}
