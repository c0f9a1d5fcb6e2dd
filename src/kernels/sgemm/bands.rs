//! How a product cut into bands of rows runs on the pool: [`Product`] holds
//! what its threads share, [`Crew`] hands the bands out, and each band's
//! last block is shared out in units between the threads ([`Band`]). A
//! product of too few rows for bands is cut into parts of columns instead
//! ([`Columns`]), each a [`Product`] of one band, handed out the same way.

use super::{block_rows, depth, Micro, NB};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Who runs a product's bands (or parts of columns): the calling thread and
/// the pool's threads that the product's jobs reach in time, each taking
/// the next band not yet taken until none is left.
///
/// Why not a parallel iterator: called from outside the pool (a user's
/// thread), rayon sends the whole loop to the pool and puts the calling
/// thread to sleep until it is done, which cost about 8 µs a call on the
/// project's Intel Xeon (a product of two empty jobs; 0.1 µs from inside the
/// pool), 4% of W1's product at n = 256. Here the calling thread runs the
/// first band at once, a pool thread that wakes late finds its band taken
/// and leaves, and the caller waits (spinning briefly) only for bands that
/// another thread has begun.
#[derive(Default)]
pub(super) struct Crew {
    /// Bands taken so far (may pass the count: then every band is taken).
    next: AtomicUsize,
    /// Pool threads inside [`Crew::run`] (taking or running bands).
    helpers: AtomicUsize,
}

impl Crew {
    /// Takes and runs parts (`part(t)` for `t` below `parts`, each once)
    /// until none is left.
    fn run(&self, parts: usize, part: impl Fn(usize)) {
        /// Counts the thread out of `helpers` when dropped, so that a part
        /// that unwinds leaves [`Crew::finish`] nothing to wait for.
        struct Leave<'a>(&'a AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.helpers.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.helpers);
        loop {
            let t = self.next.fetch_add(1, Ordering::SeqCst);
            if t >= parts {
                break;
            }
            part(t);
        }
    }

    /// For the calling thread, once its own [`Crew::run`] has returned (or
    /// unwound): lets no band start any more and waits until every thread
    /// that took one has left. After that nothing reads or writes the
    /// product's operands.
    fn finish(&self) {
        self.next.store(usize::MAX / 2, Ordering::SeqCst);
        let mut spins = 0u32;
        // the calling thread's own `run` has left: the count is the pool's
        while self.helpers.load(Ordering::SeqCst) > 0 {
            spins += 1;
            if spins < 256 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// A job that [`run`] cuts into parts for the pool: a product's bands
/// ([`Product`]) or its parts of columns ([`Columns`]).
pub(super) trait Parts: Send + Sync + 'static {
    /// Who runs the parts.
    fn crew(&self) -> &Crew;
    /// How many parts.
    fn count(&self) -> usize;
    /// Part `t`.
    ///
    /// # Safety
    /// As [`super::sgemm`]'s for the whole job; each part runs once.
    unsafe fn part(&self, t: usize);
}

/// Runs every part of `job`: on the calling thread alone if there is one,
/// else on the calling thread and as many of the pool's threads as reach a
/// part in time ([`Crew`]). The pool's jobs hold `job` through an `Arc`
/// until they run, which may be after this returns: they then find every
/// part taken and only read the counters.
///
/// # Safety
/// As [`super::sgemm`]'s.
pub(super) unsafe fn run<J: Parts>(job: J) {
    let parts = job.count();
    if parts == 1 {
        // SAFETY: the caller's contract; one part, run by this thread alone.
        return unsafe { job.part(0) };
    }
    let job = std::sync::Arc::new(job);
    for _ in 1..parts {
        let job = std::sync::Arc::clone(&job);
        rayon::spawn(move || take_parts(&*job, parts));
    }
    let done = Finish(job.crew());
    take_parts(&*job, parts);
    drop(done);
}

/// Takes and runs parts of `job` until none is left ([`Crew::run`]), on
/// behalf of [`run`].
fn take_parts<J: Parts>(job: &J, parts: usize) {
    job.crew().run(parts, |t| {
        // SAFETY: `run`'s caller's contract holds until every part taken is
        // done, which `run`'s thread waits for (`Crew::finish`) before it
        // returns or unwinds; `Crew::run` runs each part once.
        unsafe { job.part(t) }
    });
}

/// Calls [`Crew::finish`] when dropped, so that the calling thread waits
/// for the pool's threads even if it unwinds.
struct Finish<'a>(&'a Crew);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// One product, shared by the threads that run its bands.
pub(super) struct Product {
    /// The tile and its packers.
    micro: Micro,
    /// `a`, its row stride and column stride.
    a: (*const f32, usize, usize),
    /// `b`, its row stride and column stride.
    b: (*const f32, usize, usize),
    /// The `m × n` output, its rows `ldc` apart.
    c: *mut f32,
    ldc: usize,
    m: usize,
    k: usize,
    n: usize,
    /// Rows per band (a multiple of the tile's rows; the last band may have
    /// fewer).
    band: usize,
    /// Depth of the packed blocks ([`depth`]).
    depth: usize,
    bands: Vec<Band>,
    /// The threads running the bands.
    crew: Crew,
    /// For the tests: a band whose thread, once it has published its last
    /// block, waits for the flag before taking any unit of it.
    #[cfg(test)]
    hold: Option<(usize, std::sync::Arc<AtomicBool>)>,
}

/// What the threads know of one band of rows.
struct Band {
    /// Its thread has begun.
    started: AtomicBool,
    /// The band's last block of `a`, packed by the band's thread, set once
    /// that thread has added every block before into the band's rows.
    last_block: OnceLock<Box<[MaybeUninit<f32>]>>,
    /// Units of the last block taken: from the front in the low 32 bits,
    /// from the back in the high 32.
    taken: AtomicU64,
}

// SAFETY: `a` and `b` are only read. Each element of `c` is written by one
// thread at a time: a band's rows by its thread until it publishes its last
// block, then each unit of that block by the one thread that took it (the
// `OnceLock` orders the band thread's writes before the others' reads). A
// published block is only read.
unsafe impl Sync for Product {}
// SAFETY: the pointers are the caller's, used only under [`super::sgemm`]'s
// contract by the threads that take a band before the caller's
// [`Crew::finish`]; a job of the pool that runs later holds the product
// (through its `Arc`) but finds every band taken and reads only the counters.
unsafe impl Send for Product {}

impl Band {
    /// Takes the next of `total` units from the front (`back == false`) or
    /// from the back, if any is left.
    fn take(&self, total: usize, back: bool) -> Option<usize> {
        let mut now = self.taken.load(Ordering::Relaxed);
        loop {
            let (front, from_back) = ((now & 0xffff_ffff) as usize, (now >> 32) as usize);
            if front + from_back >= total {
                return None;
            }
            let next = if back { now + (1 << 32) } else { now + 1 };
            match self
                .taken
                .compare_exchange_weak(now, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(if back { total - 1 - from_back } else { front }),
                Err(seen) => now = seen,
            }
        }
    }
}

impl Product {
    /// The product's bands for up to `parts` threads.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        micro: Micro,
        m: usize,
        k: usize,
        n: usize,
        a: (*const f32, usize, usize),
        b: (*const f32, usize, usize),
        (c, ldc): (*mut f32, usize),
        parts: usize,
    ) -> Self {
        debug_assert!(k > 0 && m > 0 && n > 0);
        let band = m.div_ceil(parts.max(1)).next_multiple_of(micro.mr);
        let bands = (0..m.div_ceil(band))
            .map(|_| Band {
                started: AtomicBool::new(false),
                last_block: OnceLock::new(),
                taken: AtomicU64::new(0),
            })
            .collect();
        Product {
            micro,
            a,
            b,
            c,
            ldc,
            m,
            k,
            n,
            band,
            depth: depth(k),
            bands,
            crew: Crew::default(),
            #[cfg(test)]
            hold: None,
        }
    }

    /// Rows `r0..r0 + rows` of band `t`.
    fn rows(&self, t: usize) -> (usize, usize) {
        let r0 = t * self.band;
        (r0, self.band.min(self.m - r0))
    }

    /// Where band `t`'s last block of `a` starts (its first row and
    /// column), and how many rows it has.
    fn last_block(&self, t: usize) -> (usize, usize, usize) {
        let (r0, rows) = self.rows(t);
        let height = block_rows(rows, self.micro.mr, self.micro.mc);
        let ic = r0 + (rows - 1) / height * height;
        (ic, (self.k - 1) / self.depth * self.depth, r0 + rows - ic)
    }

    /// How many units band `t`'s last block holds.
    fn units(&self, t: usize) -> usize {
        self.last_block(t).2.div_ceil(self.micro.unit_rows()) * self.n.div_ceil(NB)
    }

    /// Band `t`: each block of its rows times every block of `b`, but for
    /// the last block of rows; then that block's units from the front, then
    /// those left of the other started bands from the back.
    ///
    /// # Safety
    /// As [`super::sgemm`]'s, for the whole product; each band is run once.
    unsafe fn band(&self, t: usize) {
        let me = &self.bands[t];
        me.started.store(true, Ordering::Relaxed);
        let (r0, rows) = self.rows(t);
        let (a, ars, acs) = self.a;
        let (b, brs, bcs) = self.b;
        // Left uninitialised: the packing writes every element the tiles
        // read (zero-filled, the buffers cost 3.7% of a two-thread product
        // at n = 256 in `memset`). Each thread allocates its own.
        let height = block_rows(rows, self.micro.mr, self.micro.mc);
        let mut packed_a = Box::new_uninit_slice(self.depth * height);
        // `packed_b` holds a block of any columns, as this thread may take
        // the other bands' units.
        // It starts on a cache line: a 512-bit load of a sliver's row is then
        // never split across two lines.
        let b_len = self.depth * NB.min(self.n).next_multiple_of(self.micro.nr);
        let mut b_buf = Box::<[f32]>::new_uninit_slice(b_len + 15);
        let b_start = b_buf.as_ptr().align_offset(64).min(15);
        let packed_b = &mut b_buf[b_start..b_start + b_len];
        let (last_ic, last_pc, _) = self.last_block(t);
        'blocks: for ic in (r0..r0 + rows).step_by(height) {
            let mc = height.min(r0 + rows - ic);
            for pc in (0..self.k).step_by(self.depth) {
                let kc = self.depth.min(self.k - pc);
                // SAFETY: rows `ic..ic + mc` and columns `pc..pc + kc` lie
                // inside `a` (caller's contract); `packed_a` holds `mc · kc`
                // rounded up to whole slivers.
                unsafe {
                    (self.micro.pack_a)(mc, kc, a.add(ic * ars + pc * acs), ars, acs, &mut packed_a)
                };
                if (ic, pc) == (last_ic, last_pc) {
                    break 'blocks;
                }
                for jb in (0..self.n).step_by(NB) {
                    let nb = NB.min(self.n - jb);
                    // SAFETY: as for `a`, rows `pc..pc + kc` and columns
                    // `jb..jb + nb` of `b`; the block of `c` is in this
                    // band's rows, which only this thread writes so far.
                    unsafe {
                        (self.micro.pack_b)(kc, nb, b.add(pc * brs + jb * bcs), brs, bcs, packed_b);
                        self.micro.multiply(
                            kc,
                            nb,
                            mc,
                            packed_a.as_ptr().cast(),
                            packed_b.as_ptr().cast(),
                            self.c.add(ic * self.ldc + jb),
                            self.ldc,
                            pc == 0,
                        );
                    }
                }
            }
        }
        let _ = me.last_block.set(packed_a);
        #[cfg(test)]
        if let Some((held, flag)) = &self.hold {
            while *held == t && !flag.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
        }
        let mut cached = None;
        while let Some(unit) = me.take(self.units(t), false) {
            // SAFETY: the block is published; the unit is this thread's.
            unsafe { self.unit(t, unit, packed_b, &mut cached) };
        }
        let count = self.bands.len();
        for u in (1..count).map(|d| (t + d) % count) {
            let other = &self.bands[u];
            if !other.started.load(Ordering::Relaxed) {
                continue;
            }
            let mut spins = 0u32;
            while other.last_block.get().is_none() {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            while let Some(unit) = other.take(self.units(u), true) {
                // SAFETY: band `u`'s block is published (so its rows hold
                // every block before); the unit is this thread's.
                unsafe { self.unit(u, unit, packed_b, &mut cached) };
            }
        }
    }

    /// Unit `unit` of band `t`'s last block: [`Micro::unit_rows`] of its rows
    /// times [`NB`] columns, with `packed_b` as scratch (`cached`: the
    /// first column of the block of the last depth of `b` it holds packed,
    /// the same for every band).
    ///
    /// # Safety
    /// Band `t` has published its last block; no other thread runs this
    /// unit; as [`super::sgemm`]'s for the whole product.
    unsafe fn unit(
        &self,
        t: usize,
        unit: usize,
        packed_b: &mut [MaybeUninit<f32>],
        cached: &mut Option<usize>,
    ) {
        let (ic, pc, mc) = self.last_block(t);
        let kc = self.k - pc;
        let unit_rows = self.micro.unit_rows();
        let chunks = mc.div_ceil(unit_rows);
        let (jb, i0) = (unit / chunks * NB, unit % chunks * unit_rows);
        let nb = NB.min(self.n - jb);
        let (b, brs, bcs) = self.b;
        let block = self.bands[t]
            .last_block
            .get()
            .expect("internal error: a unit of an unpublished block");
        // SAFETY: rows `pc..pc + kc` and columns `jb..jb + nb` of `b`; the
        // block's slivers from row `i0` on; the unit's part of `c`.
        unsafe {
            if *cached != Some(jb) {
                (self.micro.pack_b)(kc, nb, b.add(pc * brs + jb * bcs), brs, bcs, packed_b);
                *cached = Some(jb);
            }
            self.micro.multiply(
                kc,
                nb,
                unit_rows.min(mc - i0),
                block[i0 * kc..].as_ptr().cast(),
                packed_b.as_ptr().cast(),
                self.c.add((ic + i0) * self.ldc + jb),
                self.ldc,
                pc == 0,
            );
        }
    }
}

impl Parts for Product {
    fn crew(&self) -> &Crew {
        &self.crew
    }

    fn count(&self) -> usize {
        self.bands.len()
    }

    unsafe fn part(&self, t: usize) {
        // SAFETY: the caller's contract.
        unsafe { self.band(t) }
    }
}

/// A product cut into parts of columns, each a product of its own (of one
/// band), for an output with too few rows to cut into bands: each thread
/// packs its part of `b` and all of `a`, where bands would each pack all of
/// `b`.
pub(super) struct Columns {
    parts: Vec<Product>,
    crew: Crew,
}

impl Columns {
    /// The parts of `c = a · b` (`c` dense, `m × n`) for up to `parts`
    /// threads: as many parts, each a whole number of the tile's columns
    /// wide.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        micro: Micro,
        m: usize,
        k: usize,
        n: usize,
        (a, ars, acs): (*const f32, usize, usize),
        (b, brs, bcs): (*const f32, usize, usize),
        c: *mut f32,
        parts: usize,
    ) -> Self {
        let width = n.div_ceil(parts.max(1)).next_multiple_of(micro.nr);
        let parts = (0..n)
            .step_by(width)
            .map(|j0| {
                let w = width.min(n - j0);
                // (pointer arithmetic only: the part's first column of `b`
                // and of `c`, inside the caller's operands)
                let (bj, cj) = (b.wrapping_add(j0 * bcs), c.wrapping_add(j0));
                Product::new(micro, m, k, w, (a, ars, acs), (bj, brs, bcs), (cj, n), 1)
            })
            .collect();
        Columns {
            parts,
            crew: Crew::default(),
        }
    }
}

impl Parts for Columns {
    fn crew(&self) -> &Crew {
        &self.crew
    }

    fn count(&self) -> usize {
        self.parts.len()
    }

    unsafe fn part(&self, t: usize) {
        // SAFETY: the caller's contract; each part has one band and writes
        // its own columns of `c`.
        unsafe { self.parts[t].band(0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::sgemm::tests::{check, tiles_here, values};
    use crate::kernels::sgemm::Split;

    /// With every other thread of the pool busy, the calling thread runs
    /// every band itself and returns (it waits only for bands another
    /// thread has taken), and the jobs it left behind, run later, do
    /// nothing.
    #[test]
    fn the_caller_runs_every_band_when_the_pool_is_busy() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for micro in tiles_here() {
            let busy = std::sync::Arc::new(AtomicBool::new(true));
            let (started, flag) = (std::sync::Arc::new(AtomicBool::new(false)), busy.clone());
            let seen = started.clone();
            pool.install(|| {
                // the other thread of the pool takes this job and holds it
                rayon::spawn(move || {
                    seen.store(true, Ordering::Release);
                    while flag.load(Ordering::Acquire) {
                        std::thread::yield_now();
                    }
                });
                while !started.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
                check(micro, 131, 300, 530, false, false, Split::Rows(3));
                check(micro, 13, 300, 530, false, false, Split::Columns(3));
            });
            busy.store(false, Ordering::Release);
        }
    }

    /// A band whose thread is held after publishing its last block has every
    /// unit of that block taken, from the back, by the other band's thread,
    /// and the product is still exact.
    #[test]
    fn a_held_band_is_finished_by_the_other_thread() {
        for micro in tiles_here() {
            held_band(micro);
        }
    }

    fn held_band(micro: Micro) {
        // two bands (102 and 98 rows with 6-row slivers), a depth of two
        // blocks, 600 columns (five units of columns); the second band's
        // last block is two units of rows high
        let (m, k, n) = (200, 700, 600);
        let a = values(m * k, 1);
        let b = values(k * n, 2);
        let mut c = vec![f32::NAN; m * n];
        let release = std::sync::Arc::new(AtomicBool::new(false));
        let mut product = Product::new(
            micro,
            m,
            k,
            n,
            (a.as_ptr(), k, 1),
            (b.as_ptr(), n, 1),
            (c.as_mut_ptr(), n),
            2,
        );
        product.hold = Some((1, release.clone()));
        let units = (10, 10);
        assert_eq!(
            (product.bands.len(), product.units(0), product.units(1)),
            (2, units.0, units.1),
            "{}",
            micro.name
        );
        let product = &product;
        std::thread::scope(|s| {
            // SAFETY: the operands are dense `m × k`, `k × n` and `m × n`
            // buffers; each band runs once.
            s.spawn(|| unsafe { product.band(1) });
            while !product.bands[1].started.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
            // SAFETY: as above.
            unsafe { product.band(0) };
            release.store(true, Ordering::Release);
        });
        let taken = product.bands[1].taken.load(Ordering::Relaxed);
        assert_eq!(
            (taken & 0xffff_ffff, taken >> 32),
            (0, units.1 as u64),
            "units of band 1 taken (front, back), {}",
            micro.name
        );
        assert_eq!(
            product.bands[0].taken.load(Ordering::Relaxed),
            units.0 as u64,
            "band 0's own units, {}",
            micro.name
        );
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                assert_eq!(c[i * n + j], want, "({i}, {j}), {}", micro.name);
            }
        }
    }
}
