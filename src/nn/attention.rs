//! `MultiHeadAttention`: self-attention with several heads, a fused QKV
//! projection, an optional causal mask and key-padding mask, and dropout.

use rand::{Rng, RngExt};

use crate::element::Element;
use crate::error::{or_panic, Error, Result};
use crate::nn::functional::{
    check_dropout_p, scaled_dot_product_attention_with_rng, try_scaled_dot_product_attention,
};
use crate::nn::{Dropout, Linear, Module};
use crate::tensor::Tensor;

/// The sizes and options of a [`MultiHeadAttention`].
///
/// `d_model` and `n_head` have no meaningful default (they are 0 in
/// [`Default`], which [`MultiHeadAttention::new`] rejects): give them, and take
/// the rest from the default (`causal: true`, `bias: true`, no dropout).
///
/// ```
/// use ferrograd::nn::MultiHeadAttentionConfig;
/// let cfg = MultiHeadAttentionConfig { d_model: 64, n_head: 4, ..Default::default() };
/// assert!(cfg.causal && cfg.bias);
/// assert_eq!(cfg.attn_dropout, 0.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiHeadAttentionConfig {
    /// The width of the input and the output (the embedding size).
    pub d_model: usize,
    /// The number of heads; each has `d_model / n_head` dimensions, so it must
    /// divide `d_model`.
    pub n_head: usize,
    /// Whether each position attends only to itself and the positions before it.
    pub causal: bool,
    /// Whether the QKV and output projections have biases.
    pub bias: bool,
    /// The dropout probability on the attention weights (after the softmax).
    pub attn_dropout: f64,
    /// The dropout probability on the output (after the output projection).
    pub resid_dropout: f64,
}

impl Default for MultiHeadAttentionConfig {
    fn default() -> Self {
        MultiHeadAttentionConfig {
            d_model: 0,
            n_head: 0,
            causal: true,
            bias: true,
            attn_dropout: 0.0,
            resid_dropout: 0.0,
        }
    }
}

/// Multi-head self-attention, as nanoGPT's `CausalSelfAttention` (and
/// PyTorch's `nn.MultiheadAttention` with `batch_first=True` for
/// self-attention):
///
/// ```text
/// q, k, v = split(x · qkv.weightᵀ + qkv.bias)          (each [B, T, d])
/// heads:  [B, T, d] → [B, n_head, T, d / n_head]
/// y = scaled_dot_product_attention(q, k, v, mask, causal, attn_dropout)
/// out = resid_dropout((y merged back to [B, T, d]) · proj.weightᵀ + proj.bias)
/// ```
///
/// The parameters are `"qkv.weight"` `[3d, d]` (the rows of q, then k, then v)
/// and `"proj.weight"` `[d, d]`, with `"qkv.bias"` `[3d]` and `"proj.bias"` `[d]`
/// when the config has `bias`. Both projections start with PyTorch's default
/// `nn.Linear` initialisation ([`Gpt`](crate::nn::Gpt) re-initialises them as
/// nanoGPT does).
///
/// The two dropouts are [`Dropout`] layers (`"attn_drop"` on the attention
/// weights, `"resid_drop"` on the output) seeded from the construction RNG, so
/// [`named_rng_states`](crate::nn::ModuleParams::named_rng_states) reports them
/// and [`set_training(false)`](crate::nn::ModuleParams::set_training) turns them
/// off.
///
/// ```
/// use ferrograd::nn::{Module, MultiHeadAttention, MultiHeadAttentionConfig};
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// use ferrograd::Tensor;
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let cfg = MultiHeadAttentionConfig { d_model: 8, n_head: 2, ..Default::default() };
/// let mha: MultiHeadAttention = MultiHeadAttention::new(cfg, &mut rng);
/// let names: Vec<String> = mha.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["qkv.weight", "qkv.bias", "proj.weight", "proj.bias"]);
///
/// let x = Tensor::<f32>::randn(&[3, 5, 8], &mut rng); // [batch, time, d_model]
/// let y = mha.forward(&x);
/// assert_eq!(y.shape(), &[3, 5, 8]);
/// let grads = y.square().sum().backward()?;
/// assert_eq!(grads.get(mha.qkv().weight()).unwrap().shape(), &[24, 8]);
/// # Ok::<(), ferrograd::Error>(())
/// ```
#[derive(Debug, Module)]
pub struct MultiHeadAttention<T: Element = f32> {
    qkv: Linear<T>,
    proj: Linear<T>,
    attn_drop: Dropout,
    resid_drop: Dropout,
    #[module(skip)]
    cfg: MultiHeadAttentionConfig,
}

const OP: &str = "MultiHeadAttention";

/// Checks `d_model`, `n_head` and the dropout probabilities.
pub(crate) fn check_heads(op: &'static str, d_model: usize, n_head: usize) -> Result<()> {
    if n_head == 0 {
        return Err(Error::invalid(op, "n_head must be at least 1, got 0"));
    }
    if !d_model.is_multiple_of(n_head) {
        return Err(Error::invalid(
            op,
            format!(
                "d_model {d_model} is not divisible by n_head {n_head} (each head has d_model / n_head dimensions)"
            ),
        ));
    }
    Ok(())
}

fn check_p(op: &'static str, what: &str, p: f64) -> Result<()> {
    check_dropout_p(p)
        .map_err(|_| Error::invalid(op, format!("{what} has to be between 0 and 1, got {p}")))
}

impl<T: Element> MultiHeadAttention<T> {
    /// A layer with the sizes and options of `cfg`; the projections drawn from
    /// `rng` (PyTorch's default `nn.Linear` initialisation, qkv then proj), then
    /// the seeds of the two dropouts.
    ///
    /// # Panics
    /// Panics when `d_model` is not divisible by `n_head` (naming both), when
    /// `n_head` is 0, or when a dropout probability is not in `[0, 1]`; see
    /// [`try_new`](MultiHeadAttention::try_new).
    #[track_caller]
    pub fn new<R: Rng + ?Sized>(cfg: MultiHeadAttentionConfig, rng: &mut R) -> Self {
        or_panic(Self::try_new(cfg, rng))
    }

    /// Like [`new`](MultiHeadAttention::new), returning an error instead of
    /// panicking.
    ///
    /// ```
    /// use ferrograd::nn::{MultiHeadAttention, MultiHeadAttentionConfig};
    /// use ferrograd::rand::{rngs::StdRng, SeedableRng};
    /// let cfg = MultiHeadAttentionConfig { d_model: 10, n_head: 3, ..Default::default() };
    /// let err = MultiHeadAttention::<f32>::try_new(cfg, &mut StdRng::seed_from_u64(0)).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "MultiHeadAttention: d_model 10 is not divisible by n_head 3 \
    ///      (each head has d_model / n_head dimensions)"
    /// );
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `n_head` is 0 or does not divide
    /// `d_model`, or a dropout probability is not in `[0, 1]`.
    pub fn try_new<R: Rng + ?Sized>(cfg: MultiHeadAttentionConfig, rng: &mut R) -> Result<Self> {
        check_heads(OP, cfg.d_model, cfg.n_head)?;
        check_p(OP, "attn_dropout", cfg.attn_dropout)?;
        check_p(OP, "resid_dropout", cfg.resid_dropout)?;
        let d = cfg.d_model;
        let qkv = Linear::new(d, 3 * d, cfg.bias, rng);
        let proj = Linear::new(d, d, cfg.bias, rng);
        let attn_drop = Dropout::new(cfg.attn_dropout, rng.random());
        let resid_drop = Dropout::new(cfg.resid_dropout, rng.random());
        Ok(MultiHeadAttention {
            qkv,
            proj,
            attn_drop,
            resid_drop,
            cfg,
        })
    }

    /// The configuration the layer was made with.
    pub fn config(&self) -> &MultiHeadAttentionConfig {
        &self.cfg
    }

    /// The fused input projection: weight `[3·d_model, d_model]` (q rows, then
    /// k, then v).
    pub fn qkv(&self) -> &Linear<T> {
        &self.qkv
    }

    /// The output projection, `[d_model, d_model]`.
    pub fn proj(&self) -> &Linear<T> {
        &self.proj
    }

    /// The dropout on the attention weights.
    pub fn attn_dropout(&self) -> &Dropout {
        &self.attn_drop
    }

    /// The dropout on the output.
    pub fn resid_dropout(&self) -> &Dropout {
        &self.resid_drop
    }

    /// Self-attention of `x` `[B, T, d_model]` in which the keys marked in
    /// `key_padding_mask` `[B, T]` take no part: a **nonzero** entry `(b, j)`
    /// marks token `j` of sequence `b` as padding, and no query of sequence `b`
    /// attends to it (the convention of
    /// [`masked_fill`](Tensor::masked_fill); PyTorch's boolean
    /// `key_padding_mask` means the same, `true` = ignore). It combines with
    /// the causal mask. A query that has no key left (every key before it is
    /// padding) gets the output projection of zeros, i.e. `proj.bias`.
    /// `None` is [`forward`](Module::forward).
    ///
    /// ```
    /// use ferrograd::nn::{Module, MultiHeadAttention, MultiHeadAttentionConfig};
    /// use ferrograd::rand::{rngs::StdRng, SeedableRng};
    /// use ferrograd::Tensor;
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let cfg = MultiHeadAttentionConfig { d_model: 4, n_head: 2, causal: false, ..Default::default() };
    /// let mha = MultiHeadAttention::<f64>::new(cfg, &mut rng);
    /// // two sequences of 3; the second has one padding token at the end
    /// let x = Tensor::<f64>::randn(&[2, 3, 4], &mut rng);
    /// let pad = Tensor::<f64>::from_vec(vec![0., 0., 0., 0., 0., 1.], &[2, 3])?;
    /// let y = mha.forward_masked(&x, Some(&pad));
    /// // the second sequence's first two outputs do not depend on the padding token
    /// let short = mha.forward(&x.narrow(0, 1, 1).narrow(1, 0, 2));
    /// let got = y.narrow(0, 1, 1).narrow(1, 0, 2).to_vec();
    /// for (a, b) in got.iter().zip(short.to_vec()) {
    ///     assert!((a - b).abs() < 1e-12);
    /// }
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// As [`try_forward_masked`](MultiHeadAttention::try_forward_masked).
    #[track_caller]
    pub fn forward_masked(&self, x: &Tensor<T>, key_padding_mask: Option<&Tensor<T>>) -> Tensor<T> {
        or_panic(self.try_forward_masked(x, key_padding_mask))
    }

    /// Like [`forward_masked`](MultiHeadAttention::forward_masked), returning an
    /// error instead of panicking.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (op `"MultiHeadAttention"`) when `x` is not
    /// 3-D or its last axis is not `d_model`, or the mask is not `[B, T]`,
    /// naming the shapes.
    pub fn try_forward_masked(
        &self,
        x: &Tensor<T>,
        key_padding_mask: Option<&Tensor<T>>,
    ) -> Result<Tensor<T>> {
        self.forward_impl(x, key_padding_mask, true)
    }

    /// The forward pass; `train: false` applies no dropout whatever the mode
    /// (and draws no mask), as generation wants.
    pub(crate) fn forward_impl(
        &self,
        x: &Tensor<T>,
        key_padding_mask: Option<&Tensor<T>>,
        train: bool,
    ) -> Result<Tensor<T>> {
        let d = self.cfg.d_model;
        let (b, t) = match *x.shape() {
            [b, t, xd] if xd == d => (b, t),
            _ => {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "the input must be [batch, time, d_model] with d_model {d}, got shape {:?}",
                        x.shape()
                    ),
                ))
            }
        };
        let mask = match key_padding_mask {
            None => None,
            Some(m) if m.shape() == [b, t] => Some(m.reshape(&[b, 1, 1, t])),
            Some(m) => {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "the key padding mask must be [batch, time] = {:?} for an input of shape {:?}, got shape {:?}",
                        [b, t],
                        x.shape(),
                        m.shape()
                    ),
                ))
            }
        };
        let (h, hd) = (self.cfg.n_head, d / self.cfg.n_head);
        let qkv = self.qkv.try_forward(x)?;
        // [B, T, d] → [B, h, T, hd]
        let heads = |i: usize| {
            qkv.narrow(2, i * d, d)
                .reshape(&[b, t, h, hd])
                .transpose(1, 2)
        };
        let (q, k, v) = (heads(0), heads(1), heads(2));
        let causal = self.cfg.causal;
        let rng = if train {
            self.attn_drop.next_rng()
        } else {
            None
        };
        let y = match rng {
            Some(mut rng) => scaled_dot_product_attention_with_rng(
                &q,
                &k,
                &v,
                mask.as_ref(),
                causal,
                self.attn_drop.p(),
                None,
                &mut rng,
            ),
            None => try_scaled_dot_product_attention(&q, &k, &v, mask.as_ref(), causal, 0.0, None)?,
        };
        let y = self
            .proj
            .try_forward(&y.transpose(1, 2).reshape(&[b, t, d]))?;
        Ok(if train {
            self.resid_drop.forward(&y)
        } else {
            y
        })
    }
}

impl<T: Element> Module<T> for MultiHeadAttention<T> {
    /// Self-attention of `x` `[B, T, d_model]` → `[B, T, d_model]`, causal when
    /// the config says so.
    ///
    /// # Panics
    /// Panics when `x` is not `[B, T, d_model]`, naming the shapes.
    #[track_caller]
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        or_panic(self.forward_impl(x, None, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn cfg(d: usize, h: usize) -> MultiHeadAttentionConfig {
        MultiHeadAttentionConfig {
            d_model: d,
            n_head: h,
            ..Default::default()
        }
    }

    #[test]
    fn names_and_shapes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mha = MultiHeadAttention::<f32>::new(cfg(6, 3), &mut rng);
        let names: Vec<_> = mha.named_parameters().into_iter().map(|p| p.0).collect();
        assert_eq!(
            names,
            ["qkv.weight", "qkv.bias", "proj.weight", "proj.bias"]
        );
        assert_eq!(mha.qkv().weight().shape(), &[18, 6]);
        assert_eq!(mha.proj().weight().shape(), &[6, 6]);
        let nob = MultiHeadAttention::<f32>::new(
            MultiHeadAttentionConfig {
                bias: false,
                ..cfg(6, 3)
            },
            &mut rng,
        );
        let names: Vec<_> = nob.named_parameters().into_iter().map(|p| p.0).collect();
        assert_eq!(names, ["qkv.weight", "proj.weight"]);
        let rngs: Vec<_> = nob.named_rng_states().into_iter().map(|p| p.0).collect();
        assert_eq!(rngs, ["attn_drop", "resid_drop"]);
    }

    #[test]
    #[should_panic(expected = "MultiHeadAttention: d_model 10 is not divisible by n_head 4")]
    fn indivisible_heads_panic() {
        MultiHeadAttention::<f32>::new(cfg(10, 4), &mut rand::rngs::StdRng::seed_from_u64(0));
    }

    #[test]
    fn bad_inputs_are_named() {
        let mha =
            MultiHeadAttention::<f32>::new(cfg(4, 2), &mut rand::rngs::StdRng::seed_from_u64(0));
        let err = mha.try_forward_masked(&Tensor::zeros(&[2, 3, 5]), None);
        assert!(err.unwrap_err().to_string().contains("[2, 3, 5]"));
        let err = mha.try_forward_masked(&Tensor::zeros(&[3, 4]), None);
        assert!(err.unwrap_err().to_string().contains("[3, 4]"));
        let err = mha
            .try_forward_masked(&Tensor::zeros(&[2, 3, 4]), Some(&Tensor::zeros(&[3, 2])))
            .unwrap_err()
            .to_string();
        assert!(err.contains("[3, 2]") && err.contains("[2, 3]"), "{err}");
    }
}
