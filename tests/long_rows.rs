//! Rows of 2²⁰ `f32` elements: the softmax family, `logsumexp`, layer norm and
//! their backward passes sum a row as accurately as `sum` does (blocked pairwise
//! sums), checked against the same formulas in `f64` on the same inputs. A running
//! `f32` sum over such a row is off by about 1e-3 relative (8.9e-3 at 2²²).

use ferrograd::nn::functional::layer_norm;
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::Tensor;

const N: usize = 1 << 20;

/// `randn · scale + shift`, as a tensor and as `f64` values.
fn row(seed: u64, scale: f32, shift: f32) -> (Tensor<f32>, Vec<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let t = Tensor::<f32>::randn(&[N], &mut rng)
        .mul_scalar(scale)
        .add_scalar(shift);
    let v = t.to_vec().into_iter().map(f64::from).collect();
    (t, v)
}

fn to_f64(t: &Tensor<f32>) -> Vec<f64> {
    t.to_vec().into_iter().map(f64::from).collect()
}

/// The largest `|got − want| / scale(want)` over the elements.
fn max_err(got: &[f64], want: &[f64], scale: impl Fn(f64) -> f64) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / scale(*w))
        .fold(0.0, f64::max)
}

fn softmax_f64(x: &[f64]) -> Vec<f64> {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn logsumexp_f64(x: &[f64]) -> f64 {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

#[test]
fn sum_of_a_long_row() {
    let (x, xv) = row(1, 1.0, 1.0);
    let want: f64 = xv.iter().sum();
    let rel = (f64::from(x.sum().item()) - want).abs() / want;
    eprintln!("sum: relative error {rel:.2e}");
    assert!(rel < 1e-7, "sum: relative error {rel:e}");
}

// Logits of little spread, as an untrained model's over a large vocabulary:
// the exponentials are all close to each other, and a running sum rounds each
// one the same way once it is large.

#[test]
fn softmax_of_a_long_row() {
    let (x, xv) = row(2, 0.01, 0.0);
    let got = to_f64(&x.softmax(0));
    let e = max_err(&got, &softmax_f64(&xv), |w| w);
    eprintln!("softmax: largest relative error {e:.2e}");
    assert!(e < 1e-6, "softmax: relative error {e:e}");
}

#[test]
fn log_softmax_of_a_long_row() {
    let (x, xv) = row(2, 0.01, 0.0);
    let lse = logsumexp_f64(&xv);
    let got = to_f64(&x.log_softmax(0));
    let want: Vec<f64> = xv.iter().map(|v| v - lse).collect();
    let e = max_err(&got, &want, |w| w.abs().max(1.0));
    eprintln!("log_softmax: largest relative error {e:.2e}");
    assert!(e < 2e-7, "log_softmax: relative error {e:e}");
}

#[test]
fn logsumexp_of_a_long_row() {
    let (x, xv) = row(2, 0.01, 0.0);
    let lse = logsumexp_f64(&xv);
    let got = f64::from(x.logsumexp(0, false).item());
    let e = (got - lse).abs() / lse.abs();
    eprintln!("logsumexp: relative error {e:.2e}");
    assert!(e < 2e-7, "logsumexp: relative error {e:e}");
}

#[test]
fn softmax_backward_of_a_long_row() {
    let (x, xv) = row(3, 0.01, 0.0);
    let x = x.requires_grad();
    // positive weights: the sums in the backward pass do not cancel
    let (w, wv) = row(4, 0.25, 1.0);
    let y = softmax_f64(&xv);

    // d/dx Σ w·softmax(x) = y·(w − Σ w·y)
    let dot: f64 = y.iter().zip(&wv).map(|(y, w)| y * w).sum();
    let want: Vec<f64> = y.iter().zip(&wv).map(|(y, w)| y * (w - dot)).collect();
    let grads = x.softmax(0).mul(&w).sum().backward().unwrap();
    let got = to_f64(grads.get(&x).unwrap());
    // relative to the terms y·w and y·Σ w·y, which may cancel
    let scale: Vec<f64> = y
        .iter()
        .zip(&wv)
        .map(|(y, w)| y * (w.abs() + dot))
        .collect();
    let e = got
        .iter()
        .zip(&want)
        .zip(&scale)
        .map(|((g, w), s)| (g - w).abs() / s)
        .fold(0.0, f64::max);
    eprintln!("softmax backward: largest relative error {e:.2e}");
    assert!(e < 2e-6, "softmax backward: relative error {e:e}");
}

#[test]
fn log_softmax_backward_of_a_long_row() {
    let (x, xv) = row(3, 0.01, 0.0);
    let x = x.requires_grad();
    let (w, wv) = row(4, 0.25, 1.0);
    let y = softmax_f64(&xv);

    // d/dx Σ w·log_softmax(x) = w − softmax(x)·Σ w
    let sum_w: f64 = wv.iter().sum();
    let want: Vec<f64> = y.iter().zip(&wv).map(|(y, w)| w - y * sum_w).collect();
    let grads = x.log_softmax(0).mul(&w).sum().backward().unwrap();
    let got = to_f64(grads.get(&x).unwrap());
    let scale: Vec<f64> = y
        .iter()
        .zip(&wv)
        .map(|(y, w)| w.abs() + y * sum_w)
        .collect();
    let e = got
        .iter()
        .zip(&want)
        .zip(&scale)
        .map(|((g, w), s)| (g - w).abs() / s)
        .fold(0.0, f64::max);
    eprintln!("log_softmax backward: largest relative error {e:.2e}");
    // (exp of the saved f32 output is as far off as that output's last bit)
    assert!(e < 3e-6, "log_softmax backward: relative error {e:e}");
}

#[test]
fn layer_norm_of_a_long_row() {
    // a mean far from 0, as after a residual connection: a running sum drifts
    let (x, xv) = row(5, 0.5, 4.0);
    let x = x.reshape(&[1, N]).requires_grad();
    let (w, wv) = row(6, 0.25, 1.0);
    let eps = 1e-5;
    let n = N as f64;
    let mean = xv.iter().sum::<f64>() / n;
    let var = xv.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let rstd = 1.0 / (var + eps).sqrt();
    let xhat: Vec<f64> = xv.iter().map(|v| (v - mean) * rstd).collect();

    let y = layer_norm(&x, None, None, eps as f32);
    let e = max_err(&to_f64(&y), &xhat, |w| w.abs().max(1.0));
    eprintln!("layer_norm: largest error {e:.2e}");
    assert!(e < 1e-6, "layer_norm: error {e:e}");

    // d/dx Σ w·y = rstd·(w − mean(w) − x̂·mean(w·x̂))
    let mean_w = wv.iter().sum::<f64>() / n;
    let mean_wx = wv.iter().zip(&xhat).map(|(w, h)| w * h).sum::<f64>() / n;
    let want: Vec<f64> = wv
        .iter()
        .zip(&xhat)
        .map(|(w, h)| rstd * (w - mean_w - h * mean_wx))
        .collect();
    let grads = y.mul(&w.reshape(&[1, N])).sum().backward().unwrap();
    let got = to_f64(grads.get(&x).unwrap());
    let e = max_err(&got, &want, |_| rstd);
    eprintln!("layer_norm backward: largest error {e:.2e} (relative to rstd)");
    assert!(e < 2e-6, "layer_norm backward: error {e:e}");
}
