//! `Activation`: the elementwise nonlinearities as a value, usable in `Mlp` and `Sequential`.

use crate::element::{c, Element};
use crate::nn::{Module, ModuleParams};
use crate::tensor::Tensor;

/// An elementwise nonlinearity, as a value: [`Mlp`](crate::nn::Mlp) puts one between
/// its layers, and it is a parameterless [`Module`] for
/// [`Sequential`](crate::nn::Sequential).
///
/// Each variant runs the [`Tensor`] method of the same name. Note that `Gelu` is
/// the tanh approximation ([`Tensor::gelu`], PyTorch's `GELU(approximate="tanh")`)
/// and `GeluErf` the exact form ([`Tensor::gelu_erf`], PyTorch's default `GELU()`).
///
/// ```
/// use ferrograd::nn::{Activation, Module};
/// use ferrograd::Tensor;
/// let x = Tensor::<f32>::from_vec(vec![-2.0, 0.0, 3.0], &[3])?;
/// assert_eq!(Activation::Relu.apply(&x).to_vec(), vec![0.0, 0.0, 3.0]);
/// assert_eq!(Activation::LeakyRelu(0.5).forward(&x).to_vec(), vec![-1.0, 0.0, 3.0]);
/// assert_eq!(Activation::Identity.apply(&x).to_vec(), x.to_vec());
/// # Ok::<(), ferrograd::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Activation {
    /// `max(x, 0)` ([`Tensor::relu`]).
    Relu,
    /// `tanh(x)` ([`Tensor::tanh`]).
    Tanh,
    /// `1 / (1 + e^(−x))` ([`Tensor::sigmoid`]).
    Sigmoid,
    /// GELU, tanh approximation ([`Tensor::gelu`]).
    Gelu,
    /// GELU, exact form with `erf` ([`Tensor::gelu_erf`]).
    GeluErf,
    /// `x · sigmoid(x)` ([`Tensor::silu`]), also called swish.
    Silu,
    /// `x` where `x ≥ 0`, `slope · x` elsewhere ([`Tensor::leaky_relu`]); PyTorch's
    /// default slope is `0.01`.
    LeakyRelu(f64),
    /// `x` unchanged.
    Identity,
}

impl Activation {
    /// Applies the nonlinearity to every element of `x`.
    ///
    /// ```
    /// use ferrograd::nn::Activation;
    /// use ferrograd::Tensor;
    /// let x = Tensor::<f64>::scalar(0.0);
    /// assert_eq!(Activation::Sigmoid.apply(&x).item(), 0.5);
    /// assert_eq!(Activation::Tanh.apply(&x).item(), 0.0);
    /// ```
    pub fn apply<T: Element>(&self, x: &Tensor<T>) -> Tensor<T> {
        match *self {
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Gelu => x.gelu(),
            Activation::GeluErf => x.gelu_erf(),
            Activation::Silu => x.silu(),
            Activation::LeakyRelu(slope) => x.leaky_relu(c(slope)),
            Activation::Identity => x.clone(),
        }
    }
}

/// An activation's forward is [`Activation::apply`].
impl<T: Element> Module<T> for Activation {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        self.apply(x)
    }
}

/// An activation holds no parameters, and behaves the same in training and
/// evaluation.
impl<T: Element> ModuleParams<T> for Activation {
    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{assert_close, check, rand_leaf};

    #[test]
    fn each_variant_runs_its_op() {
        let x = Tensor::<f64>::from_vec(vec![-1.5, -0.2, 0.0, 0.7, 2.0], &[5]).unwrap();
        let cases: [(Activation, Tensor<f64>); 8] = [
            (Activation::Relu, x.relu()),
            (Activation::Tanh, x.tanh()),
            (Activation::Sigmoid, x.sigmoid()),
            (Activation::Gelu, x.gelu()),
            (Activation::GeluErf, x.gelu_erf()),
            (Activation::Silu, x.silu()),
            (Activation::LeakyRelu(0.1), x.leaky_relu(0.1)),
            (Activation::Identity, x.clone()),
        ];
        for (act, expected) in cases {
            assert_eq!(act.apply(&x).to_vec(), expected.to_vec(), "{act:?}");
            assert!(ModuleParams::<f64>::named_parameters(&act).is_empty());
        }
        assert_close(
            &Activation::LeakyRelu(0.1).apply(&x),
            &[-0.15, -0.02, 0.0, 0.7, 2.0],
            1e-12,
        );
        assert_close(
            &Activation::Sigmoid.apply(&x),
            &x.to_vec()
                .iter()
                .map(|v| 1.0 / (1.0 + (-v).exp()))
                .collect::<Vec<_>>(),
            1e-12,
        );
    }

    #[test]
    fn gradients_flow_through_every_variant() {
        for act in [
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Gelu,
            Activation::GeluErf,
            Activation::Silu,
            Activation::Identity,
        ] {
            check(|t| act.forward(&t[0]), &[rand_leaf(&[2, 3], 3)]);
        }
    }
}
