//! Optimizers that update parameters in place, and learning-rate schedules.
//!
//! An optimizer owns handles to the parameters it trains (clones of the leaves
//! made with [`requires_grad`](crate::Tensor::requires_grad)) and one state per
//! parameter. Each [`step`](Optimizer::step) reads the gradients that
//! [`backward`](crate::Tensor::backward) returned and writes the new values into
//! the parameters' buffers, in place: every clone of a parameter's handle (the
//! model's own, for instance) sees the update, and no tensor is allocated.
//!
//! | optimizer | config | state per parameter | PyTorch |
//! |---|---|---|---|
//! | [`Sgd`] | [`SgdConfig`] `{ lr, momentum, dampening, nesterov, weight_decay }` | [`SgdState`] `{ step, momentum_buffer }` | `torch.optim.SGD` |
//! | [`Adam`] | [`AdamConfig`] `{ lr, beta1, beta2, eps, weight_decay }` | [`AdamState`] `{ step, exp_avg, exp_avg_sq }` | `torch.optim.Adam` |
//! | [`AdamW`] | [`AdamWConfig`] `{ lr, beta1, beta2, eps, weight_decay }` | [`AdamState`] | `torch.optim.AdamW` |
//! | [`RmsProp`] | [`RmsPropConfig`] `{ lr, alpha, eps, weight_decay, momentum, centered }` | [`RmsPropState`] `{ step, square_avg, momentum_buffer, grad_avg }` | `torch.optim.RMSprop` |
//! | [`Adagrad`] | [`AdagradConfig`] `{ lr, lr_decay, weight_decay, eps, initial_accumulator_value }` | [`AdagradState`] `{ step, sum }` | `torch.optim.Adagrad` |
//!
//! Each optimizer is the one generic type [`Optim`] with its algorithm's
//! [`UpdateRule`] (`type Adam<T = f32> = Optim<T, AdamRule>`), so they all have the
//! same constructors and accessors: [`new`](Optim::new),
//! [`new_named`](Optim::new_named), [`with_groups`](Optim::with_groups) (and their
//! `try_` twins), [`strict`](Optim::strict), [`config`](Optim::config),
//! [`groups`](Optim::groups), [`state`](Optim::state),
//! [`param_name`](Optim::param_name), and the [`Optimizer`] trait.
//!
//! The update rules are PyTorch's (the algorithm boxes of the `torch.optim`
//! documentation, without `maximize`, `amsgrad` or `foreach`), and each config's
//! [`Default`] holds PyTorch's default values. Step counts are kept per parameter:
//! a parameter that had no gradient is skipped, listed in the [`StepReport`], and
//! its state does not advance.
//!
//! Learning-rate schedules live in [`lr`].
//!
//! ```
//! use ferrograd::optim::{Adam, AdamConfig, Optimizer};
//! use ferrograd::Tensor;
//!
//! // fit y = 2x + 1
//! let x = Tensor::<f32>::from_vec(vec![0., 1., 2., 3.], &[4, 1])?;
//! let y = Tensor::<f32>::from_vec(vec![1., 3., 5., 7.], &[4, 1])?;
//! let w = Tensor::<f32>::zeros(&[1, 1]).requires_grad();
//! let b = Tensor::<f32>::zeros(&[1]).requires_grad();
//! let mut opt = Adam::new(vec![w.clone(), b.clone()], AdamConfig { lr: 0.1, ..Default::default() });
//! for _ in 0..500 {
//!     let loss = (x.matmul(&w) + &b - &y).square().mean();
//!     let report = opt.step(&loss.backward()?)?;  // w and b are updated in place
//!     assert!(report.skipped.is_empty());
//! }
//! assert!((w.item() - 2.0).abs() < 1e-2 && (b.item() - 1.0).abs() < 1e-2);
//! # Ok::<(), ferrograd::Error>(())
//! ```
//!
//! # Parameter groups
//!
//! As PyTorch's `param_groups`, an optimizer holds its parameters in groups, each
//! with its own full config (learning rate, weight decay, betas, momentum, …).
//! [`new`](Optim::new) makes one group; [`with_groups`](Optim::with_groups) takes
//! several [`ParamGroup`]s, and [`add_param_group`](Optim::add_param_group) adds one
//! later. A parameter belongs to one group only. [`Optimizer::lr`] reads the first
//! group's learning rate and [`Optimizer::set_lr`] sets every group's;
//! [`Optimizer::group_lrs`], [`Optimizer::set_group_lrs`] and
//! [`Optim::set_group_lr`] work group by group, and a
//! [`Scheduler`](lr::Scheduler) scales each group from its own base rate.
//!
//! Weight decay on the matrices only, in one line:
//!
//! ```
//! # use ferrograd::nn::{Module, ModuleParams};
//! # use ferrograd::Tensor;
//! # struct Net { w: Tensor, b: Tensor }
//! # impl Module for Net {
//! #     fn forward(&self, x: &Tensor) -> Tensor { x.matmul(&self.w) + &self.b }
//! # }
//! # impl ModuleParams for Net {
//! #     fn named_parameters(&self) -> Vec<(String, Tensor)> {
//! #         vec![("fc.weight".into(), self.w.clone()), ("fc.bias".into(), self.b.clone())]
//! #     }
//! # }
//! # let model = Net { w: Tensor::zeros(&[3, 2]).requires_grad(), b: Tensor::zeros(&[2]).requires_grad() };
//! use ferrograd::optim::{AdamW, AdamWConfig, ParamGroup};
//!
//! let (decay, no_decay): (Vec<_>, Vec<_>) =
//!     model.named_parameters().into_iter().partition(|(_, p)| p.ndim() >= 2);
//! let cfg = AdamWConfig { lr: 3e-4, weight_decay: 0.1, ..Default::default() };
//! let opt = AdamW::with_groups(vec![
//!     ParamGroup::named(decay, cfg),
//!     ParamGroup::named(no_decay, AdamWConfig { weight_decay: 0.0, ..cfg }),
//! ]);
//! assert_eq!(opt.groups().len(), 2);
//! ```
//!
//! # Resuming training: state dicts
//!
//! [`Optimizer::state_dict`] returns an [`OptimizerState`]: the optimizer's kind,
//! each group's hyper-parameters, and each parameter's step count and state
//! buffers, keyed by the parameter's name when the optimizer was built with names
//! (else by position). [`Optimizer::load_state_dict`] restores it into an optimizer
//! built over the same parameters, after checking the kind, the names, the groups
//! and the shapes. [`OptimizerState::to_maps`] and [`OptimizerState::from_maps`]
//! turn it into the tensors and strings of a safetensors file, so one
//! [`io::save_safetensors_with_metadata`](crate::io::save_safetensors_with_metadata)
//! checkpoint can hold the model, the optimizer and the
//! [scheduler](lr::Scheduler::state_dict). Training resumed from a state dict
//! follows the same path, bit for bit, as training that never stopped.
//!
//! ```
//! use ferrograd::optim::{Adam, AdamConfig, Optimizer, OptimizerState};
//! use ferrograd::Tensor;
//!
//! let path = std::env::temp_dir().join(format!("ferrograd-optim-{}.safetensors", std::process::id()));
//! let w = Tensor::<f32>::from_vec(vec![1.0, -2.0], &[2])?.requires_grad();
//! let mut opt = Adam::new_named(vec![("w".into(), w.clone())], AdamConfig::default());
//! opt.step(&w.square().sum().backward()?)?;
//!
//! // save the weights and the optimizer in one file
//! let (tensors, meta) = opt.state_dict().to_maps("optim.");
//! let mut all: Vec<(String, Tensor<f32>)> = vec![("w".into(), w.detach())];
//! all.extend(tensors);
//! ferrograd::io::save_safetensors_with_metadata(&path, &all, &meta)?;
//!
//! // later: a fresh optimizer over the same (named) parameters
//! let mut resumed = Adam::new_named(vec![("w".into(), w.clone())], AdamConfig::default());
//! let state = OptimizerState::from_maps(
//!     "optim.",
//!     &ferrograd::io::load_safetensors(&path)?,
//!     &ferrograd::io::load_safetensors_metadata(&path)?,
//! )?;
//! resumed.load_state_dict(&state)?;
//! assert_eq!(resumed.state(0), opt.state(0));
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), ferrograd::Error>(())
//! ```
//!
//! # Other algorithms
//!
//! An [`UpdateRule`] is all a new algorithm needs: its config (with
//! [`Hyperparams`]), its per-parameter state (with [`ParamState`]) and its update;
//! [`Optim`] brings groups, the checks, the step loop and state dicts.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use crate::autograd::Gradients;
use crate::element::Element;
use crate::error::Result;
use crate::tensor::Tensor;

mod adagrad;
mod adam;
pub mod lr;
mod optimizer;
mod rmsprop;
mod sgd;
mod state;

pub use adagrad::{Adagrad, AdagradConfig, AdagradRule, AdagradState};
pub use adam::{Adam, AdamConfig, AdamRule, AdamState, AdamW, AdamWConfig, AdamWRule};
pub use optimizer::{Hyperparams, Optim, ParamGroup, ParamState, UpdateRule};
pub use rmsprop::{RmsProp, RmsPropConfig, RmsPropRule, RmsPropState};
pub use sgd::{Sgd, SgdConfig, SgdRule, SgdState};
pub use state::{Fields, OptimizerState, ParamEntry};

/// An optimizer: updates the parameters it owns, in place, from a set of gradients.
///
/// The trait is object safe, so optimizers can be chosen at run time
/// (`Box<dyn Optimizer<T>>`, which implements the trait too). Every optimizer of
/// this crate is an [`Optim`]; to add an algorithm, write an [`UpdateRule`] rather
/// than implementing this trait.
///
/// ```
/// use ferrograd::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
/// use ferrograd::Tensor;
///
/// let w = Tensor::<f64>::from_vec(vec![1.0, -1.0], &[2])?.requires_grad();
/// let mut opts: Vec<Box<dyn Optimizer<f64>>> = vec![
///     Box::new(Sgd::new(vec![w.clone()], SgdConfig { lr: 0.1, ..Default::default() })),
///     Box::new(Adam::new(vec![w.clone()], AdamConfig::default())),
/// ];
/// for opt in &mut opts {
///     let grads = w.square().sum().backward()?;   // gradient 2w
///     opt.step(&grads)?;
///     opt.set_lr(opt.lr() / 2.0);
/// }
/// assert!(w.to_vec()[0] < 1.0);
/// assert_eq!(opts[0].lr(), 0.05);
/// assert_eq!(opts[1].parameters()[0].id(), w.id());
/// assert_eq!(opts[1].state_dict().kind, "Adam");
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub trait Optimizer<T: Element = f32> {
    /// Updates every parameter that has a gradient in `grads`, in place (every
    /// clone of its handle sees the new values), and advances its state.
    ///
    /// A parameter without a gradient is left alone, its state (step count
    /// included) does not advance, and it is listed in
    /// [`StepReport::skipped`]; in strict mode it is an error instead.
    ///
    /// # Errors
    /// Nothing is updated when an error is returned:
    /// [`Error::MissingGradient`](crate::Error::MissingGradient) (strict mode only)
    /// naming every parameter without a gradient;
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when a gradient's
    /// shape differs from its parameter's, naming the parameter and both shapes.
    fn step(&mut self, grads: &Gradients<T>) -> Result<StepReport>;

    /// The current learning rate (of the first parameter group, when there are
    /// several).
    fn lr(&self) -> T;

    /// Sets the learning rate used by the next steps, in every parameter group.
    ///
    /// # Panics
    /// The optimizers of this crate panic when `lr` is negative or NaN.
    fn set_lr(&mut self, lr: T);

    /// The parameters, in the order they were given, group after group (indices
    /// in [`StepReport::skipped`] and `state(i)` refer to this order).
    fn parameters(&self) -> &[Tensor<T>];

    /// The learning rate of each parameter group, in order. By default, the one
    /// rate of [`lr`](Optimizer::lr).
    fn group_lrs(&self) -> Vec<T> {
        vec![self.lr()]
    }

    /// Sets the learning rate of each parameter group, in order (schedulers call
    /// this). By default, for an optimizer with one group: [`set_lr`](Optimizer::set_lr).
    ///
    /// # Panics
    /// When `lrs` does not have one rate per group, or (this crate's optimizers)
    /// a rate is negative or NaN.
    #[track_caller]
    fn set_group_lrs(&mut self, lrs: &[T]) {
        assert!(
            lrs.len() == 1,
            "set_group_lrs: {} learning rates for an optimizer with one parameter group",
            lrs.len()
        );
        self.set_lr(lrs[0]);
    }

    /// Everything needed to resume training: each group's hyper-parameters and each
    /// parameter's state (PyTorch's `state_dict()`). See [`OptimizerState`].
    fn state_dict(&self) -> OptimizerState<T>;

    /// Restores a state from [`state_dict`](Optimizer::state_dict) (of an optimizer
    /// of the same kind over the same parameters): the groups' hyper-parameters
    /// (learning rates included) and every parameter's state.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument), changing nothing,
    /// when the state is of another kind of optimizer, has another number of
    /// groups, names a parameter this optimizer does not have (or puts it in
    /// another group), lacks one it has, holds a buffer of the wrong shape or an
    /// unknown one, or holds invalid hyper-parameters.
    fn load_state_dict(&mut self, state: &OptimizerState<T>) -> Result<()>;
}

impl<T: Element, O: Optimizer<T> + ?Sized> Optimizer<T> for Box<O> {
    fn step(&mut self, grads: &Gradients<T>) -> Result<StepReport> {
        (**self).step(grads)
    }

    fn lr(&self) -> T {
        (**self).lr()
    }

    #[track_caller]
    fn set_lr(&mut self, lr: T) {
        (**self).set_lr(lr)
    }

    fn parameters(&self) -> &[Tensor<T>] {
        (**self).parameters()
    }

    fn group_lrs(&self) -> Vec<T> {
        (**self).group_lrs()
    }

    #[track_caller]
    fn set_group_lrs(&mut self, lrs: &[T]) {
        (**self).set_group_lrs(lrs)
    }

    fn state_dict(&self) -> OptimizerState<T> {
        (**self).state_dict()
    }

    fn load_state_dict(&mut self, state: &OptimizerState<T>) -> Result<()> {
        (**self).load_state_dict(state)
    }
}

/// What one [`Optimizer::step`] did: how many parameters it updated, and which
/// ones it skipped for want of a gradient.
///
/// ```
/// use ferrograd::optim::{Optimizer, Sgd, SgdConfig};
/// use ferrograd::Tensor;
///
/// let used = Tensor::<f32>::ones(&[2]).requires_grad();
/// let unused = Tensor::<f32>::ones(&[3]).requires_grad();
/// let mut opt = Sgd::new_named(
///     vec![("used".into(), used.clone()), ("unused".into(), unused.clone())],
///     SgdConfig::default(),
/// );
/// let report = opt.step(&used.sum().backward()?)?;
/// assert_eq!(report.updated, 1);
/// assert_eq!(report.skipped.len(), 1);
/// assert_eq!(report.skipped[0].index, 1);
/// assert_eq!(report.skipped[0].to_string(), "unused");
/// assert_eq!(report.to_string(), "updated 1 of 2 parameters; no gradient for: unused");
/// # Ok::<(), ferrograd::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    /// How many parameters were updated.
    pub updated: usize,
    /// The parameters that had no gradient and were left unchanged, in order.
    pub skipped: Vec<SkippedParam>,
}

impl StepReport {
    /// True when every parameter was updated.
    pub fn all_updated(&self) -> bool {
        self.skipped.is_empty()
    }
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.updated + self.skipped.len();
        write!(f, "updated {} of {total} parameters", self.updated)?;
        for (k, s) in self.skipped.iter().enumerate() {
            let sep = if k == 0 { "; no gradient for: " } else { ", " };
            write!(f, "{sep}{s}")?;
        }
        Ok(())
    }
}

/// A parameter that a step left unchanged because it had no gradient.
///
/// Its `Display` is the parameter's name when the optimizer was built from named
/// parameters, else its position and shape (`#2 (shape [4, 2])`), the same text
/// as in [`Error::MissingGradient`](crate::Error::MissingGradient).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedParam {
    /// The parameter's position in [`Optimizer::parameters`].
    pub index: usize,
    /// Its name, when the optimizer was built with `new_named`.
    pub name: Option<String>,
    /// Its shape.
    pub shape: Vec<usize>,
}

impl fmt::Display for SkippedParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => f.write_str(name),
            None => write!(f, "#{} (shape {:?})", self.index, self.shape),
        }
    }
}

/// `Err` unless `value >= 0` (NaN fails): PyTorch's `0.0 <= value` checks.
pub(crate) fn check_nonneg<T: Element>(what: &str, value: T) -> std::result::Result<(), String> {
    if value >= T::zero() {
        Ok(())
    } else {
        Err(format!("invalid {what} {value}: expected a value >= 0"))
    }
}

/// `Err` unless `0 <= value < 1`.
pub(crate) fn check_unit<T: Element>(what: &str, value: T) -> std::result::Result<(), String> {
    if value >= T::zero() && value < T::one() {
        Ok(())
    } else {
        Err(format!("invalid {what} {value}: expected 0 <= {what} < 1"))
    }
}

/// `"{kind}::{method}"` (`"Adam::step"`) as the `&'static str` that
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) wants: made once per pair and kept for the program's
/// life (a few dozen bytes per optimizer kind). Only error paths call it.
pub(crate) fn op_name(kind: &'static str, method: &'static str) -> &'static str {
    type Names = BTreeMap<(&'static str, &'static str), &'static str>;
    static NAMES: Mutex<Names> = Mutex::new(BTreeMap::new());
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    names
        .entry((kind, method))
        .or_insert_with(|| Box::leak(format!("{kind}::{method}").into_boxed_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_mismatch_is_an_error_naming_both_shapes_and_updates_nothing() {
        // Gradients built by backward always have their leaf's shape; a hand-made set
        // can only disagree through the crate-internal constructor.
        let a = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2])
            .unwrap()
            .requires_grad();
        let w = Tensor::<f64>::zeros(&[2, 2]).requires_grad();
        let grads = Gradients::from_pairs(vec![
            (a.clone(), Tensor::ones(&[2])),
            (w.clone(), Tensor::ones(&[3])),
        ]);
        let mut opt = Sgd::new_named(
            vec![("a".into(), a.clone()), ("fc.weight".into(), w.clone())],
            SgdConfig {
                lr: 0.5,
                ..Default::default()
            },
        );
        let err = opt.step(&grads).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Sgd::step: the gradient of parameter fc.weight has shape [3], but the \
             parameter has shape [2, 2]"
        );
        assert_eq!(a.to_vec(), vec![1.0, 2.0], "nothing is updated on error");
        assert!(opt.state(0).is_none());
    }

    #[test]
    fn a_gradient_sharing_the_parameter_buffer_does_not_deadlock() {
        let w = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2])
            .unwrap()
            .requires_grad();
        let grads = Gradients::from_pairs(vec![(w.clone(), w.detach())]);
        let mut opt = Sgd::new(
            vec![w.clone()],
            SgdConfig {
                lr: 0.5,
                ..Default::default()
            },
        );
        opt.step(&grads).unwrap();
        assert_eq!(w.to_vec(), vec![0.5, 1.0]);
    }

    #[test]
    fn strided_parameters_are_updated_through_their_layout() {
        // a leaf over a transposed layout: [[1, 3], [2, 4]] viewing buffer [1, 2, 3, 4]
        let base = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        let wt = base.t().requires_grad();
        let mut grads = Gradients::new();
        grads.insert(
            &wt,
            Tensor::from_vec(vec![10.0, 30.0, 20.0, 40.0], &[2, 2]).unwrap(),
        );
        let mut opt = Sgd::new(
            vec![wt.clone()],
            SgdConfig {
                lr: 0.1,
                ..Default::default()
            },
        );
        opt.step(&grads).unwrap();
        assert_eq!(base.to_vec(), vec![0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn parameters_are_checked_at_construction() {
        let w = Tensor::<f32>::ones(&[2]).requires_grad();
        let err = Adam::try_new(vec![w.clone(), w.clone()], AdamConfig::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("parameter #1 (shape [2]) is the same tensor as parameter #0"),
            "{err}"
        );
        let err = Adam::try_new(vec![&w * 2.0], AdamConfig::default()).unwrap_err();
        assert!(err.to_string().contains("is not a leaf"), "{err}");
        let bc = Tensor::<f32>::scalar(1.0)
            .broadcast_to(&[3])
            .requires_grad();
        let err = Sgd::try_new(vec![bc], SgdConfig::default()).unwrap_err();
        assert!(err.to_string().contains("broadcast view"), "{err}");
        // a size-1 axis with stride 0 is no aliasing
        let ok = Tensor::<f32>::scalar(1.0).unsqueeze(0).requires_grad();
        assert!(Sgd::try_new(vec![ok], SgdConfig::default()).is_ok());
    }

    #[test]
    fn optimizers_and_schedules_cross_threads() {
        fn assert_send_sync<X: Send + Sync>() {}
        assert_send_sync::<Sgd<f32>>();
        assert_send_sync::<Adam<f64>>();
        assert_send_sync::<AdamW<f32>>();
        assert_send_sync::<RmsProp<f32>>();
        assert_send_sync::<Adagrad<f32>>();
        assert_send_sync::<lr::SequentialLr<f32>>();
        assert_send_sync::<lr::Scheduler<f32, lr::SequentialLr<f32>>>();
    }

    #[test]
    fn report_display_lists_unnamed_parameters_by_position_and_shape() {
        let r = StepReport {
            updated: 1,
            skipped: vec![
                SkippedParam {
                    index: 1,
                    name: None,
                    shape: vec![4, 2],
                },
                SkippedParam {
                    index: 2,
                    name: Some("b".into()),
                    shape: vec![2],
                },
            ],
        };
        assert_eq!(
            r.to_string(),
            "updated 1 of 3 parameters; no gradient for: #1 (shape [4, 2]), b"
        );
        assert!(!r.all_updated());
    }
}
