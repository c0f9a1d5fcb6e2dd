//! The names most training code needs, in one import:
//! `use ferrograd::prelude::*;`.
//!
//! Tensors and autograd ([`Tensor`], [`Gradients`], [`grad`], [`GradOptions`],
//! [`no_grad`], [`Element`], [`Error`], [`Result`]); modules ([`Module`], the
//! trait and the derive, [`ModuleParams`], and the built-in layers); the
//! losses; the optimizers with their configs, [`Optimizer`], [`ParamGroup`]
//! and the learning-rate [`Scheduler`]; mini-batches ([`Batches`],
//! [`Shuffler`]) and training checkpoints ([`Checkpoint`]); and the
//! RNG names that constructors take ([`StdRng`], [`SeedableRng`], [`Rng`],
//! from the `rand` the crate is built with).
//!
//! ```
//! use ferrograd::prelude::*;
//!
//! #[derive(Module)]
//! struct Net {
//!     fc1: Linear,
//!     drop: Dropout,
//!     fc2: Linear,
//! }
//!
//! impl Module for Net {
//!     fn forward(&self, x: &Tensor) -> Tensor {
//!         self.fc2.forward(&self.drop.forward(&self.fc1.forward(x).relu()))
//!     }
//! }
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let net = Net {
//!     fc1: Linear::new(4, 16, true, &mut rng),
//!     drop: Dropout::new(0.1, 1),
//!     fc2: Linear::new(16, 2, true, &mut rng),
//! };
//! let mut opt = Adam::new_named(net.named_parameters(), AdamConfig::default());
//! let x = Tensor::<f32>::randn(&[8, 4], &mut rng);
//! let loss = cross_entropy(&net.forward(&x), &[0, 1, 0, 1, 1, 0, 0, 1])?;
//! opt.step(&loss.backward()?)?;
//! # Ok::<(), ferrograd::Error>(())
//! ```

pub use crate::data::{Batches, Shuffler};
pub use crate::io::Checkpoint;
pub use crate::loss::{
    bce, bce_with_logits, cross_entropy, cross_entropy_with, huber, kl_div, l1, mse, nll,
    CrossEntropyOptions,
};
pub use crate::nn::{
    Activation, Dropout, Embedding, LayerNorm, Linear, Mlp, Module, ModuleParams, Sequential,
};
pub use crate::optim::lr::Scheduler;
pub use crate::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, ParamGroup, RmsProp,
    RmsPropConfig, Sgd, SgdConfig,
};
pub use crate::rand::rngs::StdRng;
pub use crate::rand::{Rng, SeedableRng};
pub use crate::{grad, no_grad, Element, Error, GradOptions, Gradients, Result, Tensor};
