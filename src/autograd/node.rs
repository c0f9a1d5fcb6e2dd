//! The graph node behind a `Tensor` handle, and its iterative `Drop`.

use std::sync::Arc;

use smallvec::SmallVec;

use super::Op;
use crate::element::Element;
use crate::layout::Layout;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// What a `Tensor` handle points to.
pub(crate) struct Node<T: Element> {
    /// From a global counter: an op's output always has a larger id than its inputs.
    pub(crate) id: usize,
    pub(crate) storage: Arc<Storage<T>>,
    pub(crate) layout: Layout,
    /// A leaf that asked for a gradient, or the output of a recorded op.
    pub(crate) requires_grad: bool,
    /// The recorded op, or `None` for a leaf (or anything built under `no_grad`).
    pub(crate) grad_fn: Option<GradFn<T>>,
}

/// A recorded op: the rule, the inputs it was applied to, and the buffer versions
/// it saw. The inputs are a plain field so that `Drop` can reach them.
pub(crate) struct GradFn<T: Element> {
    pub(crate) op: Box<dyn Op<T>>,
    pub(crate) inputs: SmallVec<[Tensor<T>; 2]>,
    pub(crate) versions: SmallVec<[u64; 2]>,
    pub(crate) out_version: u64,
}

impl<T: Element> Drop for Node<T> {
    /// Frees the graph behind this node without recursion: a chain of a million
    /// ops would otherwise overflow the stack through nested `Arc` drops.
    fn drop(&mut self) {
        let Some(grad_fn) = self.grad_fn.take() else {
            return;
        };
        let mut stack: SmallVec<[Tensor<T>; 8]> = grad_fn.inputs.into_iter().collect();
        while let Some(t) = stack.pop() {
            // `into_inner` hands the node back only to its last owner, race-free.
            if let Some(mut node) = Arc::into_inner(t.0) {
                if let Some(g) = node.grad_fn.take() {
                    stack.extend(g.inputs);
                }
                // `node` drops here with no inputs left: no recursion.
            }
        }
    }
}
