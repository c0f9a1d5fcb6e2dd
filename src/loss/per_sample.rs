//! Unreduced losses: one value per element, or per row for `cross_entropy` and `nll`.
//!
//! Each function here is its [`loss`](crate::loss) namesake before the mean: reduce
//! it yourself (a sum, a weighted mean, a mask) when the mean is not what you want.
//!
//! ```
//! use ferrograd::{loss::per_sample, Tensor};
//! let out = Tensor::<f64>::from_vec(vec![0.6, 0.4], &[2])?;
//! let target = Tensor::<f64>::from_vec(vec![1.0, 0.0], &[2])?;
//! // |1 − 0.6| + |0 − 0.4| = 0.8
//! assert!((per_sample::l1(&out, &target)?.sum().item() - 0.8).abs() < 1e-12);
//! # Ok::<(), ferrograd::Error>(())
//! ```

use super::{
    check_class_targets, check_delta, check_probs, check_smoothing, same_shape, CrossEntropyOptions,
};
use crate::element::{c, mono, Element};
use crate::error::Result;
use crate::tensor::Tensor;

/// `(pred − target)²` elementwise.
///
/// ```
/// use ferrograd::{loss::per_sample, Tensor};
/// let pred = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0], &[3])?;
/// let target = Tensor::<f32>::from_vec(vec![1.0, 0.0, 5.0], &[3])?;
/// assert_eq!(per_sample::mse(&pred, &target)?.to_vec(), vec![0.0, 4.0, 4.0]);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) unless both shapes are equal
/// (no broadcasting, see [the module docs](crate::loss#shapes)).
pub fn mse<T: Element>(pred: &Tensor<T>, target: &Tensor<T>) -> Result<Tensor<T>> {
    mono!(
        |pred: &Tensor<T>, target: &Tensor<T>| -> Result<Tensor<T>> {
            same_shape("mse", pred, target)?;
            Ok(pred.sub(target).square())
        },
        (pred, target)
    )
}

/// `|pred − target|` elementwise. The gradient where `pred = target` is 0.
///
/// ```
/// use ferrograd::{loss::per_sample, Tensor};
/// let out = Tensor::<f64>::from_vec(vec![0.6, 0.4], &[2])?;
/// let target = Tensor::<f64>::from_vec(vec![1.0, 0.0], &[2])?;
/// let l = per_sample::l1(&out, &target)?;
/// assert!((l.sum().item() - 0.8).abs() < 1e-12); // 0.4 + 0.4
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) unless both shapes are equal.
pub fn l1<T: Element>(pred: &Tensor<T>, target: &Tensor<T>) -> Result<Tensor<T>> {
    mono!(
        |pred: &Tensor<T>, target: &Tensor<T>| -> Result<Tensor<T>> {
            same_shape("l1", pred, target)?;
            Ok(pred.sub(target).abs())
        },
        (pred, target)
    )
}

/// The Huber loss elementwise, with `d = pred − target`: `½d²` where `|d| < delta`,
/// else `delta·(|d| − ½delta)` (PyTorch's `huber_loss`). Quadratic near 0, linear
/// beyond `delta`; value and gradient are continuous at `|d| = delta`.
///
/// ```
/// use ferrograd::{loss::per_sample, Tensor};
/// let pred = Tensor::<f64>::zeros(&[3]);
/// let target = Tensor::<f64>::from_vec(vec![0.5, -2.0, 1.0], &[3])?;
/// // ½·0.5², 1·(2 − ½), 1·(1 − ½)
/// assert_eq!(per_sample::huber(&pred, &target, 1.0)?.to_vec(), vec![0.125, 1.5, 0.5]);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) unless both shapes are
/// equal; [`Error::InvalidArgument`](crate::Error::InvalidArgument) unless
/// `delta > 0` (`+inf` is allowed and gives `½d²` everywhere).
pub fn huber<T: Element>(pred: &Tensor<T>, target: &Tensor<T>, delta: T) -> Result<Tensor<T>> {
    mono!(
        |pred: &Tensor<T>, target: &Tensor<T>, delta: T| -> Result<Tensor<T>> {
            same_shape("huber", pred, target)?;
            check_delta(delta)?;
            let d = pred.sub(target);
            if delta.is_infinite() {
                return Ok(d.square().mul_scalar(c(0.5)));
            }
            // With a = |d| and q = min(a, delta): ½q² + delta·(a − q) is ½a² below delta
            // and delta·(a − ½delta) above, with no branch in the graph.
            let a = d.abs();
            let q = a.clamp(T::zero(), delta);
            Ok(q.square().mul_scalar(c(0.5)) + a.sub(&q).mul_scalar(delta))
        },
        (pred, target, delta)
    )
}

/// `−log softmax(logits)[i, tᵢ]` for each row `i` of `logits` `[N, C]`: shape `[N]`.
///
/// Computed from `log_softmax` (never `log(softmax)`), so logits of ±1000 are safe.
/// The class indices are plain data (no gradient).
///
/// ```
/// use ferrograd::{loss::per_sample, Tensor};
/// // row 0: three equal logits, −log(1/3); row 1: softmax [1, 2, 5]/8, −log(5/8)
/// let logits = Tensor::<f64>::from_vec(
///     vec![0.0, 0.0, 0.0, 0.0, 2f64.ln(), 5f64.ln()], &[2, 3])?;
/// let l = per_sample::cross_entropy(&logits, &[1, 2])?;
/// assert_eq!(l.shape(), &[2]);
/// let v = l.to_vec();
/// assert!((v[0] - 3f64.ln()).abs() < 1e-12 && (v[1] - 1.6f64.ln()).abs() < 1e-12);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when `logits` is not
/// 2-D or `targets.len()` differs from `N`; [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange)
/// naming the first class index that is not below `C`.
pub fn cross_entropy<T: Element>(logits: &Tensor<T>, targets: &[usize]) -> Result<Tensor<T>> {
    mono!(
        |logits: &Tensor<T>, targets: &[usize]| -> Result<Tensor<T>> {
            cross_entropy_with(logits, targets, CrossEntropyOptions::default())
        },
        (logits, targets)
    )
}

/// [`cross_entropy`] with label smoothing and an ignored class index, per row:
/// `(1 − ε)·(−logp[i, tᵢ]) + ε·mean_c(−logp[i, c])`, and exactly 0 for a row whose
/// target is `ignore_index` (PyTorch's `reduction="none"`).
///
/// ```
/// use ferrograd::{loss::{per_sample, CrossEntropyOptions}, Tensor};
/// let logits = Tensor::<f64>::zeros(&[2, 4]);
/// let opts = CrossEntropyOptions { ignore_index: Some(9), ..Default::default() };
/// let l = per_sample::cross_entropy_with(&logits, &[3, 9], opts)?.to_vec();
/// assert!((l[0] - 4f64.ln()).abs() < 1e-12);
/// assert_eq!(l[1], 0.0);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// As [`cross_entropy`] (a target equal to `ignore_index` is never out of range),
/// and [`Error::InvalidArgument`](crate::Error::InvalidArgument) when
/// `label_smoothing` is not in `[0, 1]`.
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
            const OP: &str = "cross_entropy";
            let classes = check_class_targets(OP, logits, targets, options.ignore_index)?;
            check_smoothing(OP, options.label_smoothing)?;
            let logp = logits.try_log_softmax(1)?;
            let mut loss = neg_picked(&logp, targets, classes, options.ignore_index);
            let eps = options.label_smoothing;
            if eps > 0.0 {
                // Skipped when ε = 0, so that a −inf logit off target cannot make 0·inf.
                let smooth = logp.mean_axis(1, false).neg();
                loss = loss.mul_scalar(c(1.0 - eps)) + smooth.mul_scalar(c(eps));
            }
            if let Some(mask) = ignored_rows(targets, options.ignore_index) {
                loss = loss.masked_fill(&mask, T::zero());
            }
            Ok(loss)
        },
        (logits, targets, options)
    )
}

/// `−log_probs[i, tᵢ]` for each row `i` of `log_probs` `[N, C]`: shape `[N]`.
/// Feed it `log_softmax` output; `nll(log_softmax(x)) = cross_entropy(x)`.
///
/// ```
/// use ferrograd::{loss::per_sample, Tensor};
/// let log_probs = Tensor::<f32>::from_vec(vec![-1.0, -2.0, -3.0, -4.0], &[2, 2])?;
/// assert_eq!(per_sample::nll(&log_probs, &[1, 0])?.to_vec(), vec![2.0, 3.0]);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// As [`cross_entropy`].
pub fn nll<T: Element>(log_probs: &Tensor<T>, targets: &[usize]) -> Result<Tensor<T>> {
    mono!(
        |log_probs: &Tensor<T>, targets: &[usize]| -> Result<Tensor<T>> {
            let classes = check_class_targets("nll", log_probs, targets, None)?;
            Ok(neg_picked(log_probs, targets, classes, None))
        },
        (log_probs, targets)
    )
}

/// Binary cross-entropy of probabilities, elementwise:
/// `−(y·log p + (1 − y)·log(1 − p))` with each log clamped at −100, as PyTorch,
/// so that `p = 0` or `p = 1` gives a finite loss (at most 100 for targets in
/// `[0, 1]`) and no NaN.
///
/// The gradients are PyTorch's: `(p − y) / max(p(1 − p), 1e-12)` for the
/// probabilities (so at most 1e12 in size, also at `p = 0` or `1` where the
/// clamped function is flat), and `max(log(1 − p), −100) − max(log p, −100)` for
/// the targets. Prefer [`bce_with_logits`] on raw scores: it is stable without
/// clamping.
///
/// ```
/// use ferrograd::{loss::per_sample, Tensor};
/// let p = Tensor::<f64>::from_vec(vec![0.5, 0.0, 1.0], &[3])?;
/// let y = Tensor::<f64>::from_vec(vec![1.0, 1.0, 1.0], &[3])?;
/// let l = per_sample::bce(&p, &y)?.to_vec();
/// assert!((l[0] - 2f64.ln()).abs() < 1e-12);
/// assert_eq!(l[1..], [100.0, 0.0]);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) unless both shapes are
/// equal; [`Error::InvalidArgument`](crate::Error::InvalidArgument) naming the first
/// probability outside `[0, 1]` (or NaN), as PyTorch refuses them. Targets are not
/// checked (soft labels are fine).
pub fn bce<T: Element>(probs: &Tensor<T>, targets: &Tensor<T>) -> Result<Tensor<T>> {
    mono!(
        |probs: &Tensor<T>, targets: &Tensor<T>| -> Result<Tensor<T>> {
            same_shape("bce", probs, targets)?;
            check_probs("bce", probs)?;
            Ok(crate::ops::bce(probs, targets))
        },
        (probs, targets)
    )
}

/// Binary cross-entropy of logits (scores before a sigmoid), elementwise:
/// `−(y·log σ(x) + (1 − y)·log(1 − σ(x)))`, PyTorch's `binary_cross_entropy_with_logits`.
///
/// Computed as `y·softplus(−x) + (1 − y)·softplus(x)`, which equals
/// `max(x, 0) − x·y + log(1 + e^−|x|)` and is exact for logits of ±100 (no
/// overflow, and no cancellation for 0/1 targets: the loss of a confident right
/// answer keeps its few correct digits instead of rounding to 0). The gradients are
/// `σ(x) − y` for the logits and `−x` for the targets.
///
/// ```
/// use ferrograd::{loss::per_sample, Tensor};
/// let x = Tensor::<f64>::from_vec(vec![0.0, 100.0, -100.0, 20.0], &[4])?;
/// let y = Tensor::<f64>::from_vec(vec![1.0, 0.0, 1.0, 1.0], &[4])?;
/// let l = per_sample::bce_with_logits(&x, &y)?.to_vec();
/// assert!((l[0] - 2f64.ln()).abs() < 1e-12);
/// assert_eq!(l[1..3], [100.0, 100.0]);
/// assert!((l[3] / (-20f64).exp() - 1.0).abs() < 1e-8); // log(1 + e⁻²⁰) ≈ e⁻²⁰
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) unless both shapes are equal.
pub fn bce_with_logits<T: Element>(logits: &Tensor<T>, targets: &Tensor<T>) -> Result<Tensor<T>> {
    mono!(
        |logits: &Tensor<T>, targets: &Tensor<T>| -> Result<Tensor<T>> {
            same_shape("bce_with_logits", logits, targets)?;
            // −log σ(x) = softplus(−x) and −log(1 − σ(x)) = softplus(x).
            let pos = logits.neg().softplus();
            let neg = logits.softplus();
            Ok(targets.mul(&pos) + targets.rsub_scalar(T::one()).mul(&neg))
        },
        (logits, targets)
    )
}

/// The pointwise KL divergence terms `p·(log p − log_q)`, with `log_q` given as
/// log-probabilities and `p` as probabilities (PyTorch's `kl_div` with
/// `reduction="none"`). A term with `p = 0` is exactly 0, even where `log_q` is
/// `-inf`.
///
/// Gradients: `−p` for `log_q`, and `log p + 1 − log_q` for `p`; where `p = 0`
/// (where `p·log p` has no derivative) both are 0, the convention of PyTorch
/// before 1.13 (later versions return NaN for `p` there).
///
/// ```
/// use ferrograd::{loss::per_sample, Tensor};
/// let log_q = Tensor::<f64>::from_vec(vec![0.25f64.ln(), f64::NEG_INFINITY], &[2])?;
/// let p = Tensor::<f64>::from_vec(vec![0.5, 0.0], &[2])?;
/// let t = per_sample::kl_div(&log_q, &p)?.to_vec();
/// assert!((t[0] - 0.5 * 2f64.ln()).abs() < 1e-12); // 0.5·(log 0.5 − log 0.25)
/// assert_eq!(t[1], 0.0);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) unless both shapes are equal.
pub fn kl_div<T: Element>(log_q: &Tensor<T>, p: &Tensor<T>) -> Result<Tensor<T>> {
    mono!(
        |log_q: &Tensor<T>, p: &Tensor<T>| -> Result<Tensor<T>> {
            same_shape("kl_div", log_q, p)?;
            // Where p = 0, read log p as log 1 and log_q as 0: the term is 0·(0 − 0) = 0,
            // and masked_fill sends no gradient through the replaced slots.
            let (p_safe, lq) = match zero_mask(p) {
                Some(zero) => (
                    p.masked_fill(&zero, T::one()),
                    log_q.masked_fill(&zero, T::zero()),
                ),
                None => (p.clone(), log_q.clone()),
            };
            Ok(p.mul(&p_safe.log().sub(&lq)))
        },
        (log_q, p)
    )
}

// ----- helpers -----

/// `−x[i, tᵢ]` for each row of a validated `[N, C]` tensor, gathered through a flat
/// view with `index_select` (its backward scatters into the picked slots only).
/// Rows whose target is `ignore` pick class 0; the caller masks them.
fn neg_picked<T: Element>(
    x: &Tensor<T>,
    targets: &[usize],
    classes: usize,
    ignore: Option<usize>,
) -> Tensor<T> {
    if classes == 0 {
        // Only possible when every row is ignored: zeros [N], still in the graph.
        return x.sum_axis(1, false);
    }
    let flat: Vec<usize> = targets
        .iter()
        .enumerate()
        .map(|(i, &t)| i * classes + if Some(t) == ignore { 0 } else { t })
        .collect();
    x.reshape(&[targets.len() * classes])
        .index_select(0, &flat)
        .neg()
}

/// A `[N]` mask of the rows whose target is `ignore`, or `None` when there are none.
fn ignored_rows<T: Element>(targets: &[usize], ignore: Option<usize>) -> Option<Tensor<T>> {
    let ignore = ignore?;
    if !targets.contains(&ignore) {
        return None;
    }
    let mask = targets
        .iter()
        .map(|&t| if t == ignore { T::one() } else { T::zero() })
        .collect();
    Some(Tensor::from_data(mask, &[targets.len()]))
}

/// A mask of the elements equal to 0, or `None` when there are none.
fn zero_mask<T: Element>(x: &Tensor<T>) -> Option<Tensor<T>> {
    if !x.with_contiguous(|d| d.iter().any(|v| *v == T::zero())) {
        return None;
    }
    Some(crate::ops::map_plain(x, crate::ops::Cheap, |v| {
        if v == T::zero() {
            T::one()
        } else {
            T::zero()
        }
    }))
}
