//! Pauses at chosen points of an op or of the walk, for tests that interleave
//! an in-place update deterministically, and a count of the rules run.
use std::cell::{Cell, RefCell};

/// Where a hook runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Point {
    /// In every op, after its kernel read the inputs, before its node is built.
    BetweenReadAndRecord,
    /// In the walk, after a node's versions were checked, before its rule runs.
    BetweenCheckAndRule,
}

type Hook = Box<dyn FnMut(&str) -> bool>;

thread_local! {
    static HOOK: RefCell<Option<(Point, Hook)>> = RefCell::new(None);
    static RULES_RUN: Cell<usize> = const { Cell::new(0) };
}

/// Calls `hook` with the op's name each time this thread passes `point`,
/// until it returns `true`.
pub(crate) fn set(point: Point, hook: impl FnMut(&str) -> bool + 'static) {
    HOOK.with(|h| *h.borrow_mut() = Some((point, Box::new(hook))));
}

pub(crate) fn run(point: Point, op: &str) {
    let hook = HOOK.with(|h| {
        let mut h = h.borrow_mut();
        match &*h {
            Some((p, _)) if *p == point => h.take(),
            _ => None,
        }
    });
    if let Some((p, mut f)) = hook {
        if !f(op) {
            HOOK.with(|h| *h.borrow_mut() = Some((p, f)));
        }
    }
}

pub(crate) fn rule_ran() {
    RULES_RUN.with(|c| c.set(c.get() + 1));
}

/// How many backward rules this thread has run so far.
pub(crate) fn rules_run() -> usize {
    RULES_RUN.with(Cell::get)
}
