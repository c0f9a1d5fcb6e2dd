//! Unary elementwise ops, declared with [`unary!`]: each is a forward function
//! `f(x)` next to its local derivative rule in two forms:
//!
//! - `df(g, x, y)` = upstream `g` × ∂y/∂x, one fused pass over the buffers, for
//!   the plain first-order walk;
//! - `graph(g, x, y)`, the same gradient as recorded tensor ops, for a
//!   `create_graph` walk, so that it can be differentiated again (any order).
//!
//! Ops whose derivative is piecewise constant (relu, abs, clamp, …) write their
//! graph form as `g` times the constant local derivative ([`times_local`]): their
//! second derivative is 0 wherever it exists, as in PyTorch.
//!
//! The ops with a scalar operand (`scalar.rs`) are declared with the same macro.

use super::{map_grad, map_op, map_plain, zip_grad, Cheap, Cost, Costly};
use crate::autograd::{grads, BackwardCx, InputGrads, Op, Saves};
use crate::element::{c, Element};
use crate::tensor::Tensor;

/// What the local derivative reads: the input `x`, the output `y`, or neither.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Uses {
    None,
    X,
    Y,
}

/// An elementwise function and its derivative, in both forms.
pub(super) trait UnaryFn<T: Element>:
    Copy + Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe + 'static
{
    const NAME: &'static str;
    const USES: Uses;
    /// How much work one element is (a transcendental function's worth or a few instructions).
    type Cost: Cost + Default;
    fn f(self, x: T) -> T;
    /// The gradient with respect to `x`, given the upstream gradient `g`, the
    /// input `x` and the output `y` (only what `USES` names is meaningful).
    fn df(self, g: T, x: T, y: T) -> T;
    /// The same gradient as recorded tensor ops (reading only what `USES` names).
    fn graph(self, g: &Tensor<T>, x: &Tensor<T>, y: &Tensor<T>) -> Tensor<T>;
}

/// The recorded op of a [`UnaryFn`].
pub(super) struct Unary<F>(F);

impl<T: Element, F: UnaryFn<T>> Op<T> for Unary<F> {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn saves(&self) -> Saves {
        match F::USES {
            Uses::None => Saves::Nothing,
            Uses::X => Saves::Inputs,
            Uses::Y => Saves::Output,
        }
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let k = self.0;
        if cx.create_graph {
            return grads![Some(k.graph(&g, cx.input(0), cx.output))];
        }
        let z = T::zero();
        let cost = F::Cost::default();
        grads![Some(match F::USES {
            // inlined into the kernels' loops, so that they vectorise
            Uses::None => map_grad(
                g,
                cost,
                #[inline(always)]
                |g| k.df(g, z, z)
            ),
            Uses::X => zip_grad(
                g,
                cx.input(0),
                cost,
                #[inline(always)]
                |g, x| k.df(g, x, z)
            ),
            Uses::Y => zip_grad(
                g,
                cx.output,
                cost,
                #[inline(always)]
                |g, y| k.df(g, z, y)
            ),
        })]
    }
}

/// Applies `k` elementwise and records it.
pub(super) fn apply<T: Element, F: UnaryFn<T>>(x: &Tensor<T>, k: F) -> Tensor<T> {
    map_op(
        x,
        Unary(k),
        F::Cost::default(),
        #[inline(always)]
        move |v| k.f(v),
    )
}

/// `g` times the local derivative `df(1, x, y)` computed as a constant: the
/// graph form of an op whose derivative is piecewise constant (its own
/// derivative is 0 wherever it exists).
pub(super) fn times_local<T: Element, F: UnaryFn<T>>(
    k: F,
    g: &Tensor<T>,
    x: &Tensor<T>,
    y: &Tensor<T>,
) -> Tensor<T> {
    let (one, z) = (T::one(), T::zero());
    let local = match F::USES {
        Uses::None => return g.mul_scalar(k.df(one, z, z)),
        Uses::X => map_plain(x, Cheap, |x| k.df(one, x, z)),
        Uses::Y => map_plain(y, Cheap, |y| k.df(one, z, y)),
    };
    g.mul(&local)
}

/// Declares a unary op: its struct (holding the op's parameters), its
/// [`UnaryFn`] impl and its `Tensor` method. The closures see the parameters by
/// name:
///
/// ```ignore
/// unary!(
///     /// docs
///     method(param: Type) => Kind, Uses, Cost,
///     f: |x| forward(x),
///     df: |g, x, y| fused_gradient,
///     graph: |g, x, y| recorded_gradient,   // or `graph: piecewise`
/// );
/// ```
macro_rules! unary {
    // An op whose derivative is piecewise constant: its graph form is `g` times
    // the constant local derivative.
    ($(#[$doc:meta])* $method:ident($($p:ident: $pt:ty),*) => $kind:ident, $uses:ident, $cost:ident,
     f: |$x:ident| $f:expr,
     df: |$g:ident, $dx:pat_param, $dy:pat_param| $df:expr,
     graph: piecewise $(,)?) => {
        unary!(@impl $(#[$doc])* $method($($p: $pt),*) => $kind, $uses, $cost,
            f: |$x| $f,
            df: |$g, $dx, $dy| $df,
            graph: |this, g, x, y| times_local(this, g, x, y));
    };
    ($(#[$doc:meta])* $method:ident($($p:ident: $pt:ty),*) => $kind:ident, $uses:ident, $cost:ident,
     f: |$x:ident| $f:expr,
     df: |$g:ident, $dx:pat_param, $dy:pat_param| $df:expr,
     graph: |$gg:ident, $gx:pat_param, $gy:pat_param| $graph:expr $(,)?) => {
        unary!(@impl $(#[$doc])* $method($($p: $pt),*) => $kind, $uses, $cost,
            f: |$x| $f,
            df: |$g, $dx, $dy| $df,
            graph: |_this, $gg, $gx, $gy| $graph);
    };
    (@impl $(#[$doc:meta])* $method:ident($($p:ident: $pt:ty),*) => $kind:ident, $uses:ident, $cost:ident,
     f: |$x:ident| $f:expr,
     df: |$g:ident, $dx:pat_param, $dy:pat_param| $df:expr,
     graph: |$this:ident, $gg:ident, $gx:pat_param, $gy:pat_param| $graph:expr) => {
        #[derive(Clone, Copy)]
        struct $kind<T> {
            $($p: $pt,)*
            _t: ::std::marker::PhantomData<fn() -> T>,
        }

        #[allow(unused_variables)]
        impl<T: Element> UnaryFn<T> for $kind<T> {
            const NAME: &'static str = stringify!($method);
            const USES: Uses = Uses::$uses;
            type Cost = $cost;
            #[inline(always)]
            fn f(self, $x: T) -> T {
                let $kind { $($p,)* .. } = self;
                $f
            }
            #[inline(always)]
            fn df(self, $g: T, $dx: T, $dy: T) -> T {
                let $kind { $($p,)* .. } = self;
                $df
            }
            fn graph(self, $gg: &Tensor<T>, $gx: &Tensor<T>, $gy: &Tensor<T>) -> Tensor<T> {
                let $this = self;
                let $kind { $($p,)* .. } = self;
                $graph
            }
        }

        impl<T: Element> Tensor<T> {
            $(#[$doc])*
            pub fn $method(&self, $($p: $pt),*) -> Tensor<T> {
                $crate::element::mono!(|x: &Tensor<T>, $($p: $pt),*| -> Tensor<T> {
                    apply(x, $kind { $($p,)* _t: ::std::marker::PhantomData })
                }, (self, $($p),*))
            }
        }
    };
}
pub(super) use unary;

// `graph` forms read only what their `Uses` names, so that the version check
// covers every value they read.

unary!(
    /// `-x` (also the unary `-` operator).
    neg() => Neg, None, Cheap,
    f: |x| -x,
    df: |g, _, _| -g,
    graph: |g, _, _| g.neg(),
);

unary!(
    /// `eˣ`. For `f32`, a vectorised approximation within 1.22 ulp of the true
    /// value for every input (checked against `f64` over all 2³² inputs), `+inf`
    /// and `0` exactly where the true value rounds to them; `f64` uses the C
    /// library's `exp`.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f64>::from_vec(vec![0.0, 1.0], &[2])?;
    /// assert_eq!(x.exp().to_vec(), vec![1.0, std::f64::consts::E]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    exp() => Exp, Y, Costly,
    f: |x| x.exp_k(),
    df: |g, _, y| g * y,
    graph: |g, _, y| g.mul(y),
);

unary!(
    /// Natural logarithm (`-inf` at 0, NaN below).
    log() => Log, X, Costly,
    f: |x| x.ln(),
    df: |g, x, _| g / x,
    graph: |g, x, _| g.div(x),
);

unary!(
    /// Square root (NaN below 0).
    sqrt() => Sqrt, Y, Cheap,
    f: |x| x.sqrt(),
    df: |g, _, y| g * c::<T>(0.5) / y,
    graph: |g, _, y| g.mul_scalar(c(0.5)).div(y),
);

unary!(
    /// `|x|`. Its gradient at 0 is 0 (the subgradient PyTorch picks), and its
    /// second derivative is 0.
    abs() => Abs, X, Cheap,
    f: |x| x.abs(),
    df: |g, x, _| if x > T::zero() { g } else if x < T::zero() { -g } else if x == T::zero() { T::zero() } else { x },
    graph: piecewise,
);

unary!(
    /// `x²`.
    square() => Square, X, Cheap,
    f: |x| x * x,
    df: |g, x, _| g * c::<T>(2.0) * x,
    graph: |g, x, _| g.mul(x).mul_scalar(c(2.0)),
);

unary!(
    /// `1 / x`.
    recip() => Recip, Y, Cheap,
    f: |x| x.recip(),
    df: |g, _, y| -g * y * y,
    graph: |g, _, y| g.mul(&y.square()).neg(),
);

unary!(
    /// Sine.
    sin() => Sin, X, Costly,
    f: |x| x.sin(),
    df: |g, x, _| g * x.cos(),
    graph: |g, x, _| g.mul(&x.cos()),
);

unary!(
    /// Cosine.
    cos() => Cos, X, Costly,
    f: |x| x.cos(),
    df: |g, x, _| -g * x.sin(),
    graph: |g, x, _| g.mul(&x.sin()).neg(),
);

unary!(
    /// Hyperbolic tangent. For `f32`, a vectorised approximation within 2.25 ulp
    /// of the true value for every input (checked against `f64` over all 2³²
    /// inputs); `f64` uses the C library's `tanh`.
    tanh() => Tanh, Y, Costly,
    f: |x| x.tanh_k(),
    df: |g, _, y| g * (T::one() - y * y),
    graph: |g, _, y| g.mul(&y.square().rsub_scalar(T::one())),
);

unary!(
    /// The logistic function `1 / (1 + e⁻ˣ)`, computed without overflow.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::from_vec(vec![0.0, -1000.0, 1000.0], &[3])?;
    /// assert_eq!(x.sigmoid().to_vec(), vec![0.5, 0.0, 1.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    sigmoid() => Sigmoid, Y, Costly,
    f: |x| sigmoid(x),
    df: |g, _, y| g * y * (T::one() - y),
    graph: |g, _, y| g.mul(&y.mul(&y.rsub_scalar(T::one()))),
);

unary!(
    /// `max(x, 0)`. The gradient at 0 is 0, as in PyTorch; NaN passes through
    /// (forward and backward), unlike `f32::max`. The second derivative is 0.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::from_vec(vec![-1.0, 0.0, 2.0], &[3])?;
    /// assert_eq!(x.relu().to_vec(), vec![0.0, 0.0, 2.0]);
    /// assert!(ferrograd::Tensor::<f32>::scalar(f32::NAN).relu().item().is_nan());
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    relu() => Relu, X, Cheap,
    f: |x| if x <= T::zero() { T::zero() } else { x },
    df: |g, x, _| if x <= T::zero() { T::zero() } else { g },
    graph: piecewise,
);

unary!(
    /// GELU with the tanh approximation (PyTorch's `approximate="tanh"`):
    /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    gelu() => Gelu, X, Costly,
    f: |x| {
        let t = (c::<T>(GELU_K) * (x + c::<T>(GELU_A) * x * x * x)).tanh_k();
        c::<T>(0.5) * x * (T::one() + t)
    },
    df: |g, x, _| {
        let x2 = x * x;
        let t = (c::<T>(GELU_K) * (x + c::<T>(GELU_A) * x2 * x)).tanh_k();
        let du = c::<T>(GELU_K) * (T::one() + c::<T>(3.0 * GELU_A) * x2);
        g * (c::<T>(0.5) * (T::one() + t) + c::<T>(0.5) * x * (T::one() - t * t) * du)
    },
    graph: |g, x, _| {
        // 0.5·(1 + t) + 0.5·x·(1 − t²)·u' with u = K·(x + A·x³), t = tanh(u)
        let x2 = x.square();
        let t = x.add(&x2.mul(x).mul_scalar(c(GELU_A))).mul_scalar(c(GELU_K)).tanh();
        let du = x2.mul_scalar(c(3.0 * GELU_A * GELU_K)).add_scalar(c(GELU_K));
        let left = t.add_scalar(T::one()).mul_scalar(c(0.5));
        let right = x.mul(&t.square().rsub_scalar(T::one())).mul(&du).mul_scalar(c(0.5));
        g.mul(&left.add(&right))
    },
);

unary!(
    /// Exact GELU, `x·Φ(x) = 0.5·x·(1 + erf(x/√2))` (PyTorch's default `gelu`).
    /// In `f32` the kernels use a vectorised `erf` within 2.77 ulp (and `exp`
    /// within 1.22 ulp); `f64` uses the C library's.
    gelu_erf() => GeluErf, X, Costly,
    f: |x| c::<T>(0.5) * x * (T::one() + (x * c::<T>(std::f64::consts::FRAC_1_SQRT_2)).erf_k()),
    df: |g, x, _| {
        let cdf = c::<T>(0.5) * (T::one() + (x * c::<T>(std::f64::consts::FRAC_1_SQRT_2)).erf_k());
        let pdf = (-(x * x) * c::<T>(0.5)).exp_k() * c::<T>(INV_SQRT_2PI);
        g * (cdf + x * pdf)
    },
    graph: |g, x, _| {
        // Φ(x) + x·φ(x)
        let cdf = Tensor::erf(&x.mul_scalar(c(std::f64::consts::FRAC_1_SQRT_2)))
            .add_scalar(T::one())
            .mul_scalar(c(0.5));
        let pdf = x.square().mul_scalar(c(-0.5)).exp().mul_scalar(c(INV_SQRT_2PI));
        g.mul(&cdf.add(&x.mul(&pdf)))
    },
);

unary!(
    /// The error function `erf(x) = 2/√π ∫₀ˣ e^(−t²) dt` (from `libm`, accurate to
    /// the last bits).
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f64>::from_vec(vec![0.0, 1.0], &[2])?;
    /// assert!((x.erf().to_vec()[1] - 0.8427007929497149).abs() < 1e-15);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    erf() => Erf, X, Costly,
    f: |x| Element::erf(x),
    df: |g, x, _| g * c::<T>(TWO_OVER_SQRT_PI) * (-(x * x)).exp_k(),
    graph: |g, x, _| g.mul(&x.square().neg().exp()).mul_scalar(c(TWO_OVER_SQRT_PI)),
);

unary!(
    /// SiLU (swish), `x·sigmoid(x)`.
    silu() => Silu, X, Costly,
    f: |x| x * sigmoid(x),
    df: |g, x, _| {
        let s = sigmoid(x);
        g * s * (T::one() + x * (T::one() - s))
    },
    graph: |g, x, _| {
        let s = x.sigmoid();
        g.mul(&s.mul(&x.mul(&s.rsub_scalar(T::one())).add_scalar(T::one())))
    },
);

unary!(
    /// `log(1 + eˣ)`, computed stably as `max(x, 0) + log1p(e^-|x|)`.
    softplus() => Softplus, X, Costly,
    f: |x| (if x > T::zero() { x } else { T::zero() }) + (-x.abs()).exp_k().ln_1p(),
    df: |g, x, _| g * sigmoid(x),
    graph: |g, x, _| g.mul(&x.sigmoid()),
);

unary!(
    /// `x` where `x > 0`, else `slope·x`. The gradient at 0 is `slope`; the
    /// second derivative is 0.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::from_vec(vec![-2.0, 3.0], &[2])?;
    /// assert_eq!(x.leaky_relu(0.1).to_vec(), vec![-0.2, 3.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    leaky_relu(slope: T) => LeakyRelu, X, Cheap,
    f: |x| if x > T::zero() { x } else { x * slope },
    df: |g, x, _| if x > T::zero() { g } else { g * slope },
    graph: piecewise,
);

unary!(
    /// Limits every element to `[min, max]` (as `min(max(x, min), max)`, so `max`
    /// wins when `min > max`). The gradient passes where `min ≤ x ≤ max`; NaN
    /// stays NaN. The second derivative is 0.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::from_vec(vec![-2.0, 0.5, 3.0], &[3])?;
    /// assert_eq!(x.clamp(-1.0, 1.0).to_vec(), vec![-1.0, 0.5, 1.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    clamp(min: T, max: T) => Clamp, X, Cheap,
    f: |x| {
        let v = if x < min { min } else { x };
        if v > max { max } else { v }
    },
    df: |g, x, _| if x >= min && x <= max { g } else { T::zero() },
    graph: piecewise,
);

unary!(
    /// `xᵖ` for a real exponent (NaN for negative `x` and non-integer `p`).
    powf(p: T) => Powf, X, Costly,
    f: |x| x.powf(p),
    df: |g, x, _| if p == T::zero() { T::zero() } else { g * p * x.powf(p - T::one()) },
    graph: |g, x, _| if p == T::zero() {
        Tensor::zeros(g.shape())
    } else {
        g.mul(&x.powf(p - T::one())).mul_scalar(p)
    },
);

unary!(
    /// `xⁿ` for an integer exponent (defined for negative `x`).
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f64>::from_vec(vec![-2.0, 3.0], &[2])?;
    /// assert_eq!(x.powi(3).to_vec(), vec![-8.0, 27.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    powi(n: i32) => Powi, X, Cheap,
    f: |x| x.powi(n),
    df: |g, x, _| if n == 0 { T::zero() } else { g * c::<T>(f64::from(n)) * x.powi(n - 1) },
    graph: |g, x, _| if n == 0 {
        Tensor::zeros(g.shape())
    } else {
        g.mul(&x.powi(n - 1)).mul_scalar(c(f64::from(n)))
    },
);

/// √(2/π)
const GELU_K: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient of the tanh approximation of GELU.
const GELU_A: f64 = 0.044715;
/// 1/√(2π)
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
/// 2/√π
const TWO_OVER_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

#[inline(always)]
fn sigmoid<T: Element>(x: T) -> T {
    // e^-|x| never overflows; the two forms are the same function
    let e = (-x.abs()).exp_k();
    if x >= T::zero() {
        T::one() / (T::one() + e)
    } else {
        e / (T::one() + e)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_util::assert_close;
    use crate::Tensor;
    use crate::{grad, GradOptions};

    #[test]
    fn forward_values() {
        let x = Tensor::<f64>::from_vec(vec![-1.0, 0.0, 2.0], &[3]).unwrap();
        assert_close(&x.neg(), &[1.0, 0.0, -2.0], 0.0);
        assert_close(&x.abs(), &[1.0, 0.0, 2.0], 0.0);
        assert_close(&x.square(), &[1.0, 0.0, 4.0], 0.0);
        assert_close(&x.relu(), &[0.0, 0.0, 2.0], 0.0);
        assert_close(&x.leaky_relu(0.01), &[-0.01, 0.0, 2.0], 1e-15);
        assert_close(
            &x.sigmoid(),
            &[0.2689414213699951, 0.5, 0.8807970779778823],
            1e-14,
        );
        assert_close(
            &x.tanh(),
            &[-0.7615941559557649, 0.0, 0.9640275800758169],
            1e-14,
        );
        // PyTorch: F.gelu(x, approximate="tanh") and F.gelu(x)
        assert_close(
            &x.gelu(),
            &[-0.15880800939172324, 0.0, 1.9545976940877752],
            1e-12,
        );
        assert_close(
            &x.gelu_erf(),
            &[-0.15865525393145707, 0.0, 1.9544997361036416],
            1e-12,
        );
        assert_close(
            &x.silu(),
            &[-0.2689414213699951, 0.0, 1.7615941559557649],
            1e-14,
        );
        assert_close(
            &x.softplus(),
            &[
                0.31326168751822286,
                std::f64::consts::LN_2,
                2.1269280110429727,
            ],
            1e-14,
        );
        assert_close(&x.clamp(-0.5, 1.0), &[-0.5, 0.0, 1.0], 0.0);
        assert_close(&x.exp(), &[(-1f64).exp(), 1.0, 2f64.exp()], 1e-15);
        assert_close(&x.sin(), &[(-1f64).sin(), 0.0, 2f64.sin()], 1e-15);
        assert_close(&x.cos(), &[(-1f64).cos(), 1.0, 2f64.cos()], 1e-15);
        assert_close(&x.powi(2), &[1.0, 0.0, 4.0], 0.0);
        let p = Tensor::<f64>::from_vec(vec![4.0, 0.25], &[2]).unwrap();
        assert_close(&p.sqrt(), &[2.0, 0.5], 0.0);
        assert_close(&p.log(), &[4f64.ln(), 0.25f64.ln()], 1e-15);
        assert_close(&p.recip(), &[0.25, 4.0], 0.0);
        assert_close(&p.powf(1.5), &[8.0, 0.125], 1e-15);
    }

    #[test]
    fn subgradients_at_kinks_and_nan() {
        let x = Tensor::<f64>::from_vec(vec![0.0, f64::NAN, -1.0], &[3])
            .unwrap()
            .requires_grad();
        let g = x.relu().sum().backward().unwrap();
        let g = g.get(&x).unwrap().to_vec();
        assert_eq!(g[0], 0.0); // relu'(0) = 0
        assert_eq!(g[1], 1.0); // NaN lets the gradient through, as PyTorch's threshold_backward
        assert_eq!(g[2], 0.0);
        assert!(x.relu().to_vec()[1].is_nan());
        let g = x.abs().sum().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec()[0], 0.0); // |x|'(0) = 0
        let g = x.leaky_relu(0.2).sum().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec()[0], 0.2);
        assert!(x.clamp(-0.5, 0.5).to_vec()[1].is_nan());
        let big = Tensor::<f32>::from_vec(vec![-100.0, 100.0], &[2]).unwrap();
        let sp = big.softplus().to_vec();
        assert!(
            (0.0..1e-40).contains(&sp[0]),
            "softplus(-100) = e^-100 (or 0 in f32)"
        );
        assert_eq!(sp[1], 100.0);
        let sg = big.sigmoid().to_vec();
        assert!((0.0..1e-40).contains(&sg[0]) && sg[1] == 1.0, "{sg:?}");
    }

    #[test]
    fn second_derivatives_at_kinks_follow_pytorch() {
        // y = Σ f(x)²: y'' = 2·(f'² + f·f''), with f' at the kinks as PyTorch
        // picks it and f'' = 0 for the piecewise-linear ops.
        let x = Tensor::<f64>::from_vec(vec![0.0, -1.5, 2.0], &[3])
            .unwrap()
            .requires_grad();
        let second = |f: fn(&Tensor<f64>) -> Tensor<f64>| {
            let y = f(&x).square().sum();
            let on = GradOptions {
                create_graph: true,
                ..Default::default()
            };
            let g = grad(&y, &[&x], on).unwrap().remove(0);
            let u = Tensor::<f64>::ones(&[3]);
            g.backward_with(&u).unwrap().get(&x).unwrap().to_vec()
        };
        // the Hessian is diagonal here, so H·1 is its diagonal
        assert_eq!(second(|x| x.relu()), vec![0.0, 0.0, 2.0]);
        assert_eq!(second(|x| x.abs()), vec![0.0, 2.0, 2.0]);
        assert_eq!(second(|x| x.leaky_relu(0.5)), vec![0.5, 0.5, 2.0]);
        assert_eq!(second(|x| x.clamp(-1.0, 1.0)), vec![2.0, 0.0, 0.0]);
    }
}
