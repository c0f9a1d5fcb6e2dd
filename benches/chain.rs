//! Per-op overhead (W3): a chain of 10,000 ops on a 1-element tensor that
//! requires a gradient (`x = x * 1.0001 + 0.0001`, 5,000 times), then backward.
//! Throughput is in ops/s; the time per op is its inverse (µs per op = time per
//! iteration / 10,000).
//!
//! Run: `cargo bench --bench chain`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrograd::Tensor;

const OPS: usize = 10_000;

/// `x = x * 1.0001 + 0.0001`, `OPS / 2` times.
fn forward(x0: &Tensor) -> Tensor {
    let mut x = x0.clone();
    for _ in 0..OPS / 2 {
        x = x * 1.0001 + 0.0001;
    }
    x
}

/// The chain's forward and backward pass; returns `d x / d x0`.
fn forward_backward(x0: &Tensor) -> f32 {
    let x = forward(x0);
    x.backward().unwrap().get(x0).unwrap().item()
}

fn chain(c: &mut Criterion) {
    let _ = ferrograd::set_num_threads(0);
    let x0 = Tensor::<f32>::ones(&[1]).requires_grad();
    let g = forward_backward(&x0);
    let expected = 1.0001f64.powi((OPS / 2) as i32);
    assert!(
        (f64::from(g) - expected).abs() < 1e-3,
        "W3: gradient {g}, expected {expected}"
    );

    let mut g = c.benchmark_group("chain_10k_ops_1_element");
    g.throughput(Throughput::Elements(OPS as u64));
    g.bench_function("forward_backward", |b| b.iter(|| forward_backward(&x0)));
    g.bench_function("forward_only", |b| b.iter(|| forward(&x0)));
    g.finish();
}

criterion_group!(benches, chain);
criterion_main!(benches);
