//! The safetensors reader on arbitrary bytes.
//!
//! - Loading never panics; a bad file is an `Error::Format`, the same for `f32` and
//!   `f64`, and the same from a file (which is read in chunks, header first) as
//!   from the bytes in memory.
//! - `load_safetensors_metadata` accepts every file that loads.
//! - What loads saves again to bytes that the `safetensors` crate reads and that
//!   load back bit for bit.

#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use ferrograd::io::{
    load_safetensors, load_safetensors_from_bytes, load_safetensors_metadata, to_safetensors_bytes,
};
use ferrograd::{Error, Tensor};
use libfuzzer_sys::fuzz_target;

/// A file of this process's own, on a memory filesystem when there is one.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        dir.join(format!(
            "ferrograd-fuzz-reader-{}.safetensors",
            std::process::id()
        ))
    })
}

type Loaded<T> = ferrograd::Result<BTreeMap<String, Tensor<T>>>;

/// Each tensor's name, shape and values (as `f64` bit patterns); or the message
/// of a format error.
type Summary = Result<Vec<(String, Vec<usize>, Vec<u64>)>, String>;

/// Shapes and bit patterns, for comparing loads.
fn summary<T: ferrograd::Element>(r: &Loaded<T>) -> Summary {
    match r {
        Ok(m) => Ok(m
            .iter()
            .map(|(k, t)| {
                let bits = t
                    .to_vec()
                    .iter()
                    .map(|v| v.to_f64_lossless().to_bits())
                    .collect();
                (k.clone(), t.shape().to_vec(), bits)
            })
            .collect()),
        Err(Error::Format(msg)) => Err(msg.clone()),
        Err(e) => panic!("not a format error: {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let l32 = load_safetensors_from_bytes::<f32>(data);
    let l64 = load_safetensors_from_bytes::<f64>(data);
    let s32 = summary(&l32);
    let s64 = summary(&l64);
    match (&s32, &s64) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                assert_eq!((&x.0, &x.1), (&y.0, &y.1));
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("f32 and f64 disagree: {s32:?} vs {s64:?}"),
    }

    // From a file: the same answer.
    let path = scratch();
    std::fs::write(path, data).unwrap();
    let from_file = summary(&load_safetensors::<f64, _>(path));
    assert_eq!(from_file, s64, "file and bytes disagree");
    match load_safetensors_metadata(path) {
        Ok(_) => {}
        Err(Error::Format(_)) => assert!(s64.is_err(), "loads, but its metadata does not"),
        Err(e) => panic!("not a format error: {e:?}"),
    }

    // What loads saves again, and reads back the same.
    if let Ok(named) = &l64 {
        let pairs: Vec<(&String, &Tensor<f64>)> = named.iter().collect();
        let bytes = to_safetensors_bytes(&pairs, &BTreeMap::new()).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .expect("the safetensors crate reads what we write");
        assert_eq!(st.len(), named.len());
        let again = summary(&load_safetensors_from_bytes::<f64>(&bytes));
        assert_eq!(again, s64, "a round trip changed the tensors");
    }
});
