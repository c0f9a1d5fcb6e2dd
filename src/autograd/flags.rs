//! Per-node flags for the side tables that hold what few nodes need: hooks
//! ([`hooks`](super::hooks)), retained gradients, and anomaly mode's creation
//! sites ([`anomaly`](super::anomaly)).
//!
//! The tables live outside the node, so a node costs nothing extra for them;
//! the node's `flags` byte says which tables hold an entry for it, so that its
//! `Drop` clears them. A global count of flagged nodes lets the backward walk
//! skip every per-node check while no node anywhere is flagged.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::element::Element;
use crate::tensor::Tensor;

/// The node has hooks in the hook table.
pub(crate) const HOOKED: u8 = 1;
/// `backward` keeps the node's gradient ([`Tensor::retain_grad`]).
pub(crate) const RETAIN: u8 = 2;
/// The anomaly-mode table holds where the node was created.
pub(crate) const SITE: u8 = 4;

/// How many live nodes have a nonzero flags byte.
static FLAGGED: AtomicUsize = AtomicUsize::new(0);

/// True when some live node is flagged (the walk then reads each node's flags).
#[inline(always)]
pub(crate) fn any() -> bool {
    FLAGGED.load(Ordering::Relaxed) != 0
}

/// Sets `bit` on the node behind `t`.
pub(crate) fn set<T: Element>(t: &Tensor<T>, bit: u8) {
    let old = t.0.flags.fetch_or(bit, Ordering::Relaxed);
    if old == 0 {
        FLAGGED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The flags of the node behind `t`.
#[inline(always)]
pub(crate) fn get<T: Element>(t: &Tensor<T>) -> u8 {
    t.0.flags.load(Ordering::Relaxed)
}

/// Called by a flagged node's `Drop`: removes its side-table entries.
#[cold]
pub(crate) fn forget(id: usize, flags: u8) {
    FLAGGED.fetch_sub(1, Ordering::Relaxed);
    if flags & HOOKED != 0 {
        super::hooks::forget(id);
    }
    if flags & SITE != 0 {
        super::anomaly::forget(id);
    }
}
