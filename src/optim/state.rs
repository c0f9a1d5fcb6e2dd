//! State dicts: an optimizer's state as plain data, and as the tensors and
//! strings of a safetensors file.

use std::collections::BTreeMap;
use std::fmt;

use num_traits::Num;

use crate::element::Element;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Named settings as text: how configs ([`Hyperparams`](super::Hyperparams)) and
/// schedules ([`LrSchedule`](super::lr::LrSchedule)) put their fields into state
/// dicts.
///
/// Numbers are written with `Display`, which gives the shortest text that reads
/// back to the same value: `f32` and `f64` fields round-trip exactly.
///
/// ```
/// use ferrograd::optim::Fields;
/// let mut f = Fields::new();
/// f.put("lr", 0.1f32);
/// f.put("nesterov", true);
/// assert_eq!(f.as_map()["lr"], "0.1");
/// assert_eq!(f.take_num::<f32>("lr"), Ok(0.1));
/// assert_eq!(f.take_flag("nesterov"), Ok(true));
/// assert!(f.is_empty());
/// assert_eq!(f.take_num::<f32>("lr").unwrap_err(), "missing field lr");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    map: BTreeMap<String, String>,
}

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Fields::default()
    }

    /// Sets field `name` to `value`'s text.
    pub fn put(&mut self, name: &str, value: impl fmt::Display) {
        self.map.insert(name.to_owned(), value.to_string());
    }

    /// Takes field `name` out, as text.
    ///
    /// # Errors
    /// A message naming the field when it is missing.
    pub fn take_str(&mut self, name: &str) -> std::result::Result<String, String> {
        self.map
            .remove(name)
            .ok_or_else(|| format!("missing field {name}"))
    }

    /// Takes field `name` out, as a number (`f32`, `f64`, `usize`, …).
    ///
    /// # Errors
    /// A message naming the field when it is missing or not a number.
    pub fn take_num<V: Num>(&mut self, name: &str) -> std::result::Result<V, String> {
        let text = self.take_str(name)?;
        V::from_str_radix(&text, 10)
            .map_err(|_| format!("field {name}: {text:?} is not a number of the expected type"))
    }

    /// Takes field `name` out, as `true` or `false`.
    ///
    /// # Errors
    /// A message naming the field when it is missing or neither `true` nor `false`.
    pub fn take_flag(&mut self, name: &str) -> std::result::Result<bool, String> {
        let text = self.take_str(name)?;
        text.parse()
            .map_err(|_| format!("field {name}: {text:?} is neither true nor false"))
    }

    /// True when no field is left.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The names of the fields left, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// The fields, by name.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.map
    }

    /// The fields, by name.
    pub fn into_map(self) -> BTreeMap<String, String> {
        self.map
    }
}

impl From<BTreeMap<String, String>> for Fields {
    fn from(map: BTreeMap<String, String>) -> Self {
        Fields { map }
    }
}

/// Everything an optimizer needs to resume training where it stopped (PyTorch's
/// `optimizer.state_dict()`): its kind, each group's hyper-parameters, and each
/// parameter's step count and state buffers.
///
/// Parameters are keyed by name when the optimizer was built with names
/// ([`new_named`](super::Optim::new_named), [`ParamGroup::named`](super::ParamGroup::named)),
/// else by position (`"0"`, `"1"`, …).
/// [`Optimizer::state_dict`](super::Optimizer::state_dict) makes one and
/// [`Optimizer::load_state_dict`](super::Optimizer::load_state_dict) restores it;
/// [`to_maps`](OptimizerState::to_maps) and [`from_maps`](OptimizerState::from_maps)
/// turn it into tensors and strings for a safetensors file, next to the model's
/// weights.
///
/// ```
/// use ferrograd::optim::{Adam, AdamConfig, Optimizer};
/// use ferrograd::Tensor;
///
/// let w = Tensor::<f32>::ones(&[2, 2]).requires_grad();
/// let mut opt = Adam::new_named(vec![("w".into(), w.clone())], AdamConfig::default());
/// opt.step(&w.sum().backward()?)?;
///
/// let state = opt.state_dict();
/// assert_eq!(state.kind, "Adam");
/// assert_eq!(state.groups[0]["lr"], "0.001");
/// assert_eq!(state.params["w"].step, 1);
/// assert_eq!(state.params["w"].buffers["exp_avg"].shape(), &[2, 2]);
///
/// let (tensors, metadata) = state.to_maps("optim.");
/// assert!(tensors.contains_key("optim.param.w.exp_avg_sq"));
/// assert_eq!(metadata["optim.kind"], "Adam");
/// let back = ferrograd::optim::OptimizerState::from_maps("optim.", &tensors, &metadata)?;
/// assert_eq!(back, state);
/// # Ok::<(), ferrograd::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState<T: Element = f32> {
    /// The optimizer's name: `"Sgd"`, `"Adam"`, `"AdamW"`, `"RmsProp"`, `"Adagrad"`
    /// (its rule's [`NAME`](super::UpdateRule::NAME)).
    pub kind: String,
    /// Each group's hyper-parameters, by field name, as text (`"lr"` → `"0.001"`,
    /// `"nesterov"` → `"false"`).
    pub groups: Vec<BTreeMap<String, String>>,
    /// Every parameter, by key (its name, or its position).
    pub params: BTreeMap<String, ParamEntry<T>>,
}

/// One parameter's entry in an [`OptimizerState`].
#[derive(Clone, Debug, PartialEq)]
pub struct ParamEntry<T: Element = f32> {
    /// The group it belongs to.
    pub group: usize,
    /// How many updates it has had; 0 when it has no state yet (then `buffers` is
    /// empty).
    pub step: usize,
    /// Its state buffers, by name (`"exp_avg"`, `"momentum_buffer"`, …), each of the
    /// parameter's shape.
    pub buffers: BTreeMap<String, Tensor<T>>,
}

impl<T: Element> OptimizerState<T> {
    /// The state as tensors and strings, each key starting with `prefix`, ready for
    /// [`io::save_safetensors_with_metadata`](crate::io::save_safetensors_with_metadata)
    /// (tensors, and strings as the file's `__metadata__`).
    ///
    /// Keys, after the prefix: the string `kind`; `groups` (how many);
    /// `group.{g}.{field}` for each hyper-parameter of group `g`;
    /// `param.{key}.group` and `param.{key}.step` for each parameter; and the
    /// tensor `param.{key}.{buffer}` for each state buffer. A prefix such as
    /// `"optim."` keeps the keys apart from the model's weights in one file.
    ///
    /// ```
    /// use ferrograd::optim::{Optimizer, Sgd, SgdConfig};
    /// use ferrograd::Tensor;
    ///
    /// let w = Tensor::<f32>::ones(&[3]).requires_grad();
    /// let mut opt = Sgd::new_named(vec![("fc.weight".into(), w.clone())],
    ///                              SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() });
    /// opt.step(&w.sum().backward()?)?;
    /// let (tensors, meta) = opt.state_dict().to_maps("optim.");
    /// assert_eq!(tensors.keys().collect::<Vec<_>>(), ["optim.param.fc.weight.momentum_buffer"]);
    /// assert_eq!(meta["optim.group.0.momentum"], "0.9");
    /// assert_eq!(meta["optim.param.fc.weight.step"], "1");
    ///
    /// // one checkpoint file: the model's weights and the optimizer's state
    /// let path = std::env::temp_dir().join(format!("ferrograd-ckpt-{}.safetensors", std::process::id()));
    /// let mut all: Vec<(String, Tensor<f32>)> = vec![("fc.weight".into(), w.clone())];
    /// all.extend(tensors);
    /// ferrograd::io::save_safetensors_with_metadata(&path, &all, &meta)?;
    /// let back = ferrograd::optim::OptimizerState::from_maps(
    ///     "optim.",
    ///     &ferrograd::io::load_safetensors(&path)?,
    ///     &ferrograd::io::load_safetensors_metadata(&path)?,
    /// )?;
    /// assert_eq!(back, opt.state_dict());
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn to_maps(&self, prefix: &str) -> (BTreeMap<String, Tensor<T>>, BTreeMap<String, String>) {
        let mut tensors = BTreeMap::new();
        let mut meta = BTreeMap::new();
        meta.insert(format!("{prefix}kind"), self.kind.clone());
        meta.insert(format!("{prefix}groups"), self.groups.len().to_string());
        for (g, fields) in self.groups.iter().enumerate() {
            for (name, value) in fields {
                meta.insert(format!("{prefix}group.{g}.{name}"), value.clone());
            }
        }
        for (key, entry) in &self.params {
            meta.insert(
                format!("{prefix}param.{key}.group"),
                entry.group.to_string(),
            );
            meta.insert(format!("{prefix}param.{key}.step"), entry.step.to_string());
            for (name, t) in &entry.buffers {
                tensors.insert(format!("{prefix}param.{key}.{name}"), t.clone());
            }
        }
        (tensors, meta)
    }

    /// Reads a state that [`to_maps`](OptimizerState::to_maps) wrote with the same
    /// `prefix`. Keys without the prefix are ignored (the model's weights in the
    /// same file); every key with it must be one `to_maps` writes.
    ///
    /// # Errors
    /// [`Error::Format`] naming the key that is missing, unknown or unreadable.
    pub fn from_maps(
        prefix: &str,
        tensors: &BTreeMap<String, Tensor<T>>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let bad = |msg: String| Error::Format(format!("optimizer state: {msg}"));
        let mut kind = None;
        let mut n_groups = None;
        let mut groups: BTreeMap<usize, BTreeMap<String, String>> = BTreeMap::new();
        let mut params: BTreeMap<String, (Option<usize>, Option<usize>)> = BTreeMap::new();
        let number = |key: &str, value: &str| {
            value
                .parse::<usize>()
                .map_err(|_| bad(format!("{key} is {value:?}, not a count")))
        };
        for (key, value) in metadata {
            let Some(rest) = key.strip_prefix(prefix) else {
                continue;
            };
            if rest == "kind" {
                kind = Some(value.clone());
            } else if rest == "groups" {
                n_groups = Some(number(key, value)?);
            } else if let Some((g, field)) =
                rest.strip_prefix("group.").and_then(|r| r.split_once('.'))
            {
                let g = number(key, g)?;
                groups
                    .entry(g)
                    .or_default()
                    .insert(field.to_owned(), value.clone());
            } else if let Some((param, field)) =
                rest.strip_prefix("param.").and_then(|r| r.rsplit_once('.'))
            {
                let entry = params.entry(param.to_owned()).or_default();
                match field {
                    "group" => entry.0 = Some(number(key, value)?),
                    "step" => entry.1 = Some(number(key, value)?),
                    _ => return Err(bad(format!("unknown key {key}"))),
                }
            } else {
                return Err(bad(format!("unknown key {key}")));
            }
        }
        let kind = kind.ok_or_else(|| bad(format!("no {prefix}kind entry")))?;
        let n_groups = n_groups.ok_or_else(|| bad(format!("no {prefix}groups entry")))?;
        if let Some(&g) = groups.keys().find(|&&g| g >= n_groups) {
            return Err(bad(format!(
                "hyper-parameters for group {g}, but {prefix}groups is {n_groups}"
            )));
        }
        let groups: Vec<_> = (0..n_groups)
            .map(|g| groups.remove(&g).unwrap_or_default())
            .collect();
        let mut entries = BTreeMap::new();
        for (key, (group, step)) in params {
            let group = group.ok_or_else(|| bad(format!("no {prefix}param.{key}.group entry")))?;
            let step = step.ok_or_else(|| bad(format!("no {prefix}param.{key}.step entry")))?;
            let entry = ParamEntry {
                group,
                step,
                buffers: BTreeMap::new(),
            };
            entries.insert(key, entry);
        }
        for (key, t) in tensors {
            let Some(rest) = key.strip_prefix(prefix) else {
                continue;
            };
            let entry = rest
                .strip_prefix("param.")
                .and_then(|r| r.rsplit_once('.'))
                .and_then(|(param, buffer)| Some((entries.get_mut(param)?, buffer)));
            let Some((entry, buffer)) = entry else {
                return Err(bad(format!("tensor {key} belongs to no parameter")));
            };
            entry.buffers.insert(buffer.to_owned(), t.clone());
        }
        Ok(OptimizerState {
            kind,
            groups,
            params: entries,
        })
    }
}
