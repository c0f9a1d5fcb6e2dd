//! Ops with a scalar operand (`x * 1.0001`, `x + b`, `1.0 - x`, …): no broadcast
//! tensor is built for the scalar. They are unary ops with a parameter, declared
//! with the same [`unary!`](super::unary::unary) macro.

use super::unary::{apply, unary, UnaryFn, Uses};
use super::Cheap;
use crate::element::Element;
use crate::tensor::Tensor;

unary!(
    /// `self + s` elementwise (also `&x + s`).
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::from_vec(vec![1., 2.], &[2])?;
    /// assert_eq!(x.add_scalar(0.5).to_vec(), vec![1.5, 2.5]);
    /// assert_eq!((&x + 0.5).to_vec(), vec![1.5, 2.5]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    add_scalar(s: T) => AddScalar, None, Cheap,
    f: |x| x + s,
    df: |g, _, _| g,
    graph: |g, _, _| g.clone(),
);

unary!(
    /// `self - s` elementwise (also `&x - s`).
    sub_scalar(s: T) => SubScalar, None, Cheap,
    f: |x| x - s,
    df: |g, _, _| g,
    graph: |g, _, _| g.clone(),
);

unary!(
    /// `s - self` elementwise (also `s - &x` for `f32`/`f64`).
    rsub_scalar(s: T) => RSubScalar, None, Cheap,
    f: |x| s - x,
    df: |g, _, _| -g,
    graph: |g, _, _| g.neg(),
);

unary!(
    /// `self * s` elementwise (also `&x * s`).
    mul_scalar(s: T) => MulScalar, None, Cheap,
    f: |x| x * s,
    df: |g, _, _| g * s,
    graph: |g, _, _| g.mul_scalar(s),
);

unary!(
    /// `self / s` elementwise (also `&x / s`); true division, not `* (1/s)`.
    div_scalar(s: T) => DivScalar, None, Cheap,
    f: |x| x / s,
    df: |g, _, _| g / s,
    graph: |g, _, _| g.div_scalar(s),
);

unary!(
    /// `s / self` elementwise (also `s / &x` for `f32`/`f64`).
    rdiv_scalar(s: T) => RDivScalar, X, Cheap,
    f: |x| s / x,
    // d(s/x)/dx = -s/x²
    df: |g, x, _| -(g * s) / (x * x),
    graph: |g, x, _| g.div(&x.square()).mul_scalar(-s),
);

#[cfg(test)]
mod tests {
    use crate::ops::test_util::assert_close;
    use crate::Tensor;

    #[test]
    fn forward_values() {
        let x = Tensor::<f64>::from_vec(vec![1., 2., 4.], &[3]).unwrap();
        assert_close(&x.add_scalar(1.0), &[2., 3., 5.], 0.0);
        assert_close(&x.sub_scalar(1.0), &[0., 1., 3.], 0.0);
        assert_close(&x.rsub_scalar(1.0), &[0., -1., -3.], 0.0);
        assert_close(&x.mul_scalar(3.0), &[3., 6., 12.], 0.0);
        assert_close(&x.div_scalar(2.0), &[0.5, 1., 2.], 0.0);
        assert_close(&x.rdiv_scalar(2.0), &[2., 1., 0.5], 0.0);
    }
}
