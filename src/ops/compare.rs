//! Comparisons (0/1 masks, never recorded) and `where_cond`, the selection by a
//! mask that is differentiable in both branches.

use super::{map_plain, zip_grad, zip_plain, Cheap, ReadMany};
use crate::autograd::{grads, BackwardCx, InputGrads, Op, Saves};
use crate::element::{mono, Element};
use crate::error::{or_panic, Error, Result};
use crate::layout::Layout;
use crate::shape::{broadcast_shapes, try_broadcast};
use crate::tensor::{Seen, Tensor};

/// 1 for true, 0 for false (a mask element).
#[inline(always)]
fn flag<T: Element>(b: bool) -> T {
    if b {
        T::one()
    } else {
        T::zero()
    }
}

// ----- comparisons -----

/// `f(a, b)` as a 0/1 mask over the broadcast shape, recording nothing.
fn compare<T: Element>(
    name: &'static str,
    a: &Tensor<T>,
    b: &Tensor<T>,
    f: impl Fn(T, T) -> bool + Sync,
) -> Result<Tensor<T>> {
    let shape = try_broadcast(name, a.shape(), b.shape())?;
    Ok(zip_plain(&shape, a, b, Cheap, move |x, y| flag(f(x, y))))
}

/// Declares a comparison: the tensor form (broadcasting, panicking on a
/// mismatch) and the scalar form. The `try_` twin is in the fallible block below.
macro_rules! compare_methods {
    ($(#[$doc:meta])* $name:ident, $try_name:ident, $scalar:ident, $sym:literal, $f:expr) => {
        $(#[$doc])*
        ///
        /// The result is a 0/1 mask of the broadcast shape (a `Tensor<T>`, usable
        /// as the mask of [`masked_fill`](Tensor::masked_fill) or
        /// [`where_cond`](Tensor::where_cond)). Comparisons are not
        /// differentiable: the result never needs a gradient. NaN compares as in
        /// IEEE 754: only `not_equal` is true for it.
        ///
        /// # Panics
        /// Panics when the shapes do not broadcast, naming the op and both shapes.
        #[track_caller]
        pub fn $name(&self, other: &Tensor<T>) -> Tensor<T> {
            or_panic(self.$try_name(other))
        }

        #[doc = concat!("`self ", $sym, " value` elementwise, as a 0/1 mask of the same shape; see [`",
            stringify!($name), "`](Tensor::", stringify!($name), ").")]
        pub fn $scalar(&self, value: T) -> Tensor<T> {
            let f = $f;
            map_plain(self, Cheap, move |x: T| flag(f(x, value)))
        }
    };
}

impl<T: Element> Tensor<T> {
    compare_methods!(
        /// `self == other` elementwise, broadcasting.
        ///
        /// Accuracy of a classifier, with labels as class indices held in the
        /// element type (as [`argmax`](Tensor::argmax) returns them):
        ///
        /// ```
        /// use ferrograd::Tensor;
        /// let logits = Tensor::<f32>::from_vec(vec![0.1, 2.0, -1.0, 3.0, 0.0, 0.5, 0.2, 0.1, 0.9], &[3, 3])?;
        /// let labels = Tensor::<f32>::from_vec(vec![1.0, 0.0, 0.0], &[3])?;
        /// let accuracy = logits.argmax(-1).equal(&labels).mean();
        /// assert!((accuracy.item() - 2.0 / 3.0).abs() < 1e-6);
        /// # Ok::<(), ferrograd::Error>(())
        /// ```
        equal, try_equal, equal_scalar, "==", |a: T, b: T| a == b
    );
    compare_methods!(
        /// `self != other` elementwise, broadcasting (true where either is NaN).
        not_equal, try_not_equal, not_equal_scalar, "!=", |a: T, b: T| a != b
    );
    compare_methods!(
        /// `self > other` elementwise, broadcasting.
        ///
        /// ```
        /// use ferrograd::Tensor;
        /// let x = Tensor::<f32>::from_vec(vec![1., 2., 3., 4.], &[2, 2])?;
        /// let col = Tensor::<f32>::from_vec(vec![1.5, 3.5], &[2, 1])?;
        /// assert_eq!(x.greater(&col).to_vec(), vec![0., 1., 0., 1.]);
        /// assert_eq!(x.greater_scalar(2.0).to_vec(), vec![0., 0., 1., 1.]);
        /// # Ok::<(), ferrograd::Error>(())
        /// ```
        greater, try_greater, greater_scalar, ">", |a: T, b: T| a > b
    );
    compare_methods!(
        /// `self >= other` elementwise, broadcasting.
        greater_equal, try_greater_equal, greater_equal_scalar, ">=", |a: T, b: T| a >= b
    );
    compare_methods!(
        /// `self < other` elementwise, broadcasting.
        less, try_less, less_scalar, "<", |a: T, b: T| a < b
    );
    compare_methods!(
        /// `self <= other` elementwise, broadcasting.
        less_equal, try_less_equal, less_equal_scalar, "<=", |a: T, b: T| a <= b
    );
}

// ----- where_cond -----

/// `a` where the mask is nonzero, `b` elsewhere; inputs `[a, b, mask]`.
struct WhereCond;

impl<T: Element> Op<T> for WhereCond {
    fn name(&self) -> &'static str {
        "where_cond"
    }
    fn saves(&self) -> Saves {
        Saves::Input(2)
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let mask = cx.input(2);
        if cx.create_graph {
            // the same selection of g against zeros: linear in g, so any order
            let zero = Tensor::scalar(T::zero());
            return grads![
                cx.needs(0).then(|| Tensor::where_cond(mask, &g, &zero)),
                cx.needs(1).then(|| Tensor::where_cond(mask, &zero, &g)),
                None,
            ];
        }
        let keep = |pick_a: bool| {
            move |g: T, m: T| {
                if (m != T::zero()) == pick_a {
                    g
                } else {
                    T::zero()
                }
            }
        };
        // the last gradient computed may take over g's buffer
        let gb = cx
            .needs(1)
            .then(|| zip_plain(g.shape(), &g, mask, Cheap, keep(false)));
        let ga = cx.needs(0).then(|| zip_grad(g, mask, Cheap, keep(true)));
        grads![ga, gb, None]
    }
}

/// The broadcast shape of `where_cond`'s operands, or the error naming the
/// first pair that does not fit.
fn where_shape(mask: &[usize], a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let ab = try_broadcast("where_cond", a, b)?;
    if broadcast_shapes(mask, a).is_none() {
        return Err(Error::shape("where_cond", mask, a));
    }
    match broadcast_shapes(mask, &ab) {
        Some(s) => Ok(s.to_vec()),
        None => Err(Error::shape("where_cond", mask, b)),
    }
}

impl<T: Element> Tensor<T> {
    /// `a` where `mask` is nonzero, `b` elsewhere (PyTorch's `torch.where`); the
    /// three broadcast together. Differentiable in `a` and `b` (each gets the
    /// gradient where it was picked, summed back to its own shape), to any
    /// order; the mask is not differentiated. A NaN in the mask counts as
    /// nonzero.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![-2., -1., 0., 1., 2.], &[5])?;
    /// // a hand-made relu: x where x > 0, else 0
    /// let y = Tensor::where_cond(&x.greater_scalar(0.0), &x, &Tensor::scalar(0.0));
    /// assert_eq!(y.to_vec(), vec![0., 0., 0., 1., 2.]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// Panics when the shapes do not broadcast together, naming the op and the
    /// two shapes that do not fit (`a` and `b` first, then the mask and `a`,
    /// then the mask and `b`).
    #[track_caller]
    pub fn where_cond(mask: &Tensor<T>, a: &Tensor<T>, b: &Tensor<T>) -> Tensor<T> {
        or_panic(Self::try_where_cond(mask, a, b))
    }
}

/// Fallible forms: each `try_x` is `x` returning [`Result`] instead of
/// panicking (with the same message in the error).
impl<T: Element> Tensor<T> {
    /// Like [`equal`](Tensor::equal), returning [`Error::ShapeMismatch`] instead of panicking.
    pub fn try_equal(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, other: &Tensor<T>| -> Result<Tensor<T>> {
                compare("equal", this, other, |a, b| a == b)
            },
            (self, other)
        )
    }

    /// Like [`not_equal`](Tensor::not_equal), returning [`Error::ShapeMismatch`] instead of panicking.
    pub fn try_not_equal(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, other: &Tensor<T>| -> Result<Tensor<T>> {
                compare("not_equal", this, other, |a, b| a != b)
            },
            (self, other)
        )
    }

    /// Like [`greater`](Tensor::greater), returning [`Error::ShapeMismatch`] instead of panicking.
    pub fn try_greater(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, other: &Tensor<T>| -> Result<Tensor<T>> {
                compare("greater", this, other, |a, b| a > b)
            },
            (self, other)
        )
    }

    /// Like [`greater_equal`](Tensor::greater_equal), returning [`Error::ShapeMismatch`] instead of panicking.
    pub fn try_greater_equal(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, other: &Tensor<T>| -> Result<Tensor<T>> {
                compare("greater_equal", this, other, |a, b| a >= b)
            },
            (self, other)
        )
    }

    /// Like [`less`](Tensor::less), returning [`Error::ShapeMismatch`] instead of panicking.
    pub fn try_less(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, other: &Tensor<T>| -> Result<Tensor<T>> {
                compare("less", this, other, |a, b| a < b)
            },
            (self, other)
        )
    }

    /// Like [`less_equal`](Tensor::less_equal), returning [`Error::ShapeMismatch`] instead of panicking.
    pub fn try_less_equal(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, other: &Tensor<T>| -> Result<Tensor<T>> {
                compare("less_equal", this, other, |a, b| a <= b)
            },
            (self, other)
        )
    }

    /// Like [`where_cond`](Tensor::where_cond), returning [`Error::ShapeMismatch`]
    /// instead of panicking.
    pub fn try_where_cond(mask: &Tensor<T>, a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
        mono!(
            |mask: &Tensor<T>, a: &Tensor<T>, b: &Tensor<T>| -> Result<Tensor<T>> {
                let shape = where_shape(mask.shape(), a.shape(), b.shape())?;
                let mask = mask.detach();
                let ls: [Layout; 3] = [a, b, &mask].map(|t| t.layout().broadcast_to(&shape));
                let seen = Seen::note(&[a, b, &mask]);
                let data = {
                    let r = ReadMany::new(&[a, b, &mask]);
                    crate::kernels::elementwise::zip3(
                        (r.get(0), &ls[0]),
                        (r.get(1), &ls[1]),
                        (r.get(2), &ls[2]),
                        Cheap,
                        |x, y, m| if m != T::zero() { x } else { y },
                    )
                };
                Ok(Tensor::from_op_data(
                    seen,
                    data,
                    &shape,
                    WhereCond,
                    &[a, b, &mask],
                ))
            },
            (mask, a, b)
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_util::{assert_close, check, rand_leaf};
    use crate::{grad, GradOptions, Tensor};

    fn t(v: &[f64], s: &[usize]) -> Tensor<f64> {
        Tensor::from_vec(v.to_vec(), s).unwrap()
    }

    #[test]
    fn comparisons_broadcast_and_handle_nan() {
        let nan = f64::NAN;
        let a = t(&[1., 2., nan, 4.], &[2, 2]);
        let b = t(&[2., 2.], &[2]);
        assert_close(&a.equal(&b), &[0., 1., 0., 0.], 0.0);
        assert_close(&a.not_equal(&b), &[1., 0., 1., 1.], 0.0);
        assert_close(&a.greater(&b), &[0., 0., 0., 1.], 0.0);
        assert_close(&a.greater_equal(&b), &[0., 1., 0., 1.], 0.0);
        assert_close(&a.less(&b), &[1., 0., 0., 0.], 0.0);
        assert_close(&a.less_equal(&b), &[1., 1., 0., 0.], 0.0);
        assert_close(&a.equal(&a), &[1., 1., 0., 1.], 0.0);
        assert_close(&a.not_equal_scalar(nan), &[1., 1., 1., 1.], 0.0);
        assert_close(&a.less_equal_scalar(2.0), &[1., 1., 0., 0.], 0.0);
        assert_eq!(a.equal(&t(&[1., 2.], &[2, 1, 1])).shape(), &[2, 2, 2]);
    }

    #[test]
    fn comparisons_record_nothing() {
        let a = rand_leaf(&[2, 3], 1);
        let b = rand_leaf(&[3], 2);
        for m in [a.less(&b), a.greater_scalar(0.0), a.equal(&a)] {
            assert!(!m.needs_grad());
            assert!(m.is_leaf());
        }
    }

    #[test]
    fn where_cond_values_and_gradients() {
        let mask = t(&[1., 0., 0., 1.], &[2, 2]);
        let a = rand_leaf(&[2, 2], 3);
        let b = rand_leaf(&[2], 4);
        let y = Tensor::where_cond(&mask, &a, &b);
        let (av, bv) = (a.to_vec(), b.to_vec());
        assert_close(&y, &[av[0], bv[1], bv[0], av[3]], 0.0);
        let g = y.sum().backward().unwrap();
        assert_close(g.get(&a).unwrap(), &[1., 0., 0., 1.], 0.0);
        assert_close(g.get(&b).unwrap(), &[1., 1.], 0.0);
        check(
            |x| Tensor::where_cond(&mask, &x[0], &x[1]).square(),
            &[a, b],
        );
        // the recorded rule gives the same first derivative
        let a = rand_leaf(&[2, 2], 5);
        let y = Tensor::where_cond(&mask, &a.square(), &Tensor::scalar(1.0)).sum();
        let ga = grad(&y, &[&a], GradOptions::default()).unwrap();
        let gr = grad(
            &y,
            &[&a],
            GradOptions {
                create_graph: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ga[0].to_vec(), gr[0].to_vec());
    }

    #[test]
    fn where_cond_shape_errors_name_the_pair() {
        let m = Tensor::<f64>::zeros(&[2, 3]);
        let a = Tensor::<f64>::zeros(&[3]);
        let b = Tensor::<f64>::zeros(&[4]);
        assert_eq!(
            Tensor::try_where_cond(&m, &a, &b).unwrap_err().to_string(),
            "where_cond: incompatible shapes [3] and [4]"
        );
        assert_eq!(
            Tensor::try_where_cond(&m, &Tensor::zeros(&[2]), &Tensor::zeros(&[1]))
                .unwrap_err()
                .to_string(),
            "where_cond: incompatible shapes [2, 3] and [2]"
        );
        assert_eq!(
            Tensor::try_where_cond(&m, &Tensor::zeros(&[1]), &Tensor::zeros(&[4, 1]))
                .unwrap_err()
                .to_string(),
            "where_cond: incompatible shapes [2, 3] and [4, 1]"
        );
    }
}
