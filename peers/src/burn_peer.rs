//! burn 0.22 (f32) on its CPU backends: `ndarray` (burn-ndarray, deprecated
//! upstream: matmul through ndarray/matrixmultiply, whose own thread pool takes
//! `MATMUL_NUM_THREADS`; other ops on rayon) and `flex` (burn-flex, the pure-Rust
//! CPU backend burn now recommends: matmul through the `gemm` crate on rayon).
//! Both built with burn's `simd` and `rayon` features; gradients from the
//! `autodiff` decorator (`Device::autodiff()`), optimizers from burn-optim.
//! burn 0.22 dispatches every op through its `Device` enum (no backend type
//! parameter), which is the API its users see.

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::timing::*;

const PEER: &str = "burn";

/// The CPU backends measured: ndarray and flex.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    NdArray,
    Flex,
}

impl Backend {
    fn device(self) -> Device {
        match self {
            // Deprecated upstream for flex, measured all the same.
            #[allow(deprecated)]
            Backend::NdArray => Device::ndarray(),
            Backend::Flex => Device::flex(),
        }
    }
}

fn floats<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

pub fn w1(backend: Backend, variant: &str) {
    let device = backend.device();
    let mut rng = Rng::new(1);
    for n in GEMM_SIZES {
        let a = floats(rng.normals(n * n), [n, n], &device);
        let b = floats(rng.normals(n * n), [n, n], &device);
        // Both backends run eagerly; sync anyway in case a backend defers.
        let t = bench(|| {
            let c = a.clone().matmul(b.clone());
            device.sync().expect("sync");
            c
        });
        record_gemm(PEER, variant, n, &t);
    }
}

#[derive(Module, Debug)]
struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    fn new(sizes: &[usize], device: &Device) -> Self {
        let layers = sizes
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        Mlp { layers }
    }

    fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(x);
            if i < last {
                x = relu(x);
            }
        }
        x
    }
}

/// W2's model, optimizer and batch; `step` is one full training step.
pub struct W2 {
    model: Option<Mlp>,
    opt: ModuleOptimizer,
    loss: CrossEntropyLoss,
    x: Tensor<2>,
    y: Tensor<1, Int>,
}

impl W2 {
    pub fn new(backend: Backend, batch: usize) -> Self {
        let device = backend.device().autodiff();
        let model = Mlp::new(&[784, 256, 256, 10], &device);
        // torch.optim.Adam's epsilon (burn's default is 1e-5).
        let opt = AdamConfig::new().with_epsilon(1e-8).init();
        let loss = CrossEntropyLossConfig::new().init(&device);
        let mut rng = Rng::new(2);
        let x = floats(rng.normals(batch * 784), [batch, 784], &device);
        let labels: Vec<i64> = rng
            .labels(batch, 10)
            .into_iter()
            .map(|l| l as i64)
            .collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &device);
        W2 {
            model: Some(model),
            opt,
            loss,
            x,
            y,
        }
    }

    pub fn step(&mut self) -> f32 {
        let model = self.model.take().expect("model");
        let logits = model.forward(self.x.clone());
        let loss = self.loss.forward(logits, self.y.clone());
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.opt.step(1e-3, model, grads));
        value
    }
}

pub fn w2(backend: Backend, variant: &str) {
    for b in MLP_BATCHES {
        let mut w = W2::new(backend, b);
        let first = w.step();
        let last = (0..4).map(|_| w.step()).last().unwrap();
        assert!(
            last < first,
            "burn {backend:?} W2 B={b}: loss {first} -> {last}"
        );
        let t = bench(|| w.step());
        record("W2", PEER, variant, &format!("B={b}"), "ms", &t, ms);
    }
}

pub fn w3(backend: Backend, variant: &str) {
    let device = backend.device().autodiff();
    let x0 = Tensor::<1>::from_floats([1.0], &device).require_grad();
    let run = || -> f32 {
        let mut x = x0.clone();
        for _ in 0..CHAIN_OPS / 2 {
            x = x.mul_scalar(1.0001).add_scalar(0.0001);
        }
        let grads = x.backward();
        x0.grad(&grads)
            .expect("gradient of x0")
            .into_scalar::<f32>()
    };
    bench_chain(PEER, variant, run);
}

pub fn w4(backend: Backend, variant: &str) {
    let device = backend.device().autodiff();
    let (xs, ys) = moons();
    let n = ys.len();
    let x = floats(xs, [n, 2], &device);
    let y = floats(ys, [n], &device);
    let mut model = Some(Mlp::new(&[2, 16, 16, 1], &device));
    let mut opt = SgdConfig::new().init();
    let mut step = || -> f32 {
        let m = model.take().unwrap();
        let scores: Tensor<1> = m.forward(x.clone()).squeeze_dim(1);
        let margin = relu(y.clone().mul(scores).neg().add_scalar(1.0)).mean();
        // Σw² over every weight and bias.
        let mut squares = Vec::new();
        for l in &m.layers {
            squares.push(l.weight.val().square().sum());
            if let Some(b) = &l.bias {
                squares.push(b.val().square().sum());
            }
        }
        let reg = squares.into_iter().reduce(|a, b| a + b).unwrap();
        let loss = margin + reg.mul_scalar(W4_ALPHA);
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        model = Some(opt.step(W4_LR as f64, m, grads));
        value
    };
    let first = step();
    let last = (0..19).map(|_| step()).last().unwrap();
    assert!(last < first, "burn {backend:?} W4: loss {first} -> {last}");
    let t = bench(step);
    record("W4", PEER, variant, "2-16-16-1", "ms", &t, ms);
}
