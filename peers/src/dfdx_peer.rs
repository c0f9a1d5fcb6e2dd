//! dfdx 0.13 (the `Cpu` device, f32). Its matmul is the `gemm` crate (0.15) with
//! `Parallelism::Rayon(rayon::current_num_threads())`, so `RAYON_NUM_THREADS`
//! sets its threads; element-wise ops run on the calling thread.
//!
//! Shapes are checked at compile time: the layer sizes are const generics, the
//! batch a runtime `usize`. Gradients go to a `Gradients` allocated once
//! (`alloc_grads`) and zeroed after each update, as dfdx's docs advise.
//!
//! W5 (the tiny GPT) is not written for dfdx: WORKLOADS.md asks it of candle
//! only, and a GPT with every shape a const generic was beyond this harness's
//! time box. It records nothing.

use dfdx::losses::cross_entropy_with_logits_loss;
use dfdx::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use dfdx::prelude::*;

use crate::timing::*;

const PEER: &str = "dfdx";

pub fn w1(variant: &str) {
    let dev: Cpu = Default::default();
    let mut rng = Rng::new(1);
    for n in GEMM_SIZES {
        let a = dev.tensor_from_vec(rng.normals(n * n), (n, n));
        let b = dev.tensor_from_vec(rng.normals(n * n), (n, n));
        let t = bench(|| a.clone().matmul(b.clone()));
        record_gemm(PEER, variant, n, &t);
    }
}

type MlpSpec = (
    Linear<784, 256>,
    ReLU,
    Linear<256, 256>,
    ReLU,
    Linear<256, 10>,
);
type MlpModel = <MlpSpec as BuildOnDevice<Cpu, f32>>::Built;

/// W2's model, optimizer and batch; `step` is one full training step.
pub struct W2 {
    model: MlpModel,
    opt: Adam<MlpModel, f32, Cpu>,
    grads: Option<Gradients<f32, Cpu>>,
    x: Tensor<(usize, Const<784>), f32, Cpu>,
    y: Tensor<(usize, Const<10>), f32, Cpu>,
}

impl W2 {
    pub fn new(batch: usize) -> Self {
        let dev: Cpu = Default::default();
        let model = dev.build_module::<MlpSpec, f32>();
        let opt = Adam::new(
            &model,
            AdamConfig {
                lr: 1e-3,
                ..Default::default()
            },
        );
        let grads = Some(model.alloc_grads());
        let mut rng = Rng::new(2);
        let x = dev.tensor_from_vec(rng.normals(batch * 784), (batch, Const::<784>));
        // dfdx's cross-entropy takes target probabilities: one-hot rows.
        let mut onehot = vec![0.0f32; batch * 10];
        for (i, l) in rng.labels(batch, 10).into_iter().enumerate() {
            onehot[i * 10 + l] = 1.0;
        }
        let y = dev.tensor_from_vec(onehot, (batch, Const::<10>));
        W2 {
            model,
            opt,
            grads,
            x,
            y,
        }
    }

    pub fn step(&mut self) -> f32 {
        let grads = self.grads.take().expect("gradients");
        let logits = self.model.forward_mut(self.x.trace(grads));
        let loss = cross_entropy_with_logits_loss(logits, self.y.clone());
        let value = loss.array();
        let mut grads = loss.backward();
        self.opt
            .update(&mut self.model, &grads)
            .expect("adam update");
        self.model.zero_grads(&mut grads);
        self.grads = Some(grads);
        value
    }
}

pub fn w2(variant: &str) {
    for b in MLP_BATCHES {
        let mut w = W2::new(b);
        let first = w.step();
        let last = (0..4).map(|_| w.step()).last().unwrap();
        assert!(last < first, "dfdx W2 B={b}: loss {first} -> {last}");
        let t = bench(|| w.step());
        record("W2", PEER, variant, &format!("B={b}"), "ms", &t, ms);
    }
}

pub fn w3(variant: &str) {
    let dev: Cpu = Default::default();
    let x0: Tensor<Rank1<1>, f32, Cpu> = dev.tensor([1.0]);
    let run = || -> f32 {
        let mut x = x0.clone().traced(x0.alloc_grads());
        for _ in 0..CHAIN_OPS / 2 {
            x = x * 1.0001 + 0.0001;
        }
        // backward needs a rank-0 tensor: one sum more (10,001 ops in all).
        let grads = x.sum::<Rank0, _>().backward();
        grads.get(&x0).array()[0]
    };
    bench_chain(PEER, variant, run);
}

/// `sum + Σ p²`, with `p` put on `sum`'s tape.
macro_rules! add_square_sum {
    ($sum:expr, $p:expr) => {{
        let (sum, tape) = $sum.split_tape();
        $p.clone().put_tape(tape).square().sum::<Rank0, _>() + sum
    }};
}

type MoonsSpec = (Linear<2, 16>, ReLU, Linear<16, 16>, ReLU, Linear<16, 1>);
const MOONS: usize = 100;

pub fn w4(variant: &str) {
    let dev: Cpu = Default::default();
    let (xs, ys) = moons();
    assert_eq!(ys.len(), MOONS);
    let x: Tensor<Rank2<MOONS, 2>, f32, Cpu> = dev.tensor_from_vec(xs, (Const, Const));
    let y: Tensor<Rank1<MOONS>, f32, Cpu> = dev.tensor_from_vec(ys, (Const,));
    let mut model = dev.build_module::<MoonsSpec, f32>();
    let mut opt = Sgd::new(
        &model,
        SgdConfig {
            lr: W4_LR as f64,
            ..Default::default()
        },
    );
    let mut grads = Some(model.alloc_grads());
    let mut step = || -> f32 {
        let scores = model.forward(x.trace(grads.take().unwrap()));
        let scores = scores.reshape::<Rank1<MOONS>>();
        let margin = ((scores * y.clone()).negate() + 1.0)
            .relu()
            .mean::<Rank0, _>();
        // Σw² over every weight and bias on the same tape: a clone of a
        // parameter keeps its id, so the gradient lands on the parameter.
        let (margin, tape) = margin.split_tape();
        let reg = model
            .0
            .weight
            .clone()
            .put_tape(tape)
            .square()
            .sum::<Rank0, _>();
        let reg = add_square_sum!(reg, model.0.bias);
        let reg = add_square_sum!(reg, model.2.weight);
        let reg = add_square_sum!(reg, model.2.bias);
        let reg = add_square_sum!(reg, model.4.weight);
        let reg = add_square_sum!(reg, model.4.bias);
        let loss = reg * W4_ALPHA + margin;
        let value = loss.array();
        let mut g = loss.backward();
        opt.update(&mut model, &g).expect("sgd update");
        model.zero_grads(&mut g);
        grads = Some(g);
        value
    };
    let first = step();
    let last = (0..19).map(|_| step()).last().unwrap();
    assert!(last < first, "dfdx W4: loss {first} -> {last}");
    let t = bench(step);
    record("W4", PEER, variant, "2-16-16-1", "ms", &t, ms);
}
