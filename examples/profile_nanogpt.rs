//! Runs N training steps of `nn::Gpt` in nanoGPT's CPU configuration (4 layers,
//! 4 heads, width 128, context 64, batch 12, no bias, tied embeddings, AdamW with
//! weight decay on the matrices, gradient clipping at 1) on random tokens, and
//! prints the time per step: a steady loop to profile, e.g.
//! `cargo build --profile bench --example profile_nanogpt &&
//!  perf record -g target/release/examples/profile_nanogpt 100`.
//!
//! Run: `cargo run --release --example profile_nanogpt -- [STEPS]`

use std::time::Instant;

use ferrograd::nn::{Gpt, GptConfig};
use ferrograd::optim::{AdamW, AdamWConfig, Optimizer, ParamGroup};
use ferrograd::rand::{rngs::StdRng, RngExt, SeedableRng};

fn main() -> ferrograd::Result<()> {
    let steps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("STEPS is a number"))
        .unwrap_or(50);
    let cfg = GptConfig {
        vocab: 65,
        bias: false,
        ..Default::default()
    };
    let (batch, t) = (12, cfg.context);
    let mut rng = StdRng::seed_from_u64(0);
    let model = Gpt::<f32>::new(cfg, &mut rng);
    let (decay, rest): (Vec<_>, Vec<_>) = model
        .named_parameters()
        .into_iter()
        .partition(|(_, p)| p.ndim() >= 2);
    let adamw = AdamWConfig {
        lr: 1e-3,
        beta2: 0.99,
        weight_decay: 0.1,
        ..Default::default()
    };
    let mut opt = AdamW::with_groups(vec![
        ParamGroup::named(decay, adamw),
        ParamGroup::named(
            rest,
            AdamWConfig {
                weight_decay: 0.0,
                ..adamw
            },
        ),
    ]);
    let mut tokens = || -> Vec<usize> {
        (0..batch * t)
            .map(|_| rng.random_range(0..cfg.vocab))
            .collect()
    };
    let (x, y) = (tokens(), tokens());
    let mut step = || -> ferrograd::Result<f32> {
        let loss = model.try_loss(&x, &y, batch)?;
        let mut grads = loss.backward()?;
        grads.clip_norm(1.0);
        opt.step(&grads)?;
        Ok(loss.item())
    };
    let first = step()?; // warm-up, not timed
    let start = Instant::now();
    let mut loss = first;
    for _ in 0..steps {
        loss = step()?;
    }
    let elapsed = start.elapsed();
    println!(
        "nanoGPT config: {} parameters; {steps} steps: {:.2} ms/step, loss {first:.4} -> {loss:.4}",
        model.num_parameters(),
        elapsed.as_secs_f64() * 1e3 / steps.max(1) as f64
    );
    Ok(())
}
