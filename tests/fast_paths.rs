//! Every fast path against a plain reference, on odd sizes (1, 7, 33, 1000), on
//! sizes past the thread-pool thresholds, and on strided and broadcast inputs:
//! parallel and in-place elementwise kernels, the split and batched GEMM, the
//! f32 exp/tanh approximations, the fused layer norm, and Adam's parallel update.

use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::{Gradients, Tensor};

const SIZES: [usize; 6] = [1, 7, 33, 1000, 40_000, 300_001];

fn values(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| ((i as u64 * 2_654_435_761 + seed * 40_503) % 2001) as f64 / 1000.0 - 1.0)
        .collect()
}

fn close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: {g} vs {w}"
        );
    }
}

#[test]
fn elementwise_forward_and_backward_at_every_size() {
    for n in SIZES {
        let (a, b) = (values(n, 1), values(n, 2));
        let x = Tensor::<f64>::from_vec(a.clone(), &[n])
            .unwrap()
            .requires_grad();
        let y = Tensor::<f64>::from_vec(b.clone(), &[n])
            .unwrap()
            .requires_grad();
        // forward: cheap (add, mul) and costly (exp, tanh, gelu) kernels
        let z = (&x * &y + &x).tanh().exp();
        let want: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p * q + p).tanh().exp())
            .collect();
        close(&z.to_vec(), &want, 1e-14);
        // backward through the in-place rules
        let g = z.sum().backward().unwrap();
        let gx: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(p, q)| {
                let t = (p * q + p).tanh();
                t.exp() * (1.0 - t * t) * (q + 1.0)
            })
            .collect();
        close(&g.get(&x).unwrap().to_vec(), &gx, 1e-13);
        let gelu = x.gelu().to_vec();
        let k = (2.0 / std::f64::consts::PI).sqrt();
        let want: Vec<f64> = a
            .iter()
            .map(|v| 0.5 * v * (1.0 + (k * (v + 0.044715 * v * v * v)).tanh()))
            .collect();
        close(&gelu, &want, 1e-14);
    }
}

#[test]
fn strided_and_broadcast_operands_at_every_size() {
    for n in [1usize, 7, 33, 1000] {
        let m = 3;
        let a = values(n * m, 3);
        let x = Tensor::<f64>::from_vec(a.clone(), &[n, m]).unwrap();
        let xt = x.t(); // [m, n], strided
        let row = Tensor::<f64>::from_vec(values(n, 4), &[n]).unwrap();
        let got = (&xt * &row).relu().to_vec();
        let r = values(n, 4);
        let want: Vec<f64> = (0..m * n)
            .map(|i| {
                let (c, j) = (i / n, i % n);
                (a[j * m + c] * r[j]).max(0.0)
            })
            .collect();
        close(&got, &want, 0.0);
        // the gradient of a broadcast operand sums over the broadcast axis
        let rg = row.requires_grad();
        let g = (&xt * &rg).sum().backward().unwrap();
        let want: Vec<f64> = (0..n).map(|j| (0..m).map(|c| a[j * m + c]).sum()).collect();
        close(&g.get(&rg).unwrap().to_vec(), &want, 1e-12);
    }
}

#[test]
fn matmul_at_odd_sizes_against_a_naive_loop() {
    for (m, k, n) in [
        (1, 7, 33),
        (7, 33, 1),
        (33, 1, 7),
        (33, 100, 47),
        (300, 200, 170),
        (257, 129, 65),
    ] {
        let a = values(m * k, 5);
        let b = values(k * n, 6);
        let ta = Tensor::<f64>::from_vec(a.clone(), &[m, k]).unwrap();
        let tb = Tensor::<f64>::from_vec(b.clone(), &[k, n]).unwrap();
        let want: Vec<f64> = (0..m * n)
            .map(|i| (0..k).map(|l| a[(i / n) * k + l] * b[l * n + i % n]).sum())
            .collect();
        close(&ta.matmul(&tb).to_vec(), &want, 1e-12);
        // the same product through transposed views
        let at = Tensor::<f64>::from_vec(ta.t().to_vec(), &[k, m]).unwrap();
        close(&at.t().matmul(&tb).to_vec(), &want, 1e-12);
        // a batch of them (one task per product above the threshold)
        let batch = Tensor::stack(&[&ta, &ta, &ta], 0).matmul(&tb);
        for i in 0..3 {
            close(&batch.narrow(0, i, 1).to_vec(), &want, 1e-12);
        }
    }
}

#[test]
fn f32_exp_and_tanh_kernels_stay_close_to_f64() {
    let n = 100_001; // past the parallel threshold of costly kernels
    let v: Vec<f32> = (0..n).map(|i| -20.0 + 40.0 * i as f32 / n as f32).collect();
    let x = Tensor::<f32>::from_vec(v.clone(), &[n]).unwrap();
    for (name, got, f) in [
        ("exp", x.exp().to_vec(), f64::exp as fn(f64) -> f64),
        ("tanh", x.tanh().to_vec(), f64::tanh),
    ] {
        for (i, (&g, &xi)) in got.iter().zip(&v).enumerate() {
            let want = f(xi as f64);
            let err = (g as f64 - want).abs() / want.abs().max(1e-30);
            assert!(err < 5e-7, "{name}({xi}) = {g}, want {want} (element {i})");
        }
    }
    let s = x.reshape(&[1, n]).softmax(-1).to_vec();
    assert!((s.iter().map(|&p| p as f64).sum::<f64>() - 1.0).abs() < 1e-5);
}

#[test]
fn layer_norm_fused_matches_the_formula_at_odd_widths() {
    for d in [1usize, 7, 33, 1000] {
        let rows = 3;
        let a = values(rows * d, 7);
        let x = Tensor::<f64>::from_vec(a.clone(), &[rows, d]).unwrap();
        let y = ferrograd::nn::functional::layer_norm(&x, None, None, 1e-5).to_vec();
        for r in 0..rows {
            let row = &a[r * d..(r + 1) * d];
            let mean = row.iter().sum::<f64>() / d as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
            let want: Vec<f64> = row
                .iter()
                .map(|v| (v - mean) / (var + 1e-5).sqrt())
                .collect();
            close(&y[r * d..(r + 1) * d], &want, 1e-12);
        }
    }
}

#[test]
fn adam_parallel_update_equals_the_formula() {
    // 200,000 elements: the update is split over the thread pool
    let n = 200_000;
    let p0 = values(n, 8);
    let g0 = values(n, 9);
    let w = Tensor::<f64>::from_vec(p0.clone(), &[n])
        .unwrap()
        .requires_grad();
    let mut opt = Adam::new(
        vec![w.clone()],
        AdamConfig {
            lr: 0.01,
            ..Default::default()
        },
    );
    let mut grads = Gradients::new();
    grads.insert(&w, Tensor::from_vec(g0.clone(), &[n]).unwrap());
    opt.step(&grads).unwrap();
    // first step: m̂ = g, v̂ = g², so p ← p − lr·g/(|g| + ε·…)
    let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-8, 0.01);
    let want: Vec<f64> = p0
        .iter()
        .zip(&g0)
        .map(|(p, g)| {
            let (m, v) = ((1.0 - b1) * g, (1.0 - b2) * g * g);
            p - lr / (1.0 - b1) * m / (v.sqrt() / (1.0 - b2).sqrt() + eps)
        })
        .collect();
    close(&w.to_vec(), &want, 1e-12);
}
