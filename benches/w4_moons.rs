//! W4: micrograd's demo. An MLP 2-16-16-1 (ReLU) separates 100 two-moons points
//! with the SVM max-margin loss `mean(relu(1 − y·score)) + 1e-4·Σw²` (over every
//! weight and bias) and plain SGD (lr 0.05), one full-batch step per iteration.
//! Read the time per iteration as ms per step.
//!
//! Run: `cargo bench --bench w4_moons`

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "common/moons.rs"]
mod moons;

use moons::MoonsTraining;

fn w4(c: &mut Criterion) {
    let _ = ferrograd::set_num_threads(0);
    let mut training = MoonsTraining::new();
    let first = training.step();
    let last = (0..19).map(|_| training.step()).last().unwrap();
    assert!(
        last.is_finite() && last < first,
        "W4: loss went from {first} to {last}"
    );
    c.bench_function("w4_moons_step", |b| b.iter(|| training.step()));
}

criterion_group!(benches, w4);
criterion_main!(benches);
