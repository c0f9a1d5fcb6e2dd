//! Anomaly mode: a forward op that makes a NaN out of inputs without one
//! panics, a backward rule that makes a NaN or an infinity is an
//! [`Error::Anomaly`], and both name the op, its input shapes and the line of
//! the user's code that created it.
//!
//! Normal runs pay one relaxed load of a global count per op. Only while a
//! guard is alive does an op capture a backtrace (its creation site, kept in a
//! side table keyed by node id and dropped with the node).

use std::backtrace::Backtrace;
use std::cell::Cell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::flags;
use crate::element::Element;
use crate::error::Error;
use crate::tensor::Tensor;

/// Anomaly guards alive on all threads (ops test this before the thread's own state).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Anomaly guards alive on this thread.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// True while this thread runs a backward walk (whose rules are checked by
    /// the walk, with an error, instead of by the forward check's panic).
    static IN_WALK: Cell<bool> = const { Cell::new(false) };
}

/// Where recorded ops were created, for nodes recorded in anomaly mode.
static SITES: Mutex<Option<HashMap<usize, Arc<Backtrace>>>> = Mutex::new(None);

fn sites() -> MutexGuard<'static, Option<HashMap<usize, Arc<Backtrace>>>> {
    SITES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Turns anomaly detection on for this thread until the returned guard is
/// dropped (as PyTorch's `torch.autograd.detect_anomaly()`); guards nest.
///
/// While it is on:
/// - an op whose output holds a NaN that none of its inputs held **panics**,
///   naming the op, its input shapes and the line that called it (infinities
///   are legitimate in a forward pass, e.g. `-inf` in an attention mask);
/// - every recorded op notes where it was created, and a backward pass whose
///   rule produces a NaN or an infinity returns [`Error::Anomaly`] naming the
///   op, its input shapes and that place.
///
/// The place is the first stack frame outside ferrograd: the line of your
/// code that called the op, or that called the layer (`Linear::forward`) or
/// composite function (`loss::cross_entropy`) the op ran inside, which the
/// message names as well. It needs debug info for file and line (the default
/// in `dev` and `test` builds); without it the function's name is given.
///
/// Every op captures a backtrace while the guard is on: expect forward passes
/// many times slower. Without a guard, ops pay one relaxed atomic load.
///
/// ```
/// use ferrograd::{detect_anomaly, Error, Tensor};
/// let x = Tensor::<f64>::from_vec(vec![0.0, 4.0], &[2])?.requires_grad();
/// let _guard = detect_anomaly();
/// let y = x.sqrt().sum();                    // fine forward: sqrt(0) = 0
/// match y.backward() {                       // but d sqrt(x)/dx = 1/(2·sqrt(0)) = inf
///     Err(Error::Anomaly { op, input_shapes, value, location, .. }) => {
///         assert_eq!(op, "sqrt");
///         assert_eq!(input_shapes, vec![vec![2]]);
///         assert_eq!(value, "an infinity");
///         println!("created {location}");    // at src/main.rs:LINE:COL (in my_crate::main, …)
///     }
///     other => panic!("expected an anomaly, got {other:?}"),
/// }
/// # Ok::<(), ferrograd::Error>(())
/// ```
#[must_use = "anomaly detection stops as soon as the guard is dropped"]
pub fn detect_anomaly() -> AnomalyGuard {
    ACTIVE.fetch_add(1, Ordering::Relaxed);
    DEPTH.with(|d| d.set(d.get() + 1));
    AnomalyGuard {
        _not_send: PhantomData,
    }
}

/// True while a [`detect_anomaly`] guard is alive on this thread.
pub fn is_anomaly_enabled() -> bool {
    ACTIVE.load(Ordering::Relaxed) != 0 && DEPTH.with(Cell::get) > 0
}

/// Keeps anomaly detection on for this thread while alive; see [`detect_anomaly`].
#[derive(Debug)]
pub struct AnomalyGuard {
    _not_send: PhantomData<*const ()>,
}

impl Drop for AnomalyGuard {
    fn drop(&mut self) {
        let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// True when some thread may be in anomaly mode (one relaxed load: the check
/// every op makes).
#[inline(always)]
pub(crate) fn maybe_on() -> bool {
    ACTIVE.load(Ordering::Relaxed) != 0
}

/// True when this thread checks forward ops now.
fn checks_forward() -> bool {
    DEPTH.with(Cell::get) > 0 && !IN_WALK.with(Cell::get)
}

/// Marks this thread as running a backward walk until dropped.
pub(crate) struct WalkScope(bool);

impl WalkScope {
    pub(crate) fn enter() -> WalkScope {
        WalkScope(IN_WALK.with(|w| w.replace(true)))
    }
}

impl Drop for WalkScope {
    fn drop(&mut self) {
        let _ = IN_WALK.try_with(|w| w.set(self.0));
    }
}

/// Called for every op's output while [`maybe_on`]: panics on a new NaN, and
/// notes the creation site of a recorded output.
#[cold]
#[inline(never)]
pub(crate) fn forward<T: Element>(out: &Tensor<T>, op: &'static str, inputs: &[&Tensor<T>]) {
    if !checks_forward() {
        return;
    }
    let recorded = !out.is_leaf();
    // A view shares an input's buffer: it cannot hold a value the input does not.
    let fresh = !inputs.iter().any(|t| t.shares_storage(out));
    let new_nan =
        fresh && has(out, |v| v.is_nan()) && !inputs.iter().any(|t| has(t, |v| v.is_nan()));
    if !recorded && !new_nan {
        return;
    }
    let site = Arc::new(Backtrace::force_capture());
    if new_nan {
        panic!(
            "anomaly: `{op}` produced NaN from inputs without NaN (input shapes {:?}); \
             called {}",
            shapes(inputs.iter().copied()),
            describe(&site, op)
        );
    }
    sites()
        .get_or_insert_with(HashMap::new)
        .insert(out.0.id, site);
    flags::set(out, flags::SITE);
}

/// True when some element of `t` satisfies `pred`.
fn has<T: Element>(t: &Tensor<T>, pred: impl Fn(T) -> bool) -> bool {
    t.with_contiguous(|d| d.iter().any(|&v| pred(v)))
}

fn shapes<'a, T: Element + 'a>(ts: impl Iterator<Item = &'a Tensor<T>>) -> Vec<Vec<usize>> {
    ts.map(|t| t.shape().to_vec()).collect()
}

/// Drops the creation site of node `id` (called from its `Drop`).
pub(crate) fn forget(id: usize) {
    let removed = sites().as_mut().and_then(|m| m.remove(&id));
    drop(removed);
}

/// Checks the gradients a rule returned, in a walk run in anomaly mode.
#[cold]
#[inline(never)]
pub(crate) fn check_rule<T: Element>(
    node: &Tensor<T>,
    op: &'static str,
    inputs: &[Tensor<T>],
    grads: &[Option<Tensor<T>>],
) -> Result<(), Error> {
    for (i, g) in grads.iter().enumerate() {
        let Some(g) = g else { continue };
        let value = g.with_contiguous(|d| {
            if d.iter().any(|v| v.is_nan()) {
                Some("NaN")
            } else if d.iter().any(|v| v.is_infinite()) {
                Some("an infinity")
            } else {
                None
            }
        });
        if let Some(value) = value {
            let site = sites().as_ref().and_then(|m| m.get(&node.0.id).cloned());
            let location = match site {
                Some(bt) => describe(&bt, op),
                None => "outside detect_anomaly (turn it on before the forward pass to \
                         learn where)"
                    .to_string(),
            };
            return Err(Error::Anomaly {
                op,
                input: i,
                value,
                input_shapes: shapes(inputs.iter()),
                location,
            });
        }
    }
    Ok(())
}

/// True when this thread is in anomaly mode (for the walk, checked once per walk).
pub(crate) fn on_for_walk() -> bool {
    maybe_on() && DEPTH.with(Cell::get) > 0
}

/// `at FILE:LINE:COL (in FUNCTION, through ENTRY)`: the first frame of the
/// backtrace outside ferrograd, the standard library and rayon; `ENTRY` is the
/// ferrograd function it called (when that is not the op itself).
pub(crate) fn describe(bt: &Backtrace, op: &str) -> String {
    let text = bt.to_string();
    let frames = parse_frames(&text);
    let mut entry: Option<&str> = None;
    for (symbol, at) in &frames {
        if is_library(symbol, at.as_deref()) {
            if symbol.contains("ferrograd::") && !symbol.contains("ferrograd::autograd::anomaly") {
                entry = Some(symbol);
            }
            continue;
        }
        let mut s = match at {
            Some(at) => format!("at {at} (in {})", trim_hash(symbol)),
            None => format!("in {} (no debug info: no file and line)", trim_hash(symbol)),
        };
        if let Some(e) = entry.map(|e| pretty(trim_hash(e))) {
            if e != format!("Tensor::{op}") {
                s.pop();
                s.push_str(&format!(", through {e})"));
            }
        }
        return s;
    }
    "at an unknown place (no stack frame outside ferrograd was found)".to_string()
}

/// The (symbol, `file:line:col`) pairs of a backtrace's text, innermost first.
fn parse_frames(text: &str) -> Vec<(String, Option<String>)> {
    let mut frames: Vec<(String, Option<String>)> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(at) = t.strip_prefix("at ") {
            if let Some(last) = frames.last_mut() {
                if last.1.is_none() {
                    last.1 = Some(at.trim_start_matches("./").to_string());
                }
            }
            continue;
        }
        // "12: symbol", or a continuation symbol of inlined frames
        let sym = match t.split_once(": ") {
            Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest,
            _ => t,
        };
        if !sym.is_empty() {
            frames.push((sym.to_string(), None));
        }
    }
    frames
}

/// True for frames of this crate, the standard library, rayon and the
/// backtrace machinery: the ones to look past.
fn is_library(symbol: &str, at: Option<&str>) -> bool {
    let s = symbol.trim_start_matches(['<', '&', '*']);
    let s = s.strip_prefix("mut ").unwrap_or(s);
    let s = s.strip_prefix("dyn ").unwrap_or(s);
    const PREFIXES: [&str; 9] = [
        "ferrograd::",
        "std::",
        "core::",
        "alloc::",
        "rayon",
        "backtrace::",
        "__rust",
        "__libc",
        "_start",
    ];
    if PREFIXES.iter().any(|p| s.starts_with(p)) || s.starts_with("F as ") {
        return true;
    }
    // `<T as Trait>::f` of this crate's own generic impls
    if s.starts_with("T as ferrograd::") {
        return true;
    }
    match at {
        Some(at) => {
            at.starts_with("/rustc/") || at.contains(concat!(env!("CARGO_MANIFEST_DIR"), "/src/"))
        }
        None => s.starts_with("unknown") || s.starts_with("clone") || s.starts_with("start_thread"),
    }
}

/// `Tensor::log` for `ferrograd::ops::unary::<impl ferrograd::tensor::Tensor<T>>::log`.
fn pretty(symbol: &str) -> String {
    const TENSOR_IMPL: &str = "<impl ferrograd::tensor::Tensor<T>>::";
    match symbol.find(TENSOR_IMPL) {
        Some(i) => format!("Tensor::{}", &symbol[i + TENSOR_IMPL.len()..]),
        None => symbol.to_string(),
    }
}

/// A symbol without its trailing `::h0123…` hash.
fn trim_hash(symbol: &str) -> &str {
    match symbol.rfind("::h") {
        Some(i) if symbol[i + 3..].chars().all(|c| c.is_ascii_hexdigit()) => &symbol[..i],
        _ => symbol,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_parsed_and_the_first_outside_the_crate_chosen() {
        let text = "   0: std::backtrace::Backtrace::force_capture\n             at /rustc/abc/library/std/src/backtrace.rs:312:13\n   1: ferrograd::autograd::anomaly::forward\n             at ./src/autograd/anomaly.rs:10:5\n   2: ferrograd::ops::unary::<impl ferrograd::tensor::Tensor<T>>::log\n             at ./src/ops/unary.rs:40:9\n   3: <ferrograd::nn::linear::Linear<T> as ferrograd::nn::Module<T>>::forward\n             at ./src/nn/linear.rs:80:9\n   4: mycrate::model::h0123456789abcdef\n             at ./tests/anomaly.rs:42:13\n   5: mycrate::main\n             at ./tests/anomaly.rs:60:5\n";
        let frames = parse_frames(text);
        assert_eq!(frames.len(), 6);
        assert_eq!(frames[4].1.as_deref(), Some("tests/anomaly.rs:42:13"));
        let mut entry = None;
        let mut found = None;
        for (s, at) in &frames {
            if is_library(s, at.as_deref()) {
                if s.contains("ferrograd::") && !s.contains("anomaly") {
                    entry = Some(s.clone());
                }
                continue;
            }
            found = Some((trim_hash(s).to_string(), at.clone()));
            break;
        }
        assert_eq!(
            found,
            Some((
                "mycrate::model".to_string(),
                Some("tests/anomaly.rs:42:13".to_string())
            ))
        );
        assert!(entry.unwrap().contains("Linear"));
        // a user type's impl of a ferrograd trait is the user's code
        assert!(!is_library(
            "<mycrate::Net as ferrograd::nn::Module<f64>>::forward",
            None
        ));
        assert!(is_library(
            "<&ferrograd::tensor::Tensor<T> as core::ops::arith::Mul>::mul",
            None
        ));
    }
}
