//! candle (candle-core + candle-nn, CPU device, f32). Its matmul is the `gemm`
//! crate on rayon with `candle_core::utils::get_num_threads()` threads, which
//! reads `CANDLE_NUM_THREADS`, then `RAYON_NUM_THREADS`; its element-wise ops
//! run on the calling thread (a few, e.g. softmax_last_dim, use rayon).
//!
//! candle's fused `softmax_last_dim` and `ops::layer_norm` (what
//! `candle_nn::LayerNorm::forward` takes on contiguous input) have no backward,
//! so W5 builds both from differentiable ops, as `candle_nn::ops::softmax` does.

use candle_core::{DType, Device, Module, Result, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap, SGD};

use crate::timing::*;

const PEER: &str = "candle";

pub fn w1(variant: &str) -> Result<()> {
    let dev = Device::Cpu;
    let mut rng = Rng::new(1);
    for n in GEMM_SIZES {
        let a = Tensor::from_vec(rng.normals(n * n), (n, n), &dev)?;
        let b = Tensor::from_vec(rng.normals(n * n), (n, n), &dev)?;
        let t = bench(|| a.matmul(&b).unwrap());
        record_gemm(PEER, variant, n, &t);
    }
    Ok(())
}

struct Mlp {
    layers: Vec<candle_nn::Linear>,
}

impl Mlp {
    fn new(sizes: &[usize], vb: VarBuilder) -> Result<Self> {
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| candle_nn::linear(w[0], w[1], vb.pp(format!("l{i}"))))
            .collect::<Result<_>>()?;
        Ok(Mlp { layers })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(&x)?;
            if i + 1 < self.layers.len() {
                x = x.relu()?;
            }
        }
        Ok(x)
    }
}

/// W2's model, optimizer and batch; `step` is one full training step.
pub struct W2 {
    model: Mlp,
    opt: AdamW,
    x: Tensor,
    y: Tensor,
}

impl W2 {
    pub fn new(batch: usize) -> Result<Self> {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let model = Mlp::new(&[784, 256, 256, 10], vb)?;
        // Adam = AdamW without weight decay.
        let params = ParamsAdamW {
            lr: 1e-3,
            weight_decay: 0.0,
            ..Default::default()
        };
        let opt = AdamW::new(varmap.all_vars(), params)?;
        let mut rng = Rng::new(2);
        let x = Tensor::from_vec(rng.normals(batch * 784), (batch, 784), &dev)?;
        let labels: Vec<u32> = rng
            .labels(batch, 10)
            .into_iter()
            .map(|l| l as u32)
            .collect();
        let y = Tensor::from_vec(labels, batch, &dev)?;
        Ok(W2 { model, opt, x, y })
    }

    pub fn step(&mut self) -> Result<f32> {
        let logits = self.model.forward(&self.x)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &self.y)?;
        self.opt.backward_step(&loss)?;
        loss.to_scalar::<f32>()
    }
}

pub fn w2(variant: &str) -> Result<()> {
    for b in MLP_BATCHES {
        let mut w = W2::new(b)?;
        let first = w.step()?;
        let last = (0..4).map(|_| w.step().unwrap()).last().unwrap();
        assert!(last < first, "candle W2 B={b}: loss {first} -> {last}");
        let t = bench(|| w.step().unwrap());
        record("W2", PEER, variant, &format!("B={b}"), "ms", &t, ms);
    }
    Ok(())
}

pub fn w3(variant: &str) -> Result<()> {
    let x0 = Var::new(&[1.0f32], &Device::Cpu)?;
    let run = || -> f32 {
        let mut x = x0.as_tensor().clone();
        for _ in 0..CHAIN_OPS / 2 {
            x = ((x * 1.0001).unwrap() + 0.0001).unwrap();
        }
        let grads = x.backward().unwrap();
        grads.get(&x0).unwrap().to_vec1::<f32>().unwrap()[0]
    };
    bench_chain(PEER, variant, run);
    Ok(())
}

pub fn w4(variant: &str) -> Result<()> {
    let dev = Device::Cpu;
    let (xs, ys) = moons();
    let n = ys.len();
    let x = Tensor::from_vec(xs, (n, 2), &dev)?;
    let y = Tensor::from_vec(ys, n, &dev)?;
    let varmap = VarMap::new();
    let model = Mlp::new(
        &[2, 16, 16, 1],
        VarBuilder::from_varmap(&varmap, DType::F32, &dev),
    )?;
    let vars = varmap.all_vars();
    let mut opt = SGD::new(vars.clone(), W4_LR as f64)?;
    let mut step = || -> f32 {
        let scores = model.forward(&x).unwrap().squeeze(1).unwrap();
        let margin = (1.0 - (&y * &scores).unwrap())
            .unwrap()
            .relu()
            .unwrap()
            .mean_all()
            .unwrap();
        let mut reg = vars[0].as_tensor().sqr().unwrap().sum_all().unwrap();
        for v in &vars[1..] {
            reg = (reg + v.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
        }
        let loss = (margin + (reg * W4_ALPHA as f64).unwrap()).unwrap();
        opt.backward_step(&loss).unwrap();
        loss.to_scalar::<f32>().unwrap()
    };
    let first = step();
    let last = (0..19).map(|_| step()).last().unwrap();
    assert!(last < first, "candle W4: loss {first} -> {last}");
    let t = bench(step);
    record("W4", PEER, variant, "2-16-16-1", "ms", &t, ms);
    Ok(())
}

// W5: the tiny GPT of WORKLOADS.md, with the manual attention of bench_torch.py.
const VOCAB: usize = 65;
const CTX: usize = 64;
const DM: usize = 128;
const HEADS: usize = 4;
const LAYERS: usize = 2;
const BATCH: usize = 16;

/// LayerNorm from differentiable ops (the fused one has no backward).
struct Ln {
    w: Tensor,
    b: Tensor,
}

impl Ln {
    fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Ln {
            w: vb.get_with_hints(DM, "weight", candle_nn::Init::Const(1.0))?,
            b: vb.get_with_hints(DM, "bias", candle_nn::Init::Const(0.0))?,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        xn.broadcast_mul(&self.w)?.broadcast_add(&self.b)
    }
}

struct Block {
    ln1: Ln,
    ln2: Ln,
    qkv: candle_nn::Linear,
    proj: candle_nn::Linear,
    fc: candle_nn::Linear,
    fc2: candle_nn::Linear,
}

impl Block {
    fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Block {
            ln1: Ln::new(vb.pp("ln1"))?,
            ln2: Ln::new(vb.pp("ln2"))?,
            qkv: candle_nn::linear(DM, 3 * DM, vb.pp("qkv"))?,
            proj: candle_nn::linear(DM, DM, vb.pp("proj"))?,
            fc: candle_nn::linear(DM, 4 * DM, vb.pp("fc"))?,
            fc2: candle_nn::linear(4 * DM, DM, vb.pp("fc2"))?,
        })
    }

    fn attn(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let hd = c / HEADS;
        let qkv = self.qkv.forward(x)?;
        let heads = |i: usize| -> Result<Tensor> {
            qkv.narrow(2, i * c, c)?
                .reshape((b, t, HEADS, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
        let att = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?.broadcast_add(mask)?;
        let att = candle_nn::ops::softmax(&att, D::Minus1)?;
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, c))?;
        self.proj.forward(&y)
    }

    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let x = (x + self.attn(&self.ln1.forward(x)?, mask)?)?;
        let h = self.fc.forward(&self.ln2.forward(&x)?)?.gelu()?; // tanh approximation
        &x + self.fc2.forward(&h)?
    }
}

struct Gpt {
    wte: candle_nn::Embedding,
    wpe: candle_nn::Embedding,
    blocks: Vec<Block>,
    ln_f: Ln,
    head: candle_nn::Linear,
    pos: Tensor,
    mask: Tensor,
}

impl Gpt {
    fn new(vb: VarBuilder) -> Result<Self> {
        let dev = vb.device().clone();
        let mask: Vec<f32> = (0..CTX * CTX)
            .map(|i| {
                if i % CTX > i / CTX {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Gpt {
            wte: candle_nn::embedding(VOCAB, DM, vb.pp("wte"))?,
            wpe: candle_nn::embedding(CTX, DM, vb.pp("wpe"))?,
            blocks: (0..LAYERS)
                .map(|i| Block::new(vb.pp(format!("h{i}"))))
                .collect::<Result<_>>()?,
            ln_f: Ln::new(vb.pp("ln_f"))?,
            head: candle_nn::linear(DM, VOCAB, vb.pp("head"))?,
            pos: Tensor::arange(0u32, CTX as u32, &dev)?,
            mask: Tensor::from_vec(mask, (CTX, CTX), &dev)?,
        })
    }

    fn forward(&self, idx: &Tensor) -> Result<Tensor> {
        let mut x = self
            .wte
            .forward(idx)?
            .broadcast_add(&self.wpe.forward(&self.pos)?)?;
        for b in &self.blocks {
            x = b.forward(&x, &self.mask)?;
        }
        self.head.forward(&self.ln_f.forward(&x)?)
    }
}

pub fn w5(variant: &str) -> Result<()> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let model = Gpt::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    // torch.optim.AdamW's defaults besides the rate.
    let params = ParamsAdamW {
        lr: 3e-4,
        weight_decay: 0.01,
        ..Default::default()
    };
    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    let mut rng = Rng::new(5);
    let tokens = |rng: &mut Rng| -> Result<Tensor> {
        let v: Vec<u32> = rng
            .labels(BATCH * CTX, VOCAB)
            .into_iter()
            .map(|l| l as u32)
            .collect();
        Tensor::from_vec(v, (BATCH, CTX), &dev)
    };
    let (x, y) = (tokens(&mut rng)?, tokens(&mut rng)?.flatten_all()?);
    let mut step = || -> f32 {
        let logits = model
            .forward(&x)
            .unwrap()
            .reshape((BATCH * CTX, VOCAB))
            .unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        opt.backward_step(&loss).unwrap();
        loss.to_scalar::<f32>().unwrap()
    };
    let first = step();
    let last = (0..4).map(|_| step()).last().unwrap();
    assert!(last < first, "candle W5: loss {first} -> {last}");
    let t = bench_with(5, 0.3, step);
    record(
        "W5",
        PEER,
        &format!("{variant} manual"),
        "B16 T64",
        "ms",
        &t,
        ms,
    );
    Ok(())
}
