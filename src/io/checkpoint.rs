//! [`Checkpoint`]: a whole training run's state in one safetensors file (the
//! format is documented on the type).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::element::Element;
use crate::error::{Error, Result};
use crate::nn::{ModuleParams, RngState};
use crate::optim::lr::{LrSchedule, Scheduler, SchedulerState};
use crate::optim::{Optimizer, OptimizerState};
use crate::tensor::Tensor;

use super::header;

const VERSION_KEY: &str = "checkpoint.version";
const STEP_KEY: &str = "checkpoint.step";
const PARTS_KEY: &str = "checkpoint.parts";
const MODEL: &str = "model.";
const MODEL_RNG: &str = "model.rng.";
const OPTIM: &str = "optim.";
const SCHED: &str = "sched.";
const RNG: &str = "rng.";
const META: &str = "meta.";

/// Tensors with their names.
type Named<T> = Vec<(String, Tensor<T>)>;

/// The names of the parts, as `checkpoint.parts` lists them.
const PART_MODEL: &str = "model";
const PART_OPTIMIZER: &str = "optimizer";
const PART_SCHEDULER: &str = "scheduler";

/// A training checkpoint: a model's weights, an optimizer's and a scheduler's
/// state, the step, and the state of every RNG in play, in one safetensors file.
///
/// A `Checkpoint` gathers the parts with a builder and writes them with one call;
/// [`Checkpoint::load`] reads them back, and each `restore_*` method puts one part
/// back in place. Training `2N` steps in one go, or `N` steps, a checkpoint, a
/// restore into freshly built objects and `N` more steps, gives the same weights,
/// bit for bit: every source of randomness of a run is a seeded stream whose
/// position the checkpoint records ([`Dropout`](crate::nn::Dropout) layers,
/// through [`ModuleParams::named_rng_states`]; a [`Shuffler`](crate::data::Shuffler)
/// or any other [`RngState`], by a name of yours).
///
/// ```
/// use ferrograd::data::{gather_rows, Shuffler};
/// use ferrograd::io::Checkpoint;
/// use ferrograd::nn::{Dropout, Linear, Module};
/// use ferrograd::optim::lr::{Scheduler, StepLr};
/// use ferrograd::optim::{Adam, AdamConfig, Optimizer};
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// use ferrograd::{loss, Tensor};
///
/// #[derive(Module)]
/// struct Net { fc: Linear, drop: Dropout }
/// impl Module for Net {
///     fn forward(&self, x: &Tensor) -> Tensor { self.drop.forward(&self.fc.forward(x)) }
/// }
/// let new_net = |seed| Net {
///     fc: Linear::new(3, 1, true, &mut StdRng::seed_from_u64(seed)),
///     drop: Dropout::new(0.1, seed),
/// };
/// let x = Tensor::<f32>::randn(&[10, 3], &mut StdRng::seed_from_u64(0));
/// let y = x.sum_axis(1, true);
///
/// let net = new_net(1);
/// let mut opt = Adam::new_named(net.named_parameters(), AdamConfig::default());
/// let mut sched = Scheduler::new(&mut opt, StepLr::new(2, 0.5));
/// let mut shuffler = Shuffler::new(7);
/// let mut step = 0u64;
/// for _epoch in 0..2 {
///     for batch in shuffler.next_epoch(10, 5) {
///         let l = loss::mse(&net.forward(&gather_rows(&x, &batch)), &gather_rows(&y, &batch))?;
///         opt.step(&l.backward()?)?;
///         sched.step(&mut opt);
///         step += 1;
///     }
/// }
/// let path = std::env::temp_dir().join(format!("ferrograd-ckpt-doc-{}.safetensors", std::process::id()));
/// Checkpoint::new(step)
///     .model(&net)
///     .optimizer(&opt)
///     .scheduler(&sched)
///     .rng("shuffle", shuffler.state())
///     .save(&path)?;
///
/// // later, in another process: build everything afresh, then restore
/// let net2 = new_net(99);
/// let mut opt2 = Adam::new_named(net2.named_parameters(), AdamConfig::default());
/// let mut sched2 = Scheduler::new(&mut opt2, StepLr::new(2, 0.5));
/// let mut shuffler2 = Shuffler::new(0);
/// let ck = Checkpoint::<f32>::load(&path)?;
/// ck.restore_model(&net2)?;
/// ck.restore_optimizer(&mut opt2)?;
/// ck.restore_scheduler(&mut sched2, &mut opt2)?;
/// shuffler2.set_state(ck.rng_state("shuffle")?);
/// assert_eq!(ck.step(), 4);
/// assert_eq!(net2.fc.weight().to_vec(), net.fc.weight().to_vec());
/// assert_eq!(net2.drop.rng_state(), net.drop.rng_state());
/// assert_eq!((opt2.lr(), sched2.epoch()), (opt.lr(), 4));
/// assert_eq!(shuffler2.next_epoch(10, 5), shuffler.next_epoch(10, 5));
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # The file
///
/// A checkpoint is a plain safetensors file; every part lives under a prefix of
/// its own, so no two keys collide. Tensors:
///
/// | key | what |
/// |---|---|
/// | `model.{name}` | each parameter and buffer of the model, under its [`named_parameters`](ModuleParams::named_parameters) / [`named_buffers`](ModuleParams::named_buffers) name |
/// | `optim.param.{key}.{buffer}` | each optimizer state buffer (`exp_avg`, `momentum_buffer`, …), as [`OptimizerState::to_maps`] names it |
///
/// and strings, in the header's `"__metadata__"`:
///
/// | key | what |
/// |---|---|
/// | `checkpoint.version` | the format's version, `1` ([`Checkpoint::VERSION`]) |
/// | `checkpoint.step` | the step given to [`Checkpoint::new`] |
/// | `checkpoint.parts` | the parts present, comma-separated, from `model`, `optimizer`, `scheduler` (empty when none) |
/// | `model.rng.{name}` | each RNG of the model ([`named_rng_states`](ModuleParams::named_rng_states)), as `seed=42,draws=3` |
/// | `optim.{…}` | the optimizer's kind, hyper-parameters and step counts ([`OptimizerState::to_maps`] with the prefix `optim.`) |
/// | `sched.{…}` | the scheduler's step, rates and settings ([`SchedulerState::to_map`] with the prefix `sched.`) |
/// | `rng.{name}` | each [`Checkpoint::rng`], as `seed=7,draws=2` |
/// | `meta.{key}` | each [`Checkpoint::meta`] string |
///
/// Tensors are `F32` for `Checkpoint<f32>` and `F64` for `Checkpoint<f64>`. From
/// Python, the weights are the tensors whose keys start with `model.`:
///
/// ```python
/// from safetensors import safe_open
/// from safetensors.torch import load_file
///
/// tensors = load_file("run.safetensors")
/// weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
/// model.load_state_dict(weights)          # same names as the ferrograd model's
/// with safe_open("run.safetensors", framework="pt") as f:
///     step = int(f.metadata()["checkpoint.step"])
/// ```
///
/// Loading checks the version, and reads every part it announces; a tensor
/// outside the prefixes above, a key it does not know under `checkpoint.`, or a
/// part's key that the part does not know is an error. Metadata keys outside these
/// prefixes are ignored (tools add their own, such as `format`).
///
/// # Building and reading
///
/// A checkpoint holds the step, and any of a model's weights and RNG states,
/// an optimizer's state, a scheduler's state, named RNG states and strings.
/// Build one with [`new`](Checkpoint::new) and the builder methods
/// ([`model`](Checkpoint::model), [`optimizer`](Checkpoint::optimizer),
/// [`scheduler`](Checkpoint::scheduler), [`rng`](Checkpoint::rng),
/// [`meta`](Checkpoint::meta)), each of which takes a copy of the values at the
/// time of the call; then [`save`](Checkpoint::save) it. [`load`](Checkpoint::load)
/// reads one back; [`restore_model`](Checkpoint::restore_model),
/// [`restore_optimizer`](Checkpoint::restore_optimizer) and
/// [`restore_scheduler`](Checkpoint::restore_scheduler) put the parts in place,
/// and [`step`](Checkpoint::step), [`rng_state`](Checkpoint::rng_state) and
/// [`meta_value`](Checkpoint::meta_value) give the rest.
///
/// ```
/// use ferrograd::io::Checkpoint;
/// use ferrograd::nn::RngState;
///
/// let ck = Checkpoint::<f32>::new(1200)
///     .rng("shuffle", RngState::new(7, 3))
///     .meta("run", "baseline");
/// let back = Checkpoint::<f32>::from_bytes(&ck.to_bytes()?)?;
/// assert_eq!(back.step(), 1200);
/// assert_eq!(back.rng_state("shuffle")?, RngState::new(7, 3));
/// assert_eq!(back.meta_value("run"), Some("baseline"));
/// assert!(back.optimizer_state().is_none());
/// # Ok::<(), ferrograd::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Checkpoint<T: Element = f32> {
    step: u64,
    model: Option<ModelPart<T>>,
    optimizer: Option<OptimizerState<T>>,
    scheduler: Option<SchedulerState<T>>,
    rngs: BTreeMap<String, RngState>,
    meta: BTreeMap<String, String>,
}

/// A model's tensors (parameters, then buffers) and RNG states, by name.
#[derive(Clone, Debug)]
struct ModelPart<T: Element> {
    tensors: Named<T>,
    rngs: Vec<(String, RngState)>,
}

impl<T: Element> Checkpoint<T> {
    /// The version of the file format that this version of the crate writes and
    /// reads (the metadata's `checkpoint.version`).
    pub const VERSION: u32 = 1;

    /// A checkpoint of training step `step`, with no part yet.
    pub fn new(step: u64) -> Self {
        Checkpoint {
            step,
            model: None,
            optimizer: None,
            scheduler: None,
            rngs: BTreeMap::new(),
            meta: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) the model: a copy of its parameters and buffers, and the
    /// state of each of its RNGs (every [`Dropout`](crate::nn::Dropout)'s).
    ///
    /// ```
    /// use ferrograd::io::Checkpoint;
    /// use ferrograd::nn::Linear;
    /// use ferrograd::rand::{rngs::StdRng, SeedableRng};
    /// let fc = Linear::<f32>::new(2, 3, true, &mut StdRng::seed_from_u64(0));
    /// let ck = Checkpoint::new(0).model(&fc);
    /// let names: Vec<&str> = ck.model_tensors().unwrap().iter().map(|(n, _)| n.as_str()).collect();
    /// assert_eq!(names, ["weight", "bias"]);     // saved as model.weight, model.bias
    /// ```
    #[must_use]
    pub fn model<M: ModuleParams<T> + ?Sized>(mut self, model: &M) -> Self {
        let mut tensors = model.named_parameters();
        tensors.extend(model.named_buffers());
        let tensors = tensors
            .into_iter()
            .map(|(name, t)| {
                let copy = Tensor::from_vec(t.to_vec(), t.shape())
                    .expect("a tensor's values fill its shape");
                (name, copy)
            })
            .collect();
        self.model = Some(ModelPart {
            tensors,
            rngs: model.named_rng_states(),
        });
        self
    }

    /// Adds (or replaces) the optimizer's [state](Optimizer::state_dict): its kind,
    /// hyper-parameters (learning rates included) and per-parameter state.
    #[must_use]
    pub fn optimizer<O: Optimizer<T> + ?Sized>(mut self, optimizer: &O) -> Self {
        self.optimizer = Some(optimizer.state_dict());
        self
    }

    /// Adds (or replaces) the scheduler's [state](Scheduler::state_dict): its step
    /// count, base and last rates, and the schedule's settings.
    #[must_use]
    pub fn scheduler<S: LrSchedule<T>>(mut self, scheduler: &Scheduler<T, S>) -> Self {
        self.scheduler = Some(scheduler.state_dict());
        self
    }

    /// Adds (or replaces) the RNG state `name`: a [`Shuffler`](crate::data::Shuffler)'s
    /// [`state`](crate::data::Shuffler::state), or any stream of your own kept as
    /// an [`RngState`]. Read it back with [`rng_state`](Checkpoint::rng_state).
    #[must_use]
    pub fn rng(mut self, name: impl Into<String>, state: RngState) -> Self {
        self.rngs.insert(name.into(), state);
        self
    }

    /// Adds (or replaces) the string `key` (an epoch, a config, a git hash…). Read
    /// it back with [`meta_value`](Checkpoint::meta_value).
    #[must_use]
    pub fn meta(mut self, key: impl Into<String>, value: impl fmt::Display) -> Self {
        self.meta.insert(key.into(), value.to_string());
        self
    }

    /// The training step given to [`new`](Checkpoint::new).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The RNG state `name` given to [`rng`](Checkpoint::rng).
    ///
    /// # Errors
    /// [`Error::Format`] naming the RNG states the checkpoint has, when it has none
    /// of that name.
    pub fn rng_state(&self, name: &str) -> Result<RngState> {
        self.rngs.get(name).copied().ok_or_else(|| {
            Error::Format(format!(
                "checkpoint: no RNG state named {name:?} (it has {:?})",
                self.rngs.keys().collect::<Vec<_>>()
            ))
        })
    }

    /// Every RNG state given to [`rng`](Checkpoint::rng), by name.
    pub fn rng_states(&self) -> &BTreeMap<String, RngState> {
        &self.rngs
    }

    /// The string `key` given to [`meta`](Checkpoint::meta), if any.
    pub fn meta_value(&self, key: &str) -> Option<&str> {
        self.meta.get(key).map(String::as_str)
    }

    /// Every string given to [`meta`](Checkpoint::meta), by key.
    pub fn meta_values(&self) -> &BTreeMap<String, String> {
        &self.meta
    }

    /// The model's parameters and buffers, by name (without the `model.` prefix),
    /// when the checkpoint has a model: in the model's order when built, sorted by
    /// name when loaded.
    pub fn model_tensors(&self) -> Option<&[(String, Tensor<T>)]> {
        self.model.as_ref().map(|m| m.tensors.as_slice())
    }

    /// The states of the model's RNGs, by name, when the checkpoint has a model.
    pub fn model_rng_states(&self) -> Option<&[(String, RngState)]> {
        self.model.as_ref().map(|m| m.rngs.as_slice())
    }

    /// The optimizer's state, when the checkpoint has one.
    pub fn optimizer_state(&self) -> Option<&OptimizerState<T>> {
        self.optimizer.as_ref()
    }

    /// The scheduler's state, when the checkpoint has one.
    pub fn scheduler_state(&self) -> Option<&SchedulerState<T>> {
        self.scheduler.as_ref()
    }

    /// Puts the model part back into `model`, in place: every parameter and
    /// buffer (with [`Tensor::assign`], so the optimizer's handles see the new
    /// values) and every RNG state. The checkpoint must fit the model exactly, as
    /// for [`load_into`](super::load_into); nothing is changed when it does not.
    ///
    /// # Errors
    /// [`Error::Format`] when the checkpoint has no model part; when the names of
    /// its RNG states differ from the model's (naming the missing and unexpected
    /// ones); or naming every missing key, unexpected key and shape mismatch of
    /// the tensors, as [`load_into`](super::load_into) does.
    pub fn restore_model<M: ModuleParams<T> + ?Sized>(&self, model: &M) -> Result<()> {
        let part = self.part(&self.model, PART_MODEL)?;
        let own: Vec<String> = model
            .named_rng_states()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let missing: Vec<&String> = own
            .iter()
            .filter(|n| !part.rngs.iter().any(|(m, _)| m == *n))
            .collect();
        let unexpected: Vec<&String> = part
            .rngs
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !own.contains(n))
            .collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(Error::Format(format!(
                "checkpoint: its RNG states do not fit the model: missing {missing:?}, \
                 unexpected {unexpected:?}"
            )));
        }
        let state: BTreeMap<String, Tensor<T>> = part.tensors.iter().cloned().collect();
        super::load_state_dict(model, &state, true)?;
        model.load_rng_states(&part.rngs)
    }

    /// Puts the optimizer part back into `optimizer`
    /// ([`Optimizer::load_state_dict`]): its hyper-parameters (learning rates
    /// included) and every parameter's state. Nothing is changed on an error.
    ///
    /// # Errors
    /// [`Error::Format`] when the checkpoint has no optimizer part; the errors of
    /// [`Optimizer::load_state_dict`] ([`Error::InvalidArgument`]) when the state
    /// is of another kind of optimizer (`"the state was saved by Adam, not by
    /// Sgd"`), names other parameters, or holds buffers of other shapes.
    pub fn restore_optimizer<O: Optimizer<T> + ?Sized>(&self, optimizer: &mut O) -> Result<()> {
        optimizer.load_state_dict(self.part(&self.optimizer, PART_OPTIMIZER)?)
    }

    /// Puts the scheduler part back into `scheduler`
    /// ([`Scheduler::load_state_dict`]), which also sets `optimizer`'s learning
    /// rates to the saved ones. Nothing is changed on an error.
    ///
    /// # Errors
    /// [`Error::Format`] when the checkpoint has no scheduler part; the errors of
    /// [`Scheduler::load_state_dict`] ([`Error::InvalidArgument`]) when the state
    /// is of another kind of schedule or has another number of parameter groups.
    pub fn restore_scheduler<S, O>(
        &self,
        scheduler: &mut Scheduler<T, S>,
        optimizer: &mut O,
    ) -> Result<()>
    where
        S: LrSchedule<T>,
        O: Optimizer<T> + ?Sized,
    {
        scheduler.load_state_dict(optimizer, self.part(&self.scheduler, PART_SCHEDULER)?)
    }

    /// Writes the checkpoint to `path`, as one safetensors file (see the
    /// [the file](Checkpoint#the-file) for its keys), atomically: a reader sees the previous
    /// file or the new one, never a mix (see [how a checkpoint is
    /// written](super#how-a-checkpoint-is-written)).
    ///
    /// # Errors
    /// [`Error::Format`] when two of the model's tensors share a name (nothing is
    /// written then); [`Error::Io`] when the file cannot be written.
    pub fn save<P: AsRef<Path>>(&self, path: P) -> Result<()> {
        let (tensors, metadata) = self.to_maps();
        super::save_safetensors_with_metadata(path, &tensors, &metadata)
    }

    /// The bytes of the file [`save`](Checkpoint::save) writes, built in memory.
    ///
    /// # Errors
    /// As [`save`](Checkpoint::save); [`Error::Io`] only when the bytes do not fit
    /// in memory.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let (tensors, metadata) = self.to_maps();
        super::to_safetensors_bytes(&tensors, &metadata)
    }

    /// Reads a checkpoint that [`save`](Checkpoint::save) wrote (with any element
    /// type: `F32` and `F64` tensors load as `T`, as
    /// [`load_safetensors`](super::load_safetensors) converts them). The file is
    /// opened once, so a save that replaces it meanwhile cannot mix two
    /// checkpoints.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Format`] when it is not
    /// a valid safetensors file, has no `checkpoint.version` (not a training
    /// checkpoint) or another version than [`VERSION`](Checkpoint::VERSION), or
    /// holds a key or a value that does not fit the format (naming it).
    pub fn load<P: AsRef<Path>>(path: P) -> Result<Self> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(|e| super::io_error(path, e))?;
        if !file
            .metadata()
            .map_err(|e| super::io_error(path, e))?
            .is_file()
        {
            // A pipe or a device: no length to check the header against.
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)
                .map_err(|e| super::io_error(path, e))?;
            return Self::from_bytes(&bytes);
        }
        let (entries, metadata) = super::read_header(&mut file, path)?;
        // Whether it is a checkpoint at all, before reading any tensor.
        check_version(&metadata)?;
        super::check_dtypes(&entries)?;
        let mut buf = Vec::new();
        let mut tensors = BTreeMap::new();
        for t in &entries {
            // The entries tile the data section in order: read on.
            let mut values = super::alloc_values::<T>(t)?;
            let mut left = t.end - t.begin;
            while left > 0 {
                let n = left.min(super::CHUNK);
                buf.resize(n, 0);
                file.read_exact(&mut buf)
                    .map_err(|e| super::io_error(path, e))?;
                super::decode_into(&t.dtype, &buf, &mut values);
                left -= n;
            }
            tensors.insert(t.name.clone(), Tensor::from_vec(values, &t.shape)?);
        }
        Self::from_maps(tensors, &metadata)
    }

    /// Like [`load`](Checkpoint::load), from the bytes of a whole file.
    ///
    /// # Errors
    /// As [`load`](Checkpoint::load); [`Error::Io`] only when a tensor does not fit
    /// in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let n = header::header_len(bytes, bytes.len() as u64)?;
        let head = &bytes[header::PREFIX_LEN..header::PREFIX_LEN + n];
        let metadata = header::parse(head, bytes.len() - header::PREFIX_LEN - n)?.metadata;
        check_version(&metadata)?;
        let tensors = super::load_safetensors_from_bytes::<T>(bytes)?;
        Self::from_maps(tensors, &metadata)
    }

    /// The part `name` (held in `slot`), or the error that the checkpoint lacks it.
    fn part<'a, P>(&self, slot: &'a Option<P>, name: &str) -> Result<&'a P> {
        slot.as_ref().ok_or_else(|| {
            let parts = self.parts();
            Error::Format(format!(
                "checkpoint: it was saved without {} {name} (it holds {})",
                if name == PART_OPTIMIZER { "an" } else { "a" },
                if parts.is_empty() {
                    "no part: only the step and named values".to_string()
                } else {
                    format!("only: {}", parts.join(", "))
                }
            ))
        })
    }

    /// The names of the parts present, in the order of the format.
    fn parts(&self) -> Vec<&'static str> {
        let mut parts = Vec::new();
        if self.model.is_some() {
            parts.push(PART_MODEL);
        }
        if self.optimizer.is_some() {
            parts.push(PART_OPTIMIZER);
        }
        if self.scheduler.is_some() {
            parts.push(PART_SCHEDULER);
        }
        parts
    }

    /// The tensors and the metadata of the file.
    fn to_maps(&self) -> (Named<T>, BTreeMap<String, String>) {
        let mut tensors = Vec::new();
        let mut meta = BTreeMap::new();
        meta.insert(VERSION_KEY.to_owned(), Self::VERSION.to_string());
        meta.insert(STEP_KEY.to_owned(), self.step.to_string());
        meta.insert(PARTS_KEY.to_owned(), self.parts().join(","));
        if let Some(model) = &self.model {
            for (name, t) in &model.tensors {
                tensors.push((format!("{MODEL}{name}"), t.clone()));
            }
            for (name, state) in &model.rngs {
                meta.insert(format!("{MODEL_RNG}{name}"), state.to_string());
            }
        }
        if let Some(optimizer) = &self.optimizer {
            let (t, m) = optimizer.to_maps(OPTIM);
            tensors.extend(t);
            meta.extend(m);
        }
        if let Some(scheduler) = &self.scheduler {
            meta.extend(scheduler.to_map(SCHED));
        }
        for (name, state) in &self.rngs {
            meta.insert(format!("{RNG}{name}"), state.to_string());
        }
        for (key, value) in &self.meta {
            meta.insert(format!("{META}{key}"), value.clone());
        }
        (tensors, meta)
    }

    /// Reads the parts from a file's tensors and metadata (whose version is checked).
    fn from_maps(
        tensors: BTreeMap<String, Tensor<T>>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let step = metadata
            .get(STEP_KEY)
            .ok_or_else(|| bad(format!("no {STEP_KEY} in its metadata")))?;
        let step = parse_count(STEP_KEY, step)?;
        let parts = metadata
            .get(PARTS_KEY)
            .ok_or_else(|| bad(format!("no {PARTS_KEY} in its metadata")))?;
        let (mut has_model, mut has_optimizer, mut has_scheduler) = (false, false, false);
        for part in parts.split(',').filter(|p| !p.is_empty()) {
            let seen = match part {
                PART_MODEL => &mut has_model,
                PART_OPTIMIZER => &mut has_optimizer,
                PART_SCHEDULER => &mut has_scheduler,
                _ => return Err(bad(format!("unknown part {part:?} in {PARTS_KEY}"))),
            };
            if std::mem::replace(seen, true) {
                return Err(bad(format!("part {part:?} listed twice in {PARTS_KEY}")));
            }
        }

        let mut ck = Checkpoint::new(step);
        let mut model_rngs = Vec::new();
        for (key, value) in metadata {
            if let Some(rest) = key.strip_prefix("checkpoint.") {
                if ![VERSION_KEY, STEP_KEY, PARTS_KEY].contains(&key.as_str()) {
                    return Err(bad(format!("unknown key checkpoint.{rest}")));
                }
            } else if let Some(name) = key.strip_prefix(MODEL_RNG) {
                if !has_model {
                    return Err(bad(format!("{key} but no model part")));
                }
                model_rngs.push((name.to_owned(), parse_rng(key, value)?));
            } else if let Some(name) = key.strip_prefix(RNG) {
                ck.rngs.insert(name.to_owned(), parse_rng(key, value)?);
            } else if let Some(name) = key.strip_prefix(META) {
                ck.meta.insert(name.to_owned(), value.clone());
            } else if key.starts_with(OPTIM) && !has_optimizer {
                return Err(bad(format!("{key} but no optimizer part")));
            } else if key.starts_with(SCHED) && !has_scheduler {
                return Err(bad(format!("{key} but no scheduler part")));
            }
        }
        let mut model_tensors = Vec::new();
        for (key, t) in &tensors {
            if let Some(name) = key.strip_prefix(MODEL).filter(|_| has_model) {
                model_tensors.push((name.to_owned(), t.clone()));
            } else if !(key.starts_with(OPTIM) && has_optimizer) {
                return Err(bad(format!(
                    "tensor {key:?} belongs to no part (it holds {})",
                    parts
                )));
            }
        }
        if has_model {
            ck.model = Some(ModelPart {
                tensors: model_tensors,
                rngs: model_rngs,
            });
        }
        if has_optimizer {
            ck.optimizer = Some(OptimizerState::from_maps(OPTIM, &tensors, metadata)?);
        }
        if has_scheduler {
            ck.scheduler = Some(SchedulerState::from_map(SCHED, metadata)?);
        }
        Ok(ck)
    }
}

/// An [`Error::Format`] about a checkpoint file.
fn bad(msg: String) -> Error {
    Error::Format(format!("checkpoint: {msg}"))
}

/// Checks that the metadata is a checkpoint's, of the version this crate reads.
fn check_version(metadata: &BTreeMap<String, String>) -> Result<()> {
    let version = metadata.get(VERSION_KEY).ok_or_else(|| {
        bad(format!(
            "no {VERSION_KEY} in the file's metadata: not a training checkpoint \
             (io::load_safetensors reads any safetensors file)"
        ))
    })?;
    let expected = Checkpoint::<f32>::VERSION;
    if version.parse::<u32>() != Ok(expected) {
        return Err(bad(format!(
            "format version {version:?} is not supported: this version of ferrograd \
             reads version {expected}"
        )));
    }
    Ok(())
}

/// A decimal count.
fn parse_count(key: &str, value: &str) -> Result<u64> {
    match value.parse() {
        Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(bad(format!("{key} is {value:?}, not a count"))),
    }
}

/// An RNG state written as `seed=S,draws=N`.
fn parse_rng(key: &str, value: &str) -> Result<RngState> {
    value.parse().map_err(|_| {
        bad(format!(
            "{key} is {value:?}, not an RNG state (seed=S,draws=N)"
        ))
    })
}
