//! W2: an MLP 784-256-256-10 (ReLU) classifying random data with softmax
//! cross-entropy and Adam (lr 1e-3), as `bench_torch.py`'s `w2_step`.
//! Shared by `benches/w2_mlp.rs` and `examples/peak_memory.rs`.

use ferrograd::loss::cross_entropy;
use ferrograd::nn::{Activation, Mlp, Module};
use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::rand::{rngs::StdRng, RngExt, SeedableRng};
use ferrograd::Tensor;

/// Layer sizes of the W2 network.
pub const SIZES: [usize; 4] = [784, 256, 256, 10];

/// A model, its optimizer and one fixed batch of random data.
pub struct MlpTraining {
    model: Mlp,
    opt: Adam,
    x: Tensor,
    y: Vec<usize>,
}

impl MlpTraining {
    /// A fresh model (PyTorch's default init) and a random batch of `batch` samples.
    pub fn new(batch: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let model = Mlp::new(&SIZES, Activation::Relu, &mut rng);
        let opt = Adam::new(
            model.parameters(),
            AdamConfig {
                lr: 1e-3,
                ..Default::default()
            },
        );
        let x = Tensor::randn(&[batch, SIZES[0]], &mut rng);
        let classes = SIZES[SIZES.len() - 1];
        let y = (0..batch).map(|_| rng.random_range(0..classes)).collect();
        MlpTraining { model, opt, x, y }
    }

    /// One full training step (forward, loss, backward, Adam update); returns the
    /// loss before the update.
    pub fn step(&mut self) -> f32 {
        let logits = self.model.forward(&self.x);
        let loss = cross_entropy(&logits, &self.y).expect("labels are in range");
        let grads = loss.backward().expect("the loss is a scalar");
        self.opt
            .step(&grads)
            .expect("every parameter has a gradient");
        loss.item()
    }
}
