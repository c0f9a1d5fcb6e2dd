//! Runs N training steps of the W5 tiny GPT (default 50) and prints the time per
//! step: a steady loop to profile, e.g.
//! `cargo build --profile bench --example profile_gpt &&
//!  perf record -g target/release/examples/profile_gpt 200`. With `fused`, the
//! model's attention is the fused op (`w5_gpt_step/B16_T64_fused`).
//!
//! Run: `cargo run --release --example profile_gpt -- [STEPS] [fused]`

use std::time::Instant;

#[path = "../benches/common/gpt.rs"]
mod gpt;

use gpt::{GptConfig, GptTraining};

fn main() {
    let mut args = std::env::args().skip(1);
    let steps: usize = args
        .next()
        .map(|s| s.parse().expect("STEPS is a number"))
        .unwrap_or(50);
    let cfg = match args.next().as_deref() {
        None => GptConfig::W5,
        Some("fused") => GptConfig::W5_FUSED,
        Some(other) => panic!("expected `fused` or nothing after STEPS, got {other:?}"),
    };
    // the calling thread as one of the kernels' threads, as the benches run
    ferrograd::set_num_threads(0).expect("the thread pool is set up first here");
    let mut training = GptTraining::new(cfg, 16, 0);
    let params: usize = training
        .model()
        .parameters()
        .iter()
        .map(|p| p.numel())
        .sum();
    let attention = if cfg.fused { "fused" } else { "written out" };
    println!("W5 tiny GPT: {params} parameters, batch 16, attention {attention}");
    let first = training.step(); // warm-up, not timed
    let start = Instant::now();
    let mut loss = first;
    for _ in 0..steps {
        loss = training.step();
    }
    let elapsed = start.elapsed();
    println!(
        "{steps} steps: {:.2} ms/step, loss {first:.4} -> {loss:.4}",
        elapsed.as_secs_f64() * 1e3 / steps.max(1) as f64
    );
}
