//! [`Optim`]: the one optimizer type, generic over an [`UpdateRule`]; its
//! parameter groups, its step loop and its state dicts.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;

use crate::autograd::Gradients;
use crate::element::{mono, Element};
use crate::error::{or_panic, Error, Result};
use crate::tensor::Tensor;

use super::state::{Fields, OptimizerState, ParamEntry};
use super::{check_nonneg, op_name, Optimizer, SkippedParam, StepReport};

/// An optimization algorithm: what [`Optim`] needs to know to run it.
///
/// [`Optim<T, R>`](Optim) does everything the algorithms share (the parameters and
/// their groups, the checks, the step loop, learning rates, state dicts); the rule
/// is the algorithm itself, written once per optimizer as a unit struct:
/// [`SgdRule`](super::SgdRule), [`AdamRule`](super::AdamRule),
/// [`AdamWRule`](super::AdamWRule), [`RmsPropRule`](super::RmsPropRule),
/// [`AdagradRule`](super::AdagradRule). Each optimizer's name is an alias
/// (`type Adam<T = f32> = Optim<T, AdamRule>`).
///
/// # Contract
///
/// - [`validate`](UpdateRule::validate) accepts exactly the configs that
///   [`update`](UpdateRule::update) can run. It is called on every config an
///   optimizer receives: at construction, by
///   [`set_group_config`](Optim::set_group_config) and
///   [`add_param_group`](Optim::add_param_group), and on the hyper-parameters of a
///   [`load_state_dict`](Optimizer::load_state_dict). Learning rates set through
///   [`set_lr`](Optimizer::set_lr) are only checked to be `≥ 0`.
/// - [`init_state`](UpdateRule::init_state) makes a parameter's state just before
///   its first update; `update` then runs once per step in which the parameter has
///   a gradient, and must advance the state's [step
///   count](ParamState::step) by one.
/// - `update` gets the parameter's elements and its gradient's, row-major, of the
///   same length; the state's buffers hold one value per element. It must not
///   panic for a valid config.
/// - The config may change between two updates (learning-rate schedules, and
///   [`set_group_config`](Optim::set_group_config)); `update` reads it afresh each
///   time.
///
/// # Writing a rule
///
/// A rule for sign descent, `p ← p − lr·sign(g)`, with a step count and no buffer:
///
/// ```
/// use ferrograd::optim::{Fields, Hyperparams, Optim, Optimizer, ParamState, UpdateRule};
/// use ferrograd::{Element, Tensor};
/// use std::collections::BTreeMap;
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct SignConfig { lr: f32 }
///
/// impl Hyperparams<f32> for SignConfig {
///     fn lr(&self) -> f32 { self.lr }
///     fn set_lr(&mut self, lr: f32) { self.lr = lr }
///     fn write_fields(&self, out: &mut Fields) { out.put("lr", self.lr) }
///     fn read_fields(fields: &mut Fields) -> Result<Self, String> {
///         Ok(SignConfig { lr: fields.take_num("lr")? })
///     }
/// }
///
/// #[derive(Clone, Debug)]
/// struct SignState { step: usize }
///
/// impl ParamState<f32> for SignState {
///     fn step(&self) -> usize { self.step }
///     fn buffers(&self) -> Vec<(&'static str, &[f32])> { Vec::new() }
///     fn from_buffers(step: usize, _: &mut BTreeMap<String, Vec<f32>>) -> Result<Self, String> {
///         Ok(SignState { step })
///     }
/// }
///
/// struct SignRule;
///
/// impl UpdateRule<f32> for SignRule {
///     const NAME: &'static str = "SignSgd";
///     type Config = SignConfig;
///     type State = SignState;
///     fn validate(c: &SignConfig) -> Result<(), String> {
///         if c.lr >= 0.0 { Ok(()) } else { Err(format!("invalid learning rate {}", c.lr)) }
///     }
///     fn init_state(_: &SignConfig, _: &Tensor<f32>) -> SignState { SignState { step: 0 } }
///     fn update(c: &SignConfig, s: &mut SignState, p: &mut [f32], g: &[f32]) {
///         s.step += 1;
///         for (p, g) in p.iter_mut().zip(g) {
///             *p -= c.lr * g.signum();
///         }
///     }
/// }
///
/// type SignSgd = Optim<f32, SignRule>;
///
/// let w = Tensor::<f32>::from_vec(vec![1.0, -1.0], &[2])?.requires_grad();
/// let mut opt = SignSgd::new(vec![w.clone()], SignConfig { lr: 0.25 });
/// opt.step(&(&w * 3.0).sum().backward()?)?;        // gradient 3: both move by −0.25
/// assert_eq!(w.to_vec(), vec![0.75, -1.25]);
/// assert_eq!(opt.state(0).unwrap().step, 1);
/// assert_eq!(opt.state_dict().kind, "SignSgd");
/// let err = SignSgd::try_new(vec![w], SignConfig { lr: -1.0 }).unwrap_err();
/// assert_eq!(err.to_string(), "SignSgd::new: invalid learning rate -1");
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub trait UpdateRule<T: Element> {
    /// The optimizer's name: error messages start with it (`"Adam::step: …"`), and
    /// state dicts record it as their [`kind`](OptimizerState::kind).
    const NAME: &'static str;

    /// The settings of one parameter group (PyTorch's per-group hyper-parameters).
    type Config: Hyperparams<T>;

    /// What the rule keeps for one parameter between steps.
    type State: ParamState<T>;

    /// Checks a config as PyTorch's constructor does. `Err` holds a message naming
    /// the invalid value (`"invalid beta1 1.5: expected 0 <= beta1 < 1"`); the
    /// optimizer prefixes it with the method that got the config (`"Adam::new: "`).
    fn validate(config: &Self::Config) -> std::result::Result<(), String>;

    /// The state of `param` before its first update.
    fn init_state(config: &Self::Config, param: &Tensor<T>) -> Self::State;

    /// Updates one parameter in place from its gradient, and advances its state
    /// (step count included). `param` and `grad` are row-major and of equal length.
    fn update(config: &Self::Config, state: &mut Self::State, param: &mut [T], grad: &[T]);
}

/// A config of an [`UpdateRule`]: its learning rate, and its fields as text for
/// state dicts.
///
/// `read_fields(write_fields(c))` must give back `c` exactly; numbers written with
/// [`Fields::put`] read back exactly with [`Fields::take_num`].
pub trait Hyperparams<T: Element>: Clone + fmt::Debug {
    /// The learning rate.
    fn lr(&self) -> T;

    /// Sets the learning rate (already checked to be `≥ 0`).
    fn set_lr(&mut self, lr: T);

    /// Writes every field into `out`, by its name in the config struct.
    fn write_fields(&self, out: &mut Fields);

    /// Reads a config that [`write_fields`](Hyperparams::write_fields) wrote, taking
    /// each field it uses out of `fields` (a field left over is reported as unknown
    /// by the caller). `Err` names the field that is missing or unreadable.
    fn read_fields(fields: &mut Fields) -> std::result::Result<Self, String>;
}

/// The state an [`UpdateRule`] keeps for one parameter: a step count and buffers
/// of one value per element of the parameter.
pub trait ParamState<T: Element>: Clone + fmt::Debug {
    /// How many updates the parameter has had (at least 1 once it has a state).
    fn step(&self) -> usize;

    /// The buffers, by name (names contain no `.`), each row-major with one value
    /// per element of the parameter.
    fn buffers(&self) -> Vec<(&'static str, &[T])>;

    /// Rebuilds a state from its step count and the buffers that
    /// [`buffers`](ParamState::buffers) gave, taking out of `buffers` the ones it
    /// uses (a buffer left over is reported as unknown by the caller). The caller
    /// has checked that each buffer has one value per element. `Err` names a
    /// buffer that is required and missing.
    fn from_buffers(
        step: usize,
        buffers: &mut BTreeMap<String, Vec<T>>,
    ) -> std::result::Result<Self, String>;
}

/// Parameters that share one config: a parameter group, as PyTorch's
/// `param_groups`. Give several to [`Optim::with_groups`].
///
/// Either every group of an optimizer has names ([`ParamGroup::named`]) or none
/// ([`ParamGroup::new`]).
#[derive(Clone, Debug)]
pub struct ParamGroup<T: Element, C> {
    params: Vec<Tensor<T>>,
    names: Option<Vec<String>>,
    config: C,
}

impl<T: Element, C> ParamGroup<T, C> {
    /// A group of unnamed parameters.
    pub fn new(params: Vec<Tensor<T>>, config: C) -> Self {
        ParamGroup {
            params,
            names: None,
            config,
        }
    }

    /// A group of named parameters, as
    /// [`ModuleParams::named_parameters`](crate::nn::ModuleParams::named_parameters) returns them.
    pub fn named(params: Vec<(String, Tensor<T>)>, config: C) -> Self {
        let (names, params) = params.into_iter().unzip();
        ParamGroup {
            params,
            names: Some(names),
            config,
        }
    }

    /// The group's parameters.
    pub fn params(&self) -> &[Tensor<T>] {
        &self.params
    }

    /// Their names, when the group was made with [`named`](ParamGroup::named).
    pub fn names(&self) -> Option<&[String]> {
        self.names.as_deref()
    }

    /// The group's config.
    pub fn config(&self) -> &C {
        &self.config
    }
}

/// An optimizer: the parameters it trains, in groups that each have a config, and
/// one state per parameter, updated by the rule `R`.
///
/// Use it through its aliases, [`Sgd`](super::Sgd), [`Adam`](super::Adam),
/// [`AdamW`](super::AdamW), [`RmsProp`](super::RmsProp) and
/// [`Adagrad`](super::Adagrad), and through the [`Optimizer`] trait. Parameters
/// are numbered across groups in the order they were given: that order is
/// [`Optimizer::parameters`], and `state(i)` and [`SkippedParam::index`] use it.
///
/// ```
/// use ferrograd::optim::{Adam, AdamConfig, Optimizer};
/// use ferrograd::Tensor;
///
/// let w = Tensor::<f32>::zeros(&[2, 2]).requires_grad();
/// let b = Tensor::<f32>::zeros(&[2]).requires_grad();
/// let mut opt = Adam::new(vec![w.clone(), b.clone()], AdamConfig { lr: 1e-2, ..Default::default() });
/// let report = opt.step(&w.sum().backward()?)?;   // b had no gradient: skipped
/// assert_eq!(report.updated, 1);
/// assert_eq!((opt.state(0).unwrap().step, opt.state(1).is_none()), (1, true));
/// # Ok::<(), ferrograd::Error>(())
/// ```
pub struct Optim<T: Element, R: UpdateRule<T>> {
    groups: Vec<ParamGroup<T, R::Config>>,
    /// Every group's parameters, in order (what `parameters()` returns).
    params: Vec<Tensor<T>>,
    /// Their names, when the groups are named.
    names: Option<Vec<String>>,
    /// One per parameter: `None` until its first update.
    state: Vec<Option<R::State>>,
    strict: bool,
    rule: PhantomData<fn() -> R>,
}

impl<T: Element, R: UpdateRule<T>> Optim<T, R> {
    /// Builds the optimizer over `params`, one group with `config`, after checking
    /// the config as PyTorch does.
    ///
    /// Each parameter must be a leaf, given once, and not a broadcast view. A
    /// parameter that does not require a gradient is allowed (as in PyTorch); it
    /// never gets one, so each step lists it as skipped.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the first invalid config value or
    /// parameter.
    ///
    /// ```
    /// use ferrograd::optim::{Sgd, SgdConfig};
    /// let w = ferrograd::Tensor::<f32>::zeros(&[2]).requires_grad();
    /// let opt = Sgd::try_new(vec![w.clone()], SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() })?;
    /// let bad = Sgd::try_new(vec![w], SgdConfig { lr: -1.0, ..Default::default() });
    /// assert!(bad.unwrap_err().to_string().contains("learning rate"));
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn try_new(params: Vec<Tensor<T>>, config: R::Config) -> Result<Self> {
        Self::build("new", vec![ParamGroup::new(params, config)], false)
    }

    /// Builds the optimizer over `params` (see [`try_new`](Optim::try_new)).
    ///
    /// # Panics
    /// With the error of [`try_new`](Optim::try_new) when `config` or a parameter is
    /// invalid.
    ///
    /// ```
    /// use ferrograd::optim::{Adam, AdamConfig, Optimizer};
    /// let w = ferrograd::Tensor::<f32>::zeros(&[2]).requires_grad();
    /// let opt = Adam::new(vec![w.clone()], AdamConfig { lr: 1e-3, ..Default::default() });
    /// assert_eq!(opt.parameters()[0].id(), w.id());
    /// ```
    #[track_caller]
    pub fn new(params: Vec<Tensor<T>>, config: R::Config) -> Self {
        or_panic(Self::try_new(params, config))
    }

    /// Builds the optimizer over named parameters, as
    /// [`ModuleParams::named_parameters`](crate::nn::ModuleParams::named_parameters) returns
    /// them; errors, skip reports and [state dicts](Optimizer::state_dict) then use
    /// the names.
    ///
    /// # Errors
    /// As [`try_new`](Optim::try_new); also when two parameters have the same name.
    ///
    /// ```
    /// use ferrograd::optim::{RmsProp, RmsPropConfig, Optimizer};
    /// let w = ferrograd::Tensor::<f32>::zeros(&[2]).requires_grad();
    /// let b = ferrograd::Tensor::<f32>::zeros(&[1]).requires_grad();
    /// let mut opt = RmsProp::try_new_named(
    ///     vec![("fc.weight".to_string(), w.clone()), ("fc.bias".to_string(), b)],
    ///     RmsPropConfig { centered: true, ..Default::default() },
    /// )?
    /// .strict(true);
    /// assert_eq!(opt.param_name(1), Some("fc.bias"));
    /// let err = opt.step(&w.sum().backward()?).unwrap_err();  // b got no gradient
    /// assert!(err.to_string().contains("fc.bias"));
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn try_new_named(params: Vec<(String, Tensor<T>)>, config: R::Config) -> Result<Self> {
        Self::build("new", vec![ParamGroup::named(params, config)], false)
    }

    /// Builds the optimizer over named parameters (see
    /// [`try_new_named`](Optim::try_new_named)).
    ///
    /// # Panics
    /// As [`new`](Optim::new).
    #[track_caller]
    pub fn new_named(params: Vec<(String, Tensor<T>)>, config: R::Config) -> Self {
        or_panic(Self::try_new_named(params, config))
    }

    /// Builds the optimizer over several parameter groups, each with its own
    /// config (PyTorch's `param_groups`).
    ///
    /// Every group's config is checked; a parameter may belong to one group only;
    /// either every group is [named](ParamGroup::named) or none is. An empty group
    /// is allowed, an empty list of groups is not.
    ///
    /// The everyday use: weight decay on the matrices only, not on biases and
    /// norm scales.
    ///
    /// ```
    /// # use ferrograd::nn::{Module, ModuleParams};
    /// # use ferrograd::Tensor;
    /// # struct Net { w: Tensor, b: Tensor }
    /// # impl Module for Net {
    /// #     fn forward(&self, x: &Tensor) -> Tensor { x.matmul(&self.w) + &self.b }
    /// # }
    /// # impl ModuleParams for Net {
    /// #     fn named_parameters(&self) -> Vec<(String, Tensor)> {
    /// #         vec![("fc.weight".into(), self.w.clone()), ("fc.bias".into(), self.b.clone())]
    /// #     }
    /// # }
    /// # let model = Net { w: Tensor::zeros(&[3, 2]).requires_grad(), b: Tensor::zeros(&[2]).requires_grad() };
    /// use ferrograd::optim::{AdamW, AdamWConfig, Optimizer, ParamGroup};
    ///
    /// let (decay, no_decay): (Vec<_>, Vec<_>) =
    ///     model.named_parameters().into_iter().partition(|(_, p)| p.ndim() >= 2);
    /// let cfg = AdamWConfig { lr: 1e-3, weight_decay: 0.1, ..Default::default() };
    /// let mut opt = AdamW::with_groups(vec![
    ///     ParamGroup::named(decay, cfg),
    ///     ParamGroup::named(no_decay, AdamWConfig { weight_decay: 0.0, ..cfg }),
    /// ]);
    /// assert_eq!(opt.groups()[1].names().unwrap(), ["fc.bias"]);
    /// assert_eq!(opt.groups()[1].config().weight_decay, 0.0);
    /// opt.set_lr(1e-4);                                // every group
    /// assert_eq!(opt.group_lrs(), vec![1e-4, 1e-4]);
    /// ```
    ///
    /// # Panics
    /// With the error of [`try_with_groups`](Optim::try_with_groups).
    #[track_caller]
    pub fn with_groups(groups: Vec<ParamGroup<T, R::Config>>) -> Self {
        or_panic(Self::try_with_groups(groups))
    }

    /// Builds the optimizer over several parameter groups (see
    /// [`with_groups`](Optim::with_groups)).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `groups` is empty, or naming the group and
    /// the invalid config value or parameter (one in two groups, or named in one
    /// group and not in another).
    ///
    /// ```
    /// use ferrograd::optim::{Sgd, SgdConfig, ParamGroup};
    /// let w = ferrograd::Tensor::<f32>::zeros(&[2]).requires_grad();
    /// let cfg = SgdConfig::default();
    /// let err = Sgd::try_with_groups(vec![
    ///     ParamGroup::new(vec![w.clone()], cfg),
    ///     ParamGroup::new(vec![w], cfg),
    /// ])
    /// .unwrap_err();
    /// assert!(err.to_string().contains("in group 1 is the same tensor as parameter #0 (shape [2]) in group 0"));
    /// ```
    pub fn try_with_groups(groups: Vec<ParamGroup<T, R::Config>>) -> Result<Self> {
        Self::build("with_groups", groups, true)
    }

    /// Adds a parameter group (PyTorch's `add_param_group`), e.g. layers unfrozen
    /// while fine-tuning. Its parameters come after those already there; their
    /// states start empty.
    ///
    /// A [`Scheduler`](super::lr::Scheduler) made before keeps the number of groups
    /// it saw: make a new one after adding a group.
    ///
    /// # Errors
    /// As [`try_with_groups`](Optim::try_with_groups); nothing is added then.
    ///
    /// ```
    /// use ferrograd::optim::{Sgd, SgdConfig, Optimizer, ParamGroup};
    /// let head = ferrograd::Tensor::<f32>::zeros(&[2]).requires_grad();
    /// let body = ferrograd::Tensor::<f32>::zeros(&[3]).requires_grad();
    /// let mut opt = Sgd::new(vec![head], SgdConfig { lr: 0.1, ..Default::default() });
    /// opt.add_param_group(ParamGroup::new(vec![body], SgdConfig { lr: 0.01, ..Default::default() }))?;
    /// assert_eq!(opt.group_lrs(), vec![0.1, 0.01]);
    /// assert_eq!(opt.parameters().len(), 2);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn add_param_group(&mut self, group: ParamGroup<T, R::Config>) -> Result<()> {
        self.push_group("add_param_group", group, true)
    }

    fn build(
        method: &'static str,
        groups: Vec<ParamGroup<T, R::Config>>,
        label_groups: bool,
    ) -> Result<Self> {
        if groups.is_empty() {
            return Err(Error::invalid(
                op_name(R::NAME, method),
                "expected at least one parameter group",
            ));
        }
        let mut opt = Optim {
            groups: Vec::with_capacity(groups.len()),
            params: Vec::new(),
            names: None,
            state: Vec::new(),
            strict: false,
            rule: PhantomData,
        };
        for group in groups {
            opt.push_group(method, group, label_groups)?;
        }
        Ok(opt)
    }

    /// Checks `group` against the groups already there, then appends it.
    ///
    /// Each parameter must be a leaf (the gradients `backward` returns are keyed by
    /// leaves), not a broadcast view (its elements would alias), and not given
    /// twice (it would be updated twice per step).
    fn push_group(
        &mut self,
        method: &'static str,
        group: ParamGroup<T, R::Config>,
        label_groups: bool,
    ) -> Result<()> {
        let k = self.groups.len();
        let label = if label_groups {
            format!("group {k}: ")
        } else {
            String::new()
        };
        let err = |msg: String| Error::invalid(op_name(R::NAME, method), format!("{label}{msg}"));
        R::validate(&group.config).map_err(&err)?;
        if k > 0 && group.names.is_some() != self.names.is_some() {
            return Err(err(
                "give names to the parameters of every group (ParamGroup::named) or of none"
                    .to_string(),
            ));
        }
        // Every parameter, those already there and the new group's: (tensor, name, group).
        let offset = self.params.len();
        let new_names = (0..group.params.len()).map(|j| group.names.as_ref().map(|n| &n[j][..]));
        let all: Vec<(&Tensor<T>, Option<&str>, usize)> = self
            .params
            .iter()
            .zip((0..offset).map(|i| self.param_name(i)))
            .zip(self.group_indices())
            .map(|((p, name), g)| (p, name, g))
            .chain(
                group
                    .params
                    .iter()
                    .zip(new_names)
                    .map(|(p, name)| (p, name, k)),
            )
            .collect();
        let describe = |i: usize| {
            let (p, name, _) = all[i];
            SkippedParam {
                index: i,
                name: name.map(str::to_owned),
                shape: p.shape().to_vec(),
            }
            .to_string()
        };
        let mut seen = HashMap::with_capacity(all.len());
        let mut seen_names = HashMap::new();
        for (i, &(p, name, g)) in all.iter().enumerate() {
            // (the parameters already there were checked when they came)
            if let Some(first) = seen.insert(p.id(), i) {
                let first_group = all[first].2;
                return Err(err(if g == first_group {
                    format!(
                        "parameter {} is the same tensor as parameter {}; each \
                         parameter may be given once (it would be updated twice per step)",
                        describe(i),
                        describe(first)
                    )
                } else {
                    format!(
                        "parameter {} in group {g} is the same tensor as parameter {} \
                         in group {first_group}; a parameter may belong to one group only",
                        describe(i),
                        describe(first)
                    )
                }));
            }
            if let Some(name) = name {
                if let Some(first) = seen_names.insert(name, i) {
                    return Err(err(format!(
                        "parameters #{first} and #{i} are both named {name}; names must be \
                         unique (state dicts are keyed by them)"
                    )));
                }
            }
            if i < offset {
                continue;
            }
            if let Some(made_by) = p.op_name() {
                return Err(err(format!(
                    "parameter {} is not a leaf (it is the output of `{made_by}`); \
                     optimize the leaf made with requires_grad() instead",
                    describe(i)
                )));
            }
            if p.shape()
                .iter()
                .zip(p.strides())
                .any(|(&n, &s)| n > 1 && s == 0)
            {
                return Err(err(format!(
                    "parameter {} is a broadcast view (strides {:?}): its elements \
                     share memory and cannot be updated one by one",
                    describe(i),
                    p.strides()
                )));
            }
        }
        self.params.extend(group.params.iter().cloned());
        self.state.extend(group.params.iter().map(|_| None));
        if let Some(names) = &group.names {
            self.names
                .get_or_insert_with(Vec::new)
                .extend_from_slice(names);
        }
        self.groups.push(group);
        Ok(())
    }

    /// Strict mode (off by default): when on, a parameter without a gradient makes
    /// [`step`](Optimizer::step) return
    /// [`Error::MissingGradient`] naming it, instead of skipping it (naming all
    /// of them, as [`Gradients::missing`] lists them, when several have none). A frozen
    /// parameter ([`set_requires_grad(false)`](Tensor::set_requires_grad)) is
    /// expected to have none: it is skipped (and listed in the report) in
    /// strict mode too.
    pub fn strict(mut self, on: bool) -> Self {
        self.strict = on;
        self
    }

    /// True in strict mode (see [`strict`](Optim::strict)).
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// The configuration of the first group (of the only one unless built with
    /// [`with_groups`](Optim::with_groups)), its learning rate as last set.
    pub fn config(&self) -> &R::Config {
        &self.groups[0].config
    }

    /// The parameter groups, in order.
    pub fn groups(&self) -> &[ParamGroup<T, R::Config>] {
        &self.groups
    }

    /// Sets the learning rate of group `group` only.
    ///
    /// # Panics
    /// When `group` is out of range, or `lr` is negative or NaN.
    ///
    /// ```
    /// use ferrograd::optim::{Adagrad, AdagradConfig, Optimizer, ParamGroup};
    /// let a = ferrograd::Tensor::<f64>::zeros(&[2]).requires_grad();
    /// let b = ferrograd::Tensor::<f64>::zeros(&[2]).requires_grad();
    /// let cfg = AdagradConfig::default();
    /// let mut opt = Adagrad::with_groups(vec![ParamGroup::new(vec![a], cfg), ParamGroup::new(vec![b], cfg)]);
    /// opt.set_group_lr(1, 0.0);   // freeze group 1
    /// assert_eq!(opt.group_lrs(), vec![1e-2, 0.0]);
    /// assert_eq!(opt.lr(), 1e-2);  // the first group's
    /// ```
    #[track_caller]
    pub fn set_group_lr(&mut self, group: usize, lr: T) {
        let op = || op_name(R::NAME, "set_group_lr");
        let n = self.groups.len();
        let Some(g) = self.groups.get_mut(group) else {
            panic!(
                "{}",
                Error::invalid(op(), format!("group {group} is out of range ({n} groups)"))
            );
        };
        or_panic(check_nonneg("learning rate", lr).map_err(|m| Error::invalid(op(), m)));
        g.config.set_lr(lr);
    }

    /// Replaces the config of group `group` (every hyper-parameter, as assigning to
    /// PyTorch's `param_groups[i]` entries does). Parameters' states are kept.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `group` is out of range or `config` is
    /// invalid; nothing changes then.
    ///
    /// ```
    /// use ferrograd::optim::{Sgd, SgdConfig, Optimizer};
    /// let w = ferrograd::Tensor::<f32>::zeros(&[2]).requires_grad();
    /// let mut opt = Sgd::new(vec![w], SgdConfig { lr: 0.1, ..Default::default() });
    /// opt.set_group_config(0, SgdConfig { momentum: 0.9, ..*opt.config() })?;
    /// assert_eq!(opt.config().momentum, 0.9);
    /// assert!(opt.set_group_config(1, SgdConfig::default()).is_err());
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn set_group_config(&mut self, group: usize, config: R::Config) -> Result<()> {
        let op = || op_name(R::NAME, "set_group_config");
        let n = self.groups.len();
        let Some(g) = self.groups.get_mut(group) else {
            return Err(Error::invalid(
                op(),
                format!("group {group} is out of range ({n} groups)"),
            ));
        };
        R::validate(&config).map_err(|m| Error::invalid(op(), m))?;
        g.config = config;
        Ok(())
    }

    /// The state of parameter `index`: `None` until its first update (and for an
    /// index out of range).
    pub fn state(&self, index: usize) -> Option<&R::State> {
        self.state.get(index)?.as_ref()
    }

    /// The name of parameter `index`, when built with names.
    pub fn param_name(&self, index: usize) -> Option<&str> {
        self.names.as_ref()?.get(index).map(String::as_str)
    }

    fn skipped(&self, i: usize) -> SkippedParam {
        SkippedParam {
            index: i,
            name: self.param_name(i).map(str::to_owned),
            shape: self.params[i].shape().to_vec(),
        }
    }

    /// Every parameter that requires a gradient and has none in `grads`, by
    /// name (or `#i (shape [..])` when unnamed), as strict mode reports them.
    fn missing(&self, grads: &Gradients<T>) -> Vec<String> {
        match &self.names {
            Some(names) => {
                let named: Vec<(&str, &Tensor<T>)> =
                    names.iter().map(String::as_str).zip(&self.params).collect();
                grads.missing(&named)
            }
            None => grads.missing(&self.params),
        }
    }

    /// The parameter's name, or `#i (shape [..])` when unnamed.
    fn describe(&self, i: usize) -> String {
        self.skipped(i).to_string()
    }

    /// The key of parameter `i` in state dicts: its name, or its position.
    fn key(&self, i: usize) -> String {
        match self.param_name(i) {
            Some(name) => name.to_owned(),
            None => i.to_string(),
        }
    }

    /// The group of each parameter, in order.
    fn group_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.groups
            .iter()
            .enumerate()
            .flat_map(|(g, grp)| std::iter::repeat_n(g, grp.params.len()))
    }
}

/// Runs `update(param, grad)` on `p`'s elements under its write lock, with
/// `g`'s elements: compiled once per element type here (see [`mono!`]), so
/// that a rule's `step` is small in the crates that use it.
fn update_param<T: Element>(p: &Tensor<T>, g: &Tensor<T>, update: &mut dyn FnMut(&mut [T], &[T])) {
    mono!(
        |p: &Tensor<T>, g: &Tensor<T>, update: &mut dyn FnMut(&mut [T], &[T])| {
            if g.shares_storage(p) {
                // Never the case for gradients from backward; reading first keeps a
                // hand-built one from deadlocking on the parameter's write lock.
                let g = g.to_vec();
                p.update_with(|p| update(p, &g));
            } else {
                g.with_contiguous(|g| p.update_with(|p| update(p, g)));
            }
        },
        (p, g, update)
    )
}

impl<T: Element, R: UpdateRule<T>> Optimizer<T> for Optim<T, R> {
    /// First every parameter's gradient is looked up and checked (so that an error
    /// leaves every parameter as it was); then each parameter that has one is
    /// updated in one pass under its buffer's write lock, with its group's config.
    fn step(&mut self, grads: &Gradients<T>) -> Result<StepReport> {
        let mut found = Vec::with_capacity(self.params.len());
        let mut report = StepReport::default();
        for (i, p) in self.params.iter().enumerate() {
            let g = grads.get(p);
            match g {
                None if self.strict && p.needs_grad() => {
                    return Err(Error::MissingGradient {
                        param: self.missing(grads).join(", "),
                    })
                }
                None => report.skipped.push(self.skipped(i)),
                Some(g) if g.shape() != p.shape() => {
                    return Err(Error::invalid(
                        op_name(R::NAME, "step"),
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
        let mut i = 0;
        for group in &self.groups {
            let config = &group.config;
            for p in &group.params {
                let (g, state) = (found[i], &mut self.state[i]);
                i += 1;
                let Some(g) = g else { continue };
                let state = state.get_or_insert_with(|| R::init_state(config, p));
                update_param(p, g, &mut |p, g| R::update(config, state, p, g));
                report.updated += 1;
            }
        }
        Ok(report)
    }

    /// The first group's learning rate.
    fn lr(&self) -> T {
        self.groups[0].config.lr()
    }

    /// Sets the learning rate of every group.
    #[track_caller]
    fn set_lr(&mut self, lr: T) {
        or_panic(
            check_nonneg("learning rate", lr)
                .map_err(|m| Error::invalid(op_name(R::NAME, "set_lr"), m)),
        );
        for g in &mut self.groups {
            g.config.set_lr(lr);
        }
    }

    fn parameters(&self) -> &[Tensor<T>] {
        &self.params
    }

    fn group_lrs(&self) -> Vec<T> {
        self.groups.iter().map(|g| g.config.lr()).collect()
    }

    #[track_caller]
    fn set_group_lrs(&mut self, lrs: &[T]) {
        let op = || op_name(R::NAME, "set_group_lrs");
        if lrs.len() != self.groups.len() {
            panic!(
                "{}",
                Error::invalid(
                    op(),
                    format!(
                        "{} learning rates for {} parameter groups",
                        lrs.len(),
                        self.groups.len()
                    )
                )
            );
        }
        for &lr in lrs {
            or_panic(check_nonneg("learning rate", lr).map_err(|m| Error::invalid(op(), m)));
        }
        for (g, &lr) in self.groups.iter_mut().zip(lrs) {
            g.config.set_lr(lr);
        }
    }

    fn state_dict(&self) -> OptimizerState<T> {
        let groups = self
            .groups
            .iter()
            .map(|g| {
                let mut fields = Fields::new();
                g.config.write_fields(&mut fields);
                fields.into_map()
            })
            .collect();
        let params = self
            .group_indices()
            .enumerate()
            .map(|(i, group)| {
                let (step, buffers) = match &self.state[i] {
                    None => (0, BTreeMap::new()),
                    Some(s) => {
                        let shape = self.params[i].shape();
                        let buffers = s
                            .buffers()
                            .into_iter()
                            .map(|(name, values)| {
                                let t = Tensor::from_vec(values.to_vec(), shape)
                                    .expect("a state buffer has one value per element");
                                (name.to_owned(), t)
                            })
                            .collect();
                        (s.step(), buffers)
                    }
                };
                let entry = ParamEntry {
                    group,
                    step,
                    buffers,
                };
                (self.key(i), entry)
            })
            .collect();
        OptimizerState {
            kind: R::NAME.to_owned(),
            groups,
            params,
        }
    }

    fn load_state_dict(&mut self, state: &OptimizerState<T>) -> Result<()> {
        let err = |msg: String| Error::invalid(op_name(R::NAME, "load_state_dict"), msg);
        if state.kind != R::NAME {
            return Err(err(format!(
                "the state was saved by {}, not by {}",
                state.kind,
                R::NAME
            )));
        }
        if state.groups.len() != self.groups.len() {
            return Err(err(format!(
                "the state has {} parameter groups, this optimizer {}",
                state.groups.len(),
                self.groups.len()
            )));
        }
        // Everything is read and checked first: an error changes nothing.
        let mut configs = Vec::with_capacity(self.groups.len());
        for (g, saved) in state.groups.iter().enumerate() {
            let mut fields = Fields::from(saved.clone());
            let config =
                R::Config::read_fields(&mut fields).map_err(|m| err(format!("group {g}: {m}")))?;
            if let Some(extra) = fields.names().next() {
                return Err(err(format!("group {g}: unknown hyper-parameter {extra}")));
            }
            R::validate(&config).map_err(|m| err(format!("group {g}: {m}")))?;
            configs.push(config);
        }
        let index: HashMap<String, usize> =
            (0..self.params.len()).map(|i| (self.key(i), i)).collect();
        let groups: Vec<usize> = self.group_indices().collect();
        let mut states: Vec<Option<Option<R::State>>> = vec![None; self.params.len()];
        for (key, entry) in &state.params {
            let Some(&i) = index.get(key) else {
                return Err(err(format!(
                    "the state has an entry for parameter {key}, which this optimizer does \
                     not have{}",
                    if self.names.is_some() {
                        ""
                    } else {
                        " (its parameters are unnamed: keyed by position)"
                    }
                )));
            };
            if entry.group != groups[i] {
                return Err(err(format!(
                    "parameter {key} is in group {} in the state, but in group {} here",
                    entry.group, groups[i]
                )));
            }
            let loaded = if entry.step == 0 {
                if let Some(name) = entry.buffers.keys().next() {
                    return Err(err(format!(
                        "parameter {key} has step 0 (no state yet) but a buffer {name}"
                    )));
                }
                None
            } else {
                let shape = self.params[i].shape();
                let mut buffers = BTreeMap::new();
                for (name, t) in &entry.buffers {
                    if t.shape() != shape {
                        return Err(err(format!(
                            "buffer {name} of parameter {key} has shape {:?}, but the \
                             parameter has shape {shape:?}",
                            t.shape()
                        )));
                    }
                    buffers.insert(name.clone(), t.to_vec());
                }
                let s = R::State::from_buffers(entry.step, &mut buffers)
                    .map_err(|m| err(format!("parameter {key}: {m}")))?;
                if let Some(extra) = buffers.keys().next() {
                    return Err(err(format!(
                        "parameter {key}: unknown state buffer {extra}"
                    )));
                }
                Some(s)
            };
            states[i] = Some(loaded);
        }
        let missing: Vec<String> = (0..self.params.len())
            .filter(|&i| states[i].is_none())
            .map(|i| self.key(i))
            .collect();
        if !missing.is_empty() {
            return Err(err(format!(
                "the state has no entry for parameter{} {}",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            )));
        }
        for (g, config) in self.groups.iter_mut().zip(configs) {
            g.config = config;
        }
        self.state = states.into_iter().map(Option::unwrap_or_default).collect();
        Ok(())
    }
}

impl<T: Element, R: UpdateRule<T>> fmt::Debug for Optim<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let configs: Vec<_> = self.groups.iter().map(|g| &g.config).collect();
        f.debug_struct(R::NAME)
            .field("configs", &configs)
            .field("params", &self.params.len())
            .field("strict", &self.strict)
            .finish()
    }
}
