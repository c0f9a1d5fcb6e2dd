//! The shared buffer behind tensors and views, with the version counter that guards
//! in-place updates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::shared::Shared;

use smallvec::SmallVec;

/// Buffers of at most this many elements live inside the [`Storage`] itself:
/// a scalar or a tiny tensor costs no allocation of its own.
pub(crate) const INLINE: usize = 4;

/// A tensor's elements: inline up to [`INLINE`] elements, on the heap beyond.
pub(crate) type Buf<T> = SmallVec<[T; INLINE]>;

/// A buffer shared by a tensor and all of its views.
///
/// Kernels take the read lock; in-place updates (optimizers, [`Tensor::assign`])
/// take the write lock and bump `version`, which the backward pass compares with
/// the version an op saw when it was recorded.
///
/// [`Tensor::assign`]: crate::Tensor::assign
pub(crate) struct Storage<T: crate::element::Element> {
    data: RwLock<Buf<T>>,
    /// The buffer's length, which never changes (updates write elements only).
    len: usize,
    version: AtomicU64,
}

impl<T: crate::element::Element> Storage<T> {
    /// A storage over `data`: a [`Buf`] as kernels that write small outputs
    /// inline give it, or a `Vec` (moved inline and freed when its capacity is
    /// at most [`INLINE`] elements, kept on the heap as it is otherwise).
    #[inline]
    pub(crate) fn new(data: impl Into<Buf<T>>) -> Shared<Self> {
        let data = data.into();
        Shared::new(Storage {
            len: data.len(),
            data: RwLock::new(data),
            version: AtomicU64::new(0),
        })
    }

    /// Read access. A poisoned lock still holds plain numbers, so it is not an error.
    #[inline]
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Buf<T>> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access for an in-place update; bumps the version.
    #[inline]
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Buf<T>> {
        let guard = self.data.write().unwrap_or_else(|e| e.into_inner());
        self.version.fetch_add(1, Ordering::Release);
        guard
    }

    /// The buffer, through the sole handle (no lock needed); not an update
    /// (nothing else can see it).
    #[inline]
    pub(crate) fn data_mut(&mut self) -> &mut Buf<T> {
        self.data.get_mut().unwrap_or_else(|e| e.into_inner())
    }

    /// The number of elements in the buffer (no lock needed).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

impl<T: crate::element::Element> Drop for Storage<T> {
    /// Hands a heap buffer to this thread's cache for reuse.
    fn drop(&mut self) {
        let data = self.data.get_mut().unwrap_or_else(|e| e.into_inner());
        if data.spilled() {
            crate::pool::give(std::mem::take(data).into_vec());
        }
    }
}
