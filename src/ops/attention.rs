//! Scaled dot-product attention as one op: per batch·head index, the scores
//! `scale·Q·Kᵀ` from the GEMM, a masked, stable softmax in place, an optional
//! dropout mask, and `P·V`; the backward rule runs the five GEMMs of the
//! gradient on the saved weights. Public as
//! `nn::functional::scaled_dot_product_attention` (checks and the composite
//! reference in `src/nn/sdpa.rs`).
//!
//! Saved for the backward pass: the weights `P` (`[.., Tq, Tk]`, before
//! dropout) and, with dropout, its keep mask as one bit per weight. The mask is
//! a constant: the op keeps the user's mask as a 0/1 tensor of its own
//! (unbroadcast) shape and the `causal` flag, from which the recorded form
//! rebuilds the combined mask.

use std::mem::MaybeUninit;

use rand::{Rng, RngExt};
use rayon::prelude::*;

use super::ReadMany;
use crate::autograd::{grads, is_grad_enabled, BackwardCx, InputGrads, Op, Saves};
use crate::element::{c, Element};
use crate::kernels::gemm::{matmul as gemm, MatRef};
use crate::kernels::parallel::GEMM_BATCH_WORK;
use crate::kernels::reduce::{dot, sum_slice};
use crate::layout::for_each_row;
use crate::pool;
use crate::tensor::{Seen, Tensor};

/// The checked shapes of one attention call.
#[derive(Clone, Debug)]
pub(crate) struct SdpaShapes {
    /// The leading dimensions (`[batch, heads]`), the same for q, k and v.
    pub(crate) lead: Vec<usize>,
    pub(crate) tq: usize,
    pub(crate) tk: usize,
    pub(crate) d: usize,
    pub(crate) dv: usize,
}

impl SdpaShapes {
    /// The shape of the scores and weights, `[lead.., Tq, Tk]`.
    pub(crate) fn scores(&self) -> Vec<usize> {
        let mut s = self.lead.clone();
        s.extend([self.tq, self.tk]);
        s
    }
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

    /// The factor weight `i` is multiplied by: `1/(1 − p)` if kept, else 0.
    #[inline(always)]
    fn at(&self, i: usize) -> T {
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

    /// The factors as a tensor of `shape` (its element count is the mask's length).
    pub(crate) fn to_tensor(&self, shape: &[usize]) -> Tensor<T> {
        debug_assert_eq!(crate::shape::numel(shape), self.len);
        Tensor::from_data((0..self.len).map(|i| self.at(i)).collect(), shape)
    }
}

/// The mask of the attention weights `[.., Tq, Tk]` (1 = masked out), from the
/// user's 0/1 `mask` (any shape that broadcasts) and `causal` (`j > i`), or
/// `None` when nothing is masked.
pub(crate) fn combined_mask<T: Element>(
    tq: usize,
    tk: usize,
    mask01: Option<&Tensor<T>>,
    causal: bool,
) -> Option<Tensor<T>> {
    let causal = causal.then(|| Tensor::<T>::ones(&[tq, tk]).triu(1));
    match (mask01, causal) {
        (None, None) => None,
        (Some(m), None) => Some(m.clone()),
        (None, Some(m)) => Some(m),
        (Some(a), Some(b)) => Some(a.maximum(&b)),
    }
}

/// `softmax(q·kᵀ·scale)` over the keys not `masked` (`[.., Tq, Tk]`, 1 = masked
/// out) as recorded tensor ops; a row whose keys are all masked gets zeros.
fn recorded_weights<T: Element>(
    q: &Tensor<T>,
    k: &Tensor<T>,
    masked: Option<&Tensor<T>>,
    scale: T,
) -> Tensor<T> {
    let scores = q.matmul(&k.transpose(-2, -1)).mul_scalar(scale);
    match masked {
        None => scores.softmax(-1),
        Some(m) => {
            // a row whose keys are all masked: unmask it for the softmax (no
            // -inf row, so no NaN), then zero it
            let full = m.min_axis(-1, true);
            let m = m.mul(&full.rsub_scalar(T::one()));
            let w = scores.masked_fill(&m, T::neg_infinity()).softmax(-1);
            if full.to_vec().iter().any(|&f| f != T::zero()) {
                w.mul(&full.rsub_scalar(T::one()))
            } else {
                w
            }
        }
    }
}

/// The whole attention as recorded tensor ops: [`recorded_weights`], times the
/// dropout factors `drop` (`[.., Tq, Tk]`, 0 or `1/(1 − p)`) when given, times
/// `v`. The reference the fused op is tested against, and the form used for
/// empty shapes.
pub(crate) fn recorded_attention<T: Element>(
    q: &Tensor<T>,
    k: &Tensor<T>,
    v: &Tensor<T>,
    masked: Option<&Tensor<T>>,
    scale: T,
    drop: Option<&Tensor<T>>,
) -> Tensor<T> {
    let w = recorded_weights(q, k, masked, scale);
    match drop {
        Some(d) => w.mul(d).matmul(v),
        None => w.matmul(v),
    }
}

/// The recorded attention op (inputs `q`, `k`, `v`).
struct Attention<T: Element> {
    /// The weights `P` after the softmax, before dropout: `[lead, Tq, Tk]`.
    weights: Vec<T>,
    drop: Option<DropMask<T>>,
    /// The user's mask as 0/1 (1 = masked out), in its own shape.
    mask: Option<Tensor<T>>,
    causal: bool,
    scale: T,
    shapes: SdpaShapes,
}

impl<T: Element> Drop for Attention<T> {
    fn drop(&mut self) {
        pool::give(std::mem::take(&mut self.weights));
    }
}

/// `&mut [T]` as an output slice of the GEMM.
#[inline]
fn as_out<T: Element>(s: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and the only writer of the
    // returned slice is the GEMM, which writes initialised values (`T` is `Copy`,
    // so nothing is dropped either).
    unsafe { &mut *(s as *mut [T] as *mut [MaybeUninit<T>]) }
}

/// A dense row-major `rows × cols` matrix in `data`, or its transpose.
#[inline]
fn dense<T>(data: &[T], cols: usize, transposed: bool) -> MatRef<'_, T> {
    let (rs, cs) = if transposed { (1, cols) } else { (cols, 1) };
    MatRef {
        data,
        offset: 0,
        rs,
        cs,
    }
}

/// The offsets of each leading index's matrix in `K` views of the same leading
/// shape (in row-major order of `lead`).
fn lead_offsets<const K: usize>(
    lead: &[usize],
    strides: [&[usize]; K],
    base: [usize; K],
) -> Vec<[usize; K]> {
    let mut offsets = Vec::with_capacity(lead.iter().product());
    for_each_row(lead, strides, base, |o, s, len| {
        offsets.extend((0..len).map(|i| std::array::from_fn(|x| o[x] + i * s[x])));
    });
    offsets
}

/// The largest element that is not NaN (`-inf` when there is none), in eight
/// lanes so that it vectorises. A NaN in a row still gives a row of NaN: it
/// goes through the exponential into the sum.
#[inline]
fn max_ignoring_nan<T: Element>(row: &[T]) -> T {
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
#[inline]
fn softmax_row<T: Element>(row: &mut [T], scale: T, limit: usize, masked: impl Fn(usize) -> bool) {
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
fn row_block(causal: bool, n: usize) -> usize {
    if causal {
        CAUSAL_BLOCK
    } else {
        n.max(1)
    }
}

/// The end of the block of query rows starting at `i0`, and the number of keys
/// its rows may see (`tk`, or up to the last row's diagonal when `causal`).
#[inline]
fn row_block_end(i0: usize, step: usize, causal: bool, tq: usize, tk: usize) -> (usize, usize) {
    let i1 = (i0 + step).min(tq);
    (i1, if causal { i1.min(tk) } else { tk })
}

/// Per leading index: the offsets of `q`, `k`, `v` and (when given) the mask.
type Offsets = Vec<[usize; 4]>;

/// Scaled dot-product attention as one op: `q` `[.., Tq, D]`, `k` `[.., Tk, D]`,
/// `v` `[.., Tk, Dv]` (shapes checked by the caller, none of them empty), a
/// mask broadcasting to `[.., Tq, Tk]` (nonzero = masked out), `causal`
/// (`j > i` masked), and a dropout mask of the weights.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention<T: Element>(
    q: &Tensor<T>,
    k: &Tensor<T>,
    v: &Tensor<T>,
    shapes: &SdpaShapes,
    mask: Option<&Tensor<T>>,
    causal: bool,
    scale: T,
    drop: Option<DropMask<T>>,
) -> Tensor<T> {
    let SdpaShapes {
        ref lead,
        tq,
        tk,
        d,
        dv,
    } = *shapes;
    let nb: usize = lead.iter().product();
    debug_assert!(nb * tq * tk * d * dv > 0, "internal error: empty attention");
    let nl = lead.len();
    let n = nl + 2;
    let mask = mask.map(|m| m.detach().not_equal_scalar(T::zero()));
    let seen = Seen::note(&[q, k, v]);
    let mut weights = pool::filled(nb * tq * tk, T::zero());
    let len = nb * tq * dv;
    let mut out: Vec<T> = pool::take(len);
    {
        let r = ReadMany::new(&[q, k, v]);
        let (lq, lk, lv) = (q.layout(), k.layout(), v.layout());
        let scores = shapes.scores();
        let ml = mask.as_ref().map(|m| m.layout().broadcast_to(&scores));
        let mguard = mask.as_ref().map(|m| m.read());
        let no_strides = vec![0; nl];
        let offsets: Offsets = lead_offsets(
            lead,
            [
                &lq.strides[..nl],
                &lk.strides[..nl],
                &lv.strides[..nl],
                ml.as_ref().map_or(&no_strides[..], |l| &l.strides[..nl]),
            ],
            [
                lq.offset,
                lk.offset,
                lv.offset,
                ml.as_ref().map_or(0, |l| l.offset),
            ],
        );
        let (mrs, mcs) = ml
            .as_ref()
            .map_or((0, 0), |l| (l.strides[n - 2], l.strides[n - 1]));
        let drop = drop.as_ref();
        let (qrs, qcs) = (lq.strides[n - 2], lq.strides[n - 1]);
        let (krs, kcs) = (lk.strides[n - 2], lk.strides[n - 1]);
        let (vrs, vcs) = (lv.strides[n - 2], lv.strides[n - 1]);
        let step = row_block(causal, tq);
        let one =
            |l: usize, p: &mut [T], o: &mut [MaybeUninit<T>], scratch: &mut Vec<T>, serial| {
                let [oq, ok, ov, om] = offsets[l];
                // the scores of each block of query rows, against the keys it
                // may see (all of them unless causal), then its weights
                for i0 in (0..tq).step_by(step) {
                    let (i1, lim) = row_block_end(i0, step, causal, tq, tk);
                    let rows = i1 - i0;
                    let qm = MatRef {
                        data: r.get(0),
                        offset: oq + i0 * qrs,
                        rs: qrs,
                        cs: qcs,
                    };
                    // kᵀ: k's strides swapped
                    let kt = MatRef {
                        data: r.get(1),
                        offset: ok,
                        rs: kcs,
                        cs: krs,
                    };
                    let block = &mut p[i0 * tk..i1 * tk];
                    if lim == tk {
                        gemm(rows, d, tk, qm, kt, as_out(block), serial);
                    } else {
                        scratch.resize(rows * lim, T::zero());
                        gemm(rows, d, lim, qm, kt, as_out(&mut scratch[..]), serial);
                        for (dst, src) in block.chunks_exact_mut(tk).zip(scratch.chunks_exact(lim))
                        {
                            dst[..lim].copy_from_slice(src);
                        }
                    }
                    for (r, row) in block.chunks_exact_mut(tk).enumerate() {
                        let i = i0 + r;
                        let limit = if causal { (i + 1).min(lim) } else { lim };
                        match &mguard {
                            Some(m) => {
                                let base = om + i * mrs;
                                softmax_row(row, scale, limit, |j| m[base + j * mcs] != T::zero());
                            }
                            None => softmax_row(row, scale, limit, |_| false),
                        }
                    }
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
                    let vm = MatRef {
                        data: r.get(2),
                        offset: ov,
                        rs: vrs,
                        cs: vcs,
                    };
                    let a = MatRef {
                        offset: i0 * tk,
                        ..dense(pd, tk, false)
                    };
                    gemm(i1 - i0, lim, dv, a, vm, &mut o[i0 * dv..i1 * dv], serial);
                }
            };
        let spare = &mut out.spare_capacity_mut()[..len];
        if nb > 1 && nb * tq * tk * (d + dv) >= GEMM_BATCH_WORK {
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
    }
    // SAFETY: each leading index's GEMM wrote its `tq × dv` block of `out`,
    // and the blocks cover `out[..len]` exactly.
    unsafe { out.set_len(len) };
    let mut out_shape = lead.clone();
    out_shape.extend([tq, dv]);
    let record = is_grad_enabled() && [q, k, v].iter().any(|t| t.needs_grad());
    if !record {
        pool::give(weights);
        weights = Vec::new();
    }
    let op = Attention {
        weights,
        drop,
        mask,
        causal,
        scale,
        shapes: shapes.clone(),
    };
    Tensor::from_op_data(seen, out, &out_shape, op, &[q, k, v])
}

/// The gradients one leading index writes (each when wanted).
type GradBlocks<'a, T> = (
    usize,
    Option<&'a mut [MaybeUninit<T>]>,
    Option<&'a mut [MaybeUninit<T>]>,
    Option<&'a mut [MaybeUninit<T>]>,
);

impl<T: Element> Op<T> for Attention<T> {
    fn name(&self) -> &'static str {
        "scaled_dot_product_attention"
    }
    fn saves(&self) -> Saves {
        Saves::Inputs
    }
    /// Per leading index, with `P_d = P ⊙ keep/(1 − p)`: `dV = P_dᵀ·dO`,
    /// `dP = (dO·Vᵀ) ⊙ keep/(1 − p)`, `dS = scale · P ⊙ (dP − rowsum(dP ⊙ P))`,
    /// `dQ = dS·K`, `dK = dSᵀ·Q`.
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        if cx.create_graph {
            return self.backward_graph(cx, &g);
        }
        let (q, k, v) = (cx.input(0), cx.input(1), cx.input(2));
        let SdpaShapes {
            ref lead,
            tq,
            tk,
            d,
            dv,
        } = self.shapes;
        let scale = self.scale;
        let nb: usize = lead.iter().product();
        let nl = lead.len();
        let n = nl + 2;
        let (need_q, need_k, need_v) = (cx.needs(0), cx.needs(1), cx.needs(2));
        let sizes = [tq * d, tk * d, tk * dv];
        let mut bufs: [Option<Vec<T>>; 3] = [
            need_q.then(|| pool::take(nb * sizes[0])),
            need_k.then(|| pool::take(nb * sizes[1])),
            need_v.then(|| pool::take(nb * sizes[2])),
        ];
        {
            let r = ReadMany::new(&[q, k, v]);
            let (lq, lk, lv) = (q.layout(), k.layout(), v.layout());
            let offsets = lead_offsets(
                lead,
                [&lq.strides[..nl], &lk.strides[..nl], &lv.strides[..nl]],
                [lq.offset, lk.offset, lv.offset],
            );
            g.with_contiguous(|g| {
                let (qrs, qcs) = (lq.strides[n - 2], lq.strides[n - 1]);
                let (krs, kcs) = (lk.strides[n - 2], lk.strides[n - 1]);
                let (vrs, vcs) = (lv.strides[n - 2], lv.strides[n - 1]);
                let step = row_block(self.causal, tq.max(tk));
                let causal = self.causal;
                // the first query that sees key `j0`
                let first_query = |j0: usize| if causal { j0.min(tq) } else { 0 };
                let one = |(l, gq, gk, gv): GradBlocks<'_, T>, scratch: &mut Vec<T>, serial| {
                    let [oq, ok, ov] = offsets[l];
                    let base = l * tq * tk;
                    let p = &self.weights[base..base + tq * tk];
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
                        let pd: &[T] = match &self.drop {
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
                    let vt = MatRef {
                        data: r.get(2),
                        offset: ov,
                        rs: vcs,
                        cs: vrs,
                    };
                    let km = MatRef {
                        data: r.get(1),
                        offset: ok,
                        rs: krs,
                        cs: kcs,
                    };
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
                            for (dst, src) in block.chunks_exact_mut(tk).zip(tmp.chunks_exact(lim))
                            {
                                dst[..lim].copy_from_slice(src);
                            }
                        }
                        let rows_p = p[i0 * tk..i1 * tk].chunks_exact(tk);
                        for (r, (row, p)) in block.chunks_exact_mut(tk).zip(rows_p).enumerate() {
                            let (live, dead) = row.split_at_mut(lim);
                            dead.fill(T::zero());
                            if let Some(dm) = &self.drop {
                                let at = base + (i0 + r) * tk;
                                live.iter_mut()
                                    .enumerate()
                                    .for_each(|(j, x)| *x *= dm.at(at + j));
                            }
                            let p = &p[..lim];
                            let s = dot(live, p);
                            live.iter_mut()
                                .zip(p)
                                .for_each(|(x, &w)| *x = w * (*x - s) * scale);
                        }
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
                                data: r.get(0),
                                offset: oq + i0 * qrs,
                                rs: qrs,
                                cs: qcs,
                            };
                            gemm(j1 - j0, tq - i0, d, a, qm, &mut gk[j0 * d..j1 * d], serial);
                        }
                    }
                };
                let mut blocks = bufs.iter_mut().zip(sizes).map(|(b, size)| {
                    b.as_mut()
                        .map(|b| b.spare_capacity_mut()[..nb * size].chunks_mut(size))
                });
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
                if nb > 1 && nb * tq * tk * (d + dv) >= GEMM_BATCH_WORK {
                    tasks
                        .into_par_iter()
                        .for_each_init(Vec::new, |s, t| one(t, s, true));
                } else {
                    let mut s = Vec::new();
                    tasks.into_iter().for_each(|t| one(t, &mut s, false));
                }
            });
        }
        let [bq, bk, bv] = bufs;
        let finish = |b: Option<Vec<T>>, size: usize, shape: &[usize]| {
            b.map(|mut b| {
                // SAFETY: every leading index's GEMM wrote its block of `size`
                // elements, and the blocks cover `b[..nb * size]` exactly.
                unsafe { b.set_len(nb * size) };
                Tensor::from_data(b, shape)
            })
        };
        grads![
            finish(bq, sizes[0], q.shape()),
            finish(bk, sizes[1], k.shape()),
            finish(bv, sizes[2], v.shape()),
        ]
    }
}

impl<T: Element> Attention<T> {
    /// The same rule as recorded tensor ops, for `create_graph`: the weights
    /// recomputed from `q` and `k` (so that they carry the graph), the dropout
    /// and user masks as constants.
    fn backward_graph(&self, cx: &BackwardCx<'_, T>, g: &Tensor<T>) -> InputGrads<T> {
        let (q, k, v) = (cx.input(0), cx.input(1), cx.input(2));
        let masked = combined_mask(
            self.shapes.tq,
            self.shapes.tk,
            self.mask.as_ref(),
            self.causal,
        );
        let w = recorded_weights(q, k, masked.as_ref(), self.scale);
        let drop = self.drop.as_ref().map(|dm| dm.to_tensor(w.shape()));
        let wd = drop.as_ref().map_or_else(|| w.clone(), |dm| w.mul(dm));
        let gv = cx.needs(2).then(|| wd.transpose(-2, -1).matmul(g));
        let (mut gq, mut gk) = (None, None);
        if cx.needs(0) || cx.needs(1) {
            let dpd = g.matmul(&v.transpose(-2, -1));
            let dp = drop.as_ref().map_or(dpd.clone(), |dm| dpd.mul(dm));
            let ds = w
                .mul(&dp.sub(&dp.mul(&w).sum_axis(-1, true)))
                .mul_scalar(self.scale);
            gq = cx.needs(0).then(|| ds.matmul(k));
            gk = cx.needs(1).then(|| ds.transpose(-2, -1).matmul(q));
        }
        grads![gq, gk, gv]
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::{combined_mask, recorded_attention};
    use crate::nn::functional::{
        scaled_dot_product_attention as sdpa, scaled_dot_product_attention_with_rng as sdpa_rng,
    };
    use crate::ops::test_util::{assert_close, check, rand_leaf};
    use crate::Tensor;

    /// A 0/1 mask of `shape` with about a third of the entries set.
    fn mask01(shape: &[usize], seed: u64) -> Tensor<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = crate::shape::numel(shape);
        let v = (0..n)
            .map(|_| f64::from(rng.random::<f64>() < 0.35))
            .collect();
        Tensor::from_vec(v, shape).unwrap()
    }

    /// The composite form with the dropout masks drawn as the composite drew
    /// them (one `f64` per weight, dropped below `p`).
    #[allow(clippy::too_many_arguments)]
    fn composite(
        q: &Tensor<f64>,
        k: &Tensor<f64>,
        v: &Tensor<f64>,
        mask: Option<&Tensor<f64>>,
        causal: bool,
        p: f64,
        scale: Option<f64>,
        seed: u64,
    ) -> Tensor<f64> {
        let (sq, sk) = (q.shape(), k.shape());
        let n = sq.len();
        let (tq, tk, d) = (sq[n - 2], sk[n - 2], sq[n - 1]);
        let scale = scale.unwrap_or(1.0 / (d as f64).sqrt());
        let user = mask.map(|m| m.not_equal_scalar(0.0));
        let masked = combined_mask(tq, tk, user.as_ref(), causal);
        // the documented draw (one f64 per weight, row-major, dropped below
        // p), written out here rather than taken from DropMask
        let drop = (p > 0.0).then(|| {
            let mut scores = sq[..n - 2].to_vec();
            scores.extend([tq, tk]);
            let mut rng = StdRng::seed_from_u64(seed);
            let keep = if p == 1.0 { 0.0 } else { 1.0 / (1.0 - p) };
            let data = (0..crate::shape::numel(&scores))
                .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
                .collect();
            Tensor::from_vec(data, &scores).unwrap()
        });
        recorded_attention(q, k, v, masked.as_ref(), scale, drop.as_ref())
    }

    /// Fused and composite agree on the output and on all three gradients
    /// (under a random upstream gradient).
    #[track_caller]
    #[allow(clippy::too_many_arguments)]
    fn agree(
        q: &Tensor<f64>,
        k: &Tensor<f64>,
        v: &Tensor<f64>,
        mask: Option<&Tensor<f64>>,
        causal: bool,
        p: f64,
        scale: Option<f64>,
        tol: f64,
    ) {
        let seed = 99;
        let fused = sdpa_rng(
            q,
            k,
            v,
            mask,
            causal,
            p,
            scale,
            &mut StdRng::seed_from_u64(seed),
        );
        let reference = composite(q, k, v, mask, causal, p, scale, seed);
        let op = fused.grad_fn().map(|f| f.op.name());
        assert_eq!(op, Some("scaled_dot_product_attention"));
        assert_eq!(fused.shape(), reference.shape());
        assert_close(&fused, &reference.to_vec(), tol);
        let u = Tensor::<f64>::randn(fused.shape(), &mut StdRng::seed_from_u64(5));
        let gf = fused.backward_with(&u).unwrap();
        let gr = reference.backward_with(&u).unwrap();
        for (name, x) in [("q", q), ("k", k), ("v", v)] {
            let (a, b) = (gf.get(x), gr.get(x));
            assert_eq!(a.is_some(), b.is_some(), "gradient of {name}");
            if let (Some(a), Some(b)) = (a, b) {
                assert_eq!(a.shape(), x.shape(), "gradient of {name}");
                assert_close(a, &b.to_vec(), tol);
            }
        }
    }

    #[test]
    fn fused_matches_the_composite_across_shapes_and_masks() {
        // (q, k, v shapes) with Tq ≠ Tk and Dv ≠ D
        let cases: &[(&[usize], &[usize], &[usize])] = &[
            (&[3, 4], &[5, 4], &[5, 2]),
            (&[5, 4], &[3, 4], &[3, 6]),
            (&[2, 3, 4], &[2, 5, 4], &[2, 5, 3]),
            (&[2, 3, 4, 5], &[2, 3, 6, 5], &[2, 3, 6, 2]),
            (&[1, 1, 1, 3], &[1, 1, 1, 3], &[1, 1, 1, 1]),
        ];
        for (i, &(sq, sk, sv)) in cases.iter().enumerate() {
            let s = 10 * i as u64;
            let (q, k, v) = (rand_leaf(sq, s), rand_leaf(sk, s + 1), rand_leaf(sv, s + 2));
            let n = sq.len();
            let (tq, tk) = (sq[n - 2], sk[n - 2]);
            let mut full = sq[..n - 2].to_vec();
            full.extend([tq, tk]);
            let mut key_pad = vec![1; n];
            key_pad[n - 1] = tk;
            key_pad[0] = sq[0];
            let masks = [
                None,
                Some(mask01(&[tq, tk], s + 3)),
                Some(mask01(&full, s + 4)),
                Some(mask01(&key_pad, s + 5)),
                Some(mask01(&[tk], s + 6)),
                Some(mask01(&[tq, 1], s + 7)),
            ];
            for m in &masks {
                for causal in [false, true] {
                    agree(&q, &k, &v, m.as_ref(), causal, 0.0, None, 1e-12);
                }
            }
            agree(&q, &k, &v, None, true, 0.0, Some(0.7), 1e-12);
        }
    }

    #[test]
    fn strided_and_shared_inputs() {
        // q, k and v as views of one [B, T, 3·H·D] tensor, heads transposed in
        let qkv = rand_leaf(&[2, 5, 3 * 2 * 3], 30);
        let heads = |t: &Tensor<f64>| t.reshape(&[2, 5, 2, 3]).transpose(1, 2);
        let parts = qkv.chunk(3, -1);
        let (q, k, v) = (heads(&parts[0]), heads(&parts[1]), heads(&parts[2]));
        let y = sdpa(&q, &k, &v, None, true, 0.0, None);
        let r = composite(&q, &k, &v, None, true, 0.0, None, 0);
        assert_close(&y, &r.to_vec(), 1e-12);
        let u = Tensor::<f64>::randn(y.shape(), &mut StdRng::seed_from_u64(1));
        let (a, b) = (y.backward_with(&u).unwrap(), r.backward_with(&u).unwrap());
        assert_close(a.get(&qkv).unwrap(), &b.get(&qkv).unwrap().to_vec(), 1e-12);
        // k given as a transposed leaf
        let kt = rand_leaf(&[2, 4, 6], 31);
        let q = rand_leaf(&[2, 3, 4], 32);
        let v = rand_leaf(&[2, 6, 2], 33);
        let k = kt.transpose(1, 2);
        agree(&q, &k, &v, None, false, 0.0, None, 1e-12);
    }

    #[test]
    fn parallel_path_matches_the_composite() {
        // 16 heads of 32×32 scores: above the parallel size
        let (q, k, v) = (
            rand_leaf(&[4, 4, 32, 16], 40),
            rand_leaf(&[4, 4, 32, 16], 41),
            rand_leaf(&[4, 4, 32, 8], 42),
        );
        let pad = mask01(&[4, 1, 1, 32], 43);
        agree(&q, &k, &v, None, true, 0.0, None, 1e-12);
        agree(&q, &k, &v, Some(&pad), true, 0.0, None, 1e-12);
        agree(&q, &k, &v, Some(&pad), false, 0.3, None, 1e-12);
    }

    #[test]
    fn causal_blocks_match_the_composite() {
        // more rows than a block, Tq above and below Tk, block edges inside
        // and beyond the shorter side
        for (i, &(tq, tk)) in [(70, 45), (45, 70), (64, 64), (33, 100), (100, 1)]
            .iter()
            .enumerate()
        {
            let s = 200 + 10 * i as u64;
            let q = rand_leaf(&[2, tq, 5], s);
            let k = rand_leaf(&[2, tk, 5], s + 1);
            let v = rand_leaf(&[2, tk, 3], s + 2);
            let pad = mask01(&[2, 1, tk], s + 3);
            agree(&q, &k, &v, None, true, 0.0, None, 1e-12);
            agree(&q, &k, &v, Some(&pad), true, 0.0, None, 1e-12);
            agree(&q, &k, &v, None, true, 0.25, None, 1e-12);
            agree(&q.detach(), &k, &v.detach(), None, true, 0.0, None, 1e-12);
        }
    }

    #[test]
    fn nan_and_infinite_scores_propagate() {
        let q = Tensor::<f64>::from_vec(vec![1., f64::NAN, 1.], &[3, 1]).unwrap();
        let k = Tensor::<f64>::from_vec(vec![1., 2.], &[2, 1]).unwrap();
        let y = sdpa(&q, &k, &k, None, false, 0.0, None).to_vec();
        assert!(y[0].is_finite() && y[2].is_finite() && y[1].is_nan());
        // only NaN scores, and a masked key beside them: NaN, not zeros
        let m = Tensor::<f64>::from_vec(vec![0., 1.], &[2]).unwrap();
        let y = sdpa(&q, &k, &k, Some(&m), false, 0.0, None).to_vec();
        assert!(y[1].is_nan() && y[0] == 1.0);
    }

    #[test]
    fn only_the_wanted_gradients() {
        let q = rand_leaf(&[2, 3, 4], 50);
        let k = rand_leaf(&[2, 5, 4], 51).detach();
        let v = rand_leaf(&[2, 5, 3], 52);
        agree(&q, &k, &v, None, true, 0.0, None, 1e-12);
        let (q2, v2) = (q.detach(), v.detach());
        let k2 = k.requires_grad();
        agree(&q2, &k2, &v2, None, false, 0.0, None, 1e-12);
        agree(&q2, &k2.detach(), &v, None, false, 0.5, None, 1e-12);
    }

    #[test]
    fn fully_masked_rows_give_zeros_and_zero_gradients() {
        let q = rand_leaf(&[2, 3, 4], 60);
        let k = rand_leaf(&[2, 4, 4], 61);
        let v = rand_leaf(&[2, 4, 2], 62);
        // query 1 of batch 0 and query 2 of both batches see no key
        let mut m = vec![0.0; 2 * 3 * 4];
        m[4..8].fill(1.0);
        m[8..12].fill(1.0);
        m[20..24].fill(1.0);
        m[13] = 1.0;
        let mask = Tensor::from_vec(m, &[2, 3, 4]).unwrap();
        let y = sdpa(&q, &k, &v, Some(&mask), false, 0.0, None);
        let yv = y.to_vec();
        for (b, i) in [(0, 1), (0, 2), (1, 2)] {
            let at = (b * 3 + i) * 2;
            assert_eq!(&yv[at..at + 2], &[0.0, 0.0], "row {b}, {i}");
        }
        assert!(yv.iter().all(|v| v.is_finite()));
        let g = y.square().sum().backward().unwrap();
        let gq = g.get(&q).unwrap().to_vec();
        for (b, i) in [(0, 1), (0, 2), (1, 2)] {
            let at = (b * 3 + i) * 4;
            assert_eq!(&gq[at..at + 4], &[0.0; 4], "row {b}, {i}");
        }
        assert!(g.get(&k).unwrap().to_vec().iter().all(|v| v.is_finite()));
        agree(&q, &k, &v, Some(&mask), false, 0.0, None, 1e-12);
        agree(&q, &k, &v, Some(&mask), true, 0.2, None, 1e-12);
    }

    #[test]
    fn dropout_masks_match_the_composite_with_the_same_seed() {
        let q = rand_leaf(&[2, 2, 5, 3], 70);
        let k = rand_leaf(&[2, 2, 6, 3], 71);
        let v = rand_leaf(&[2, 2, 6, 4], 72);
        for p in [0.1, 0.5, 0.9, 1.0] {
            agree(&q, &k, &v, None, false, p, None, 1e-12);
            agree(&q, &k, &v, None, true, p, None, 1e-12);
        }
        // p = 1 drops everything
        let y = sdpa_rng(
            &q,
            &k,
            &v,
            None,
            false,
            1.0,
            None,
            &mut StdRng::seed_from_u64(3),
        );
        assert!(y.to_vec().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn without_recording_the_weights_are_not_kept() {
        let q = rand_leaf(&[2, 3, 4], 80);
        let y = {
            let _g = crate::no_grad();
            sdpa(&q, &q, &q, None, true, 0.0, None)
        };
        assert!(!y.needs_grad());
        let r = composite(&q, &q, &q, None, true, 0.0, None, 0);
        assert_close(&y, &r.to_vec(), 1e-12);
    }

    #[test]
    fn mask_edits_after_the_forward_do_not_reach_the_backward() {
        // the op keeps its own copy of the mask for the recorded form
        let q = rand_leaf(&[3, 2], 90);
        let mask = Tensor::<f64>::from_vec(vec![0., 1., 0.], &[3]).unwrap();
        let y = sdpa(&q, &q, &q, Some(&mask), false, 0.0, None);
        mask.update_with(|m| m.fill(0.0));
        let g1 = crate::grad(
            &y.square().sum(),
            &[&q],
            crate::GradOptions {
                create_graph: true,
                ..Default::default()
            },
        )
        .unwrap();
        let mask2 = Tensor::<f64>::from_vec(vec![0., 1., 0.], &[3]).unwrap();
        let r = composite(&q, &q, &q, Some(&mask2), false, 0.0, None, 0);
        let g2 = r.square().sum().backward().unwrap();
        assert_close(&g1[0], &g2.get(&q).unwrap().to_vec(), 1e-12);
    }

    #[test]
    fn gradcheck_with_masks_causal_and_dropout() {
        let q = rand_leaf(&[2, 3, 4], 100);
        let k = rand_leaf(&[2, 5, 4], 101);
        let v = rand_leaf(&[2, 5, 3], 102);
        let m = mask01(&[2, 1, 5], 103);
        check(
            |x| sdpa(&x[0], &x[1], &x[2], None, false, 0.0, None),
            &[q.clone(), k.clone(), v.clone()],
        );
        check(
            |x| sdpa(&x[0], &x[1], &x[2], Some(&m), true, 0.0, Some(0.8)),
            &[q.clone(), k.clone(), v.clone()],
        );
        check(
            |x| {
                let mut rng = StdRng::seed_from_u64(4);
                sdpa_rng(&x[0], &x[1], &x[2], None, true, 0.4, None, &mut rng)
            },
            &[q, k, v],
        );
        let x = rand_leaf(&[4, 3], 104);
        check(|x| sdpa(&x[0], &x[0], &x[0], None, true, 0.0, None), &[x]);
    }
}
