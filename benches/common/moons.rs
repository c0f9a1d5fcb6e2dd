//! W4's training loop (micrograd's demo): an MLP 2-16-16-1 (ReLU) separates 100
//! two-moons points with the SVM max-margin loss `mean(relu(1 − y·score)) +
//! 1e-4·Σw²` (over every weight and bias) and plain SGD (lr 0.05), one
//! full-batch step per call. Shared by `benches/w4_moons.rs` and
//! `examples/w_steps.rs`.
//!
//! The points are `bench_torch.py`'s, written by
//! `python common.py moons benches/data/moons.csv` (x, y, label in {−1, +1}).

use ferrograd::nn::{Activation, Mlp, Module};
use ferrograd::optim::{Optimizer, Sgd, SgdConfig};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::Tensor;

const ALPHA: f32 = 1e-4;
const LR: f32 = 0.05;

/// The points `[n, 2]` and their labels `[n]`.
fn moons() -> (Tensor, Tensor) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for line in include_str!("../data/moons.csv").lines() {
        let v: Vec<f32> = line
            .split(',')
            .map(|s| s.parse().expect("a number"))
            .collect();
        xs.extend_from_slice(&v[..2]);
        ys.push(v[2]);
    }
    let n = ys.len();
    (
        Tensor::from_vec(xs, &[n, 2]).unwrap(),
        Tensor::from_vec(ys, &[n]).unwrap(),
    )
}

/// The model, its optimizer and the data of one W4 run.
pub struct MoonsTraining {
    model: Mlp,
    opt: Sgd,
    x: Tensor,
    y: Tensor,
}

impl MoonsTraining {
    pub fn new() -> Self {
        let (x, y) = moons();
        let model = Mlp::new(
            &[2, 16, 16, 1],
            Activation::Relu,
            &mut StdRng::seed_from_u64(0),
        );
        let opt = Sgd::new(
            model.parameters(),
            SgdConfig {
                lr: LR,
                ..Default::default()
            },
        );
        MoonsTraining { model, opt, x, y }
    }

    /// One full-batch step; returns the loss before the update.
    pub fn step(&mut self) -> f32 {
        let scores = self.model.forward(&self.x).squeeze(1);
        let margin = (1.0 - &self.y * scores).relu().mean();
        let reg = self
            .opt
            .parameters()
            .iter()
            .map(|p| p.square().sum())
            .reduce(|a, b| a + b)
            .unwrap();
        let loss = margin + reg * ALPHA;
        let grads = loss.backward().unwrap();
        self.opt.step(&grads).unwrap();
        loss.item()
    }
}
