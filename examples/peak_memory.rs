//! W6: peak resident memory of 100 W2 training steps (MLP 784-256-256-10, Adam)
//! at batch 256, read from `VmHWM` in `/proc/self/status` (Linux), and the mean
//! time per step.
//!
//! Run: `cargo run --release --example peak_memory`

use std::time::Instant;

#[path = "../benches/common/mlp.rs"]
mod mlp;

const STEPS: usize = 100;
const BATCH: usize = 256;

/// The process's peak resident set size in KiB (`VmHWM`).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    // the calling thread as one of the kernels' threads, as the benches run
    ferrograd::set_num_threads(0).expect("the thread pool is set up first here");
    let mut training = mlp::MlpTraining::new(BATCH, 0);
    let start = Instant::now();
    let first = training.step();
    let mut last = first;
    for _ in 1..STEPS {
        last = training.step();
    }
    let elapsed = start.elapsed();
    assert!(last < first, "W6: loss went from {first} to {last}");
    let peak = peak_rss_kib().expect("VmHWM in /proc/self/status (Linux only)");
    println!(
        "W6 ferrograd: {STEPS} W2 steps at B={BATCH}: peak RSS {:.1} MiB, {:.3} ms/step",
        peak as f64 / 1024.0,
        elapsed.as_secs_f64() * 1e3 / STEPS as f64
    );
}
