//! RMSprop, plain or centered, with optional momentum and weight decay.

use std::collections::BTreeMap;

use crate::element::{mono, Element};
use crate::tensor::Tensor;

use super::{check_nonneg, Fields, Hyperparams, Optim, ParamState, UpdateRule};

/// Settings of [`RmsProp`]; `Default` is PyTorch's: `lr` 1e-2, `alpha` 0.99,
/// `eps` 1e-8, no weight decay, no momentum, not centered.
///
/// ```
/// use ferrograd::optim::RmsPropConfig;
/// let c = RmsPropConfig::<f32> { centered: true, momentum: 0.9, ..Default::default() };
/// assert_eq!((c.lr, c.alpha), (1e-2, 0.99));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RmsPropConfig<T: Element = f32> {
    /// Learning rate (≥ 0).
    pub lr: T,
    /// Smoothing constant α of the squared-gradient average (≥ 0).
    pub alpha: T,
    /// Added to the denominator for numerical stability (≥ 0).
    pub eps: T,
    /// L2 penalty λ (≥ 0), added to the gradient: `g ← g + λ·p`.
    pub weight_decay: T,
    /// Momentum factor μ (≥ 0; 0 turns momentum off).
    pub momentum: T,
    /// Centered RMSprop: normalise by an estimate of the gradient's variance
    /// (`v − ḡ²`) instead of its raw second moment.
    pub centered: bool,
}

impl<T: Element> Default for RmsPropConfig<T> {
    fn default() -> Self {
        RmsPropConfig {
            lr: T::from_f64_lossy(1e-2),
            alpha: T::from_f64_lossy(0.99),
            eps: T::from_f64_lossy(1e-8),
            weight_decay: T::zero(),
            momentum: T::zero(),
            centered: false,
        }
    }
}

impl<T: Element> Hyperparams<T> for RmsPropConfig<T> {
    fn lr(&self) -> T {
        self.lr
    }

    fn set_lr(&mut self, lr: T) {
        self.lr = lr;
    }

    fn write_fields(&self, out: &mut Fields) {
        out.put("lr", self.lr);
        out.put("alpha", self.alpha);
        out.put("eps", self.eps);
        out.put("weight_decay", self.weight_decay);
        out.put("momentum", self.momentum);
        out.put("centered", self.centered);
    }

    fn read_fields(fields: &mut Fields) -> Result<Self, String> {
        Ok(RmsPropConfig {
            lr: fields.take_num("lr")?,
            alpha: fields.take_num("alpha")?,
            eps: fields.take_num("eps")?,
            weight_decay: fields.take_num("weight_decay")?,
            momentum: fields.take_num("momentum")?,
            centered: fields.take_flag("centered")?,
        })
    }
}

/// The state [`RmsProp`] keeps for one parameter (buffers row-major, one value per element).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RmsPropState<T: Element = f32> {
    /// How many updates this parameter has had.
    pub step: usize,
    /// The running average of squared gradients `v`.
    pub square_avg: Vec<T>,
    /// The momentum buffer `b`; `None` while momentum is off.
    pub momentum_buffer: Option<Vec<T>>,
    /// The running average of gradients `ḡ`; `None` while not centered.
    pub grad_avg: Option<Vec<T>>,
}

impl<T: Element> ParamState<T> for RmsPropState<T> {
    fn step(&self) -> usize {
        self.step
    }

    fn buffers(&self) -> Vec<(&'static str, &[T])> {
        let mut out = vec![("square_avg", &self.square_avg[..])];
        if let Some(b) = &self.momentum_buffer {
            out.push(("momentum_buffer", b));
        }
        if let Some(a) = &self.grad_avg {
            out.push(("grad_avg", a));
        }
        out
    }

    fn from_buffers(step: usize, buffers: &mut BTreeMap<String, Vec<T>>) -> Result<Self, String> {
        Ok(RmsPropState {
            step,
            square_avg: buffers
                .remove("square_avg")
                .ok_or("missing state buffer square_avg")?,
            momentum_buffer: buffers.remove("momentum_buffer"),
            grad_avg: buffers.remove("grad_avg"),
        })
    }
}

/// RMSprop, as PyTorch's `torch.optim.RMSprop`: [`Optim`] with [`RmsPropRule`].
///
/// For each parameter `p` with gradient `g`, with its group's config (all buffers
/// start at zero):
///
/// ```text
/// if λ ≠ 0:   g ← g + λ·p
/// v ← α·v + (1 − α)·g²
/// if centered: ḡ ← α·ḡ + (1 − α)·g;   d ← √(v − ḡ²) + ε
/// else:        d ← √v + ε
/// if μ > 0:   b ← μ·b + g/d;  p ← p − lr·b
/// else:       p ← p − lr·g/d
/// ```
///
/// ```
/// use ferrograd::optim::{Optimizer, RmsProp, RmsPropConfig};
/// use ferrograd::Tensor;
///
/// let w = Tensor::<f64>::from_vec(vec![1.0], &[1])?.requires_grad();
/// let mut opt = RmsProp::new(vec![w.clone()], RmsPropConfig { lr: 0.01, alpha: 0.75, eps: 0.0, ..Default::default() });
/// opt.step(&(&w * 4.0).sum().backward()?)?;   // gradient 4
/// // v = 0.25·16 = 4, p = 1 − 0.01·4/√4 = 0.98
/// assert!((w.item() - 0.98).abs() < 1e-15);
/// assert_eq!(opt.state(0).unwrap().square_avg, vec![4.0]);
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub type RmsProp<T = f32> = Optim<T, RmsPropRule>;

/// The update rule of [`RmsProp`] (see there).
#[derive(Clone, Copy, Debug, Default)]
pub struct RmsPropRule;

impl<T: Element> UpdateRule<T> for RmsPropRule {
    const NAME: &'static str = "RmsProp";
    type Config = RmsPropConfig<T>;
    type State = RmsPropState<T>;

    fn validate(c: &RmsPropConfig<T>) -> Result<(), String> {
        check_nonneg("learning rate", c.lr)?;
        check_nonneg("eps", c.eps)?;
        check_nonneg("momentum", c.momentum)?;
        check_nonneg("weight_decay", c.weight_decay)?;
        check_nonneg("alpha", c.alpha)
    }

    fn init_state(_: &RmsPropConfig<T>, param: &Tensor<T>) -> RmsPropState<T> {
        // the optional buffers are made by the first update that needs them
        RmsPropState {
            step: 0,
            square_avg: vec![T::zero(); param.numel()],
            momentum_buffer: None,
            grad_avg: None,
        }
    }

    fn update(c: &RmsPropConfig<T>, s: &mut RmsPropState<T>, p: &mut [T], g: &[T]) {
        mono!(
            |c: &RmsPropConfig<T>, s: &mut RmsPropState<T>, p: &mut [T], g: &[T]| {
                s.step += 1;
                let (lr, alpha, eps, wd, mu) = (c.lr, c.alpha, c.eps, c.weight_decay, c.momentum);
                let one_m_alpha = T::one() - alpha;
                let n = p.len();
                let (centered, momentum) = (c.centered, mu > T::zero());
                let zeros = || vec![T::zero(); n];
                // Buffers the config does not use are empty slices (and are left as they are).
                let gavg = match centered {
                    true => &mut s.grad_avg.get_or_insert_with(zeros)[..],
                    false => &mut [],
                };
                let buf = match momentum {
                    true => &mut s.momentum_buffer.get_or_insert_with(zeros)[..],
                    false => &mut [],
                };
                for i in 0..n {
                    let g = if wd != T::zero() {
                        g[i] + wd * p[i]
                    } else {
                        g[i]
                    };
                    let v = &mut s.square_avg[i];
                    *v = alpha * *v + one_m_alpha * g * g;
                    let denom = if centered {
                        let a = &mut gavg[i];
                        *a = alpha * *a + one_m_alpha * g;
                        (*v - *a * *a).sqrt() + eps
                    } else {
                        v.sqrt() + eps
                    };
                    if momentum {
                        let b = &mut buf[i];
                        *b = mu * *b + g / denom;
                        p[i] -= lr * *b;
                    } else {
                        p[i] -= lr * (g / denom);
                    }
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
    fn centered_with_momentum_by_hand() {
        // α = 0.5, ε = 0, μ = 0.5, lr = 0.1, centered; g₁ = 2, g₂ = 4 on p₀ = 0:
        // t=1: v = 2, ḡ = 1, d = √(2 − 1) = 1;     b = 2;          p = −0.2
        // t=2: v = 1 + 8 = 9, ḡ = 0.5 + 2 = 2.5, d = √(9 − 6.25) = √2.75
        //      b = 1 + 4/√2.75;  p = −0.2 − 0.1·b
        let w = Tensor::<f64>::zeros(&[1]).requires_grad();
        let mut opt = RmsProp::new(
            vec![w.clone()],
            RmsPropConfig {
                lr: 0.1,
                alpha: 0.5,
                eps: 0.0,
                weight_decay: 0.0,
                momentum: 0.5,
                centered: true,
            },
        );
        for g in [2.0, 4.0] {
            let mut grads = Gradients::new();
            grads.insert(&w, Tensor::from_vec(vec![g], &[1]).unwrap());
            opt.step(&grads).unwrap();
        }
        let b = 1.0 + 4.0 / 2.75f64.sqrt();
        assert!((w.item() - (-0.2 - 0.1 * b)).abs() < 1e-15);
        let s = opt.state(0).unwrap();
        assert_eq!(s.square_avg, vec![9.0]);
        assert_eq!(s.grad_avg.as_deref(), Some(&[2.5][..]));
        assert!((s.momentum_buffer.as_ref().unwrap()[0] - b).abs() < 1e-15);
    }

    #[test]
    fn negative_alpha_and_momentum_are_rejected() {
        let w = Tensor::<f32>::zeros(&[1]).requires_grad();
        for c in [
            RmsPropConfig {
                alpha: -0.5,
                ..Default::default()
            },
            RmsPropConfig {
                momentum: -0.5,
                ..Default::default()
            },
        ] {
            assert!(RmsProp::try_new(vec![w.clone()], c).is_err());
        }
    }
}
