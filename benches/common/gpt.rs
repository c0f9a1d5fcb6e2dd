//! W5: a tiny GPT, as `bench_torch.py`'s `GPT(sdpa=False)`: token and positional
//! embeddings, pre-LayerNorm blocks of causal self-attention (written out:
//! QKᵀ/√hd + mask, softmax, ·V; or, with `GptConfig::W5_FUSED`, the fused op, as
//! `GPT(sdpa=True)`) and a 4× MLP with tanh-GELU, a final LayerNorm
//! and a linear head, trained with cross-entropy over every position and AdamW.
//! Shared by `benches/w5_gpt.rs` and `examples/profile_gpt.rs`.

use ferrograd::loss::cross_entropy;
use ferrograd::nn::functional::scaled_dot_product_attention;
use ferrograd::nn::{Embedding, LayerNorm, Linear, Module};
use ferrograd::optim::{AdamW, AdamWConfig, Optimizer};
use ferrograd::rand::{rngs::StdRng, Rng, RngExt, SeedableRng};
use ferrograd::Tensor;

/// The model's sizes.
#[derive(Clone, Copy, Debug)]
pub struct GptConfig {
    pub vocab: usize,
    pub context: usize,
    pub d_model: usize,
    pub n_head: usize,
    pub n_layer: usize,
    /// The attention through the fused op
    /// (`nn::functional::scaled_dot_product_attention`, as `GPT(sdpa=True)`)
    /// instead of written out.
    pub fused: bool,
}

impl GptConfig {
    /// W5's sizes: vocab 65, context 64, d_model 128, 4 heads, 2 layers.
    pub const W5: GptConfig = GptConfig {
        vocab: 65,
        context: 64,
        d_model: 128,
        n_head: 4,
        n_layer: 2,
        fused: false,
    };

    /// W5's sizes with the fused attention.
    pub const W5_FUSED: GptConfig = GptConfig {
        fused: true,
        ..GptConfig::W5
    };
}

/// `x + attn(ln1(x))`, then `x + fc2(gelu(fc(ln2(x))))`.
#[derive(Module)]
pub struct Block {
    #[module(skip)]
    n_head: usize,
    #[module(skip)]
    fused: bool,
    ln1: LayerNorm,
    ln2: LayerNorm,
    qkv: Linear,
    proj: Linear,
    fc: Linear,
    fc2: Linear,
    /// `[context, context]`: −∞ above the diagonal, 0 elsewhere (a constant,
    /// not saved).
    #[module(skip)]
    mask: Tensor,
}

impl Block {
    fn new(cfg: &GptConfig, rng: &mut impl Rng) -> Self {
        let d = cfg.d_model;
        let t = cfg.context;
        let mask = (0..t * t)
            .map(|i| {
                if i % t > i / t {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        Block {
            n_head: cfg.n_head,
            fused: cfg.fused,
            ln1: LayerNorm::with_default_eps(d),
            ln2: LayerNorm::with_default_eps(d),
            qkv: Linear::new(d, 3 * d, true, rng),
            proj: Linear::new(d, d, true, rng),
            fc: Linear::new(d, 4 * d, true, rng),
            fc2: Linear::new(4 * d, d, true, rng),
            mask: Tensor::from_vec(mask, &[t, t]).unwrap(),
        }
    }

    /// Causal self-attention of `x` `[B, T, C]`.
    fn attention(&self, x: &Tensor) -> Tensor {
        let &[b, t, c] = x.shape() else {
            panic!("attention: expected [B, T, C], got {:?}", x.shape())
        };
        let (nh, hd) = (self.n_head, c / self.n_head);
        let qkv = self.qkv.forward(x);
        // [B, T, C] → [B, nh, T, hd]
        let heads = |i: usize| {
            qkv.narrow(2, i * c, c)
                .reshape(&[b, t, nh, hd])
                .transpose(1, 2)
        };
        let (q, k, v) = (heads(0), heads(1), heads(2));
        let y = if self.fused {
            scaled_dot_product_attention(&q, &k, &v, None, true, 0.0, None)
        } else {
            self.written_out(&q, &k, &v)
        };
        self.proj.forward(&y.transpose(1, 2).reshape(&[b, t, c]))
    }

    /// `softmax(q·kᵀ/√hd + mask)·v`, every intermediate a tensor of the graph.
    fn written_out(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        let &[_, _, t, hd] = q.shape() else {
            panic!(
                "attention: expected q [B, heads, T, hd], got {:?}",
                q.shape()
            )
        };
        let mask = self.mask.narrow(0, 0, t).narrow(1, 0, t);
        let att = q.matmul(&k.transpose(-2, -1)) * (1.0 / (hd as f32).sqrt()) + mask;
        att.softmax(-1).matmul(v)
    }
}

impl Module for Block {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = x + self.attention(&self.ln1.forward(x));
        let h = self.fc.forward(&self.ln2.forward(&x)).gelu();
        x + self.fc2.forward(&h)
    }
}

/// The whole model; parameters named as nanoGPT's (`"blocks.0.qkv.weight"`).
#[derive(Module)]
pub struct Gpt {
    #[module(skip)]
    cfg: GptConfig,
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: Linear,
}

impl Gpt {
    pub fn new(cfg: GptConfig, rng: &mut impl Rng) -> Self {
        Gpt {
            cfg,
            wte: Embedding::new(cfg.vocab, cfg.d_model, rng),
            wpe: Embedding::new(cfg.context, cfg.d_model, rng),
            blocks: (0..cfg.n_layer).map(|_| Block::new(&cfg, rng)).collect(),
            ln_f: LayerNorm::with_default_eps(cfg.d_model),
            head: Linear::new(cfg.d_model, cfg.vocab, true, rng),
        }
    }

    pub fn config(&self) -> &GptConfig {
        &self.cfg
    }

    /// Logits `[B, T, vocab]` for the token ids `idx` (row-major `[B, T]`).
    pub fn forward(&self, idx: &[usize], batch: usize) -> Tensor {
        let t = idx.len() / batch;
        let positions: Vec<usize> = (0..t).collect();
        let mut x = self.wte.forward_ids(idx, &[batch, t]) + self.wpe.forward_ids(&positions, &[t]);
        for block in &self.blocks {
            x = block.forward(&x);
        }
        self.head.forward(&self.ln_f.forward(&x))
    }
}

/// A model, its AdamW optimizer and one fixed batch of random tokens.
pub struct GptTraining {
    model: Gpt,
    opt: AdamW,
    batch: usize,
    x: Vec<usize>,
    y: Vec<usize>,
}

impl GptTraining {
    /// W5: batch 16 of full-context random sequences, AdamW lr 3e-4 (weight decay 0.01).
    pub fn new(cfg: GptConfig, batch: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let model = Gpt::new(cfg, &mut rng);
        let opt = AdamW::new_named(
            model.named_parameters(),
            AdamWConfig {
                lr: 3e-4,
                ..Default::default()
            },
        );
        let n = batch * cfg.context;
        let mut tokens =
            || -> Vec<usize> { (0..n).map(|_| rng.random_range(0..cfg.vocab)).collect() };
        let (x, y) = (tokens(), tokens());
        GptTraining {
            model,
            opt,
            batch,
            x,
            y,
        }
    }

    pub fn model(&self) -> &Gpt {
        &self.model
    }

    /// One full training step; returns the loss before the update.
    pub fn step(&mut self) -> f32 {
        let logits = self.model.forward(&self.x, self.batch);
        let vocab = self.model.config().vocab;
        let logits = logits.reshape(&[self.x.len(), vocab]);
        let loss = cross_entropy(&logits, &self.y).expect("targets are in the vocabulary");
        let grads = loss.backward().expect("the loss is a scalar");
        self.opt
            .step(&grads)
            .expect("every parameter has a gradient");
        loss.item()
    }
}
