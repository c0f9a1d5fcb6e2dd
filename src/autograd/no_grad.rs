//! The thread-local recording switch and the guard returned by `no_grad()`.

use std::cell::Cell;
use std::marker::PhantomData;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// True unless a [`no_grad`] guard is alive on this thread.
#[inline]
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Turns recording off on this thread until the returned guard is dropped.
///
/// Nothing computed in the scope records its op, so it holds no graph and
/// `backward` does not flow through it (as PyTorch's `torch.no_grad()`).
/// Guards nest; each restores the mode it found. The guard is `!Send`: the mode
/// belongs to the thread that made it.
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
        prev: GRAD_ENABLED.with(|g| g.replace(false)),
        _not_send: PhantomData,
    }
}

/// Keeps recording off on this thread while alive; see [`no_grad`].
#[derive(Debug)]
pub struct NoGradGuard {
    prev: bool,
    _not_send: PhantomData<*const ()>,
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}
