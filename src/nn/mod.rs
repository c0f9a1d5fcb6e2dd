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
pub use dropout::{Dropout, RngState};
pub use embedding::Embedding;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use mlp::Mlp;
pub use sequential::{BoxedModule, Sequential};

/// Derives [`ModuleParams`] from a struct's fields: see the
/// [module docs](self#writing-a-model-with-derivemodule) for a worked example.
pub use ferrograd_derive::Module;

use crate::element::Element;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A layer or a network: a forward function over the [`ModuleParams`] it holds.
///
/// Implementations need no backward: their forward is made of tensor ops, which
/// record themselves. The parameters, buffers, training mode and RNG states live
/// in the supertrait [`ModuleParams`], which `#[derive(Module)]` writes for you
/// (or which you implement by hand); `Module` itself is only `forward`, so the
/// two impls never collide. See the [module docs](self#the-two-traits).
pub trait Module<T: Element = f32>: ModuleParams<T> {
    /// Applies the module to a batch of inputs.
    fn forward(&self, x: &Tensor<T>) -> Tensor<T>;
}

/// What a module holds: its parameters with their names, its buffers, its
/// training mode and the state of its random number generators.
///
/// `#[derive(Module)]` implements this trait from a struct's fields (see the
/// [module docs](self#writing-a-model-with-derivemodule)); by hand, only
/// [`named_parameters`](ModuleParams::named_parameters) is required, and a
/// container should also pass [`set_training`](ModuleParams::set_training) on to
/// its children (the default does nothing).
///
/// Names are dotted paths, as PyTorch's `state_dict`: a module's own tensors
/// are named by their field (`"weight"`), a child's tensors are prefixed by the
/// child's name and a dot (`"fc1.weight"`, `"blocks.0.attn.bias"`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a module (it does not implement `ModuleParams<{T}>`)",
    label = "not a module",
    note = "derive it with #[derive(Module)], or mark a field that is neither a module nor a tensor #[module(skip)]"
)]
pub trait ModuleParams<T: Element = f32> {
    /// The trainable tensors with their names (`"0.weight"`, `"fc.bias"`, …), in a
    /// stable order. The handles share the module's buffers: optimizers that
    /// update them in place update the module.
    fn named_parameters(&self) -> Vec<(String, Tensor<T>)>;

    /// The trainable tensors, in the order of [`named_parameters`](ModuleParams::named_parameters).
    fn parameters(&self) -> Vec<Tensor<T>> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// Tensors that are part of the module's state but not trained (running
    /// statistics, fixed tables), named as the parameters are. Checkpoints
    /// ([`io::save_module`](crate::io::save_module),
    /// [`io::load_into`](crate::io::load_into)) save and load them with the
    /// parameters; optimizers never see them. None by default.
    fn named_buffers(&self) -> Vec<(String, Tensor<T>)> {
        Vec::new()
    }

    /// Switches between training (`true`, the default) and evaluation behaviour
    /// (e.g. dropout is the identity in evaluation). Containers pass it on to
    /// every child; the default does nothing (right for layers whose behaviour
    /// does not depend on the mode).
    fn set_training(&mut self, _training: bool) {}

    /// The mode set by [`set_training`](ModuleParams::set_training): `Some(true)`
    /// in training, `Some(false)` in evaluation, `None` for a module whose
    /// behaviour does not depend on it (a `Linear`, an `Mlp`). A container
    /// answers for its children: `Some(true)` when any of them is in training.
    fn training_mode(&self) -> Option<bool> {
        None
    }

    /// The state of every random number generator inside the module (each
    /// [`Dropout`]'s), with dotted names as the parameters'
    /// (`"blocks.0.drop"`; `""` for a `Dropout` on its own). Restoring them with
    /// [`load_rng_states`](ModuleParams::load_rng_states) makes the masks that
    /// follow the same as if training had not stopped. None by default.
    fn named_rng_states(&self) -> Vec<(String, RngState)> {
        Vec::new()
    }

    /// Sets the state of the RNG named `name` (as
    /// [`named_rng_states`](ModuleParams::named_rng_states) names it). Returns
    /// false when the module has no RNG of that name.
    fn set_named_rng_state(&self, _name: &str, _state: RngState) -> bool {
        false
    }

    /// Restores the states saved from
    /// [`named_rng_states`](ModuleParams::named_rng_states), in place.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the RNGs of the module that `states`
    /// lacks and the names in `states` that match no RNG of the module; nothing
    /// is set then.
    fn load_rng_states(&self, states: &[(String, RngState)]) -> Result<()> {
        let own: Vec<String> = self
            .named_rng_states()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let missing: Vec<&String> = own
            .iter()
            .filter(|n| !states.iter().any(|(m, _)| m == *n))
            .collect();
        let unexpected: Vec<&String> = states
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !own.contains(n))
            .collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(Error::invalid(
                "load_rng_states",
                format!(
                    "the states do not fit the module: missing {missing:?}, unexpected {unexpected:?}"
                ),
            ));
        }
        for (name, state) in states {
            self.set_named_rng_state(name, *state);
        }
        Ok(())
    }
}

/// A boxed module is a module, so that [`Sequential::push`] also takes
/// `Box<dyn Module<T> + Send + Sync>` values built elsewhere.
impl<T: Element, M: Module<T> + ?Sized> Module<T> for Box<M> {
    #[track_caller]
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        (**self).forward(x)
    }
}

impl<T: Element, M: ModuleParams<T> + ?Sized> ModuleParams<T> for Box<M> {
    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        (**self).named_parameters()
    }

    fn parameters(&self) -> Vec<Tensor<T>> {
        (**self).parameters()
    }

    fn named_buffers(&self) -> Vec<(String, Tensor<T>)> {
        (**self).named_buffers()
    }

    fn set_training(&mut self, training: bool) {
        (**self).set_training(training)
    }

    fn training_mode(&self) -> Option<bool> {
        (**self).training_mode()
    }

    fn named_rng_states(&self) -> Vec<(String, RngState)> {
        (**self).named_rng_states()
    }

    fn set_named_rng_state(&self, name: &str, state: RngState) -> bool {
        (**self).set_named_rng_state(name, state)
    }
}

/// What the code generated by `#[derive(Module)]` calls. Not part of the API.
#[doc(hidden)]
pub mod __derive {
    /// `prefix.name`, or either alone when the other is empty.
    pub fn join(prefix: &str, name: &str) -> String {
        match (prefix.is_empty(), name.is_empty()) {
            (true, _) => name.to_string(),
            (_, true) => prefix.to_string(),
            _ => format!("{prefix}.{name}"),
        }
    }

    /// The name of element `i` of a collection named `prefix`.
    pub fn index(prefix: &str, i: usize) -> String {
        join(prefix, &i.to_string())
    }

    /// Appends a child's named items, each name prefixed by the child's.
    pub fn extend<X>(out: &mut Vec<(String, X)>, prefix: &str, items: Vec<(String, X)>) {
        out.extend(items.into_iter().map(|(n, x)| (join(prefix, &n), x)));
    }

    /// The rest of `name` inside a child named `prefix`, if `name` is in it.
    pub fn strip<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
        if prefix.is_empty() {
            return Some(name);
        }
        let rest = name.strip_prefix(prefix)?;
        if rest.is_empty() {
            Some(rest)
        } else {
            rest.strip_prefix('.')
        }
    }

    /// A container's mode from its children's: training when any child is.
    pub fn merge_mode(acc: Option<bool>, child: Option<bool>) -> Option<bool> {
        match (acc, child) {
            (Some(a), Some(c)) => Some(a || c),
            (a, c) => a.or(c),
        }
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
