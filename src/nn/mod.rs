//! Layers made of tensor ops (no hand-written backward), and the `Module` trait.

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
