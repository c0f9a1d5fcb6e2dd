//! Adagrad, with learning-rate decay and weight decay.

use std::collections::BTreeMap;

use crate::element::{mono, Element};
use crate::tensor::Tensor;

use super::{check_nonneg, Fields, Hyperparams, Optim, ParamState, UpdateRule};

/// Settings of [`Adagrad`]; `Default` is PyTorch's: `lr` 1e-2, `eps` 1e-10,
/// everything else 0.
///
/// ```
/// use ferrograd::optim::AdagradConfig;
/// let c = AdagradConfig::<f64>::default();
/// assert_eq!((c.lr, c.eps, c.lr_decay, c.initial_accumulator_value), (1e-2, 1e-10, 0.0, 0.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AdagradConfig<T: Element = f32> {
    /// Learning rate (≥ 0).
    pub lr: T,
    /// Learning-rate decay η (≥ 0): step `t` uses `lr / (1 + (t − 1)·η)`.
    pub lr_decay: T,
    /// L2 penalty λ (≥ 0), added to the gradient: `g ← g + λ·p`.
    pub weight_decay: T,
    /// Added to the denominator for numerical stability (≥ 0).
    pub eps: T,
    /// The starting value of every element of the sum of squares (≥ 0).
    pub initial_accumulator_value: T,
}

impl<T: Element> Default for AdagradConfig<T> {
    fn default() -> Self {
        AdagradConfig {
            lr: T::from_f64_lossy(1e-2),
            lr_decay: T::zero(),
            weight_decay: T::zero(),
            eps: T::from_f64_lossy(1e-10),
            initial_accumulator_value: T::zero(),
        }
    }
}

impl<T: Element> Hyperparams<T> for AdagradConfig<T> {
    fn lr(&self) -> T {
        self.lr
    }

    fn set_lr(&mut self, lr: T) {
        self.lr = lr;
    }

    fn write_fields(&self, out: &mut Fields) {
        out.put("lr", self.lr);
        out.put("lr_decay", self.lr_decay);
        out.put("weight_decay", self.weight_decay);
        out.put("eps", self.eps);
        out.put("initial_accumulator_value", self.initial_accumulator_value);
    }

    fn read_fields(fields: &mut Fields) -> Result<Self, String> {
        Ok(AdagradConfig {
            lr: fields.take_num("lr")?,
            lr_decay: fields.take_num("lr_decay")?,
            weight_decay: fields.take_num("weight_decay")?,
            eps: fields.take_num("eps")?,
            initial_accumulator_value: fields.take_num("initial_accumulator_value")?,
        })
    }
}

/// The state [`Adagrad`] keeps for one parameter.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AdagradState<T: Element = f32> {
    /// How many updates this parameter has had (`t` in the learning-rate decay).
    pub step: usize,
    /// The sum of squared gradients `s` (row-major, one value per element),
    /// starting at `initial_accumulator_value`.
    pub sum: Vec<T>,
}

impl<T: Element> ParamState<T> for AdagradState<T> {
    fn step(&self) -> usize {
        self.step
    }

    fn buffers(&self) -> Vec<(&'static str, &[T])> {
        vec![("sum", &self.sum)]
    }

    fn from_buffers(step: usize, buffers: &mut BTreeMap<String, Vec<T>>) -> Result<Self, String> {
        let sum = buffers.remove("sum").ok_or("missing state buffer sum")?;
        Ok(AdagradState { step, sum })
    }
}

/// Adagrad, as PyTorch's `torch.optim.Adagrad`: [`Optim`] with [`AdagradRule`].
///
/// For each parameter `p` with gradient `g`, at its step `t`, with its group's
/// config (`s` starts at `initial_accumulator_value`):
///
/// ```text
/// if λ ≠ 0:  g ← g + λ·p
/// clr = lr / (1 + (t − 1)·η)
/// s ← s + g²
/// p ← p − clr · g / (√s + ε)
/// ```
///
/// ```
/// use ferrograd::optim::{Adagrad, AdagradConfig, Optimizer};
/// use ferrograd::Tensor;
///
/// let w = Tensor::<f64>::from_vec(vec![1.0], &[1])?.requires_grad();
/// let mut opt = Adagrad::new(vec![w.clone()], AdagradConfig { lr: 0.5, eps: 0.0, ..Default::default() });
/// opt.step(&(&w * 3.0).sum().backward()?)?;   // gradient 3: s = 9, p = 1 − 0.5·3/3
/// assert_eq!(w.item(), 0.5);
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub type Adagrad<T = f32> = Optim<T, AdagradRule>;

/// The update rule of [`Adagrad`] (see there).
#[derive(Clone, Copy, Debug, Default)]
pub struct AdagradRule;

impl<T: Element> UpdateRule<T> for AdagradRule {
    const NAME: &'static str = "Adagrad";
    type Config = AdagradConfig<T>;
    type State = AdagradState<T>;

    fn validate(c: &AdagradConfig<T>) -> Result<(), String> {
        check_nonneg("learning rate", c.lr)?;
        check_nonneg("lr_decay", c.lr_decay)?;
        check_nonneg("weight_decay", c.weight_decay)?;
        check_nonneg("initial_accumulator_value", c.initial_accumulator_value)?;
        check_nonneg("eps", c.eps)
    }

    fn init_state(c: &AdagradConfig<T>, param: &Tensor<T>) -> AdagradState<T> {
        AdagradState {
            step: 0,
            sum: vec![c.initial_accumulator_value; param.numel()],
        }
    }

    fn update(c: &AdagradConfig<T>, s: &mut AdagradState<T>, p: &mut [T], g: &[T]) {
        mono!(
            |c: &AdagradConfig<T>, s: &mut AdagradState<T>, p: &mut [T], g: &[T]| {
                s.step += 1;
                let (wd, eps) = (c.weight_decay, c.eps);
                // computed in f64, as PyTorch does in Python floats
                let clr = c.lr.to_f64_lossless()
                    / (1.0 + (s.step - 1) as f64 * c.lr_decay.to_f64_lossless());
                let clr = T::from_f64_lossy(clr);
                for ((p, &g), acc) in p.iter_mut().zip(g).zip(s.sum.iter_mut()) {
                    let g = if wd != T::zero() { g + wd * *p } else { g };
                    *acc += g * g;
                    *p -= clr * (g / (acc.sqrt() + eps));
                }
            },
            (c, s, p, g)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::Gradients;
    use crate::optim::Optimizer;

    #[test]
    fn lr_decay_and_initial_accumulator_by_hand() {
        // lr 1, η = 1, s₀ = 7, ε = 0, constant g = 3 on p₀ = 0:
        // t=1: clr = 1,   s = 16, p = −3/4
        // t=2: clr = 1/2, s = 25, p = −3/4 − 0.5·3/5 = −1.05
        // t=3: clr = 1/3, s = 34, p = −1.05 − 1/√34
        let w = Tensor::<f64>::zeros(&[1]).requires_grad();
        let mut opt = Adagrad::new(
            vec![w.clone()],
            AdagradConfig {
                lr: 1.0,
                lr_decay: 1.0,
                weight_decay: 0.0,
                eps: 0.0,
                initial_accumulator_value: 7.0,
            },
        );
        let mut grads = Gradients::new();
        grads.insert(&w, Tensor::from_vec(vec![3.0], &[1]).unwrap());
        opt.step(&grads).unwrap();
        assert_eq!(w.item(), -0.75);
        opt.step(&grads).unwrap();
        assert!((w.item() + 1.05).abs() < 1e-15);
        opt.step(&grads).unwrap();
        assert!((w.item() - (-1.05 - 1.0 / 34f64.sqrt())).abs() < 1e-15);
        assert_eq!(opt.state(0).unwrap().sum, vec![34.0]);
    }

    #[test]
    fn negative_settings_are_rejected() {
        let w = Tensor::<f32>::zeros(&[1]).requires_grad();
        for c in [
            AdagradConfig {
                lr_decay: -1.0,
                ..Default::default()
            },
            AdagradConfig {
                initial_accumulator_value: -1.0,
                ..Default::default()
            },
            AdagradConfig {
                eps: -1.0,
                ..Default::default()
            },
        ] {
            assert!(Adagrad::try_new(vec![w.clone()], c).is_err());
        }
    }
}
