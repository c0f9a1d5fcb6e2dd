//! A Hessian-vector product of W2's loss (MLP 784-256-256-10, ReLU, softmax
//! cross-entropy, batch 32) with respect to all of its weights: `grad` with
//! `create_graph`, then `grad` of the gradient's dot product with `v` (as
//! `torch.autograd.grad` twice in `scripts/bench_hvp_torch.py`). Beside it, one
//! gradient (forward, loss, backward) of the same loss, for the ratio.
//!
//! Run: `cargo bench --bench hvp`

use criterion::{criterion_group, criterion_main, Criterion};
use ferrograd::loss::cross_entropy;
use ferrograd::nn::{Activation, Mlp, Module};
use ferrograd::rand::{rngs::StdRng, RngExt, SeedableRng};
use ferrograd::{grad, GradOptions, Tensor};

const SIZES: [usize; 4] = [784, 256, 256, 10];
const BATCH: usize = 32;

struct Setup {
    model: Mlp,
    params: Vec<Tensor>,
    x: Tensor,
    y: Vec<usize>,
    v: Vec<Tensor>,
}

fn setup() -> Setup {
    let mut rng = StdRng::seed_from_u64(0);
    let model = Mlp::new(&SIZES, Activation::Relu, &mut rng);
    let params = model.parameters();
    let x = Tensor::randn(&[BATCH, SIZES[0]], &mut rng);
    let y = (0..BATCH).map(|_| rng.random_range(0..SIZES[3])).collect();
    let v = params
        .iter()
        .map(|p| Tensor::randn(p.shape(), &mut rng))
        .collect();
    Setup {
        model,
        params,
        x,
        y,
        v,
    }
}

impl Setup {
    fn loss(&self) -> Tensor {
        cross_entropy(&self.model.forward(&self.x), &self.y).expect("labels in range")
    }

    /// One gradient of the loss with respect to every weight.
    fn gradient(&self) -> Vec<Tensor> {
        let refs: Vec<&Tensor> = self.params.iter().collect();
        grad(&self.loss(), &refs, GradOptions::default()).expect("a scalar loss")
    }

    /// `H·v`: the gradient recorded, then the gradient of `Σ g·v`.
    fn hvp(&self) -> Vec<Tensor> {
        let refs: Vec<&Tensor> = self.params.iter().collect();
        let recorded = GradOptions {
            create_graph: true,
            ..Default::default()
        };
        let g = grad(&self.loss(), &refs, recorded).expect("a scalar loss");
        let dot: Tensor = g
            .iter()
            .zip(&self.v)
            .map(|(g, v)| (g * v).sum())
            .reduce(|a, b| a + b)
            .expect("parameters");
        grad(&dot, &refs, GradOptions::default()).expect("a scalar")
    }
}

fn hvp(c: &mut Criterion) {
    let _ = ferrograd::set_num_threads(0);
    let s = setup();
    // H·v is linear in v and not zero for a ReLU network with a softmax loss
    let hv = s.hvp();
    let norm: f32 = hv.iter().map(|t| t.square().sum().item()).sum();
    assert!(norm.is_finite() && norm > 0.0, "|Hv|² = {norm}");

    let mut g = c.benchmark_group("w2_mlp_b32");
    g.bench_function("gradient", |b| b.iter(|| s.gradient()));
    g.bench_function("hvp", |b| b.iter(|| s.hvp()));
    g.finish();
}

criterion_group!(benches, hvp);
criterion_main!(benches);
