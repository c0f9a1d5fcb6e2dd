//! Scaled dot-product attention, forward and backward, f32, causal: the fused
//! op (`nn::functional::scaled_dot_product_attention`) against the same
//! computation written with tensor ops (`q·kᵀ·scale`, `masked_fill(−∞)`,
//! `softmax`, `·v`, as W5's hand-written attention), at W5's shape
//! (`[16, 4, 64, 32]`: batch 16, 4 heads, 64 tokens, head size 32) and a longer
//! context (`[4, 4, 256, 32]`).
//!
//! Run: `cargo bench --bench attention`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ferrograd::nn::functional::scaled_dot_product_attention as sdpa;
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::Tensor;

/// The composite form: every intermediate a tensor of the graph.
fn composite(q: &Tensor, k: &Tensor, v: &Tensor, causal_mask: &Tensor) -> Tensor {
    let d = q.shape()[q.ndim() - 1] as f32;
    q.matmul(&k.transpose(-2, -1))
        .mul_scalar(1.0 / d.sqrt())
        .masked_fill(causal_mask, f32::NEG_INFINITY)
        .softmax(-1)
        .matmul(v)
}

fn attention(c: &mut Criterion) {
    let _ = ferrograd::set_num_threads(0);
    let mut rng = StdRng::seed_from_u64(0);
    for (name, shape) in [("w5", [16usize, 4, 64, 32]), ("long", [4, 4, 256, 32])] {
        let [_, _, t, _] = shape;
        let leaf = |rng: &mut StdRng| Tensor::<f32>::randn(&shape, rng).requires_grad();
        let (q, k, v) = (leaf(&mut rng), leaf(&mut rng), leaf(&mut rng));
        let u = Tensor::<f32>::randn(&shape, &mut rng);
        // 1 above the diagonal: masked out
        let mask = Tensor::<f32>::ones(&[t, t]).triu(1);
        // the two forms agree before they are timed
        let (a, b) = (
            sdpa(&q, &k, &v, None, true, 0.0, None).to_vec(),
            composite(&q, &k, &v, &mask).to_vec(),
        );
        let err = a
            .iter()
            .zip(&b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-4, "fused and composite differ by {err}");

        let mut g = c.benchmark_group(format!("attention_{name}_{shape:?}_causal"));
        g.bench_function(BenchmarkId::new("forward", "fused"), |bench| {
            bench.iter(|| sdpa(&q, &k, &v, None, true, 0.0, None))
        });
        g.bench_function(BenchmarkId::new("forward", "composite"), |bench| {
            bench.iter(|| composite(&q, &k, &v, &mask))
        });
        g.bench_function(BenchmarkId::new("forward_backward", "fused"), |bench| {
            bench.iter(|| {
                sdpa(&q, &k, &v, None, true, 0.0, None)
                    .backward_with(&u)
                    .unwrap()
            })
        });
        g.bench_function(BenchmarkId::new("forward_backward", "composite"), |bench| {
            bench.iter(|| composite(&q, &k, &v, &mask).backward_with(&u).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, attention);
criterion_main!(benches);
