//! Layers made of tensor ops (no hand-written backward), the `Module` trait, and
//! `#[derive(Module)]` for your own models.
//!
//! Every layer is generic over the element type (`f32` by default) and builds its
//! forward pass from [`Tensor`] ops, which record themselves: gradients come from
//! [`Tensor::backward`] with no code here. Parameters are leaves made with
//! [`requires_grad`](Tensor::requires_grad); [`ModuleParams::named_parameters`]
//! hands out handles that share their buffers, so optimizers and
//! [`Tensor::assign`] update the layer in place.
//!
//! | item | what it is |
//! |---|---|
//! | [`Linear`] | `x·Wᵀ + b`, weight `[out, in]` and bias `[out]` as PyTorch |
//! | [`Activation`] | `Relu`, `Tanh`, `Sigmoid`, `Gelu`, `GeluErf`, `Silu`, `LeakyRelu(slope)`, `Identity` |
//! | [`Mlp`] | `Linear` layers with an activation between them |
//! | [`Sequential`] | a chain of boxed modules, named `"0.weight"`, `"1.bias"`, … |
//! | [`Dropout`] | seeded inverted dropout; the identity in evaluation |
//! | [`Embedding`] | a lookup table of `[num, dim]` vectors |
//! | [`LayerNorm`] | normalisation over the last axis, with a learned scale and (optional) shift |
//! | [`MultiHeadAttention`] | self-attention: fused QKV projection, heads, causal and key-padding masks, dropout |
//! | [`FeedForward`] | a transformer's MLP: `Linear` to 4× the width, an activation, `Linear` back |
//! | [`TransformerBlock`] | pre-norm `x + attn(ln1(x))`, then `x + mlp(ln2(x))` |
//! | [`PositionalEmbedding`] | learned or sinusoidal ([`sinusoidal_positions`]) position vectors |
//! | [`Gpt`] | a GPT language model as nanoGPT's: [`GptConfig`], next-token [`loss`](Gpt::loss), [`generate`](Gpt::generate) with [`Sampling`] |
//! | [`init`] | Xavier/Glorot and Kaiming/He initialisation, `calculate_gain` |
//! | [`functional`] | the stateless forms: `linear`, `layer_norm`, `dropout`, `embedding`, `scaled_dot_product_attention` |
//! | [`RngState`] | where a [`Dropout`]'s masks are: a seed and a count of masks drawn |
//!
//! # The two traits
//!
//! A module has two halves, one trait each:
//!
//! - [`Module`]`<T>`: `forward`, and nothing else. You write it.
//! - [`ModuleParams`]`<T>`, its supertrait: what the module holds, i.e.
//!   [`named_parameters`](ModuleParams::named_parameters) (and
//!   [`parameters`](ModuleParams::parameters)),
//!   [`named_buffers`](ModuleParams::named_buffers),
//!   [`set_training`](ModuleParams::set_training) and
//!   [`training_mode`](ModuleParams::training_mode),
//!   [`named_rng_states`](ModuleParams::named_rng_states) and
//!   [`load_rng_states`](ModuleParams::load_rng_states). `#[derive(Module)]`
//!   writes it from the struct's fields.
//!
//! Splitting them is what lets `#[derive(Module)]` and your own
//! `impl Module for Net { fn forward … }` live side by side: a derive that
//! implemented `Module` would need `forward` too, and Rust has no way for a
//! trait's default methods to call code that a derive may or may not have
//! generated. The derive is named `Module` all the same (re-exported here, so
//! `use ferrograd::nn::Module` brings in the trait and the derive, as
//! `serde::Serialize` does).
//!
//! The derive also writes [`ModuleParams`]'s methods as inherent methods of the
//! struct (each calls the trait's), so `net.parameters()` on a derived model or
//! a built-in layer needs nothing imported. Code that is generic over modules
//! (`fn f<M: Module<T>>(m: &M)`) or holds `dyn Module<T>` calls `m.parameters()`
//! with `Module` alone in scope. Only on a concrete type whose `ModuleParams` is
//! written by hand does the call need `use ferrograd::nn::ModuleParams` (or the
//! [prelude](crate::prelude)).
//!
//! A hand-written [`ModuleParams`] needs only `named_parameters`; a container
//! should also pass `set_training` on (the default does nothing, so a `Dropout`
//! inside would stay in training mode: the derive does this for you).
//!
//! # Writing a model with `#[derive(Module)]`
//!
//! Each field of the struct is a parameter (`Tensor<T>`), a module (anything
//! that implements [`ModuleParams`]: the layers here, your own derived structs,
//! a [`BoxedModule`]), a `Vec`, array, `Option` or `Box` of these (nested as
//! deep as you like), or marked with an attribute:
//!
//! | attribute | meaning |
//! |---|---|
//! | `#[module(skip)]` | neither a module nor a tensor (a config, a size); ignored (`PhantomData` needs no mark) |
//! | `#[module(buffer)]` | a tensor that is saved and loaded but not trained (running statistics) |
//! | `#[module(flatten)]` | the field's names are not prefixed by its own (`"0.weight"` rather than `"layers.0.weight"`) |
//! | `#[module(training)]` | a `bool` field that holds the module's own mode |
//! | `#[module(element = f64)]` | on the struct: the element type, when it has no `T: Element` parameter and its fields do not say |
//!
//! Names are PyTorch's: a field's name, then a dot and what is inside
//! (`"fc1.weight"`); a `Vec` or array adds the index (`"blocks.0.attn.weight"`);
//! an `Option` adds nothing, and a `None` contributes nothing; a tuple struct's
//! fields are `"0"`, `"1"`, …. `set_training` reaches every module inside, so a
//! `Dropout` nested at any depth follows the model's mode.
//!
//! ```
//! use ferrograd::nn::{Dropout, Linear, Module, ModuleParams, RngState};
//! use ferrograd::rand::{rngs::StdRng, SeedableRng};
//! use ferrograd::{Element, Tensor};
//!
//! /// Hyperparameters: not a module, so skipped.
//! struct Config {
//!     residual: bool,
//! }
//!
//! #[derive(Module)]
//! struct Block<T: Element> {
//!     attn: Linear<T>,
//!     drop: Dropout,
//! }
//!
//! impl<T: Element> Module<T> for Block<T> {
//!     fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
//!         self.drop.forward(&self.attn.forward(x).relu())
//!     }
//! }
//!
//! #[derive(Module)]
//! struct Net<T: Element = f32> {
//!     fc1: Linear<T>,
//!     blocks: Vec<Block<T>>,
//!     head: Option<Linear<T>>,
//!     scale: Tensor<T>,
//!     #[module(buffer)]
//!     running_mean: Tensor<T>, // saved, not trained
//!     #[module(skip)]
//!     config: Config,
//! }
//!
//! // `forward` is yours; the derive wrote ModuleParams.
//! impl<T: Element> Module<T> for Net<T> {
//!     fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
//!         let mut h = self.fc1.forward(&(x - &self.running_mean));
//!         for block in &self.blocks {
//!             h = if self.config.residual { &h + block.forward(&h) } else { block.forward(&h) };
//!         }
//!         let h = h * &self.scale;
//!         match &self.head {
//!             Some(head) => head.forward(&h),
//!             None => h,
//!         }
//!     }
//! }
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let mut net: Net = Net {
//!     fc1: Linear::new(3, 4, true, &mut rng),
//!     blocks: (0..2)
//!         .map(|i| Block { attn: Linear::new(4, 4, true, &mut rng), drop: Dropout::new(0.1, i) })
//!         .collect(),
//!     head: Some(Linear::new(4, 2, false, &mut rng)),
//!     scale: Tensor::ones(&[4]).requires_grad(),
//!     running_mean: Tensor::zeros(&[3]),
//!     config: Config { residual: true },
//! };
//!
//! let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(
//!     names,
//!     [
//!         "fc1.weight", "fc1.bias",
//!         "blocks.0.attn.weight", "blocks.0.attn.bias",
//!         "blocks.1.attn.weight", "blocks.1.attn.bias",
//!         "head.weight", "scale",
//!     ]
//! );
//! assert_eq!(net.named_buffers()[0].0, "running_mean");
//! assert_eq!(
//!     net.named_rng_states(),
//!     [("blocks.0.drop".to_string(), RngState::new(0, 0)), ("blocks.1.drop".to_string(), RngState::new(1, 0))]
//! );
//!
//! // evaluation mode reaches the dropouts inside the blocks
//! net.set_training(false);
//! assert_eq!(net.training_mode(), Some(false));
//! assert!(net.blocks.iter().all(|b| !b.drop.is_training()));
//! let x = Tensor::<f32>::randn(&[5, 3], &mut rng);
//! assert_eq!(net.forward(&x).to_vec(), net.forward(&x).to_vec());
//! assert_eq!(net.forward(&x).shape(), &[5, 2]);
//!
//! // checkpoints: parameters and buffers by name
//! let path = std::env::temp_dir().join(format!("ferrograd-derive-{}.safetensors", std::process::id()));
//! ferrograd::io::save_module(&net, &path)?;
//! let report = ferrograd::io::load_into(&net, &path)?;
//! assert_eq!(report.loaded.len(), 9);
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), ferrograd::Error>(())
//! ```
//!
//! The derive rejects what it cannot name, at compile time: an enum,
//! ```compile_fail
//! #[derive(ferrograd::nn::Module)]
//! enum Either { A(ferrograd::nn::Linear), B(ferrograd::nn::Linear) }
//! ```
//! an attribute it does not know,
//! ```compile_fail
//! #[derive(ferrograd::nn::Module)]
//! struct Net { #[module(frozen)] fc: ferrograd::nn::Linear }
//! ```
//! `buffer` on a module,
//! ```compile_fail
//! #[derive(ferrograd::nn::Module)]
//! struct Net { #[module(buffer)] fc: ferrograd::nn::Linear }
//! ```
//! and a field that is neither a module nor a tensor nor skipped:
//! ```compile_fail
//! #[derive(ferrograd::nn::Module)]
//! struct Net { fc: ferrograd::nn::Linear, hidden: usize }
//! ```
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
//! use ferrograd::nn::{Activation, Linear, Module, ModuleParams, Sequential};
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
mod attention;
mod dropout;
mod embedding;
pub mod functional;
mod gpt;
pub mod init;
mod layer_norm;
mod linear;
mod mlp;
mod positional;
mod sdpa;
mod sequential;
mod transformer;

pub use activation::Activation;
pub use attention::{MultiHeadAttention, MultiHeadAttentionConfig};
pub use dropout::{Dropout, RngState};
pub use embedding::Embedding;
pub use gpt::{Gpt, GptConfig, Positions, Sampling};
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use mlp::Mlp;
pub use positional::{sinusoidal_positions, PositionalEmbedding};
pub use sequential::{BoxedModule, Sequential};
pub use transformer::{FeedForward, TransformerBlock, TransformerBlockConfig};

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

    /// Freezes every parameter: no gradient is computed for them (ops on them
    /// are not recorded), and optimizers skip them, until
    /// [`unfreeze`](ModuleParams::unfreeze). Each parameter keeps its identity,
    /// so optimizers and checkpoints still know it; see
    /// [`Tensor::set_requires_grad`]. To freeze part of a model, call it on
    /// that part (`model.encoder.freeze()`).
    ///
    /// ```
    /// use ferrograd::nn::{Activation, Mlp, Module};
    /// use ferrograd::rand::{rngs::StdRng, SeedableRng};
    /// use ferrograd::Tensor;
    /// let model = Mlp::<f32>::new(&[2, 4, 1], Activation::Relu, &mut StdRng::seed_from_u64(0));
    /// model.freeze();
    /// let x = Tensor::<f32>::ones(&[3, 2]);
    /// assert!(!model.forward(&x).needs_grad());   // nothing recorded
    /// model.unfreeze();
    /// assert!(model.forward(&x).needs_grad());
    /// ```
    fn freeze(&self) {
        self.parameters()
            .iter()
            .for_each(|p| p.set_requires_grad(false));
    }

    /// Undoes [`freeze`](ModuleParams::freeze): every parameter requires a
    /// gradient again.
    fn unfreeze(&self) {
        self.parameters()
            .iter()
            .for_each(|p| p.set_requires_grad(true));
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
        assert_send_sync::<MultiHeadAttention<f32>>();
        assert_send_sync::<TransformerBlock<f32>>();
        assert_send_sync::<PositionalEmbedding<f64>>();
        assert_send_sync::<Gpt<f32>>();
    }
}
