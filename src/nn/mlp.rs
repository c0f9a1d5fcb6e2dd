//! `Mlp`: a stack of `Linear` layers with an activation between them.

use rand::Rng;

use crate::element::Element;
use crate::error::{or_panic, Error, Result};
use crate::nn::{Activation, Linear, Module};
use crate::tensor::Tensor;

/// A multi-layer perceptron: `Linear` layers with `activation` between them, and
/// none after the last (apply your own, or fold it into the loss).
///
/// `Mlp::new(&[2, 16, 16, 1], Activation::Tanh, rng)` is PyTorch's
/// `Sequential(Linear(2, 16), Tanh(), Linear(16, 16), Tanh(), Linear(16, 1))`.
/// Parameters are named by the index of their `Linear` layer: `"0.weight"`,
/// `"0.bias"`, `"1.weight"`, … (activations take no index; see the
/// [naming scheme](crate::nn#parameter-names)): `#[derive(Module)]` with the
/// layers `#[module(flatten)]`.
///
/// ```
/// use ferrograd::nn::{Activation, Mlp, Module, ModuleParams};
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// use ferrograd::Tensor;
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let mlp: Mlp = Mlp::new(&[2, 16, 16, 1], Activation::Tanh, &mut rng);
/// assert_eq!(mlp.forward(&Tensor::zeros(&[5, 2])).shape(), &[5, 1]);
/// let names: Vec<String> = mlp.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]);
/// ```
#[derive(Debug, Module)]
pub struct Mlp<T: Element = f32> {
    #[module(flatten)]
    layers: Vec<Linear<T>>,
    activation: Activation,
}

impl<T: Element> Mlp<T> {
    /// Layers `sizes[0] → sizes[1] → … → sizes[n − 1]`, each a [`Linear`] with a
    /// bias and PyTorch's default initialisation ([`Linear::new`]), drawn in order.
    ///
    /// # Panics
    /// Panics when `sizes` has fewer than two entries (an input and an output size).
    #[track_caller]
    pub fn new<R: Rng + ?Sized>(sizes: &[usize], activation: Activation, rng: &mut R) -> Self {
        if sizes.len() < 2 {
            panic!("{}", too_few_sizes(sizes.len()));
        }
        let layers = sizes
            .windows(2)
            .map(|w| Linear::new(w[0], w[1], true, rng))
            .collect();
        Mlp { layers, activation }
    }

    /// An MLP of the given layers (e.g. built with [`Linear::from_tensors`]), with
    /// `activation` between consecutive ones.
    ///
    /// ```
    /// use ferrograd::nn::{Activation, Linear, Mlp, Module};
    /// use ferrograd::Tensor;
    /// let l0 = Linear::from_tensors(Tensor::<f32>::from_vec(vec![1., -1.], &[2, 1])?, None)?;
    /// let l1 = Linear::from_tensors(Tensor::<f32>::from_vec(vec![1., 1.], &[1, 2])?, None)?;
    /// let mlp = Mlp::from_layers(vec![l0, l1], Activation::Relu)?;
    /// // relu([3, -3]) summed
    /// assert_eq!(mlp.forward(&Tensor::from_vec(vec![3.], &[1, 1])?).to_vec(), vec![3.]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `layers` is empty;
    /// [`Error::ShapeMismatch`] (op `"Mlp"`, the two weights' shapes) when a
    /// layer's `in_features` differs from the previous layer's `out_features`.
    pub fn from_layers(layers: Vec<Linear<T>>, activation: Activation) -> Result<Self> {
        if layers.is_empty() {
            return Err(too_few_sizes(0));
        }
        for pair in layers.windows(2) {
            if pair[0].out_features() != pair[1].in_features() {
                return Err(Error::shape(
                    "Mlp",
                    pair[0].weight().shape(),
                    pair[1].weight().shape(),
                ));
            }
        }
        Ok(Mlp { layers, activation })
    }

    /// The `Linear` layers, first to last.
    pub fn layers(&self) -> &[Linear<T>] {
        &self.layers
    }

    /// The activation applied between layers.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Like [`forward`](Module::forward), returning an error instead of panicking.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the input does not end in the first layer's
    /// `in_features`.
    pub fn try_forward(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let mut h = self.layers[0].try_forward(x)?;
        for layer in &self.layers[1..] {
            h = layer.forward(&self.activation.apply(&h));
        }
        Ok(h)
    }
}

fn too_few_sizes(n: usize) -> Error {
    Error::invalid(
        "Mlp",
        format!("needs at least one layer (an input and an output size), got {n} sizes"),
    )
}

impl<T: Element> Module<T> for Mlp<T> {
    /// The layers in turn, with the activation between them.
    ///
    /// # Panics
    /// Panics when the input does not end in the first layer's `in_features`.
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

    fn mlp_from(t: &[Tensor<f64>], act: Activation) -> Mlp<f64> {
        let layers = t
            .chunks(2)
            .map(|p| Linear::from_tensors(p[0].clone(), Some(p[1].clone())).unwrap())
            .collect();
        Mlp::from_layers(layers, act).unwrap()
    }

    #[test]
    fn forward_known_values() {
        let t = [
            Tensor::<f64>::from_vec(vec![1., 0., 0., -1.], &[2, 2]).unwrap(),
            Tensor::<f64>::from_vec(vec![0., 0.5], &[2]).unwrap(),
            Tensor::<f64>::from_vec(vec![2., 3.], &[1, 2]).unwrap(),
            Tensor::<f64>::from_vec(vec![-1.], &[1]).unwrap(),
        ];
        let mlp = mlp_from(&t, Activation::Relu);
        let x = Tensor::<f64>::from_vec(vec![1., 2., -1., -2.], &[2, 2]).unwrap();
        // h = relu([x0, 0.5 - x1]) = [[1, 0], [0, 2.5]]; y = 2 h0 + 3 h1 - 1
        assert_close(&mlp.forward(&x), &[1., 6.5], 1e-12);
        // no activation after the last layer: outputs may be negative
        let x = Tensor::<f64>::from_vec(vec![0., 5.], &[1, 2]).unwrap();
        assert_close(&mlp.forward(&x), &[-1.], 1e-12);
        assert_eq!(mlp.activation(), Activation::Relu);
        assert_eq!(mlp.layers().len(), 2);
    }

    #[test]
    fn construction_and_names() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mlp = Mlp::<f32>::new(&[3, 4, 5, 2], Activation::Gelu, &mut rng);
        let shapes: Vec<(String, Vec<usize>)> = mlp
            .named_parameters()
            .into_iter()
            .map(|(n, t)| (n, t.shape().to_vec()))
            .collect();
        let expected = [
            ("0.weight", vec![4, 3]),
            ("0.bias", vec![4]),
            ("1.weight", vec![5, 4]),
            ("1.bias", vec![5]),
            ("2.weight", vec![2, 5]),
            ("2.bias", vec![2]),
        ];
        assert_eq!(shapes.len(), expected.len());
        for ((n, s), (en, es)) in shapes.iter().zip(expected) {
            assert_eq!((n.as_str(), s), (en, &es));
        }
        // the parameter handles are the layers' own
        assert_eq!(mlp.parameters()[2].id(), mlp.layers()[1].weight().id());
        let single = Mlp::<f32>::new(&[3, 2], Activation::Relu, &mut rng);
        let x = Tensor::<f32>::from_vec(vec![-5., -5., -5.], &[3]).unwrap();
        assert_eq!(
            single.forward(&x).to_vec(),
            single.layers()[0].forward(&x).to_vec()
        );
        assert!(Mlp::<f32>::from_layers(vec![], Activation::Relu).is_err());
        let bad = vec![
            Linear::<f32>::new(3, 4, true, &mut rng),
            Linear::new(5, 2, true, &mut rng),
        ];
        let e = Mlp::from_layers(bad, Activation::Relu).unwrap_err();
        assert_eq!(e.to_string(), "Mlp: incompatible shapes [4, 3] and [2, 5]");
        assert!(mlp.try_forward(&Tensor::zeros(&[2, 4])).is_err());
    }

    #[test]
    #[should_panic(expected = "Mlp: needs at least one layer")]
    fn new_rejects_a_single_size() {
        Mlp::<f32>::new(
            &[3],
            Activation::Relu,
            &mut rand::rngs::StdRng::seed_from_u64(0),
        );
    }

    #[test]
    fn gradcheck_all_parameters_and_input() {
        let params = [
            rand_leaf(&[4, 3], 1),
            rand_leaf(&[4], 2),
            rand_leaf(&[2, 4], 3),
            rand_leaf(&[2], 4),
        ];
        for (act, x) in [
            (Activation::Tanh, rand_leaf(&[5, 3], 5)),
            (Activation::Silu, rand_leaf(&[2, 2, 3], 6)),
            (Activation::GeluErf, rand_leaf(&[3], 7)),
        ] {
            let mut inputs = vec![x];
            inputs.extend(params.iter().cloned());
            check(|t| mlp_from(&t[1..], act).forward(&t[0]), &inputs);
        }
    }
}
