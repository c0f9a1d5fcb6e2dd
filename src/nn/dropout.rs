//! `Dropout`: seeded inverted dropout in training, the identity in evaluation.

use std::sync::{Mutex, PoisonError};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::element::Element;
use crate::error::{or_panic, Result};
use crate::nn::functional::{check_dropout_p, dropout};
use crate::nn::Module;
use crate::tensor::Tensor;

/// Inverted dropout, as PyTorch's `nn.Dropout(p)`: in training mode (the
/// default) each element is zeroed with probability `p` and the others are
/// scaled by `1 / (1 − p)`; in evaluation mode
/// ([`set_training(false)`](Module::set_training)) the layer is the identity.
///
/// The masks come from the layer's own RNG, seeded at construction
/// ([`StdRng`] behind a `Mutex`, since `forward` takes `&self`): the same seed
/// gives the same sequence of masks, run after run. `p` may be 0 (the identity)
/// or 1 (all zeros), as in PyTorch; anything outside `[0, 1]` is rejected.
///
/// `Dropout` holds no parameters and works on any element type.
///
/// ```
/// use ferrograd::nn::{Dropout, Module};
/// use ferrograd::Tensor;
///
/// let mut drop = Dropout::new(0.5, 42);
/// let x = Tensor::<f32>::ones(&[8]);
/// let y = drop.forward(&x).to_vec();
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// // the same seed gives the same masks
/// assert_eq!(Dropout::new(0.5, 42).forward(&x).to_vec(), y);
///
/// drop.set_training(false);
/// assert_eq!(drop.forward(&x).to_vec(), x.to_vec());
/// ```
#[derive(Debug)]
pub struct Dropout {
    p: f64,
    training: bool,
    rng: Mutex<StdRng>,
}

impl Dropout {
    /// A dropout layer zeroing with probability `p`, its masks drawn from a
    /// [`StdRng`] seeded with `seed`; in training mode.
    ///
    /// # Panics
    /// Panics when `p` is not in `[0, 1]` (or is NaN), naming it.
    #[track_caller]
    pub fn new(p: f64, seed: u64) -> Self {
        or_panic(Self::try_new(p, seed))
    }

    /// Like [`new`](Dropout::new), returning an error instead of panicking.
    ///
    /// ```
    /// use ferrograd::nn::Dropout;
    /// let err = Dropout::try_new(1.5, 0).unwrap_err();
    /// assert_eq!(err.to_string(), "dropout: probability has to be between 0 and 1, got 1.5");
    /// assert!(Dropout::try_new(1.0, 0).is_ok());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when `p` is not in `[0, 1]`.
    pub fn try_new(p: f64, seed: u64) -> Result<Self> {
        check_dropout_p(p)?;
        Ok(Dropout {
            p,
            training: true,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        })
    }

    /// The probability of zeroing an element.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// True in training mode (masks applied), false in evaluation (the identity).
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Switches between training (`true`: masks applied) and evaluation (`false`:
    /// the identity). The same as [`Module::set_training`], callable without
    /// naming the element type.
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// Restarts the mask sequence from `seed`, as a new layer with that seed would.
    pub fn reseed(&self, seed: u64) {
        *self.rng.lock().unwrap_or_else(PoisonError::into_inner) = StdRng::seed_from_u64(seed);
    }
}

impl<T: Element> Module<T> for Dropout {
    /// In training, `x` times a fresh mask of zeros (probability `p`) and
    /// `1 / (1 − p)`; in evaluation, `x` itself.
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        if !self.training || self.p == 0.0 {
            return x.clone();
        }
        // A panic elsewhere while holding the lock cannot leave the RNG invalid.
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        dropout(x, self.p, true, &mut *rng)
    }

    /// None: dropout has no parameters.
    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        Vec::new()
    }

    fn set_training(&mut self, training: bool) {
        Dropout::set_training(self, training);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_scales_and_eval_is_identity() {
        let mut d = Dropout::new(0.25, 3);
        assert!(d.is_training());
        assert_eq!(d.p(), 0.25);
        let x = Tensor::<f64>::full(&[200, 100], 3.0);
        let y = d.forward(&x).to_vec();
        assert!(y.iter().all(|&v| v == 0.0 || v == 4.0));
        let frac = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
        assert!((frac - 0.25).abs() < 0.015, "fraction zeroed {frac}");
        // expectation preserved
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        assert!((mean - 3.0).abs() < 0.06, "mean {mean}");
        d.set_training(false);
        assert!(!d.is_training());
        Module::<f32>::set_training(&mut d, true);
        assert!(d.is_training());
        d.set_training(false);
        let z = d.forward(&x);
        assert_eq!(z.id(), x.id());
        assert!(Module::<f64>::named_parameters(&d).is_empty());
    }

    #[test]
    fn masks_reproduce_per_seed_and_change_per_call() {
        let x = Tensor::<f32>::ones(&[256]);
        let a = Dropout::new(0.5, 11);
        let b = Dropout::new(0.5, 11);
        let (a1, a2) = (a.forward(&x).to_vec(), a.forward(&x).to_vec());
        assert_eq!(a1, b.forward(&x).to_vec());
        assert_eq!(a2, b.forward(&x).to_vec());
        assert_ne!(a1, a2, "each call draws a new mask");
        assert_ne!(a1, Dropout::new(0.5, 12).forward(&x).to_vec());
        a.reseed(11);
        assert_eq!(a.forward(&x).to_vec(), a1);
    }

    #[test]
    fn edge_probabilities() {
        let x = Tensor::<f32>::full(&[10], 2.0);
        assert_eq!(Dropout::new(0.0, 0).forward(&x).id(), x.id());
        assert_eq!(Dropout::new(1.0, 0).forward(&x).to_vec(), vec![0.0; 10]);
        assert!(Dropout::try_new(-0.1, 0).is_err());
        assert!(Dropout::try_new(f64::NAN, 0).is_err());
    }

    #[test]
    #[should_panic(expected = "dropout: probability has to be between 0 and 1, got -0.5")]
    fn new_panics_on_negative_p() {
        Dropout::new(-0.5, 0);
    }
}
