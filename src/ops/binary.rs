//! Binary elementwise ops with NumPy broadcasting: add, sub, mul, div, pow,
//! maximum, minimum.

use super::{map_grad, read2, same_shape, zip3_plain, zip_grad, zip_plain, Cheap, Cost, Costly};
use crate::autograd::{grads, BackwardCx, InputGrads, Op, Saves};
use crate::element::{c, mono, Element};
use crate::error::{or_panic, Result};
use crate::kernels::elementwise::zip_buf;
use crate::shape::try_broadcast;
use crate::tensor::{Seen, Tensor};

/// Broadcasts `a` and `b`, applies `f` elementwise and records `op`.
fn binary<T: Element>(
    name: &'static str,
    a: &Tensor<T>,
    b: &Tensor<T>,
    op: impl Op<T>,
    cost: impl Cost,
    f: impl Fn(T, T) -> T + Sync,
) -> Result<Tensor<T>> {
    if same_shape(a.shape(), b.shape()) && a.is_contiguous() && b.is_contiguous() {
        // the output has the inputs' shape, and the kernel reads their ranges
        let seen = Seen::note(&[a, b]);
        let data = read2(a, b, |da, db| {
            zip_buf(da, a.layout(), db, b.layout(), cost, f)
        });
        return Ok(Tensor::from_op_data_like(seen, data, a, op, &[a, b]));
    }
    let shape = try_broadcast(name, a.shape(), b.shape())?;
    let (la, lb) = (
        a.layout().broadcast_to(&shape),
        b.layout().broadcast_to(&shape),
    );
    let seen = Seen::note(&[a, b]);
    let data = read2(a, b, |da, db| zip_buf(da, &la, db, &lb, cost, f));
    Ok(Tensor::from_op_buf(seen, data, &shape, op, &[a, b]))
}

/// A binary op's panicking method; its `try_` twin comes from
/// `binary_try_method!` in the fallible block at the end of the file.
macro_rules! binary_method {
    ($(#[$doc:meta])* $name:ident, $try_name:ident) => {
        impl<T: Element> Tensor<T> {
            $(#[$doc])*
            ///
            /// # Panics
            /// Panics when the shapes do not broadcast, naming the op and both shapes.
            #[track_caller]
            pub fn $name(&self, other: &Tensor<T>) -> Tensor<T> {
                or_panic(self.$try_name(other))
            }
        }
    };
}

/// The `try_` twin of a [`binary_method!`], for the fallible block at the end
/// of the file.
macro_rules! binary_try_method {
    ($name:ident, $try_name:ident, $op:expr, $cost:ident, $f:expr) => {
        #[doc = concat!("Like [`", stringify!($name), "`](Tensor::", stringify!($name), "), returning [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) instead of panicking.")]
        pub fn $try_name(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
            mono!(|a: &Tensor<T>, b: &Tensor<T>| -> Result<Tensor<T>> {
                binary(stringify!($name), a, b, $op, $cost, $f)
            }, (self, other))
        }
    };
}

// ----- add -----

struct Add;

binary_method!(
    /// Elementwise `self + other`, broadcasting (also the `+` operator).
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1., 2., 3., 4.], &[2, 2])?;
    /// let b = Tensor::<f32>::from_vec(vec![10., 20.], &[2])?;
    /// assert_eq!(a.add(&b).to_vec(), vec![11., 22., 13., 24.]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    add, try_add
);

impl<T: Element> Op<T> for Add {
    fn name(&self) -> &'static str {
        "add"
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        grads![cx.needs(0).then(|| g.clone()), cx.needs(1).then_some(g)]
    }
}

// ----- sub -----

struct Sub;

binary_method!(
    /// Elementwise `self - other`, broadcasting (also the `-` operator).
    sub, try_sub
);

impl<T: Element> Op<T> for Sub {
    fn name(&self) -> &'static str {
        "sub"
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        match (cx.needs(0), cx.needs(1)) {
            (true, true) => grads![Some(g.clone()), Some(g.neg())],
            (true, false) => grads![Some(g), None],
            (false, _) if cx.create_graph => grads![None, Some(g.neg())],
            (false, _) => grads![None, Some(map_grad(g, Cheap, |v| -v))],
        }
    }
}

// ----- mul -----

struct Mul;

binary_method!(
    /// Elementwise `self * other`, broadcasting (also the `*` operator).
    mul, try_mul
);

impl<T: Element> Op<T> for Mul {
    fn name(&self) -> &'static str {
        "mul"
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let (a, b) = (cx.input(0), cx.input(1));
        if cx.create_graph {
            return grads![cx.needs(0).then(|| g.mul(b)), cx.needs(1).then(|| g.mul(a))];
        }
        // the last gradient computed may take over g's buffer
        let gb = cx.needs(1).then(|| g.mul(a));
        let ga = cx.needs(0).then(|| zip_grad(g, b, Cheap, |g, b| g * b));
        grads![ga, gb]
    }
}

// ----- div -----

struct Div;

binary_method!(
    /// Elementwise `self / other`, broadcasting (also the `/` operator). Division
    /// by zero follows IEEE 754 (`±inf` or NaN).
    div, try_div
);

impl<T: Element> Op<T> for Div {
    fn name(&self) -> &'static str {
        "div"
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let (a, b) = (cx.input(0), cx.input(1));
        if cx.create_graph {
            // d/da = g/b, d/db = -g·a/b² = -(g/b)·a/b
            let ga = g.div(b);
            let gb = cx.needs(1).then(|| ga.mul(a).div(b).neg());
            return grads![cx.needs(0).then_some(ga), gb];
        }
        // d(a/b)/db = -a / b²; then d(a/b)/da = 1/b may take over g's buffer
        let gb = cx
            .needs(1)
            .then(|| zip3_plain(g.shape(), &g, a, b, Cheap, |g, a, b| -g * a / (b * b)));
        let ga = cx.needs(0).then(|| zip_grad(g, b, Cheap, |g, b| g / b));
        grads![ga, gb]
    }
}

// ----- pow -----

struct Pow;

binary_method!(
    /// Elementwise `self ^ other` (real power), broadcasting.
    ///
    /// Gradients follow PyTorch at the edges: where the exponent is 0 the base gets
    /// gradient 0, and where the base is 0 (with a non-negative exponent) the
    /// exponent gets gradient 0 instead of `0 · log 0`.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let a = Tensor::<f64>::from_vec(vec![2.0, 9.0], &[2])?;
    /// let b = Tensor::<f64>::from_vec(vec![3.0, 0.5], &[2])?;
    /// assert_eq!(a.pow(&b).to_vec(), vec![8.0, 3.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pow, try_pow
);

impl<T: Element> Op<T> for Pow {
    fn name(&self) -> &'static str {
        "pow"
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        let (a, b) = (cx.input(0), cx.input(1));
        let s = g.shape();
        if cx.create_graph {
            return pow_graph(cx, g, a, b);
        }
        grads![
            cx.needs(0)
                .then(|| zip3_plain(s, g, a, b, Costly, |g, a, b| {
                    if b == T::zero() {
                        T::zero()
                    } else {
                        g * b * a.powf(b - T::one())
                    }
                })),
            cx.needs(1)
                .then(|| zip3_plain(s, g, a, b, Costly, |g, a, b| {
                    if a == T::zero() && b >= T::zero() {
                        T::zero()
                    } else {
                        g * a.powf(b) * a.ln()
                    }
                })),
        ]
    }
}

/// The recorded form of pow's rule, with the same edge values: the base gets 0
/// where the exponent is 0, and the exponent gets 0 where the base is 0 (and the
/// exponent non-negative). The base is replaced by 1 at those places before the
/// power and the log, so that their own derivatives stay finite there.
fn pow_graph<T: Element>(
    cx: &BackwardCx<'_, T>,
    g: &Tensor<T>,
    a: &Tensor<T>,
    b: &Tensor<T>,
) -> InputGrads<T> {
    let s = g.shape();
    let safe_base = |mask: Tensor<T>| a.broadcast_to(s).masked_fill(&mask, T::one());
    let ga = cx.needs(0).then(|| {
        let a = safe_base(zip_plain(s, a, b, Cheap, |_, b| flag(b == T::zero())));
        g.mul(b).mul(&a.pow(&b.sub_scalar(T::one())))
    });
    let gb = cx.needs(1).then(|| {
        let zero_base = |a: T, b: T| flag(a == T::zero() && b >= T::zero());
        let a = safe_base(zip_plain(s, a, b, Cheap, zero_base));
        g.mul(&a.pow(b)).mul(&a.log())
    });
    grads![ga, gb]
}

/// 1 for true, 0 for false (a mask element).
fn flag<T: Element>(b: bool) -> T {
    if b {
        T::one()
    } else {
        T::zero()
    }
}

// ----- maximum / minimum -----

/// `maximum` (`MAX = true`) or `minimum`: ties split the gradient ½/½, NaN wins.
struct Extremum<const MAX: bool>;

#[inline]
fn extremum<T: Element, const MAX: bool>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        a + b
    } else if (a >= b) == MAX {
        a
    } else {
        b
    }
}

binary_method!(
    /// Elementwise maximum, broadcasting. NaN in either operand gives NaN (as
    /// PyTorch, unlike `f32::max`); a tie sends half the gradient to each side.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1., 5., f32::NAN], &[3])?;
    /// let b = Tensor::<f32>::from_vec(vec![3., 2., 0.], &[3])?;
    /// let m = a.maximum(&b).to_vec();
    /// assert_eq!(&m[..2], &[3., 5.]);
    /// assert!(m[2].is_nan());
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    maximum, try_maximum
);

binary_method!(
    /// Elementwise minimum, broadcasting; NaN propagates and ties split the
    /// gradient ½/½, as in [`maximum`](Tensor::maximum).
    minimum, try_minimum
);

impl<T: Element, const MAX: bool> Op<T> for Extremum<MAX> {
    fn name(&self) -> &'static str {
        if MAX {
            "maximum"
        } else {
            "minimum"
        }
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        let (a, b) = (cx.input(0), cx.input(1));
        let s = g.shape();
        // The side that lost gets 0; a tie gets half; NaN comparisons let it through.
        let share = move |g: T, mine: T, other: T| {
            if mine == other {
                g * c(0.5)
            } else if (MAX && mine < other) || (!MAX && mine > other) {
                T::zero()
            } else {
                g
            }
        };
        if cx.create_graph {
            // g times a constant share: the second derivative is 0
            let local =
                |mine, other| zip_plain(s, mine, other, Cheap, move |m, o| share(T::one(), m, o));
            return grads![
                cx.needs(0).then(|| g.mul(&local(a, b))),
                cx.needs(1).then(|| g.mul(&local(b, a))),
            ];
        }
        grads![
            cx.needs(0).then(|| zip3_plain(s, g, a, b, Cheap, share)),
            cx.needs(1).then(|| zip3_plain(s, g, b, a, Cheap, share)),
        ]
    }
}

/// Fallible forms: each `try_x` is `x` returning [`Result`] instead of
/// panicking (the error carries the message the panic would print).
impl<T: Element> Tensor<T> {
    binary_try_method!(add, try_add, Add, Cheap, |a, b| a + b);
    binary_try_method!(sub, try_sub, Sub, Cheap, |a, b| a - b);
    binary_try_method!(mul, try_mul, Mul, Cheap, |a, b| a * b);
    binary_try_method!(div, try_div, Div, Cheap, |a, b| a / b);
    binary_try_method!(pow, try_pow, Pow, Costly, |a: T, b: T| a.powf(b));
    binary_try_method!(
        maximum,
        try_maximum,
        Extremum::<true>,
        Cheap,
        extremum::<T, true>
    );
    binary_try_method!(
        minimum,
        try_minimum,
        Extremum::<false>,
        Cheap,
        extremum::<T, false>
    );
}

#[cfg(test)]
mod tests {
    use crate::ops::test_util::{assert_close, check, rand_leaf, rand_leaf_away_from_zero};
    use crate::Tensor;

    fn t(v: &[f64], s: &[usize]) -> Tensor<f64> {
        Tensor::from_vec(v.to_vec(), s).unwrap()
    }

    #[test]
    fn forward_values_broadcast() {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let b = t(&[10., 20., 30.], &[3]);
        let col = t(&[1., 2.], &[2, 1]);
        assert_close(&a.add(&b), &[11., 22., 33., 14., 25., 36.], 0.0);
        assert_close(&a.sub(&col), &[0., 1., 2., 2., 3., 4.], 0.0);
        assert_close(&a.mul(&b), &[10., 40., 90., 40., 100., 180.], 0.0);
        assert_close(&b.div(&a), &[10., 10., 10., 2.5, 4., 5.], 1e-15);
        assert_close(&a.pow(&col), &[1., 2., 3., 16., 25., 36.], 1e-15);
        assert_close(&col.maximum(&t(&[1.5], &[])), &[1.5, 2.], 0.0);
        assert_close(&col.minimum(&t(&[1.5], &[])), &[1., 1.5], 0.0);
        assert_eq!(col.add(&b).shape(), &[2, 3]);
        let s = Tensor::<f64>::scalar(2.0);
        assert_close(&s.mul(&s), &[4.0], 0.0);
        assert_eq!(s.mul(&s).shape(), &[] as &[usize]);
    }

    #[test]
    fn mismatched_shapes_name_the_op() {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let b = t(&[1., 2.], &[2]);
        let e = a.try_mul(&b).unwrap_err().to_string();
        assert_eq!(e, "mul: incompatible shapes [2, 3] and [2]");
        let p = std::panic::catch_unwind(|| a.add(&b)).unwrap_err();
        assert_eq!(
            p.downcast_ref::<String>().unwrap(),
            "add: incompatible shapes [2, 3] and [2]"
        );
    }

    #[test]
    fn gradcheck_broadcast_0d_and_strided() {
        for (sa, sb) in [
            (&[3][..], &[3][..]),
            (&[2, 3][..], &[3][..]),
            (&[2, 1][..], &[1, 3][..]),
            (&[][..], &[2, 2][..]),
            (&[][..], &[][..]),
        ] {
            let a = rand_leaf(sa, 1);
            let b = rand_leaf_away_from_zero(sb, 2);
            check(|x| x[0].add(&x[1]), &[a.clone(), b.clone()]);
            check(|x| x[0].sub(&x[1]), &[a.clone(), b.clone()]);
            check(|x| x[0].mul(&x[1]), &[a.clone(), b.clone()]);
            check(|x| x[0].div(&x[1]), &[a.clone(), b.clone()]);
            check(|x| x[0].maximum(&x[1]), &[a.clone(), b.clone()]);
            check(|x| x[0].minimum(&x[1]), &[a.clone(), b.clone()]);
            let pos = crate::ops::map_plain(&a, super::Cheap, |v| v.abs() + 0.5).requires_grad();
            check(|x| x[0].pow(&x[1]), &[pos, b.clone()]);
        }
        // non-contiguous operands: a transposed and a narrowed view
        let a = rand_leaf(&[3, 2], 3);
        let b = rand_leaf_away_from_zero(&[2, 5], 4);
        check(
            |x| x[0].t().mul(&x[1].narrow(1, 1, 3)),
            &[a.clone(), b.clone()],
        );
        check(|x| x[0].t().div(&x[1].narrow(1, 2, 3)), &[a, b]);
    }

    #[test]
    fn fan_out_of_the_same_tensor() {
        // d(x*x)/dx = 2x, both operands share one buffer
        let x = t(&[3.0], &[]).requires_grad();
        let g = x.mul(&x).backward().unwrap();
        assert_eq!(g.get(&x).unwrap().item(), 6.0);
    }

    #[test]
    fn ties_and_nan_in_extremum_gradients() {
        let a = t(&[1., 2., f64::NAN], &[3]).requires_grad();
        let b = t(&[1., 3., 0.], &[3]).requires_grad();
        let g = a.maximum(&b).sum().backward().unwrap();
        assert_close(g.get(&a).unwrap(), &[0.5, 0.0, 1.0], 0.0);
        assert_close(g.get(&b).unwrap(), &[0.5, 1.0, 1.0], 0.0);
        let g = a.minimum(&b).sum().backward().unwrap();
        assert_close(g.get(&a).unwrap(), &[0.5, 1.0, 1.0], 0.0);
        assert_close(g.get(&b).unwrap(), &[0.5, 0.0, 1.0], 0.0);
    }

    #[test]
    fn pow_gradient_edges() {
        let a = t(&[0.0, 2.0], &[2]).requires_grad();
        let b = t(&[2.0, 0.0], &[2]).requires_grad();
        let g = a.pow(&b).sum().backward().unwrap();
        assert_close(g.get(&a).unwrap(), &[0.0, 0.0], 0.0);
        assert_close(g.get(&b).unwrap(), &[0.0, 2f64.ln()], 1e-15);
    }
}
