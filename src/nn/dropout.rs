//! `Dropout`: seeded inverted dropout in training, the identity in evaluation,
//! and `RngState`, the two numbers that say where its masks are.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::element::Element;
use crate::error::{or_panic, Error, Result};
use crate::nn::functional::{check_dropout_p, dropout};
use crate::nn::{Module, ModuleParams};
use crate::tensor::Tensor;

/// Inverted dropout, as PyTorch's `nn.Dropout(p)`: in training mode (the
/// default) each element is zeroed with probability `p` and the others are
/// scaled by `1 / (1 − p)`; in evaluation mode
/// ([`set_training(false)`](ModuleParams::set_training)) the layer is the identity.
///
/// The masks are reproducible and resumable: mask number `n` (counting from 0)
/// of a layer seeded with `seed` is drawn from an RNG made from `(seed, n)`
/// alone ([`RngState::rng`]), so the layer's whole random state is the
/// [`RngState`] `{ seed, draws }`, two `u64`s. Save it with
/// [`rng_state`](Dropout::rng_state) (or, for every dropout of a model,
/// [`named_rng_states`](ModuleParams::named_rng_states)), restore it with
/// [`set_rng_state`](Dropout::set_rng_state), and the masks that follow are the
/// ones an uninterrupted run would have drawn. `p` may be 0 (the identity) or 1
/// (all zeros), as in PyTorch; anything outside `[0, 1]` is rejected.
///
/// `Dropout` holds no parameters and works on any element type.
///
/// ```
/// use ferrograd::nn::{Dropout, Module, ModuleParams};
/// use ferrograd::Tensor;
///
/// let mut drop = Dropout::new(0.5, 42);
/// let x = Tensor::<f32>::ones(&[8]);
/// let y = drop.forward(&x).to_vec();
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// // the same seed gives the same masks
/// assert_eq!(Dropout::new(0.5, 42).forward(&x).to_vec(), y);
///
/// // resuming: the state after the first mask gives the second mask again
/// let state = drop.rng_state();
/// assert_eq!((state.seed, state.draws), (42, 1));
/// let second = drop.forward(&x).to_vec();
/// drop.set_rng_state(state);
/// assert_eq!(drop.forward(&x).to_vec(), second);
///
/// drop.set_training(false);
/// assert_eq!(drop.forward(&x).to_vec(), x.to_vec());
/// ```
#[derive(Debug)]
pub struct Dropout {
    p: f64,
    training: bool,
    // A lock rather than two atomics, so that a state is always a consistent pair.
    state: Mutex<RngState>,
}

impl Dropout {
    /// A dropout layer zeroing with probability `p`, its masks drawn from the
    /// stream `seed` (state `{ seed, draws: 0 }`); in training mode.
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
    /// [`Error::InvalidArgument`] when `p` is not in `[0, 1]`.
    pub fn try_new(p: f64, seed: u64) -> Result<Self> {
        check_dropout_p(p)?;
        Ok(Dropout {
            p,
            training: true,
            state: Mutex::new(RngState::new(seed, 0)),
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
    /// the identity). The same as [`ModuleParams::set_training`], callable without
    /// naming the element type.
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// Restarts the mask sequence from `seed`, as a new layer with that seed would
    /// (state `{ seed, draws: 0 }`).
    pub fn reseed(&self, seed: u64) {
        self.set_rng_state(RngState::new(seed, 0));
    }

    /// Where the mask sequence is: the seed and the number of masks drawn so far.
    /// Evaluation mode and `p = 0` draw none.
    pub fn rng_state(&self) -> RngState {
        *self.lock()
    }

    /// Continues the mask sequence from `state` (as saved by
    /// [`rng_state`](Dropout::rng_state)).
    pub fn set_rng_state(&self, state: RngState) {
        *self.lock() = state;
    }

    /// The RNG for this layer's next mask, advancing its state by one draw,
    /// when the layer would draw a mask (training mode and `p > 0`); `None`
    /// otherwise (nothing is drawn). For layers that apply the dropout
    /// somewhere else, as `MultiHeadAttention` does inside the attention op.
    pub(crate) fn next_rng(&self) -> Option<StdRng> {
        if !self.training || self.p == 0.0 {
            return None;
        }
        let mut guard = self.lock();
        let state = *guard;
        guard.draws = guard.draws.wrapping_add(1);
        Some(state.rng())
    }

    /// The state, whatever a panic elsewhere did (a pair of integers cannot be
    /// left invalid).
    fn lock(&self) -> std::sync::MutexGuard<'_, RngState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Element> Module<T> for Dropout {
    /// In training, `x` times a fresh mask of zeros (probability `p`) and
    /// `1 / (1 − p)`; in evaluation, `x` itself.
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        if !self.training || self.p == 0.0 {
            return x.clone();
        }
        let state = {
            let mut guard = self.lock();
            let state = *guard;
            guard.draws = guard.draws.wrapping_add(1);
            state
        };
        dropout(x, self.p, true, &mut state.rng())
    }
}

impl<T: Element> ModuleParams<T> for Dropout {
    /// None: dropout has no parameters.
    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        Vec::new()
    }

    fn set_training(&mut self, training: bool) {
        Dropout::set_training(self, training);
    }

    /// Always `Some`: dropout's behaviour depends on the mode.
    fn training_mode(&self) -> Option<bool> {
        Some(self.training)
    }

    /// Its own state, under the empty name (a container prefixes it with the
    /// layer's name).
    fn named_rng_states(&self) -> Vec<(String, RngState)> {
        vec![(String::new(), self.rng_state())]
    }

    /// Sets the state when `name` is empty (the layer's own).
    fn set_named_rng_state(&self, name: &str, state: RngState) -> bool {
        if name.is_empty() {
            self.set_rng_state(state);
        }
        name.is_empty()
    }
}

/// The state of a seeded stream of random draws, as [`Dropout`] keeps it: the
/// seed and the number of draws made so far. Draw number `n` of stream `seed` uses
/// the RNG [`RngState { seed, draws: n }.rng()`](RngState::rng), so this pair is
/// all there is to save for a run to resume with the same randomness.
///
/// It prints as `seed=42,draws=3` and parses back from that (e.g. to keep it in a
/// checkpoint's metadata strings):
///
/// ```
/// use ferrograd::nn::RngState;
/// let state = RngState::new(42, 3);
/// assert_eq!(state.to_string(), "seed=42,draws=3");
/// assert_eq!("seed=42,draws=3".parse::<RngState>()?, state);
/// assert!("seed=42".parse::<RngState>().is_err());
/// # Ok::<(), ferrograd::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RngState {
    /// The stream: a layer's seed.
    pub seed: u64,
    /// How many draws (masks) were made from the stream.
    pub draws: u64,
}

impl RngState {
    /// The state of stream `seed` after `draws` draws.
    pub const fn new(seed: u64, draws: u64) -> Self {
        RngState { seed, draws }
    }

    /// The RNG for draw number `draws` of stream `seed`: a [`StdRng`] keyed with
    /// both numbers, so distinct pairs give independent streams (no two pairs
    /// share a key). It depends on nothing else: the same pair gives the same RNG
    /// in every run (for a given version of `rand`).
    pub fn rng(&self) -> StdRng {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.seed.to_le_bytes());
        key[8..16].copy_from_slice(&self.draws.to_le_bytes());
        key[16..].copy_from_slice(b"ferrograd:draws.");
        StdRng::from_seed(key)
    }
}

impl fmt::Display for RngState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed={},draws={}", self.seed, self.draws)
    }
}

impl FromStr for RngState {
    type Err = Error;

    /// Parses `seed=S,draws=N` (decimal `u64`s), as [`Display`](fmt::Display) writes it.
    fn from_str(s: &str) -> Result<Self> {
        let parse = || -> Option<RngState> {
            let (seed, draws) = s.split_once(',')?;
            let seed = seed.strip_prefix("seed=")?;
            let draws = draws.strip_prefix("draws=")?;
            let number = |t: &str| {
                if t.bytes().all(|b| b.is_ascii_digit()) {
                    t.parse::<u64>().ok()
                } else {
                    None
                }
            };
            Some(RngState::new(number(seed)?, number(draws)?))
        };
        parse().ok_or_else(|| {
            Error::invalid(
                "RngState",
                format!("expected \"seed=<u64>,draws=<u64>\", got {s:?}"),
            )
        })
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
        ModuleParams::<f32>::set_training(&mut d, true);
        assert!(d.is_training());
        d.set_training(false);
        let z = d.forward(&x);
        assert_eq!(z.id(), x.id());
        assert!(ModuleParams::<f64>::named_parameters(&d).is_empty());
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
    fn state_counts_masks_and_restoring_it_repeats_them() {
        let x = Tensor::<f32>::ones(&[128]);
        let mut d = Dropout::new(0.5, 5);
        assert_eq!(d.rng_state(), RngState::new(5, 0));
        let first = d.forward(&x).to_vec();
        assert_eq!(d.rng_state(), RngState::new(5, 1));
        let saved = d.rng_state();
        let later: Vec<Vec<f32>> = (0..3).map(|_| d.forward(&x).to_vec()).collect();
        assert_eq!(d.rng_state().draws, 4);
        // no mask is drawn in evaluation or with p = 0
        d.set_training(false);
        d.forward(&x);
        d.set_training(true);
        assert_eq!(d.rng_state().draws, 4);
        Dropout::new(0.0, 5).forward(&x);
        // restoring, here and in a fresh layer, gives the same masks again
        d.set_rng_state(saved);
        let again: Vec<Vec<f32>> = (0..3).map(|_| d.forward(&x).to_vec()).collect();
        assert_eq!(again, later);
        let fresh = Dropout::new(0.5, 999);
        fresh.set_rng_state(saved);
        assert_eq!(fresh.forward(&x).to_vec(), later[0]);
        // each draw its own mask; the first is draw 0
        assert_ne!(later[0], later[1]);
        fresh.set_rng_state(RngState::new(5, 0));
        assert_eq!(fresh.forward(&x).to_vec(), first);
        // through the trait, under the empty name
        let named = ModuleParams::<f32>::named_rng_states(&fresh);
        assert_eq!(named, [(String::new(), RngState::new(5, 1))]);
        assert!(ModuleParams::<f32>::set_named_rng_state(&fresh, "", saved));
        assert!(!ModuleParams::<f32>::set_named_rng_state(
            &fresh, "x", saved
        ));
        assert_eq!(fresh.rng_state(), saved);
        assert_eq!(ModuleParams::<f32>::training_mode(&fresh), Some(true));
    }

    #[test]
    fn rng_state_prints_and_parses() {
        for state in [
            RngState::new(0, 0),
            RngState::new(42, 7),
            RngState::new(u64::MAX, u64::MAX),
        ] {
            let text = state.to_string();
            assert_eq!(text.parse::<RngState>().unwrap(), state, "{text}");
        }
        assert_eq!(RngState::new(3, 9).to_string(), "seed=3,draws=9");
        for bad in [
            "",
            "seed=1",
            "seed=1,draws=",
            "seed=-1,draws=2",
            "seed=+1,draws=2",
            "draws=2,seed=1",
            "seed=1,draws=2,",
            "seed=1, draws=2",
            "seed=18446744073709551616,draws=0",
        ] {
            let err = bad.parse::<RngState>().unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("RngState: expected \"seed=<u64>,draws=<u64>\""),
                "{bad}: {err}"
            );
        }
        // distinct pairs, distinct streams
        use rand::Rng;
        let draw = |s: RngState| s.rng().next_u64();
        assert_ne!(draw(RngState::new(1, 2)), draw(RngState::new(2, 1)));
        assert_ne!(draw(RngState::new(1, 0)), draw(RngState::new(1, 1)));
        assert_eq!(draw(RngState::new(1, 1)), draw(RngState::new(1, 1)));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn rng_state_serde_round_trip() {
        let state = RngState::new(7, 11);
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(json, r#"{"seed":7,"draws":11}"#);
        assert_eq!(serde_json::from_str::<RngState>(&json).unwrap(), state);
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
