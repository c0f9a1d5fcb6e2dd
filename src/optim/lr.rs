//! Learning-rate schedules: step decay, exponential decay, cosine annealing and
//! linear warm-up, chained with [`LrSchedule::then`] and applied to any
//! [`Optimizer`] by a [`Scheduler`].
//!
//! A schedule is a closed form `lr(t, base_lr)` of the scheduler's step count `t`
//! (PyTorch's `last_epoch`), following PyTorch's `_get_closed_form_lr`. A
//! [`Scheduler`] remembers the optimizer's learning rates when it is made (the
//! bases, one per [parameter group](super#parameter-groups)), sets `lr(0, base)`
//! right away, and sets `lr(t, base)` at its `t`-th [`step`](Scheduler::step): call
//! it once per epoch (or per batch) after the optimizer's step, as in PyTorch. Each
//! group follows the schedule from its own base rate (PyTorch's `base_lrs`).
//!
//! [`Scheduler::state_dict`] and [`Scheduler::load_state_dict`] save and restore a
//! scheduler mid-schedule, with the schedule's own settings
//! ([`LrSchedule::state_dict`]); [`SchedulerState::to_map`] turns the state into
//! strings for a safetensors file's metadata.
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

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::fmt;

use crate::element::Element;
use crate::error::{or_panic, Error, Result};

use super::{Fields, Optimizer};

/// A learning-rate schedule: the learning rate at step `t` for a base rate.
///
/// Implementations are closed forms of `t`, so a schedule can be queried at any
/// step in any order. The trait is object safe; implement it for your own
/// schedules (`lr` is all there is to write; add
/// [`state_dict`](LrSchedule::state_dict) and
/// [`load_state_dict`](LrSchedule::load_state_dict) when the schedule has settings
/// that a checkpoint should carry).
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

    /// The schedule's settings as text, for [`Scheduler::state_dict`]. The
    /// schedules of this module write their kind and fields (`"kind"` →
    /// `"StepLr"`, `"step_size"` → `"3"`, `"gamma"` → `"0.5"`); by default there
    /// are none.
    ///
    /// ```
    /// use ferrograd::optim::lr::{ExponentialLr, LrSchedule};
    /// let mut s = ExponentialLr::new(0.5f64);
    /// let state = s.state_dict();
    /// assert_eq!(state["kind"], "ExponentialLr");
    /// assert_eq!(state["gamma"], "0.5");
    ///
    /// let mut other = ExponentialLr::new(0.9f64);
    /// other.load_state_dict(&state)?;
    /// assert_eq!(other, s);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    fn state_dict(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Restores the settings that [`state_dict`](LrSchedule::state_dict) wrote (PyTorch
    /// restores a scheduler's attributes the same way). By default, accepts only
    /// an empty map.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`], changing nothing, when the state is of another
    /// kind of schedule, lacks a field, has an unknown or unreadable one, or holds
    /// settings the schedule's constructor rejects.
    fn load_state_dict(&mut self, state: &BTreeMap<String, String>) -> Result<()> {
        match state.keys().next() {
            None => Ok(()),
            Some(key) => Err(Error::invalid(
                "LrSchedule::load_state_dict",
                format!("unknown field {key}: this schedule has no settings to load"),
            )),
        }
    }

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

    fn state_dict(&self) -> BTreeMap<String, String> {
        (**self).state_dict()
    }

    fn load_state_dict(&mut self, state: &BTreeMap<String, String>) -> Result<()> {
        (**self).load_state_dict(state)
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

/// The fields of a schedule of kind `kind`, as its `state_dict` writes them.
fn fields_of(kind: &str, write: impl FnOnce(&mut Fields)) -> BTreeMap<String, String> {
    let mut f = Fields::new();
    f.put("kind", kind);
    write(&mut f);
    f.into_map()
}

/// Reads the fields of a schedule of kind `kind` from `state` with `read`, checking
/// the kind and that no field is left over.
fn read_fields<S>(
    op: &'static str,
    kind: &str,
    state: &BTreeMap<String, String>,
    read: impl FnOnce(&mut Fields) -> std::result::Result<S, String>,
) -> Result<S> {
    let mut f = Fields::from(state.clone());
    let got = f.take_str("kind").map_err(|m| Error::invalid(op, m))?;
    if got != kind {
        return Err(Error::invalid(
            op,
            format!("the state was saved by {got}, not by {kind}"),
        ));
    }
    let s = read(&mut f).map_err(|m| Error::invalid(op, m))?;
    if let Some(extra) = f.names().next() {
        return Err(Error::invalid(op, format!("unknown field {extra}")));
    }
    Ok(s)
}

/// Gives a constructor's `InvalidArgument` the op `op` (the method that called it).
fn relabel(op: &'static str) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::InvalidArgument { msg, .. } => Error::InvalidArgument { op, msg },
        e => e,
    }
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

    fn state_dict(&self) -> BTreeMap<String, String> {
        fields_of("StepLr", |f| {
            f.put("step_size", self.step_size);
            f.put("gamma", self.gamma);
        })
    }

    fn load_state_dict(&mut self, state: &BTreeMap<String, String>) -> Result<()> {
        const OP: &str = "StepLr::load_state_dict";
        let (step_size, gamma) = read_fields(OP, "StepLr", state, |f| {
            Ok((f.take_num("step_size")?, f.take_num("gamma")?))
        })?;
        *self = Self::try_new(step_size, gamma).map_err(relabel(OP))?;
        Ok(())
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

    fn state_dict(&self) -> BTreeMap<String, String> {
        fields_of("ExponentialLr", |f| f.put("gamma", self.gamma))
    }

    fn load_state_dict(&mut self, state: &BTreeMap<String, String>) -> Result<()> {
        const OP: &str = "ExponentialLr::load_state_dict";
        let gamma = read_fields(OP, "ExponentialLr", state, |f| f.take_num("gamma"))?;
        *self = Self::try_new(gamma).map_err(relabel(OP))?;
        Ok(())
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

    fn state_dict(&self) -> BTreeMap<String, String> {
        fields_of("CosineAnnealingLr", |f| {
            f.put("t_max", self.t_max);
            f.put("eta_min", self.eta_min);
        })
    }

    fn load_state_dict(&mut self, state: &BTreeMap<String, String>) -> Result<()> {
        const OP: &str = "CosineAnnealingLr::load_state_dict";
        let (t_max, eta_min) = read_fields(OP, "CosineAnnealingLr", state, |f| {
            Ok((f.take_num("t_max")?, f.take_num("eta_min")?))
        })?;
        *self = Self::try_new(t_max, eta_min).map_err(relabel(OP))?;
        Ok(())
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

    fn state_dict(&self) -> BTreeMap<String, String> {
        fields_of("LinearLr", |f| {
            f.put("start_factor", self.start_factor);
            f.put("end_factor", self.end_factor);
            f.put("total_iters", self.total_iters);
        })
    }

    fn load_state_dict(&mut self, state: &BTreeMap<String, String>) -> Result<()> {
        const OP: &str = "LinearLr::load_state_dict";
        let (start, end, total) = read_fields(OP, "LinearLr", state, |f| {
            Ok((
                f.take_num("start_factor")?,
                f.take_num("end_factor")?,
                f.take_num("total_iters")?,
            ))
        })?;
        *self = Self::try_new(start, end, total).map_err(relabel(OP))?;
        Ok(())
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

    /// `"kind"` → `"SequentialLr"`, `"milestones"` → `"2,4"`, and each schedule's
    /// own fields under its position: `"0.kind"` → `"LinearLr"`, `"0.start_factor"`, …
    fn state_dict(&self) -> BTreeMap<String, String> {
        let mut out = fields_of("SequentialLr", |f| {
            f.put("milestones", join(&self.milestones));
        });
        for (k, s) in self.schedules.iter().enumerate() {
            for (name, value) in s.state_dict() {
                out.insert(format!("{k}.{name}"), value);
            }
        }
        out
    }

    /// Restores the milestones and each schedule's settings; the number of
    /// schedules must match.
    fn load_state_dict(&mut self, state: &BTreeMap<String, String>) -> Result<()> {
        const OP: &str = "SequentialLr::load_state_dict";
        let n = self.schedules.len();
        let mut parts = vec![BTreeMap::new(); n];
        let mut own = BTreeMap::new();
        for (key, value) in state {
            let part = key
                .split_once('.')
                .and_then(|(k, rest)| Some((k.parse::<usize>().ok()?, rest)));
            match part {
                Some((k, rest)) if k < n => {
                    parts[k].insert(rest.to_owned(), value.clone());
                }
                Some((k, _)) => {
                    return Err(Error::invalid(
                        OP,
                        format!("field {key} is for schedule {k}, but there are {n} schedules"),
                    ))
                }
                None => {
                    own.insert(key.clone(), value.clone());
                }
            }
        }
        let milestones = read_fields(OP, "SequentialLr", &own, |f| {
            split::<usize>("milestones", &f.take_str("milestones")?)
        })?;
        if milestones.len() + 1 != n {
            return Err(Error::invalid(
                OP,
                format!(
                    "the state has {} milestones, this SequentialLr {} (one fewer than                      its schedules)",
                    milestones.len(),
                    n - 1
                ),
            ));
        }
        if milestones.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::invalid(
                OP,
                format!("milestones {milestones:?} do not increase"),
            ));
        }
        // Load the schedules one by one; on an error, put back the ones already loaded.
        let saved: Vec<_> = self.schedules.iter().map(|s| s.state_dict()).collect();
        for (k, part) in parts.iter().enumerate() {
            if let Err(e) = self.schedules[k].load_state_dict(part) {
                for (s, old) in self.schedules.iter_mut().zip(&saved).take(k) {
                    // restores what the schedule itself wrote: cannot fail
                    let _ = s.load_state_dict(old);
                }
                return Err(Error::invalid(OP, format!("schedule {k}: {e}")));
            }
        }
        self.milestones = milestones;
        Ok(())
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

/// Applies a schedule to an optimizer: remembers the optimizer's learning rates as
/// the bases (one per parameter group), sets the schedule's rates at step 0 at
/// once, and the rates at step `t` at its `t`-th [`step`](Scheduler::step). Each
/// group follows the schedule from its own base (PyTorch's `base_lrs`).
///
/// The scheduler does not own the optimizer: pass it to each call, so that one
/// training loop can hold both (`Box<dyn Optimizer<T>>` works too). The optimizer
/// must keep the number of groups it had when the scheduler was made.
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
///
/// With two groups, each scaled from its own base:
///
/// ```
/// use ferrograd::optim::lr::{ExponentialLr, Scheduler};
/// use ferrograd::optim::{Optimizer, ParamGroup, Sgd, SgdConfig};
/// use ferrograd::Tensor;
///
/// let (a, b) = (Tensor::<f64>::zeros(&[2]).requires_grad(), Tensor::<f64>::zeros(&[2]).requires_grad());
/// let mut opt = Sgd::with_groups(vec![
///     ParamGroup::new(vec![a], SgdConfig { lr: 1.0, ..Default::default() }),
///     ParamGroup::new(vec![b], SgdConfig { lr: 0.1, ..Default::default() }),
/// ]);
/// let mut sched = Scheduler::new(&mut opt, ExponentialLr::new(0.5));
/// sched.step(&mut opt);
/// assert_eq!(opt.group_lrs(), vec![0.5, 0.05]);
/// assert_eq!(sched.base_lrs(), &[1.0, 0.1]);
/// ```
#[derive(Clone, Debug)]
pub struct Scheduler<T: Element, S> {
    schedule: S,
    base_lrs: Vec<T>,
    epoch: usize,
    last_lrs: Vec<T>,
}

impl<T: Element, S: LrSchedule<T>> Scheduler<T, S> {
    /// Takes the optimizer's current learning rates as the bases and sets the
    /// schedule's rates for step 0 (e.g. the start of a warm-up).
    ///
    /// # Panics
    /// When the schedule gives a negative or NaN rate (see [`Optimizer::set_lr`]).
    #[track_caller]
    pub fn new<O: Optimizer<T> + ?Sized>(optimizer: &mut O, schedule: S) -> Self {
        let base_lrs = optimizer.group_lrs();
        let last_lrs: Vec<T> = base_lrs.iter().map(|&b| schedule.lr(0, b)).collect();
        optimizer.set_group_lrs(&last_lrs);
        Scheduler {
            schedule,
            base_lrs,
            epoch: 0,
            last_lrs,
        }
    }

    /// Advances one step and sets the optimizer's learning rates for it; returns
    /// the first group's rate.
    ///
    /// # Panics
    /// When the schedule gives a negative or NaN rate, or the optimizer's number of
    /// parameter groups changed since the scheduler was made.
    #[track_caller]
    pub fn step<O: Optimizer<T> + ?Sized>(&mut self, optimizer: &mut O) -> T {
        self.epoch += 1;
        self.last_lrs = self
            .base_lrs
            .iter()
            .map(|&b| self.schedule.lr(self.epoch, b))
            .collect();
        optimizer.set_group_lrs(&self.last_lrs);
        self.last_lrs[0]
    }

    /// How many times [`step`](Scheduler::step) has run (PyTorch's `last_epoch`).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The learning rate the optimizer (its first group) had when the scheduler was
    /// made.
    pub fn base_lr(&self) -> T {
        self.base_lrs[0]
    }

    /// The learning rate of each group when the scheduler was made (PyTorch's
    /// `base_lrs`).
    pub fn base_lrs(&self) -> &[T] {
        &self.base_lrs
    }

    /// The learning rate last set, of the first group (PyTorch's
    /// `get_last_lr()[0]`).
    pub fn last_lr(&self) -> T {
        self.last_lrs[0]
    }

    /// The learning rates last set, one per group (PyTorch's `get_last_lr()`).
    pub fn last_lrs(&self) -> &[T] {
        &self.last_lrs
    }

    /// The schedule.
    pub fn schedule(&self) -> &S {
        &self.schedule
    }

    /// The scheduler's position and settings: its step count, base and last rates,
    /// and the schedule's [settings](LrSchedule::state_dict).
    ///
    /// ```
    /// use ferrograd::optim::lr::{LinearLr, LrSchedule, CosineAnnealingLr, Scheduler, SchedulerState};
    /// use ferrograd::optim::{Optimizer, Sgd, SgdConfig};
    ///
    /// let schedule = || LinearLr::warmup(0.1, 3).then(3, CosineAnnealingLr::new(10, 0.0));
    /// let w = ferrograd::Tensor::<f32>::zeros(&[2]).requires_grad();
    /// let mut opt = Sgd::new(vec![w.clone()], SgdConfig { lr: 0.5, ..Default::default() });
    /// let mut sched = Scheduler::new(&mut opt, schedule());
    /// for _ in 0..5 {
    ///     sched.step(&mut opt);
    /// }
    /// let meta = sched.state_dict().to_map("sched.");   // strings: fit a safetensors header
    /// assert_eq!(meta["sched.epoch"], "5");
    /// assert_eq!(meta["sched.schedule.milestones"], "3");
    ///
    /// // resume: a fresh optimizer and scheduler, then the saved state
    /// let mut opt2 = Sgd::new(vec![w], SgdConfig { lr: 0.5, ..Default::default() });
    /// let mut sched2 = Scheduler::new(&mut opt2, schedule());
    /// sched2.load_state_dict(&mut opt2, &SchedulerState::from_map("sched.", &meta)?)?;
    /// assert_eq!((sched2.epoch(), opt2.lr()), (5, opt.lr()));
    /// assert_eq!(sched2.step(&mut opt2), sched.step(&mut opt));
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn state_dict(&self) -> SchedulerState<T> {
        SchedulerState {
            epoch: self.epoch,
            base_lrs: self.base_lrs.clone(),
            last_lrs: self.last_lrs.clone(),
            schedule: self.schedule.state_dict(),
        }
    }

    /// Restores a state from [`state_dict`](Scheduler::state_dict): the step count,
    /// the base and last rates and the schedule's settings; and sets the
    /// optimizer's learning rates to the saved last rates, so that it does not
    /// matter whether the optimizer's own state was loaded before or after.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`], changing nothing, when the state's number of
    /// rates differs from the optimizer's number of groups, a rate is negative or
    /// NaN, or the schedule rejects its settings (another kind of schedule, …).
    pub fn load_state_dict<O: Optimizer<T> + ?Sized>(
        &mut self,
        optimizer: &mut O,
        state: &SchedulerState<T>,
    ) -> Result<()> {
        const OP: &str = "Scheduler::load_state_dict";
        let groups = optimizer.group_lrs().len();
        for (what, lrs) in [("base", &state.base_lrs), ("last", &state.last_lrs)] {
            if lrs.len() != groups {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "the state has {} {what} learning rates, the optimizer {groups} \
                         parameter groups",
                        lrs.len()
                    ),
                ));
            }
            for &lr in lrs {
                nonneg(OP, "learning rate", lr)?;
            }
        }
        self.schedule.load_state_dict(&state.schedule)?;
        self.epoch = state.epoch;
        self.base_lrs.clone_from(&state.base_lrs);
        self.last_lrs.clone_from(&state.last_lrs);
        optimizer.set_group_lrs(&self.last_lrs);
        Ok(())
    }
}

/// A [`Scheduler`]'s state: where it is in its schedule, and the schedule's
/// settings (PyTorch's `scheduler.state_dict()`).
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerState<T: Element = f32> {
    /// How many steps the scheduler had taken.
    pub epoch: usize,
    /// The base learning rate of each group.
    pub base_lrs: Vec<T>,
    /// The learning rate of each group set last.
    pub last_lrs: Vec<T>,
    /// The schedule's settings ([`LrSchedule::state_dict`]).
    pub schedule: BTreeMap<String, String>,
}

impl<T: Element> SchedulerState<T> {
    /// The state as strings, each key starting with `prefix` (for a safetensors
    /// file's metadata, next to an [optimizer's](super::OptimizerState::to_maps)):
    /// `epoch`, `base_lrs` and `last_lrs` (comma-separated), and
    /// `schedule.{field}` for each of the schedule's settings.
    pub fn to_map(&self, prefix: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert(format!("{prefix}epoch"), self.epoch.to_string());
        out.insert(format!("{prefix}base_lrs"), join(&self.base_lrs));
        out.insert(format!("{prefix}last_lrs"), join(&self.last_lrs));
        for (name, value) in &self.schedule {
            out.insert(format!("{prefix}schedule.{name}"), value.clone());
        }
        out
    }

    /// Reads a state that [`to_map`](SchedulerState::to_map) wrote with the same
    /// `prefix`; keys without the prefix are ignored.
    ///
    /// # Errors
    /// [`Error::Format`] naming the key that is missing, unknown or unreadable.
    pub fn from_map(prefix: &str, map: &BTreeMap<String, String>) -> Result<Self> {
        let bad = |msg: String| Error::Format(format!("scheduler state: {msg}"));
        let mut fields = Fields::new();
        let mut schedule = BTreeMap::new();
        for (key, value) in map {
            let Some(rest) = key.strip_prefix(prefix) else {
                continue;
            };
            match rest.strip_prefix("schedule.") {
                Some(name) => {
                    schedule.insert(name.to_owned(), value.clone());
                }
                None => fields.put(rest, value),
            }
        }
        let mut take = |name: &str| {
            fields
                .take_str(name)
                .map_err(|_| bad(format!("no {prefix}{name} entry")))
        };
        let epoch = take("epoch")?;
        let (base, last) = (take("base_lrs")?, take("last_lrs")?);
        if let Some(extra) = fields.names().next() {
            return Err(bad(format!("unknown key {prefix}{extra}")));
        }
        Ok(SchedulerState {
            epoch: epoch
                .parse()
                .map_err(|_| bad(format!("{prefix}epoch is {epoch:?}, not a count")))?,
            base_lrs: split("base_lrs", &base).map_err(bad)?,
            last_lrs: split("last_lrs", &last).map_err(bad)?,
            schedule,
        })
    }
}

/// `1,2,3`: values joined by commas.
fn join<V: fmt::Display>(values: &[V]) -> String {
    values
        .iter()
        .map(V::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads what [`join`] wrote (an empty text is an empty list).
fn split<V: num_traits::Num>(what: &str, text: &str) -> std::result::Result<Vec<V>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|v| {
            V::from_str_radix(v, 10)
                .map_err(|_| format!("{what}: {v:?} in {text:?} is not a number"))
        })
        .collect()
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
