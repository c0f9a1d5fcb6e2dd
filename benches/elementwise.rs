//! Elementwise ops on a contiguous 1M-element f32 tensor, beside the same loop
//! over a plain `Vec` (the floor: allocation of the output included in both).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::Tensor;
use std::hint::black_box;

const N: usize = 1 << 20;

fn elementwise(c: &mut Criterion) {
    let _ = ferrograd::set_num_threads(0);
    let mut rng = StdRng::seed_from_u64(0);
    let x = Tensor::<f32>::randn(&[N], &mut rng);
    let y = Tensor::<f32>::randn(&[N], &mut rng);
    let (xv, yv) = (x.to_vec(), y.to_vec());
    let mut g = c.benchmark_group("elementwise_1M_f32");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("tensor_add", |b| b.iter(|| &x + &y));
    g.bench_function("vec_add", |b| {
        b.iter(|| {
            black_box(&xv)
                .iter()
                .zip(black_box(&yv))
                .map(|(a, b)| a + b)
                .collect::<Vec<f32>>()
        })
    });
    g.bench_function("tensor_mul_scalar", |b| b.iter(|| &x * 1.0001));
    g.bench_function("vec_mul_scalar", |b| {
        b.iter(|| {
            black_box(&xv)
                .iter()
                .map(|a| a * 1.0001)
                .collect::<Vec<f32>>()
        })
    });
    g.bench_function("tensor_relu", |b| b.iter(|| x.relu()));
    g.bench_function("vec_relu", |b| {
        b.iter(|| {
            black_box(&xv)
                .iter()
                .map(|&a| if a <= 0.0 { 0.0 } else { a })
                .collect::<Vec<f32>>()
        })
    });
    g.bench_function("tensor_exp", |b| b.iter(|| x.exp()));
    g.bench_function("vec_exp", |b| {
        b.iter(|| black_box(&xv).iter().map(|a| a.exp()).collect::<Vec<f32>>())
    });
    g.bench_function("tensor_tanh", |b| b.iter(|| x.tanh()));
    g.bench_function("tensor_gelu", |b| b.iter(|| x.gelu()));
    g.bench_function("tensor_sum", |b| b.iter(|| x.sum()));
    g.bench_function("vec_sum", |b| b.iter(|| black_box(&xv).iter().sum::<f32>()));
    g.finish();

    // a short chain with its backward pass: relu(x·w + b).sum()
    let w = x.requires_grad();
    let mut g = c.benchmark_group("elementwise_chain_1M_f32");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("forward_backward", |b| {
        b.iter(|| (&w * &y + 0.5).relu().sum().backward().unwrap())
    });
    g.finish();
}

criterion_group!(benches, elementwise);
criterion_main!(benches);
