//! The element bound: which floating-point types a `Tensor` may hold (`f32`, `f64`).

use std::fmt::{Debug, Display, LowerExp};
use std::iter::Sum;

use num_traits::{Float, FromPrimitive, NumAssign};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point element type a [`Tensor`](crate::Tensor) can hold: `f32` or `f64`.
///
/// The trait is sealed: the kernels (GEMM, `erf`, sampling) are provided for these
/// two types only.
pub trait Element:
    Float
    + FromPrimitive
    + NumAssign
    + Sum
    + Debug
    + Display
    + LowerExp
    + Default
    + approx::RelativeEq<Epsilon = Self>
    + Send
    + Sync
    + std::panic::UnwindSafe
    + std::panic::RefUnwindSafe
    + 'static
    + sealed::Sealed
{
    /// The type's name as it appears in safetensors headers and `Display`: `"f32"` or `"f64"`.
    const DTYPE: &'static str;

    /// Converts from `f64`, rounding to the nearest representable value.
    fn from_f64_lossy(v: f64) -> Self;

    /// Converts to `f64` exactly.
    fn to_f64_lossless(self) -> f64;

    /// The error function, from `libm` (accurate to the last bits, as gradcheck needs).
    fn erf(self) -> Self;

    /// `eˣ` as the kernels compute it: a vectorisable approximation for `f32`
    /// (a few ulp), the C library's for `f64`.
    #[doc(hidden)]
    fn exp_k(self) -> Self;

    /// `tanh(x)` as the kernels compute it (see [`exp_k`](Element::exp_k)).
    #[doc(hidden)]
    fn tanh_k(self) -> Self;

    /// `erf(x)` as the GELU kernels compute it (see [`exp_k`](Element::exp_k)).
    #[doc(hidden)]
    fn erf_k(self) -> Self;

    /// A sample of the standard normal distribution.
    fn sample_normal<R: Rng + ?Sized>(rng: &mut R) -> Self;

    /// A sample of the uniform distribution on `[low, high)`.
    fn sample_uniform<R: Rng + ?Sized>(low: Self, high: Self, rng: &mut R) -> Self;

    /// The slice as what it is, `&mut [f32]` or `&mut [f64]`: how code generic
    /// over the element type reaches an API with one entry point per type (the
    /// collectives of [`distributed`](crate::distributed)).
    #[doc(hidden)]
    fn floats_mut(buf: &mut [Self]) -> FloatsMut<'_>;
}

/// A mutable slice of one of the element types, tagged with its type
/// (see [`Element::floats_mut`]).
#[doc(hidden)]
#[derive(Debug)]
pub enum FloatsMut<'a> {
    /// `f32` elements.
    F32(&'a mut [f32]),
    /// `f64` elements.
    F64(&'a mut [f64]),
}

macro_rules! impl_element {
    ($t:ty, $name:literal, $floats:ident, $erf:path, $exp:expr, $tanh:expr, $erf_k:expr) => {
        impl Element for $t {
            const DTYPE: &'static str = $name;

            #[inline]
            fn from_f64_lossy(v: f64) -> Self {
                v as $t
            }

            #[inline]
            fn to_f64_lossless(self) -> f64 {
                self as f64
            }

            #[inline]
            fn erf(self) -> Self {
                $erf(self)
            }

            #[inline(always)]
            fn exp_k(self) -> Self {
                $exp(self)
            }

            #[inline(always)]
            fn tanh_k(self) -> Self {
                $tanh(self)
            }

            #[inline(always)]
            fn erf_k(self) -> Self {
                $erf_k(self)
            }

            #[inline]
            fn sample_normal<R: Rng + ?Sized>(rng: &mut R) -> Self {
                StandardNormal.sample(rng)
            }

            #[inline]
            fn sample_uniform<R: Rng + ?Sized>(low: Self, high: Self, rng: &mut R) -> Self {
                if low == high {
                    return low;
                }
                Uniform::new(low, high)
                    .expect("rand_uniform: bounds checked by the caller")
                    .sample(rng)
            }

            #[inline]
            fn floats_mut(buf: &mut [Self]) -> FloatsMut<'_> {
                FloatsMut::$floats(buf)
            }
        }
    };
}

impl_element!(
    f32,
    "f32",
    F32,
    libm::erff,
    crate::kernels::approx::exp_f32,
    crate::kernels::approx::tanh_f32,
    crate::kernels::approx::erf_f32
);
impl_element!(f64, "f64", F64, libm::erf, f64::exp, f64::tanh, libm::erf);

/// Shorthand for a constant of the element type.
#[inline(always)]
pub(crate) fn c<T: Element>(v: f64) -> T {
    T::from_f64_lossy(v)
}
