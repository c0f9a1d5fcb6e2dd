//! When a kernel uses the rayon thread pool: every size from which a loop is
//! split over the pool, and the size of the pieces it is cut into, in one place.
//!
//! Waking the pool costs some microseconds per dispatch, so each threshold is
//! the size from which the split pays for itself on the kernel it gates. The
//! chunk sizes only decide how work is cut, never how it is combined: kernels
//! that sum across pieces add the pieces' results in a fixed order, so results
//! are the same with or without the pool.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Whether a loop of `size` (elements, or work for the GEMM) goes to the thread
/// pool, given its threshold `min`: from `min` on, and only when the pool has
/// more than one thread (with one, the pool would only add the hand-off from
/// the calling thread to the worker and back). The pool's size is looked up
/// only for loops past their threshold. When the loop goes to the pool, the
/// pool's other threads are kept awake for the next one ([`keep_awake`]).
#[inline]
pub(crate) fn use_pool(size: usize, min: usize) -> bool {
    if size < min {
        return false;
    }
    let threads = rayon::current_num_threads();
    if threads > 1 {
        keep_awake(threads);
    }
    threads > 1
}

/// How long the pool's other threads keep looking for work after the last
/// parallel kernel before they go to sleep, in nanoseconds (0: not at all);
/// set by [`crate::threads::set_spin_time`].
pub(crate) static SPIN_NS: AtomicU64 = AtomicU64::new(DEFAULT_SPIN_NS);

/// The default of [`SPIN_NS`]: 1 ms.
pub(crate) const DEFAULT_SPIN_NS: u64 = 1_000_000;

/// When the last parallel kernel started or a spinning thread last ran a job,
/// in nanoseconds since [`now_ns`]'s origin.
static LAST_WORK: AtomicU64 = AtomicU64::new(0);

/// How many of the pool's threads are spinning (or about to).
static SPINNING: AtomicUsize = AtomicUsize::new(0);

/// Nanoseconds since the first call (a monotonic clock).
fn now_ns() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Keeps the pool's other threads awake between parallel kernels.
///
/// A rayon worker with nothing to do soon sleeps, and the next kernel has to
/// wake it through the kernel (a futex wake, on a virtual machine an
/// inter-processor interrupt): tens of microseconds before it starts its share,
/// for each of the many products and loops of a training step, while the
/// calling thread waits for that share at the end. So, when the calling thread
/// is one of the pool's ([`crate::set_num_threads`]) and hands a kernel to the
/// pool, every other thread of the pool runs a spinning job: it takes any work
/// the pool has (`rayon::yield_now`) and otherwise yields its core to the
/// operating system's other runnable threads and looks again, until no kernel
/// has started for [`SPIN_NS`], then returns to rayon, which puts it to sleep.
/// As OpenMP runtimes do, this trades some spinning for prompt hand-offs. A
/// calling thread outside the pool starts no spinning: its pool's threads
/// would compete with it for the cores.
///
/// The spinning job is queued before the kernel's own jobs, so a sleeping
/// thread takes it first, at the top of its loop. A thread busy with other
/// rayon work (the user's own, say) may take it while it waits inside a job
/// of its own; it then finishes that job only when the spinning stops, at
/// most [`SPIN_NS`] after the last kernel started: a delay, never a deadlock.
/// Results do not depend on any of this: which thread runs which part of a
/// kernel never changes how the parts are combined.
///
/// Out of line, so that [`use_pool`] stays small enough for the serial path
/// of every kernel to inline it (W3's chain on 1-element tensors paid 26
/// instructions per op when it did not).
#[inline(never)]
fn keep_awake(threads: usize) {
    let spin = SPIN_NS.load(Ordering::Relaxed);
    if spin == 0 {
        return;
    }
    let Some(caller) = rayon::current_thread_index() else {
        return;
    };
    LAST_WORK.store(now_ns(), Ordering::Relaxed);
    if SPINNING.load(Ordering::Relaxed) != 0
        || SPINNING
            .compare_exchange(0, threads - 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    rayon::spawn_broadcast(move |cx| {
        if cx.index() != caller {
            spin_for_work();
            SPINNING.fetch_sub(1, Ordering::AcqRel);
        }
    });
}

/// Runs the pool's pending jobs as they come, yielding the core in between,
/// until none has come for [`SPIN_NS`] since the last kernel started.
fn spin_for_work() {
    loop {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => LAST_WORK.store(now_ns(), Ordering::Relaxed),
            _ => {
                let idle = now_ns().saturating_sub(LAST_WORK.load(Ordering::Relaxed));
                if idle > SPIN_NS.load(Ordering::Relaxed) {
                    return;
                }
                // between looks, give the core to any other runnable thread
                // (the caller, or another program's): on a loaded machine a
                // thread that only spun would take half a core from whatever
                // shares it (W2 at batch 256 with a busy loop on one core:
                // 0.78× the speed of not spinning; yielding: 1.05×)
                std::thread::yield_now();
            }
        }
    }
}

/// Elementwise kernels of cheap elements (a few arithmetic instructions: add,
/// mul, relu, copies; memory-bound) on outputs of at least this many elements
/// run on the thread pool (`Cheap` cost in `kernels::elementwise`).
pub(crate) const ELEMENTWISE_CHEAP_LEN: usize = 1 << 18;

/// Elementwise kernels of costly elements (a transcendental function or
/// similar: exp, tanh, GELU, pow) on outputs of at least this many elements run
/// on the thread pool (`Costly` cost in `kernels::elementwise`).
pub(crate) const ELEMENTWISE_COSTLY_LEN: usize = 1 << 15;

/// The pieces a parallel elementwise kernel is cut into.
pub(crate) const ELEMENTWISE_CHUNK: usize = 1 << 14;

/// Row-wise kernels (the softmax family in `kernels::reduce`) on at least this
/// many elements split their rows over the thread pool, in groups of about
/// [`ROWS_CHUNK`] elements.
pub(crate) const ROWS_LEN: usize = 1 << 15;

/// Elements per group of whole rows of a parallel row-wise kernel (at least one
/// row per group).
pub(crate) const ROWS_CHUNK: usize = 1 << 13;

/// Layer normalisation (forward and backward) on inputs of at least this many
/// elements splits its rows over the thread pool, in groups of about
/// [`LAYER_NORM_GROUP`] elements.
pub(crate) const LAYER_NORM_LEN: usize = 1 << 15;

/// Elements per group of whole rows of a parallel layer normalisation (at least
/// one row per group). The backward pass sums the weight and bias gradients per
/// group, then across groups in order.
pub(crate) const LAYER_NORM_GROUP: usize = 1 << 13;

/// Work (m·n·k) from which a product is split over the thread pool; below it, one
/// thread is as fast. Measured on 2 quiet threads (2026-12-01, alternating
/// binaries): a 128³ product at 91 GFLOP/s on one thread against 121–128 on two,
/// and a W2 step at batch 32 (products of 32×256×256 and 32×784×256) 681 against
/// 568–602 µs. At 64³ the pool gains nothing (83 GFLOP/s either way).
pub(crate) const GEMM_WORK: usize = 96 * 96 * 96;

/// Work (m·n·k) from which a product on the thread pool is split by rows into
/// single-threaded parts; below it, `gemm`'s own threading runs it. Each part
/// packs the whole right operand again, in a buffer allocated on its worker
/// thread for that call; `gemm`'s threading packs it once, on the calling thread,
/// and the workers use only their lasting per-thread slab. The per-call buffers
/// on the workers left their (glibc) allocator arenas holding about 2 MiB each
/// after 100 W2 steps at batch 256, whose products are all below this (W6: 14.4
/// → 12.0 MiB). Measured on 2 loaded threads, best of 8: 1024³ is faster split
/// (45 against 32 GFLOP/s), 256³ and 512³ no slower in one call (89 against 80,
/// 90 against 89).
pub(crate) const GEMM_SPLIT_WORK: usize = 512 * 512 * 512;

/// [`GEMM_SPLIT_WORK`] for products that run in the crate's AVX2 tile
/// (`f32` on CPUs with AVX2 and FMA but no AVX-512F), whose bands of rows
/// (with the last blocks shared out, `sgemm::sgemm`) beat
/// `gemm`'s threading from 256³: on two threads, binaries alternated, W1 at
/// n = 256 1.23× faster (8 rounds of 8, with plain row halves then) and W2
/// at batch 256 1.10× (9 of 10; its products of 256 × 784 × 256 are split
/// now), W6's peak unchanged.
pub(crate) const GEMM_SPLIT_WORK_OWN: usize = 256 * 256 * 256;

/// Work (m·n·k) from which a product on one thread runs in the crate's AVX2
/// kernel rather than the `gemm` crate's (where the kernel runs at all).
/// Measured again for the kernel's present shape on the project's Zen 3, one
/// thread, a busy host, a build that sent every product to the kernel run
/// alternately with `FERROGRAD_GEMM_KERNEL=gemm` (journal, "Late afternoon
/// (2026-12-02)"): the `gemm` crate 1.13× faster at 64³ and 1.06–1.39× at
/// 128³, 1.01–1.07× slower at 256³ (runs of 12 and 8 rounds), and 1.15×
/// slower at 512³ (1.18× at 1024³ before the kernel turned). Between 256³ and
/// 384³ there is little to gain either way, so the cutoff stayed. Parts of a
/// split product always take the kernel.
pub(crate) const OWN_MIN_WORK: usize = 384 * 384 * 384;

/// [`GEMM_SPLIT_WORK_OWN`] for the crate's AVX-512 tile: every product on
/// the pool is cut into bands. On a 2-core Intel Xeon with AVX-512 (Sapphire
/// Rapids class), two threads, binaries alternated 8 rounds on a busy host
/// (journal, "Evening (2026-12-02)"): a 128³ product 1.50× faster in bands
/// than through `gemm`'s threading (whose 512-bit kernel ran 1.45× slower
/// than the tile at 128³ and 256³ on one thread).
pub(crate) const GEMM_SPLIT_WORK_AVX512: usize = GEMM_WORK;

/// [`OWN_MIN_WORK`] for the crate's AVX-512 tile. On the same Xeon, one
/// thread, alternated 6 rounds on a busy host: the tile 1.18×, 1.46×, 1.44×
/// and 1.98× faster than the `gemm` crate's 512-bit kernel at 64³, 128³,
/// 256³ and 512³.
pub(crate) const OWN_MIN_WORK_AVX512: usize = 64 * 64 * 64;

/// The fewest rows a part of a split product gets (a few micro-kernel heights).
pub(crate) const GEMM_MIN_ROWS_PER_PART: usize = 24;

/// The fewest columns a part gets when the crate's own kernel cuts a
/// product of too few rows for [`GEMM_MIN_ROWS_PER_PART`] into parts of
/// columns (one block of `b`'s columns, `sgemm`'s `NB`): W2's layers at
/// batch 32 (32 rows, 256 columns) go to two parts.
pub(crate) const GEMM_MIN_COLUMNS_PER_PART: usize = 128;

/// Work (m·n·k, summed over a batch) from which a batch of small products is
/// spread over the thread pool, one product per task.
pub(crate) const GEMM_BATCH_WORK: usize = 64 * 64 * 64;

/// The pieces Adam's update of one parameter is cut into on the thread pool.
pub(crate) const ADAM_CHUNK: usize = 1 << 14;

/// Parameters of at least this many elements are updated by Adam on the thread
/// pool, [`ADAM_CHUNK`] elements per task (four chunks or more).
pub(crate) const ADAM_LEN: usize = 4 * ADAM_CHUNK;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    /// Waits (up to 10 s) until no thread spins.
    fn spinning_stops() -> bool {
        let start = Instant::now();
        while SPINNING.load(Ordering::Acquire) != 0 {
            if start.elapsed().as_secs() > 10 {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    /// The one test that changes `SPIN_NS` or starts spinning threads (the
    /// other tests call the kernels from threads outside any pool).
    #[test]
    fn a_kernel_on_a_pool_thread_keeps_the_others_spinning_for_a_while() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let a = Tensor::<f64>::from_vec(
            (0..200 * 150).map(|i| (i % 7) as f64).collect(),
            &[200, 150],
        )
        .unwrap();
        let b = Tensor::<f64>::from_vec(
            (0..150 * 100).map(|i| (i % 5) as f64).collect(),
            &[150, 100],
        )
        .unwrap();
        let want: Vec<f64> = (0..200 * 100)
            .map(|ij| {
                (0..150)
                    .map(|l| (((ij / 100) * 150 + l) % 7 * ((l * 100 + ij % 100) % 5)) as f64)
                    .sum()
            })
            .collect();
        assert!(spinning_stops());

        // outside the pool: no spinning
        assert!(use_pool(10, 1) == (rayon::current_num_threads() > 1));
        assert_eq!(SPINNING.load(Ordering::Acquire), 0);

        // on a pool thread: the two others spin (for a minute, so that a slow
        // machine cannot end it before the check), and run the product's parts
        SPIN_NS.store(60_000_000_000, Ordering::Relaxed);
        let got = pool.install(|| {
            assert!(use_pool(10, 1));
            assert_eq!(SPINNING.load(Ordering::Acquire), 2);
            (0..20).map(|_| a.matmul(&b).to_vec()).collect::<Vec<_>>()
        });
        assert!(got.iter().all(|g| *g == want));
        assert_ne!(SPINNING.load(Ordering::Acquire), 0);
        // back to 1 ms: they see it and stop
        SPIN_NS.store(DEFAULT_SPIN_NS, Ordering::Relaxed);
        assert!(spinning_stops(), "the spinning threads never stopped");

        // a spin time of zero: none spins
        SPIN_NS.store(0, Ordering::Relaxed);
        let got = pool.install(|| {
            assert!(use_pool(10, 1));
            assert_eq!(SPINNING.load(Ordering::Acquire), 0);
            a.matmul(&b).to_vec()
        });
        SPIN_NS.store(DEFAULT_SPIN_NS, Ordering::Relaxed);
        assert_eq!(got, want);
    }
}
