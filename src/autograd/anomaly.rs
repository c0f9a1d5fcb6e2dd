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
    describe_text(&bt.to_string(), op)
}

/// [`describe`] on a backtrace's text.
fn describe_text(text: &str, op: &str) -> String {
    let frames = parse_frames(text);
    // Where this crate's sources are, as this build's debug info spells it
    // (`src/` in its own tests, an absolute path when it is a dependency): read
    // from this very module's frame. With `debug = "line-tables-only"` inlined
    // frames lose their paths (`from_op<f64, …>`), so the file decides.
    let own_src = frames.iter().find_map(|(_, at)| {
        let at = at.as_deref()?;
        let file = at.split(':').next()?;
        file.strip_suffix("autograd/anomaly.rs")
    });
    let mut entry: Option<&str> = None;
    for (symbol, at) in &frames {
        let at = at.as_deref();
        match origin(symbol, at, own_src) {
            Origin::Runtime => {}
            Origin::Ours => {
                // the outermost of this crate's frames: the function the user called
                let this_module = symbol.contains("autograd::anomaly")
                    || at.is_some_and(|a| a.contains("autograd/anomaly.rs"));
                if !this_module {
                    entry = Some(symbol);
                }
            }
            Origin::User => {
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
        }
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

/// Whose code a stack frame runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// This crate's.
    Ours,
    /// The standard library's, rayon's, the backtrace machinery's: looked past.
    Runtime,
    /// The caller's: where the report points.
    User,
}

/// Whose code a frame runs. A frame with a file is this crate's when the file
/// lies under `own_src` (this crate's `src/` as the debug info spells it), the
/// runtime's when it lies under `/rustc/` or in rayon; a frame without one is
/// judged by its symbol.
fn origin(symbol: &str, at: Option<&str>, own_src: Option<&str>) -> Origin {
    if let Some(at) = at {
        if at.starts_with("/rustc/")
            || at.contains("/.cargo/registry/src/") && at.contains("/rayon")
        {
            return Origin::Runtime;
        }
        if let Some(src) = own_src.filter(|s| !s.is_empty()) {
            return if at.starts_with(src) {
                Origin::Ours
            } else {
                Origin::User
            };
        }
        if at.contains(concat!(env!("CARGO_MANIFEST_DIR"), "/src/")) {
            return Origin::Ours;
        }
    }
    let s = symbol.trim_start_matches(['<', '&', '*']);
    let s = s.strip_prefix("mut ").unwrap_or(s);
    let s = s.strip_prefix("dyn ").unwrap_or(s);
    // `<T as ferrograd::…>::f`: this crate's own generic impls
    if s.starts_with("ferrograd::") || s.starts_with("T as ferrograd::") {
        return Origin::Ours;
    }
    const RUNTIME: [&str; 9] = [
        "std::",
        "core::",
        "alloc::",
        "rayon",
        "backtrace::",
        "__rust",
        "__libc",
        "_start",
        "F as ",
    ];
    let thread_start = at.is_none()
        && (s.starts_with("unknown") || s.starts_with("clone") || s.starts_with("start_thread"));
    if RUNTIME.iter().any(|p| s.starts_with(p)) || thread_start {
        Origin::Runtime
    } else {
        Origin::User
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

    /// A backtrace as a build with full debug info prints it.
    const FULL: &str = "   0: std::backtrace::Backtrace::force_capture
             at /rustc/abc/library/std/src/backtrace.rs:312:13
   1: ferrograd::autograd::anomaly::forward
             at ./src/autograd/anomaly.rs:10:5
   2: ferrograd::ops::unary::<impl ferrograd::tensor::Tensor<T>>::log
             at ./src/ops/unary.rs:40:9
   3: <ferrograd::nn::linear::Linear<T> as ferrograd::nn::Module<T>>::forward
             at ./src/nn/linear.rs:80:9
   4: mycrate::model::h0123456789abcdef
             at ./tests/anomaly.rs:42:13
   5: mycrate::main
             at ./tests/anomaly.rs:60:5
";

    /// The same with `debug = "line-tables-only"`, ferrograd a dependency:
    /// inlined frames have short names, and the crate's files absolute paths.
    const LINE_TABLES: &str = "   0: ferrograd::autograd::anomaly::forward
             at /home/u/.cargo/registry/src/index.crates.io-1/ferrograd-0.1.0/src/autograd/anomaly.rs:146:25
   1: from_op<f64, ferrograd::ops::matmul::MatMul>
             at /home/u/.cargo/registry/src/index.crates.io-1/ferrograd-0.1.0/src/tensor.rs:186:13
   2: try_linear<f64>
             at /home/u/.cargo/registry/src/index.crates.io-1/ferrograd-0.1.0/src/nn/functional.rs:63:15
   3: <ferrograd::nn::linear::Linear<T> as ferrograd::nn::Module<T>>::forward
             at /home/u/.cargo/registry/src/index.crates.io-1/ferrograd-0.1.0/src/nn/linear.rs:164:23
   4: app::run
             at src/main.rs:12:20
   5: app::main
             at src/main.rs:30:5
";

    #[test]
    fn frames_are_parsed() {
        let frames = parse_frames(FULL);
        assert_eq!(frames.len(), 6);
        assert_eq!(frames[4].1.as_deref(), Some("tests/anomaly.rs:42:13"));
        assert_eq!(trim_hash(&frames[4].0), "mycrate::model");
    }

    #[test]
    fn the_first_frame_outside_the_crate_is_chosen() {
        assert_eq!(
            describe_text(FULL, "log"),
            "at tests/anomaly.rs:42:13 (in mycrate::model, through \
             <ferrograd::nn::linear::Linear<T> as ferrograd::nn::Module<T>>::forward)"
        );
        assert_eq!(
            describe_text(LINE_TABLES, "matmul"),
            "at src/main.rs:12:20 (in app::run, through \
             <ferrograd::nn::linear::Linear<T> as ferrograd::nn::Module<T>>::forward)"
        );
        // the op's own method is not repeated as the way in
        let direct = "   0: ferrograd::autograd::anomaly::forward
             at ./src/autograd/anomaly.rs:10:5
   1: ferrograd::ops::unary::<impl ferrograd::tensor::Tensor<T>>::log
             at ./src/ops/unary.rs:40:9
   2: t::f
             at ./tests/t.rs:3:4
";
        assert_eq!(describe_text(direct, "log"), "at tests/t.rs:3:4 (in t::f)");
    }

    #[test]
    fn symbols_decide_for_frames_without_a_file() {
        let of = |s| origin(s, None, None);
        assert_eq!(
            of("<mycrate::Net as ferrograd::nn::Module<f64>>::forward"),
            Origin::User
        );
        assert_eq!(
            of("<&ferrograd::tensor::Tensor<T> as core::ops::arith::Mul>::mul"),
            Origin::Ours
        );
        assert_eq!(
            of("core::ops::function::FnOnce::call_once"),
            Origin::Runtime
        );
        assert_eq!(
            describe_text("   0: ferrograd::x\n   1: app::main\n", "x"),
            "in app::main (no debug info: no file and line, through ferrograd::x)"
        );
    }
}
