//! `LayerNorm`: normalisation over the last axis with a learned scale and shift.

use crate::element::{c, Element};
use crate::error::{or_panic, Result};
use crate::nn::functional::try_layer_norm;
use crate::nn::Module;
use crate::tensor::Tensor;

/// Layer normalisation over the last axis, as PyTorch's `nn.LayerNorm(dim, eps)`:
///
/// `y = (x − mean) / sqrt(var + eps) · weight + bias`
///
/// with the mean and the biased variance over the last axis (of size `dim`), and
/// `weight` (ones) and `bias` (zeros) of shape `[dim]`, named `"weight"` and
/// `"bias"`. [`new_no_bias`](LayerNorm::new_no_bias) makes a layer without the
/// shift (`bias=False` in PyTorch), whose only parameter is `"weight"`. See
/// [`functional::layer_norm`](crate::nn::functional::layer_norm).
///
/// ```
/// use ferrograd::nn::{LayerNorm, Module};
/// use ferrograd::Tensor;
///
/// let ln = LayerNorm::<f64>::with_default_eps(4);
/// let x = Tensor::<f64>::from_vec(vec![1., 2., 3., 4., 10., 10., 10., 10.], &[2, 4])?;
/// let y = ln.forward(&x).to_vec();
/// let row0 = &y[..4];
/// assert!(row0.iter().sum::<f64>().abs() < 1e-12);                           // mean 0
/// assert!((row0.iter().map(|v| v * v).sum::<f64>() / 4.0 - 1.0).abs() < 1e-4); // variance 1
/// assert_eq!(&y[4..], &[0.0; 4]);                                              // a constant row
/// # Ok::<(), ferrograd::Error>(())
/// ```
#[derive(Debug, Module)]
pub struct LayerNorm<T: Element = f32> {
    weight: Tensor<T>,
    bias: Option<Tensor<T>>,
    #[module(skip)]
    eps: T,
}

impl<T: Element> LayerNorm<T> {
    /// PyTorch's default `eps`, `1e-5`.
    pub const DEFAULT_EPS: f64 = 1e-5;

    /// Normalises over a last axis of size `dim`, adding `eps` to the variance;
    /// weight ones and bias zeros.
    ///
    /// ```
    /// use ferrograd::nn::{LayerNorm, ModuleParams};
    /// let ln = LayerNorm::<f32>::new(8, 1e-6);
    /// assert_eq!(ln.eps(), 1e-6);
    /// assert_eq!(ln.weight().to_vec(), vec![1.0; 8]);
    /// assert_eq!(ln.parameters().len(), 2);
    /// ```
    pub fn new(dim: usize, eps: T) -> Self {
        LayerNorm {
            weight: Tensor::ones(&[dim]).requires_grad(),
            bias: Some(Tensor::zeros(&[dim]).requires_grad()),
            eps,
        }
    }

    /// Like [`new`](LayerNorm::new) without the learned shift: `y = (x − mean) /
    /// sqrt(var + eps) · weight`, PyTorch's `nn.LayerNorm(dim, eps, bias=False)`.
    /// The only parameter is `"weight"` (ones).
    ///
    /// ```
    /// use ferrograd::nn::{LayerNorm, Module, ModuleParams};
    /// use ferrograd::Tensor;
    /// let ln = LayerNorm::<f64>::new_no_bias(2, 0.0);
    /// assert!(ln.bias().is_none());
    /// let names: Vec<String> = ln.named_parameters().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["weight"]);
    /// let x = Tensor::<f64>::from_vec(vec![1., 3.], &[1, 2])?;
    /// assert_eq!(ln.forward(&x).to_vec(), vec![-1., 1.]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn new_no_bias(dim: usize, eps: T) -> Self {
        LayerNorm {
            weight: Tensor::ones(&[dim]).requires_grad(),
            bias: None,
            eps,
        }
    }

    /// Like [`new`](LayerNorm::new) with PyTorch's default `eps` of
    /// [`DEFAULT_EPS`](LayerNorm::DEFAULT_EPS) (`1e-5`).
    pub fn with_default_eps(dim: usize) -> Self {
        Self::new(dim, c(Self::DEFAULT_EPS))
    }

    /// The learned scale, `[dim]`.
    pub fn weight(&self) -> &Tensor<T> {
        &self.weight
    }

    /// The learned shift, `[dim]`, unless the layer was made by
    /// [`new_no_bias`](LayerNorm::new_no_bias).
    pub fn bias(&self) -> Option<&Tensor<T>> {
        self.bias.as_ref()
    }

    /// The size of the normalised (last) axis.
    pub fn dim(&self) -> usize {
        self.weight.shape()[0]
    }

    /// The constant added to the variance.
    pub fn eps(&self) -> T {
        self.eps
    }

    /// Like [`forward`](Module::forward), returning an error instead of panicking.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) (op `"layer_norm"`)
    /// when the input's last axis is not `dim`;
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a 0-d input.
    pub fn try_forward(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        try_layer_norm(x, Some(&self.weight), self.bias.as_ref(), self.eps)
    }
}

impl<T: Element> Module<T> for LayerNorm<T> {
    /// Normalises `x` (`[.., dim]`) over its last axis, then scales and shifts.
    ///
    /// # Panics
    /// Panics when the last axis is not `dim`, naming the shapes.
    #[track_caller]
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        or_panic(self.try_forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{assert_close, check, rand_leaf};

    #[test]
    fn forward_known_values_with_learned_affine() {
        let ln = LayerNorm::<f64>::new(2, 0.0);
        assert_eq!(ln.dim(), 2);
        ln.weight()
            .assign(&Tensor::from_vec(vec![2., 3.], &[2]).unwrap())
            .unwrap();
        ln.bias()
            .unwrap()
            .assign(&Tensor::from_vec(vec![1., -1.], &[2]).unwrap())
            .unwrap();
        // each row of two distinct values normalises to [-1, 1] or [1, -1]
        let x = Tensor::<f64>::from_vec(vec![0., 4., 7., 5.], &[2, 2]).unwrap();
        assert_close(&ln.forward(&x), &[-1., 2., 3., -4.], 1e-12);
        let names: Vec<_> = ln.named_parameters().into_iter().map(|p| p.0).collect();
        assert_eq!(names, ["weight", "bias"]);
        assert_eq!(LayerNorm::<f32>::with_default_eps(3).eps(), 1e-5);
    }

    #[test]
    #[should_panic(expected = "layer_norm: incompatible shapes [2, 5] and [4]")]
    fn forward_panics_on_wrong_dim() {
        LayerNorm::<f32>::with_default_eps(4).forward(&Tensor::zeros(&[2, 5]));
    }

    #[test]
    fn gradcheck_input_weight_bias_on_several_shapes() {
        for (shape, seed) in [(vec![6], 1), (vec![3, 5], 2), (vec![2, 3, 4], 3)] {
            let d = *shape.last().unwrap();
            let inputs = [
                rand_leaf(&shape, seed),
                rand_leaf(&[d], seed + 10),
                rand_leaf(&[d], seed + 20),
            ];
            check(
                |t| {
                    let ln = LayerNorm {
                        weight: t[1].clone(),
                        bias: Some(t[2].clone()),
                        eps: 1e-5,
                    };
                    ln.forward(&t[0])
                },
                &inputs,
            );
        }
    }

    #[test]
    fn no_bias_has_weight_only_and_gradchecks() {
        let ln = LayerNorm::<f64>::new_no_bias(3, 1e-5);
        let names: Vec<_> = ln.named_parameters().into_iter().map(|p| p.0).collect();
        assert_eq!(names, ["weight"]);
        assert!(ln.bias().is_none());
        assert_eq!(ln.dim(), 3);
        let inputs = [rand_leaf(&[2, 3], 4), rand_leaf(&[3], 5)];
        check(
            |t| {
                let ln = LayerNorm {
                    weight: t[1].clone(),
                    bias: None,
                    eps: 1e-5,
                };
                ln.forward(&t[0])
            },
            &inputs,
        );
        // the same as a zero bias
        let with = LayerNorm::<f64>::new(3, 1e-5);
        let x = rand_leaf(&[4, 3], 6);
        assert_eq!(with.forward(&x).to_vec(), ln.forward(&x).to_vec());
    }
}
