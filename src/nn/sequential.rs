//! `Sequential`: modules applied one after the other, named by position as PyTorch.

use std::fmt;

use crate::element::Element;
use crate::nn::Module;
use crate::tensor::Tensor;

/// A boxed module that can cross threads, as [`Sequential`] holds them.
pub type BoxedModule<T = f32> = Box<dyn Module<T> + Send + Sync>;

/// Modules applied in order, each to the previous one's output, as PyTorch's
/// `nn.Sequential`.
///
/// Parameter names are prefixed by the module's position, counting every module
/// (activations and dropouts too): `[Linear, Relu, Linear]` gives `"0.weight"`,
/// `"0.bias"`, `"2.weight"`, `"2.bias"`, the names of PyTorch's `state_dict`.
/// Nested containers nest the prefixes (`"1.0.weight"`): `#[derive(Module)]`
/// with the list `#[module(flatten)]`.
/// [`set_training`](crate::nn::ModuleParams::set_training) reaches every module.
///
/// ```
/// use ferrograd::nn::{Activation, Dropout, Linear, Module, ModuleParams, Sequential};
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// use ferrograd::Tensor;
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let mut net: Sequential = Sequential::new();
/// net.push(Linear::new(4, 8, true, &mut rng))
///     .push(Activation::Gelu)
///     .push(Dropout::new(0.1, 42))
///     .push(Linear::new(8, 3, true, &mut rng));
/// assert_eq!(net.len(), 4);
/// assert_eq!(net.parameters().len(), 4);
///
/// net.set_training(false); // dropout is now the identity
/// let x = Tensor::<f32>::randn(&[2, 4], &mut rng);
/// assert_eq!(net.forward(&x).to_vec(), net.forward(&x).to_vec());
/// ```
#[derive(Default, Module)]
pub struct Sequential<T: Element = f32> {
    #[module(flatten)]
    modules: Vec<BoxedModule<T>>,
}

impl<T: Element> Sequential<T> {
    /// An empty chain; its forward is the identity.
    pub fn new() -> Self {
        Sequential {
            modules: Vec::new(),
        }
    }

    /// Appends a module (any [`Module`] that is `Send + Sync`, or a
    /// [`BoxedModule`]); returns `&mut self` so that calls chain.
    pub fn push<M: Module<T> + Send + Sync + 'static>(&mut self, module: M) -> &mut Self {
        self.modules.push(Box::new(module));
        self
    }

    /// Appends a module, builder style.
    ///
    /// ```
    /// use ferrograd::nn::{Activation, Module, Sequential};
    /// use ferrograd::Tensor;
    /// let net = Sequential::<f32>::new().with(Activation::Relu).with(Activation::Tanh);
    /// let x = Tensor::<f32>::from_vec(vec![-1.0, 0.5], &[2])?;
    /// let y = net.forward(&x).to_vec();
    /// assert_eq!(y[0], 0.0);
    /// assert!((y[1] - 0.5f32.tanh()).abs() < 1e-6);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn with<M: Module<T> + Send + Sync + 'static>(mut self, module: M) -> Self {
        self.push(module);
        self
    }

    /// The number of modules.
    pub fn len(&self) -> usize {
        self.modules.len()
    }

    /// True when the chain holds no module.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// The modules, in order.
    pub fn modules(&self) -> &[BoxedModule<T>] {
        &self.modules
    }
}

impl<T: Element> Module<T> for Sequential<T> {
    /// Each module in turn; an empty chain returns its input.
    #[track_caller]
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        let mut h = x.clone();
        for m in &self.modules {
            h = m.forward(&h);
        }
        h
    }
}

impl<T: Element> fmt::Debug for Sequential<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sequential")
            .field("modules", &self.modules.len())
            .field(
                "parameters",
                &self
                    .named_parameters()
                    .iter()
                    .map(|(n, t)| format!("{n}: {:?}", t.shape()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Activation, Dropout, Linear, Mlp};
    use crate::ops::test_util::assert_close;
    use rand::SeedableRng;

    #[test]
    fn names_count_every_module_and_nest() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let inner = Sequential::<f32>::new()
            .with(Linear::new(4, 4, false, &mut rng))
            .with(Activation::Tanh);
        let boxed: BoxedModule<f32> = Box::new(Mlp::new(&[4, 3, 2], Activation::Relu, &mut rng));
        let net = Sequential::new()
            .with(Linear::new(2, 4, true, &mut rng))
            .with(inner)
            .with(Dropout::new(0.5, 1))
            .with(boxed);
        let names: Vec<String> = net.named_parameters().into_iter().map(|p| p.0).collect();
        assert_eq!(
            names,
            [
                "0.weight",
                "0.bias",
                "1.0.weight",
                "3.0.weight",
                "3.0.bias",
                "3.1.weight",
                "3.1.bias"
            ]
        );
        assert_eq!(net.parameters().len(), 7);
        assert_eq!(net.len(), 4);
        assert!(!net.is_empty());
        assert!(format!("{net:?}").contains("1.0.weight: [4, 4]"));
    }

    #[test]
    fn forward_chains_and_empty_is_identity() {
        let w = Tensor::<f64>::from_vec(vec![1., -1.], &[2, 1]).unwrap();
        let net = Sequential::new()
            .with(Linear::from_tensors(w, None).unwrap())
            .with(Activation::Relu);
        let x = Tensor::<f64>::from_vec(vec![2., -3.], &[2, 1]).unwrap();
        assert_close(&net.forward(&x), &[2., 0., 0., 3.], 0.0);
        let empty = Sequential::<f64>::default();
        assert!(empty.is_empty());
        assert_eq!(empty.forward(&x).id(), x.id());
    }

    #[test]
    fn set_training_reaches_nested_dropout() {
        let x = Tensor::<f32>::ones(&[64]);
        let mut net = Sequential::new()
            .with(Sequential::new().with(Dropout::new(0.5, 7)))
            .with(Activation::Identity);
        let train = net.forward(&x).to_vec();
        assert!(train.contains(&0.0) && train.contains(&2.0));
        net.set_training(false);
        assert_eq!(net.forward(&x).to_vec(), x.to_vec());
        net.set_training(true);
        assert!(net.forward(&x).to_vec().contains(&0.0));
    }
}
