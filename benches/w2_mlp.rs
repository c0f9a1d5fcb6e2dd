//! W2: one full training step (forward, cross-entropy, backward, Adam update) of
//! an MLP 784-256-256-10 on random data, at batch 1, 32 and 256. Read the time
//! per iteration as ms per step.
//!
//! Run: `cargo bench --bench w2_mlp`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

#[path = "common/mlp.rs"]
mod mlp;

use mlp::MlpTraining;

fn w2(c: &mut Criterion) {
    let _ = ferrograd::set_num_threads(0);
    let mut g = c.benchmark_group("w2_mlp_step");
    for batch in [1usize, 32, 256] {
        let mut training = MlpTraining::new(batch, 0);
        // The bench must measure a model that learns: a few steps on the fixed
        // batch lower its loss.
        let first = training.step();
        let last = (0..4).map(|_| training.step()).last().unwrap();
        assert!(
            last.is_finite() && last < first,
            "W2 B={batch}: loss went from {first} to {last}"
        );
        g.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, _| {
            b.iter(|| training.step())
        });
    }
    g.finish();
}

criterion_group!(benches, w2);
criterion_main!(benches);
