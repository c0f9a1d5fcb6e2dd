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

    /// `P`'s function for this element type (see [`PerType`]).
    #[doc(hidden)]
    fn per_type<P: PerType>() -> P::Fn<Self>;
}

/// A function of the element type whose `f32` instance is compiled once,
/// inside this crate (see [`mono!`]): code generic over `T: Element` that calls
/// it through [`Element::per_type`] reaches that existing symbol instead of
/// instantiating the function, and all it calls, again in the dependent crate
/// (release builds do not share generic instances across crates). The `f64`
/// instance is compiled where it is used, as generic code is.
#[doc(hidden)]
pub trait PerType {
    /// The function's type for element type `T`.
    type Fn<T: Element>: Copy;
    /// The `f32` instance.
    fn for_f32() -> Self::Fn<f32>;
    /// The `f64` instance.
    fn for_f64() -> Self::Fn<f64>;
}

/// Calls a function generic over the element type through its instance
/// compiled in this crate (see [`PerType`]), so that a public generic entry
/// point stays a thin wrapper in the crates that use it:
///
/// ```ignore
/// mono!(|x: &Tensor<T>, n: usize| -> Tensor<T> { body }, (self, n))
/// ```
///
/// `body` sees only its parameters and `T` (not `self`, nor the caller's other
/// generics): it is the body of a generic function of its own. The call costs
/// one direct and one indirect call; for `f32` the body is compiled once, here.
macro_rules! mono {
    (|$($a:ident: $at:ty),* $(,)?| $body:block, ($($v:expr),* $(,)?)) => {
        $crate::element::mono!(|$($a: $at),*| -> () $body, ($($v),*))
    };
    (|$($a:ident: $at:ty),* $(,)?| -> $r:ty $body:block, ($($v:expr),* $(,)?)) => {{
        // `T` names the element type in the parameter and return types, as in
        // the caller (a generic parameter is not hygienic in `macro_rules!`).
        #[inline(always)]
        fn imp<T: $crate::Element>($($a: $at),*) -> $r $body
        struct P;
        impl $crate::element::PerType for P {
            type Fn<T: $crate::Element> = fn($($at),*) -> $r;
            // Never inlined into a dependent crate: there it would name (and so
            // instantiate) `imp::<f32>` instead of calling this crate's.
            #[inline(never)]
            fn for_f32() -> Self::Fn<f32> {
                imp::<f32>
            }
            // `f64` (gradient checks, numerics) is instantiated where it is
            // used, as any generic code: compiling every entry point for it
            // here would double this crate's own build for the rarer type.
            #[inline]
            fn for_f64() -> Self::Fn<f64> {
                imp::<f64>
            }
        }
        (<T as $crate::Element>::per_type::<P>())($($v),*)
    }};
}
pub(crate) use mono;

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
    ($t:ty, $name:literal, $floats:ident, $per_type:ident, $erf:path, $exp:expr, $tanh:expr, $erf_k:expr) => {
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

            #[inline(always)]
            fn per_type<P: PerType>() -> P::Fn<Self> {
                P::$per_type()
            }
        }
    };
}

impl_element!(
    f32,
    "f32",
    F32,
    for_f32,
    libm::erff,
    crate::kernels::approx::exp_f32,
    crate::kernels::approx::tanh_f32,
    crate::kernels::approx::erf_f32
);
impl_element!(
    f64,
    "f64",
    F64,
    for_f64,
    libm::erf,
    f64::exp,
    f64::tanh,
    libm::erf
);

/// Shorthand for a constant of the element type.
#[inline(always)]
pub(crate) fn c<T: Element>(v: f64) -> T {
    T::from_f64_lossy(v)
}
