//! A per-thread cache of freed buffers, so that a training loop, which frees and
//! allocates the same sizes every step, reuses memory that is already mapped
//! instead of taking fresh pages from the allocator (page faults were most of the
//! time of a large elementwise backward pass before this cache: a 1M-element
//! forward + backward chain went from 31 to 2.4 ms).
//!
//! Buffers are kept by exact capacity. Small ones (below [`MIN_LEN`] elements) go
//! straight to the allocator, whose own thread caches serve them well.
//!
//! The cache keeps a length only while it is reused: a length not asked for
//! within the *reuse horizon* is dropped with its buffers, and a freed buffer of
//! a length not asked for within it is not kept. The horizon is twice the longest
//! interval (counted in requests) between two requests of a length that is reused
//! steadily — served from the cache at least [`STEADY`] times in a row. In a
//! training loop that interval is about one step, so the horizon is about two
//! steps: every length a steady loop uses stays (what a step frees is what the
//! next step takes), while a loop whose batch size changes every step keeps the
//! buffers of its last two or three batch sizes, not of every size it has seen.
//! (A length that recurs now and then, e.g. a batch size seen again after a few
//! steps, does not count as steady, so that chance repeats do not stretch the
//! horizon.) Besides, at most [`MAX_PER_LEN`] buffers of one length and
//! [`MAX_BYTES`] in all. [`clear`] empties the calling thread's cache.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;

use crate::element::Element;

/// Buffers shorter than this are not cached.
pub(crate) const MIN_LEN: usize = 1024;
/// At most this many bytes of unused buffers per thread and element type.
pub(crate) const MAX_BYTES: usize = 256 << 20;
/// At most this many cached buffers of one length.
pub(crate) const MAX_PER_LEN: usize = 256;
/// Hits in a row that make a length's reuse interval count for the horizon.
pub(crate) const STEADY: u32 = 3;
/// The reuse horizon (in requests) before any length has been reused steadily.
pub(crate) const FIRST_HORIZON: u64 = 1 << 12;
/// The shortest reuse horizon.
pub(crate) const MIN_HORIZON: u64 = 16;
/// Requests per window (at least): the longest steady interval is remembered for
/// one to two windows.
pub(crate) const WINDOW: u64 = 1 << 14;

/// The buffers of one length and that length's history.
struct Bucket<T> {
    bufs: Vec<Vec<T>>,
    /// The request count when this length was last asked for.
    last_request: u64,
    /// Requests of this length served from the cache in a row.
    streak: u32,
}

struct Pool<T> {
    buckets: HashMap<usize, Bucket<T>>,
    /// Bytes of cached buffers.
    bytes: usize,
    /// Requests so far (`take` calls for cacheable lengths): the clock.
    requests: u64,
    /// The longest interval between two steady requests of a length, in the
    /// current window and in the one before (0: none seen).
    interval: u64,
    prev_interval: u64,
    /// When the current window ends, and when the next sweep for stale lengths is.
    window_end: u64,
    next_sweep: u64,
    /// Requests served from the cache (tests check reuse with it).
    #[cfg(test)]
    hits: usize,
}

impl<T> Pool<T> {
    fn new() -> Self {
        Pool {
            buckets: HashMap::new(),
            bytes: 0,
            requests: 0,
            interval: 0,
            prev_interval: 0,
            window_end: WINDOW,
            next_sweep: FIRST_HORIZON / 4,
            #[cfg(test)]
            hits: 0,
        }
    }

    const SIZE: usize = std::mem::size_of::<T>();

    /// How many requests a length may go unasked before it is dropped.
    #[inline]
    fn horizon(&self) -> u64 {
        match self.interval.max(self.prev_interval) {
            0 => FIRST_HORIZON,
            longest => (2 * longest).max(MIN_HORIZON),
        }
    }

    fn take(&mut self, len: usize) -> Option<Vec<T>> {
        self.requests += 1;
        let now = self.requests;
        if now >= self.next_sweep {
            self.sweep();
        }
        let bucket = self.buckets.entry(len).or_insert_with(|| Bucket {
            bufs: Vec::new(),
            last_request: now,
            streak: 0,
        });
        let since = now - bucket.last_request;
        bucket.last_request = now;
        let Some(v) = bucket.bufs.pop() else {
            bucket.streak = 0;
            return None;
        };
        bucket.streak = bucket.streak.saturating_add(1);
        if bucket.streak >= STEADY && since > self.interval {
            let first = self.interval.max(self.prev_interval) == 0;
            self.interval = since;
            if first {
                // the horizon just shrank from FIRST_HORIZON: sweep on its scale
                let soon = now + (self.horizon() / 4).max(MIN_HORIZON);
                self.next_sweep = self.next_sweep.min(soon);
            }
        }
        self.bytes -= v.capacity() * Self::SIZE;
        #[cfg(test)]
        {
            self.hits += 1;
        }
        Some(v)
    }

    fn give(&mut self, mut v: Vec<T>) {
        let len = v.capacity();
        let size = len * Self::SIZE;
        let horizon = self.horizon();
        let Some(bucket) = self.buckets.get_mut(&len) else {
            return; // a length this thread has not asked for lately
        };
        if self.requests - bucket.last_request > horizon
            || bucket.bufs.len() >= MAX_PER_LEN
            || self.bytes + size > MAX_BYTES
        {
            return;
        }
        v.clear();
        bucket.bufs.push(v);
        self.bytes += size;
    }

    /// Drops the lengths not asked for within the horizon, with their buffers;
    /// starts a new window when the current one has ended.
    #[cold]
    fn sweep(&mut self) {
        let now = self.requests;
        if now >= self.window_end {
            self.prev_interval = self.interval;
            self.interval = 0;
            self.window_end = now + WINDOW.max(8 * self.horizon());
        }
        let horizon = self.horizon();
        let mut freed = 0;
        self.buckets.retain(|&len, b| {
            let keep = now - b.last_request <= horizon;
            if !keep {
                freed += b.bufs.len() * len * Self::SIZE;
            }
            keep
        });
        self.bytes -= freed;
        self.next_sweep = now + (horizon / 4).max(MIN_HORIZON);
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

/// A buffer of `len` elements, reused when possible, written by `write` (which
/// gets its `len` slots), and what `write` returned. Kernels that set every
/// element fill their output this way rather than zero-filling it first.
///
/// # Safety
/// `write` must write every slot it is given.
#[inline]
pub(crate) unsafe fn written<T: Element, R>(
    len: usize,
    write: impl FnOnce(&mut [std::mem::MaybeUninit<T>]) -> R,
) -> (Vec<T>, R) {
    let mut out = take(len);
    let r = write(&mut out.spare_capacity_mut()[..len]);
    // SAFETY: the caller's contract: `write` wrote every slot of `out[..len]`.
    unsafe { out.set_len(len) };
    (out, r)
}

/// `len` copies of `value`, in a reused buffer when possible.
#[inline]
pub(crate) fn filled<T: Element>(len: usize, value: T) -> Vec<T> {
    let mut v = take(len);
    v.resize(len, value);
    v
}

/// Hands a buffer back for reuse (or frees it, when the cache's bounds say so).
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
/// Buffers freed by tensors are kept per thread for reuse, bounded by what the
/// thread reuses: sizes it asked for recently, and no more than its recent peak
/// working set (at most 256 MiB per element type). Call this after a large
/// computation whose sizes will not recur, to give that memory back to the
/// allocator at once rather than when later work displaces it.
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
        let taken: Vec<Vec<f64>> = (0..MAX_PER_LEN + 5).map(|_| take(2048)).collect();
        taken.into_iter().for_each(give);
        assert_eq!(cached_bytes::<f64>(), MAX_PER_LEN * 2048 * 8);
        clear();
    }

    #[test]
    fn lengths_not_asked_for_are_not_kept() {
        clear();
        give(vec![0.0f32; 4096]);
        assert_eq!(cached_bytes::<f32>(), 0);
        clear();
    }

    /// One simulated training step: take buffers of the given lengths (activations),
    /// then hand them back (backward); returns how many came from the cache.
    fn step(lens: &[usize]) -> usize {
        let bufs: Vec<Vec<f32>> = lens.iter().map(|&n| filled(n, 1.0)).collect();
        let before = hits();
        bufs.into_iter().rev().for_each(give);
        before
    }

    fn hits() -> usize {
        with_pool::<f32, _>(|p| p.downcast_mut::<Pool<f32>>().map_or(0, |p| p.hits)).unwrap_or(0)
    }

    #[test]
    fn a_steady_loop_reuses_every_buffer() {
        clear();
        let lens = [1 << 20, 1 << 20, 4096, 1 << 20, 300_000, 4096];
        step(&lens);
        for i in 1..50 {
            assert_eq!(
                step(&lens),
                i * lens.len(),
                "every request after the first step hits"
            );
        }
        clear();
    }

    #[test]
    fn changing_sizes_keep_only_the_last_few_steps() {
        clear();
        // steady: 4 buffers of one size per step
        let step_bytes = 4 * 20_000 * 4;
        for _ in 0..5 {
            step(&[20_000; 4]);
        }
        assert_eq!(cached_bytes::<f32>(), step_bytes);
        // then a different size every step, each no larger: the cache holds the
        // buffers of the last few steps, not of every size seen
        let mut rng = 1u64;
        let mut most = 0;
        for _ in 0..500 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = 2048 + (rng >> 33) as usize % 17_952;
            step(&[n, n, 20_000, n]);
            most = most.max(cached_bytes::<f32>());
        }
        assert!(most <= 8 * step_bytes, "{most} bytes cached");
        // the size that recurs every step is still reused
        let before = hits();
        step(&[20_000]);
        assert_eq!(hits(), before + 1);
        clear();
    }

    #[test]
    fn lengths_not_asked_for_within_the_horizon_are_freed() {
        clear();
        step(&[50_000]);
        assert_eq!(cached_bytes::<f32>(), 50_000 * 4);
        for _ in 0..100 {
            step(&[4096]);
        }
        // 4096 was reused steadily every request: the horizon is MIN_HORIZON
        assert_eq!(cached_bytes::<f32>(), 4096 * 4);
        clear();
    }
}
