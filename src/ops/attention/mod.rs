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

use super::ReadMany;
use crate::autograd::{grads, is_grad_enabled, BackwardCx, InputGrads, Op, Saves};
use crate::element::Element;
pub(crate) use crate::kernels::attention::DropMask;
use crate::kernels::attention::{self as kernel, Dims};
use crate::kernels::gemm::MatRef;
use crate::layout::for_each_row;
use crate::layout::Layout;
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

impl<T: Element> DropMask<T> {
    /// The factors as a tensor of `shape` (its element count is the mask's length).
    pub(crate) fn to_tensor(&self, shape: &[usize]) -> Tensor<T> {
        debug_assert_eq!(crate::shape::numel(shape), self.len());
        Tensor::from_data((0..self.len()).map(|i| self.at(i)).collect(), shape)
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

/// The matrices of a `[.., rows, cols]` view of `data` (its last two strides;
/// each leading index's offset comes from [`lead_offsets`]).
fn matrices<'a, T>(data: &'a [T], l: &Layout) -> MatRef<'a, T> {
    let n = l.strides.len();
    MatRef {
        data,
        offset: 0,
        rs: l.strides[n - 2],
        cs: l.strides[n - 1],
    }
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
        let mask = mguard
            .as_ref()
            .zip(ml.as_ref())
            .map(|(m, l)| matrices(&m[..], l));
        kernel::forward(
            &Dims {
                tq,
                tk,
                d,
                dv,
                causal,
                scale,
            },
            [
                matrices(r.get(0), lq),
                matrices(r.get(1), lk),
                matrices(r.get(2), lv),
            ],
            mask,
            &offsets,
            drop.as_ref(),
            &mut weights,
            &mut out,
        );
    }
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
        let nb: usize = lead.iter().product();
        let nl = lead.len();
        let sizes = [tq * d, tk * d, tk * dv];
        let mut bufs: [Option<Vec<T>>; 3] =
            std::array::from_fn(|i| cx.needs(i).then(|| pool::take(nb * sizes[i])));
        {
            let r = ReadMany::new(&[q, k, v]);
            let (lq, lk, lv) = (q.layout(), k.layout(), v.layout());
            let offsets = lead_offsets(
                lead,
                [&lq.strides[..nl], &lk.strides[..nl], &lv.strides[..nl]],
                [lq.offset, lk.offset, lv.offset],
            );
            let [bq, bk, bv] = &mut bufs;
            g.with_contiguous(|g| {
                kernel::backward(
                    &Dims {
                        tq,
                        tk,
                        d,
                        dv,
                        causal: self.causal,
                        scale: self.scale,
                    },
                    [
                        matrices(r.get(0), lq),
                        matrices(r.get(1), lk),
                        matrices(r.get(2), lv),
                    ],
                    &offsets,
                    g,
                    &self.weights,
                    self.drop.as_ref(),
                    [bq.as_mut(), bk.as_mut(), bv.as_mut()],
                )
            });
        }
        let [bq, bk, bv] = bufs;
        let tensor = |b: Option<Vec<T>>, shape: &[usize]| b.map(|b| Tensor::from_data(b, shape));
        grads![
            tensor(bq, q.shape()),
            tensor(bk, k.shape()),
            tensor(bv, v.shape()),
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
