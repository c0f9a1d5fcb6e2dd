//! `Linear`: the fully connected layer `x·Wᵀ + b`, laid out as PyTorch's `nn.Linear`.

use rand::Rng;

use crate::element::{c, Element};
use crate::error::{or_panic, Result};
use crate::nn::functional::{check_linear_shapes, try_linear};
use crate::nn::Module;
use crate::tensor::Tensor;

/// A fully connected layer: `y = x · weightᵀ + bias`.
///
/// The weight is stored `[out_features, in_features]` and the bias `[out_features]`,
/// named `"weight"` and `"bias"` (`"bias"` only when there is one; the names come
/// from `#[derive(Module)]`), exactly as PyTorch's `nn.Linear`, so that
/// checkpoints interchange. The input is `[.., in_features]` with any leading
/// dimensions (or a single vector); the output is `[.., out_features]`.
///
/// ```
/// use ferrograd::nn::{Linear, Module};
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// use ferrograd::Tensor;
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let fc: Linear = Linear::new(3, 2, true, &mut rng);
/// assert_eq!(fc.weight().shape(), &[2, 3]);
/// let x = Tensor::<f32>::randn(&[4, 5, 3], &mut rng);
/// let y = fc.forward(&x);
/// assert_eq!(y.shape(), &[4, 5, 2]);
///
/// let grads = y.sum().backward()?;
/// assert_eq!(grads.get(fc.weight()).unwrap().shape(), &[2, 3]);
/// # Ok::<(), ferrograd::Error>(())
/// ```
#[derive(Debug, Module)]
pub struct Linear<T: Element = f32> {
    weight: Tensor<T>,
    bias: Option<Tensor<T>>,
}

impl<T: Element> Linear<T> {
    /// A layer with PyTorch's default initialisation: weight and bias drawn from
    /// `U(−1/√in, 1/√in)` (what `kaiming_uniform_(a=√5)` gives for the weight;
    /// the bias is 0 when `in_features` is 0). The weight is drawn first, then the
    /// bias. Without `bias`, the layer computes `x · weightᵀ`.
    ///
    /// ```
    /// use ferrograd::nn::Linear;
    /// use ferrograd::rand::{rngs::StdRng, SeedableRng};
    /// let fc = Linear::<f64>::new(100, 10, false, &mut StdRng::seed_from_u64(1));
    /// assert!(fc.bias().is_none());
    /// assert!(fc.weight().to_vec().iter().all(|w| w.abs() <= 0.1));
    /// ```
    pub fn new<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        bias: bool,
        rng: &mut R,
    ) -> Self {
        let bound: T = if in_features == 0 {
            T::zero()
        } else {
            c(1.0 / (in_features as f64).sqrt())
        };
        let weight =
            Tensor::rand_uniform(&[out_features, in_features], -bound, bound, rng).requires_grad();
        let bias =
            bias.then(|| Tensor::rand_uniform(&[out_features], -bound, bound, rng).requires_grad());
        Linear { weight, bias }
    }

    /// A layer with the given parameters: `weight` `[out, in]` and `bias` `[out]`
    /// (e.g. loaded from a checkpoint, or made by [`init`](crate::nn::init)).
    ///
    /// A tensor that is already a leaf requiring a gradient is kept as it is (so
    /// your handle finds the layer's gradient in [`Gradients`](crate::Gradients));
    /// any other becomes a new leaf sharing its data, as
    /// [`requires_grad`](Tensor::requires_grad) does.
    ///
    /// ```
    /// use ferrograd::nn::{Linear, Module};
    /// use ferrograd::Tensor;
    /// let w = Tensor::<f32>::from_vec(vec![1., 2., 3., 4.], &[2, 2])?.requires_grad();
    /// let fc = Linear::from_tensors(w.clone(), None)?;
    /// let x = Tensor::<f32>::from_vec(vec![1., 1.], &[1, 2])?;
    /// let y = fc.forward(&x);
    /// assert_eq!(y.to_vec(), vec![3., 7.]);
    /// let grads = y.sum().backward()?;
    /// assert_eq!(grads.get(&w).unwrap().to_vec(), vec![1., 1., 1., 1.]);
    /// assert!(Linear::from_tensors(w, Some(Tensor::zeros(&[3]))).is_err());
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when `weight` is
    /// not 2-D, [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when `bias`
    /// is not `[out]`.
    pub fn from_tensors(weight: Tensor<T>, bias: Option<Tensor<T>>) -> Result<Self> {
        check_linear_shapes(&weight, bias.as_ref())?;
        Ok(Linear {
            weight: as_parameter(weight),
            bias: bias.map(as_parameter),
        })
    }

    /// The weight, `[out_features, in_features]`.
    pub fn weight(&self) -> &Tensor<T> {
        &self.weight
    }

    /// The bias, `[out_features]`, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor<T>> {
        self.bias.as_ref()
    }

    /// The size of the input's last dimension.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// The size of the output's last dimension.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }

    /// Like [`forward`](Module::forward), returning an error instead of panicking.
    ///
    /// ```
    /// use ferrograd::nn::Linear;
    /// use ferrograd::rand::{rngs::StdRng, SeedableRng};
    /// use ferrograd::Tensor;
    /// let fc = Linear::<f32>::new(3, 2, true, &mut StdRng::seed_from_u64(0));
    /// let err = fc.try_forward(&Tensor::zeros(&[4, 5])).unwrap_err();
    /// assert_eq!(err.to_string(), "linear: incompatible shapes [4, 5] and [2, 3]");
    /// ```
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) (op `"linear"`, the
    /// shapes of the input and the weight) when the input does not end in
    /// `in_features`.
    pub fn try_forward(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        try_linear(x, &self.weight, self.bias.as_ref())
    }
}

/// `t` itself when it is a leaf that requires a gradient, else a new such leaf
/// sharing its data.
pub(crate) fn as_parameter<T: Element>(t: Tensor<T>) -> Tensor<T> {
    if t.is_leaf() && t.needs_grad() {
        t
    } else {
        t.requires_grad()
    }
}

impl<T: Element> Module<T> for Linear<T> {
    /// `x · weightᵀ + bias` on `[.., in_features]`.
    ///
    /// # Panics
    /// Panics when the input does not end in `in_features`, naming the shapes of
    /// the input and the weight.
    #[track_caller]
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        or_panic(self.try_forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{assert_close, check, rand_leaf};
    use rand::SeedableRng;

    #[test]
    fn forward_known_values() {
        let w = Tensor::<f64>::from_vec(vec![1., -1., 0.5, 2., 0., 1.], &[3, 2]).unwrap();
        let b = Tensor::<f64>::from_vec(vec![0.1, 0.2, 0.3], &[3]).unwrap();
        let fc = Linear::from_tensors(w, Some(b)).unwrap();
        assert_eq!((fc.in_features(), fc.out_features()), (2, 3));
        let x = Tensor::<f64>::from_vec(vec![1., 2., -1., 0.], &[2, 2]).unwrap();
        assert_close(&fc.forward(&x), &[-0.9, 4.7, 2.3, -0.9, -0.3, 0.3], 1e-12);
        // 1-D input, 3-D input
        assert_close(
            &fc.forward(&x.narrow(0, 0, 1).flatten()),
            &[-0.9, 4.7, 2.3],
            1e-12,
        );
        let x3 = x.reshape(&[2, 1, 2]);
        assert_eq!(fc.forward(&x3).shape(), &[2, 1, 3]);
        assert_close(&fc.forward(&x3), &[-0.9, 4.7, 2.3, -0.9, -0.3, 0.3], 1e-12);
    }

    #[test]
    fn default_init_bounds_and_names() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let fc = Linear::<f64>::new(16, 64, true, &mut rng);
        let bound = 0.25;
        let w = fc.weight().to_vec();
        let b = fc.bias().unwrap().to_vec();
        assert!(w.iter().chain(&b).all(|v| v.abs() <= bound));
        // spread over the whole interval
        let max = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(max > 0.9 * bound, "max |w| {max}");
        let names: Vec<_> = fc.named_parameters().into_iter().map(|p| p.0).collect();
        assert_eq!(names, ["weight", "bias"]);
        assert!(fc
            .parameters()
            .iter()
            .all(|p| p.is_leaf() && p.needs_grad()));
        let nobias = Linear::<f32>::new(0, 3, true, &mut rng);
        assert_eq!(nobias.bias().unwrap().to_vec(), vec![0.0; 3]);
        assert_eq!(
            nobias.forward(&Tensor::zeros(&[2, 0])).to_vec(),
            vec![0.0; 6]
        );
        let fc = Linear::<f32>::new(2, 3, false, &mut rng);
        assert_eq!(fc.named_parameters().len(), 1);
        // same seed, same layer
        let a = Linear::<f32>::new(4, 4, true, &mut rand::rngs::StdRng::seed_from_u64(9));
        let b = Linear::<f32>::new(4, 4, true, &mut rand::rngs::StdRng::seed_from_u64(9));
        assert_eq!(a.weight().to_vec(), b.weight().to_vec());
        assert_eq!(a.bias().unwrap().to_vec(), b.bias().unwrap().to_vec());
    }

    #[test]
    fn from_tensors_keeps_leaves_and_checks_shapes() {
        let w = Tensor::<f32>::zeros(&[2, 3]).requires_grad();
        let fc = Linear::from_tensors(w.clone(), None).unwrap();
        assert_eq!(fc.weight().id(), w.id());
        let plain = Tensor::<f32>::ones(&[2, 3]);
        let fc = Linear::from_tensors(plain.clone(), Some(Tensor::zeros(&[2]))).unwrap();
        assert!(fc.weight().needs_grad() && fc.weight().is_leaf());
        // shares the data: an update through the layer shows in the original
        fc.weight().assign(&Tensor::full(&[2, 3], 5.0)).unwrap();
        assert_eq!(plain.to_vec(), vec![5.0; 6]);
        assert!(Linear::from_tensors(Tensor::<f32>::zeros(&[6]), None).is_err());
        assert!(Linear::from_tensors(w, Some(Tensor::zeros(&[3]))).is_err());
    }

    #[test]
    #[should_panic(expected = "linear: incompatible shapes [4, 2] and [3, 5]")]
    fn forward_panics_naming_shapes() {
        let fc = Linear::<f32>::new(5, 3, true, &mut rand::rngs::StdRng::seed_from_u64(0));
        fc.forward(&Tensor::zeros(&[4, 2]));
    }

    #[test]
    fn gradcheck_input_weight_bias() {
        for (shape, seed) in [(vec![3], 1), (vec![4, 3], 2), (vec![2, 2, 3], 3)] {
            let inputs = [
                rand_leaf(&shape, seed),
                rand_leaf(&[2, 3], seed + 10),
                rand_leaf(&[2], seed + 20),
            ];
            check(
                |t| {
                    Linear::from_tensors(t[1].clone(), Some(t[2].clone()))
                        .unwrap()
                        .forward(&t[0])
                },
                &inputs,
            );
        }
    }
}
