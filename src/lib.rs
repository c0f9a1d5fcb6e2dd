//! # ferrograd
//!
//! Reverse-mode automatic differentiation on CPU tensors, in the spirit of
//! PyTorch's autograd: build a computation from [`Tensor`] operations, call
//! [`backward`](Tensor::backward) on the loss, and get back the gradient of every
//! leaf that asked for one.
//!
//! ## A quick tour: one neuron layer trained by hand
//!
//! ```
//! use ferrograd::{rand::SeedableRng, Tensor};
//!
//! let mut rng = ferrograd::rand::rngs::StdRng::seed_from_u64(0);
//! // four samples of two features, and their targets
//! let x = Tensor::<f32>::from_vec(vec![0., 0., 0., 1., 1., 0., 1., 1.], &[4, 2])?;
//! let y = Tensor::<f32>::from_vec(vec![0., 1., 1., 2.], &[4, 1])?;
//! // random initial weights that ask for gradients
//! let w = (Tensor::<f32>::randn(&[2, 1], &mut rng) * 0.5).requires_grad();
//! let b = Tensor::<f32>::zeros(&[1]).requires_grad();
//! for _ in 0..200 {
//!     let pred = x.matmul(&w) + &b;                  // forward pass
//!     let loss = (&pred - &y).square().mean();      // mean squared error
//!     let grads = loss.backward()?;                  // backward pass
//!     for p in [&w, &b] {                            // gradient descent, in place
//!         p.assign(&(p - grads.get(p).unwrap() * 0.1))?;
//!     }
//! }
//! let loss = (x.matmul(&w) + &b - &y).square().mean().item();
//! assert!(loss < 1e-3, "loss {loss}");
//! # Ok::<(), ferrograd::Error>(())
//! ```
//!
//! ## What is where
//!
//! - [`Tensor`]: construction, inspection, and every op; [`ops`] has the op
//!   table (each op's gradient and order); operators `+ - * /` broadcast.
//! - Autograd: [`Tensor::requires_grad`], [`Tensor::backward`],
//!   [`Tensor::backward_with`], [`Gradients`], [`Tensor::detach`], [`no_grad`];
//!   in-place updates with [`Tensor::assign`], guarded by buffer versions.
//! - Higher order: [`grad`] with [`GradOptions`] (gradients with respect to any
//!   tensors; with `create_graph` they can be differentiated again) and the
//!   [`functional`] transforms (`vjp`, `jvp`, `jacobian`, `hessian`, `hvp`).
//! - Extending and debugging: your own differentiable ops
//!   ([`autograd::Function`], applied with [`Tensor::apply`]), gradient hooks
//!   ([`Tensor::register_hook`]), gradients of intermediates
//!   ([`Tensor::retain_grad`]), NaN hunting with [`detect_anomaly`], and
//!   seeing the graph: [`Tensor::to_dot`] (Graphviz DOT, with gradient norms by
//!   [`Tensor::to_dot_with_gradients`]), [`Gradients::missing`] and
//!   [`Gradients::norms`] by parameter name.
//! - [`gradcheck`]: finite-difference checking of first and second derivatives
//!   for your own tests.
//! - [`loss`]: losses (mean-reduced, and unreduced in [`loss::per_sample`]).
//! - [`optim`]: optimizers that update parameters in place, and
//!   [`optim::lr`] schedules.
//! - [`nn`]: the [`nn::Module`] trait, layers, initialisers and
//!   [`nn::functional`].
//! - [`data`]: shuffled mini-batches (resumable with [`data::Shuffler`]);
//!   [`io`]: safetensors checkpoints of models, and whole training runs with
//!   [`io::Checkpoint`].
//! - [`distributed`]: data-parallel training over threads
//!   ([`distributed::LocalCollective`]) or MPI processes on several machines
//!   (feature `mpi`), with [`distributed::DataParallel`] averaging gradients.
//! - [`text`]: tokenizers for language models ([`text::CharTokenizer`],
//!   byte-level BPE [`text::BpeTokenizer`]), behind the [`text::Tokenizer`] trait.
//! - [`prelude`]: `use ferrograd::prelude::*;` brings in what most training
//!   code needs.
//! - [`Error`]: what can go wrong. Methods that combine shapes panic with the
//!   error's message (pointing at your line); each has a `try_` twin that
//!   returns [`Result`].
//!
//! `docs/guide.md` in the repository tells the whole training story for
//! newcomers; `docs/performance.md` compares the speed with PyTorch.
//!
//! ## Optional features
//!
//! - `ndarray`: `Tensor::to_ndarray`, `Tensor::from_ndarray` and `From`
//!   conversions both ways, for arrays of any dimension and memory layout.
//! - `serde`: `Serialize`/`Deserialize` for `Tensor` (as `{"shape", "data"}`)
//!   and for the optimizers' configs and `GradCheck`.
//! - `mpi`: `distributed::MpiCollective`, data-parallel training across
//!   processes and machines over MPI (needs an MPI library and libclang to
//!   build).
//!
//! ## Environment variables
//!
//! - `RAYON_NUM_THREADS`: how many threads the kernels run on, unless
//!   [`set_num_threads`] says otherwise (default: one per CPU).
//! - `FERROGRAD_GEMM_KERNEL`: which kernel runs large `f32` matrix products
//!   on x86-64 CPUs with AVX2 and FMA: `own` (the crate's own, the default
//!   where vector units are 256 bits wide, Zen 4 included) or `gemm` (the
//!   `gemm` crate's, the default on CPUs with full-width AVX-512). Read once,
//!   at the first product; results differ between the two only in rounding.
//!   For measuring one against the other on a new machine: on the project's
//!   Zen 3, `own` was 1.13–1.23× faster on two threads on a busy host
//!   (W1, n = 256 to 1024); the kernel's former shape, on an idle host, was
//!   up to 6% slower than `gemm` (`docs/performance.md`).
//!
//! Tensors are generic over the element type: `Tensor<f32>` (the default) and
//! `Tensor<f64>`. The default does not drive type inference, so annotate:
//! `Tensor::<f32>::zeros(&[2, 3])` or `let x: Tensor = …`.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
// Tests pass `&[x.clone()]` to gradcheck, which reads better than `slice::from_ref`.
#![cfg_attr(test, allow(clippy::cloned_ref_to_slice_refs))]

extern crate self as ferrograd; // `#[derive(nn::Module)]` expands to `::ferrograd::…` paths, here too
pub mod autograd;
mod convert;
pub mod data;
pub mod distributed;
mod element;
mod error;
pub mod gradcheck;
pub mod io;
mod kernels;
mod layout;
pub mod loss;
pub mod nn;
pub mod ops;
pub mod optim;
mod pool;
pub mod prelude;
mod shape;
mod shared;
mod storage;
mod tensor;
pub mod text;
mod threads;

pub use autograd::{
    detect_anomaly, functional, grad, is_anomaly_enabled, is_grad_enabled, no_grad, AnomalyGuard,
    GradOptions, Gradients, HookHandle, NoGradGuard, ParamRef,
};
pub use element::Element;
pub use error::{Error, Result};
pub use tensor::{Tensor, TensorId};
pub use threads::{num_threads, set_num_threads, set_spin_time, spin_time};

/// Frees every buffer cached by the calling thread (both element types), and
/// the blocks it keeps for graph nodes.
///
/// Buffers freed by tensors are kept per thread for reuse, bounded by what the
/// thread reuses: sizes it asked for recently, and no more than its recent peak
/// working set (at most 256 MiB per element type); the small blocks of graph
/// nodes and tiny buffers are kept too (at most 16 MiB per thread). Call this
/// after a large computation whose sizes will not recur, to give that memory
/// back to the allocator at once rather than when later work displaces it.
///
/// ```
/// let x = ferrograd::Tensor::<f32>::zeros(&[1 << 20]);
/// drop(x);                        // its buffer is now cached for reuse
/// ferrograd::clear_buffer_cache(); // and now freed
/// ```
pub fn clear_buffer_cache() {
    pool::clear();
    shared::slab::clear();
}

/// The `rand` crate this crate was built with, so that callers' RNGs match
/// (`ferrograd::rand::rngs::StdRng`, `ferrograd::rand::SeedableRng`).
pub use rand;

/// The README's code blocks, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The code blocks of `docs/guide.md`, compiled and run as doc tests.
#[doc = include_str!("../docs/guide.md")]
#[cfg(doctest)]
pub struct GuideDoctests;

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn tensors_and_gradients_cross_threads() {
        assert_send_sync::<crate::Tensor<f32>>();
        assert_send_sync::<crate::Tensor<f64>>();
        assert_send_sync::<crate::Gradients<f32>>();
    }
}
