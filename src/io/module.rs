//! A module's parameters to and from a checkpoint, by name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use crate::element::Element;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::tensor::Tensor;

/// What [`load_into`] and [`load_state_dict`] did, key by key.
///
/// ```
/// # use ferrograd::nn::Module;
/// # struct Affine { w: Tensor<f32>, b: Tensor<f32> }
/// # impl Module<f32> for Affine {
/// #     fn forward(&self, x: &Tensor<f32>) -> Tensor<f32> { x.matmul(&self.w) + &self.b }
/// #     fn named_parameters(&self) -> Vec<(String, Tensor<f32>)> {
/// #         vec![("w".into(), self.w.clone()), ("b".into(), self.b.clone())]
/// #     }
/// # }
/// use std::collections::BTreeMap;
/// use ferrograd::Tensor;
/// let net = Affine { w: Tensor::zeros(&[2, 1]), b: Tensor::zeros(&[1]) };
/// let state = BTreeMap::from([
///     ("w".to_string(), Tensor::<f32>::ones(&[2, 1])),
///     ("head.w".to_string(), Tensor::<f32>::ones(&[3])),
/// ]);
/// let report = ferrograd::io::load_state_dict(&net, &state, false)?;
/// assert_eq!(report.loaded, ["w"]);
/// assert_eq!(report.missing, ["b"]);        // kept its values
/// assert_eq!(report.unexpected, ["head.w"]);
/// assert!(!report.is_complete());
/// # Ok::<(), ferrograd::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadReport {
    /// Parameters that were overwritten, in the order of
    /// [`named_parameters`](Module::named_parameters).
    pub loaded: Vec<String>,
    /// Parameters with no tensor of their name in the checkpoint: left unchanged.
    pub missing: Vec<String>,
    /// Tensors of the checkpoint that name no parameter (sorted): ignored.
    pub unexpected: Vec<String>,
}

impl LoadReport {
    /// True when every parameter was loaded and every tensor was used.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loaded {} parameters; missing {:?}; unexpected {:?}",
            self.loaded.len(),
            self.missing,
            self.unexpected
        )
    }
}

/// Writes a module's [`named_parameters`](Module::named_parameters) to a safetensors
/// file, as [`save_safetensors`](super::save_safetensors) does.
///
/// ```
/// # use ferrograd::nn::Module;
/// # struct Affine { w: Tensor<f32>, b: Tensor<f32> }
/// # impl Module<f32> for Affine {
/// #     fn forward(&self, x: &Tensor<f32>) -> Tensor<f32> { x.matmul(&self.w) + &self.b }
/// #     fn named_parameters(&self) -> Vec<(String, Tensor<f32>)> {
/// #         vec![("w".into(), self.w.clone()), ("b".into(), self.b.clone())]
/// #     }
/// # }
/// use ferrograd::Tensor;
/// let path = std::env::temp_dir().join(format!("ferrograd-module-{}.safetensors", std::process::id()));
/// let trained = Affine { w: Tensor::ones(&[2, 1]), b: Tensor::full(&[1], 0.5) };
/// ferrograd::io::save_module(&trained, &path)?;
///
/// let fresh = Affine { w: Tensor::zeros(&[2, 1]), b: Tensor::zeros(&[1]) };
/// let report = ferrograd::io::load_into(&fresh, &path)?;
/// assert!(report.is_complete());
/// assert_eq!(fresh.b.to_vec(), vec![0.5]);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// As [`save_safetensors`](super::save_safetensors): [`Error::Format`] when two
/// parameters share a name, [`Error::Io`] when the file cannot be written.
pub fn save_module<T, M, P>(module: &M, path: P) -> Result<()>
where
    T: Element,
    M: Module<T> + ?Sized,
    P: AsRef<Path>,
{
    super::save_safetensors(path, &module.named_parameters())
}

/// Loads a safetensors file into a module's parameters, in place, by name.
///
/// Each tensor of the file whose name is a parameter's name (as
/// [`named_parameters`](Module::named_parameters) gives it) overwrites that parameter
/// with [`Tensor::assign`]: every handle of the parameter (an optimizer's, a tied
/// layer's) sees the new values. The file's `F32`/`F64` tensors are converted to `T`
/// as by [`load_safetensors`](super::load_safetensors). Parameters the file lacks
/// keep their values and are listed in [`LoadReport::missing`]; tensors that match no
/// parameter are listed in [`LoadReport::unexpected`]. For a checkpoint that must fit
/// exactly, use [`load_into_strict`].
///
/// Nothing is assigned unless every shape fits: a failed load leaves the module as it was.
///
/// ```
/// # use ferrograd::nn::Module;
/// # struct Affine { w: Tensor<f32>, b: Tensor<f32> }
/// # impl Module<f32> for Affine {
/// #     fn forward(&self, x: &Tensor<f32>) -> Tensor<f32> { x.matmul(&self.w) + &self.b }
/// #     fn named_parameters(&self) -> Vec<(String, Tensor<f32>)> {
/// #         vec![("w".into(), self.w.clone()), ("b".into(), self.b.clone())]
/// #     }
/// # }
/// use ferrograd::Tensor;
/// let path = std::env::temp_dir().join(format!("ferrograd-load-into-{}.safetensors", std::process::id()));
/// let w = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2, 1])?;  // an f64 checkpoint
/// ferrograd::io::save_safetensors(&path, &[("w", &w)])?;
///
/// let net = Affine { w: Tensor::zeros(&[2, 1]), b: Tensor::zeros(&[1]) };
/// let report = ferrograd::io::load_into(&net, &path)?;
/// assert_eq!(net.w.to_vec(), vec![1.0f32, 2.0]);
/// assert_eq!(report.missing, ["b"]);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// As [`load_safetensors`](super::load_safetensors), and [`Error::Format`] when a
/// tensor's shape differs from its parameter's, naming the key and both shapes.
pub fn load_into<T, M, P>(module: &M, path: P) -> Result<LoadReport>
where
    T: Element,
    M: Module<T> + ?Sized,
    P: AsRef<Path>,
{
    let state = super::load_safetensors::<T, _>(path)?;
    load_state_dict(module, &state, false)
}

/// Like [`load_into`], but the file must hold exactly the module's parameters: a
/// missing parameter or an unexpected tensor is an error, and then nothing is loaded.
///
/// ```
/// # use ferrograd::nn::Module;
/// # struct Affine { w: Tensor<f32>, b: Tensor<f32> }
/// # impl Module<f32> for Affine {
/// #     fn forward(&self, x: &Tensor<f32>) -> Tensor<f32> { x.matmul(&self.w) + &self.b }
/// #     fn named_parameters(&self) -> Vec<(String, Tensor<f32>)> {
/// #         vec![("w".into(), self.w.clone()), ("b".into(), self.b.clone())]
/// #     }
/// # }
/// use ferrograd::Tensor;
/// let path = std::env::temp_dir().join(format!("ferrograd-strict-{}.safetensors", std::process::id()));
/// let w = Tensor::<f32>::ones(&[2, 1]);
/// ferrograd::io::save_safetensors(&path, &[("w", &w)])?;
///
/// let net = Affine { w: Tensor::zeros(&[2, 1]), b: Tensor::zeros(&[1]) };
/// let err = ferrograd::io::load_into_strict(&net, &path).unwrap_err();
/// assert!(err.to_string().contains(r#"missing parameters ["b"]"#), "{err}");
/// assert_eq!(net.w.to_vec(), vec![0.0, 0.0]); // untouched
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// As [`load_into`], and [`Error::Format`] listing the missing and unexpected keys.
pub fn load_into_strict<T, M, P>(module: &M, path: P) -> Result<LoadReport>
where
    T: Element,
    M: Module<T> + ?Sized,
    P: AsRef<Path>,
{
    let state = super::load_safetensors::<T, _>(path)?;
    load_state_dict(module, &state, true)
}

/// Assigns named tensors to a module's parameters of the same names, in place (as
/// [`load_into`] does from a file; PyTorch's `load_state_dict`).
///
/// Use it to adapt a checkpoint before loading, e.g. to strip a prefix from its
/// keys. With `strict`, a missing parameter or an unexpected tensor is an error.
/// Nothing is assigned when an error is returned.
///
/// ```
/// # use ferrograd::nn::Module;
/// # struct Affine { w: Tensor<f32>, b: Tensor<f32> }
/// # impl Module<f32> for Affine {
/// #     fn forward(&self, x: &Tensor<f32>) -> Tensor<f32> { x.matmul(&self.w) + &self.b }
/// #     fn named_parameters(&self) -> Vec<(String, Tensor<f32>)> {
/// #         vec![("w".into(), self.w.clone()), ("b".into(), self.b.clone())]
/// #     }
/// # }
/// use std::collections::BTreeMap;
/// use ferrograd::Tensor;
/// // a checkpoint saved from a wrapper whose keys carry a "model." prefix
/// let checkpoint = BTreeMap::from([
///     ("model.w".to_string(), Tensor::<f32>::ones(&[2, 1])),
///     ("model.b".to_string(), Tensor::<f32>::ones(&[1])),
/// ]);
/// let state: BTreeMap<String, Tensor<f32>> = checkpoint
///     .into_iter()
///     .map(|(k, t)| (k.trim_start_matches("model.").to_string(), t))
///     .collect();
/// let net = Affine { w: Tensor::zeros(&[2, 1]), b: Tensor::zeros(&[1]) };
/// ferrograd::io::load_state_dict(&net, &state, true)?;
/// assert_eq!(net.b.to_vec(), vec![1.0]);
///
/// let wrong = BTreeMap::from([("w".to_string(), Tensor::<f32>::ones(&[1, 2]))]);
/// let err = ferrograd::io::load_state_dict(&net, &wrong, false).unwrap_err();
/// assert!(err.to_string().contains(r#"parameter "w" has shape [2, 1] in the module but [1, 2] in the checkpoint"#), "{err}");
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::Format`] naming every key whose shapes differ (with both shapes), or,
/// with `strict`, listing the missing and unexpected keys.
pub fn load_state_dict<T, M>(
    module: &M,
    state: &BTreeMap<String, Tensor<T>>,
    strict: bool,
) -> Result<LoadReport>
where
    T: Element,
    M: Module<T> + ?Sized,
{
    let params = module.named_parameters();
    let mut report = LoadReport::default();
    let mut plan = Vec::with_capacity(params.len());
    let mut mismatches = Vec::new();
    for (name, param) in &params {
        match state.get(name) {
            None => report.missing.push(name.clone()),
            Some(value) if value.shape() != param.shape() => mismatches.push(format!(
                "parameter {name:?} has shape {:?} in the module but {:?} in the checkpoint",
                param.shape(),
                value.shape()
            )),
            Some(value) => plan.push((name, param, value)),
        }
    }
    let known: BTreeSet<&str> = params.iter().map(|(name, _)| name.as_str()).collect();
    report.unexpected = state
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .cloned()
        .collect();
    if !mismatches.is_empty() {
        return Err(Error::Format(format!(
            "checkpoint does not fit the module: {}",
            mismatches.join("; ")
        )));
    }
    if strict && !report.is_complete() {
        return Err(Error::Format(format!(
            "checkpoint does not fit the module (strict): missing parameters {:?}, \
             unexpected tensors {:?}",
            report.missing, report.unexpected
        )));
    }
    for (name, param, value) in plan {
        param.assign(value)?;
        report.loaded.push(name.clone());
    }
    Ok(report)
}
