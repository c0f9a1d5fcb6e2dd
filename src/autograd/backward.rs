//! `backward` and `backward_with`: first-order gradients of every leaf, for
//! training loops (the walk itself is in `walk.rs`).

use super::walk::{self, Graph, Keep};
use super::Gradients;
use crate::element::{mono, Element};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// Computes the gradient of this one-element tensor (a loss) with respect to
    /// every leaf that asked for one ([`requires_grad`](Tensor::requires_grad)) and
    /// leads to it.
    ///
    /// The graph is left intact: `backward` may run again, and each call returns
    /// fresh gradients (they are never stored on tensors, so passes never mix).
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2])?.requires_grad();
    /// let y = (&x * &x + &x).sum();          // dy/dx = 2x + 1
    /// let g = y.backward()?;
    /// assert_eq!(g.get(&x).unwrap().to_vec(), vec![3.0, 5.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NotScalar`] unless the tensor has exactly one element (use
    /// [`backward_with`](Tensor::backward_with) otherwise); [`Error::NoGraph`] when no
    /// gradient-requiring leaf leads to it ([`Error::GradientWithoutGraph`] when it
    /// was computed from a gradient taken without `create_graph`);
    /// [`Error::ModifiedInPlace`] when a value a backward rule needs was updated in
    /// place after the forward pass (or while backward ran).
    pub fn backward(&self) -> Result<Gradients<T>> {
        mono!(
            |x: &Tensor<T>| -> Result<Gradients<T>> {
                if x.numel() != 1 {
                    return Err(Error::NotScalar {
                        shape: x.shape().to_vec(),
                    });
                }
                run(x, Tensor::ones(x.shape()))
            },
            (self)
        )
    }

    /// Backward seeded with `upstream` (the gradient of some scalar with respect to
    /// this tensor, same shape): computes the vector-Jacobian product `upstreamᵀ·J`
    /// for every leaf.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0], &[3])?.requires_grad();
    /// let y = &x * 2.0;
    /// let v = Tensor::from_vec(vec![1.0, 0.0, -1.0], &[3])?;
    /// assert_eq!(y.backward_with(&v)?.get(&x).unwrap().to_vec(), vec![2.0, 0.0, -2.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `upstream`'s shape differs from this tensor's,
    /// and the errors of [`backward`](Tensor::backward) but `NotScalar`.
    pub fn backward_with(&self, upstream: &Tensor<T>) -> Result<Gradients<T>> {
        if upstream.shape() != self.shape() {
            return Err(Error::shape(
                "backward_with",
                self.shape(),
                upstream.shape(),
            ));
        }
        run(self, upstream.detach())
    }
}

/// The walk behind `backward` and `backward_with`: the gradients of every leaf
/// that requires one, contiguous and owning their buffers, recording nothing.
fn run<T: Element>(root: &Tensor<T>, seed: Tensor<T>) -> Result<Gradients<T>> {
    if !root.needs_grad() {
        return Err(no_graph(root));
    }
    let graph = Graph::discover(root, 0);
    let kept = walk::run(&graph, seed, false, Keep::Leaves)?;
    let mut leaves = Vec::with_capacity(kept.len());
    let mut retained = Vec::new();
    for (i, g) in kept {
        let t = graph.nodes[i];
        let pair = (t.clone(), g.into_gradient());
        if t.is_leaf() {
            leaves.push(pair);
        } else {
            retained.push(pair);
        }
    }
    Ok(Gradients::from_pairs(leaves).with_retained(retained))
}

/// The error for differentiating a tensor that needs no gradient: it names
/// `create_graph` when the tensor came from a gradient taken without it.
pub(crate) fn no_graph<T: Element>(t: &Tensor<T>) -> Error {
    if t.0.grad_no_graph {
        Error::GradientWithoutGraph
    } else {
        Error::NoGraph
    }
}

impl<T: Element> Tensor<T> {
    /// This gradient as a walk without `create_graph` hands it out: contiguous,
    /// owning its buffer, and marked as a gradient that carries no graph.
    pub(crate) fn into_gradient(mut self) -> Tensor<T> {
        if !self.is_exclusive() {
            self = self.copy();
        }
        match crate::shared::Shared::get_mut(&mut self.0) {
            Some(node) => node.grad_no_graph = true,
            None => unreachable!("internal error: an exclusive gradient is shared"),
        }
        self
    }
}
