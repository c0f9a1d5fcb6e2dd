//! An `f32` matrix product of our own for x86-64 CPUs with AVX2 and FMA or
//! with AVX-512F: the large products of [`super::gemm`] run here instead of
//! in the `gemm` crate, in a 6 × 64 tile of 512-bit registers where the
//! CPU has AVX-512F and a 6 × 16 tile of 256-bit registers elsewhere
//! ([`tiles`]).
//!
//! Why a kernel of our own: on the project's Zen 3 machine (shared with other
//! work), W1's products on two threads ran 1.20× faster with the AVX2 tile
//! than with the `gemm` crate at n = 512 and 1024, in six alternated runs of
//! six. On one thread, run in one process with the `gemm` crate and
//! alternated product by product, it was 1.18× faster at n = 1024, level at
//! 384 and 512, and 3–7% slower at 128–256; beside MKL's one-thread `sgemm`
//! it reached 0.98–1.09× of MKL's speed where the `gemm` crate reached
//! 0.81–0.95× (see `docs/performance-journal.md`, "Late night
//! (2026-12-01)"). In its present shape it is 1.15× faster than the `gemm`
//! crate at 512, 1–7% at 256 and slower below (hence `OWN_MIN_WORK` in
//! [`super::parallel`]). On an Intel Xeon with AVX-512 (Sapphire Rapids
//! class), where the `gemm` crate's 512-bit kernel reached 43 GFLOP/s on one
//! thread and MKL 94, the 512-bit tile is the one that keeps up with MKL
//! (journal, "Evening (2026-12-02)").
//!
//! The loops keep a sliver of `a` (`MR` rows, at most `KC` deep: 9 KiB for
//! either tile) in L1 and run it across a `KC × NB` block of `b` packed in `NR`-column slivers (kept in L2), for
//! every sliver of an `MC × KC` block of `a` (in L3). Until 2026-12-02 the
//! kernel was MKL's shape the other way round (a 4 × 16 tile, a sliver of
//! `b` in L1, a block of `a` in L2), which caps the depth at what a
//! 16-column sliver leaves of L1; this order ran W1 1.03–1.04× and
//! 1.06–1.08× faster at n = 256 and 512 on two threads and level at 1024
//! (0.98–1.07×), and on one thread 1.11× and 1.04× at 512 and 1024 (0.97×
//! at 256), alternated with the former on a busy host (see the journal,
//! "Afternoon (2026-12-02)").
//!
//! Elsewhere (other architectures, CPUs without AVX2 and FMA, and `f64`)
//! the `gemm` crate does the work; [`chosen`] has the rule, and the
//! environment variable `FERROGRAD_GEMM_KERNEL` overrides it, to measure
//! one kernel against another.

mod tiles;

use super::parallel::{
    GEMM_SPLIT_WORK_AVX512, GEMM_SPLIT_WORK_OWN, OWN_MIN_WORK, OWN_MIN_WORK_AVX512,
};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use tiles::{PackFn, TileFn};

/// One of the micro-kernels ([`tiles`]) and its packers: only made where
/// the CPU runs it ([`Micro::avx2`], [`Micro::avx512`]), so holding one is
/// the proof that its instructions exist here.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Micro {
    /// Rows of the output tile (broadcasts of `a` per step of `k`).
    mr: usize,
    /// Columns of the output tile (two vector registers of `b` per step).
    nr: usize,
    tile: TileFn,
    pack_a: PackFn,
    pack_b: PackFn,
    /// Work (m·n·k) from which a product on the pool is cut into bands
    /// (below, the `gemm` crate's threading runs it).
    split_work: usize,
    /// Work from which a product on one thread runs here rather than in the
    /// `gemm` crate.
    min_work: usize,
    /// The most rows of `a` packed at once ([`block_rows`]): [`MC`] for the
    /// AVX2 tile, [`MC_AVX512`] for the AVX-512 one.
    mc: usize,
    /// `"avx2"` or `"avx512"`: in `Debug` output and the tests' messages.
    #[cfg_attr(not(test), allow(dead_code))]
    name: &'static str,
}

impl Micro {
    /// The 6 × 16 tile of 256-bit registers, if the CPU has AVX2 and FMA.
    pub(crate) fn avx2() -> Option<Micro> {
        let here = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        here.then(|| Micro::of(tiles::AVX2, (GEMM_SPLIT_WORK_OWN, OWN_MIN_WORK), MC, "avx2"))
    }

    /// The 6 × 64 tile of 512-bit registers, if the CPU has AVX-512F.
    pub(crate) fn avx512() -> Option<Micro> {
        let here = std::arch::is_x86_feature_detected!("avx512f");
        here.then(|| {
            let cutoffs = (GEMM_SPLIT_WORK_AVX512, OWN_MIN_WORK_AVX512);
            Micro::of(tiles::AVX512, cutoffs, MC_AVX512, "avx512")
        })
    }

    /// A tile with its packers ([`tiles::Shape`]), its cutoffs
    /// (`split_work`, `min_work`), the most rows of `a` it packs at once and
    /// its name. Only for the constructors above, which check that the CPU
    /// runs the shape's instructions.
    fn of(
        shape: tiles::Shape,
        (split_work, min_work): (usize, usize),
        mc: usize,
        name: &'static str,
    ) -> Micro {
        Micro {
            mr: shape.mr,
            nr: shape.nr,
            tile: shape.tile,
            pack_a: shape.pack_a,
            pack_b: shape.pack_b,
            split_work,
            min_work,
            mc,
            name,
        }
    }

    /// The tile's cutoffs (measured per tile, in [`super::parallel`]): the
    /// work from which a product on the pool is cut into bands, and the
    /// work from which one on a single thread runs here.
    pub(crate) fn cutoffs(&self) -> (usize, usize) {
        (self.split_work, self.min_work)
    }

    /// Rows of a unit of a band's last block (see [`sgemm`]): about 96, a
    /// whole number of slivers.
    fn unit_rows(&self) -> usize {
        96usize.next_multiple_of(self.mr)
    }
}

/// The height of each packed block of a band of `rows` rows for slivers of
/// `mr` rows: `rows` cut into as few equal parts as keep each within `mc`,
/// rounded up to whole slivers (with 6-row slivers and `mc` = [`MC`] a band
/// of 600 rows is two blocks of 300, not 512 rows and 88; a band of 512
/// rows is one block of 516, one of 516 rows two of 258).
fn block_rows(rows: usize, mr: usize, mc: usize) -> usize {
    rows.div_ceil(rows.div_ceil(mc)).next_multiple_of(mr)
}

/// The deepest a packed block gets: a sliver of `a` is at most `MR × KC`
/// (9 KiB of L1's 32 for the AVX2 tile), a block of `b` `KC × NB`.
/// Products deeper than `KC` are cut into equal depths ([`depth`]).
///
/// Measured with [`NB`] and [`MC`] on the project's Zen 3, two threads, a
/// busy host (see the journal, "Afternoon (2026-12-02)"): a depth of 512
/// (1024 → 2 × 512), blocks of `b` 192 columns wide and blocks of `a` of
/// 256 rows were each level or slower at n = 256 and 1024 (down to 0.67×
/// and 0.90×); at 512 their medians were 7–17% higher in a run where this
/// choice's median fell far below its fastest products, and by the fastest
/// tenth of the products all four were within 4% of each other.
const KC: usize = 384;
/// Rows of `a` packed at once: at most `MC × KC` (768 KiB, in L3), so that a
/// band of up to 512 rows packs each depth of `a` once. A band is a whole
/// number of slivers, so W1's n = 1024 on two threads gives bands of 516
/// rows with the AVX2 tile, each cut into two blocks of 258
/// ([`block_rows`]): that is what the block sweep measured there, not
/// one block of 516.
const MC: usize = 512;
/// [`MC`] for the AVX-512 tile: a band of W1's n = 1024 on two threads (516
/// rows) is then one block (706 KiB at a depth of 342, beside a 171 KiB
/// block of `b` in the 2 MiB L2 of an Intel Xeon), so each thread packs each
/// depth of `b` once rather than twice. On the project's Intel Xeon, two
/// threads at n = 1024 ran 3% faster than with [`MC`] (median and fastest
/// tenth of 565 products each, the two alternated product by product in one
/// process on a busy host; 1.06× and 1.08× in two alternated runs of the
/// bench's binaries); one thread, which then packs all 1024 rows as one
/// 1.4 MiB block, was level. Zen 4, whose L2 holds 1 MiB, is not measured.
const MC_AVX512: usize = 1024;
/// Columns of `b` packed at once: at most `KC × NB` (192 KiB, in L2, beside
/// the sliver of `a` that runs across it); a multiple of every tile's width.
const NB: usize = 128;

/// The depth of each packed block for a product of depth `k`: `k` cut into
/// as few equal parts as keep each within [`KC`] (512 → 2 × 256, 1024 →
/// 3 × 342), rather than full blocks and a shallow remainder.
fn depth(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC))
}

/// The environment variable that overrides [`chosen`]'s rule: `avx512` or
/// `avx2` sends large `f32` products to that tile where the CPU runs it,
/// `own` to the rule's tile, `gemm` keeps them all in the `gemm` crate (any
/// other value: the rule). Read once, at the first product; for measuring
/// one kernel against another on a new machine (like PyTorch's
/// `ATEN_CPU_CAPABILITY`).
const KERNEL_VAR: &str = "FERROGRAD_GEMM_KERNEL";

/// The micro-kernel large `f32` products run in, or `None` for the `gemm`
/// crate (decided once per process, see [`rule`]).
pub(crate) fn chosen() -> Option<Micro> {
    static CHOICE: OnceLock<Option<Micro>> = OnceLock::new();
    *CHOICE.get_or_init(|| {
        let request = std::env::var(KERNEL_VAR).ok();
        let (avx2, avx512) = (Micro::avx2(), Micro::avx512());
        match rule(avx2.is_some(), avx512.is_some(), request.as_deref())? {
            Tile::Avx2 => avx2,
            Tile::Avx512 => avx512,
        }
    })
}

/// The two tiles, by name (what [`rule`] chooses between).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tile {
    Avx2,
    Avx512,
}

/// [`chosen`]'s rule, on the tiles this CPU runs (`avx2`: it has AVX2 and
/// FMA, `avx512`: AVX-512F) and [`KERNEL_VAR`]'s value: the widest tile the
/// CPU runs, unless the variable asks for the other one (if the CPU runs it)
/// or for the `gemm` crate (`None`).
///
/// The AVX-512 tile is chosen on every CPU with AVX-512F: on Intel's cores
/// and AMD's Zen 5, whose 512-bit units are full width, it has twice the
/// AVX2 tile's peak; on Zen 4, which runs a 512-bit instruction as two
/// 256-bit halves on the same pipes, the peak is the same, and the larger
/// tile needs half the loads and instructions per multiply-add. (The Zen 4
/// choice follows from that design, not from a measurement: no Zen 4 was at
/// hand since the tile was written; [`KERNEL_VAR`] lets one be made.)
fn rule(avx2: bool, avx512: bool, request: Option<&str>) -> Option<Tile> {
    let (avx2, avx512) = (avx2.then_some(Tile::Avx2), avx512.then_some(Tile::Avx512));
    match request {
        Some("gemm") => None,
        Some("avx2") => avx2,
        Some("avx512") => avx512,
        _ => avx512.or(avx2),
    }
}

/// Whether an `m × n` output fills the chosen tile (narrower ones stay with
/// the `gemm` crate's matrix-vector paths), `Some` of that tile if so.
pub(crate) fn suits(m: usize, n: usize) -> Option<Micro> {
    chosen().filter(|k| m >= k.mr && n >= k.nr)
}

/// `c = a · b` for an `m × k` matrix `a` (element `(i, p)` at
/// `a + i·ars + p·acs`), a `k × n` matrix `b` (element `(p, j)` at
/// `b + p·brs + j·bcs`) and a dense row-major `m × n` output `c`, which is
/// written without being read first (it may be uninitialised): on the
/// calling thread when `parts` is 1, otherwise on up to `parts` threads of
/// the pool.
///
/// On the pool, each thread takes a band of rows and multiplies it as one
/// thread would, packing `b` for itself (packing it once for all, shared,
/// was slower: the slivers then travel between cores). The band's last
/// block of `a` (its last block of rows, [`block_rows`], at the last depth) is left
/// for the end and cut into units ([`Micro::unit_rows`] rows by [`NB`]
/// columns):
/// the band's thread takes them from the front, and a thread done with its
/// own band takes what is left from the back. So the product no longer
/// waits for its slowest band: on the project's Zen 3 the pool's worker ran
/// its half 2.5–4% slower than the calling thread on a quiet host, and far
/// slower when the host was busy.
///
/// A thread helps only a band whose thread has started; it waits (spinning
/// briefly, then yielding) for that band's last block to be packed, never
/// for a band that has not started: that band may be queued behind this
/// very thread, which then runs it itself.
///
/// # Safety
/// `k > 0`; the strides address every element of `a`
/// and `b` inside their allocations; `c` points at `m · n` writable `f32`s
/// that overlap neither.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    micro: Micro,
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    ars: usize,
    acs: usize,
    b: *const f32,
    brs: usize,
    bcs: usize,
    c: *mut f32,
    parts: usize,
) {
    let product = Product::new(micro, m, k, n, (a, ars, acs), (b, brs, bcs), c, parts);
    match product.bands.len() {
        // SAFETY: the caller's contract; one band, run by this thread alone.
        1 => unsafe { product.band(0) },
        bands => {
            let product = std::sync::Arc::new(product);
            for _ in 1..bands {
                let product = std::sync::Arc::clone(&product);
                // SAFETY: the caller's contract; `Crew::run` lets a band run
                // once, and this thread does not return before every band
                // taken is done (`Crew::finish`).
                rayon::spawn(move || unsafe { product.crew.run(&product) });
            }
            let done = Finish(&product);
            // SAFETY: as above.
            unsafe { product.crew.run(&product) };
            drop(done);
        }
    }
}

/// Who runs a product's bands: the calling thread and the pool's threads
/// that the product's jobs reach in time, each taking the next band not yet
/// taken until none is left.
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
struct Crew {
    /// Bands taken so far (may pass the count: then every band is taken).
    next: AtomicUsize,
    /// Pool threads inside [`Crew::run`] (taking or running bands).
    helpers: AtomicUsize,
}

impl Crew {
    /// Takes and runs bands of `product` until none is left.
    ///
    /// # Safety
    /// As [`sgemm`]'s for the whole product, until [`Crew::finish`] returns.
    unsafe fn run(&self, product: &Product) {
        self.helpers.fetch_add(1, Ordering::SeqCst);
        loop {
            let t = self.next.fetch_add(1, Ordering::SeqCst);
            if t >= product.bands.len() {
                break;
            }
            // SAFETY: the caller's contract; band `t` is this thread's alone.
            unsafe { product.band(t) };
        }
        self.helpers.fetch_sub(1, Ordering::SeqCst);
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

/// Calls [`Crew::finish`] when dropped, so that the calling thread waits
/// for the pool's threads even if it unwinds.
struct Finish<'a>(&'a Product);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.crew.finish();
    }
}

/// One product, shared by the threads that run its bands.
struct Product {
    /// The tile and its packers.
    micro: Micro,
    /// `a`, its row stride and column stride.
    a: (*const f32, usize, usize),
    /// `b`, its row stride and column stride.
    b: (*const f32, usize, usize),
    /// The dense `m × n` output.
    c: *mut f32,
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
// SAFETY: the pointers are the caller's, used only under [`sgemm`]'s
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
    fn new(
        micro: Micro,
        m: usize,
        k: usize,
        n: usize,
        a: (*const f32, usize, usize),
        b: (*const f32, usize, usize),
        c: *mut f32,
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
    /// As [`sgemm`]'s, for the whole product; each band is run once.
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
                            self.c.add(ic * self.n + jb),
                            self.n,
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
    /// unit; as [`sgemm`]'s for the whole product.
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
                self.c.add((ic + i0) * self.n + jb),
                self.n,
                pc == 0,
            );
        }
    }
}

impl Micro {
    /// `c (=|+=) a · b` for a packed `mc × kc` block of `a` and a packed
    /// `kc × nb` block of `b` (`first` stores, otherwise adds), `c` with row
    /// stride `ldc`: for each sliver of `a` (kept in L1), every sliver of `b`
    /// (the block kept in L2).
    ///
    /// # Safety
    /// `a` holds at least the block's `mc` rows rounded up to whole slivers,
    /// `b` the block's `nb` columns rounded up likewise; `c` addresses a
    /// writable `mc × nb` block, initialised unless `first`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn multiply(
        &self,
        kc: usize,
        nb: usize,
        mc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        first: bool,
    ) {
        let (mr, nr) = (self.mr, self.nr);
        for ir in (0..mc).step_by(mr) {
            let rows = mr.min(mc - ir);
            // SAFETY: sliver `ir / mr` of the block (the caller's contract).
            let ap = unsafe { a.add(ir * kc) };
            for jr in (0..nb).step_by(nr) {
                let cols = nr.min(nb - jr);
                // SAFETY: as for `a`.
                let bp = unsafe { b.add(jr * kc) };
                // SAFETY: the tile's rows and columns lie inside the block,
                // the slivers hold `kc` steps, and the CPU runs the tile
                // (`self` exists).
                unsafe {
                    let cp = c.add(ir * ldc + jr);
                    if rows == mr && cols == nr {
                        (self.tile)(kc, ap, bp, cp, ldc, first);
                    } else {
                        tiles::edge_tile(
                            self.tile,
                            (mr, nr),
                            kc,
                            ap,
                            bp,
                            cp,
                            ldc,
                            (rows, cols),
                            first,
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small integers, so every product and sum below is exact in `f32`.
    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7 + seed * 13) % 9) as f32 - 4.0)
            .collect()
    }

    /// The tiles this CPU runs (none: the test has nothing to check).
    fn tiles_here() -> Vec<Micro> {
        let tiles: Vec<Micro> = [Micro::avx2(), Micro::avx512()]
            .into_iter()
            .flatten()
            .collect();
        if tiles.is_empty() {
            eprintln!("skipped: this CPU has neither AVX2 and FMA nor AVX-512F");
        }
        tiles
    }

    /// `a · b` through `sgemm` with `micro` (in up to `threads` bands, on
    /// the global pool) with `a` (and `b`) stored as given (`transposed`:
    /// column-major) and offset into their buffers, against the naive sum
    /// of products.
    fn check(micro: Micro, m: usize, k: usize, n: usize, a_t: bool, b_t: bool, threads: usize) {
        let off = 3;
        let a = values(off + m * k, 1);
        let b = values(off + k * n, 2);
        let (ars, acs) = if a_t { (1, m) } else { (k, 1) };
        let (brs, bcs) = if b_t { (1, k) } else { (n, 1) };
        let mut c = vec![f32::NAN; m * n];
        // SAFETY: the strides address `m × k` and `k × n` matrices inside
        // the buffers after `off`, and `c` is `m × n`.
        unsafe {
            let (ap, bp, cp) = (a[off..].as_ptr(), b[off..].as_ptr(), c.as_mut_ptr());
            sgemm(micro, m, k, n, ap, ars, acs, bp, brs, bcs, cp, threads)
        };
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k)
                    .map(|p| a[off + i * ars + p * acs] * b[off + p * brs + j * bcs])
                    .sum();
                assert_eq!(
                    c[i * n + j],
                    want,
                    "({i}, {j}) of {m}×{k}·{k}×{n}, a_t {a_t}, b_t {b_t}, {}",
                    micro.name
                );
            }
        }
    }

    /// The cuts of rows and depths that the docs of [`block_rows`] and
    /// [`depth`] give.
    #[test]
    fn blocks_are_cut_into_equal_parts() {
        assert_eq!(block_rows(512, 6, MC), 516);
        assert_eq!(block_rows(600, 6, MC), 300);
        assert_eq!(block_rows(516, 6, MC), 258);
        assert_eq!(block_rows(1030, 6, MC), 348); // 3 blocks: 348, 348, 334
        assert_eq!(block_rows(100, 6, MC), 102); // whole slivers
        assert_eq!(block_rows(516, 12, MC), 264);
        assert_eq!(block_rows(128, 12, MC), 132);
        assert_eq!(block_rows(516, 6, MC_AVX512), 516);
        assert_eq!(block_rows(1024, 6, MC_AVX512), 1026);
        assert_eq!(block_rows(1100, 6, MC_AVX512), 552);
        assert_eq!(depth(384), 384);
        assert_eq!(depth(512), 256);
        assert_eq!(depth(1024), 342);
    }

    #[test]
    fn products_match_the_naive_sums() {
        // whole tiles, edges in every dimension (for both tiles: fewer rows
        // and columns than one tile too), and more than one block of `k`
        // (KC), of rows (MC), of columns (NB) and of units' rows
        let shapes = [
            (4, 1, 16),
            (4, 5, 16),
            (5, 3, 17),
            (7, 9, 33),
            (13, 7, 40),
            (64, 64, 64),
            (131, 300, 530),
            (129, 513, 20),
            (3, 8, 40),
            (9, 390, 1030),
            (1030, 5, 20),
            (6, 2, 16),
            (12, 2, 32),
            (6, 2, 64),
            (7, 9, 130),
        ];
        for micro in tiles_here() {
            for &(m, k, n) in &shapes {
                for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
                    for threads in [1, 2, 3] {
                        check(micro, m, k, n, a_t, b_t, threads);
                    }
                }
            }
            // on a pool of one thread, which runs every band in turn (so no
            // band has started when the first is done)
            let one = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap();
            one.install(|| check(micro, 131, 300, 530, false, true, 2));
        }
    }

    #[test]
    fn the_rule_takes_the_widest_tile_unless_asked() {
        use Tile::*;
        // the widest tile the CPU runs
        assert_eq!(rule(true, true, None), Some(Avx512));
        assert_eq!(rule(true, false, None), Some(Avx2));
        assert_eq!(rule(false, true, None), Some(Avx512));
        assert_eq!(rule(false, false, None), None);
        // what is asked for, if the CPU runs it
        assert_eq!(rule(true, true, Some("avx2")), Some(Avx2));
        assert_eq!(rule(true, false, Some("avx512")), None);
        assert_eq!(rule(true, true, Some("gemm")), None);
        assert_eq!(rule(true, false, Some("own")), Some(Avx2));
        // a value it does not know leaves the rule
        assert_eq!(rule(true, true, Some("fast")), Some(Avx512));
        assert_eq!(rule(true, false, Some("GEMM")), Some(Avx2));
    }

    /// `FERROGRAD_GEMM_KERNEL` decides [`chosen`], in a child run of this
    /// test binary with the variable set (the choice is made once per
    /// process, so it cannot be changed within this one).
    #[test]
    fn the_variable_overrides_the_rule() {
        const CHILD: &str = "FERROGRAD_TEST_KERNEL_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let request = std::env::var(KERNEL_VAR).unwrap();
            let want = match request.as_str() {
                "gemm" => None,
                "avx2" => Micro::avx2(),
                "avx512" => Micro::avx512(),
                _ => Micro::avx512().or(Micro::avx2()),
            };
            assert_eq!(chosen().map(|k| k.name), want.map(|k| k.name));
            return;
        }
        let name = "kernels::sgemm::tests::the_variable_overrides_the_rule";
        for request in ["own", "gemm", "avx2", "avx512"] {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--test-threads=1"])
                .env(KERNEL_VAR, request)
                .env(CHILD, "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "{KERNEL_VAR}={request}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// A band whose thread is held after publishing its last block has every
    /// unit of that block taken, from the back, by the other band's thread,
    /// and the product is still exact.
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
                check(micro, 131, 300, 530, false, false, 3);
            });
            busy.store(false, Ordering::Release);
        }
    }

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
            c.as_mut_ptr(),
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
