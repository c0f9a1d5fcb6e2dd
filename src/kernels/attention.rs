//! The loops of fused attention (`ops::attention`): per batch·head index, the
//! GEMMs of the scores and of `P·V` in causal blocks of query rows, the
//! masked, stable softmax of a row of scores, the dropout mask, the five
//! GEMMs of the backward rule, and when the batch·head indices go to the
//! thread pool. The op checks the shapes, finds each index's matrices and
//! records the graph; it runs no loops itself.

use std::mem::MaybeUninit;

use rand::{Rng, RngExt};
use rayon::prelude::*;

use super::gemm::{matmul as gemm, MatRef};
use super::parallel::{use_pool, GEMM_BATCH_WORK};
use super::reduce::{dot, sum_slice};
use crate::element::{c, Element};

/// The sizes and options of one attention call: `Tq` queries and `Tk` keys,
/// `d` columns of q and k, `dv` of v, `causal` (key `j > i` masked for query
/// `i`) and the scale of the scores.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims<T> {
    pub(crate) tq: usize,
    pub(crate) tk: usize,
    pub(crate) d: usize,
    pub(crate) dv: usize,
    pub(crate) causal: bool,
    pub(crate) scale: T,
}

/// The dropout mask of the attention weights: one bit per weight (set = kept),
/// and the factor of the kept weights, `1/(1 − p)` (0 when `p` is 1).
pub(crate) struct DropMask<T> {
    bits: Vec<u64>,
    len: usize,
    factor: T,
}

impl<T: Element> DropMask<T> {
    /// Draws the mask of `len` weights from `rng`: one uniform `f64` per weight,
    /// in order, the weight dropped when it is below `p` (as the composite form
    /// draws it, so that both give the same masks from the same seed).
    pub(crate) fn draw<R: Rng + ?Sized>(len: usize, p: f64, rng: &mut R) -> Self {
        let mut bits = vec![0u64; len.div_ceil(64)];
        for i in 0..len {
            if rng.random::<f64>() >= p {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        let factor = if p == 1.0 {
            T::zero()
        } else {
            c(1.0 / (1.0 - p))
        };
        DropMask { bits, len, factor }
    }

    /// The number of weights the mask covers.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The factor weight `i` is multiplied by: `1/(1 − p)` if kept, else 0.
    #[inline(always)]
    pub(crate) fn at(&self, i: usize) -> T {
        if self.bits[i / 64] >> (i % 64) & 1 == 1 {
            self.factor
        } else {
            T::zero()
        }
    }

    /// `p ⊙ mask` for the weights `p` that start at index `base`, into `out`.
    #[inline]
    fn apply(&self, base: usize, p: &[T], out: &mut [T]) {
        for (j, (o, &w)) in out.iter_mut().zip(p).enumerate() {
            *o = w * self.at(base + j);
        }
    }
}

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
    for x in live.iter_mut() {
        *x = (*x - m).exp_k();
    }
    let inv = T::one() / sum_slice(live);
    for x in live.iter_mut() {
        *x *= inv;
    }
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
    for (x, &w) in dp.iter_mut().zip(p) {
        *x = w * (*x - s) * scale;
    }
}

/// The forward pass, per batch·head index `l` (`offsets[l]`: where its q, k,
/// v and mask matrices start; the operands give their buffers and strides,
/// their own offsets are not used): the scores `scale·q·kᵀ` of each block of query
/// rows against the keys it may see, their masked, stable softmax into
/// `weights` (`[nb, Tq, Tk]`, zeros where masked), and `P_d·V` into `out`,
/// with `P_d` the weights times the dropout factors. `out` is empty with room
/// for `nb·Tq·dv` elements and holds them on return.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<T: Element>(
    dims: &Dims<T>,
    [q, k, v]: [MatRef<'_, T>; 3],
    mask: Option<MatRef<'_, T>>,
    offsets: &[[usize; 4]],
    drop: Option<&DropMask<T>>,
    weights: &mut [T],
    out: &mut Vec<T>,
) {
    let Dims {
        tq,
        tk,
        d,
        dv,
        causal,
        scale,
    } = *dims;
    let nb = offsets.len();
    let len = nb * tq * dv;
    assert!(
        weights.len() == nb * tq * tk && out.is_empty() && out.capacity() >= len,
        "internal error: attention buffers of the wrong size"
    );
    let step = row_block(causal, tq);
    let one = |l: usize, p: &mut [T], o: &mut [MaybeUninit<T>], scratch: &mut Vec<T>, serial| {
        let [oq, ok, ov, om] = offsets[l];
        // the scores of each block of query rows, against the keys it may see
        // (all of them unless causal), then its weights
        for i0 in (0..tq).step_by(step) {
            let (i1, lim) = row_block_end(i0, step, causal, tq, tk);
            let rows = i1 - i0;
            let qm = MatRef {
                offset: oq + i0 * q.rs,
                ..q
            };
            let kt = MatRef { offset: ok, ..k }.t();
            let block = &mut p[i0 * tk..i1 * tk];
            if lim == tk {
                gemm(rows, d, tk, qm, kt, as_out(block), serial);
            } else {
                scratch.resize(rows * lim, T::zero());
                gemm(rows, d, lim, qm, kt, as_out(&mut scratch[..]), serial);
                copy_row_prefixes(block, tk, &scratch[..], lim);
            }
            // the rows' exponentials and sums compiled for the widest vectors the CPU has
            super::wide(
                #[inline(always)]
                || {
                    for (r, row) in block.chunks_exact_mut(tk).enumerate() {
                        let i = i0 + r;
                        let limit = if causal { (i + 1).min(lim) } else { lim };
                        match mask {
                            Some(m) => {
                                let base = om + i * m.rs;
                                softmax_row(row, scale, limit, |j| {
                                    m.data[base + j * m.cs] != T::zero()
                                });
                            }
                            None => softmax_row(row, scale, limit, |_| false),
                        }
                    }
                },
            );
        }
        let pd: &[T] = match drop {
            Some(dm) => {
                scratch.resize(tq * tk, T::zero());
                dm.apply(l * tq * tk, p, scratch);
                scratch
            }
            None => p,
        };
        // O = P_d·V, each block of rows over the keys it sees
        for i0 in (0..tq).step_by(step) {
            let (i1, lim) = row_block_end(i0, step, causal, tq, tk);
            let a = MatRef {
                offset: i0 * tk,
                ..dense(pd, tk, false)
            };
            gemm(
                i1 - i0,
                lim,
                dv,
                a,
                MatRef { offset: ov, ..v },
                &mut o[i0 * dv..i1 * dv],
                serial,
            );
        }
    };
    let spare = &mut out.spare_capacity_mut()[..len];
    if heads_in_parallel(nb, tq, tk, d + dv) {
        weights
            .par_chunks_mut(tq * tk)
            .zip(spare.par_chunks_mut(tq * dv))
            .enumerate()
            .for_each_init(Vec::new, |s, (l, (p, o))| one(l, p, o, s, true));
    } else {
        let mut s = Vec::new();
        for (l, (p, o)) in weights
            .chunks_mut(tq * tk)
            .zip(spare.chunks_mut(tq * dv))
            .enumerate()
        {
            one(l, p, o, &mut s, false);
        }
    }
    // SAFETY: each index's GEMMs wrote its `tq × dv` block of `out` (the causal
    // blocks cover every row), and the blocks cover `out[..len]` exactly.
    unsafe { out.set_len(len) };
}

/// The gradients one batch·head index writes (each when wanted).
type GradBlocks<'a, T> = (
    usize,
    Option<&'a mut [MaybeUninit<T>]>,
    Option<&'a mut [MaybeUninit<T>]>,
    Option<&'a mut [MaybeUninit<T>]>,
);

/// The backward pass, per batch·head index `l` (`offsets[l]`: where its q, k
/// and v matrices start; the operands' own offsets are not used), with
/// `P_d = P ⊙ keep/(1 − p)`: `dV = P_dᵀ·dO`,
/// `dP = (dO·Vᵀ) ⊙ keep/(1 − p)`, `dS = scale · P ⊙ (dP − rowsum(dP ⊙ P))`,
/// `dQ = dS·K`, `dK = dSᵀ·Q`, each GEMM over the causal blocks that are not
/// masked out. `g` is `dO` (contiguous, `[nb, Tq, dv]`), `weights` the `P`
/// of the forward pass. Each gradient in `grads` (q's, k's, v's), when given,
/// is empty with room for `nb` matrices of its input's size and holds them on
/// return.
pub(crate) fn backward<T: Element>(
    dims: &Dims<T>,
    [q, k, v]: [MatRef<'_, T>; 3],
    offsets: &[[usize; 3]],
    g: &[T],
    weights: &[T],
    drop: Option<&DropMask<T>>,
    grads: [Option<&mut Vec<T>>; 3],
) {
    let Dims {
        tq,
        tk,
        d,
        dv,
        causal,
        scale,
    } = *dims;
    let nb = offsets.len();
    let sizes = [tq * d, tk * d, tk * dv];
    assert!(
        grads.iter().zip(sizes).all(|(b, size)| b
            .as_ref()
            .is_none_or(|b| b.is_empty() && b.capacity() >= nb * size)),
        "internal error: attention gradient buffers of the wrong size"
    );
    let step = row_block(causal, tq.max(tk));
    // the first query that sees key `j0`
    let first_query = |j0: usize| if causal { j0.min(tq) } else { 0 };
    let one = |(l, gq, gk, gv): GradBlocks<'_, T>, scratch: &mut Vec<T>, serial| {
        let [oq, ok, ov] = offsets[l];
        let base = l * tq * tk;
        let p = &weights[base..base + tq * tk];
        // dS (or P_d first), then a block of scores
        let tmp_len = if causal { step.min(tq) * tk } else { 0 };
        scratch.resize(tq * tk + tmp_len, T::zero());
        let (ds, tmp) = scratch.split_at_mut(tq * tk);
        let gm = |i0: usize| MatRef {
            data: g,
            offset: (l * tq + i0) * dv,
            rs: dv,
            cs: 1,
        };
        if let Some(gv) = gv {
            // dV = P_dᵀ·dO, per block of keys over the queries that see them
            let pd: &[T] = match drop {
                Some(dm) => {
                    dm.apply(base, p, ds);
                    ds
                }
                None => p,
            };
            for j0 in (0..tk).step_by(step) {
                let (j1, i0) = ((j0 + step).min(tk), first_query(j0));
                let a = MatRef {
                    offset: i0 * tk + j0,
                    ..dense(pd, tk, true)
                };
                gemm(
                    j1 - j0,
                    tq - i0,
                    dv,
                    a,
                    gm(i0),
                    &mut gv[j0 * dv..j1 * dv],
                    serial,
                );
            }
        }
        if gq.is_none() && gk.is_none() {
            return;
        }
        let vt = MatRef { offset: ov, ..v }.t();
        let km = MatRef { offset: ok, ..k };
        let mut gq = gq;
        for i0 in (0..tq).step_by(step) {
            let (i1, lim) = row_block_end(i0, step, causal, tq, tk);
            let rows = i1 - i0;
            // dP_d = dO·Vᵀ for these rows, then dS in place
            let block = &mut ds[i0 * tk..i1 * tk];
            if lim == tk {
                gemm(rows, dv, tk, gm(i0), vt, as_out(block), serial);
            } else {
                let tmp = &mut tmp[..rows * lim];
                gemm(rows, dv, lim, gm(i0), vt, as_out(tmp), serial);
                copy_row_prefixes(block, tk, tmp, lim);
            }
            let rows_p = p[i0 * tk..i1 * tk].chunks_exact(tk);
            super::wide(
                #[inline(always)]
                || {
                    let rows = block.chunks_exact_mut(tk).zip(rows_p).enumerate();
                    for (r, (row, p)) in rows {
                        let (live, dead) = row.split_at_mut(lim);
                        dead.fill(T::zero());
                        if let Some(dm) = drop {
                            let at = base + (i0 + r) * tk;
                            live.iter_mut()
                                .enumerate()
                                .for_each(|(j, x)| *x *= dm.at(at + j));
                        }
                        softmax_row_backward(live, &p[..lim], scale);
                    }
                },
            );
            if let Some(gq) = gq.as_deref_mut() {
                // dQ = dS·K over the keys these rows see
                let a = MatRef {
                    offset: i0 * tk,
                    ..dense(ds, tk, false)
                };
                gemm(rows, lim, d, a, km, &mut gq[i0 * d..i1 * d], serial);
            }
        }
        if let Some(gk) = gk {
            // dK = dSᵀ·Q, per block of keys over the queries that see them
            for j0 in (0..tk).step_by(step) {
                let (j1, i0) = ((j0 + step).min(tk), first_query(j0));
                let a = MatRef {
                    offset: i0 * tk + j0,
                    ..dense(ds, tk, true)
                };
                let qm = MatRef {
                    offset: oq + i0 * q.rs,
                    ..q
                };
                gemm(j1 - j0, tq - i0, d, a, qm, &mut gk[j0 * d..j1 * d], serial);
            }
        }
    };
    let [mut bq, mut bk, mut bv] = grads;
    {
        let mut blocks = [bq.as_deref_mut(), bk.as_deref_mut(), bv.as_deref_mut()]
            .into_iter()
            .zip(sizes)
            .map(|(b, size)| b.map(|b| b.spare_capacity_mut()[..nb * size].chunks_mut(size)));
        let [mut cq, mut ck, mut cv] = std::array::from_fn(|_| blocks.next().flatten());
        let tasks: Vec<GradBlocks<'_, T>> = (0..nb)
            .map(|l| {
                (
                    l,
                    cq.as_mut().and_then(Iterator::next),
                    ck.as_mut().and_then(Iterator::next),
                    cv.as_mut().and_then(Iterator::next),
                )
            })
            .collect();
        if heads_in_parallel(nb, tq, tk, d + dv) {
            tasks
                .into_par_iter()
                .for_each_init(Vec::new, |s, t| one(t, s, true));
        } else {
            let mut s = Vec::new();
            tasks.into_iter().for_each(|t| one(t, &mut s, false));
        }
    }
    for (b, size) in [bq, bk, bv].into_iter().zip(sizes) {
        if let Some(b) = b {
            // SAFETY: every index's GEMMs wrote its block of `size` elements (the
            // causal blocks cover every row), and the blocks cover
            // `b[..nb * size]` exactly.
            unsafe { b.set_len(nb * size) };
        }
    }
}
