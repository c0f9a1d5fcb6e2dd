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

/// Runs `f`, a kernel's loop, compiled for AVX2 when the CPU has it (twice the
/// lanes of the SSE2 baseline the crate is built for). Only the vector width
/// changes: without FMA contraction (Rust never contracts `a·b + c`), every
/// element's arithmetic, and so every result, is the same on both paths. For
/// compute-bound loops (transcendentals, square roots and divisions); `f` and
/// what it calls must be `#[inline(always)]` to be compiled into it.
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
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
