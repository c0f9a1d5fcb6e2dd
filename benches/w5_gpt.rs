//! W5: one training step of a tiny GPT (vocab 65, context 64, d_model 128, 4
//! heads, 2 layers, manual causal attention) on a batch of 16 random sequences
//! with AdamW (lr 3e-4). Read the time per iteration as ms per step.
//! `B16_T64` is the workload (the attention written out, beside PyTorch's
//! `manual` row); `B16_T64_fused` the same model with the fused attention op
//! (beside PyTorch's `sdpa` row).
//!
//! Run: `cargo bench --bench w5_gpt`

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "common/gpt.rs"]
mod gpt;

use gpt::{GptConfig, GptTraining};

fn w5(c: &mut Criterion) {
    let _ = ferrograd::set_num_threads(0);
    let mut g = c.benchmark_group("w5_gpt_step");
    g.sample_size(20);
    let (written_out, first) = checked(GptConfig::W5);
    let (fused, first_fused) = checked(GptConfig::W5_FUSED);
    // the same model and batch: the two attentions give the same first loss
    assert!(
        (first - first_fused).abs() < 1e-4,
        "W5: first loss {first} written out, {first_fused} fused"
    );
    for (name, mut training) in [("B16_T64", written_out), ("B16_T64_fused", fused)] {
        g.bench_function(name, |b| b.iter(|| training.step()));
    }
    g.finish();
}

/// A W5 training run whose first steps lower the loss from about ln 65, and
/// its first loss.
fn checked(cfg: GptConfig) -> (GptTraining, f32) {
    let mut training = GptTraining::new(cfg, 16, 0);
    assert_eq!(training.model().parameters().len(), 4 + 12 * 2 + 2);
    let first = training.step();
    // The initial loss of random logits is about ln(vocab); a few steps lower it.
    assert!(
        (first - (65f32).ln()).abs() < 1.5,
        "W5: first loss {first}, expected about ln 65"
    );
    let last = (0..4).map(|_| training.step()).last().unwrap();
    assert!(
        last.is_finite() && last < first,
        "W5: loss went from {first} to {last}"
    );
    (training, first)
}

criterion_group!(benches, w5);
criterion_main!(benches);
