//! A module's parameters and buffers to and from a checkpoint, by name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use crate::element::Element;
use crate::error::{Error, Result};
use crate::nn::ModuleParams;
use crate::tensor::Tensor;

/// What [`load_into_lenient`] and [`load_state_dict`] did, key by key.
///
/// ```
/// # use ferrograd::nn::Module;
/// # #[derive(Module)]
/// # struct Affine { w: Tensor<f32>, b: Tensor<f32> }
/// # impl Module<f32> for Affine {
/// #     fn forward(&self, x: &Tensor<f32>) -> Tensor<f32> { x.matmul(&self.w) + &self.b }
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
    /// Parameters and buffers that were overwritten, in the order of
    /// [`named_parameters`](ModuleParams::named_parameters) then
    /// [`named_buffers`](ModuleParams::named_buffers).
    pub loaded: Vec<String>,
    /// Parameters and buffers with no tensor of their name in the checkpoint:
    /// left unchanged.
    pub missing: Vec<String>,
    /// Tensors of the checkpoint that name no parameter or buffer (sorted): ignored.
    pub unexpected: Vec<String>,
}

impl LoadReport {
    /// True when every parameter and buffer was loaded and every tensor was used.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loaded {} tensors; missing {:?}; unexpected {:?}",
            self.loaded.len(),
            self.missing,
            self.unexpected
        )
    }
}

/// Writes a module's [`named_parameters`](ModuleParams::named_parameters) and
/// [`named_buffers`](ModuleParams::named_buffers) to a safetensors file, as
/// [`save_safetensors`](super::save_safetensors) does.
///
/// ```
/// # use ferrograd::nn::Module;
/// # #[derive(Module)]
/// # struct Affine { w: Tensor<f32>, b: Tensor<f32> }
/// # impl Module<f32> for Affine {
/// #     fn forward(&self, x: &Tensor<f32>) -> Tensor<f32> { x.matmul(&self.w) + &self.b }
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
/// tensors (parameters or buffers) share a name, [`Error::Io`] when the file
/// cannot be written.
pub fn save_module<T, M, P>(module: &M, path: P) -> Result<()>
where
    T: Element,
    M: ModuleParams<T> + ?Sized,
    P: AsRef<Path>,
{
    let mut tensors = module.named_parameters();
    tensors.extend(module.named_buffers());
    super::save_safetensors(path, &tensors)
}

/// Loads a safetensors file into a module's parameters and buffers, in place, by
/// name; the file must fit the module exactly (as PyTorch's `load_state_dict`,
/// which is strict by default).
///
/// Each tensor of the file overwrites the parameter or buffer of its name (as
/// [`named_parameters`](ModuleParams::named_parameters) and
/// [`named_buffers`](ModuleParams::named_buffers) name them) with
/// [`Tensor::assign`]: every handle of the parameter (an optimizer's, a tied
/// layer's) sees the new values. The file's `F32`/`F64` tensors are converted to
/// `T` as by [`load_safetensors`](super::load_safetensors). A parameter or buffer
/// the file lacks, a tensor of the file that names none, or a shape that differs
/// is an error, and then nothing is assigned. To load a partial checkpoint (a
/// pretrained body under a new head), use [`load_into_lenient`].
///
/// ```
/// # use ferrograd::nn::Module;
/// # #[derive(Module)]
/// # struct Affine { w: Tensor<f32>, b: Tensor<f32> }
/// # impl Module<f32> for Affine {
/// #     fn forward(&self, x: &Tensor<f32>) -> Tensor<f32> { x.matmul(&self.w) + &self.b }
/// # }
/// use ferrograd::Tensor;
/// let path = std::env::temp_dir().join(format!("ferrograd-load-into-{}.safetensors", std::process::id()));
/// let w = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2, 1])?;  // an f64 checkpoint
/// let b = Tensor::<f64>::from_vec(vec![0.5], &[1])?;
/// ferrograd::io::save_safetensors(&path, &[("w", &w), ("b", &b)])?;
///
/// let net = Affine { w: Tensor::zeros(&[2, 1]), b: Tensor::zeros(&[1]) };
/// let report = ferrograd::io::load_into(&net, &path)?;
/// assert_eq!(net.w.to_vec(), vec![1.0f32, 2.0]);
/// assert_eq!(report.loaded, ["w", "b"]);
///
/// // a checkpoint without "b": an error, and nothing is loaded
/// ferrograd::io::save_safetensors(&path, &[("w", &w)])?;
/// let fresh = Affine { w: Tensor::zeros(&[2, 1]), b: Tensor::zeros(&[1]) };
/// let err = ferrograd::io::load_into(&fresh, &path).unwrap_err();
/// assert!(err.to_string().contains(r#"missing keys ["b"]"#), "{err}");
/// assert_eq!(fresh.w.to_vec(), vec![0.0, 0.0]); // untouched
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// As [`load_safetensors`](super::load_safetensors), and [`Error::Format`] naming
/// every missing key, every unexpected key and every key whose shapes differ
/// (with both shapes), all in one message.
pub fn load_into<T, M, P>(module: &M, path: P) -> Result<LoadReport>
where
    T: Element,
    M: ModuleParams<T> + ?Sized,
    P: AsRef<Path>,
{
    let state = super::load_safetensors::<T, _>(path)?;
    load_state_dict(module, &state, true)
}

/// Like [`load_into`], but a parameter or buffer that the file lacks keeps its
/// values and a tensor that names none is ignored; both are listed in the
/// [`LoadReport`]. Shapes must still fit. PyTorch's `load_state_dict(strict=False)`.
///
/// ```
/// # use ferrograd::nn::Module;
/// # #[derive(Module)]
/// # struct Affine { w: Tensor<f32>, b: Tensor<f32> }
/// # impl Module<f32> for Affine {
/// #     fn forward(&self, x: &Tensor<f32>) -> Tensor<f32> { x.matmul(&self.w) + &self.b }
/// # }
/// use ferrograd::Tensor;
/// let path = std::env::temp_dir().join(format!("ferrograd-lenient-{}.safetensors", std::process::id()));
/// let w = Tensor::<f32>::ones(&[2, 1]);
/// ferrograd::io::save_safetensors(&path, &[("w", &w), ("old_head.w", &w)])?;
///
/// let net = Affine { w: Tensor::zeros(&[2, 1]), b: Tensor::full(&[1], 7.0) };
/// let report = ferrograd::io::load_into_lenient(&net, &path)?;
/// assert_eq!(report.loaded, ["w"]);
/// assert_eq!(report.missing, ["b"]);
/// assert_eq!(report.unexpected, ["old_head.w"]);
/// assert_eq!((net.w.to_vec(), net.b.to_vec()), (vec![1.0, 1.0], vec![7.0]));
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// As [`load_safetensors`](super::load_safetensors), and [`Error::Format`] naming
/// every key whose shapes differ (with both shapes); nothing is assigned then.
pub fn load_into_lenient<T, M, P>(module: &M, path: P) -> Result<LoadReport>
where
    T: Element,
    M: ModuleParams<T> + ?Sized,
    P: AsRef<Path>,
{
    let state = super::load_safetensors::<T, _>(path)?;
    load_state_dict(module, &state, false)
}

/// The same as [`load_into`], which is strict now.
///
/// # Errors
/// As [`load_into`].
#[deprecated(
    note = "load_into is strict now: use load_into (or load_into_lenient for a partial checkpoint)"
)]
pub fn load_into_strict<T, M, P>(module: &M, path: P) -> Result<LoadReport>
where
    T: Element,
    M: ModuleParams<T> + ?Sized,
    P: AsRef<Path>,
{
    load_into(module, path)
}

/// Assigns named tensors to a module's parameters and buffers of the same names,
/// in place (as [`load_into`] and [`load_into_lenient`] do from a file; PyTorch's
/// `load_state_dict`).
///
/// Use it to adapt a checkpoint before loading, e.g. to strip a prefix from its
/// keys. With `strict`, a missing key or an unexpected tensor is an error; shapes
/// must fit either way. Nothing is assigned when an error is returned.
///
/// ```
/// # use ferrograd::nn::Module;
/// # #[derive(Module)]
/// # struct Affine { w: Tensor<f32>, b: Tensor<f32> }
/// # impl Module<f32> for Affine {
/// #     fn forward(&self, x: &Tensor<f32>) -> Tensor<f32> { x.matmul(&self.w) + &self.b }
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
/// [`Error::Format`] naming every key whose shapes differ (with both shapes), and,
/// with `strict`, every missing and unexpected key, all in one message.
pub fn load_state_dict<T, M>(
    module: &M,
    state: &BTreeMap<String, Tensor<T>>,
    strict: bool,
) -> Result<LoadReport>
where
    T: Element,
    M: ModuleParams<T> + ?Sized,
{
    let params = module.named_parameters();
    let buffers = module.named_buffers();
    let targets = params
        .iter()
        .map(|p| ("parameter", p))
        .chain(buffers.iter().map(|b| ("buffer", b)));
    let mut report = LoadReport::default();
    let mut plan = Vec::with_capacity(params.len() + buffers.len());
    let mut mismatches = Vec::new();
    for (kind, (name, target)) in targets {
        match state.get(name) {
            None => report.missing.push(name.clone()),
            Some(value) if value.shape() != target.shape() => mismatches.push(format!(
                "{kind} {name:?} has shape {:?} in the module but {:?} in the checkpoint",
                target.shape(),
                value.shape()
            )),
            Some(value) => plan.push((name, target, value)),
        }
    }
    let known: BTreeSet<&str> = params
        .iter()
        .chain(&buffers)
        .map(|(name, _)| name.as_str())
        .collect();
    report.unexpected = state
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .cloned()
        .collect();
    let mut problems = Vec::new();
    if strict && !report.missing.is_empty() {
        problems.push(format!("missing keys {:?}", report.missing));
    }
    if strict && !report.unexpected.is_empty() {
        problems.push(format!("unexpected keys {:?}", report.unexpected));
    }
    problems.extend(mismatches);
    if !problems.is_empty() {
        return Err(Error::Format(format!(
            "checkpoint does not fit the module: {}",
            problems.join("; ")
        )));
    }
    for (name, target, value) in plan {
        target.assign(value)?;
        report.loaded.push(name.clone());
    }
    Ok(report)
}
