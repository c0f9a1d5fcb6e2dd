//! f32 square matmul through the public API (W1), and its backward pass.
//! Throughput is reported in elements/s with 2n³ "elements": read it as FLOP/s.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::Tensor;

fn matmul(c: &mut Criterion) {
    let _ = ferrograd::set_num_threads(0);
    let mut rng = StdRng::seed_from_u64(0);
    let mut g = c.benchmark_group("matmul_f32");
    for n in [64usize, 128, 256, 512, 1024] {
        let a = Tensor::<f32>::randn(&[n, n], &mut rng);
        let b = Tensor::<f32>::randn(&[n, n], &mut rng);
        g.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
            bench.iter(|| a.matmul(&b))
        });
    }
    g.finish();
}

fn matmul_backward(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let mut g = c.benchmark_group("matmul_f32_forward_backward");
    for n in [64usize, 256] {
        let a = Tensor::<f32>::randn(&[n, n], &mut rng).requires_grad();
        let b = Tensor::<f32>::randn(&[n, n], &mut rng).requires_grad();
        // forward + two GEMMs in backward
        g.throughput(Throughput::Elements(6 * (n as u64).pow(3)));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
            bench.iter(|| a.matmul(&b).sum().backward().unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, matmul, matmul_backward);
criterion_main!(benches);
