//! `Gpt`: a decoder-only transformer language model as nanoGPT's, with its
//! configuration, its initialisation, next-token loss and sampling.

use rand::{Rng, RngExt};

use crate::autograd::no_grad;
use crate::element::{c, Element};
use crate::error::{or_panic, Error, Result};
use crate::loss::cross_entropy;
use crate::nn::attention::check_heads;
use crate::nn::functional::{check_dropout_p, try_linear};
use crate::nn::{
    Activation, Dropout, Embedding, LayerNorm, Linear, Module, PositionalEmbedding,
    TransformerBlock, TransformerBlockConfig,
};
use crate::tensor::Tensor;

/// Which positional embedding a [`Gpt`] adds to its token embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Positions {
    /// A learned table `"wpe.weight"` `[context, d_model]` (nanoGPT's; the default).
    #[default]
    Learned,
    /// The fixed sinusoids of [`sinusoidal_positions`](crate::nn::sinusoidal_positions):
    /// no parameter.
    Sinusoidal,
}

/// The sizes and options of a [`Gpt`].
///
/// The default is a small character-level model with nanoGPT's defaults for
/// the options: vocabulary 65, context 64, width 128, 4 heads, 4 layers, no
/// dropout, biases, tied embeddings, learned positions, exact GELU. Set the
/// sizes you need and take the rest:
///
/// ```
/// use ferrograd::nn::{GptConfig, Positions};
/// let cfg = GptConfig { vocab: 100, context: 32, bias: false, ..Default::default() };
/// assert!(cfg.tie_weights);
/// assert_eq!(cfg.positions, Positions::Learned);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GptConfig {
    /// The number of token ids (ids run from 0 to `vocab − 1`).
    pub vocab: usize,
    /// The longest sequence the model reads (the number of positions).
    pub context: usize,
    /// The width of the embeddings and of every block.
    pub d_model: usize,
    /// The number of attention heads (it must divide `d_model`).
    pub n_head: usize,
    /// The number of transformer blocks.
    pub n_layer: usize,
    /// The dropout probability after the embeddings, on the attention weights,
    /// after each attention and after each MLP.
    pub dropout: f64,
    /// Whether the linear layers and the layer norms have biases.
    pub bias: bool,
    /// Whether the output layer reuses the token embedding (`logits = x ·
    /// wte.weightᵀ`, one parameter) instead of a head of its own.
    pub tie_weights: bool,
    /// Learned or sinusoidal positions.
    pub positions: Positions,
    /// The MLPs' nonlinearity.
    pub activation: Activation,
}

impl Default for GptConfig {
    fn default() -> Self {
        GptConfig {
            vocab: 65,
            context: 64,
            d_model: 128,
            n_head: 4,
            n_layer: 4,
            dropout: 0.0,
            bias: true,
            tie_weights: true,
            positions: Positions::Learned,
            activation: Activation::GeluErf,
        }
    }
}

/// How [`Gpt::generate`] picks each new token from the logits of the last
/// position: divided by `temperature`, restricted to the `top_k` largest
/// (when given), then drawn from their softmax. Temperature 0 is greedy
/// decoding: the arg max (the first one on ties), drawing nothing from the RNG;
/// so is `top_k: Some(1)`.
///
/// ```
/// use ferrograd::nn::Sampling;
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// let mut rng = StdRng::seed_from_u64(0);
/// let logits = [0.5f32, 3.0, 3.0, -1.0];
/// assert_eq!(Sampling::greedy().sample(&logits, &mut rng), 1); // the first max
/// let top2 = Sampling { temperature: 1.0, top_k: Some(2) };
/// for _ in 0..20 {
///     assert!([1, 2].contains(&top2.sample(&logits, &mut rng)));
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Divides the logits: below 1 sharpens the distribution, above 1 flattens
    /// it; 0 is greedy.
    pub temperature: f64,
    /// Keep only the `k` largest logits (those tied with the `k`-th are kept
    /// too, as nanoGPT); `None` keeps all.
    pub top_k: Option<usize>,
}

impl Default for Sampling {
    /// Temperature 1, no top-k: the model's own distribution.
    fn default() -> Self {
        Sampling {
            temperature: 1.0,
            top_k: None,
        }
    }
}

impl Sampling {
    /// Greedy decoding: temperature 0.
    pub const fn greedy() -> Self {
        Sampling {
            temperature: 0.0,
            top_k: None,
        }
    }

    fn check(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::invalid(
                "Sampling",
                format!(
                    "temperature must be finite and at least 0, got {}",
                    self.temperature
                ),
            ));
        }
        if self.top_k == Some(0) {
            return Err(Error::invalid(
                "Sampling",
                "top_k must be at least 1, got 0",
            ));
        }
        Ok(())
    }

    /// The index picked from `logits` (one position's scores over the
    /// vocabulary), drawing one uniform number from `rng` unless greedy.
    ///
    /// # Panics
    /// Panics when `logits` is empty, the temperature is negative or not
    /// finite, or `top_k` is `Some(0)`.
    #[track_caller]
    pub fn sample<T: Element, R: Rng + ?Sized>(&self, logits: &[T], rng: &mut R) -> usize {
        or_panic(self.check());
        assert!(!logits.is_empty(), "Sampling: no logits to sample from");
        let logits: Vec<f64> = logits.iter().map(|l| l.to_f64_lossless()).collect();
        if self.temperature == 0.0 || self.top_k == Some(1) {
            return argmax_first(&logits);
        }
        let mut scaled: Vec<f64> = logits.iter().map(|l| l / self.temperature).collect();
        if let Some(k) = self.top_k {
            if k < scaled.len() {
                let mut sorted = scaled.clone();
                sorted.sort_by(|a, b| b.total_cmp(a));
                let kth = sorted[k - 1];
                for s in &mut scaled {
                    if *s < kth {
                        *s = f64::NEG_INFINITY;
                    }
                }
            }
        }
        let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scaled.iter().map(|s| (s - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        let u = rng.random::<f64>() * total;
        let mut acc = 0.0;
        let mut last = 0;
        for (i, w) in weights.iter().enumerate() {
            if *w > 0.0 {
                acc += w;
                last = i;
                if u < acc {
                    return i;
                }
            }
        }
        last
    }
}

/// The index of the first largest value.
fn argmax_first(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// A GPT language model, as nanoGPT's `GPT`:
///
/// ```text
/// x = dropout(wte(ids) + wpe(0..T))          [B, T, d_model]
/// x = block(x)  for each of the n_layer pre-norm TransformerBlocks (causal)
/// logits = head(ln_f(x))                      [B, T, vocab]
/// ```
///
/// with `head` the token embedding itself (`x · wte.weightᵀ`) when the config
/// ties the weights. Parameters: `"wte.weight"` `[vocab, d]`, `"wpe.weight"`
/// `[context, d]` (learned positions only), `"blocks.{i}.…"` (the
/// [`TransformerBlock`] names), `"ln_f.weight"` (and `"ln_f.bias"` with biases),
/// `"head.weight"` `[vocab, d]` only when the weights are not tied (the head
/// never has a bias). With tied weights the embedding is one parameter,
/// listed once, whose gradient sums both uses.
///
/// Initialisation is nanoGPT's: every linear and embedding weight from
/// N(0, 0.02²), the residual output projections (`attn.proj.weight`,
/// `mlp.proj.weight`) from N(0, (0.02/√(2·n_layer))²), biases zero, layer
/// norms weight one (drawn in the order of
/// [`named_parameters`](crate::nn::ModuleParams::named_parameters)).
///
/// The dropouts (`"drop"` after the embeddings, and those of each block) are
/// [`Dropout`]s seeded from the construction RNG: `set_training(false)` turns
/// them off and `named_rng_states` saves them.
///
/// ```
/// use ferrograd::nn::{Gpt, GptConfig, Sampling};
/// use ferrograd::optim::{AdamW, AdamWConfig, Optimizer};
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let cfg = GptConfig { vocab: 10, context: 8, d_model: 16, n_head: 2, n_layer: 2, ..Default::default() };
/// let gpt: Gpt = Gpt::new(cfg, &mut rng);
/// assert_eq!(gpt.named_parameters()[0].0, "wte.weight");
///
/// // learn to count on, mod 10: 10 sequences of 8 tokens, starting at 0, 1, …, 9
/// let ids: Vec<usize> = (0..10).flat_map(|s| (s..s + 8).map(|i| i % 10)).collect();
/// let targets: Vec<usize> = ids.iter().map(|i| (i + 1) % 10).collect();
/// let mut opt = AdamW::new(gpt.parameters(), AdamWConfig { lr: 1e-2, ..Default::default() });
/// let first = gpt.loss(&ids, &targets, 10).item();
/// for _ in 0..40 {
///     let loss = gpt.loss(&ids, &targets, 10);
///     opt.step(&loss.backward()?)?;
/// }
/// assert!(gpt.loss(&ids, &targets, 10).item() < first / 4.0);
/// assert_eq!(gpt.forward_ids(&ids, 10).shape(), &[10, 8, 10]);
/// let new = gpt.generate(&[3, 4], 8, Sampling::greedy(), &mut rng);
/// assert_eq!(new, [5, 6, 7, 8, 9, 0, 1, 2]);
/// # Ok::<(), ferrograd::Error>(())
/// ```
#[derive(Debug, Module)]
pub struct Gpt<T: Element = f32> {
    wte: Embedding<T>,
    wpe: PositionalEmbedding<T>,
    drop: Dropout,
    blocks: Vec<TransformerBlock<T>>,
    ln_f: LayerNorm<T>,
    head: Option<Linear<T>>,
    #[module(skip)]
    cfg: GptConfig,
}

const OP: &str = "Gpt";

impl<T: Element> Gpt<T> {
    /// A model with the sizes and options of `cfg` and nanoGPT's
    /// initialisation, drawn from `rng`.
    ///
    /// # Panics
    /// Panics when `n_head` is 0 or does not divide `d_model` (naming both),
    /// `vocab` or `context` is 0, or `dropout` is not in `[0, 1]`; see
    /// [`try_new`](Gpt::try_new).
    #[track_caller]
    pub fn new<R: Rng + ?Sized>(cfg: GptConfig, rng: &mut R) -> Self {
        or_panic(Self::try_new(cfg, rng))
    }

    /// Like [`new`](Gpt::new), returning an error instead of panicking.
    ///
    /// ```
    /// use ferrograd::nn::{Gpt, GptConfig};
    /// use ferrograd::rand::{rngs::StdRng, SeedableRng};
    /// let cfg = GptConfig { d_model: 30, n_head: 4, ..Default::default() };
    /// let err = Gpt::<f32>::try_new(cfg, &mut StdRng::seed_from_u64(0)).unwrap_err();
    /// assert!(err.to_string().contains("d_model 30 is not divisible by n_head 4"));
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for the cases listed under [`new`](Gpt::new).
    pub fn try_new<R: Rng + ?Sized>(cfg: GptConfig, rng: &mut R) -> Result<Self> {
        check_heads(OP, cfg.d_model, cfg.n_head)?;
        if cfg.vocab == 0 || cfg.context == 0 {
            return Err(Error::invalid(
                OP,
                format!(
                    "vocab and context must be at least 1, got vocab {} and context {}",
                    cfg.vocab, cfg.context
                ),
            ));
        }
        check_dropout_p(cfg.dropout).map_err(|_| {
            Error::invalid(
                OP,
                format!("dropout has to be between 0 and 1, got {}", cfg.dropout),
            )
        })?;
        let d = cfg.d_model;
        let wte = Embedding::from_weight(Tensor::zeros(&[cfg.vocab, d]))?;
        let wpe = match cfg.positions {
            Positions::Learned => {
                PositionalEmbedding::Learned(Embedding::from_weight(Tensor::zeros(&[
                    cfg.context,
                    d,
                ]))?)
            }
            Positions::Sinusoidal => PositionalEmbedding::sinusoidal(cfg.context, d),
        };
        let drop = Dropout::new(cfg.dropout, rng.random());
        let block_cfg = TransformerBlockConfig {
            d_model: d,
            n_head: cfg.n_head,
            causal: true,
            bias: cfg.bias,
            dropout: cfg.dropout,
            activation: cfg.activation,
        };
        let blocks = (0..cfg.n_layer)
            .map(|_| TransformerBlock::try_new(block_cfg, rng))
            .collect::<Result<Vec<_>>>()?;
        let eps: T = c(LayerNorm::<T>::DEFAULT_EPS);
        let ln_f = if cfg.bias {
            LayerNorm::new(d, eps)
        } else {
            LayerNorm::new_no_bias(d, eps)
        };
        let head = (!cfg.tie_weights).then(|| {
            Linear::from_tensors(Tensor::zeros(&[cfg.vocab, d]), None)
                .expect("a [vocab, d] weight fits a Linear")
        });
        let gpt = Gpt {
            wte,
            wpe,
            drop,
            blocks,
            ln_f,
            head,
            cfg,
        };
        gpt.init_weights(rng);
        Ok(gpt)
    }

    /// nanoGPT's `_init_weights` and its residual-projection rule.
    fn init_weights<R: Rng + ?Sized>(&self, rng: &mut R) {
        let std = 0.02;
        let proj_std = 0.02 / (2.0 * self.cfg.n_layer as f64).sqrt();
        for (name, p) in self.named_parameters() {
            let value = if name.ends_with(".bias") {
                Tensor::zeros(p.shape())
            } else if p.ndim() == 2 {
                let s = if name.ends_with("attn.proj.weight") || name.ends_with("mlp.proj.weight") {
                    proj_std
                } else {
                    std
                };
                Tensor::randn(p.shape(), rng).mul_scalar(c(s))
            } else {
                continue; // layer-norm weights stay ones
            };
            p.assign(&value).expect("the same shape");
        }
    }

    /// The configuration the model was made with.
    pub fn config(&self) -> &GptConfig {
        &self.cfg
    }

    /// The token embedding, `[vocab, d_model]` (also the output layer when the
    /// weights are tied).
    pub fn wte(&self) -> &Embedding<T> {
        &self.wte
    }

    /// The positional embedding.
    pub fn wpe(&self) -> &PositionalEmbedding<T> {
        &self.wpe
    }

    /// The transformer blocks, in order.
    pub fn blocks(&self) -> &[TransformerBlock<T>] {
        &self.blocks
    }

    /// The final layer norm.
    pub fn ln_f(&self) -> &LayerNorm<T> {
        &self.ln_f
    }

    /// The output layer `[vocab, d_model]` (no bias), or `None` when the
    /// weights are tied to [`wte`](Gpt::wte).
    pub fn head(&self) -> Option<&Linear<T>> {
        self.head.as_ref()
    }

    /// The number of trained numbers (a tied embedding counted once).
    pub fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|p| p.numel()).sum()
    }

    /// Checks the token ids and returns the sequence length.
    fn check_ids(&self, ids: &[usize], batch: usize) -> Result<usize> {
        if batch == 0 || ids.is_empty() || !ids.len().is_multiple_of(batch) {
            return Err(Error::invalid(
                OP,
                format!(
                    "the ids must be `batch` non-empty sequences of the same length, got {} ids for batch {batch}",
                    ids.len()
                ),
            ));
        }
        let t = ids.len() / batch;
        if t > self.cfg.context {
            return Err(Error::invalid(
                OP,
                format!(
                    "a sequence of {t} tokens is longer than the context of {} tokens",
                    self.cfg.context
                ),
            ));
        }
        if let Some((i, id)) = ids.iter().enumerate().find(|(_, &id)| id >= self.cfg.vocab) {
            return Err(Error::invalid(
                OP,
                format!(
                    "token id {id} (at index {i}) is not below the vocabulary size {}",
                    self.cfg.vocab
                ),
            ));
        }
        Ok(t)
    }

    /// The logits; `train: false` applies no dropout whatever the mode.
    fn logits(&self, ids: &[usize], batch: usize, train: bool) -> Result<Tensor<T>> {
        let t = self.check_ids(ids, batch)?;
        let x = self.wte.try_forward_ids(ids, &[batch, t])? + self.wpe.try_forward_len(t)?;
        let mut x = if train { self.drop.forward(&x) } else { x };
        for block in &self.blocks {
            x = block.forward_impl(&x, None, train)?;
        }
        let x = self.ln_f.try_forward(&x)?;
        match &self.head {
            Some(head) => head.try_forward(&x),
            None => try_linear(&x, self.wte.weight(), None),
        }
    }

    /// The logits `[batch, t, vocab]` of the token ids `ids`, laid out
    /// row-major as `[batch, t]` (`t = ids.len() / batch ≤ context`): at each
    /// position, the scores of the token that follows.
    ///
    /// # Panics
    /// Panics, naming the sizes, when `ids.len()` is not a positive multiple of
    /// `batch`, a sequence is longer than the context, or an id is not below
    /// the vocabulary size; see [`try_forward_ids`](Gpt::try_forward_ids).
    #[track_caller]
    pub fn forward_ids(&self, ids: &[usize], batch: usize) -> Tensor<T> {
        or_panic(self.try_forward_ids(ids, batch))
    }

    /// Like [`forward_ids`](Gpt::forward_ids), returning an error instead of
    /// panicking.
    ///
    /// ```
    /// use ferrograd::nn::{Gpt, GptConfig};
    /// use ferrograd::rand::{rngs::StdRng, SeedableRng};
    /// let cfg = GptConfig { vocab: 5, context: 4, d_model: 8, n_head: 2, n_layer: 1, ..Default::default() };
    /// let gpt = Gpt::<f32>::new(cfg, &mut StdRng::seed_from_u64(0));
    /// let err = gpt.try_forward_ids(&[0, 1, 2, 3, 4, 0], 1).unwrap_err();
    /// assert_eq!(err.to_string(), "Gpt: a sequence of 6 tokens is longer than the context of 4 tokens");
    /// let err = gpt.try_forward_ids(&[0, 7], 1).unwrap_err();
    /// assert_eq!(err.to_string(), "Gpt: token id 7 (at index 1) is not below the vocabulary size 5");
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for the cases listed under
    /// [`forward_ids`](Gpt::forward_ids).
    pub fn try_forward_ids(&self, ids: &[usize], batch: usize) -> Result<Tensor<T>> {
        self.logits(ids, batch, true)
    }

    /// The mean next-token cross-entropy (nats per token) over every position
    /// of the `batch` sequences in `ids`, `targets` laid out as `ids` (the
    /// token that follows each one): a 0-d tensor to call `backward` on.
    ///
    /// # Panics
    /// As [`forward_ids`](Gpt::forward_ids), and when `targets` is not as long
    /// as `ids` or holds an id not below the vocabulary size.
    #[track_caller]
    pub fn loss(&self, ids: &[usize], targets: &[usize], batch: usize) -> Tensor<T> {
        or_panic(self.try_loss(ids, targets, batch))
    }

    /// Like [`loss`](Gpt::loss), returning an error instead of panicking.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for the cases listed under [`loss`](Gpt::loss).
    pub fn try_loss(&self, ids: &[usize], targets: &[usize], batch: usize) -> Result<Tensor<T>> {
        if targets.len() != ids.len() {
            return Err(Error::invalid(
                OP,
                format!(
                    "there must be one target per id, got {} targets for {} ids",
                    targets.len(),
                    ids.len()
                ),
            ));
        }
        if let Some((i, id)) = targets
            .iter()
            .enumerate()
            .find(|(_, &id)| id >= self.cfg.vocab)
        {
            return Err(Error::invalid(
                OP,
                format!(
                    "target id {id} (at index {i}) is not below the vocabulary size {}",
                    self.cfg.vocab
                ),
            ));
        }
        let logits = self.try_forward_ids(ids, batch)?;
        cross_entropy(&logits.reshape(&[ids.len(), self.cfg.vocab]), targets)
    }

    /// Continues `prompt` by `max_new_tokens` tokens, one at a time: each is
    /// picked by `sampling` from the logits of the last position given the
    /// last `context` tokens so far (longer sequences are cropped to their
    /// end). Returns the new tokens only.
    ///
    /// Runs under [`no_grad`] (nothing is recorded) and without dropout,
    /// whatever the model's mode (no dropout mask is drawn, so the dropouts'
    /// RNG states are left as they are); `rng` is drawn from once per token
    /// unless the sampling is greedy.
    ///
    /// ```
    /// use ferrograd::nn::{Gpt, GptConfig, Sampling};
    /// use ferrograd::rand::{rngs::StdRng, SeedableRng};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let cfg = GptConfig { vocab: 6, context: 4, d_model: 8, n_head: 2, n_layer: 1, ..Default::default() };
    /// let gpt = Gpt::<f32>::new(cfg, &mut rng);
    /// let sampling = Sampling { temperature: 0.8, top_k: Some(3) };
    /// let new = gpt.generate(&[1, 2, 3], 10, sampling, &mut rng);
    /// assert_eq!(new.len(), 10);
    /// assert!(new.iter().all(|&t| t < 6));
    /// ```
    ///
    /// # Panics
    /// Panics when `prompt` is empty or holds an id not below the vocabulary
    /// size, or `sampling` is invalid (a negative or infinite temperature,
    /// `top_k` 0).
    #[track_caller]
    pub fn generate<R: Rng + ?Sized>(
        &self,
        prompt: &[usize],
        max_new_tokens: usize,
        sampling: Sampling,
        rng: &mut R,
    ) -> Vec<usize> {
        or_panic(self.try_generate(prompt, max_new_tokens, sampling, rng))
    }

    /// Like [`generate`](Gpt::generate), returning an error instead of
    /// panicking.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for the cases listed under
    /// [`generate`](Gpt::generate).
    pub fn try_generate<R: Rng + ?Sized>(
        &self,
        prompt: &[usize],
        max_new_tokens: usize,
        sampling: Sampling,
        rng: &mut R,
    ) -> Result<Vec<usize>> {
        if prompt.is_empty() {
            return Err(Error::invalid(
                OP,
                "generate needs a prompt of at least one token",
            ));
        }
        sampling.check()?;
        let _guard = no_grad();
        let mut tokens = prompt.to_vec();
        let vocab = self.cfg.vocab;
        for _ in 0..max_new_tokens {
            let start = tokens.len().saturating_sub(self.cfg.context);
            let window = &tokens[start..];
            let t = window.len();
            let logits = self.logits(window, 1, false)?;
            let last = logits.narrow(1, t - 1, 1).to_vec();
            debug_assert_eq!(last.len(), vocab);
            let next = sampling.sample(&last, rng);
            tokens.push(next);
        }
        Ok(tokens.split_off(prompt.len()))
    }
}

impl<T: Element> Module<T> for Gpt<T> {
    /// The logits `[B, T, vocab]` of the ids in `ids` `[B, T]` (whole numbers
    /// stored as floats; a 1-D `[T]` is one sequence, giving `[T, vocab]`), as
    /// [`forward_ids`](Gpt::forward_ids).
    ///
    /// # Panics
    /// Panics when an element of `ids` is not a whole number below the
    /// vocabulary size, or as [`forward_ids`](Gpt::forward_ids).
    #[track_caller]
    fn forward(&self, ids: &Tensor<T>) -> Tensor<T> {
        let (batch, one) = match ids.shape() {
            &[b, _] => (b, false),
            &[_] => (1, true),
            s => panic!("Gpt: the ids must be [batch, time] or [time], got shape {s:?}"),
        };
        let idx: Vec<usize> = ids
            .to_vec()
            .into_iter()
            .map(|v| {
                let f = v.to_f64_lossless();
                if f.fract() == 0.0 && f >= 0.0 && f < self.cfg.vocab as f64 {
                    f as usize
                } else {
                    panic!(
                        "Gpt: id {f} is not a whole number below the vocabulary size {}",
                        self.cfg.vocab
                    )
                }
            })
            .collect();
        let logits = self.forward_ids(&idx, batch);
        if one {
            logits.reshape(&[idx.len(), self.cfg.vocab])
        } else {
            logits
        }
    }
}
