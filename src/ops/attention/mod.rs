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
use crate::kernels::attention::{
    as_out, copy_row_prefixes, dense, heads_in_parallel, row_block, row_block_end, softmax_row,
    softmax_row_backward,
};
use crate::kernels::gemm::{matmul as gemm, MatRef};
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
                        copy_row_prefixes(block, tk, &scratch[..], lim);
                    }
                    // the rows' exponentials and sums compiled for AVX2 where the CPU has it
                    crate::kernels::wide(
                        #[inline(always)]
                        || {
                            for (r, row) in block.chunks_exact_mut(tk).enumerate() {
                                let i = i0 + r;
                                let limit = if causal { (i + 1).min(lim) } else { lim };
                                match &mguard {
                                    Some(m) => {
                                        let base = om + i * mrs;
                                        softmax_row(row, scale, limit, |j| {
                                            m[base + j * mcs] != T::zero()
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
                            copy_row_prefixes(block, tk, tmp, lim);
                        }
                        let rows_p = p[i0 * tk..i1 * tk].chunks_exact(tk);
                        crate::kernels::wide(
                            #[inline(always)]
                            || {
                                let rows = block.chunks_exact_mut(tk).zip(rows_p).enumerate();
                                for (r, (row, p)) in rows {
                                    let (live, dead) = row.split_at_mut(lim);
                                    dead.fill(T::zero());
                                    if let Some(dm) = &self.drop {
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
                if heads_in_parallel(nb, tq, tk, d + dv) {
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
mod tests;
