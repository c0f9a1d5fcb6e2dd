//! How many threads the kernels run on ([`set_num_threads`], [`num_threads`]),
//! and how long the idle ones spin before they sleep ([`set_spin_time`]).
//!
//! The kernels split large loops and products over rayon's global thread pool.
//! Left alone, rayon starts one worker per CPU, and a thread outside the pool
//! (a program's `main`) that starts parallel work hands it to the workers and
//! sleeps until they are done. [`set_num_threads`] makes the calling thread one
//! of the pool's threads instead, as PyTorch's intra-op threads include the
//! thread that calls an op: it runs its share of every parallel kernel itself,
//! with no hand-off and no wake-up at the end.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::kernels::parallel::SPIN_NS;

/// Sets the number of threads the kernels run on, counting the calling thread,
/// as `torch.set_num_threads` does: the calling thread becomes one of them and
/// `n - 1` worker threads start. `n = 0` takes rayon's default count
/// (`RAYON_NUM_THREADS` when set, else one per CPU).
///
/// Call it once, at the start of `main`, from the thread that runs the training
/// loop. That thread then does its share of each parallel kernel itself instead
/// of handing the work to the pool and waiting for it; steps made of many
/// small and mid-sized ops gain the most (on the project's 2-core machine, an
/// MLP step of `benches/w2_mlp.rs` at batch 32: 0.99 → 0.73 ms; a 128³
/// product: 67 → 96 GFLOP/s). Without the call, rayon's default pool is used.
/// Work started from other threads still runs in parallel, on the `n - 1`
/// workers. With `n = 1` every kernel runs on the thread that calls it (the
/// pool keeps one idle worker of its own, so that rayon work started by other
/// code still has a thread to run on).
///
/// ```
/// // at the start of main (a doc test is a program of its own)
/// ferrograd::set_num_threads(2)?;
/// assert_eq!(ferrograd::num_threads(), 2);
/// // the pool is set up once per process
/// assert!(ferrograd::set_num_threads(2).is_err());
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] when the thread pool is already set up: by an
/// earlier call, by a parallel kernel that ran before it, or by other code that
/// set up rayon's global pool. It can be set up only once per process; the
/// kernels then keep the pool they have.
pub fn set_num_threads(n: usize) -> Result<()> {
    let n = if n == 0 { default_count() } else { n };
    let builder = rayon::ThreadPoolBuilder::new().num_threads(n);
    // With one thread, no worker would run work started from other threads:
    // the pool gets its own worker then (and the kernels, seeing one thread,
    // never use it).
    let builder = if n > 1 {
        builder.use_current_thread()
    } else {
        builder
    };
    builder.build_global().map_err(|e| Error::InvalidArgument {
        op: "set_num_threads",
        msg: format!(
            "the thread pool is already set up, with {} threads ({e})",
            rayon::current_num_threads()
        ),
    })
}

/// The number of threads the kernels split work over (as
/// `torch.get_num_threads`): the pool's size, including the calling thread
/// when [`set_num_threads`] made it one of them.
///
/// ```
/// assert!(ferrograd::num_threads() >= 1);
/// ```
pub fn num_threads() -> usize {
    rayon::current_num_threads()
}

/// Sets how long the pool's other threads keep looking for work after a
/// parallel kernel before they sleep (default 1 ms; `Duration::ZERO`: they sleep
/// as soon as rayon lets them), as OpenMP's `OMP_WAIT_POLICY` and
/// `GOMP_SPINCOUNT` do for PyTorch's threads.
///
/// Applies when the calling thread is one of the pool's ([`set_num_threads`]):
/// each kernel it hands to the pool then finds the other threads awake
/// instead of waking them through the operating system, tens of microseconds
/// each on a virtual machine, many times per training step (on the project's
/// 2-core machine, a step of `benches/w2_mlp.rs` at batch 32: 0.96 → 0.69 ms,
/// `examples/spin_time.rs`).
/// The price is that those threads stay runnable for up to this long after
/// the last kernel, polling for work: they yield their core to any other
/// runnable thread between looks, so a busy machine loses little to them, but
/// an idle core shows as busy. Zero lets them sleep at once.
///
/// ```
/// use std::time::Duration;
/// ferrograd::set_spin_time(Duration::ZERO);
/// assert_eq!(ferrograd::spin_time(), Duration::ZERO);
/// ferrograd::set_spin_time(Duration::from_micros(500));
/// assert_eq!(ferrograd::spin_time(), Duration::from_micros(500));
/// ```
pub fn set_spin_time(time: Duration) {
    let ns = u64::try_from(time.as_nanos()).unwrap_or(u64::MAX);
    SPIN_NS.store(ns, Ordering::Relaxed);
}

/// How long the pool's other threads keep looking for work after a parallel
/// kernel ([`set_spin_time`]).
pub fn spin_time() -> Duration {
    Duration::from_nanos(SPIN_NS.load(Ordering::Relaxed))
}

/// rayon's default pool size: `RAYON_NUM_THREADS` when it is a positive
/// number, else the CPUs this process may run on.
fn default_count() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
