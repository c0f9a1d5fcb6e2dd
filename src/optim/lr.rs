//! Learning-rate schedules: step decay, exponential decay, cosine annealing and
//! linear warm-up, chained with [`LrSchedule::then`] and applied to any
//! [`Optimizer`] by a [`Scheduler`].
//!
//! A schedule is a closed form `lr(t, base_lr)` of the scheduler's step count `t`
//! (PyTorch's `last_epoch`), following PyTorch's `_get_closed_form_lr`. A
//! [`Scheduler`] remembers the optimizer's learning rate when it is made (the base),
//! sets `lr(0, base)` right away, and sets `lr(t, base)` at its `t`-th
//! [`step`](Scheduler::step): call it once per epoch (or per batch) after the
//! optimizer's step, as in PyTorch.
//!
//! ```
//! use ferrograd::optim::lr::{CosineAnnealingLr, LinearLr, LrSchedule, Scheduler};
//! use ferrograd::optim::{Optimizer, Sgd, SgdConfig};
//! use ferrograd::Tensor;
//!
//! let w = Tensor::<f64>::zeros(&[3]).requires_grad();
//! let mut opt = Sgd::new(vec![w.clone()], SgdConfig { lr: 0.1, ..Default::default() });
//! // 5 steps of warm-up from 0.1·lr, then cosine decay to 0 over 10 steps
//! let schedule = LinearLr::warmup(0.1, 5).then(5, CosineAnnealingLr::new(10, 0.0));
//! let mut sched = Scheduler::new(&mut opt, schedule);
//! let mut lrs = vec![opt.lr()];
//! for _ in 0..15 {
//!     // ... opt.step(&grads)? for each batch ...
//!     lrs.push(sched.step(&mut opt));
//! }
//! assert!((lrs[0] - 0.01).abs() < 1e-12);   // warm-up starts at 0.1 · 0.1
//! assert!((lrs[4] - 0.082).abs() < 1e-12);  // 0.1 · (0.1 + 0.9 · 4/5)
//! assert_eq!(lrs[5], 0.1);                  // the cosine starts at the base lr
//! assert!((lrs[10] - 0.05).abs() < 1e-12);  // halfway down
//! assert!(lrs[15].abs() < 1e-12);           // and reaches eta_min
//! ```

use std::f64::consts::PI;
use std::fmt;

use crate::element::Element;
use crate::error::{or_panic, Error, Result};

use super::Optimizer;

/// A learning-rate schedule: the learning rate at step `t` for a base rate.
///
/// Implementations are closed forms of `t`, so a schedule can be queried at any
/// step in any order. The trait is object safe; implement it for your own
/// schedules (`lr` is all there is to write).
///
/// ```
/// use ferrograd::optim::lr::{LrSchedule, Scheduler};
///
/// /// lr / √(t + 1)
/// struct InverseSqrt;
/// impl LrSchedule<f32> for InverseSqrt {
///     fn lr(&self, step: usize, base_lr: f32) -> f32 {
///         base_lr / ((step + 1) as f32).sqrt()
///     }
/// }
/// assert_eq!(InverseSqrt.lr(3, 1.0), 0.5);
/// ```
pub trait LrSchedule<T: Element = f32> {
    /// The learning rate after `step` scheduler steps, for the base rate `base_lr`.
    fn lr(&self, step: usize, base_lr: T) -> T;

    /// Switches to `next` at step `milestone` (PyTorch's `SequentialLR`): steps
    /// before it follow `self`; step `t ≥ milestone` follows `next` at `t − milestone`.
    /// Chain further with `then` on the result; milestones count from the start.
    ///
    /// ```
    /// use ferrograd::optim::lr::{ExponentialLr, LinearLr, LrSchedule};
    /// let s = LinearLr::warmup(0.5, 2).then(2, ExponentialLr::new(0.5));
    /// let lrs: Vec<f64> = (0..5).map(|t| s.lr(t, 1.0)).collect();
    /// assert_eq!(lrs, vec![0.5, 0.75, 1.0, 0.5, 0.25]);
    /// ```
    ///
    /// # Panics
    /// On a [`SequentialLr`], when `milestone` is not after its last milestone.
    #[track_caller]
    fn then<S>(self, milestone: usize, next: S) -> SequentialLr<T>
    where
        Self: Sized + Send + Sync + 'static,
        S: LrSchedule<T> + Send + Sync + 'static,
    {
        SequentialLr {
            schedules: vec![Box::new(self), Box::new(next)],
            milestones: vec![milestone],
        }
    }
}

impl<T: Element, S: LrSchedule<T> + ?Sized> LrSchedule<T> for Box<S> {
    fn lr(&self, step: usize, base_lr: T) -> T {
        (**self).lr(step, base_lr)
    }
}

fn f64_of<T: Element>(v: T) -> f64 {
    v.to_f64_lossless()
}

fn of_f64<T: Element>(v: f64) -> T {
    T::from_f64_lossy(v)
}

/// `Err` unless `0 <= value` (NaN fails).
fn nonneg<T: Element>(op: &'static str, what: &str, value: T) -> Result<()> {
    super::check_nonneg(what, value).map_err(|m| Error::invalid(op, m))
}

/// Multiplies the rate by `gamma` every `step_size` steps (PyTorch's `StepLR`):
/// `lr · γ^⌊t / step_size⌋`.
///
/// ```
/// use ferrograd::optim::lr::{LrSchedule, StepLr};
/// let s = StepLr::new(3, 0.5);
/// let lrs: Vec<f64> = (0..7).map(|t| s.lr(t, 0.8)).collect();
/// assert_eq!(lrs, vec![0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLr<T: Element = f32> {
    step_size: usize,
    gamma: T,
}

impl<T: Element> StepLr<T> {
    /// Decay by `gamma` every `step_size` steps.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `step_size` is 0 or `gamma` is negative or NaN.
    pub fn try_new(step_size: usize, gamma: T) -> Result<Self> {
        if step_size == 0 {
            return Err(Error::invalid(
                "StepLr::new",
                "step_size must be at least 1",
            ));
        }
        nonneg("StepLr::new", "gamma", gamma)?;
        Ok(StepLr { step_size, gamma })
    }

    /// Decay by `gamma` every `step_size` steps.
    ///
    /// # Panics
    /// When `step_size` is 0 or `gamma` is negative or NaN.
    #[track_caller]
    pub fn new(step_size: usize, gamma: T) -> Self {
        or_panic(Self::try_new(step_size, gamma))
    }
}

impl<T: Element> LrSchedule<T> for StepLr<T> {
    fn lr(&self, step: usize, base_lr: T) -> T {
        let k = (step / self.step_size) as f64;
        of_f64(f64_of(base_lr) * f64_of(self.gamma).powf(k))
    }
}

/// Multiplies the rate by `gamma` every step (PyTorch's `ExponentialLR`): `lr · γ^t`.
///
/// ```
/// use ferrograd::optim::lr::{ExponentialLr, LrSchedule};
/// let s = ExponentialLr::new(0.9);
/// assert!((s.lr(2, 1.0f64) - 0.81).abs() < 1e-15);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialLr<T: Element = f32> {
    gamma: T,
}

impl<T: Element> ExponentialLr<T> {
    /// Decay by `gamma` every step.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `gamma` is negative or NaN.
    pub fn try_new(gamma: T) -> Result<Self> {
        nonneg("ExponentialLr::new", "gamma", gamma)?;
        Ok(ExponentialLr { gamma })
    }

    /// Decay by `gamma` every step.
    ///
    /// # Panics
    /// When `gamma` is negative or NaN.
    #[track_caller]
    pub fn new(gamma: T) -> Self {
        or_panic(Self::try_new(gamma))
    }
}

impl<T: Element> LrSchedule<T> for ExponentialLr<T> {
    fn lr(&self, step: usize, base_lr: T) -> T {
        of_f64(f64_of(base_lr) * f64_of(self.gamma).powf(step as f64))
    }
}

/// Cosine annealing from the base rate down to `eta_min` over `t_max` steps
/// (PyTorch's `CosineAnnealingLR`, closed form):
/// `η_min + (lr − η_min) · (1 + cos(π·t / T_max)) / 2`.
///
/// Past `t_max` the closed form goes on along the cosine (back up towards the base
/// rate at `2·t_max`), as PyTorch's does; chain it with [`LrSchedule::then`] to hold
/// a rate afterwards.
///
/// ```
/// use ferrograd::optim::lr::{CosineAnnealingLr, LrSchedule};
/// let s = CosineAnnealingLr::new(4, 0.1);
/// assert_eq!(s.lr(0, 1.0f64), 1.0);
/// assert!((s.lr(2, 1.0) - 0.55).abs() < 1e-15);   // 0.1 + 0.9 · (1 + cos(π/2)) / 2
/// assert!((s.lr(4, 1.0) - 0.1).abs() < 1e-15);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineAnnealingLr<T: Element = f32> {
    t_max: usize,
    eta_min: T,
}

impl<T: Element> CosineAnnealingLr<T> {
    /// Anneal to `eta_min` over `t_max` steps.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `t_max` is 0 or `eta_min` is negative or NaN.
    pub fn try_new(t_max: usize, eta_min: T) -> Result<Self> {
        if t_max == 0 {
            return Err(Error::invalid(
                "CosineAnnealingLr::new",
                "t_max must be at least 1",
            ));
        }
        nonneg("CosineAnnealingLr::new", "eta_min", eta_min)?;
        Ok(CosineAnnealingLr { t_max, eta_min })
    }

    /// Anneal to `eta_min` over `t_max` steps.
    ///
    /// # Panics
    /// When `t_max` is 0 or `eta_min` is negative or NaN.
    #[track_caller]
    pub fn new(t_max: usize, eta_min: T) -> Self {
        or_panic(Self::try_new(t_max, eta_min))
    }
}

impl<T: Element> LrSchedule<T> for CosineAnnealingLr<T> {
    fn lr(&self, step: usize, base_lr: T) -> T {
        let (base, eta_min) = (f64_of(base_lr), f64_of(self.eta_min));
        let cos = (PI * step as f64 / self.t_max as f64).cos();
        of_f64(eta_min + (base - eta_min) * (1.0 + cos) / 2.0)
    }
}

/// Scales the rate by a factor going linearly from `start_factor` to `end_factor`
/// over `total_iters` steps, then holding (PyTorch's `LinearLR`):
/// `lr · (start + (end − start) · min(t, total_iters) / total_iters)`.
/// [`LinearLr::warmup`] is the usual warm-up, ending at factor 1.
///
/// ```
/// use ferrograd::optim::lr::{LinearLr, LrSchedule};
/// let s = LinearLr::warmup(0.25, 3);
/// let lrs: Vec<f64> = (0..5).map(|t| s.lr(t, 0.4)).collect();
/// let expected = [0.1, 0.2, 0.3, 0.4, 0.4];
/// assert!(lrs.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearLr<T: Element = f32> {
    start_factor: T,
    end_factor: T,
    total_iters: usize,
}

impl<T: Element> LinearLr<T> {
    /// From `start_factor` to `end_factor` over `total_iters` steps.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `0 < start_factor ≤ 1`, `0 ≤ end_factor ≤ 1`
    /// (PyTorch's bounds) and `total_iters ≥ 1`.
    pub fn try_new(start_factor: T, end_factor: T, total_iters: usize) -> Result<Self> {
        const OP: &str = "LinearLr::new";
        let (zero, one) = (T::zero(), T::one());
        if !(start_factor > zero && start_factor <= one) {
            return Err(Error::invalid(
                OP,
                format!("invalid start_factor {start_factor}: expected 0 < start_factor <= 1"),
            ));
        }
        if !(end_factor >= zero && end_factor <= one) {
            return Err(Error::invalid(
                OP,
                format!("invalid end_factor {end_factor}: expected 0 <= end_factor <= 1"),
            ));
        }
        if total_iters == 0 {
            return Err(Error::invalid(OP, "total_iters must be at least 1"));
        }
        Ok(LinearLr {
            start_factor,
            end_factor,
            total_iters,
        })
    }

    /// From `start_factor` to `end_factor` over `total_iters` steps.
    ///
    /// # Panics
    /// As [`try_new`](LinearLr::try_new) errs.
    #[track_caller]
    pub fn new(start_factor: T, end_factor: T, total_iters: usize) -> Self {
        or_panic(Self::try_new(start_factor, end_factor, total_iters))
    }

    /// Linear warm-up: from `start_factor` of the base rate up to the base rate
    /// over `warmup_steps` steps.
    ///
    /// # Panics
    /// Unless `0 < start_factor ≤ 1` and `warmup_steps ≥ 1`.
    #[track_caller]
    pub fn warmup(start_factor: T, warmup_steps: usize) -> Self {
        Self::new(start_factor, T::one(), warmup_steps)
    }
}

impl<T: Element> LrSchedule<T> for LinearLr<T> {
    fn lr(&self, step: usize, base_lr: T) -> T {
        let (start, end) = (f64_of(self.start_factor), f64_of(self.end_factor));
        let progress = step.min(self.total_iters) as f64 / self.total_iters as f64;
        of_f64(f64_of(base_lr) * (start + (end - start) * progress))
    }
}

/// Schedules run one after the other, switching at milestones (PyTorch's
/// `SequentialLR`); made by [`LrSchedule::then`].
///
/// Schedule `k + 1` starts at milestone `k`, at its own step 0, from the same
/// base rate.
///
/// ```
/// use ferrograd::optim::lr::{CosineAnnealingLr, LinearLr, LrSchedule, StepLr};
/// let s = LinearLr::warmup(0.5, 2)
///     .then(2, CosineAnnealingLr::new(2, 0.0))
///     .then(4, StepLr::new(1, 1.0));     // then hold the base rate
/// let lrs: Vec<f64> = (0..6).map(|t| s.lr(t, 1.0)).collect();
/// let expected = [0.5, 0.75, 1.0, 0.5, 1.0, 1.0];   // cos(π/2) = 0 at t = 3
/// assert!(lrs.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12));
/// assert_eq!(s.milestones(), &[2, 4]);
/// ```
pub struct SequentialLr<T: Element = f32> {
    schedules: Vec<Box<dyn LrSchedule<T> + Send + Sync>>,
    milestones: Vec<usize>,
}

impl<T: Element> SequentialLr<T> {
    /// The steps at which each schedule after the first takes over.
    pub fn milestones(&self) -> &[usize] {
        &self.milestones
    }
}

impl<T: Element> LrSchedule<T> for SequentialLr<T> {
    fn lr(&self, step: usize, base_lr: T) -> T {
        // the last milestone at or before `step` picks the schedule
        let k = self.milestones.partition_point(|&m| m <= step);
        let start = if k == 0 { 0 } else { self.milestones[k - 1] };
        self.schedules[k].lr(step - start, base_lr)
    }

    #[track_caller]
    fn then<S>(mut self, milestone: usize, next: S) -> SequentialLr<T>
    where
        Self: Sized + Send + Sync + 'static,
        S: LrSchedule<T> + Send + Sync + 'static,
    {
        let last = *self.milestones.last().expect("at least one milestone");
        assert!(
            milestone > last,
            "SequentialLr::then: milestone {milestone} must come after the previous one ({last})"
        );
        self.schedules.push(Box::new(next));
        self.milestones.push(milestone);
        self
    }
}

impl<T: Element> fmt::Debug for SequentialLr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequentialLr")
            .field("schedules", &self.schedules.len())
            .field("milestones", &self.milestones)
            .finish()
    }
}

/// Applies a schedule to an optimizer: remembers the optimizer's learning rate as
/// the base, sets the schedule's rate at step 0 at once, and the rate at step `t`
/// at its `t`-th [`step`](Scheduler::step).
///
/// The scheduler does not own the optimizer: pass it to each call, so that one
/// training loop can hold both (`Box<dyn Optimizer<T>>` works too).
///
/// ```
/// use ferrograd::optim::lr::{Scheduler, StepLr};
/// use ferrograd::optim::{Adam, AdamConfig, Optimizer};
///
/// let w = ferrograd::Tensor::<f32>::zeros(&[2]).requires_grad();
/// let mut opt = Adam::new(vec![w], AdamConfig { lr: 0.1, ..Default::default() });
/// let mut sched = Scheduler::new(&mut opt, StepLr::new(2, 0.5));
/// for _epoch in 0..4 {
///     // ... train one epoch with opt.step(&grads)? ...
///     sched.step(&mut opt);
/// }
/// assert_eq!(sched.epoch(), 4);
/// assert_eq!(opt.lr(), 0.025);   // 0.1 · 0.5²
/// assert_eq!(sched.base_lr(), 0.1);
/// ```
#[derive(Clone, Debug)]
pub struct Scheduler<T: Element, S> {
    schedule: S,
    base_lr: T,
    epoch: usize,
    last_lr: T,
}

impl<T: Element, S: LrSchedule<T>> Scheduler<T, S> {
    /// Takes the optimizer's current learning rate as the base and sets the
    /// schedule's rate for step 0 (e.g. the start of a warm-up).
    ///
    /// # Panics
    /// When the schedule gives a negative or NaN rate (see [`Optimizer::set_lr`]).
    #[track_caller]
    pub fn new<O: Optimizer<T> + ?Sized>(optimizer: &mut O, schedule: S) -> Self {
        let base_lr = optimizer.lr();
        let last_lr = schedule.lr(0, base_lr);
        optimizer.set_lr(last_lr);
        Scheduler {
            schedule,
            base_lr,
            epoch: 0,
            last_lr,
        }
    }

    /// Advances one step and sets the optimizer's learning rate for it; returns
    /// that rate.
    ///
    /// # Panics
    /// When the schedule gives a negative or NaN rate.
    #[track_caller]
    pub fn step<O: Optimizer<T> + ?Sized>(&mut self, optimizer: &mut O) -> T {
        self.epoch += 1;
        self.last_lr = self.schedule.lr(self.epoch, self.base_lr);
        optimizer.set_lr(self.last_lr);
        self.last_lr
    }

    /// How many times [`step`](Scheduler::step) has run (PyTorch's `last_epoch`).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The learning rate the optimizer had when the scheduler was made.
    pub fn base_lr(&self) -> T {
        self.base_lr
    }

    /// The learning rate last set (PyTorch's `get_last_lr()`).
    pub fn last_lr(&self) -> T {
        self.last_lr
    }

    /// The schedule.
    pub fn schedule(&self) -> &S {
        &self.schedule
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_schedules_are_errors() {
        assert!(StepLr::<f32>::try_new(0, 0.1).is_err());
        assert!(StepLr::<f32>::try_new(1, -0.1).is_err());
        assert!(ExponentialLr::<f32>::try_new(f32::NAN).is_err());
        assert!(CosineAnnealingLr::<f32>::try_new(0, 0.0).is_err());
        assert!(CosineAnnealingLr::<f32>::try_new(5, -1.0).is_err());
        assert!(LinearLr::<f32>::try_new(0.0, 1.0, 5).is_err());
        assert!(LinearLr::<f32>::try_new(0.5, 1.5, 5).is_err());
        assert!(LinearLr::<f32>::try_new(0.5, 1.0, 0).is_err());
        let err = LinearLr::<f64>::try_new(1.5, 1.0, 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "LinearLr::new: invalid start_factor 1.5: expected 0 < start_factor <= 1"
        );
    }

    #[test]
    #[should_panic(expected = "milestone 3 must come after the previous one (3)")]
    fn milestones_must_increase() {
        let _ = LinearLr::<f64>::warmup(0.5, 3)
            .then(3, ExponentialLr::new(0.5))
            .then(3, ExponentialLr::new(0.1));
    }

    #[test]
    fn boxed_schedules_are_schedules() {
        let s: Box<dyn LrSchedule<f64> + Send + Sync> = Box::new(ExponentialLr::new(0.5));
        assert_eq!(s.lr(3, 1.0), 0.125);
        let chained = s.then(1, StepLr::new(1, 1.0));
        assert_eq!(chained.lr(0, 2.0), 2.0);
        assert_eq!(chained.lr(5, 2.0), 2.0);
    }
}
