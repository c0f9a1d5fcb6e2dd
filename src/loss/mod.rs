//! Loss functions (mean-reduced) and their unreduced `per_sample` forms.
//!
//! Each loss follows PyTorch's formula of the same name with its default
//! reduction, returns a 0-d tensor, and is made of differentiable tensor ops, so
//! gradients flow to every tensor argument: the prediction, and the target too
//! (for `mse`, `l1`, `huber`, `bce`, `bce_with_logits`, `kl_div`). Class indices
//! (`&[usize]`) are plain data.
//!
//! | loss | inputs | per element / row |
//! |---|---|---|
//! | [`mse`] | `pred`, `target` | `(pred − target)²` |
//! | [`l1`] | `pred`, `target` | `\|pred − target\|` |
//! | [`huber`] | `pred`, `target`, `delta` | `½d²` if `\|d\| < delta`, else `delta·(\|d\| − ½delta)` |
//! | [`cross_entropy`] | logits `[N, C]`, class per row | `−log softmax(logits)[i, tᵢ]` |
//! | [`cross_entropy_with`] | the same and [`CrossEntropyOptions`] | with label smoothing, ignored rows |
//! | [`nll`] | log-probabilities `[N, C]`, class per row | `−log_probs[i, tᵢ]` |
//! | [`bce`] | probabilities, targets | `−(y·log p + (1 − y)·log(1 − p))`, logs clamped at −100 |
//! | [`bce_with_logits`] | logits, targets | the same on `σ(x)`, stable for any `x` |
//! | [`kl_div`] | `log_q`, `p` | `p·(log p − log_q)`, summed and divided by the size of axis 0 |
//!
//! # Shapes
//!
//! The two tensors of an elementwise loss must have *equal* shapes: a mismatch is
//! [`Error::ShapeMismatch`], never a broadcast. Broadcasting `[N]` predictions
//! against `[N, 1]` targets would silently compute an `[N, N]` loss (PyTorch warns
//! about exactly this); reshape one side first if you mean it.
//!
//! # Example: a classification step
//!
//! ```
//! use ferrograd::{loss, Tensor};
//! let x = Tensor::<f64>::from_vec(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], &[3, 2])?;
//! let w = Tensor::<f64>::zeros(&[2, 4]).requires_grad();
//! let loss = loss::cross_entropy(&x.matmul(&w), &[0, 3, 1])?;
//! assert!((loss.item() - 4f64.ln()).abs() < 1e-12); // uniform over 4 classes
//! let grads = loss.backward()?;
//! assert_eq!(grads.get(&w).unwrap().shape(), &[2, 4]);
//! # Ok::<(), ferrograd::Error>(())
//! ```

pub mod per_sample;

#[cfg(test)]
mod tests;

use crate::element::{c, mono, Element};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Options of [`cross_entropy_with`]; `Default` is PyTorch's (no smoothing, no
/// ignored index).
///
/// ```
/// use ferrograd::loss::CrossEntropyOptions;
/// let opts = CrossEntropyOptions { label_smoothing: 0.1, ..Default::default() };
/// assert_eq!(opts.ignore_index, None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CrossEntropyOptions {
    /// `ε` in `[0, 1]`: the target distribution becomes `(1 − ε)·onehot + ε/C`,
    /// so each row's loss is `(1 − ε)·(−logp[i, tᵢ]) + ε·mean_c(−logp[i, c])`.
    pub label_smoothing: f64,
    /// Rows whose target equals this index are left out: they add nothing and the
    /// mean is taken over the other rows (NaN when every row is ignored, as in
    /// PyTorch). It need not be a valid class (e.g. `usize::MAX` for padding).
    pub ignore_index: Option<usize>,
}

/// Mean squared error: `mean((pred − target)²)` over all elements.
///
/// ```
/// use ferrograd::{loss, Tensor};
/// let pred = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0], &[3])?.requires_grad();
/// let target = Tensor::<f32>::from_vec(vec![1.0, 0.0, 5.0], &[3])?;
/// let l = loss::mse(&pred, &target)?;
/// assert!((l.item() - 8.0 / 3.0).abs() < 1e-6); // (0 + 4 + 4) / 3
/// // d/dpred = 2(pred − target)/3
/// let g = l.backward()?.get(&pred).unwrap().to_vec();
/// assert!((g[1] - 4.0 / 3.0).abs() < 1e-6);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] unless both shapes are equal (see [Shapes](self#shapes)).
pub fn mse<T: Element>(pred: &Tensor<T>, target: &Tensor<T>) -> Result<Tensor<T>> {
    mono!(
        |pred: &Tensor<T>, target: &Tensor<T>| -> Result<Tensor<T>> {
            Ok(per_sample::mse(pred, target)?.mean())
        },
        (pred, target)
    )
}

/// Mean absolute error: `mean |pred − target|` over all elements. The gradient
/// where `pred = target` is 0.
///
/// ```
/// use ferrograd::{loss, Tensor};
/// let out = Tensor::<f64>::from_vec(vec![0.6, 0.4], &[2])?;
/// let target = Tensor::<f64>::from_vec(vec![1.0, 0.0], &[2])?;
/// assert!((loss::l1(&out, &target)?.item() - 0.4).abs() < 1e-12); // (0.4 + 0.4) / 2
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] unless both shapes are equal.
pub fn l1<T: Element>(pred: &Tensor<T>, target: &Tensor<T>) -> Result<Tensor<T>> {
    mono!(
        |pred: &Tensor<T>, target: &Tensor<T>| -> Result<Tensor<T>> {
            Ok(per_sample::l1(pred, target)?.mean())
        },
        (pred, target)
    )
}

/// Huber loss, the mean over all elements of `½d²` where `|d| < delta`, else
/// `delta·(|d| − ½delta)`, with `d = pred − target` (PyTorch's `huber_loss`).
///
/// ```
/// use ferrograd::{loss, Tensor};
/// let pred = Tensor::<f64>::zeros(&[3]);
/// let target = Tensor::<f64>::from_vec(vec![0.5, -2.0, 1.0], &[3])?;
/// // (0.125 + 1.5 + 0.5) / 3
/// assert!((loss::huber(&pred, &target, 1.0)?.item() - 2.125 / 3.0).abs() < 1e-12);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] unless both shapes are equal; [`Error::InvalidArgument`]
/// unless `delta > 0`.
pub fn huber<T: Element>(pred: &Tensor<T>, target: &Tensor<T>, delta: T) -> Result<Tensor<T>> {
    mono!(
        |pred: &Tensor<T>, target: &Tensor<T>, delta: T| -> Result<Tensor<T>> {
            Ok(per_sample::huber(pred, target, delta)?.mean())
        },
        (pred, target, delta)
    )
}

/// Cross-entropy of logits `[N, C]` against one class index per row: the mean over
/// rows of `−log softmax(logits)[i, tᵢ]` (PyTorch's `cross_entropy`).
///
/// Numerically stable (from `log_softmax`, never `log(softmax)`). The gradient with
/// respect to the logits is `(softmax − onehot) / N`.
///
/// ```
/// use ferrograd::{loss, Tensor};
/// let logits = Tensor::<f64>::from_vec(
///     vec![0.0, 0.0, 0.0, 0.0, 2f64.ln(), 5f64.ln()], &[2, 3])?;
/// // (−log(1/3) − log(5/8)) / 2
/// let expected = (3f64.ln() + 1.6f64.ln()) / 2.0;
/// assert!((loss::cross_entropy(&logits, &[1, 2])?.item() - expected).abs() < 1e-12);
/// // a class index out of range is an error naming it
/// assert!(matches!(
///     loss::cross_entropy(&logits, &[1, 3]),
///     Err(ferrograd::Error::IndexOutOfRange { index: 3, size: 3, .. })
/// ));
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] when `logits` is not 2-D or `targets.len()` differs
/// from `N`; [`Error::IndexOutOfRange`] naming the first class index not below `C`.
pub fn cross_entropy<T: Element>(logits: &Tensor<T>, targets: &[usize]) -> Result<Tensor<T>> {
    mono!(
        |logits: &Tensor<T>, targets: &[usize]| -> Result<Tensor<T>> {
            Ok(per_sample::cross_entropy(logits, targets)?.mean())
        },
        (logits, targets)
    )
}

/// [`cross_entropy`] with label smoothing and an ignored class index, as PyTorch:
/// each kept row contributes `(1 − ε)·(−logp[i, tᵢ]) + ε·mean_c(−logp[i, c])`, and
/// the mean is over the kept rows (NaN when none is kept).
///
/// ```
/// use ferrograd::{loss::{self, CrossEntropyOptions}, Tensor};
/// let logits = Tensor::<f64>::from_vec(vec![0.0, 2f64.ln(), 1.0, 2.0], &[2, 2])?;
/// let opts = CrossEntropyOptions { label_smoothing: 0.2, ignore_index: Some(7) };
/// // row 0 has logp [−log 3, −log 1.5]; row 1 is ignored
/// let expected = 0.8 * 1.5f64.ln() + 0.2 * (3f64.ln() + 1.5f64.ln()) / 2.0;
/// let l = loss::cross_entropy_with(&logits, &[1, 7], opts)?;
/// assert!((l.item() - expected).abs() < 1e-12);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// As [`cross_entropy`], and [`Error::InvalidArgument`] when `label_smoothing` is
/// not in `[0, 1]`.
pub fn cross_entropy_with<T: Element>(
    logits: &Tensor<T>,
    targets: &[usize],
    options: CrossEntropyOptions,
) -> Result<Tensor<T>> {
    mono!(
        |logits: &Tensor<T>,
         targets: &[usize],
         options: CrossEntropyOptions|
         -> Result<Tensor<T>> {
            let per_row = per_sample::cross_entropy_with(logits, targets, options)?;
            Ok(match options.ignore_index {
                None => per_row.mean(),
                Some(ignore) => {
                    let kept = targets.iter().filter(|&&t| t != ignore).count();
                    per_row.sum().div_scalar(c(kept as f64))
                }
            })
        },
        (logits, targets, options)
    )
}

/// Negative log-likelihood of log-probabilities `[N, C]` (e.g. `log_softmax`
/// output) against one class index per row: the mean over rows of
/// `−log_probs[i, tᵢ]` (PyTorch's `nll_loss`).
///
/// ```
/// use ferrograd::{loss, Tensor};
/// let log_probs = Tensor::<f32>::from_vec(vec![-1.0, -2.0, -3.0, -4.0], &[2, 2])?;
/// assert_eq!(loss::nll(&log_probs, &[1, 0])?.item(), 2.5); // (2 + 3) / 2
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// As [`cross_entropy`].
pub fn nll<T: Element>(log_probs: &Tensor<T>, targets: &[usize]) -> Result<Tensor<T>> {
    mono!(
        |log_probs: &Tensor<T>, targets: &[usize]| -> Result<Tensor<T>> {
            Ok(per_sample::nll(log_probs, targets)?.mean())
        },
        (log_probs, targets)
    )
}

/// Binary cross-entropy of probabilities, the mean over all elements of
/// `−(y·log p + (1 − y)·log(1 − p))`, each log clamped at −100 as PyTorch's
/// `binary_cross_entropy` (see [`per_sample::bce`] for the gradient at the clamp).
///
/// ```
/// use ferrograd::{loss, Tensor};
/// let p = Tensor::<f64>::from_vec(vec![0.5, 0.8], &[2])?;
/// let y = Tensor::<f64>::from_vec(vec![1.0, 0.0], &[2])?;
/// let expected = (2f64.ln() + 5f64.ln()) / 2.0; // (−log 0.5 − log 0.2) / 2
/// assert!((loss::bce(&p, &y)?.item() - expected).abs() < 1e-12);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] unless both shapes are equal; [`Error::InvalidArgument`]
/// naming the first probability outside `[0, 1]` (or NaN).
pub fn bce<T: Element>(probs: &Tensor<T>, targets: &Tensor<T>) -> Result<Tensor<T>> {
    mono!(
        |probs: &Tensor<T>, targets: &Tensor<T>| -> Result<Tensor<T>> {
            Ok(per_sample::bce(probs, targets)?.mean())
        },
        (probs, targets)
    )
}

/// Binary cross-entropy of logits, the mean over all elements of
/// `max(x, 0) − x·y + log(1 + e^−|x|)` (PyTorch's
/// `binary_cross_entropy_with_logits`): `bce(sigmoid(x), y)` without its overflow
/// or clamping, stable for logits of ±100 and beyond.
///
/// ```
/// use ferrograd::{loss, Tensor};
/// let x = Tensor::<f32>::from_vec(vec![0.0, 100.0, -100.0], &[3])?;
/// let y = Tensor::<f32>::from_vec(vec![1.0, 0.0, 1.0], &[3])?;
/// let expected = (2f32.ln() + 200.0) / 3.0;
/// assert!((loss::bce_with_logits(&x, &y)?.item() - expected).abs() < 1e-4);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] unless both shapes are equal.
pub fn bce_with_logits<T: Element>(logits: &Tensor<T>, targets: &Tensor<T>) -> Result<Tensor<T>> {
    mono!(
        |logits: &Tensor<T>, targets: &Tensor<T>| -> Result<Tensor<T>> {
            Ok(per_sample::bce_with_logits(logits, targets)?.mean())
        },
        (logits, targets)
    )
}

/// Kullback–Leibler divergence `KL(p ‖ q)` from log-probabilities `log_q` (the
/// model's, e.g. `log_softmax` output) and probabilities `p` (the target):
/// `Σ p·(log p − log_q) / N` with `N` the size of axis 0 (1 for a 0-d tensor), which
/// is PyTorch's `kl_div(log_q, p, reduction="batchmean")`.
///
/// Terms with `p = 0` contribute exactly 0 (even against `log_q = -inf`) and send
/// gradient 0 to both arguments; elsewhere the gradients are `−p/N` for `log_q`
/// and `(log p + 1 − log_q)/N` for `p`.
///
/// ```
/// use ferrograd::{loss, Tensor};
/// let q = [0.25f64, 0.25, 0.5, 0.5, 0.25, 0.25];
/// let log_q = Tensor::<f64>::from_vec(q.iter().map(|v| v.ln()).collect(), &[2, 3])?;
/// let p = Tensor::<f64>::from_vec(vec![0.5, 0.5, 0.0, 1.0, 0.0, 0.0], &[2, 3])?;
/// // row 0: 2·0.5·log(0.5/0.25) = log 2; row 1: 1·log(1/0.5) = log 2; over N = 2
/// assert!((loss::kl_div(&log_q, &p)?.item() - 2f64.ln()).abs() < 1e-12);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] unless both shapes are equal.
pub fn kl_div<T: Element>(log_q: &Tensor<T>, p: &Tensor<T>) -> Result<Tensor<T>> {
    mono!(
        |log_q: &Tensor<T>, p: &Tensor<T>| -> Result<Tensor<T>> {
            let n = log_q.shape().first().copied().unwrap_or(1);
            Ok(per_sample::kl_div(log_q, p)?.sum().div_scalar(c(n as f64)))
        },
        (log_q, p)
    )
}

// ----- argument checks shared with `per_sample` -----

/// Elementwise losses take equal shapes: no broadcasting (see the module docs).
fn same_shape<T: Element>(op: &'static str, a: &Tensor<T>, b: &Tensor<T>) -> Result<()> {
    if a.shape() == b.shape() {
        Ok(())
    } else {
        Err(Error::shape(op, a.shape(), b.shape()))
    }
}

/// Checks a `[N, C]` score tensor against one class index per row (rows whose
/// target is `ignore` are exempt) and returns `C`.
fn check_class_targets<T: Element>(
    op: &'static str,
    scores: &Tensor<T>,
    targets: &[usize],
    ignore: Option<usize>,
) -> Result<usize> {
    let &[n, classes] = scores.shape() else {
        return Err(Error::invalid(
            op,
            format!(
                "expects scores of shape [N, C] (2-D), got shape {:?}",
                scores.shape()
            ),
        ));
    };
    if targets.len() != n {
        return Err(Error::invalid(
            op,
            format!(
                "expects one class index per row: {} targets for scores of shape {:?} ({n} rows)",
                targets.len(),
                scores.shape()
            ),
        ));
    }
    match targets.iter().find(|&&t| t >= classes && Some(t) != ignore) {
        Some(&bad) => Err(Error::IndexOutOfRange {
            op,
            index: bad,
            size: classes,
            shape: scores.shape().to_vec(),
        }),
        None => Ok(classes),
    }
}

fn check_smoothing(op: &'static str, eps: f64) -> Result<()> {
    if (0.0..=1.0).contains(&eps) {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("label_smoothing must lie in [0, 1], got {eps}"),
        ))
    }
}

fn check_delta<T: Element>(delta: T) -> Result<()> {
    if delta > T::zero() {
        Ok(())
    } else {
        Err(Error::invalid(
            "huber",
            format!("delta must be positive, got {delta}"),
        ))
    }
}

/// Probabilities must lie in `[0, 1]` (PyTorch's `binary_cross_entropy` refuses
/// others too); NaN is refused as well.
fn check_probs<T: Element>(op: &'static str, p: &Tensor<T>) -> Result<()> {
    let bad = p.with_contiguous(|d| {
        d.iter()
            .position(|&v| !(v >= T::zero() && v <= T::one()))
            .map(|i| (i, d[i]))
    });
    match bad {
        None => Ok(()),
        Some((i, v)) => Err(Error::invalid(
            op,
            format!(
                "probabilities must lie in [0, 1], got {v} at element {i} (row-major) of shape {:?}",
                p.shape()
            ),
        )),
    }
}
