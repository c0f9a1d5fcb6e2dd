//! `scaled_dot_product_attention`: `softmax(q·kᵀ·scale + mask)·v`, PyTorch's
//! `F.scaled_dot_product_attention`, with the mask convention of
//! [`masked_fill`](Tensor::masked_fill) (nonzero = masked out).

use std::cell::RefCell;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::element::{c, Element};
use crate::error::{or_panic, Error, Result};
use crate::nn::functional::check_dropout_p;
use crate::ops::{attention, recorded_attention, DropMask, SdpaShapes};
use crate::shape::broadcast_shapes;
use crate::tensor::Tensor;

thread_local! {
    /// The stream [`scaled_dot_product_attention`] draws dropout masks from.
    static ATTN_RNG: RefCell<StdRng> = RefCell::new(StdRng::seed_from_u64(0));
}

/// Reseeds this thread's stream of attention-dropout masks, the one
/// [`scaled_dot_product_attention`] draws from when `dropout_p > 0` (each thread
/// starts at seed 0). Code that needs masks independent of call order passes
/// its own RNG to [`scaled_dot_product_attention_with_rng`], as
/// [`MultiHeadAttention`](crate::nn::MultiHeadAttention) does.
pub fn seed_attention_dropout(seed: u64) {
    ATTN_RNG.with(|r| *r.borrow_mut() = StdRng::seed_from_u64(seed));
}

/// Scaled dot-product attention, PyTorch's `F.scaled_dot_product_attention`:
///
/// `softmax(q·kᵀ·scale + M)·v`
///
/// with `q` `[.., Tq, D]`, `k` `[.., Tk, D]` and `v` `[.., Tk, Dv]` (the leading
/// dimensions, e.g. `[batch, heads]`, the same for all three); the result is
/// `[.., Tq, Dv]`. `scale` defaults to `1/√D`.
///
/// **Masks follow [`masked_fill`](Tensor::masked_fill): a nonzero entry of
/// `mask` masks that query–key pair out** (its weight is exactly 0). This is the
/// opposite of PyTorch's boolean `attn_mask`, where `true` means "take part":
/// pass `1 − torch_mask`. `mask` broadcasts to `[.., Tq, Tk]` (a `[Tq, Tk]`
/// pattern, or a key-padding mask `[B, 1, 1, Tk]`). `causal` masks every key
/// after its query (`j > i`, aligned at the top left as PyTorch when
/// `Tq ≠ Tk`); it combines with `mask`. A query whose keys are all masked gets
/// an output row of zeros and no gradient (as PyTorch's CPU kernel).
///
/// `dropout_p` zeroes attention weights with that probability (after the
/// softmax) and scales the others by `1/(1 − dropout_p)`; its masks come from
/// this thread's stream ([`seed_attention_dropout`]). Pass 0 in evaluation.
///
/// One op with its own backward rule: per leading index, the scores from the
/// GEMM, a masked softmax in place (stable for long rows: each row's maximum is
/// subtracted first), the dropout mask and `·v`; for the backward pass it keeps
/// only the attention weights and, with dropout, one bit per weight. Under
/// `create_graph` its backward is built from recorded ops (the weights
/// recomputed from `q` and `k`), so it can be differentiated again. The mask is
/// a constant: it gets no gradient.
///
/// ```
/// use ferrograd::nn::functional::scaled_dot_product_attention as sdpa;
/// use ferrograd::Tensor;
/// // one query, two keys: scores [0, 1], so weights softmax([0, 1])
/// let q = Tensor::<f64>::from_vec(vec![1., 0.], &[1, 2])?;
/// let k = Tensor::<f64>::from_vec(vec![0., 1., 1., 0.], &[2, 2])?;
/// let v = Tensor::<f64>::from_vec(vec![10., 20.], &[2, 1])?;
/// let w1 = 1.0f64.exp() / (1.0 + 1.0f64.exp());
/// let y = sdpa(&q, &k, &v, None, false, 0.0, Some(1.0));
/// assert!((y.item() - (10.0 * (1.0 - w1) + 20.0 * w1)).abs() < 1e-12);
/// // masking key 1 out (nonzero = masked) leaves only key 0
/// let mask = Tensor::<f64>::from_vec(vec![0., 1.], &[1, 2])?;
/// assert_eq!(sdpa(&q, &k, &v, Some(&mask), false, 0.0, Some(1.0)).item(), 10.0);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Panics
/// Panics when the shapes do not fit (naming them), or `dropout_p` is not in
/// `[0, 1]`.
#[track_caller]
pub fn scaled_dot_product_attention<T: Element>(
    q: &Tensor<T>,
    k: &Tensor<T>,
    v: &Tensor<T>,
    mask: Option<&Tensor<T>>,
    causal: bool,
    dropout_p: f64,
    scale: Option<f64>,
) -> Tensor<T> {
    or_panic(try_scaled_dot_product_attention(
        q, k, v, mask, causal, dropout_p, scale,
    ))
}

/// Like [`scaled_dot_product_attention`], returning an error instead of panicking.
///
/// # Errors
/// [`Error::InvalidArgument`] (op `"scaled_dot_product_attention"`) when `q`, `k`
/// or `v` has fewer than 2 dimensions, or `dropout_p` is not in `[0, 1]`;
/// [`Error::ShapeMismatch`] naming the two shapes that disagree: `q` and `k`
/// (leading dimensions or `D`), `k` and `v` (leading dimensions or `Tk`), or the
/// mask and the scores' shape `[.., Tq, Tk]`.
pub fn try_scaled_dot_product_attention<T: Element>(
    q: &Tensor<T>,
    k: &Tensor<T>,
    v: &Tensor<T>,
    mask: Option<&Tensor<T>>,
    causal: bool,
    dropout_p: f64,
    scale: Option<f64>,
) -> Result<Tensor<T>> {
    if dropout_p > 0.0 {
        ATTN_RNG.with(|r| {
            try_sdpa_impl(
                q,
                k,
                v,
                mask,
                causal,
                dropout_p,
                scale,
                &mut *r.borrow_mut(),
            )
        })
    } else {
        try_sdpa_impl(q, k, v, mask, causal, dropout_p, scale, &mut NoRng)
    }
}

/// [`scaled_dot_product_attention`] drawing its dropout masks from `rng` (one
/// uniform sample per attention weight, in row-major order of `[.., Tq, Tk]`;
/// nothing is drawn when `dropout_p` is 0).
///
/// ```
/// use ferrograd::nn::functional::scaled_dot_product_attention_with_rng as sdpa;
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// use ferrograd::Tensor;
/// let x = Tensor::<f32>::ones(&[2, 4, 8]);
/// let a = sdpa(&x, &x, &x, None, true, 0.5, None, &mut StdRng::seed_from_u64(1));
/// let b = sdpa(&x, &x, &x, None, true, 0.5, None, &mut StdRng::seed_from_u64(1));
/// assert_eq!(a.to_vec(), b.to_vec()); // the same seed, the same masks
/// ```
///
/// # Panics
/// As [`scaled_dot_product_attention`].
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn scaled_dot_product_attention_with_rng<T: Element, R: Rng + ?Sized>(
    q: &Tensor<T>,
    k: &Tensor<T>,
    v: &Tensor<T>,
    mask: Option<&Tensor<T>>,
    causal: bool,
    dropout_p: f64,
    scale: Option<f64>,
    rng: &mut R,
) -> Tensor<T> {
    or_panic(try_sdpa_impl(q, k, v, mask, causal, dropout_p, scale, rng))
}

/// An RNG that is never drawn from (dropout 0).
struct NoRng;

impl rand::TryRng for NoRng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> std::result::Result<u32, Self::Error> {
        unreachable!("internal error: attention drew a dropout mask with p = 0")
    }
    fn try_next_u64(&mut self) -> std::result::Result<u64, Self::Error> {
        unreachable!("internal error: attention drew a dropout mask with p = 0")
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> std::result::Result<(), Self::Error> {
        unreachable!("internal error: attention drew a dropout mask with p = 0")
    }
}

const OP: &str = "scaled_dot_product_attention";

/// Checks the shapes of `q`, `k`, `v` and the mask.
pub(crate) fn check_sdpa<T: Element>(
    q: &Tensor<T>,
    k: &Tensor<T>,
    v: &Tensor<T>,
    mask: Option<&Tensor<T>>,
) -> Result<SdpaShapes> {
    for (name, t) in [("q", q), ("k", k), ("v", v)] {
        if t.ndim() < 2 {
            return Err(Error::invalid(
                OP,
                format!(
                    "{name} must have at least 2 dimensions [.., T, D], got shape {:?}",
                    t.shape()
                ),
            ));
        }
    }
    let n = q.ndim();
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    if ks.len() != n || ks[..n - 2] != qs[..n - 2] || ks[n - 1] != qs[n - 1] {
        return Err(Error::shape(OP, qs, ks));
    }
    if vs.len() != n || vs[..n - 2] != ks[..n - 2] || vs[n - 2] != ks[n - 2] {
        return Err(Error::shape(OP, ks, vs));
    }
    let shapes = SdpaShapes {
        lead: qs[..n - 2].to_vec(),
        tq: qs[n - 2],
        tk: ks[n - 2],
        d: qs[n - 1],
        dv: vs[n - 1],
    };
    if let Some(m) = mask {
        let scores = shapes.scores();
        if broadcast_shapes(m.shape(), &scores).as_deref() != Some(&scores[..]) {
            return Err(Error::shape(OP, m.shape(), &scores));
        }
    }
    Ok(shapes)
}

#[allow(clippy::too_many_arguments)]
fn try_sdpa_impl<T: Element, R: Rng + ?Sized>(
    q: &Tensor<T>,
    k: &Tensor<T>,
    v: &Tensor<T>,
    mask: Option<&Tensor<T>>,
    causal: bool,
    dropout_p: f64,
    scale: Option<f64>,
    rng: &mut R,
) -> Result<Tensor<T>> {
    check_dropout_p(dropout_p).map_err(|_| {
        Error::invalid(
            OP,
            format!("dropout_p has to be between 0 and 1, got {dropout_p}"),
        )
    })?;
    let shapes = check_sdpa(q, k, v, mask)?;
    let scale: T = c(scale.unwrap_or(1.0 / (shapes.d as f64).sqrt()));
    let scores = shapes.scores();
    let drop =
        (dropout_p > 0.0).then(|| DropMask::draw(crate::shape::numel(&scores), dropout_p, rng));
    if shapes.d == 0 || shapes.dv == 0 || crate::shape::numel(&scores) == 0 {
        // nothing to fuse: the composite handles the empty shapes
        let user = mask.map(|m| m.detach().not_equal_scalar(T::zero()));
        let masked = crate::ops::combined_mask(shapes.tq, shapes.tk, user.as_ref(), causal);
        let drop = drop.map(|d| d.to_tensor(&scores));
        return Ok(recorded_attention(
            q,
            k,
            v,
            masked.as_ref(),
            scale,
            drop.as_ref(),
        ));
    }
    Ok(attention(q, k, v, &shapes, mask, causal, scale, drop))
}
