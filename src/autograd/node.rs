//! The graph node behind a `Tensor` handle, and its iterative `Drop`.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use smallvec::SmallVec;

use super::{BackwardCx, InputGrads, Op};
use crate::element::Element;
use crate::layout::Layout;
use crate::shared::Shared;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// What a `Tensor` handle points to: the data, and the op that produced it.
///
/// The op is the last field and unsized (`dyn Op<T>` once behind the [`Shared`] pointer), so a
/// node and its op share one allocation: recording an op with parameters (a
/// scalar, an axis, saved indices) costs no extra allocation.
///
/// `repr(C)` keeps the fields the backward walk reads for every node (id, flags,
/// inputs) together at the start, in the first cache line; the layout, which the
/// walk rarely needs, comes after them.
#[repr(C)]
pub(crate) struct Node<T: Element, O: ?Sized + Op<T> = dyn Op<T>> {
    /// From a global counter: an op's output always has a larger id than its inputs.
    pub(crate) id: usize,
    /// A leaf that asks for a gradient, or the output of a recorded op. Atomic
    /// because a leaf's flag can be flipped through any handle
    /// ([`Tensor::set_requires_grad`]), e.g. to freeze a parameter.
    pub(crate) requires_grad: AtomicBool,
    /// True when `op` is a recorded op (false for leaves and for anything built
    /// while recording was off, whose `op` is [`NoOp`]).
    pub(crate) recorded: bool,
    /// A gradient handed out by a walk without `create_graph`, or a value
    /// computed from one without recording: differentiating it is
    /// [`Error::GradientWithoutGraph`](crate::Error::GradientWithoutGraph).
    pub(crate) grad_no_graph: bool,
    /// What the side tables hold for this node ([`flags`](super::flags)): hooks,
    /// a retained gradient, an anomaly-mode creation site. Zero for nearly every
    /// node; `Drop` clears the side tables' entries when it is not.
    pub(crate) flags: AtomicU8,
    /// The inputs of the recorded op: a plain field, so that `Drop` can reach them.
    pub(crate) inputs: SmallVec<[Tensor<T>; 2]>,
    /// The buffer versions of the inputs when the op was recorded.
    pub(crate) versions: SmallVec<[u64; 2]>,
    /// The output buffer's version when the op was recorded.
    pub(crate) out_version: u64,
    pub(crate) storage: Shared<Storage<T>>,
    pub(crate) layout: Layout,
    pub(crate) op: O,
}

impl<T: Element, O: Op<T>> Node<T, O> {
    /// The node behind a new pointer, its op unsized to `dyn Op<T>`.
    #[inline]
    pub(crate) fn shared(self) -> Shared<Node<T>> {
        // SAFETY: `|p| p` is the unsizing coercion of the pointer to `dyn Op<T>`.
        unsafe { Shared::new_unsize(self, |p| p as *mut crate::shared::Inner<Node<T>>) }
    }
}

/// The op of a node that records nothing.
pub(crate) struct NoOp;

impl<T: Element> Op<T> for NoOp {
    fn name(&self) -> &'static str {
        "leaf"
    }
    fn backward(&self, _: &BackwardCx<'_, T>, _: Tensor<T>) -> InputGrads<T> {
        unreachable!("internal error: backward of a node that recorded no op")
    }
}

/// A view of a recorded op: the rule, the inputs it was applied to, and the
/// buffer versions it saw.
pub(crate) struct GradFn<'a, T: Element> {
    pub(crate) op: &'a dyn Op<T>,
    pub(crate) inputs: &'a [Tensor<T>],
    pub(crate) versions: &'a [u64],
    pub(crate) out_version: u64,
}

impl<T: Element> Node<T> {
    /// The recorded op, if any.
    #[inline]
    pub(crate) fn grad_fn(&self) -> Option<GradFn<'_, T>> {
        self.recorded.then(|| GradFn {
            op: &self.op,
            inputs: &self.inputs,
            versions: &self.versions,
            out_version: self.out_version,
        })
    }
}

impl<T: Element, O: ?Sized + Op<T>> Drop for Node<T, O> {
    /// Frees the graph behind this node without recursion: a chain of a million
    /// ops would otherwise overflow the stack through nested `Shared` drops.
    fn drop(&mut self) {
        super::live_nodes::dropped();
        let flags = self.flags.load(Ordering::Relaxed);
        if flags != 0 {
            super::flags::forget(self.id, flags);
        }
        if self.inputs.is_empty() {
            return;
        }
        let mut stack: SmallVec<[Tensor<T>; 8]> = SmallVec::new();
        let mut next = take_inputs(&mut stack, &mut self.inputs);
        while let Some(mut t) = next.take().or_else(|| stack.pop()) {
            // The last owner empties the node's inputs before dropping it, so that
            // drop does no work of its own. (`get_mut` succeeds only for the sole
            // owner; if another thread drops its handle at the same moment, the
            // node's own iterative `Drop` frees what is left.)
            if let Some(node) = Shared::get_mut(&mut t.0) {
                next = take_inputs(&mut stack, &mut node.inputs);
            }
        }
    }
}

/// Moves the inputs out of a node: the last one is returned, to be freed next
/// (a chain of ops then never touches the stack), the others go to the stack.
#[inline]
fn take_inputs<T: Element>(
    stack: &mut SmallVec<[Tensor<T>; 8]>,
    inputs: &mut SmallVec<[Tensor<T>; 2]>,
) -> Option<Tensor<T>> {
    let last = inputs.pop();
    while let Some(t) = inputs.pop() {
        stack.push(t);
    }
    last
}
