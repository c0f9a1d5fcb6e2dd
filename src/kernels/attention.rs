//! The row loops of fused attention (`ops::attention`): the masked, stable
//! softmax of a row of scores and its backward, the causal blocks of query
//! rows, and when the batch·head products go to the thread pool. The op
//! arranges the GEMMs around them.

use std::mem::MaybeUninit;

use super::gemm::MatRef;
use super::parallel::{use_pool, GEMM_BATCH_WORK};
use super::reduce::{dot, sum_slice};
use crate::element::Element;

/// Whether the `heads` products of an attention call (each `tq × tk` scores
/// over `width` = `d + dv` columns of q·kᵀ and p·v) run one per task on the
/// thread pool: from [`GEMM_BATCH_WORK`] in all, and more than one head.
#[inline]
pub(crate) fn heads_in_parallel(heads: usize, tq: usize, tk: usize, width: usize) -> bool {
    heads > 1 && use_pool(heads * tq * tk * width, GEMM_BATCH_WORK)
}

/// `&mut [T]` as an output slice of the GEMM.
#[inline]
pub(crate) fn as_out<T: Element>(s: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and the only writer of the
    // returned slice is the GEMM, which writes initialised values (`T` is `Copy`,
    // so nothing is dropped either).
    unsafe { &mut *(s as *mut [T] as *mut [MaybeUninit<T>]) }
}

/// A dense row-major `rows × cols` matrix in `data`, or its transpose.
#[inline]
pub(crate) fn dense<T>(data: &[T], cols: usize, transposed: bool) -> MatRef<'_, T> {
    let (rs, cs) = if transposed { (1, cols) } else { (cols, 1) };
    MatRef {
        data,
        offset: 0,
        rs,
        cs,
    }
}

/// Copies the rows of a `rows × lim` block (`src`) into the first `lim`
/// columns of the rows of `dst`, whose rows are `cols` long.
#[inline]
pub(crate) fn copy_row_prefixes<T: Copy>(dst: &mut [T], cols: usize, src: &[T], lim: usize) {
    for (d, s) in dst.chunks_exact_mut(cols).zip(src.chunks_exact(lim)) {
        d[..lim].copy_from_slice(s);
    }
}

/// The largest element that is not NaN (`-inf` when there is none), in eight
/// lanes so that it vectorises. A NaN in a row still gives a row of NaN: it
/// goes through the exponential into the sum.
#[inline(always)]
pub(crate) fn max_ignoring_nan<T: Element>(row: &[T]) -> T {
    let mut lanes = [T::neg_infinity(); 8];
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = if v > *l { v } else { *l };
        }
    }
    for (l, &v) in lanes.iter_mut().zip(rest) {
        *l = if v > *l { v } else { *l };
    }
    lanes
        .into_iter()
        .fold(T::neg_infinity(), |m, v| if v > m { v } else { m })
}

/// Masks, scales and normalises one row of scores in place: `row[j]·scale` for
/// the keys `j < limit` that `masked` lets through, `exp(x − max)/Σ` over
/// them, exactly 0 elsewhere, and a row of zeros when every key is masked.
#[inline(always)]
pub(crate) fn softmax_row<T: Element>(
    row: &mut [T],
    scale: T,
    limit: usize,
    masked: impl Fn(usize) -> bool,
) {
    let (live, dead) = row.split_at_mut(limit);
    dead.fill(T::zero());
    for (j, x) in live.iter_mut().enumerate() {
        *x = if masked(j) {
            T::neg_infinity()
        } else {
            *x * scale
        };
    }
    let m = max_ignoring_nan(live);
    if m == T::neg_infinity() {
        // every key masked (or NaN scores, which stay NaN)
        let fill = if live.iter().any(|x| x.is_nan()) {
            T::nan()
        } else {
            T::zero()
        };
        live.fill(fill);
        return;
    }
    live.iter_mut().for_each(|x| *x = (*x - m).exp_k());
    let inv = T::one() / sum_slice(live);
    live.iter_mut().for_each(|x| *x *= inv);
}

/// Rows per block of queries (and keys) when `causal`: each block of query rows
/// is multiplied with only the keys it may see, saving about half of the work
/// on long rows; without `causal`, one block of all `n` rows.
const CAUSAL_BLOCK: usize = 32;

/// The block size for `n` rows.
#[inline]
pub(crate) fn row_block(causal: bool, n: usize) -> usize {
    if causal {
        CAUSAL_BLOCK
    } else {
        n.max(1)
    }
}

/// The end of the block of query rows starting at `i0`, and the number of keys
/// its rows may see (`tk`, or up to the last row's diagonal when `causal`).
#[inline]
pub(crate) fn row_block_end(
    i0: usize,
    step: usize,
    causal: bool,
    tq: usize,
    tk: usize,
) -> (usize, usize) {
    let i1 = (i0 + step).min(tq);
    (i1, if causal { i1.min(tk) } else { tk })
}

/// The backward of [`softmax_row`] over the keys a row saw: with `p` the row's
/// weights and `dp` the gradient of the weights (in place), `dp ← scale · p ⊙
/// (dp − Σ dp ⊙ p)`.
#[inline(always)]
pub(crate) fn softmax_row_backward<T: Element>(dp: &mut [T], p: &[T], scale: T) {
    let s = dot(dp, p);
    dp.iter_mut()
        .zip(p)
        .for_each(|(x, &w)| *x = w * (*x - s) * scale);
}
