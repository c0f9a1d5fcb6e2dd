//! Optimizers that update parameters in place, and learning-rate schedules.
//!
//! An optimizer owns handles to the parameters it trains (clones of the leaves
//! made with [`requires_grad`](crate::Tensor::requires_grad)) and one state per
//! parameter. Each [`step`](Optimizer::step) reads the gradients that
//! [`backward`](crate::Tensor::backward) returned and writes the new values into
//! the parameters' buffers, in place: every clone of a parameter's handle (the
//! model's own, for instance) sees the update, and no tensor is allocated.
//!
//! | optimizer | config | PyTorch |
//! |---|---|---|
//! | [`Sgd`] | [`SgdConfig`] `{ lr, momentum, dampening, nesterov, weight_decay }` | `torch.optim.SGD` |
//! | [`Adam`] | [`AdamConfig`] `{ lr, beta1, beta2, eps, weight_decay }` | `torch.optim.Adam` |
//! | [`AdamW`] | [`AdamWConfig`] `{ lr, beta1, beta2, eps, weight_decay }` | `torch.optim.AdamW` |
//! | [`RmsProp`] | [`RmsPropConfig`] `{ lr, alpha, eps, weight_decay, momentum, centered }` | `torch.optim.RMSprop` |
//! | [`Adagrad`] | [`AdagradConfig`] `{ lr, lr_decay, weight_decay, eps, initial_accumulator_value }` | `torch.optim.Adagrad` |
//!
//! The update rules are PyTorch's (the algorithm boxes of the `torch.optim`
//! documentation, without `maximize`, `amsgrad` or parameter groups), and each
//! config's [`Default`] holds PyTorch's default values. Step counts are kept per
//! parameter: a parameter that had no gradient is skipped, listed in the
//! [`StepReport`], and its state does not advance.
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

use std::collections::HashMap;
use std::fmt;

use crate::autograd::Gradients;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

mod adagrad;
mod adam;
pub mod lr;
mod rmsprop;
mod sgd;

pub use adagrad::{Adagrad, AdagradConfig, AdagradState};
pub use adam::{Adam, AdamConfig, AdamState, AdamW, AdamWConfig};
pub use rmsprop::{RmsProp, RmsPropConfig, RmsPropState};
pub use sgd::{Sgd, SgdConfig, SgdState};

/// An optimizer: updates the parameters it owns, in place, from a set of gradients.
///
/// The trait is object safe, so optimizers can be chosen at run time
/// (`Box<dyn Optimizer<T>>`, which implements the trait too).
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
    /// [`Error::MissingGradient`] (strict mode only) naming the first parameter
    /// without a gradient; [`Error::InvalidArgument`] when a gradient's shape
    /// differs from its parameter's, naming the parameter and both shapes.
    fn step(&mut self, grads: &Gradients<T>) -> Result<StepReport>;

    /// The current learning rate.
    fn lr(&self) -> T;

    /// Sets the learning rate used by the next steps (schedulers call this).
    ///
    /// # Panics
    /// The optimizers of this crate panic when `lr` is negative or NaN.
    fn set_lr(&mut self, lr: T);

    /// The parameters, in the order they were given (indices in
    /// [`StepReport::skipped`] and `state(i)` refer to this order).
    fn parameters(&self) -> &[Tensor<T>];
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
/// as in [`Error::MissingGradient`].
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

/// The parameters an optimizer owns, their names, and the strict flag: the part
/// every optimizer shares, with the one step loop they all run.
pub(crate) struct ParamSet<T: Element> {
    tensors: Vec<Tensor<T>>,
    names: Option<Vec<String>>,
    strict: bool,
}

impl<T: Element> ParamSet<T> {
    /// Checks that each parameter can be updated in place: a leaf (the gradients
    /// `backward` returns are keyed by leaves), not a broadcast view (its elements
    /// would alias), and not given twice (it would be updated twice per step).
    pub(crate) fn new(
        op: &'static str,
        tensors: Vec<Tensor<T>>,
        names: Option<Vec<String>>,
    ) -> Result<Self> {
        let set = ParamSet {
            tensors,
            names,
            strict: false,
        };
        let mut seen = HashMap::with_capacity(set.tensors.len());
        for (i, p) in set.tensors.iter().enumerate() {
            if let Some(made_by) = p.op_name() {
                return Err(Error::invalid(
                    op,
                    format!(
                        "parameter {} is not a leaf (it is the output of `{made_by}`); \
                         optimize the leaf made with requires_grad() instead",
                        set.describe(i)
                    ),
                ));
            }
            if p.shape()
                .iter()
                .zip(p.strides())
                .any(|(&n, &s)| n > 1 && s == 0)
            {
                return Err(Error::invalid(
                    op,
                    format!(
                        "parameter {} is a broadcast view (strides {:?}): its elements \
                         share memory and cannot be updated one by one",
                        set.describe(i),
                        p.strides()
                    ),
                ));
            }
            if let Some(first) = seen.insert(p.id(), i) {
                return Err(Error::invalid(
                    op,
                    format!(
                        "parameter {} is the same tensor as parameter {}; each \
                         parameter may be given once (it would be updated twice per step)",
                        set.describe(i),
                        set.describe(first)
                    ),
                ));
            }
        }
        Ok(set)
    }

    /// Splits `(name, tensor)` pairs, as `Module::named_parameters` returns them.
    pub(crate) fn new_named(op: &'static str, named: Vec<(String, Tensor<T>)>) -> Result<Self> {
        let (names, tensors) = named.into_iter().unzip();
        Self::new(op, tensors, Some(names))
    }

    pub(crate) fn tensors(&self) -> &[Tensor<T>] {
        &self.tensors
    }

    pub(crate) fn len(&self) -> usize {
        self.tensors.len()
    }

    pub(crate) fn name(&self, i: usize) -> Option<&str> {
        self.names.as_ref()?.get(i).map(String::as_str)
    }

    pub(crate) fn strict(&self) -> bool {
        self.strict
    }

    pub(crate) fn set_strict(&mut self, on: bool) {
        self.strict = on;
    }

    fn skipped(&self, i: usize) -> SkippedParam {
        SkippedParam {
            index: i,
            name: self.name(i).map(str::to_owned),
            shape: self.tensors[i].shape().to_vec(),
        }
    }

    /// The parameter's name, or `#i (shape [..])` when unnamed.
    pub(crate) fn describe(&self, i: usize) -> String {
        self.skipped(i).to_string()
    }

    /// The step loop all optimizers share. First every parameter's gradient is
    /// looked up and checked (so that an error leaves every parameter as it was);
    /// then each parameter that has one is updated in one pass under its buffer's
    /// write lock: `update(state, param, grad)` gets the elements as row-major
    /// slices, and `init(numel)` makes a parameter's state on its first update.
    pub(crate) fn step<S>(
        &self,
        op: &'static str,
        states: &mut [Option<S>],
        grads: &Gradients<T>,
        mut init: impl FnMut(usize) -> S,
        mut update: impl FnMut(&mut S, &mut [T], &[T]),
    ) -> Result<StepReport> {
        debug_assert_eq!(states.len(), self.tensors.len());
        let mut found = Vec::with_capacity(self.tensors.len());
        let mut report = StepReport::default();
        for (i, p) in self.tensors.iter().enumerate() {
            let g = grads.get(p);
            match g {
                None if self.strict => {
                    return Err(Error::MissingGradient {
                        param: self.describe(i),
                    })
                }
                None => report.skipped.push(self.skipped(i)),
                Some(g) if g.shape() != p.shape() => {
                    return Err(Error::invalid(
                        op,
                        format!(
                            "the gradient of parameter {} has shape {:?}, but the \
                             parameter has shape {:?}",
                            self.describe(i),
                            g.shape(),
                            p.shape()
                        ),
                    ))
                }
                Some(_) => {}
            }
            found.push(g);
        }
        for ((p, g), state) in self.tensors.iter().zip(found).zip(states.iter_mut()) {
            let Some(g) = g else { continue };
            let state = state.get_or_insert_with(|| init(p.numel()));
            if g.shares_storage(p) {
                // Never the case for gradients from backward; reading first keeps a
                // hand-built one from deadlocking on the parameter's write lock.
                let g = g.to_vec();
                p.update_with(|p| update(state, p, &g));
            } else {
                g.with_contiguous(|g| p.update_with(|p| update(state, p, g)));
            }
            report.updated += 1;
        }
        Ok(report)
    }
}

/// `Err` unless `value >= 0` (NaN fails): PyTorch's `0.0 <= value` checks.
pub(crate) fn check_nonneg<T: Element>(op: &'static str, what: &str, value: T) -> Result<()> {
    if value >= T::zero() {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("invalid {what} {value}: expected a value >= 0"),
        ))
    }
}

/// `Err` unless `0 <= value < 1`.
pub(crate) fn check_unit<T: Element>(op: &'static str, what: &str, value: T) -> Result<()> {
    if value >= T::zero() && value < T::one() {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("invalid {what} {value}: expected 0 <= {what} < 1"),
        ))
    }
}

/// The constructors and accessors every optimizer has, and its `Optimizer` impl.
///
/// The optimizer type must have the fields `params: ParamSet<T>`,
/// `config: $Config<T>` and `state: Vec<Option<$State<T>>>`, and the private
/// associated functions `validate(&$Config<T>) -> Result<()>`,
/// `init_state(&$Config<T>, numel) -> $State<T>` and
/// `update(&$Config<T>, &mut $State<T>, param: &mut [T], grad: &[T])`.
macro_rules! optimizer_common {
    ($Opt:ident, $Config:ident, $State:ident, $config_example:literal) => {
        impl<T: Element> $Opt<T> {
            #[doc = concat!(
                "Builds the optimizer over `params`, after checking `config` as PyTorch does.\n\n",
                "Each parameter must be a leaf, given once, and not a broadcast view. ",
                "A parameter that does not require a gradient is allowed (as in PyTorch); ",
                "it never gets one, so each step lists it as skipped.\n\n",
                "# Errors\n",
                "[`Error::InvalidArgument`](crate::Error::InvalidArgument) naming the first ",
                "invalid config value or parameter.\n\n",
                "```\n",
                "use ferrograd::optim::{", stringify!($Opt), ", ", stringify!($Config), "};\n",
                "let w = ferrograd::Tensor::<f32>::zeros(&[2]).requires_grad();\n",
                "let opt = ", stringify!($Opt), "::try_new(vec![w.clone()], ",
                $config_example, ")?;\n",
                "let bad = ", stringify!($Opt), "::try_new(vec![w], ", stringify!($Config),
                " { lr: -1.0, ..Default::default() });\n",
                "assert!(bad.unwrap_err().to_string().contains(\"learning rate\"));\n",
                "# Ok::<(), ferrograd::Error>(())\n",
                "```"
            )]
            pub fn try_new(params: Vec<Tensor<T>>, config: $Config<T>) -> Result<Self> {
                Self::validate(&config)?;
                let params = ParamSet::new(concat!(stringify!($Opt), "::new"), params, None)?;
                Ok(Self::from_parts(params, config))
            }

            #[doc = concat!(
                "Builds the optimizer over `params` (see [`try_new`](", stringify!($Opt),
                "::try_new)).\n\n",
                "# Panics\n",
                "Panics with the error of [`try_new`](", stringify!($Opt), "::try_new) ",
                "when `config` or a parameter is invalid.\n\n",
                "```\n",
                "use ferrograd::optim::{", stringify!($Opt), ", ", stringify!($Config), ", Optimizer};\n",
                "let w = ferrograd::Tensor::<f32>::zeros(&[2]).requires_grad();\n",
                "let opt = ", stringify!($Opt), "::new(vec![w.clone()], ", $config_example, ");\n",
                "assert_eq!(opt.parameters()[0].id(), w.id());\n",
                "```"
            )]
            #[track_caller]
            pub fn new(params: Vec<Tensor<T>>, config: $Config<T>) -> Self {
                crate::error::or_panic(Self::try_new(params, config))
            }

            #[doc = concat!(
                "Builds the optimizer over named parameters, as `Module::named_parameters` ",
                "returns them; errors and skip reports then use the names.\n\n",
                "# Errors\n",
                "As [`try_new`](", stringify!($Opt), "::try_new).\n\n",
                "```\n",
                "use ferrograd::optim::{", stringify!($Opt), ", ", stringify!($Config), ", Optimizer};\n",
                "let w = ferrograd::Tensor::<f32>::zeros(&[2]).requires_grad();\n",
                "let b = ferrograd::Tensor::<f32>::zeros(&[1]).requires_grad();\n",
                "let mut opt = ", stringify!($Opt), "::try_new_named(\n",
                "    vec![(\"fc.weight\".to_string(), w.clone()), (\"fc.bias\".to_string(), b)],\n",
                "    ", $config_example, ",\n",
                ")?\n",
                ".strict(true);\n",
                "assert_eq!(opt.param_name(1), Some(\"fc.bias\"));\n",
                "let err = opt.step(&w.sum().backward()?).unwrap_err();  // b got no gradient\n",
                "assert!(err.to_string().contains(\"fc.bias\"));\n",
                "# Ok::<(), ferrograd::Error>(())\n",
                "```"
            )]
            pub fn try_new_named(
                params: Vec<(String, Tensor<T>)>,
                config: $Config<T>,
            ) -> Result<Self> {
                Self::validate(&config)?;
                let params = ParamSet::new_named(concat!(stringify!($Opt), "::new"), params)?;
                Ok(Self::from_parts(params, config))
            }

            #[doc = concat!(
                "Builds the optimizer over named parameters (see [`try_new_named`](",
                stringify!($Opt), "::try_new_named)).\n\n",
                "# Panics\n",
                "As [`new`](", stringify!($Opt), "::new)."
            )]
            #[track_caller]
            pub fn new_named(params: Vec<(String, Tensor<T>)>, config: $Config<T>) -> Self {
                crate::error::or_panic(Self::try_new_named(params, config))
            }

            fn from_parts(params: ParamSet<T>, config: $Config<T>) -> Self {
                let state = (0..params.len()).map(|_| None).collect();
                $Opt {
                    params,
                    config,
                    state,
                }
            }

            /// Strict mode (off by default): when on, a parameter without a gradient
            /// makes [`step`](Optimizer::step) return
            /// [`Error::MissingGradient`](crate::Error::MissingGradient) naming it,
            /// instead of skipping it.
            pub fn strict(mut self, on: bool) -> Self {
                self.params.set_strict(on);
                self
            }

            /// True in strict mode (see [`strict`](Self::strict)).
            pub fn is_strict(&self) -> bool {
                self.params.strict()
            }

            /// The configuration (the learning rate as last set by
            /// [`set_lr`](Optimizer::set_lr)).
            pub fn config(&self) -> &$Config<T> {
                &self.config
            }

            /// The state of parameter `index`: `None` until its first update (and
            /// for an index out of range).
            pub fn state(&self, index: usize) -> Option<&$State<T>> {
                self.state.get(index)?.as_ref()
            }

            /// The name of parameter `index`, when built with `new_named`.
            pub fn param_name(&self, index: usize) -> Option<&str> {
                self.params.name(index)
            }
        }

        impl<T: Element> Optimizer<T> for $Opt<T> {
            fn step(&mut self, grads: &Gradients<T>) -> Result<StepReport> {
                let config = &self.config;
                self.params.step(
                    concat!(stringify!($Opt), "::step"),
                    &mut self.state,
                    grads,
                    |numel| Self::init_state(config, numel),
                    |state, p, g| Self::update(config, state, p, g),
                )
            }

            fn lr(&self) -> T {
                self.config.lr
            }

            #[track_caller]
            fn set_lr(&mut self, lr: T) {
                crate::error::or_panic(crate::optim::check_nonneg(
                    concat!(stringify!($Opt), "::set_lr"),
                    "learning rate",
                    lr,
                ));
                self.config.lr = lr;
            }

            fn parameters(&self) -> &[Tensor<T>] {
                self.params.tensors()
            }
        }

        impl<T: Element> std::fmt::Debug for $Opt<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($Opt))
                    .field("config", &self.config)
                    .field("params", &self.params.len())
                    .field("strict", &self.params.strict())
                    .finish()
            }
        }
    };
}
pub(crate) use optimizer_common;

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
