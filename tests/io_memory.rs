//! Peak memory of saving and loading a large checkpoint: the tensors stream to and
//! from the file, so neither holds a second copy of the model.
//!
//! In its own test binary (its own process), so that no other test's allocations
//! show up in this process's resident set; the two measurements take turns. Linux
//! only (the resident set is read from `/proc/self/status`).
#![cfg(target_os = "linux")]

use std::sync::Mutex;

use ferrograd::io::{load_safetensors, save_safetensors};
use ferrograd::Tensor;

/// The measurements take turns: each needs the process to itself.
static ALONE: Mutex<()> = Mutex::new(());

const MIB: u64 = 1 << 20;

/// The model: one 64 MiB tensor.
const MODEL_ELEMENTS: usize = 16 << 20;
const MODEL_BYTES: u64 = MODEL_ELEMENTS as u64 * 4;

/// A field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// How much the resident set grows at its peak while `f` runs, in bytes.
///
/// Resets the peak (`VmHWM`) first through `/proc/self/clear_refs`; `None` where
/// that is not allowed.
fn peak_growth(f: impl FnOnce()) -> Option<u64> {
    ferrograd::clear_buffer_cache();
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    let before = status_bytes("VmRSS:");
    assert!(status_bytes("VmHWM:") <= before + MIB, "the peak was reset");
    f();
    Some(status_bytes("VmHWM:").saturating_sub(before))
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "ferrograd-io-memory-{}-{name}.safetensors",
        std::process::id()
    ))
}

/// Saving a 64 MiB model grows the resident set by at most the model's size +
/// 32 MiB (it grew by 2 × 64 MiB: the tensor encoded, and the file's bytes).
#[test]
fn saving_streams_the_tensors_to_the_file() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_path("save");
    let w = Tensor::<f32>::full(&[MODEL_ELEMENTS], 0.5);
    let b = Tensor::<f32>::full(&[1000], -1.0);
    let Some(growth) = peak_growth(|| save_safetensors(&path, &[("w", &w), ("b", &b)]).unwrap())
    else {
        eprintln!("skipped: /proc/self/clear_refs is not writable");
        return;
    };
    std::fs::remove_file(&path).unwrap();
    eprintln!("save: peak RSS growth {} MiB", growth / MIB);
    assert!(
        growth <= MODEL_BYTES + 32 * MIB,
        "saving a {} MiB model grew the resident set by {} MiB",
        MODEL_BYTES / MIB,
        growth / MIB
    );
}

/// Loading a 64 MiB model grows the resident set by at most the loaded model + 32
/// MiB (it grew by 2 × 64 MiB: the whole file read, then the tensors).
#[test]
fn loading_streams_the_tensors_from_the_file() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_path("load");
    {
        let w = Tensor::<f32>::full(&[MODEL_ELEMENTS], 0.5);
        save_safetensors(&path, &[("w", &w)]).unwrap();
    }
    let mut loaded = None;
    let Some(growth) = peak_growth(|| loaded = Some(load_safetensors::<f32, _>(&path).unwrap()))
    else {
        eprintln!("skipped: /proc/self/clear_refs is not writable");
        return;
    };
    std::fs::remove_file(&path).unwrap();
    let loaded = loaded.unwrap();
    assert_eq!(loaded["w"].shape(), &[MODEL_ELEMENTS]);
    eprintln!("load: peak RSS growth {} MiB", growth / MIB);
    assert!(
        growth <= MODEL_BYTES + 32 * MIB,
        "loading a {} MiB model grew the resident set by {} MiB",
        MODEL_BYTES / MIB,
        growth / MIB
    );
}
