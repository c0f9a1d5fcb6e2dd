//! W5: one training step of a tiny GPT (vocab 65, context 64, d_model 128, 4
//! heads, 2 layers, manual causal attention) on a batch of 16 random sequences
//! with AdamW (lr 3e-4). Read the time per iteration as ms per step.
//!
//! Run: `cargo bench --bench w5_gpt`

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "common/gpt.rs"]
mod gpt;

use gpt::{GptConfig, GptTraining};

fn w5(c: &mut Criterion) {
    let _ = ferrograd::set_num_threads(0);
    let mut training = GptTraining::new(GptConfig::W5, 16, 0);
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
    let mut g = c.benchmark_group("w5_gpt_step");
    g.sample_size(20);
    g.bench_function("B16_T64", |b| b.iter(|| training.step()));
    g.finish();
}

criterion_group!(benches, w5);
criterion_main!(benches);
