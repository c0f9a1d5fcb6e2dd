//! `grad`: gradients of an output with respect to chosen tensors (leaves or
//! intermediates), optionally recorded so that they can be differentiated again.

use super::backward::no_graph;
use super::walk::{self, Graph, Keep};
use crate::element::Element;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Options of [`grad`]. `Default` is PyTorch's: no graph, no unused inputs, and
/// no upstream gradient (the output must then have one element).
///
/// ```
/// use ferrograd::GradOptions;
/// let opts: GradOptions<f64> = GradOptions { create_graph: true, ..Default::default() };
/// assert!(!opts.allow_unused && opts.upstream.is_none());
/// ```
#[derive(Clone, Debug)]
pub struct GradOptions<T: Element = f32> {
    /// Record the walk, so that the returned gradients are tensors with a graph
    /// of their own and can be differentiated again (to any order). Recording
    /// happens even inside a caller's [`no_grad`](crate::no_grad) scope.
    pub create_graph: bool,
    /// Give zeros for an input the output does not depend on (and for every
    /// input when the output needs no gradient at all), instead of an error.
    pub allow_unused: bool,
    /// The gradient to seed the walk with, of the output's shape: the result is
    /// the vector-Jacobian product `upstreamᵀ·J`. With `create_graph` it stays
    /// attached, so derivatives with respect to it exist. `None` asks for an
    /// output with one element, seeded with 1.
    pub upstream: Option<Tensor<T>>,
}

impl<T: Element> Default for GradOptions<T> {
    fn default() -> Self {
        GradOptions {
            create_graph: false,
            allow_unused: false,
            upstream: None,
        }
    }
}

/// The gradients of `output` with respect to each of `inputs`, in order, as
/// PyTorch's `torch.autograd.grad`.
///
/// The inputs may be leaves or intermediate tensors of the graph (the gradient
/// of a hidden activation). Only the part of the graph that lies between the
/// output and the inputs is walked: asking for the gradient with respect to a
/// network's input computes no weight gradients. Each gradient has its input's
/// shape, is contiguous and owns its buffer.
///
/// With [`create_graph`](GradOptions::create_graph) the gradients are recorded
/// like any op output: a function of the gradient (a penalty, a residual built
/// from derivatives) can be differentiated again, to any order.
///
/// ```
/// use ferrograd::{grad, GradOptions, Tensor};
/// let x = Tensor::<f64>::scalar(2.0).requires_grad();
/// let y = x.powi(3);                                          // y = x³
/// let opts = || GradOptions { create_graph: true, ..Default::default() };
/// let dy = grad(&y, &[&x], opts())?.remove(0);                // 3x² = 12
/// let d2y = grad(&dy, &[&x], opts())?.remove(0);              // 6x = 12
/// let d3y = grad(&d2y, &[&x], GradOptions::default())?.remove(0); // 6
/// assert_eq!((dy.item(), d2y.item(), d3y.item()), (12.0, 12.0, 6.0));
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// A Hessian-vector product is two calls: the gradient, recorded, then the
/// gradient of its dot product with `v`.
///
/// ```
/// use ferrograd::{grad, GradOptions, Tensor};
/// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2])?.requires_grad();
/// let f = (&x * &x * &x).sum();                               // H = diag(6x)
/// let g = grad(&f, &[&x], GradOptions { create_graph: true, ..Default::default() })?;
/// let v = Tensor::from_vec(vec![1.0, -1.0], &[2])?;
/// let hv = grad(&(&g[0] * &v).sum(), &[&x], GradOptions::default())?;
/// assert_eq!(hv[0].to_vec(), vec![6.0, -12.0]);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # In-place updates
///
/// A recorded gradient remembers the values it was computed from, as any op
/// does. Updating a tensor it was computed from in place (a weight, with
/// [`assign`](Tensor::assign) or an optimizer step), or updating the recorded
/// gradient itself (`assign`, [`Gradients::clip_norm`](crate::Gradients::clip_norm)
/// on gradients that carry a graph), makes a later backward through it an
/// [`Error::ModifiedInPlace`], never a wrong number: differentiate first, then
/// update.
///
/// # Errors
/// - [`Error::NeedsUpstream`] when `output` has more than one element and no
///   `upstream` is given; [`Error::ShapeMismatch`] when `upstream`'s shape differs
///   from `output`'s.
/// - [`Error::UnusedInput`] naming the first input that `output` does not depend
///   on (unless `allow_unused`).
/// - [`Error::NoGraph`] when `output` needs no gradient (unless `allow_unused`);
///   [`Error::GradientWithoutGraph`] when it was computed from a gradient taken
///   without `create_graph`.
/// - [`Error::ModifiedInPlace`] when a value the walk needs was updated in place
///   after it was recorded.
pub fn grad<T: Element>(
    output: &Tensor<T>,
    inputs: &[&Tensor<T>],
    options: GradOptions<T>,
) -> Result<Vec<Tensor<T>>> {
    let GradOptions {
        create_graph,
        allow_unused,
        upstream,
    } = options;
    let seed = match upstream {
        None if output.numel() != 1 => {
            return Err(Error::NeedsUpstream {
                shape: output.shape().to_vec(),
            })
        }
        None => Tensor::ones(output.shape()),
        Some(u) if u.shape() != output.shape() => {
            return Err(Error::shape("grad", output.shape(), u.shape()))
        }
        Some(u) if create_graph => u,
        Some(u) => u.detach(),
    };
    let zeros = || inputs.iter().map(|x| Tensor::zeros(x.shape())).collect();
    if !output.needs_grad() {
        return if allow_unused {
            Ok(zeros())
        } else {
            Err(no_graph(output))
        };
    }
    let unused = |position: usize| Error::UnusedInput {
        position,
        shape: inputs[position].shape().to_vec(),
    };
    // Nothing created before the oldest input can lead to one.
    let Some(min_id) = inputs
        .iter()
        .filter(|x| x.needs_grad())
        .map(|x| x.0.id)
        .min()
    else {
        return if allow_unused || inputs.is_empty() {
            Ok(zeros())
        } else {
            Err(unused(0))
        };
    };
    let mut graph = Graph::discover(output, min_id);
    let dense: Vec<Option<u32>> = inputs
        .iter()
        .map(|x| x.needs_grad().then(|| graph.dense_index(x)).flatten())
        .collect();
    if let Some(p) = dense.iter().position(Option::is_none) {
        if !allow_unused {
            return Err(unused(p));
        }
    }
    let wanted: Vec<u32> = dense.iter().flatten().copied().collect();
    let needed = graph.prune(&wanted);
    let mut is_wanted = vec![false; needed.len()];
    for &w in &wanted {
        is_wanted[w as usize] = true;
    }
    let kept = walk::run(&graph, seed, create_graph, Keep::Marked(&is_wanted))?;

    let mut found: Vec<Option<Tensor<T>>> = dense
        .iter()
        .map(|d| {
            d.and_then(|d| {
                kept.iter()
                    .find(|(i, _)| *i == d as usize)
                    .map(|(_, g)| g.clone())
            })
        })
        .collect();
    drop(kept);
    let mut out = Vec::with_capacity(inputs.len());
    for (p, g) in found.iter_mut().enumerate() {
        out.push(match g.take() {
            Some(g) if create_graph => g.into_recorded_result(),
            Some(g) => g.into_gradient(),
            None if allow_unused => Tensor::zeros(inputs[p].shape()),
            None => return Err(unused(p)),
        });
    }
    Ok(out)
}

impl<T: Element> Tensor<T> {
    /// This gradient as a `create_graph` walk hands it out: itself when nothing
    /// else holds it and it is dense, else a recorded copy (so that updating it
    /// in place cannot change another tensor, and its graph stays attached).
    fn into_recorded_result(self) -> Tensor<T> {
        if self.is_exclusive() {
            self
        } else {
            self.copy_recorded()
        }
    }
}
