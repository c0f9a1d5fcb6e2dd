//! [`Shared`]: the reference-counted pointer behind every tensor's graph node and
//! buffer. It is `Arc` without weak references, whose small allocations come
//! from a per-thread free list ([`slab`]) instead of the global allocator.
//!
//! A chain of ops allocates a node and a storage per op and frees them all
//! together after backward: tens of thousands of blocks of a few sizes, too
//! many for the allocator's own thread cache (glibc keeps 7 blocks per size),
//! so that each allocation and free took 120 instructions in the allocator's
//! bins. From the free list, a block costs a handful.

use std::alloc::Layout;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

/// The allocation behind a [`Shared`]: the count, then the value (which may be
/// unsized, e.g. a node whose op is a `dyn Op`).
#[repr(C)]
pub(crate) struct Inner<U: ?Sized> {
    count: AtomicUsize,
    value: U,
}

/// An atomically reference-counted pointer to a `U` (like `Arc<U>`, with no
/// weak references), allocated through [`slab`].
pub(crate) struct Shared<U: ?Sized> {
    ptr: NonNull<Inner<U>>,
    /// The pointer owns (a share of) an `Inner<U>`, for drop check and variance.
    _owns: PhantomData<Inner<U>>,
}

// SAFETY: as for `Arc`: the value is reached from every thread that holds a
// handle (so it must be `Sync`) and dropped by whichever thread drops the last
// one (so it must be `Send`); the count is atomic.
unsafe impl<U: ?Sized + Send + Sync> Send for Shared<U> {}
// SAFETY: as above: a `&Shared` only hands out `&U` and clones (atomic count).
unsafe impl<U: ?Sized + Send + Sync> Sync for Shared<U> {}

impl<U> Shared<U> {
    /// `value` behind a new pointer with a count of one.
    #[inline]
    pub(crate) fn new(value: U) -> Self {
        // SAFETY: the identity is a valid `unsize`.
        unsafe { Self::new_unsize(value, |p| p) }
    }
}

impl<U: ?Sized> Shared<U> {
    /// `value` behind a new pointer with a count of one, as a `Shared<U>` (e.g.
    /// a `Node<T, dyn Op<T>>` from a `Node<T, SomeOp>`).
    ///
    /// # Safety
    /// `unsize` must return its argument coerced to `*mut Inner<U>` (`|p| p`,
    /// with the target type known): the same address, and metadata describing
    /// a `V`, so that `U`'s layout computed from the pointer is `V`'s.
    #[inline]
    pub(crate) unsafe fn new_unsize<V>(
        value: V,
        unsize: impl FnOnce(*mut Inner<V>) -> *mut Inner<U>,
    ) -> Self {
        let raw = slab::alloc(Layout::new::<Inner<V>>()).cast::<Inner<V>>();
        // SAFETY: `raw` is a fresh block of `Inner<V>`'s layout: valid for a
        // write of one, and aligned for it.
        unsafe {
            raw.as_ptr().write(Inner {
                count: AtomicUsize::new(1),
                value,
            })
        };
        let ptr = unsize(raw.as_ptr());
        // SAFETY: `unsize` keeps the address (the caller's promise), which is
        // non-null.
        let ptr = unsafe { NonNull::new_unchecked(ptr) };
        Shared {
            ptr,
            _owns: PhantomData,
        }
    }

    #[inline(always)]
    fn inner(&self) -> &Inner<U> {
        // SAFETY: while this handle lives the count is at least one, so the
        // allocation is live and initialised; only shared references are made
        // to it, except by `get_mut` on the sole handle (which borrows it mutably).
        unsafe { self.ptr.as_ref() }
    }

    /// The number of handles (the caller's included).
    #[inline]
    pub(crate) fn count(this: &Self) -> usize {
        this.inner().count.load(Ordering::Acquire)
    }

    /// The value, mutably, when this is the only handle.
    #[inline]
    pub(crate) fn get_mut(this: &mut Self) -> Option<&mut U> {
        if Self::count(this) != 1 {
            return None;
        }
        // SAFETY: this is the only handle (the count is one, and it cannot grow:
        // cloning needs a handle, and we hold the only one mutably), so no other
        // reference to the value exists; the `Acquire` load ordered after us every
        // access made through handles since dropped (their `Release` decrements).
        Some(unsafe { &mut (*this.ptr.as_ptr()).value })
    }

    /// True when both handles point to the same value.
    #[inline]
    pub(crate) fn ptr_eq(a: &Self, b: &Self) -> bool {
        std::ptr::addr_eq(a.ptr.as_ptr(), b.ptr.as_ptr())
    }

    /// The address of the value (an identity, e.g. for grouping views of one buffer).
    #[inline]
    pub(crate) fn as_ptr(this: &Self) -> *const U {
        &this.inner().value
    }

    /// Drops the value and frees the block: the last handle is gone.
    #[inline(never)]
    fn drop_slow(&mut self) {
        let layout = Layout::for_value(self.inner());
        // SAFETY: the count reached zero, so no other handle exists and none can
        // be made: the value is dropped once, here, and its block is freed with
        // the layout it was allocated with (`for_value` of the coerced pointer
        // is `Inner<V>`'s layout, as `new_unsize` requires of the metadata).
        unsafe {
            std::ptr::drop_in_place(self.ptr.as_ptr());
            slab::free(self.ptr.cast(), layout);
        }
    }
}

impl<U: ?Sized> Clone for Shared<U> {
    #[inline]
    fn clone(&self) -> Self {
        // Relaxed as in `Arc`: a new handle is made from an existing one, which
        // keeps the value alive meanwhile.
        let old = self.inner().count.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            // leaked handles (`mem::forget` in a loop): refuse to wrap around
            std::process::abort();
        }
        Shared {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<U: ?Sized> Drop for Shared<U> {
    #[inline]
    fn drop(&mut self) {
        if self.inner().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other handle's accesses happen before the value is dropped.
        fence(Ordering::Acquire);
        self.drop_slow();
    }
}

impl<U: ?Sized> Deref for Shared<U> {
    type Target = U;
    #[inline(always)]
    fn deref(&self) -> &U {
        &self.inner().value
    }
}

/// A per-thread free list of small blocks, by size class.
///
/// Blocks of at most [`MAX`](slab::MAX) bytes and alignment at most [`ALIGN`](slab::ALIGN) are
/// allocated from the global allocator with their size rounded up to a
/// multiple of [`ALIGN`](slab::ALIGN) (their *class*), and a freed one goes to the freeing
/// thread's list of its class, from which the next allocation of that class
/// takes it. A block may be allocated on one thread and freed on another: every
/// block of a class has the same layout, so any thread's list (or the global
/// allocator) can take it. At most [`MAX_BYTES`](slab::MAX_BYTES) are kept per thread (beyond,
/// blocks go back to the allocator); a thread's lists are freed when it exits.
pub(crate) mod slab {
    use std::alloc::{dealloc, handle_alloc_error, Layout};
    use std::cell::Cell;
    use std::ptr::{null_mut, NonNull};

    /// The alignment of every block, and the step between classes.
    pub(crate) const ALIGN: usize = 16;
    /// The number of classes: blocks of 16, 32, …, 512 bytes.
    const CLASSES: usize = 32;
    /// The largest block kept on a free list.
    pub(crate) const MAX: usize = CLASSES * ALIGN;
    /// At most this many bytes of free blocks per thread.
    pub(crate) const MAX_BYTES: usize = 16 << 20;

    /// A free block: the link to the next one of its list.
    struct Free {
        next: *mut Free,
    }

    struct Lists {
        heads: [Cell<*mut Free>; CLASSES],
        bytes: Cell<usize>,
    }

    thread_local! {
        static LISTS: Lists = const {
            Lists {
                heads: [const { Cell::new(null_mut()) }; CLASSES],
                bytes: Cell::new(0),
            }
        };
    }

    /// The class of a layout, when blocks of it are kept.
    #[inline(always)]
    fn class(layout: Layout) -> Option<usize> {
        (layout.align() <= ALIGN && layout.size() <= MAX && layout.size() != 0)
            .then(|| (layout.size() - 1) / ALIGN)
    }

    /// The layout of every block of class `c`.
    #[inline(always)]
    fn class_layout(c: usize) -> Layout {
        debug_assert!(c < CLASSES);
        // SAFETY: ALIGN is a power of two, and (c + 1) * ALIGN ≤ MAX is far below
        // isize::MAX.
        unsafe { Layout::from_size_align_unchecked((c + 1) * ALIGN, ALIGN) }
    }

    impl Lists {
        #[inline(always)]
        fn pop(&self, c: usize) -> *mut u8 {
            let head = self.heads[c].get();
            if !head.is_null() {
                // SAFETY: a block on a list is a live allocation of its class
                // (at least 16 bytes, aligned to 16) holding a `Free` written by `push`.
                self.heads[c].set(unsafe { (*head).next });
                self.bytes.set(self.bytes.get() - class_layout(c).size());
            }
            head.cast()
        }

        /// Keeps `block` (of class `c`) unless the thread keeps enough already.
        #[inline(always)]
        fn push(&self, c: usize, block: NonNull<u8>) -> bool {
            let bytes = self.bytes.get() + class_layout(c).size();
            if bytes > MAX_BYTES {
                return false;
            }
            let block = block.cast::<Free>().as_ptr();
            // SAFETY: the caller hands over a block of class `c` that nothing
            // uses any more: valid for writes of a `Free` (16 bytes, aligned to 16).
            unsafe {
                block.write(Free {
                    next: self.heads[c].get(),
                })
            };
            self.heads[c].set(block);
            self.bytes.set(bytes);
            true
        }
    }

    impl Lists {
        /// Gives every kept block back to the allocator.
        fn free_all(&self) {
            for (c, head) in self.heads.iter().enumerate() {
                let mut p = head.replace(null_mut());
                while !p.is_null() {
                    // SAFETY: as in `pop`: a kept block of class `c`, taken off
                    // its list and freed once, here, with the layout it was
                    // allocated with.
                    unsafe {
                        let next = (*p).next;
                        dealloc(p.cast(), class_layout(c));
                        p = next;
                    }
                }
            }
            self.bytes.set(0);
        }
    }

    impl Drop for Lists {
        fn drop(&mut self) {
            self.free_all();
        }
    }

    /// A block for `layout` (its size is not zero).
    #[inline]
    pub(crate) fn alloc(layout: Layout) -> NonNull<u8> {
        let (p, layout) = match class(layout) {
            Some(c) => {
                let p = LISTS.try_with(|l| l.pop(c)).unwrap_or(null_mut());
                if let Some(p) = NonNull::new(p) {
                    return p;
                }
                let layout = class_layout(c);
                // SAFETY: a class's layout has a non-zero size.
                (unsafe { std::alloc::alloc(layout) }, layout)
            }
            None => {
                debug_assert_ne!(layout.size(), 0);
                // SAFETY: the caller asks for a non-zero size.
                (unsafe { std::alloc::alloc(layout) }, layout)
            }
        };
        NonNull::new(p).unwrap_or_else(|| handle_alloc_error(layout))
    }

    /// Frees a block from [`alloc`].
    ///
    /// # Safety
    /// `block` came from [`alloc`] with this `layout`, and nothing uses it any more.
    #[inline]
    pub(crate) unsafe fn free(block: NonNull<u8>, layout: Layout) {
        match class(layout) {
            Some(c) => {
                if !LISTS.try_with(|l| l.push(c, block)).unwrap_or(false) {
                    // SAFETY: `alloc` allocated blocks of this class with this layout.
                    unsafe { dealloc(block.as_ptr(), class_layout(c)) }
                }
            }
            // SAFETY: `alloc` allocated other layouts as they are.
            None => unsafe { dealloc(block.as_ptr(), layout) },
        }
    }

    /// Frees the calling thread's kept blocks.
    pub(crate) fn clear() {
        let _ = LISTS.try_with(Lists::free_all);
    }

    /// Bytes kept by the calling thread.
    #[cfg(test)]
    pub(crate) fn kept_bytes() -> usize {
        LISTS.try_with(|l| l.bytes.get()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::{slab, Shared};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counted(Arc<AtomicUsize>, [u64; 5]);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn drops_once_and_reuses_blocks() {
        slab::clear();
        let drops = Arc::new(AtomicUsize::new(0));
        let a = Shared::new(Counted(Arc::clone(&drops), [1; 5]));
        let addr = Shared::as_ptr(&a) as usize;
        let b = a.clone();
        assert_eq!(Shared::count(&a), 2);
        assert!(Shared::ptr_eq(&a, &b));
        drop(a);
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        drop(b);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        assert!(slab::kept_bytes() > 0);
        // the next block of the same class is the one just freed
        let c = Shared::new(Counted(Arc::clone(&drops), [2; 5]));
        assert_eq!(Shared::as_ptr(&c) as usize, addr);
        assert_eq!(slab::kept_bytes(), 0);
        let mut c = c;
        Shared::get_mut(&mut c).unwrap().1[0] = 7;
        let d = c.clone();
        assert!(Shared::get_mut(&mut c).is_none());
        assert_eq!(d.1[0], 7);
        drop((c, d));
        slab::clear();
        assert_eq!(slab::kept_bytes(), 0);
    }

    #[test]
    fn unsized_values_and_other_threads() {
        let drops = Arc::new(AtomicUsize::new(0));
        let v: Vec<Shared<dyn Send + Sync>> = (0..1000)
            .map(|i| {
                let c = Counted(Arc::clone(&drops), [i; 5]);
                // SAFETY: `|p| p` is the unsizing coercion.
                unsafe { Shared::new_unsize(c, |p| p as *mut super::Inner<dyn Send + Sync>) }
            })
            .collect();
        let big = Shared::new([0u8; 4 * slab::MAX]);
        std::thread::spawn(move || {
            drop(v);
            drop(big);
        })
        .join()
        .unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn the_kept_bytes_are_bounded() {
        slab::clear();
        let v: Vec<Shared<[u8; 500]>> = (0..2 * slab::MAX_BYTES / 512)
            .map(|_| Shared::new([0; 500]))
            .collect();
        drop(v);
        assert!(slab::kept_bytes() <= slab::MAX_BYTES);
        slab::clear();
    }
}
