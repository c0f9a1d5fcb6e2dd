//! Optimizers and learning-rate schedules through the public API, as a training loop uses them.
//!
//! Every update rule is checked against numbers computed here, independently, with
//! plain `f64` arithmetic written from the formula in PyTorch's `torch.optim`
//! documentation (the formula is in the comment above each reference function), and
//! the first step of each is also checked against a value worked out by hand.
//!
//! The fixed tiny problem: a parameter p ∈ ℝ³ starting at P0, and the loss
//! L(p) = ½·Σ (p − C)², whose gradient is g = p − C (computed by the crate's
//! backward in the runs, by `p − C` in the references). At the start
//! g = P0 − C = [0.5, −2.5, 1.5].

use ferrograd::nn::Module;
use ferrograd::optim::lr::{
    CosineAnnealingLr, ExponentialLr, LinearLr, LrSchedule, Scheduler, StepLr,
};
use ferrograd::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, RmsProp,
    RmsPropConfig, Sgd, SgdConfig,
};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{Element, Error, Gradients, Tensor};

const P0: [f64; 3] = [1.0, -2.0, 0.5];
const C: [f64; 3] = [0.5, 0.5, -1.0];
const STEPS: usize = 6;

fn t<T: Element>(v: f64) -> T {
    T::from_f64_lossy(v)
}

fn tensor<T: Element>(v: &[f64]) -> Tensor<T> {
    Tensor::from_vec(v.iter().map(|&x| t(x)).collect(), &[v.len()]).unwrap()
}

fn values<T: Element>(x: &Tensor<T>) -> Vec<f64> {
    x.to_vec().into_iter().map(T::to_f64_lossless).collect()
}

/// Runs `STEPS` steps of the optimizer `make` builds on the tiny problem; returns p
/// after each step.
fn run<T: Element, O: Optimizer<T>>(make: impl FnOnce(Vec<Tensor<T>>) -> O) -> Vec<Vec<f64>> {
    let p = tensor::<T>(&P0).requires_grad();
    let c = tensor::<T>(&C);
    let mut opt = make(vec![p.clone()]);
    (0..STEPS)
        .map(|_| {
            let loss = (&p - &c).square().sum() * t::<T>(0.5);
            let report = opt.step(&loss.backward().unwrap()).unwrap();
            assert_eq!((report.updated, report.skipped.len()), (1, 0));
            values(&p)
        })
        .collect()
}

/// Compares a run with the reference trajectory, element by element.
#[track_caller]
fn assert_traj(got: &[Vec<f64>], want: &[[f64; 3]], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (step, (g, w)) in got.iter().zip(want).enumerate() {
        for i in 0..3 {
            let err = (g[i] - w[i]).abs();
            assert!(
                err <= tol * (1.0 + w[i].abs()),
                "step {} element {i}: got {} want {} (error {err:e})",
                step + 1,
                g[i],
                w[i]
            );
        }
    }
}

/// Runs in f64 and in f32 and compares both with the reference.
macro_rules! check_both {
    ($reference:expr, |$params:ident| $make:expr) => {{
        let want = $reference;
        assert_traj(&run::<f64, _>(|$params| $make), &want, 1e-12);
        assert_traj(&run::<f32, _>(|$params| $make), &want, 2e-5);
        want
    }};
}

// ---------------------------------------------------------------- SGD

/// PyTorch SGD, per element, at step t:
///   g ← g + λ·p                        (λ ≠ 0)
///   b ← g (t = 1);  b ← μ·b + (1 − τ)·g (t > 1)      (μ ≠ 0)
///   g ← g + μ·b (nesterov) or g ← b
///   p ← p − lr·g
fn ref_sgd(lr: f64, mu: f64, damp: f64, nesterov: bool, wd: f64) -> Vec<[f64; 3]> {
    let (mut p, mut b) = (P0, [0.0; 3]);
    let mut out = Vec::new();
    for step in 1..=STEPS {
        for i in 0..3 {
            let mut g = p[i] - C[i];
            if wd != 0.0 {
                g += wd * p[i];
            }
            if mu != 0.0 {
                b[i] = if step == 1 {
                    g
                } else {
                    mu * b[i] + (1.0 - damp) * g
                };
                g = if nesterov { g + mu * b[i] } else { b[i] };
            }
            p[i] -= lr * g;
        }
        out.push(p);
    }
    out
}

fn sgd<T: Element>(
    lr: f64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    wd: f64,
) -> SgdConfig<T> {
    SgdConfig {
        lr: t(lr),
        momentum: t(momentum),
        dampening: t(dampening),
        nesterov,
        weight_decay: t(wd),
    }
}

#[test]
fn sgd_plain() {
    let want = check_both!(ref_sgd(0.1, 0.0, 0.0, false, 0.0), |ps| Sgd::new(
        ps,
        sgd(0.1, 0.0, 0.0, false, 0.0)
    ));
    // by hand, step 1: p − 0.1·g = [1 − 0.05, −2 + 0.25, 0.5 − 0.15]
    assert_traj(&[want[0].to_vec()], &[[0.95, -1.75, 0.35]], 1e-15);
    // the gradient shrinks by (1 − lr) each step: p_t − C = 0.9ᵗ·(P0 − C)
    assert!((want[5][1] - (0.5 - 2.5 * 0.9f64.powi(6))).abs() < 1e-14);
}

#[test]
fn sgd_momentum() {
    let want = check_both!(ref_sgd(0.1, 0.9, 0.0, false, 0.0), |ps| Sgd::new(
        ps,
        sgd(0.1, 0.9, 0.0, false, 0.0)
    ));
    // element 0 by hand: g₁ = 0.5, b₁ = 0.5, p₁ = 0.95;
    // g₂ = 0.45, b₂ = 0.9·0.5 + 0.45 = 0.9, p₂ = 0.95 − 0.09 = 0.86
    assert!((want[1][0] - 0.86).abs() < 1e-15);
}

#[test]
fn sgd_momentum_with_dampening() {
    let want = check_both!(ref_sgd(0.1, 0.9, 0.5, false, 0.0), |ps| Sgd::new(
        ps,
        sgd(0.1, 0.9, 0.5, false, 0.0)
    ));
    // element 0: b₁ = g₁ = 0.5 (no dampening on the first step), p₁ = 0.95;
    // g₂ = 0.45, b₂ = 0.45 + 0.5·0.45 = 0.675, p₂ = 0.95 − 0.0675 = 0.8825
    assert!((want[1][0] - 0.8825).abs() < 1e-15);
}

#[test]
fn sgd_nesterov() {
    let want = check_both!(ref_sgd(0.1, 0.9, 0.0, true, 0.0), |ps| Sgd::new(
        ps,
        sgd(0.1, 0.9, 0.0, true, 0.0)
    ));
    // element 0: b₁ = 0.5, step g₁ + 0.9·b₁ = 0.95, p₁ = 1 − 0.095 = 0.905
    assert!((want[0][0] - 0.905).abs() < 1e-15);
}

#[test]
fn sgd_weight_decay_with_and_without_momentum() {
    let want = check_both!(ref_sgd(0.1, 0.0, 0.0, false, 0.2), |ps| Sgd::new(
        ps,
        sgd(0.1, 0.0, 0.0, false, 0.2)
    ));
    // element 1: g = −2.5 + 0.2·(−2) = −2.9, p₁ = −2 + 0.29 = −1.71
    assert!((want[0][1] + 1.71).abs() < 1e-15);
    check_both!(ref_sgd(0.05, 0.8, 0.1, false, 0.2), |ps| Sgd::new(
        ps,
        sgd(0.05, 0.8, 0.1, false, 0.2)
    ));
    check_both!(ref_sgd(0.05, 0.8, 0.0, true, 0.2), |ps| Sgd::new(
        ps,
        sgd(0.05, 0.8, 0.0, true, 0.2)
    ));
}

// ---------------------------------------------------------------- Adam, AdamW

/// PyTorch Adam / AdamW, per element, at step t:
///   AdamW: p ← p·(1 − lr·λ)           Adam: g ← g + λ·p
///   m ← β₁·m + (1 − β₁)·g
///   v ← β₂·v + (1 − β₂)·g²
///   p ← p − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
fn ref_adam(lr: f64, b1: f64, b2: f64, eps: f64, wd: f64, decoupled: bool) -> Vec<[f64; 3]> {
    let (mut p, mut m, mut v) = (P0, [0.0; 3], [0.0; 3]);
    let mut out = Vec::new();
    for step in 1..=STEPS {
        let step = step as i32;
        for i in 0..3 {
            let mut g = p[i] - C[i];
            if decoupled {
                p[i] *= 1.0 - lr * wd;
            } else {
                g += wd * p[i];
            }
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            let m_hat = m[i] / (1.0 - b1.powi(step));
            let v_hat = v[i] / (1.0 - b2.powi(step));
            p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
        out.push(p);
    }
    out
}

fn adam<T: Element>(lr: f64, b1: f64, b2: f64, eps: f64, wd: f64) -> AdamConfig<T> {
    AdamConfig {
        lr: t(lr),
        beta1: t(b1),
        beta2: t(b2),
        eps: t(eps),
        weight_decay: t(wd),
    }
}

fn adamw<T: Element>(lr: f64, b1: f64, b2: f64, eps: f64, wd: f64) -> AdamWConfig<T> {
    AdamWConfig {
        lr: t(lr),
        beta1: t(b1),
        beta2: t(b2),
        eps: t(eps),
        weight_decay: t(wd),
    }
}

#[test]
fn adam_default_betas() {
    let want = check_both!(ref_adam(0.05, 0.9, 0.999, 1e-8, 0.0, false), |ps| {
        Adam::new(
            ps,
            AdamConfig {
                lr: t(0.05),
                ..Default::default()
            },
        )
    });
    // step 1 by hand: m̂ = g, v̂ = g², so p₁ = p₀ − lr·g/(|g| + ε) ≈ p₀ − 0.05·sign(g)
    assert_traj(&[want[0].to_vec()], &[[0.95, -1.95, 0.45]], 1e-9);
}

#[test]
fn adam_other_betas_and_eps() {
    let want = check_both!(ref_adam(0.1, 0.5, 0.75, 0.1, 0.0, false), |ps| Adam::new(
        ps,
        adam(0.1, 0.5, 0.75, 0.1, 0.0)
    ));
    // element 0, step 1: m̂ = 0.5, √v̂ = 0.5: p₁ = 1 − 0.1·0.5/0.6
    assert!((want[0][0] - (1.0 - 0.05 / 0.6)).abs() < 1e-15);
}

#[test]
fn adam_l2_weight_decay() {
    let want = check_both!(ref_adam(0.05, 0.9, 0.999, 1e-8, 0.3, false), |ps| {
        Adam::new(ps, adam(0.05, 0.9, 0.999, 1e-8, 0.3))
    });
    // element 0, step 1: g = 0.5 + 0.3·1 > 0, so p₁ ≈ 1 − 0.05; the decay only enters
    // through the gradient, and Adam's first step is sign-like
    assert!((want[0][0] - 0.95).abs() < 1e-8);
}

#[test]
fn adamw_decoupled_weight_decay() {
    let want = check_both!(ref_adam(0.05, 0.9, 0.999, 1e-8, 0.3, true), |ps| {
        AdamW::new(ps, adamw(0.05, 0.9, 0.999, 1e-8, 0.3))
    });
    // element 0, step 1: p ← 1·(1 − 0.05·0.3) = 0.985, then − 0.05·sign(0.5) → 0.935
    assert!((want[0][0] - 0.935).abs() < 1e-8);
    // differs from Adam's L2 decay
    let l2 = ref_adam(0.05, 0.9, 0.999, 1e-8, 0.3, false);
    assert!((l2[STEPS - 1][0] - want[STEPS - 1][0]).abs() > 1e-3);
}

#[test]
fn adamw_default_weight_decay_is_one_hundredth() {
    check_both!(ref_adam(0.05, 0.9, 0.999, 1e-8, 0.01, true), |ps| {
        AdamW::new(
            ps,
            AdamWConfig {
                lr: t(0.05),
                ..Default::default()
            },
        )
    });
}

// ---------------------------------------------------------------- RMSprop

/// PyTorch RMSprop, per element (v, ḡ, b start at 0):
///   g ← g + λ·p
///   v ← α·v + (1 − α)·g²
///   d ← √(v − ḡ²) + ε with ḡ ← α·ḡ + (1 − α)·g (centered), else d ← √v + ε
///   b ← μ·b + g/d; p ← p − lr·b (μ > 0), else p ← p − lr·g/d
fn ref_rmsprop(lr: f64, alpha: f64, eps: f64, wd: f64, mu: f64, centered: bool) -> Vec<[f64; 3]> {
    let (mut p, mut v, mut ga, mut b) = (P0, [0.0; 3], [0.0; 3], [0.0; 3]);
    let mut out = Vec::new();
    for _ in 0..STEPS {
        for i in 0..3 {
            let g = p[i] - C[i] + wd * p[i];
            v[i] = alpha * v[i] + (1.0 - alpha) * g * g;
            let d = if centered {
                ga[i] = alpha * ga[i] + (1.0 - alpha) * g;
                (v[i] - ga[i] * ga[i]).sqrt() + eps
            } else {
                v[i].sqrt() + eps
            };
            if mu > 0.0 {
                b[i] = mu * b[i] + g / d;
                p[i] -= lr * b[i];
            } else {
                p[i] -= lr * g / d;
            }
        }
        out.push(p);
    }
    out
}

fn rmsprop<T: Element>(
    lr: f64,
    alpha: f64,
    eps: f64,
    wd: f64,
    momentum: f64,
    centered: bool,
) -> RmsPropConfig<T> {
    RmsPropConfig {
        lr: t(lr),
        alpha: t(alpha),
        eps: t(eps),
        weight_decay: t(wd),
        momentum: t(momentum),
        centered,
    }
}

#[test]
fn rmsprop_plain() {
    let want = check_both!(ref_rmsprop(0.01, 0.99, 1e-8, 0.0, 0.0, false), |ps| {
        RmsProp::new(ps, RmsPropConfig::default())
    });
    // step 1 by hand: v = 0.01·g², d ≈ 0.1·|g|, p₁ ≈ p₀ − 0.01·sign(g)/0.1 = p₀ ∓ 0.1
    assert_traj(&[want[0].to_vec()], &[[0.9, -1.9, 0.4]], 1e-7);
}

#[test]
fn rmsprop_weight_decay() {
    let want = check_both!(ref_rmsprop(0.01, 0.9, 1e-8, 0.5, 0.0, false), |ps| {
        RmsProp::new(ps, rmsprop(0.01, 0.9, 1e-8, 0.5, 0.0, false))
    });
    // element 0, step 1: g = 0.5 + 0.5 = 1, d = √0.1, p₁ = 1 − 0.01/√0.1
    assert!((want[0][0] - (1.0 - 0.01 / 0.1f64.sqrt())).abs() < 1e-9);
}

#[test]
fn rmsprop_momentum() {
    let want = check_both!(ref_rmsprop(0.01, 0.9, 1e-8, 0.0, 0.9, false), |ps| {
        RmsProp::new(ps, rmsprop(0.01, 0.9, 1e-8, 0.0, 0.9, false))
    });
    // element 0, step 1: v = 0.1·0.25, d = √0.1·0.5 + ε, b = g/d = 0.5/d, p₁ = 1 − 0.01·b
    let b = 0.5 / (0.1f64.sqrt() * 0.5 + 1e-8);
    assert!((want[0][0] - (1.0 - 0.01 * b)).abs() < 1e-14);
}

#[test]
fn rmsprop_centered() {
    let want = check_both!(ref_rmsprop(0.01, 0.9, 1e-8, 0.0, 0.0, true), |ps| {
        RmsProp::new(ps, rmsprop(0.01, 0.9, 1e-8, 0.0, 0.0, true))
    });
    // element 0, step 1: v = 0.1·0.25, ḡ = 0.1·0.5, v − ḡ² = 0.025 − 0.0025 = 0.0225,
    // d = √0.0225 + ε = 0.15 + ε, p₁ = 1 − 0.01·0.5/d
    assert!((want[0][0] - (1.0 - 0.005 / (0.15 + 1e-8))).abs() < 1e-14);
}

#[test]
fn rmsprop_centered_momentum_weight_decay() {
    check_both!(ref_rmsprop(0.005, 0.8, 1e-6, 0.1, 0.5, true), |ps| {
        RmsProp::new(ps, rmsprop(0.005, 0.8, 1e-6, 0.1, 0.5, true))
    });
}

// ---------------------------------------------------------------- Adagrad

/// PyTorch Adagrad, per element (s starts at initial_accumulator_value):
///   g ← g + λ·p
///   clr = lr / (1 + (t − 1)·η)
///   s ← s + g²
///   p ← p − clr·g/(√s + ε)
fn ref_adagrad(lr: f64, lr_decay: f64, wd: f64, eps: f64, init: f64) -> Vec<[f64; 3]> {
    let (mut p, mut s) = (P0, [init; 3]);
    let mut out = Vec::new();
    for step in 1..=STEPS {
        let clr = lr / (1.0 + (step - 1) as f64 * lr_decay);
        for i in 0..3 {
            let g = p[i] - C[i] + wd * p[i];
            s[i] += g * g;
            p[i] -= clr * g / (s[i].sqrt() + eps);
        }
        out.push(p);
    }
    out
}

fn adagrad<T: Element>(lr: f64, lr_decay: f64, wd: f64, eps: f64, init: f64) -> AdagradConfig<T> {
    AdagradConfig {
        lr: t(lr),
        lr_decay: t(lr_decay),
        weight_decay: t(wd),
        eps: t(eps),
        initial_accumulator_value: t(init),
    }
}

#[test]
fn adagrad_plain() {
    let want = check_both!(ref_adagrad(0.1, 0.0, 0.0, 1e-10, 0.0), |ps| {
        Adagrad::new(
            ps,
            AdagradConfig {
                lr: t(0.1),
                ..Default::default()
            },
        )
    });
    // step 1 by hand: s = g², p₁ = p₀ − 0.1·g/|g| = p₀ ∓ 0.1
    assert_traj(&[want[0].to_vec()], &[[0.9, -1.9, 0.4]], 1e-9);
}

#[test]
fn adagrad_lr_decay() {
    let want = check_both!(ref_adagrad(0.1, 0.5, 0.0, 1e-10, 0.0), |ps| {
        Adagrad::new(ps, adagrad(0.1, 0.5, 0.0, 1e-10, 0.0))
    });
    // element 0: p₁ = 0.9, g₂ = 0.4, s₂ = 0.25 + 0.16 = 0.41,
    // clr₂ = 0.1/(1 + 0.5) → p₂ = 0.9 − (0.1/1.5)·0.4/√0.41
    assert!((want[1][0] - (0.9 - 0.1 / 1.5 * 0.4 / 0.41f64.sqrt())).abs() < 1e-9);
}

#[test]
fn adagrad_weight_decay_and_initial_accumulator() {
    let want = check_both!(ref_adagrad(0.1, 0.0, 0.5, 1e-10, 0.75), |ps| {
        Adagrad::new(ps, adagrad(0.1, 0.0, 0.5, 1e-10, 0.75))
    });
    // element 0, step 1: g = 0.5 + 0.5 = 1, s = 0.75 + 1 = 1.75, p₁ = 1 − 0.1/√1.75
    assert!((want[0][0] - (1.0 - 0.1 / 1.75f64.sqrt())).abs() < 1e-9);
    check_both!(ref_adagrad(0.2, 0.1, 0.1, 1e-3, 0.5), |ps| {
        Adagrad::new(ps, adagrad(0.2, 0.1, 0.1, 1e-3, 0.5))
    });
}

// ---------------------------------------------------------------- shared behaviour

/// The five optimizers, boxed, over the given parameters (named a, b, …).
fn all_optimizers(params: &[Tensor<f64>]) -> Vec<(&'static str, Box<dyn Optimizer<f64>>)> {
    let named = || {
        params
            .iter()
            .enumerate()
            .map(|(i, p)| (((b'a' + i as u8) as char).to_string(), p.clone()))
            .collect::<Vec<_>>()
    };
    vec![
        (
            "Sgd",
            Box::new(Sgd::new_named(named(), sgd(0.1, 0.9, 0.0, true, 0.01))),
        ),
        (
            "Adam",
            Box::new(Adam::new_named(named(), adam(0.1, 0.9, 0.999, 1e-8, 0.01))),
        ),
        (
            "AdamW",
            Box::new(AdamW::new_named(named(), AdamWConfig::default())),
        ),
        (
            "RmsProp",
            Box::new(RmsProp::new_named(
                named(),
                rmsprop(0.01, 0.9, 1e-8, 0.0, 0.5, true),
            )),
        ),
        (
            "Adagrad",
            Box::new(Adagrad::new_named(
                named(),
                adagrad(0.1, 0.1, 0.0, 1e-10, 0.1),
            )),
        ),
    ]
}

#[test]
fn a_skipped_parameter_keeps_its_values_and_does_not_advance() {
    // Train `a` alone for two steps, then `a` and `b` together. Were b's state to
    // advance while skipped, its first real update would differ from a fresh one.
    for k in 0..5 {
        let a = tensor::<f64>(&P0).requires_grad();
        let b = tensor::<f64>(&P0).requires_grad();
        let (name, mut opt) = all_optimizers(&[a.clone(), b.clone()]).swap_remove(k);
        let c = tensor::<f64>(&C);
        let loss_of = |x: &Tensor<f64>| (x - &c).square().sum() * 0.5;
        for _ in 0..2 {
            let report = opt.step(&loss_of(&a).backward().unwrap()).unwrap();
            assert_eq!(report.updated, 1, "{name}");
            assert_eq!(report.skipped.len(), 1, "{name}");
            assert_eq!(report.skipped[0].index, 1, "{name}");
            assert_eq!(report.skipped[0].name.as_deref(), Some("b"), "{name}");
            assert_eq!(values(&b), P0.to_vec(), "{name}: b must not move");
        }
        let report = opt
            .step(&(loss_of(&a) + loss_of(&b)).backward().unwrap())
            .unwrap();
        assert!(report.all_updated(), "{name}");
        // b's single update equals the first update of a fresh optimizer
        let fresh = tensor::<f64>(&P0).requires_grad();
        let (_, mut opt1) = all_optimizers(std::slice::from_ref(&fresh)).swap_remove(k);
        opt1.step(&loss_of(&fresh).backward().unwrap()).unwrap();
        assert_eq!(values(&b), values(&fresh), "{name}");
        assert_ne!(values(&a), values(&b), "{name}: a has taken three steps");
    }
}

#[test]
fn step_counts_are_kept_per_parameter() {
    let a = tensor::<f64>(&[1.0]).requires_grad();
    let b = tensor::<f64>(&[1.0]).requires_grad();
    let mut adam = Adam::new(vec![a.clone(), b.clone()], AdamConfig::default());
    let mut adagrad = Adagrad::new(vec![a.clone(), b.clone()], AdagradConfig::default());
    let mut sgd = Sgd::new(vec![a.clone(), b.clone()], SgdConfig::default());
    let mut rms = RmsProp::new(vec![a.clone(), b.clone()], RmsPropConfig::default());
    for _ in 0..3 {
        let g = a.sum().backward().unwrap();
        adam.step(&g).unwrap();
        adagrad.step(&g).unwrap();
        sgd.step(&g).unwrap();
        rms.step(&g).unwrap();
    }
    let g = (&a + &b).sum().backward().unwrap();
    adam.step(&g).unwrap();
    assert_eq!(
        (adam.state(0).unwrap().step, adam.state(1).unwrap().step),
        (4, 1)
    );
    adagrad.step(&g).unwrap();
    assert_eq!(adagrad.state(0).unwrap().step, 4);
    assert_eq!(adagrad.state(1).unwrap().step, 1);
    assert_eq!(adagrad.state(1).unwrap().sum, vec![1.0]);
    sgd.step(&g).unwrap();
    assert_eq!(
        (sgd.state(0).unwrap().step, sgd.state(1).unwrap().step),
        (4, 1)
    );
    assert!(rms.state(1).is_none(), "no state before the first update");
    rms.step(&g).unwrap();
    assert_eq!(rms.state(1).unwrap().step, 1);
    assert!(adam.state(2).is_none());
}

#[test]
fn strict_mode_names_the_parameter_and_updates_nothing() {
    let w = tensor::<f32>(&[1.0, 2.0]).requires_grad();
    let b = tensor::<f32>(&[0.5]).requires_grad();
    let grads = w.sum().backward().unwrap(); // no gradient for b

    let mut named = Adam::new_named(
        vec![
            ("fc.weight".into(), w.clone()),
            ("fc.bias".into(), b.clone()),
        ],
        AdamConfig::default(),
    )
    .strict(true);
    assert!(named.is_strict());
    match named.step(&grads) {
        Err(Error::MissingGradient { param }) => assert_eq!(param, "fc.bias"),
        other => panic!("expected MissingGradient, got {other:?}"),
    }
    assert_eq!(w.to_vec(), vec![1.0, 2.0], "nothing is updated on error");
    assert!(named.state(0).is_none());

    let mut unnamed = Sgd::new(vec![w.clone(), b.clone()], SgdConfig::default()).strict(true);
    let err = unnamed.step(&grads).unwrap_err();
    assert!(matches!(&err, Error::MissingGradient { param } if param == "#1 (shape [1])"));
    assert!(err
        .to_string()
        .contains("no gradient for parameter #1 (shape [1])"));

    // not strict: the same step succeeds and reports the skip
    let mut lenient = Sgd::new(vec![w.clone(), b.clone()], SgdConfig::default());
    assert!(!lenient.is_strict());
    let report = lenient.step(&grads).unwrap();
    assert_eq!(report.skipped[0].to_string(), "#1 (shape [1])");
}

#[test]
fn updates_are_in_place_and_seen_by_every_handle() {
    for k in 0..5 {
        let w = tensor::<f64>(&[1.0, -1.0, 2.0, 0.5])
            .reshape(&[2, 2])
            .requires_grad();
        let (id, alias, view) = (w.id(), w.clone(), w.t());
        let (name, mut opt) = all_optimizers(std::slice::from_ref(&w)).swap_remove(k);
        let before = w.to_vec();
        let loss = w.square().sum();
        opt.step(&loss.backward().unwrap()).unwrap();
        assert_ne!(w.to_vec(), before, "{name}");
        assert_eq!(alias.to_vec(), w.to_vec(), "{name}");
        assert_eq!(view.to_vec(), w.t().to_vec(), "{name}");
        assert_eq!(alias.id(), id, "{name}");
        assert_eq!(opt.parameters()[0].id(), id, "{name}");
        // the graph built before the update saved the old values: backward says so
        match loss.backward() {
            Err(Error::ModifiedInPlace { .. }) => {}
            other => panic!("{name}: expected ModifiedInPlace, got {other:?}"),
        }
    }
}

/// A two-parameter linear model, to show `named_parameters` plugging into `new_named`.
#[derive(Module)]
struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.matmul(&self.w) + &self.b
    }
}

/// Builds a boxed optimizer over a model's named parameters.
type MakeOptimizer = fn(Vec<(String, Tensor)>) -> Box<dyn Optimizer>;

#[test]
fn every_optimizer_brings_a_regression_loss_down_in_100_steps() {
    let mut rng = StdRng::seed_from_u64(42);
    let x = Tensor::<f32>::randn(&[32, 3], &mut rng);
    let w_true = Tensor::<f32>::from_vec(vec![1.5, -2.0, 0.5], &[3, 1]).unwrap();
    let y = x.matmul(&w_true) + 0.3;
    let make: [(&str, MakeOptimizer); 7] = [
        ("sgd", |p| {
            Box::new(Sgd::new_named(
                p,
                SgdConfig {
                    lr: 0.1,
                    ..Default::default()
                },
            ))
        }),
        ("sgd+nesterov", |p| {
            Box::new(Sgd::new_named(
                p,
                SgdConfig {
                    lr: 0.05,
                    momentum: 0.9,
                    nesterov: true,
                    ..Default::default()
                },
            ))
        }),
        ("adam", |p| {
            Box::new(Adam::new_named(
                p,
                AdamConfig {
                    lr: 0.05,
                    ..Default::default()
                },
            ))
        }),
        ("adamw", |p| {
            Box::new(AdamW::new_named(
                p,
                AdamWConfig {
                    lr: 0.05,
                    ..Default::default()
                },
            ))
        }),
        ("rmsprop", |p| {
            Box::new(RmsProp::new_named(p, RmsPropConfig::default()))
        }),
        ("rmsprop centered", |p| {
            Box::new(RmsProp::new_named(
                p,
                RmsPropConfig {
                    momentum: 0.5,
                    centered: true,
                    ..Default::default()
                },
            ))
        }),
        ("adagrad", |p| {
            Box::new(Adagrad::new_named(
                p,
                AdagradConfig {
                    lr: 0.5,
                    ..Default::default()
                },
            ))
        }),
    ];
    for (name, make) in make {
        let mut rng = StdRng::seed_from_u64(1);
        let model = Linear {
            w: (Tensor::<f32>::randn(&[3, 1], &mut rng) * 0.1).requires_grad(),
            b: Tensor::<f32>::zeros(&[1]).requires_grad(),
        };
        let mut opt = make(model.named_parameters());
        let loss_of = |m: &Linear| (m.forward(&x) - &y).square().mean();
        let first = loss_of(&model).item();
        for _ in 0..100 {
            let report = opt.step(&loss_of(&model).backward().unwrap()).unwrap();
            assert!(report.all_updated());
        }
        let last = loss_of(&model).item();
        assert!(last < 0.05 * first, "{name}: loss {first} -> {last}");
    }
}

#[test]
fn configs_are_checked_at_construction() {
    let w = Tensor::<f64>::zeros(&[2]).requires_grad();
    let ps = || vec![w.clone()];
    let msg = |e: Error| e.to_string();
    assert_eq!(
        msg(Sgd::try_new(ps(), sgd(-0.1, 0.0, 0.0, false, 0.0)).unwrap_err()),
        "Sgd::new: invalid learning rate -0.1: expected a value >= 0"
    );
    assert!(
        msg(Sgd::try_new(ps(), sgd(0.1, 0.9, 0.1, true, 0.0)).unwrap_err())
            .contains("Nesterov momentum requires a momentum > 0 and zero dampening")
    );
    assert!(
        msg(Sgd::try_new(ps(), sgd(0.1, 0.0, 0.0, true, 0.0)).unwrap_err()).contains("Nesterov")
    );
    assert!(
        msg(Adam::try_new(ps(), adam(0.1, 0.9, 1.0, 1e-8, 0.0)).unwrap_err())
            .contains("invalid beta2 1: expected 0 <= beta2 < 1")
    );
    assert!(
        msg(AdamW::try_new(ps(), adamw(0.1, -0.1, 0.9, 1e-8, 0.0)).unwrap_err())
            .contains("invalid beta1")
    );
    assert!(
        msg(AdamW::try_new(ps(), adamw(0.1, 0.9, 0.9, 1e-8, -0.01)).unwrap_err())
            .contains("invalid weight_decay")
    );
    assert!(
        msg(RmsProp::try_new(ps(), rmsprop(0.1, -0.9, 1e-8, 0.0, 0.0, false)).unwrap_err())
            .contains("invalid alpha")
    );
    assert!(
        msg(Adagrad::try_new(ps(), adagrad(0.1, -1.0, 0.0, 1e-10, 0.0)).unwrap_err())
            .contains("invalid lr_decay")
    );
    assert!(Adagrad::try_new(ps(), adagrad(f64::NAN, 0.0, 0.0, 1e-10, 0.0)).is_err());
    // the named constructors check the same things
    assert!(RmsProp::try_new_named(
        vec![("w".into(), w.clone())],
        rmsprop(0.1, 0.9, -1.0, 0.0, 0.0, false)
    )
    .is_err());
}

#[test]
#[should_panic(expected = "Adam::new: invalid beta1 1.5: expected 0 <= beta1 < 1")]
fn new_panics_on_an_invalid_config() {
    let w = Tensor::<f32>::zeros(&[2]).requires_grad();
    let _ = Adam::new(
        vec![w],
        AdamConfig {
            beta1: 1.5,
            ..Default::default()
        },
    );
}

#[test]
#[should_panic(expected = "RmsProp::set_lr: invalid learning rate -0.5")]
fn set_lr_panics_on_a_negative_rate() {
    let w = Tensor::<f32>::zeros(&[2]).requires_grad();
    let mut opt: Box<dyn Optimizer> = Box::new(RmsProp::new(vec![w], RmsPropConfig::default()));
    opt.set_lr(-0.5);
}

#[test]
fn defaults_are_pytorchs() {
    let s = SgdConfig::<f64>::default();
    assert_eq!(
        (s.lr, s.momentum, s.dampening, s.nesterov, s.weight_decay),
        (1e-3, 0.0, 0.0, false, 0.0)
    );
    let a = AdamConfig::<f64>::default();
    assert_eq!(
        (a.lr, a.beta1, a.beta2, a.eps, a.weight_decay),
        (1e-3, 0.9, 0.999, 1e-8, 0.0)
    );
    let a = AdamWConfig::<f64>::default();
    assert_eq!(
        (a.lr, a.beta1, a.beta2, a.eps, a.weight_decay),
        (1e-3, 0.9, 0.999, 1e-8, 1e-2)
    );
    let r = RmsPropConfig::<f64>::default();
    assert_eq!(
        (r.lr, r.alpha, r.eps, r.weight_decay, r.momentum, r.centered),
        (1e-2, 0.99, 1e-8, 0.0, 0.0, false)
    );
    let g = AdagradConfig::<f64>::default();
    assert_eq!(
        (
            g.lr,
            g.lr_decay,
            g.weight_decay,
            g.eps,
            g.initial_accumulator_value
        ),
        (1e-2, 0.0, 0.0, 1e-10, 0.0)
    );
    assert_eq!(AdamConfig::<f32>::default().beta2, 0.999f32);
}

#[test]
fn lr_and_set_lr_through_the_trait() {
    let w = Tensor::<f64>::zeros(&[1]).requires_grad();
    let mut opt = Adam::new(
        vec![w.clone()],
        AdamConfig {
            lr: 1e-3,
            ..Default::default()
        },
    );
    assert_eq!(opt.lr(), 1e-3);
    opt.set_lr(1e-4);
    assert_eq!((opt.lr(), opt.config().lr), (1e-4, 1e-4));
    // the new rate is used: Adam's first step moves by lr·sign(g)
    opt.step(&w.sum().backward().unwrap()).unwrap();
    assert!((w.item() + 1e-4).abs() < 1e-12);
    let mut grads = Gradients::new();
    grads.insert(&w, Tensor::ones(&[1]));
    let report = opt.step(&grads).unwrap();
    assert_eq!(report.to_string(), "updated 1 of 1 parameters");
}

// ---------------------------------------------------------------- schedules

/// Drives `schedule` over an SGD optimizer with base rate `base` for `n` scheduler
/// steps; returns the rate in force at steps 0..=n.
fn lrs_of<S: LrSchedule<f64>>(base: f64, schedule: S, n: usize) -> Vec<f64> {
    let w = Tensor::<f64>::zeros(&[1]).requires_grad();
    let mut opt = Sgd::new(
        vec![w],
        SgdConfig {
            lr: base,
            ..Default::default()
        },
    );
    let mut sched = Scheduler::new(&mut opt, schedule);
    let mut out = vec![opt.lr()];
    for k in 1..=n {
        let lr = sched.step(&mut opt);
        assert_eq!(
            (lr, sched.last_lr(), sched.epoch()),
            (opt.lr(), opt.lr(), k)
        );
        out.push(lr);
    }
    assert_eq!(sched.base_lr(), base);
    out
}

#[track_caller]
fn assert_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-12, "step {k}: got {g}, want {w}");
    }
}

#[test]
fn step_lr() {
    // lr·γ^⌊t/3⌋ with lr 0.5, γ 0.1
    let got = lrs_of(0.5, StepLr::new(3, 0.1), 7);
    assert_close(&got, &[0.5, 0.5, 0.5, 0.05, 0.05, 0.05, 0.005, 0.005]);
}

#[test]
fn exponential_lr() {
    // lr·γ^t with lr 0.2, γ 0.5
    let got = lrs_of(0.2, ExponentialLr::new(0.5), 4);
    assert_close(&got, &[0.2, 0.1, 0.05, 0.025, 0.0125]);
}

#[test]
fn cosine_annealing_lr() {
    // η_min + (lr − η_min)(1 + cos(π·t/T_max))/2 with lr 1, η_min 0.2, T_max 4:
    // t = 0: 1; t = 1: 0.2 + 0.8·(1 + √½)/2; t = 2: 0.6; t = 3: 0.2 + 0.8·(1 − √½)/2;
    // t = 4: 0.2; past T_max the cosine goes back up (t = 6 equals t = 2), as PyTorch's
    // closed form does.
    let got = lrs_of(1.0, CosineAnnealingLr::new(4, 0.2), 6);
    let h = 0.5f64.sqrt();
    let want = [
        1.0,
        0.2 + 0.4 * (1.0 + h),
        0.6,
        0.2 + 0.4 * (1.0 - h),
        0.2,
        0.2 + 0.4 * (1.0 - h),
        0.6,
    ];
    assert_close(&got, &want);
}

#[test]
fn linear_warmup_and_linear_decay() {
    // warm-up from 0.25·lr over 4 steps: factor 0.25 + 0.75·t/4, then 1
    let got = lrs_of(0.8, LinearLr::warmup(0.25, 4), 6);
    assert_close(&got, &[0.2, 0.35, 0.5, 0.65, 0.8, 0.8, 0.8]);
    // a linear decay, from factor 1 to 0.5 over 2 steps
    let got = lrs_of(0.8, LinearLr::new(1.0, 0.5, 2), 3);
    assert_close(&got, &[0.8, 0.6, 0.4, 0.4]);
}

#[test]
fn warmup_then_cosine() {
    // 3 steps of warm-up from 0.1·lr, then cosine from lr to 0 over 4 steps
    let schedule = LinearLr::warmup(0.1, 3).then(3, CosineAnnealingLr::new(4, 0.0));
    let got = lrs_of(1.0, schedule, 7);
    let cos = |k: f64| (1.0 + (std::f64::consts::PI * k / 4.0).cos()) / 2.0;
    let want = [
        0.1,
        0.4,
        0.7,
        cos(0.0),
        cos(1.0),
        cos(2.0),
        cos(3.0),
        cos(4.0),
    ];
    assert_close(&got, &want);
    assert!(got[7].abs() < 1e-12);
}

#[test]
fn scheduler_drives_a_boxed_optimizer_and_the_steps_use_its_rate() {
    let w = Tensor::<f32>::from_vec(vec![0.0], &[1])
        .unwrap()
        .requires_grad();
    let mut opt: Box<dyn Optimizer> = Box::new(Sgd::new(
        vec![w.clone()],
        SgdConfig {
            lr: 1.0,
            ..Default::default()
        },
    ));
    let mut sched = Scheduler::new(&mut opt, StepLr::new(1, 0.5));
    // gradient 1 each step: w moves by 1, 0.5, 0.25
    for _ in 0..3 {
        opt.step(&w.sum().backward().unwrap()).unwrap();
        sched.step(&mut opt);
    }
    assert_eq!(w.item(), -1.75);
    assert_eq!(opt.lr(), 0.125);
}
