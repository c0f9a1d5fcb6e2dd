//! Adam (with L2 weight decay) and AdamW (with decoupled weight decay).

use std::collections::BTreeMap;

use crate::element::{mono, Element};
use crate::kernels::adam::{update, AdamScalars};
use crate::tensor::Tensor;

use super::{check_nonneg, check_unit, Fields, Hyperparams, Optim, ParamState, UpdateRule};

/// Settings of [`Adam`]; `Default` is PyTorch's: `lr` 1e-3, betas 0.9 and 0.999,
/// `eps` 1e-8, no weight decay.
///
/// ```
/// use ferrograd::optim::AdamConfig;
/// let c = AdamConfig::<f32> { lr: 3e-4, ..Default::default() };
/// assert_eq!((c.beta1, c.beta2, c.eps, c.weight_decay), (0.9, 0.999, 1e-8, 0.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AdamConfig<T: Element = f32> {
    /// Learning rate (≥ 0).
    pub lr: T,
    /// Decay rate β₁ of the first moment (in `[0, 1)`).
    pub beta1: T,
    /// Decay rate β₂ of the second moment (in `[0, 1)`).
    pub beta2: T,
    /// Added to the denominator for numerical stability (≥ 0).
    pub eps: T,
    /// L2 penalty λ (≥ 0), added to the gradient: `g ← g + λ·p`.
    pub weight_decay: T,
}

impl<T: Element> Default for AdamConfig<T> {
    fn default() -> Self {
        AdamConfig {
            lr: T::from_f64_lossy(1e-3),
            beta1: T::from_f64_lossy(0.9),
            beta2: T::from_f64_lossy(0.999),
            eps: T::from_f64_lossy(1e-8),
            weight_decay: T::zero(),
        }
    }
}

/// Settings of [`AdamW`]; `Default` is PyTorch's: as [`AdamConfig`] but with
/// `weight_decay` 0.01 (decoupled).
///
/// ```
/// use ferrograd::optim::AdamWConfig;
/// assert_eq!(AdamWConfig::<f64>::default().weight_decay, 0.01);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AdamWConfig<T: Element = f32> {
    /// Learning rate (≥ 0).
    pub lr: T,
    /// Decay rate β₁ of the first moment (in `[0, 1)`).
    pub beta1: T,
    /// Decay rate β₂ of the second moment (in `[0, 1)`).
    pub beta2: T,
    /// Added to the denominator for numerical stability (≥ 0).
    pub eps: T,
    /// Decoupled weight decay λ (≥ 0): `p ← p·(1 − lr·λ)` before the Adam update.
    pub weight_decay: T,
}

impl<T: Element> Default for AdamWConfig<T> {
    fn default() -> Self {
        let a = AdamConfig::default();
        AdamWConfig {
            lr: a.lr,
            beta1: a.beta1,
            beta2: a.beta2,
            eps: a.eps,
            weight_decay: T::from_f64_lossy(1e-2),
        }
    }
}

impl<T: Element> Hyperparams<T> for AdamConfig<T> {
    fn lr(&self) -> T {
        self.lr
    }

    fn set_lr(&mut self, lr: T) {
        self.lr = lr;
    }

    fn write_fields(&self, out: &mut Fields) {
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = *self;
        write_fields(out, [lr, beta1, beta2, eps, weight_decay]);
    }

    fn read_fields(fields: &mut Fields) -> Result<Self, String> {
        let [lr, beta1, beta2, eps, weight_decay] = read_fields(fields)?;
        Ok(AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        })
    }
}

impl<T: Element> Hyperparams<T> for AdamWConfig<T> {
    fn lr(&self) -> T {
        self.lr
    }

    fn set_lr(&mut self, lr: T) {
        self.lr = lr;
    }

    fn write_fields(&self, out: &mut Fields) {
        let AdamWConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = *self;
        write_fields(out, [lr, beta1, beta2, eps, weight_decay]);
    }

    fn read_fields(fields: &mut Fields) -> Result<Self, String> {
        let [lr, beta1, beta2, eps, weight_decay] = read_fields(fields)?;
        Ok(AdamWConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        })
    }
}

/// The fields of both Adam configs, in the order of [`write_fields`].
const FIELDS: [&str; 5] = ["lr", "beta1", "beta2", "eps", "weight_decay"];

fn write_fields<T: Element>(out: &mut Fields, values: [T; 5]) {
    for (name, v) in FIELDS.into_iter().zip(values) {
        out.put(name, v);
    }
}

fn read_fields<T: Element>(fields: &mut Fields) -> Result<[T; 5], String> {
    let mut values = [T::zero(); 5];
    for (name, v) in FIELDS.into_iter().zip(&mut values) {
        *v = fields.take_num(name)?;
    }
    Ok(values)
}

/// The state [`Adam`] and [`AdamW`] keep for one parameter.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AdamState<T: Element = f32> {
    /// How many updates this parameter has had (`t` in the bias corrections).
    pub step: usize,
    /// The first moment `m` (row-major, one value per element).
    pub exp_avg: Vec<T>,
    /// The second moment `v` (row-major, one value per element).
    pub exp_avg_sq: Vec<T>,
}

impl<T: Element> ParamState<T> for AdamState<T> {
    fn step(&self) -> usize {
        self.step
    }

    fn buffers(&self) -> Vec<(&'static str, &[T])> {
        vec![("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)]
    }

    fn from_buffers(step: usize, buffers: &mut BTreeMap<String, Vec<T>>) -> Result<Self, String> {
        let mut take = |name: &str| {
            buffers
                .remove(name)
                .ok_or_else(|| format!("missing state buffer {name}"))
        };
        Ok(AdamState {
            step,
            exp_avg: take("exp_avg")?,
            exp_avg_sq: take("exp_avg_sq")?,
        })
    }
}

/// Adam, as PyTorch's `torch.optim.Adam` (without `amsgrad`): [`Optim`] with
/// [`AdamRule`].
///
/// For each parameter `p` with gradient `g`, at its step `t`, with its group's
/// config:
///
/// ```text
/// if λ ≠ 0:  g ← g + λ·p
/// m ← β₁·m + (1 − β₁)·g
/// v ← β₂·v + (1 − β₂)·g²
/// p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
/// ```
///
/// ```
/// use ferrograd::optim::{Adam, AdamConfig, Optimizer};
/// use ferrograd::Tensor;
///
/// let w = Tensor::<f64>::from_vec(vec![1.0, -3.0], &[2])?.requires_grad();
/// let mut opt = Adam::new(vec![w.clone()], AdamConfig { lr: 0.1, ..Default::default() });
/// opt.step(&w.square().sum().backward()?)?;
/// // first step: m/(1−β₁) = g and √(v/(1−β₂)) = |g|, so each element moves by lr·sign(g)
/// let v = w.to_vec();
/// assert!((v[0] - 0.9).abs() < 1e-7 && (v[1] + 2.9).abs() < 1e-7);
/// assert_eq!(opt.state(0).unwrap().step, 1);
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub type Adam<T = f32> = Optim<T, AdamRule>;

/// AdamW, as PyTorch's `torch.optim.AdamW` (without `amsgrad`): Adam whose weight
/// decay is decoupled from the gradient; [`Optim`] with [`AdamWRule`].
///
/// For each parameter `p` with gradient `g`, at its step `t`, with its group's
/// config:
///
/// ```text
/// p ← p·(1 − lr·λ)
/// m ← β₁·m + (1 − β₁)·g
/// v ← β₂·v + (1 − β₂)·g²
/// p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
/// ```
///
/// ```
/// use ferrograd::optim::{AdamW, AdamWConfig, Optimizer};
/// use ferrograd::Tensor;
///
/// let w = Tensor::<f64>::from_vec(vec![2.0], &[1])?.requires_grad();
/// let mut opt = AdamW::new(vec![w.clone()], AdamWConfig { lr: 0.1, weight_decay: 0.5, ..Default::default() });
/// opt.step(&w.sum().backward()?)?;   // gradient 1
/// // decay: 2·(1 − 0.1·0.5) = 1.9; then the Adam step moves it by lr·sign(g) = 0.1
/// assert!((w.item() - 1.8).abs() < 1e-7);
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub type AdamW<T = f32> = Optim<T, AdamWRule>;

/// The update rule of [`Adam`] (see there).
#[derive(Clone, Copy, Debug, Default)]
pub struct AdamRule;

/// The update rule of [`AdamW`] (see there).
#[derive(Clone, Copy, Debug, Default)]
pub struct AdamWRule;

impl<T: Element> UpdateRule<T> for AdamRule {
    const NAME: &'static str = "Adam";
    type Config = AdamConfig<T>;
    type State = AdamState<T>;

    fn validate(c: &AdamConfig<T>) -> Result<(), String> {
        validate(c.lr, c.beta1, c.beta2, c.eps, c.weight_decay)
    }

    fn init_state(_: &AdamConfig<T>, param: &Tensor<T>) -> AdamState<T> {
        init_state(param.numel())
    }

    fn update(c: &AdamConfig<T>, s: &mut AdamState<T>, p: &mut [T], g: &[T]) {
        mono!(
            |c: &AdamConfig<T>, s: &mut AdamState<T>, p: &mut [T], g: &[T]| {
                adam_update(s, p, g, c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, None);
            },
            (c, s, p, g)
        )
    }
}

impl<T: Element> UpdateRule<T> for AdamWRule {
    const NAME: &'static str = "AdamW";
    type Config = AdamWConfig<T>;
    type State = AdamState<T>;

    fn validate(c: &AdamWConfig<T>) -> Result<(), String> {
        validate(c.lr, c.beta1, c.beta2, c.eps, c.weight_decay)
    }

    fn init_state(_: &AdamWConfig<T>, param: &Tensor<T>) -> AdamState<T> {
        init_state(param.numel())
    }

    fn update(c: &AdamWConfig<T>, s: &mut AdamState<T>, p: &mut [T], g: &[T]) {
        mono!(
            |c: &AdamWConfig<T>, s: &mut AdamState<T>, p: &mut [T], g: &[T]| {
                let shrink = T::from_f64_lossy(
                    1.0 - c.lr.to_f64_lossless() * c.weight_decay.to_f64_lossless(),
                );
                adam_update(
                    s,
                    p,
                    g,
                    c.lr,
                    c.beta1,
                    c.beta2,
                    c.eps,
                    T::zero(),
                    Some(shrink),
                );
            },
            (c, s, p, g)
        )
    }
}

fn validate<T: Element>(lr: T, beta1: T, beta2: T, eps: T, wd: T) -> Result<(), String> {
    check_nonneg("learning rate", lr)?;
    check_nonneg("eps", eps)?;
    check_unit("beta1", beta1)?;
    check_unit("beta2", beta2)?;
    check_nonneg("weight_decay", wd)
}

fn init_state<T: Element>(numel: usize) -> AdamState<T> {
    AdamState {
        step: 0,
        exp_avg: vec![T::zero(); numel],
        exp_avg_sq: vec![T::zero(); numel],
    }
}

/// One Adam step over a parameter: L2 decay `l2` folded into the gradient, or
/// (AdamW) the decoupled factor `shrink = 1 − lr·λ` applied to `p` first.
///
/// The per-step scalars are computed once; the element loop has no branches (one
/// monomorphised copy per decay kind), so it vectorises, and large parameters
/// are split over the thread pool.
#[allow(clippy::too_many_arguments)]
fn adam_update<T: Element>(
    s: &mut AdamState<T>,
    p: &mut [T],
    g: &[T],
    lr: T,
    beta1: T,
    beta2: T,
    eps: T,
    l2: T,
    shrink: Option<T>,
) {
    s.step += 1;
    // The scalar factors are computed in f64, as PyTorch does in Python floats.
    let t = s.step as f64;
    let bias1 = 1.0 - beta1.to_f64_lossless().powf(t);
    let bias2 = 1.0 - beta2.to_f64_lossless().powf(t);
    let k = AdamScalars {
        beta1,
        beta2,
        one_m_b1: T::one() - beta1,
        one_m_b2: T::one() - beta2,
        step_size: T::from_f64_lossy(lr.to_f64_lossless() / bias1),
        bias2_sqrt: T::from_f64_lossy(bias2.sqrt()),
        eps,
        l2,
        shrink: shrink.unwrap_or(T::one()),
    };
    let (m, v) = (&mut s.exp_avg[..], &mut s.exp_avg_sq[..]);
    match (shrink.is_some(), l2 != T::zero()) {
        (true, _) => update::<T, true, false>(&k, p, g, m, v),
        (false, true) => update::<T, false, true>(&k, p, g, m, v),
        (false, false) => update::<T, false, false>(&k, p, g, m, v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::Gradients;
    use crate::optim::Optimizer;

    #[test]
    fn betas_are_checked_as_pytorch_does() {
        let w = Tensor::<f32>::zeros(&[1]).requires_grad();
        let err = Adam::try_new(
            vec![w.clone()],
            AdamConfig {
                beta1: 1.0,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Adam::new: invalid beta1 1: expected 0 <= beta1 < 1"
        );
        let err = AdamW::try_new(
            vec![w.clone()],
            AdamWConfig {
                beta2: -0.1,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("AdamW::new: invalid beta2"));
        assert!(Adam::try_new(
            vec![w.clone()],
            AdamConfig {
                eps: -1e-8,
                ..Default::default()
            }
        )
        .is_err());
        assert!(AdamW::try_new(
            vec![w],
            AdamWConfig {
                beta1: 0.0,
                weight_decay: 0.0,
                ..Default::default()
            }
        )
        .is_ok());
    }

    #[test]
    fn adam_second_step_by_hand() {
        // lr 0.1, β₁ 0.5, β₂ 0.75, ε 0; g₁ = 2, g₂ = 1 on p₀ = 0:
        // t=1: m = 1, v = 1;      m̂ = 1/0.5 = 2, v̂ = 1/0.25 = 4 → p = −0.1·2/2 = −0.1
        // t=2: m = 0.5 + 0.5 = 1, v = 0.75 + 0.25 = 1;
        //      m̂ = 1/0.75, v̂ = 1/0.4375 → p = −0.1 − 0.1·(4/3)·√0.4375
        let w = Tensor::<f64>::zeros(&[1]).requires_grad();
        let mut opt = Adam::new(
            vec![w.clone()],
            AdamConfig {
                lr: 0.1,
                beta1: 0.5,
                beta2: 0.75,
                eps: 0.0,
                weight_decay: 0.0,
            },
        );
        for g in [2.0, 1.0] {
            let mut grads = Gradients::new();
            grads.insert(&w, Tensor::from_vec(vec![g], &[1]).unwrap());
            opt.step(&grads).unwrap();
        }
        let expected = -0.1 - 0.1 * (4.0 / 3.0) * 0.4375f64.sqrt();
        assert!((w.item() - expected).abs() < 1e-15, "{}", w.item());
        let s = opt.state(0).unwrap();
        assert_eq!((s.step, s.exp_avg[0], s.exp_avg_sq[0]), (2, 1.0, 1.0));
    }
}
