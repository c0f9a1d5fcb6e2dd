//! Per-op overhead (W3): a chain of 10,000 ops on a 1-element tensor that
//! requires a gradient (`x = x * 1.0001 + 0.0001`, 5,000 times), then backward.
//! Throughput is in ops/s; the time per op is its inverse.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrograd::Tensor;

const OPS: usize = 10_000;

fn chain(c: &mut Criterion) {
    let x0 = Tensor::<f32>::ones(&[1]).requires_grad();
    let mut g = c.benchmark_group("chain_10k_ops_1_element");
    g.throughput(Throughput::Elements(OPS as u64));
    g.bench_function("forward_backward", |b| {
        b.iter(|| {
            let mut x = x0.clone();
            for _ in 0..OPS / 2 {
                x = x * 1.0001 + 0.0001;
            }
            x.backward().unwrap().get(&x0).unwrap().item()
        })
    });
    g.bench_function("forward_only", |b| {
        b.iter(|| {
            let mut x = x0.clone();
            for _ in 0..OPS / 2 {
                x = x * 1.0001 + 0.0001;
            }
            x
        })
    });
    g.finish();
}

criterion_group!(benches, chain);
criterion_main!(benches);
