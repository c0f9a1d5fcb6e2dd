//! Looking at gradients parameter by parameter: which ones are missing
//! ([`Gradients::missing`]) and how large each one is ([`Gradients::norms`]).
//!
//! Written on `Gradients`' public methods only (`get`), so it does not depend on
//! how the gradients are stored.

use super::Gradients;
use crate::element::Element;
use crate::tensor::Tensor;

/// A parameter as [`Gradients::missing`] and [`Gradients::norms`] take it: a
/// tensor, with its name when it has one.
///
/// Implemented for named parameters as
/// [`named_parameters`](crate::nn::ModuleParams::named_parameters) returns them,
/// `(String, Tensor<T>)`, for `(&str, &Tensor<T>)` and the other mixes of a
/// string and a tensor or a reference to one, and for bare tensors
/// (`Tensor<T>`, `&Tensor<T>`), which have no name: they are reported by their
/// position in the list and their shape, `#1 (shape [4, 2])`, as optimizers
/// report unnamed parameters.
///
/// ```
/// use ferrograd::Tensor;
/// let w = Tensor::<f32>::ones(&[2]).requires_grad();
/// let b = Tensor::<f32>::zeros(&[3]).requires_grad();
/// let grads = w.sum().backward()?;                            // b is not used
/// assert_eq!(grads.missing(&[("w", &w), ("b", &b)]), ["b"]);  // named
/// assert_eq!(grads.missing(&[w, b]), ["#1 (shape [3])"]);     // by position
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub trait ParamRef<T: Element> {
    /// The parameter.
    fn tensor(&self) -> &Tensor<T>;

    /// Its name, if it has one (`None` by default).
    fn name(&self) -> Option<&str> {
        None
    }
}

impl<T: Element> ParamRef<T> for Tensor<T> {
    fn tensor(&self) -> &Tensor<T> {
        self
    }
}

impl<T: Element> ParamRef<T> for &Tensor<T> {
    fn tensor(&self) -> &Tensor<T> {
        self
    }
}

impl<T: Element, S: AsRef<str>> ParamRef<T> for (S, Tensor<T>) {
    fn tensor(&self) -> &Tensor<T> {
        &self.1
    }
    fn name(&self) -> Option<&str> {
        Some(self.0.as_ref())
    }
}

impl<T: Element, S: AsRef<str>> ParamRef<T> for (S, &Tensor<T>) {
    fn tensor(&self) -> &Tensor<T> {
        self.1
    }
    fn name(&self) -> Option<&str> {
        Some(self.0.as_ref())
    }
}

/// The name of parameter `i` of a list: its own, or `#i (shape [..])`.
fn label<T: Element>(i: usize, p: &impl ParamRef<T>) -> String {
    match p.name() {
        Some(name) => name.to_owned(),
        None => format!("#{i} (shape {:?})", p.tensor().shape()),
    }
}

/// `Σ g²` over the elements of `g`, summed in `f64`.
pub(crate) fn sum_of_squares<T: Element>(g: &Tensor<T>) -> f64 {
    g.with_contiguous(|d| d.iter().map(|&v| v.to_f64_lossless().powi(2)).sum::<f64>())
}

/// `sqrt(Σ g²)` over the elements of `g`, summed in `f64`.
pub(crate) fn l2_norm<T: Element>(g: &Tensor<T>) -> f64 {
    sum_of_squares(g).sqrt()
}

impl<T: Element> Gradients<T> {
    /// The parameters of `params` that got no gradient, by name, in the order of
    /// `params`: a sub-layer that `forward` forgot to call, a branch cut off by
    /// [`detach`](Tensor::detach) or computed under [`no_grad`](crate::no_grad),
    /// a parameter replaced by a new handle. A frozen parameter (its
    /// [`needs_grad`](Tensor::needs_grad) is false, see
    /// [`set_requires_grad`](Tensor::set_requires_grad)) is expected to have none
    /// and is not listed, as optimizers in strict mode skip it.
    ///
    /// `params` may be named (`&model.named_parameters()`, `&[("w", &w)]`) or bare
    /// tensors (`&model.parameters()`, `&[w, b]`), which are listed as
    /// `#i (shape [..])` by their position: see [`ParamRef`]. An
    /// [optimizer](crate::optim::Optim::strict) in strict mode reports the same list.
    ///
    /// ```
    /// use ferrograd::nn::{Linear, Module, ModuleParams};
    /// use ferrograd::rand::{rngs::StdRng, SeedableRng};
    /// use ferrograd::Tensor;
    ///
    /// #[derive(ferrograd::nn::Module)]
    /// struct Net { fc1: Linear, fc2: Linear, head: Linear }
    ///
    /// impl Module for Net {
    ///     fn forward(&self, x: &Tensor) -> Tensor {
    ///         let h = self.fc1.forward(x).relu();
    ///         let h = self.fc2.forward(&h.detach()).relu(); // bug: cuts fc1 off
    ///         h.matmul(&self.head.weight().t())             // bug: head's bias forgotten
    ///     }
    /// }
    ///
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let net = Net {
    ///     fc1: Linear::new(2, 4, true, &mut rng),
    ///     fc2: Linear::new(4, 4, true, &mut rng),
    ///     head: Linear::new(4, 1, true, &mut rng),
    /// };
    /// let grads = net.forward(&Tensor::ones(&[3, 2])).sum().backward()?;
    /// assert_eq!(grads.missing(&net.named_parameters()), ["fc1.weight", "fc1.bias", "head.bias"]);
    ///
    /// net.fc1.freeze();                                   // frozen on purpose: not missing
    /// assert_eq!(grads.missing(&net.named_parameters()), ["head.bias"]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn missing<P: ParamRef<T>>(&self, params: &[P]) -> Vec<String> {
        params
            .iter()
            .enumerate()
            .filter(|(_, p)| p.tensor().needs_grad() && self.get(p.tensor()).is_none())
            .map(|(i, p)| label(i, p))
            .collect()
    }

    /// The L2 norm `sqrt(Σ g²)` of each parameter's gradient, by name, in the
    /// order of `params`: print it during training to watch vanishing (→ 0) and
    /// exploding (→ ∞) gradients layer by layer, where
    /// [`global_norm`](Gradients::global_norm) gives one number for all.
    ///
    /// A parameter without a gradient (frozen, or [`missing`](Gradients::missing))
    /// is left out rather than given a norm of 0, so a 0 in the list is always a
    /// gradient that is really zero; the list is shorter than `params` then.
    /// Names are as in [`missing`](Gradients::missing) (see [`ParamRef`]). The
    /// squares are summed in `f64`.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let w = Tensor::<f64>::from_vec(vec![3.0, 4.0], &[2])?.requires_grad();
    /// let b = Tensor::<f64>::from_vec(vec![1.0], &[1])?.requires_grad();
    /// let unused = Tensor::<f64>::zeros(&[5]).requires_grad();
    /// let loss = (&w * &w).sum() + (&b * 0.5).sum();      // gradients 2w = (6, 8) and 0.5
    /// let grads = loss.backward()?;
    /// let norms = grads.norms(&[("w", &w), ("unused", &unused), ("b", &b)]);
    /// assert_eq!(norms, [("w".to_string(), 10.0), ("b".to_string(), 0.5)]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn norms<P: ParamRef<T>>(&self, params: &[P]) -> Vec<(String, T)> {
        params
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let g = self.get(p.tensor())?;
                Some((label(i, p), T::from_f64_lossy(l2_norm(g))))
            })
            .collect()
    }
}
