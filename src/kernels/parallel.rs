//! When a kernel uses the rayon thread pool: every size from which a loop is
//! split over the pool, and the size of the pieces it is cut into, in one place.
//!
//! Waking the pool costs some microseconds per dispatch, so each threshold is
//! the size from which the split pays for itself on the kernel it gates. The
//! chunk sizes only decide how work is cut, never how it is combined: kernels
//! that sum across pieces add the pieces' results in a fixed order, so results
//! are the same with or without the pool.

/// Whether a loop of `size` (elements, or work for the GEMM) goes to the thread
/// pool, given its threshold `min`: from `min` on, and only when the pool has
/// more than one thread (with one, the pool would only add the hand-off from
/// the calling thread to the worker and back). The pool's size is looked up
/// only for loops past their threshold.
#[inline]
pub(crate) fn use_pool(size: usize, min: usize) -> bool {
    size >= min && rayon::current_num_threads() > 1
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

/// The fewest rows a part of a split product gets (a few micro-kernel heights).
pub(crate) const GEMM_MIN_ROWS_PER_PART: usize = 24;

/// Work (m·n·k, summed over a batch) from which a batch of small products is
/// spread over the thread pool, one product per task.
pub(crate) const GEMM_BATCH_WORK: usize = 64 * 64 * 64;

/// The pieces Adam's update of one parameter is cut into on the thread pool.
pub(crate) const ADAM_CHUNK: usize = 1 << 14;

/// Parameters of at least this many elements are updated by Adam on the thread
/// pool, [`ADAM_CHUNK`] elements per task (four chunks or more).
pub(crate) const ADAM_LEN: usize = 4 * ADAM_CHUNK;
