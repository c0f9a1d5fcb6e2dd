//! Which GEMM crate: `gemm` (used by the crate) against `matrixmultiply` (with its
//! threading feature), raw, on square f32 products. Kept so the choice can be
//! re-measured: `cargo bench --bench gemm_crates`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn crates(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm_crates_f32");
    for n in [64usize, 128, 256, 512, 1024] {
        let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut out = vec![0f32; n * n];
        let s = n as isize;
        g.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        g.bench_with_input(BenchmarkId::new("gemm", n), &n, |bench, _| {
            bench.iter(|| {
                let par = if n >= 64 {
                    gemm::Parallelism::Rayon(0)
                } else {
                    gemm::Parallelism::None
                };
                // SAFETY: all three buffers hold n*n elements addressed row-major.
                unsafe {
                    gemm::gemm(
                        n,
                        n,
                        n,
                        out.as_mut_ptr(),
                        1,
                        s,
                        false,
                        a.as_ptr(),
                        1,
                        s,
                        b.as_ptr(),
                        1,
                        s,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        par,
                    )
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("matrixmultiply", n), &n, |bench, _| {
            bench.iter(|| {
                // SAFETY: all three buffers hold n*n elements addressed row-major.
                unsafe {
                    matrixmultiply::sgemm(
                        n,
                        n,
                        n,
                        1.0,
                        a.as_ptr(),
                        s,
                        1,
                        b.as_ptr(),
                        s,
                        1,
                        0.0,
                        out.as_mut_ptr(),
                        s,
                        1,
                    )
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, crates);
criterion_main!(benches);
