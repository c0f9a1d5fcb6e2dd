//! Function transforms, as in `torch.autograd.functional`: vector-Jacobian and
//! Jacobian-vector products, full Jacobians and Hessians, and Hessian-vector
//! products, each built on [`grad`](crate::grad).
//!
//! Each transform takes `f: impl Fn(&Tensor<T>) -> Tensor<T>` and a point `x`.
//! It makes its own leaf from `x` (same values, no history) and runs `f` with
//! recording on, even inside a caller's [`no_grad`](crate::no_grad) scope; `x`
//! need not require a gradient. The results are plain tensors: the transforms do
//! not differentiate through `x`'s own history, nor record themselves. To
//! differentiate through a derivative with respect to something outside `f`
//! (meta-learning, a gradient penalty on the weights), call
//! [`grad`](crate::grad) with `create_graph` directly.
//!
//! What they cost, with `m` = the output's number of elements and `n` = `x`'s:
//!
//! | transform | cost |
//! |---|---|
//! | [`vjp`] | one forward pass and one backward pass |
//! | [`jvp`] | one forward pass and three backward passes (the double-vjp trick) |
//! | [`jacobian`] | one forward pass and `m` backward passes (one per row) |
//! | [`hvp`] | one forward pass, a recorded backward pass, and a backward pass through it (a few gradients' worth, never `n²`) |
//! | [`hessian`] | one forward pass, a recorded backward pass, and `n` backward passes through it (one per row): `n²` numbers |
//!
//! ```
//! use ferrograd::{functional, Tensor};
//! let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2])?;
//! // f(x) = x₀²·x₁: gradient (2x₀x₁, x₀²), Hessian [[2x₁, 2x₀], [2x₀, 0]]
//! let f = |x: &Tensor<f64>| (x.narrow(0, 0, 1).square() * x.narrow(0, 1, 1)).sum();
//! let h = functional::hessian(f, &x)?;
//! assert_eq!(h.to_vec(), vec![4.0, 2.0, 2.0, 0.0]);
//! let (fx, hv) = functional::hvp(f, &x, &Tensor::from_vec(vec![1.0, 1.0], &[2])?)?;
//! assert_eq!((fx.item(), hv.to_vec()), (2.0, vec![6.0, 2.0]));
//! # Ok::<(), ferrograd::Error>(())
//! ```

use super::{enable_grad, grad, GradOptions};
use crate::element::Element;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `f` at a fresh leaf with `x`'s values, recorded; returns (leaf, f(leaf)).
fn trace<T: Element>(f: impl Fn(&Tensor<T>) -> Tensor<T>, x: &Tensor<T>) -> (Tensor<T>, Tensor<T>) {
    let _on = enable_grad();
    let leaf = x.detach().requires_grad();
    let y = f(&leaf);
    (leaf, y)
}

fn options<T: Element>(create_graph: bool, upstream: Option<Tensor<T>>) -> GradOptions<T> {
    GradOptions {
        create_graph,
        allow_unused: true,
        upstream,
    }
}

/// `(f(x), vᵀ·J)`: the vector-Jacobian product of `f` at `x` with `v` (of
/// `f(x)`'s shape); the result has `x`'s shape. One backward pass.
///
/// ```
/// use ferrograd::{functional, Tensor};
/// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0], &[3])?;
/// let v = Tensor::from_vec(vec![1.0, 0.0, -1.0], &[3])?;
/// let (y, vj) = functional::vjp(|x| x * x, &x, &v)?;        // J = diag(2x)
/// assert_eq!((y.to_vec(), vj.to_vec()), (vec![1.0, 4.0, 9.0], vec![2.0, 0.0, -6.0]));
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] when `v`'s shape differs from `f(x)`'s; the errors of
/// [`grad`](crate::grad).
pub fn vjp<T: Element>(
    f: impl Fn(&Tensor<T>) -> Tensor<T>,
    x: &Tensor<T>,
    v: &Tensor<T>,
) -> Result<(Tensor<T>, Tensor<T>)> {
    let (leaf, y) = trace(f, x);
    if v.shape() != y.shape() {
        return Err(Error::shape("vjp", y.shape(), v.shape()));
    }
    let g = grad(&y, &[&leaf], options(false, Some(v.detach())))?.remove(0);
    Ok((y.detach(), g))
}

/// `(f(x), J·v)`: the Jacobian-vector product (directional derivative) of `f`
/// at `x` along `v` (of `x`'s shape); the result has `f(x)`'s shape.
///
/// Computed with the double-vjp trick: `u ↦ uᵀ·J` is linear in `u`, so the
/// gradient of `(uᵀ·J)·v` with respect to `u` is `J·v`. That is one recorded
/// backward pass and one backward pass through it, at a dummy `u` (of `f(x)`'s
/// shape).
///
/// ```
/// use ferrograd::{functional, Tensor};
/// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2])?;
/// let v = Tensor::from_vec(vec![1.0, 1.0], &[2])?;
/// // f(x) = (x₀·x₁, x₀ + x₁): J = [[x₁, x₀], [1, 1]], J·v = (3, 2)
/// let f = |x: &Tensor<f64>| {
///     let (a, b) = (x.narrow(0, 0, 1), x.narrow(0, 1, 1));
///     Tensor::cat(&[&(&a * &b), &(&a + &b)], 0)
/// };
/// let (y, jv) = functional::jvp(f, &x, &v)?;
/// assert_eq!((y.to_vec(), jv.to_vec()), (vec![2.0, 3.0], vec![3.0, 2.0]));
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] when `v`'s shape differs from `x`'s; the errors of
/// [`grad`](crate::grad).
pub fn jvp<T: Element>(
    f: impl Fn(&Tensor<T>) -> Tensor<T>,
    x: &Tensor<T>,
    v: &Tensor<T>,
) -> Result<(Tensor<T>, Tensor<T>)> {
    if v.shape() != x.shape() {
        return Err(Error::shape("jvp", x.shape(), v.shape()));
    }
    let (leaf, y) = trace(f, x);
    let u = Tensor::zeros(y.shape()).requires_grad();
    let ut_j = grad(&y, &[&leaf], options(true, Some(u.clone())))?.remove(0);
    let jv = grad(&ut_j, &[&u], options(false, Some(v.detach())))?.remove(0);
    Ok((y.detach(), jv))
}

/// The Jacobian of `f` at `x`, of shape `f(x).shape ++ x.shape`: element
/// `[i.., j..]` is `∂f(x)[i..] / ∂x[j..]`.
///
/// Built row by row: one forward pass, then one backward pass per element of
/// `f(x)` (each a vector-Jacobian product with a one-hot vector). For an `f`
/// with few outputs and many inputs this is the cheap direction; for many
/// outputs, consider [`jvp`] along the directions you need.
///
/// ```
/// use ferrograd::{functional, Tensor};
/// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0], &[3])?;
/// let j = functional::jacobian(|x| x.narrow(0, 0, 2) * x.narrow(0, 1, 2), &x)?;
/// assert_eq!(j.shape(), &[2, 3]);
/// assert_eq!(j.to_vec(), vec![2.0, 1.0, 0.0, 0.0, 3.0, 2.0]);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// The errors of [`grad`](crate::grad).
pub fn jacobian<T: Element>(
    f: impl Fn(&Tensor<T>) -> Tensor<T>,
    x: &Tensor<T>,
) -> Result<Tensor<T>> {
    let (leaf, y) = trace(f, x);
    rows(&y, &leaf, x.shape())
}

/// The Jacobian of `y` with respect to `leaf`, one backward pass per element
/// of `y`, as a tensor of shape `y.shape ++ x_shape`.
fn rows<T: Element>(y: &Tensor<T>, leaf: &Tensor<T>, x_shape: &[usize]) -> Result<Tensor<T>> {
    let (m, n) = (y.numel(), leaf.numel());
    let mut data = Vec::with_capacity(m * n);
    let mut onehot = vec![T::zero(); m];
    for i in 0..m {
        onehot[i] = T::one();
        let e = Tensor::from_vec(onehot.clone(), y.shape())?;
        onehot[i] = T::zero();
        let row = grad(y, &[leaf], options(false, Some(e)))?.remove(0);
        data.extend(row.to_vec());
    }
    let mut shape = y.shape().to_vec();
    shape.extend_from_slice(x_shape);
    Tensor::from_vec(data, &shape)
}

/// The gradient of a scalar `f` at `x`, recorded: (leaf, f(leaf), ∇f).
fn recorded_gradient<T: Element>(
    op: &'static str,
    f: impl Fn(&Tensor<T>) -> Tensor<T>,
    x: &Tensor<T>,
) -> Result<(Tensor<T>, Tensor<T>, Tensor<T>)> {
    let (leaf, y) = trace(f, x);
    if y.numel() != 1 {
        return Err(Error::invalid(
            op,
            format!(
                "f must return a single element (a scalar function), got shape {:?}",
                y.shape()
            ),
        ));
    }
    let g = grad(&y, &[&leaf], options(true, None))?.remove(0);
    Ok((leaf, y, g))
}

/// The Hessian of a scalar `f` at `x`, of shape `x.shape ++ x.shape`.
///
/// Built row by row: one forward pass, one recorded backward pass for the
/// gradient, then one backward pass through the gradient per element of `x`,
/// and `n²` numbers for `n` elements: for large `x` use [`hvp`]. An affine `f`
/// has a zero Hessian (not an error).
///
/// ```
/// use ferrograd::{functional, Tensor};
/// // Rosenbrock at its minimum (1, 1): [[802, −400], [−400, 200]]
/// let rosenbrock = |p: &Tensor<f64>| {
///     let (x, y) = (p.narrow(0, 0, 1), p.narrow(0, 1, 1));
///     ((1.0 - &x).square() + (y - x.square()).square() * 100.0).sum()
/// };
/// let h = functional::hessian(rosenbrock, &Tensor::from_vec(vec![1.0, 1.0], &[2])?)?;
/// assert_eq!(h.to_vec(), vec![802.0, -400.0, -400.0, 200.0]);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] unless `f` returns a single element; the errors
/// of [`grad`](crate::grad).
pub fn hessian<T: Element>(
    f: impl Fn(&Tensor<T>) -> Tensor<T>,
    x: &Tensor<T>,
) -> Result<Tensor<T>> {
    let (leaf, _, g) = recorded_gradient("hessian", f, x)?;
    rows(&g, &leaf, x.shape())
}

/// `(f(x), H·v)` for a scalar `f`: the Hessian-vector product at `x` along `v`
/// (of `x`'s shape), without ever forming the Hessian.
///
/// One forward pass, one recorded backward pass for the gradient `∇f`, and one
/// backward pass through it seeded with `v` (`H·v = ∇(∇f·v)`): a small constant
/// times the cost of a gradient, whatever the size of `x`.
///
/// ```
/// use ferrograd::{functional, Tensor};
/// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2])?;
/// let v = Tensor::from_vec(vec![1.0, -1.0], &[2])?;
/// let (fx, hv) = functional::hvp(|x| x.powi(3).sum(), &x, &v)?;   // H = diag(6x)
/// assert_eq!((fx.item(), hv.to_vec()), (9.0, vec![6.0, -12.0]));
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] unless `f` returns a single element;
/// [`Error::ShapeMismatch`] when `v`'s shape differs from `x`'s; the errors of
/// [`grad`](crate::grad).
pub fn hvp<T: Element>(
    f: impl Fn(&Tensor<T>) -> Tensor<T>,
    x: &Tensor<T>,
    v: &Tensor<T>,
) -> Result<(Tensor<T>, Tensor<T>)> {
    if v.shape() != x.shape() {
        return Err(Error::shape("hvp", x.shape(), v.shape()));
    }
    let (leaf, y, g) = recorded_gradient("hvp", f, x)?;
    let hv = grad(&g, &[&leaf], options(false, Some(v.detach())))?.remove(0);
    Ok((y.detach(), hv))
}
