//! Reverse-mode autodiff: the recorded graph, the backward walk, the returned
//! gradients, the `no_grad` mode, and the ways to extend and debug it: your
//! own differentiable ops ([`Function`], applied with
//! [`Tensor::apply`](crate::Tensor::apply)), hooks on gradients
//! ([`Tensor::register_hook`](crate::Tensor::register_hook)), intermediate
//! gradients ([`Tensor::retain_grad`](crate::Tensor::retain_grad)) and anomaly
//! mode ([`detect_anomaly`]).
//!
//! The most used items are re-exported at the crate root (`ferrograd::grad`,
//! `ferrograd::no_grad`, `ferrograd::Gradients`, `ferrograd::detect_anomaly`, …).

pub(crate) mod anomaly;
mod backward;
mod dot;
mod flags;
mod function;
pub mod functional;
mod grad;
mod gradients;
mod hooks;
mod inspect;
pub(crate) mod live_nodes;
mod no_grad;
mod node;
#[cfg(test)]
pub(crate) mod test_hooks;
#[cfg(test)]
mod tests;
mod walk;

pub use anomaly::{detect_anomaly, is_anomaly_enabled, AnomalyGuard};
pub use function::{with_slices, BackwardCtx, ForwardCtx, Function};
pub use grad::{grad, GradOptions};
pub use gradients::Gradients;
pub use hooks::HookHandle;
pub use inspect::ParamRef;
pub(crate) use no_grad::enable_grad;
pub use no_grad::{is_grad_enabled, no_grad, NoGradGuard};
pub(crate) use node::{GradFn, NoOp, Node};

use smallvec::SmallVec;

use crate::element::Element;
use crate::error::Result;
use crate::tensor::Tensor;

/// One gradient per input of an op; `None` = the input gets no gradient
/// (not differentiable, e.g. a mask or indices, or not needed).
pub(crate) type InputGrads<T> = SmallVec<[Option<Tensor<T>>; 2]>;

/// Which recorded values an op's backward rule reads, so that the walk can refuse
/// to run it when one of them was updated in place since (see [`Error::ModifiedInPlace`]).
///
/// [`Error::ModifiedInPlace`]: crate::Error::ModifiedInPlace
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Saves {
    /// Only shapes: add, sub, views, sums.
    Nothing,
    /// The input values: mul, matmul, log, relu, …
    Inputs,
    /// The output values: exp, tanh, sigmoid, softmax, …
    Output,
    /// Both.
    Both,
    /// Only the input at this position (e.g. the mask of `masked_fill`).
    Input(usize),
    /// The op checks what it saved itself ([`Op::check_custom`]): user-defined
    /// [`Function`]s, which save any tensors they like.
    Custom,
}

/// A differentiable operation as recorded in the graph: its name and its backward rule.
///
/// The rule is written with tensor ops. A plain walk runs it under `no_grad`, where
/// it is plain arithmetic and may use fused kernels; a `create_graph` walk runs
/// it with recording on and `cx.create_graph` set, where it must use recorded
/// ops (or ops whose own backward is differentiable), so that the gradient it
/// returns carries the graph of its computation.
pub(crate) trait Op<T: Element>:
    Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe + 'static
{
    /// The op's name as users know it (`"matmul"`, `"relu"`, …).
    fn name(&self) -> &'static str;

    /// Given the gradient of the loss with respect to the output (owned: a rule
    /// may reuse its buffer when nothing else holds it), returns one gradient per
    /// input. A returned gradient may have the output's (broadcast)
    /// shape: the walk sums it down to the input's shape.
    fn backward(&self, cx: &BackwardCx<'_, T>, grad: Tensor<T>) -> InputGrads<T>;

    /// Which values the rule reads (for the in-place version check).
    fn saves(&self) -> Saves {
        Saves::Inputs
    }

    /// For [`Saves::Custom`] (a user-defined [`Function`], whose rule can
    /// fail): the rule as the walk calls it. Built-in rules cannot fail.
    fn try_backward(&self, cx: &BackwardCx<'_, T>, grad: Tensor<T>) -> Result<InputGrads<T>> {
        Ok(self.backward(cx, grad))
    }

    /// For [`Saves::Custom`]: checks the versions of what the op saved.
    fn check_custom(&self, _output: &Tensor<T>) -> Result<()> {
        Ok(())
    }

    /// For a one-input op whose rule places the output's gradient into a
    /// region of zeros of the input's shape (`narrow`, and so `split` and
    /// `chunk`): that region, as a view of a row-major tensor of the input's
    /// shape (`grad` is the output gradient's shape). When the walk already holds
    /// a gradient of the input that nothing else sees, it adds the output's
    /// gradient into this region of it and skips the rule: the pieces of a
    /// split then fill one buffer instead of each padding its own.
    fn grad_region(&self, _input: &[usize], _grad: &[usize]) -> Option<crate::layout::Layout> {
        None
    }
}

/// What a backward rule may look at: the op's inputs and its output, which
/// inputs want a gradient, and whether the rule must be differentiable.
pub(crate) struct BackwardCx<'a, T: Element> {
    pub(crate) inputs: &'a [Tensor<T>],
    pub(crate) output: &'a Tensor<T>,
    /// Per input, where its gradient goes in the walk ([`walk::NONE`]: nowhere).
    pub(crate) edges: &'a [u32],
    /// True when the walk records (`grad(.., create_graph: true)`): the rule must
    /// build its result from recorded tensor ops, so that it can be
    /// differentiated again; false for the fused first-order fast path.
    pub(crate) create_graph: bool,
}

impl<T: Element> BackwardCx<'_, T> {
    /// The `i`-th input.
    #[inline]
    pub(crate) fn input(&self, i: usize) -> &Tensor<T> {
        &self.inputs[i]
    }

    /// True when the `i`-th input wants a gradient (rules skip the others' work).
    #[inline]
    pub(crate) fn needs(&self, i: usize) -> bool {
        self.edges[i] != walk::NONE
    }
}

/// Builds an `InputGrads` from a list of options.
macro_rules! grads {
    ($($g:expr),* $(,)?) => {{
        let mut v: $crate::autograd::InputGrads<_> = ::smallvec::SmallVec::new();
        $(v.push($g);)*
        v
    }};
}
pub(crate) use grads;
