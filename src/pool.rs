//! A per-thread cache of freed buffers, so that a training loop, which frees and
//! allocates the same sizes every step, reuses memory that is already mapped
//! instead of taking fresh pages from the allocator (page faults were most of the
//! time of a large elementwise backward pass before this cache).
//!
//! Buffers are kept by exact capacity. Small ones (below [`MIN_LEN`] elements) go
//! straight to the allocator, whose own thread caches serve them well. The cache
//! is bounded per thread ([`MAX_BYTES`], [`MAX_PER_LEN`] buffers of one length), so
//! it never holds more than a bounded amount of unused memory; [`clear`] empties
//! the calling thread's cache.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;

use crate::element::Element;

/// Buffers shorter than this are not cached.
pub(crate) const MIN_LEN: usize = 1024;
/// At most this many bytes of unused buffers per thread and element type.
pub(crate) const MAX_BYTES: usize = 256 << 20;
/// At most this many cached buffers of one length.
pub(crate) const MAX_PER_LEN: usize = 16;

struct Pool<T> {
    by_len: HashMap<usize, Vec<Vec<T>>>,
    bytes: usize,
}

impl<T> Pool<T> {
    fn new() -> Self {
        Pool {
            by_len: HashMap::new(),
            bytes: 0,
        }
    }

    fn take(&mut self, len: usize) -> Option<Vec<T>> {
        let v = self.by_len.get_mut(&len)?.pop()?;
        self.bytes -= v.capacity() * std::mem::size_of::<T>();
        Some(v)
    }

    fn give(&mut self, mut v: Vec<T>) {
        let size = v.capacity() * std::mem::size_of::<T>();
        if self.bytes + size > MAX_BYTES {
            return;
        }
        let bucket = self.by_len.entry(v.capacity()).or_default();
        if bucket.len() < MAX_PER_LEN {
            v.clear();
            bucket.push(v);
            self.bytes += size;
        }
    }
}

thread_local! {
    static F32: RefCell<Pool<f32>> = RefCell::new(Pool::new());
    static F64: RefCell<Pool<f64>> = RefCell::new(Pool::new());
}

/// Runs `f` on this thread's pool for `T`, if it is reachable (not during thread
/// teardown, not re-entered).
fn with_pool<T: Element, R>(f: impl FnOnce(&mut dyn Any) -> R) -> Option<R> {
    fn run<P: 'static, R>(
        key: &'static std::thread::LocalKey<RefCell<Pool<P>>>,
        f: impl FnOnce(&mut dyn Any) -> R,
    ) -> Option<R> {
        key.try_with(|p| {
            p.try_borrow_mut()
                .ok()
                .map(|mut p| f(&mut *p as &mut dyn Any))
        })
        .ok()
        .flatten()
    }
    match T::DTYPE {
        "f32" => run(&F32, f),
        "f64" => run(&F64, f),
        _ => None,
    }
}

/// An empty buffer with capacity for exactly `len` elements, reused when possible.
#[inline]
pub(crate) fn take<T: Element>(len: usize) -> Vec<T> {
    if len >= MIN_LEN {
        let reused = with_pool::<T, _>(|p| p.downcast_mut::<Pool<T>>().and_then(|p| p.take(len)));
        if let Some(Some(v)) = reused {
            return v;
        }
    }
    Vec::with_capacity(len)
}

/// `len` copies of `value`, in a reused buffer when possible.
#[inline]
pub(crate) fn filled<T: Element>(len: usize, value: T) -> Vec<T> {
    let mut v = take(len);
    v.resize(len, value);
    v
}

/// Hands a buffer back for reuse (or frees it when the cache is full).
#[inline]
pub(crate) fn give<T: Element>(v: Vec<T>) {
    if v.capacity() >= MIN_LEN {
        let mut slot = Some(v);
        with_pool::<T, _>(|p| {
            if let Some(p) = p.downcast_mut::<Pool<T>>() {
                p.give(slot.take().expect("taken once"));
            }
        });
    }
}

/// Frees every buffer cached by the calling thread (both element types).
///
/// Buffers freed by tensors are kept per thread for reuse (bounded to 256 MiB per
/// element type); call this after a large computation whose sizes will not recur,
/// to give that memory back to the allocator.
///
/// ```
/// let x = ferrograd::Tensor::<f32>::zeros(&[1 << 20]);
/// drop(x);                        // its buffer is now cached for reuse
/// ferrograd::clear_buffer_cache(); // and now freed
/// ```
pub fn clear() {
    let _ = F32.try_with(|p| p.try_borrow_mut().map(|mut p| *p = Pool::new()));
    let _ = F64.try_with(|p| p.try_borrow_mut().map(|mut p| *p = Pool::new()));
}

/// Bytes currently cached by the calling thread for element type `T`.
#[cfg(test)]
pub(crate) fn cached_bytes<T: Element>() -> usize {
    with_pool::<T, _>(|p| p.downcast_mut::<Pool<T>>().map_or(0, |p| p.bytes)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_by_exact_length() {
        clear();
        let v: Vec<f32> = filled(4096, 1.0);
        let ptr = v.as_ptr();
        give(v);
        assert_eq!(cached_bytes::<f32>(), 4096 * 4);
        assert_eq!(cached_bytes::<f64>(), 0);
        let w: Vec<f32> = take(4096);
        assert_eq!(w.as_ptr(), ptr, "the same allocation comes back");
        assert!(w.is_empty() && w.capacity() == 4096);
        let other: Vec<f32> = take(4097);
        assert_ne!(other.as_ptr(), ptr);
        give(w);
        clear();
        assert_eq!(cached_bytes::<f32>(), 0);
        // small buffers bypass the cache
        give(vec![0.0f64; 10]);
        assert_eq!(cached_bytes::<f64>(), 0);
    }

    #[test]
    fn the_cache_is_bounded() {
        clear();
        for _ in 0..MAX_PER_LEN + 5 {
            give(vec![0.0f64; 2048]);
        }
        assert_eq!(cached_bytes::<f64>(), MAX_PER_LEN * 2048 * 8);
        clear();
    }
}
