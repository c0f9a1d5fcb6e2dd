//! Loops over slices: the numeric work behind the ops, with no knowledge of autograd.
//!
//! Each kernel takes a buffer and a [`Layout`](crate::layout::Layout) and has a fast
//! path for contiguous rows (plain slice loops that LLVM vectorises) and a general
//! strided path. Ops in `crate::ops` call these; they contain no loops themselves.

pub(crate) mod adam;
pub(crate) mod approx;
pub(crate) mod attention;
pub(crate) mod elementwise;
pub(crate) mod gather;
pub(crate) mod gemm;
pub(crate) mod norm;
pub(crate) mod parallel;
pub(crate) mod reduce;
#[cfg(target_arch = "x86_64")]
pub(crate) mod sgemm;

/// Runs `f`, a kernel's loop, compiled for the widest vectors the CPU has:
/// AVX-512F (four times the lanes of the SSE2 baseline the crate is built
/// for), else AVX2 (twice). Only the vector width changes: without FMA
/// contraction (Rust never contracts `a·b + c`) and with sums kept in
/// explicit lanes, every element's arithmetic, and so every result, is the
/// same on every path (`every_width_gives_the_same_bits` below). For
/// compute-bound loops (transcendentals, square roots and divisions); `f` and
/// what it calls must be `#[inline(always)]` to be compiled into it, and its
/// loops `for` loops rather than `for_each`: `for_each` is the iterator's
/// `fold`, a function LLVM may keep out of line, where it is compiled for
/// the baseline (GELU's backward pass ran at SSE2 width that way).
///
/// On an Intel Xeon (Sapphire Rapids class) the 512-bit copies ran softmax
/// over `[16, 4, 64, 64]` 1.39× and tanh-GELU over `[16, 64, 512]` 1.65×
/// faster than the AVX2 ones on one thread (journal, "Late afternoon
/// (2026-12-03)").
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: the widest width is one the CPU runs.
    unsafe { at_width(Width::widest(), f) }
}

/// The vector widths a kernel's loop is compiled for ([`wide`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Width {
    /// The baseline target (SSE2 on x86-64).
    Base,
    /// AVX2 (256-bit).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512F (512-bit).
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Width {
    /// The widest this CPU runs.
    #[inline(always)]
    fn widest() -> Width {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Width::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Width::Avx2;
            }
        }
        Width::Base
    }

    /// Every width this CPU runs, the baseline first.
    #[cfg(test)]
    fn here() -> Vec<Width> {
        #[allow(unused_mut)]
        let mut widths = vec![Width::Base];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                widths.push(Width::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                widths.push(Width::Avx512);
            }
        }
        widths
    }
}

/// Runs `f` compiled for `width`.
///
/// # Safety
/// The CPU runs `width`'s instructions: it is [`Width::widest`] or one of
/// `Width::here`'s.
#[inline(always)]
unsafe fn at_width<R>(width: Width, f: impl FnOnce() -> R) -> R {
    match width {
        Width::Base => f(),
        // SAFETY: the CPU runs `width` (the caller's contract).
        #[cfg(target_arch = "x86_64")]
        Width::Avx2 => unsafe { with_avx2(f) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Width::Avx512 => unsafe { with_avx512(f) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// The slots of `s` as the values they hold.
///
/// # Safety
/// Every slot of `s` has been written.
#[inline(always)]
pub(crate) unsafe fn assume_init<T>(s: &mut [std::mem::MaybeUninit<T>]) -> &mut [T] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and the caller
    // guarantees that every slot holds a value.
    unsafe { &mut *(s as *mut [std::mem::MaybeUninit<T>] as *mut [T]) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::Element;

    /// `f` of every element of `x`, in a loop like the kernels' (inlined
    /// into the caller's widened region, so it is compiled at its width).
    #[inline(always)]
    fn each<T: Element>(x: &[T], f: impl Fn(T) -> T) -> Vec<T> {
        let mut out = vec![T::zero(); x.len()];
        for (o, &v) in out.iter_mut().zip(x) {
            *o = f(v);
        }
        out
    }

    /// What the widened loops compute, element by element and summed: the
    /// exponentials, `tanh` and `erf`, a tanh-GELU, a square root and a
    /// division, a softmax row's exponentials and their pairwise sum, a row
    /// maximum and a dot product. Inlined into [`at_width`]'s region, like a
    /// kernel's loop (see [`wide`]).
    #[inline(always)]
    fn kernels_on<T: Element>(x: &[T], finite: &[T]) -> Vec<Vec<T>> {
        let (half, one) = (T::from(0.5).unwrap(), T::one());
        let k = T::from(0.044_715).unwrap();
        let s = T::from(0.797_884_560_802_865_4).unwrap();
        let m = reduce::row_max(finite);
        let mut exps = vec![std::mem::MaybeUninit::uninit(); finite.len()];
        let (sum, exps) = reduce::map_sum_into(finite, &mut exps, |v| (v - m).exp_k());
        let sums = vec![sum, m, reduce::dot(finite, exps), reduce::row_max(x)];
        vec![
            each(x, |v| v.exp_k()),
            each(x, |v| v.tanh_k()),
            each(x, |v| v.erf_k()),
            each(x, |v| half * v * (one + (s * (v + k * v * v * v)).tanh_k())),
            each(x, |v| v.abs().sqrt() / (v * v + one)),
            exps.to_vec(),
            sums,
        ]
    }

    /// Values that take every branch-free path: tiny, subnormal and huge
    /// magnitudes, both signs, zeros, infinities and NaN, and a spread of
    /// ordinary values (lengths that leave remainders for every width).
    fn inputs<T: Element>() -> Vec<T> {
        let mut v: Vec<f64> = vec![0.0, -0.0, 1e-40, -1e-40, 1e-30, 80.0, 88.9, 100.0, -103.0];
        v.extend([-200.0, 700.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN]);
        v.extend((0..1021).map(|i| ((i * 7919) % 2003) as f64 / 50.0 - 20.0));
        v.into_iter().map(|x| T::from(x).unwrap()).collect()
    }

    fn same_at_every_width<T: Element>() {
        let x = inputs::<T>();
        let finite: Vec<T> = x.iter().copied().filter(|v| v.is_finite()).collect();
        let bits = |results: Vec<Vec<T>>| -> Vec<Vec<u64>> {
            let bits = |v: &Vec<T>| v.iter().map(|r| r.to_f64().unwrap().to_bits()).collect();
            results.iter().map(bits).collect()
        };
        // SAFETY: the baseline runs everywhere.
        let base = bits(unsafe { at_width(Width::Base, || kernels_on(&x, &finite)) });
        for w in Width::here() {
            // SAFETY: `here` lists only the widths this CPU runs.
            let got = bits(unsafe { at_width(w, || kernels_on(&x, &finite)) });
            for (kernel, (g, b)) in got.iter().zip(&base).enumerate() {
                assert_eq!(g.len(), b.len());
                for (i, (g, b)) in g.iter().zip(b).enumerate() {
                    assert_eq!(
                        g, b,
                        "{w:?}: kernel {kernel}, element {i} differs from the baseline"
                    );
                }
            }
        }
    }

    #[test]
    fn every_width_gives_the_same_bits() {
        same_at_every_width::<f32>();
        same_at_every_width::<f64>();
    }
}
