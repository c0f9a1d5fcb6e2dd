//! `TransformerBlock`: a pre-norm transformer layer (attention and a 4× MLP,
//! each behind a layer norm and inside a residual connection), and
//! `FeedForward`, its MLP.

use rand::{Rng, RngExt};

use crate::element::{c, Element};
use crate::error::{or_panic, Error, Result};
use crate::nn::attention::check_heads;
use crate::nn::functional::check_dropout_p;
use crate::nn::{
    Activation, Dropout, LayerNorm, Linear, Module, MultiHeadAttention, MultiHeadAttentionConfig,
};
use crate::tensor::Tensor;

/// The sizes and options of a [`TransformerBlock`].
///
/// `d_model` and `n_head` must be given (they are 0 in [`Default`], which
/// [`TransformerBlock::new`] rejects); the default is causal, with biases, no
/// dropout and the exact GELU ([`Activation::GeluErf`], PyTorch's `nn.GELU()`
/// as nanoGPT uses it).
///
/// ```
/// use ferrograd::nn::{Activation, TransformerBlockConfig};
/// let cfg = TransformerBlockConfig { d_model: 32, n_head: 4, ..Default::default() };
/// assert!(cfg.causal && cfg.bias);
/// assert_eq!(cfg.activation, Activation::GeluErf);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransformerBlockConfig {
    /// The width of the input and the output.
    pub d_model: usize,
    /// The number of attention heads (it must divide `d_model`).
    pub n_head: usize,
    /// Whether attention is causal (each position sees itself and those before).
    pub causal: bool,
    /// Whether the linear layers and the layer norms have biases.
    pub bias: bool,
    /// The dropout probability on the attention weights, after the attention's
    /// output projection and after the MLP (nanoGPT's single `dropout`).
    pub dropout: f64,
    /// The MLP's nonlinearity.
    pub activation: Activation,
}

impl Default for TransformerBlockConfig {
    fn default() -> Self {
        TransformerBlockConfig {
            d_model: 0,
            n_head: 0,
            causal: true,
            bias: true,
            dropout: 0.0,
            activation: Activation::GeluErf,
        }
    }
}

/// The MLP of a [`TransformerBlock`]:
/// `dropout(proj(activation(fc(x))))` with `fc` `[4d, d]` and `proj` `[d, 4d]`,
/// named `"fc.weight"`, `"proj.weight"` (and `"fc.bias"`, `"proj.bias"` with
/// biases). The dropout is `"drop"`.
///
/// ```
/// use ferrograd::nn::{Activation, FeedForward, Module};
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// use ferrograd::Tensor;
/// let mut rng = StdRng::seed_from_u64(0);
/// let mlp = FeedForward::<f32>::new(8, true, Activation::GeluErf, 0.0, &mut rng);
/// assert_eq!(mlp.fc().weight().shape(), &[32, 8]);
/// assert_eq!(mlp.forward(&Tensor::zeros(&[2, 3, 8])).shape(), &[2, 3, 8]);
/// ```
#[derive(Debug, Module)]
pub struct FeedForward<T: Element = f32> {
    fc: Linear<T>,
    proj: Linear<T>,
    drop: Dropout,
    #[module(skip)]
    activation: Activation,
}

impl<T: Element> FeedForward<T> {
    /// An MLP of width `4·d_model`: `fc` then `proj` drawn from `rng` with
    /// PyTorch's default `nn.Linear` initialisation, then the dropout's seed.
    ///
    /// # Panics
    /// Panics when `dropout` is not in `[0, 1]`.
    #[track_caller]
    pub fn new<R: Rng + ?Sized>(
        d_model: usize,
        bias: bool,
        activation: Activation,
        dropout: f64,
        rng: &mut R,
    ) -> Self {
        let fc = Linear::new(d_model, 4 * d_model, bias, rng);
        let proj = Linear::new(4 * d_model, d_model, bias, rng);
        FeedForward {
            fc,
            proj,
            drop: Dropout::new(dropout, rng.random()),
            activation,
        }
    }

    /// The expanding layer, `[4d, d]`.
    pub fn fc(&self) -> &Linear<T> {
        &self.fc
    }

    /// The projection back, `[d, 4d]`.
    pub fn proj(&self) -> &Linear<T> {
        &self.proj
    }

    /// The nonlinearity between them.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    pub(crate) fn forward_impl(&self, x: &Tensor<T>, train: bool) -> Result<Tensor<T>> {
        let h = self.activation.apply(&self.fc.try_forward(x)?);
        let y = self.proj.try_forward(&h)?;
        Ok(if train { self.drop.forward(&y) } else { y })
    }
}

impl<T: Element> Module<T> for FeedForward<T> {
    /// `dropout(proj(activation(fc(x))))` on `[.., d_model]`.
    ///
    /// # Panics
    /// Panics when the last axis is not `d_model`, naming the shapes.
    #[track_caller]
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        or_panic(self.forward_impl(x, true))
    }
}

/// A pre-norm transformer block, as nanoGPT's `Block`:
///
/// ```text
/// x = x + attn(ln1(x))
/// x = x + mlp(ln2(x))
/// ```
///
/// with `attn` a [`MultiHeadAttention`] and `mlp` a [`FeedForward`] of width
/// `4·d_model`. Parameters: `"ln1.weight"`, `"attn.qkv.weight"`,
/// `"attn.proj.weight"`, `"ln2.weight"`, `"mlp.fc.weight"` `[4d, d]`,
/// `"mlp.proj.weight"` `[d, 4d]`, and with `bias` also `"ln1.bias"`,
/// `"attn.qkv.bias"`, `"attn.proj.bias"`, `"ln2.bias"`, `"mlp.fc.bias"`,
/// `"mlp.proj.bias"` (each bias right after its weight). Without `bias` the
/// layer norms have no shift either ([`LayerNorm::new_no_bias`]). The layer
/// norms use `eps = 1e-5`.
///
/// ```
/// use ferrograd::nn::{Module, TransformerBlock, TransformerBlockConfig};
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// use ferrograd::Tensor;
/// let mut rng = StdRng::seed_from_u64(0);
/// let cfg = TransformerBlockConfig { d_model: 8, n_head: 2, bias: false, ..Default::default() };
/// let block: TransformerBlock = TransformerBlock::new(cfg, &mut rng);
/// let names: Vec<String> = block.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(
///     names,
///     ["ln1.weight", "attn.qkv.weight", "attn.proj.weight", "ln2.weight", "mlp.fc.weight", "mlp.proj.weight"]
/// );
/// let x = Tensor::<f32>::randn(&[2, 5, 8], &mut rng);
/// assert_eq!(block.forward(&x).shape(), &[2, 5, 8]);
/// ```
#[derive(Debug, Module)]
pub struct TransformerBlock<T: Element = f32> {
    ln1: LayerNorm<T>,
    attn: MultiHeadAttention<T>,
    ln2: LayerNorm<T>,
    mlp: FeedForward<T>,
    #[module(skip)]
    cfg: TransformerBlockConfig,
}

const OP: &str = "TransformerBlock";

impl<T: Element> TransformerBlock<T> {
    /// A block with the sizes and options of `cfg`: the attention's parameters
    /// and dropout seeds are drawn from `rng` first, then the MLP's.
    ///
    /// # Panics
    /// Panics when `n_head` is 0 or does not divide `d_model` (naming both), or
    /// `dropout` is not in `[0, 1]`; see [`try_new`](TransformerBlock::try_new).
    #[track_caller]
    pub fn new<R: Rng + ?Sized>(cfg: TransformerBlockConfig, rng: &mut R) -> Self {
        or_panic(Self::try_new(cfg, rng))
    }

    /// Like [`new`](TransformerBlock::new), returning an error instead of
    /// panicking.
    ///
    /// ```
    /// use ferrograd::nn::{TransformerBlock, TransformerBlockConfig};
    /// use ferrograd::rand::{rngs::StdRng, SeedableRng};
    /// let cfg = TransformerBlockConfig { d_model: 6, n_head: 4, ..Default::default() };
    /// let err = TransformerBlock::<f32>::try_new(cfg, &mut StdRng::seed_from_u64(0)).unwrap_err();
    /// assert!(err.to_string().contains("d_model 6 is not divisible by n_head 4"));
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `n_head` is 0 or does not divide
    /// `d_model`, or `dropout` is not in `[0, 1]`.
    pub fn try_new<R: Rng + ?Sized>(cfg: TransformerBlockConfig, rng: &mut R) -> Result<Self> {
        check_heads(OP, cfg.d_model, cfg.n_head)?;
        check_dropout_p(cfg.dropout).map_err(|_| {
            Error::invalid(
                OP,
                format!("dropout has to be between 0 and 1, got {}", cfg.dropout),
            )
        })?;
        let d = cfg.d_model;
        let eps: T = c(LayerNorm::<T>::DEFAULT_EPS);
        let ln = |bias: bool| {
            if bias {
                LayerNorm::new(d, eps)
            } else {
                LayerNorm::new_no_bias(d, eps)
            }
        };
        let attn = MultiHeadAttention::try_new(
            MultiHeadAttentionConfig {
                d_model: d,
                n_head: cfg.n_head,
                causal: cfg.causal,
                bias: cfg.bias,
                attn_dropout: cfg.dropout,
                resid_dropout: cfg.dropout,
            },
            rng,
        )?;
        let mlp = FeedForward::new(d, cfg.bias, cfg.activation, cfg.dropout, rng);
        Ok(TransformerBlock {
            ln1: ln(cfg.bias),
            attn,
            ln2: ln(cfg.bias),
            mlp,
            cfg,
        })
    }

    /// The configuration the block was made with.
    pub fn config(&self) -> &TransformerBlockConfig {
        &self.cfg
    }

    /// The layer norm before the attention.
    pub fn ln1(&self) -> &LayerNorm<T> {
        &self.ln1
    }

    /// The attention.
    pub fn attn(&self) -> &MultiHeadAttention<T> {
        &self.attn
    }

    /// The layer norm before the MLP.
    pub fn ln2(&self) -> &LayerNorm<T> {
        &self.ln2
    }

    /// The MLP.
    pub fn mlp(&self) -> &FeedForward<T> {
        &self.mlp
    }

    /// The block applied to `x` `[B, T, d_model]` with a key-padding mask
    /// `[B, T]` (nonzero = padding) passed to the attention; see
    /// [`MultiHeadAttention::forward_masked`].
    ///
    /// # Panics
    /// Panics when the shapes do not fit, naming them.
    #[track_caller]
    pub fn forward_masked(&self, x: &Tensor<T>, key_padding_mask: Option<&Tensor<T>>) -> Tensor<T> {
        or_panic(self.try_forward_masked(x, key_padding_mask))
    }

    /// Like [`forward_masked`](TransformerBlock::forward_masked), returning an
    /// error instead of panicking.
    ///
    /// # Errors
    /// As [`MultiHeadAttention::try_forward_masked`].
    pub fn try_forward_masked(
        &self,
        x: &Tensor<T>,
        key_padding_mask: Option<&Tensor<T>>,
    ) -> Result<Tensor<T>> {
        self.forward_impl(x, key_padding_mask, true)
    }

    pub(crate) fn forward_impl(
        &self,
        x: &Tensor<T>,
        key_padding_mask: Option<&Tensor<T>>,
        train: bool,
    ) -> Result<Tensor<T>> {
        let h = self.ln1.try_forward(x)?;
        let x = x + self.attn.forward_impl(&h, key_padding_mask, train)?;
        let h = self.ln2.try_forward(&x)?;
        Ok(&x + self.mlp.forward_impl(&h, train)?)
    }
}

impl<T: Element> Module<T> for TransformerBlock<T> {
    /// The block applied to `x` `[B, T, d_model]` → `[B, T, d_model]`.
    ///
    /// # Panics
    /// Panics when `x` is not `[B, T, d_model]`, naming the shapes.
    #[track_caller]
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        or_panic(self.forward_impl(x, None, true))
    }
}
