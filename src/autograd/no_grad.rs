//! The thread-local recording mode: a stack of scopes (`no_grad()` guards, and
//! the crate's own enable-recording scopes), where the newest live scope decides.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;

thread_local! {
    /// The mode of the newest live scope (`true` when there is none): a cached
    /// copy of the stack's top, so that every op reads one `Cell`.
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    /// The live scopes, oldest first: each guard's token and the mode it sets.
    static SCOPES: RefCell<Vec<(u64, bool)>> = const { RefCell::new(Vec::new()) };
    static NEXT_TOKEN: Cell<u64> = const { Cell::new(0) };
}

/// True unless a [`no_grad`] guard is alive on this thread (more exactly: the
/// newest live scope on this thread does not turn recording off).
#[inline]
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Turns recording off on this thread until the returned guard is dropped.
///
/// Nothing computed in the scope records its op, so it holds no graph and
/// `backward` does not flow through it (as PyTorch's `torch.no_grad()`).
/// Guards nest, and may be dropped in any order: while any guards are alive,
/// the newest one decides, and recording is back on once all are dropped. The
/// guard is `!Send`: the mode belongs to the thread that made it.
///
/// [`grad`](crate::grad) with `create_graph: true` records even inside a
/// `no_grad` scope (it opens a recording scope of its own for its walk).
///
/// ```
/// use ferrograd::{no_grad, Tensor};
/// let w = Tensor::<f32>::ones(&[3]).requires_grad();
/// let y = {
///     let _guard = no_grad();
///     &w * 2.0
/// };
/// assert!(!y.needs_grad());
/// assert!((&w * 2.0).needs_grad());
/// ```
#[must_use = "recording resumes as soon as the guard is dropped"]
pub fn no_grad() -> NoGradGuard {
    NoGradGuard {
        _scope: Scope::push(false),
    }
}

/// Turns recording on for this thread, even inside a [`no_grad`] scope, until
/// the returned scope is dropped. Crate-internal: `grad(.., create_graph)` and
/// the `functional` transforms use it, as PyTorch's engine sets grad mode to
/// `create_graph` for its walk.
pub(crate) fn enable_grad() -> Scope {
    Scope::push(true)
}

/// Runs `f` with recording on or off on this thread, restoring the mode after.
pub(crate) fn with_grad_mode<R>(enabled: bool, f: impl FnOnce() -> R) -> R {
    let _scope = Scope::push(enabled);
    f()
}

/// One entry of the mode stack; dropping it removes that entry (wherever it is).
#[derive(Debug)]
pub(crate) struct Scope {
    token: u64,
    _not_send: PhantomData<*const ()>,
}

impl Scope {
    fn push(enabled: bool) -> Scope {
        let token = NEXT_TOKEN.with(|n| {
            let t = n.get();
            n.set(t.wrapping_add(1));
            t
        });
        SCOPES.with(|s| s.borrow_mut().push((token, enabled)));
        GRAD_ENABLED.with(|g| g.set(enabled));
        Scope {
            token,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        // `try_with`: a guard dropped while the thread's locals are torn down
        // has nothing left to restore.
        let _ = SCOPES.try_with(|s| {
            let mut s = s.borrow_mut();
            if let Some(i) = s.iter().rposition(|&(t, _)| t == self.token) {
                s.remove(i);
            }
            let mode = s.last().is_none_or(|&(_, on)| on);
            let _ = GRAD_ENABLED.try_with(|g| g.set(mode));
        });
    }
}

/// Keeps recording off on this thread while alive; see [`no_grad`].
#[derive(Debug)]
pub struct NoGradGuard {
    /// Its entry in the mode stack, removed when the guard drops.
    _scope: Scope,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_dropped_out_of_order_restore_recording() {
        assert!(is_grad_enabled());
        let outer = no_grad();
        let inner = no_grad();
        drop(outer);
        assert!(!is_grad_enabled(), "the inner guard is still alive");
        drop(inner);
        assert!(is_grad_enabled(), "no guard left: recording is back on");
    }

    #[test]
    fn the_newest_live_scope_decides() {
        let off = no_grad();
        {
            let _on = enable_grad();
            assert!(is_grad_enabled());
            let _off_again = no_grad();
            assert!(!is_grad_enabled());
        }
        assert!(!is_grad_enabled());
        let on = enable_grad();
        drop(off);
        assert!(is_grad_enabled());
        drop(on);
        assert!(is_grad_enabled());
        assert!(!with_grad_mode(false, is_grad_enabled));
        assert!(is_grad_enabled());
    }

    #[test]
    fn modes_are_per_thread() {
        let _g = no_grad();
        assert!(std::thread::spawn(is_grad_enabled).join().unwrap());
        assert!(!is_grad_enabled());
    }
}
