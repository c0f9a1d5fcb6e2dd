//! Layers made of tensor ops (no hand-written backward), and the `Module` trait.
//!
//! Every layer is generic over the element type (`f32` by default) and builds its
//! forward pass from [`Tensor`] ops, which record themselves: gradients come from
//! [`Tensor::backward`] with no code here. Parameters are leaves made with
//! [`requires_grad`](Tensor::requires_grad); [`Module::named_parameters`] hands out
//! handles that share their buffers, so optimizers and [`Tensor::assign`] update
//! the layer in place.
//!
//! | item | what it is |
//! |---|---|
//! | [`Linear`] | `x·Wᵀ + b`, weight `[out, in]` and bias `[out]` as PyTorch |
//! | [`Activation`] | `Relu`, `Tanh`, `Sigmoid`, `Gelu`, `GeluErf`, `Silu`, `LeakyRelu(slope)`, `Identity` |
//! | [`Mlp`] | `Linear` layers with an activation between them |
//! | [`Sequential`] | a chain of boxed modules, named `"0.weight"`, `"1.bias"`, … |
//! | [`Dropout`] | seeded inverted dropout; the identity in evaluation |
//! | [`Embedding`] | a lookup table of `[num, dim]` vectors |
//! | [`LayerNorm`] | normalisation over the last axis, with a learned scale and shift |
//! | [`init`] | Xavier/Glorot and Kaiming/He initialisation, `calculate_gain` |
//! | [`functional`] | the stateless forms: `linear`, `layer_norm`, `dropout`, `embedding` |
//!
//! # Parameter names
//!
//! Names follow PyTorch's `state_dict`, so that safetensors checkpoints
//! interchange: a leaf layer names its own tensors (`"weight"`, `"bias"`), and a
//! container prefixes its children's names with the child's position and a dot.
//! [`Sequential`] counts every module it holds, parameterless activations and
//! dropouts included, as `torch.nn.Sequential` does (`[Linear, Relu, Linear]` →
//! `"0.weight"`, `"0.bias"`, `"2.weight"`, `"2.bias"`). [`Mlp`] counts its
//! `Linear` layers only, as a PyTorch `ModuleList` of its linear layers would
//! (`"0.weight"`, `"0.bias"`, `"1.weight"`, `"1.bias"`, …).
//!
//! ```
//! use ferrograd::nn::{Activation, Linear, Module, Sequential};
//! use ferrograd::rand::{rngs::StdRng, SeedableRng};
//! use ferrograd::Tensor;
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let net: Sequential = Sequential::new()
//!     .with(Linear::new(4, 8, true, &mut rng))
//!     .with(Activation::Relu)
//!     .with(Linear::new(8, 2, true, &mut rng));
//! let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
//!
//! let x = Tensor::<f32>::randn(&[3, 4], &mut rng);
//! let loss = net.forward(&x).square().mean();
//! let grads = loss.backward()?;
//! for p in net.parameters() {
//!     assert_eq!(grads.get(&p).unwrap().shape(), p.shape());
//! }
//! # Ok::<(), ferrograd::Error>(())
//! ```

mod activation;
mod dropout;
mod embedding;
pub mod functional;
pub mod init;
mod layer_norm;
mod linear;
mod mlp;
mod sequential;

pub use activation::Activation;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use mlp::Mlp;
pub use sequential::{BoxedModule, Sequential};

use crate::element::Element;
use crate::tensor::Tensor;

/// A layer or a network: a forward function and the parameters it trains.
///
/// Implementations need no backward: their forward is made of tensor ops, which
/// record themselves.
pub trait Module<T: Element = f32> {
    /// Applies the module to a batch of inputs.
    fn forward(&self, x: &Tensor<T>) -> Tensor<T>;

    /// The trainable tensors with their names (`"0.weight"`, `"fc.bias"`, …), in a
    /// stable order. The handles share the module's buffers: optimizers that
    /// update them in place update the module.
    fn named_parameters(&self) -> Vec<(String, Tensor<T>)>;

    /// The trainable tensors, in the order of [`named_parameters`](Module::named_parameters).
    fn parameters(&self) -> Vec<Tensor<T>> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// Switches between training (`true`, the default) and evaluation behaviour
    /// (e.g. dropout is the identity in evaluation). Containers pass it on.
    fn set_training(&mut self, _training: bool) {}
}

/// A boxed module is a module, so that [`Sequential::push`] also takes
/// `Box<dyn Module<T> + Send + Sync>` values built elsewhere.
impl<T: Element, M: Module<T> + ?Sized> Module<T> for Box<M> {
    #[track_caller]
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        (**self).forward(x)
    }

    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        (**self).named_parameters()
    }

    fn parameters(&self) -> Vec<Tensor<T>> {
        (**self).parameters()
    }

    fn set_training(&mut self, training: bool) {
        (**self).set_training(training)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<X: Send + Sync>() {}

    #[test]
    fn layers_cross_threads() {
        assert_send_sync::<Linear<f32>>();
        assert_send_sync::<Mlp<f64>>();
        assert_send_sync::<Sequential<f32>>();
        assert_send_sync::<Dropout>();
        assert_send_sync::<Embedding<f32>>();
        assert_send_sync::<LayerNorm<f64>>();
        assert_send_sync::<Activation>();
    }
}
