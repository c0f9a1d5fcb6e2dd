//! Ops with a scalar operand (`x * 1.0001`, `x + b`, `1.0 - x`, …): no broadcast
//! tensor is built for the scalar.

use super::{map_grad, map_op, zip3_grad, Cost};
use crate::autograd::{grads, BackwardCx, InputGrads, Op, Saves};
use crate::element::Element;
use crate::tensor::Tensor;

#[derive(Clone, Copy)]
enum Kind {
    /// x + s
    Add,
    /// x - s
    Sub,
    /// s - x
    RSub,
    /// x * s
    Mul,
    /// x / s
    Div,
    /// s / x
    RDiv,
}

struct ScalarOp<T> {
    kind: Kind,
    s: T,
}

impl<T: Element> ScalarOp<T> {
    fn apply(x: &Tensor<T>, kind: Kind, s: T) -> Tensor<T> {
        let op = ScalarOp { kind, s };
        match kind {
            Kind::Add => map_op(x, op, Cost::Cheap, move |v| v + s),
            Kind::Sub => map_op(x, op, Cost::Cheap, move |v| v - s),
            Kind::RSub => map_op(x, op, Cost::Cheap, move |v| s - v),
            Kind::Mul => map_op(x, op, Cost::Cheap, move |v| v * s),
            Kind::Div => map_op(x, op, Cost::Cheap, move |v| v / s),
            Kind::RDiv => map_op(x, op, Cost::Cheap, move |v| s / v),
        }
    }
}

impl<T: Element> Op<T> for ScalarOp<T> {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Add => "add_scalar",
            Kind::Sub => "sub_scalar",
            Kind::RSub => "rsub_scalar",
            Kind::Mul => "mul_scalar",
            Kind::Div => "div_scalar",
            Kind::RDiv => "rdiv_scalar",
        }
    }
    fn saves(&self) -> Saves {
        match self.kind {
            Kind::RDiv => Saves::Both,
            _ => Saves::Nothing,
        }
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let s = self.s;
        grads![Some(match self.kind {
            Kind::Add | Kind::Sub => g,
            Kind::RSub => map_grad(g, Cost::Cheap, |v| -v),
            Kind::Mul => map_grad(g, Cost::Cheap, move |v| v * s),
            Kind::Div => map_grad(g, Cost::Cheap, move |v| v / s),
            // d(s/x)/dx = -s/x² = -(s/x)/x
            Kind::RDiv => zip3_grad(g, cx.output, cx.input(0), Cost::Cheap, |g, y, x| -(g * y)
                / x),
        })]
    }
}

impl<T: Element> Tensor<T> {
    /// `self + s` elementwise (also `&x + s`).
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::from_vec(vec![1., 2.], &[2])?;
    /// assert_eq!(x.add_scalar(0.5).to_vec(), vec![1.5, 2.5]);
    /// assert_eq!((&x + 0.5).to_vec(), vec![1.5, 2.5]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn add_scalar(&self, s: T) -> Tensor<T> {
        ScalarOp::apply(self, Kind::Add, s)
    }

    /// `self - s` elementwise (also `&x - s`).
    pub fn sub_scalar(&self, s: T) -> Tensor<T> {
        ScalarOp::apply(self, Kind::Sub, s)
    }

    /// `s - self` elementwise (also `s - &x` for `f32`/`f64`).
    pub fn rsub_scalar(&self, s: T) -> Tensor<T> {
        ScalarOp::apply(self, Kind::RSub, s)
    }

    /// `self * s` elementwise (also `&x * s`).
    pub fn mul_scalar(&self, s: T) -> Tensor<T> {
        ScalarOp::apply(self, Kind::Mul, s)
    }

    /// `self / s` elementwise (also `&x / s`); true division, not `* (1/s)`.
    pub fn div_scalar(&self, s: T) -> Tensor<T> {
        ScalarOp::apply(self, Kind::Div, s)
    }

    /// `s / self` elementwise (also `s / &x` for `f32`/`f64`).
    pub fn rdiv_scalar(&self, s: T) -> Tensor<T> {
        ScalarOp::apply(self, Kind::RDiv, s)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_util::{assert_close, check, rand_leaf, rand_leaf_away_from_zero};
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

    #[test]
    fn gradcheck_all_kinds() {
        for shape in [&[][..], &[4][..], &[2, 3][..]] {
            let x = rand_leaf_away_from_zero(shape, 7);
            check(|x| x[0].add_scalar(0.3), &[x.clone()]);
            check(|x| x[0].sub_scalar(0.3), &[x.clone()]);
            check(|x| x[0].rsub_scalar(0.3), &[x.clone()]);
            check(|x| x[0].mul_scalar(-1.7), &[x.clone()]);
            check(|x| x[0].div_scalar(-1.7), &[x.clone()]);
            check(|x| x[0].rdiv_scalar(1.3), &[x.clone()]);
        }
        let x = rand_leaf(&[3, 2], 8);
        check(|x| x[0].t().mul_scalar(2.0).rdiv_scalar(1.0), &[x.clone()]);
        check(|x| x[0].narrow(0, 1, 2).add_scalar(2.0), &[x]);
    }
}
