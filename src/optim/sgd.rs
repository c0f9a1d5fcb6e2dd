//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay.

use std::collections::BTreeMap;

use crate::element::{mono, Element};
use crate::tensor::Tensor;

use super::{check_nonneg, Fields, Hyperparams, Optim, ParamState, UpdateRule};

/// Settings of [`Sgd`]; `Default` is PyTorch's (`lr` 1e-3, everything else off).
///
/// ```
/// use ferrograd::optim::SgdConfig;
/// let c = SgdConfig::<f32> { lr: 0.1, momentum: 0.9, nesterov: true, ..Default::default() };
/// assert_eq!(c.dampening, 0.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SgdConfig<T: Element = f32> {
    /// Learning rate (≥ 0).
    pub lr: T,
    /// Momentum factor μ (≥ 0; 0 turns momentum off).
    pub momentum: T,
    /// Dampening τ of the momentum: `b ← μ·b + (1 − τ)·g` (not applied on the first step).
    pub dampening: T,
    /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`).
    pub nesterov: bool,
    /// L2 penalty λ (≥ 0), added to the gradient: `g ← g + λ·p`.
    pub weight_decay: T,
}

impl<T: Element> Default for SgdConfig<T> {
    fn default() -> Self {
        SgdConfig {
            lr: T::from_f64_lossy(1e-3),
            momentum: T::zero(),
            dampening: T::zero(),
            nesterov: false,
            weight_decay: T::zero(),
        }
    }
}

impl<T: Element> Hyperparams<T> for SgdConfig<T> {
    fn lr(&self) -> T {
        self.lr
    }

    fn set_lr(&mut self, lr: T) {
        self.lr = lr;
    }

    fn write_fields(&self, out: &mut Fields) {
        out.put("lr", self.lr);
        out.put("momentum", self.momentum);
        out.put("dampening", self.dampening);
        out.put("nesterov", self.nesterov);
        out.put("weight_decay", self.weight_decay);
    }

    fn read_fields(fields: &mut Fields) -> Result<Self, String> {
        Ok(SgdConfig {
            lr: fields.take_num("lr")?,
            momentum: fields.take_num("momentum")?,
            dampening: fields.take_num("dampening")?,
            nesterov: fields.take_flag("nesterov")?,
            weight_decay: fields.take_num("weight_decay")?,
        })
    }
}

/// The state [`Sgd`] keeps for one parameter.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SgdState<T: Element = f32> {
    /// How many updates this parameter has had.
    pub step: usize,
    /// The momentum buffer `b` (row-major, one value per element); `None` while
    /// momentum is off.
    pub momentum_buffer: Option<Vec<T>>,
}

impl<T: Element> ParamState<T> for SgdState<T> {
    fn step(&self) -> usize {
        self.step
    }

    fn buffers(&self) -> Vec<(&'static str, &[T])> {
        self.momentum_buffer
            .iter()
            .map(|b| ("momentum_buffer", &b[..]))
            .collect()
    }

    fn from_buffers(step: usize, buffers: &mut BTreeMap<String, Vec<T>>) -> Result<Self, String> {
        Ok(SgdState {
            step,
            momentum_buffer: buffers.remove("momentum_buffer"),
        })
    }
}

/// Stochastic gradient descent, as PyTorch's `torch.optim.SGD`: [`Optim`] with
/// [`SgdRule`].
///
/// For each parameter `p` with gradient `g`, with its group's config:
///
/// ```text
/// if λ ≠ 0:  g ← g + λ·p
/// if μ ≠ 0:  b ← g                      (no buffer yet: the first step)
///            b ← μ·b + (1 − τ)·g        (later steps)
///            g ← g + μ·b  if nesterov, else  g ← b
/// p ← p − lr·g
/// ```
///
/// ```
/// use ferrograd::optim::{Optimizer, Sgd, SgdConfig};
/// use ferrograd::Tensor;
///
/// let w = Tensor::<f64>::from_vec(vec![1.0], &[1])?.requires_grad();
/// let mut opt = Sgd::new(vec![w.clone()], SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() });
/// for _ in 0..2 {
///     let grads = (&w * &w * 0.5).sum().backward()?;   // gradient w
///     opt.step(&grads)?;
/// }
/// // step 1: b = 1,             w = 1 − 0.1·1     = 0.9
/// // step 2: b = 0.9·1 + 0.9,   w = 0.9 − 0.1·1.8 = 0.72
/// assert!((w.item() - 0.72).abs() < 1e-12);
/// assert_eq!(opt.state(0).unwrap().momentum_buffer.as_deref(), Some(&[1.8][..]));
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub type Sgd<T = f32> = Optim<T, SgdRule>;

/// The update rule of [`Sgd`] (see there).
#[derive(Clone, Copy, Debug, Default)]
pub struct SgdRule;

impl<T: Element> UpdateRule<T> for SgdRule {
    const NAME: &'static str = "Sgd";
    type Config = SgdConfig<T>;
    type State = SgdState<T>;

    fn validate(c: &SgdConfig<T>) -> Result<(), String> {
        check_nonneg("learning rate", c.lr)?;
        check_nonneg("momentum", c.momentum)?;
        check_nonneg("dampening", c.dampening)?;
        check_nonneg("weight_decay", c.weight_decay)?;
        if c.nesterov && (c.momentum <= T::zero() || c.dampening != T::zero()) {
            return Err(format!(
                "Nesterov momentum requires a momentum > 0 and zero dampening \
                 (got momentum {}, dampening {})",
                c.momentum, c.dampening
            ));
        }
        Ok(())
    }

    fn init_state(_: &SgdConfig<T>, _: &Tensor<T>) -> SgdState<T> {
        SgdState {
            step: 0,
            momentum_buffer: None,
        }
    }

    fn update(c: &SgdConfig<T>, s: &mut SgdState<T>, p: &mut [T], g: &[T]) {
        mono!(
            |c: &SgdConfig<T>, s: &mut SgdState<T>, p: &mut [T], g: &[T]| {
                s.step += 1;
                let (lr, wd, mu) = (c.lr, c.weight_decay, c.momentum);
                if mu == T::zero() {
                    for (p, &g) in p.iter_mut().zip(g) {
                        let g = if wd != T::zero() { g + wd * *p } else { g };
                        *p -= lr * g;
                    }
                    return;
                }
                // PyTorch starts the buffer as a copy of the first gradient: no dampening then.
                let damp = if s.momentum_buffer.is_some() {
                    T::one() - c.dampening
                } else {
                    T::one()
                };
                let buf = s
                    .momentum_buffer
                    .get_or_insert_with(|| vec![T::zero(); p.len()]);
                for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
                    let g = if wd != T::zero() { g + wd * *p } else { g };
                    // on the first step b = 0, so this is b = g exactly
                    *b = mu * *b + damp * g;
                    let d = if c.nesterov { g + mu * *b } else { *b };
                    *p -= lr * d;
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

    fn grads_of(w: &Tensor<f64>, g: &[f64]) -> Gradients<f64> {
        let mut grads = Gradients::new();
        grads.insert(w, Tensor::from_slice(g, w.shape()).unwrap());
        grads
    }

    #[test]
    fn plain_sgd_with_weight_decay() {
        // p = 1, g = 2, λ = 0.5, lr = 0.1: g' = 2 + 0.5 = 2.5, p = 1 − 0.25 = 0.75
        let w = Tensor::<f64>::from_vec(vec![1.0], &[1])
            .unwrap()
            .requires_grad();
        let mut opt = Sgd::new(
            vec![w.clone()],
            SgdConfig {
                lr: 0.1,
                weight_decay: 0.5,
                ..Default::default()
            },
        );
        opt.step(&grads_of(&w, &[2.0])).unwrap();
        assert!((w.item() - 0.75).abs() < 1e-15);
        assert_eq!(opt.state(0).unwrap().step, 1);
        assert!(opt.state(0).unwrap().momentum_buffer.is_none());
    }

    #[test]
    fn dampening_is_not_applied_on_the_first_step() {
        // μ = 0.5, τ = 0.5, lr = 1, constant g = 1:
        // t=1: b = 1            p = 0 − 1   = −1
        // t=2: b = 0.5 + 0.5    p = −1 − 1  = −2
        // t=3: b = 0.5 + 0.5    p = −3
        let w = Tensor::<f64>::zeros(&[1]).requires_grad();
        let mut opt = Sgd::new(
            vec![w.clone()],
            SgdConfig {
                lr: 1.0,
                momentum: 0.5,
                dampening: 0.5,
                ..Default::default()
            },
        );
        for expected in [-1.0, -2.0, -3.0] {
            opt.step(&grads_of(&w, &[1.0])).unwrap();
            assert_eq!(w.item(), expected);
        }
    }

    #[test]
    fn nesterov_requires_momentum_and_no_dampening() {
        let w = Tensor::<f32>::zeros(&[1]).requires_grad();
        for (momentum, dampening) in [(0.0, 0.0), (0.9, 0.1)] {
            let err = Sgd::try_new(
                vec![w.clone()],
                SgdConfig {
                    momentum,
                    dampening,
                    nesterov: true,
                    ..Default::default()
                },
            )
            .unwrap_err();
            assert!(err.to_string().contains("Nesterov"), "{err}");
        }
        for c in [
            SgdConfig {
                momentum: -0.1,
                ..Default::default()
            },
            SgdConfig {
                weight_decay: -1e-4,
                ..Default::default()
            },
            SgdConfig {
                lr: f32::NAN,
                ..Default::default()
            },
        ] {
            assert!(Sgd::try_new(vec![w.clone()], c).is_err());
        }
    }
}
