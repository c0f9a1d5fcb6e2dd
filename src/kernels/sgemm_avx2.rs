//! An `f32` matrix product for x86-64 CPUs with AVX2 and FMA whose vector
//! units are 256 bits wide (AMD Zen 2 to 4, Intel before Ice Lake): the large
//! products of [`super::gemm`] run here instead of in the `gemm` crate.
//!
//! Why a kernel of our own: on the project's Zen 3 machine (shared with other
//! work), W1's products on two threads ran 1.20× faster with it than with
//! the `gemm` crate at n = 512 and 1024, in six alternated runs of six. On one
//! thread, run in one process with the `gemm` crate and alternated product by
//! product, it was 1.18× faster at n = 1024, level at 384 and 512, and 3–7%
//! slower at 128–256; beside MKL's one-thread `sgemm` it reached 0.98–1.09×
//! of MKL's speed where the `gemm` crate reached 0.81–0.95× (see
//! `docs/performance-journal.md`, "Late night (2026-12-01)"). In its present
//! shape it is 1.15× faster than the `gemm` crate at 512, 1–7% at 256 and
//! slower below (hence `OWN_MIN_WORK` in [`super::parallel`]).
//!
//! Its shape is the `gemm` crate's, turned to a row-major output: a 6 × 16
//! tile of the output in twelve accumulators, two loads of `b` and six
//! broadcasts of `a` per step of `k`, the step unrolled four times. The
//! loops keep a sliver of `a` (6 rows, at most `KC` deep: 9 KiB) in L1 and
//! run it across a `KC × NB` block of `b` packed in 16-column slivers (kept
//! in L2), for every sliver of an `MC × KC` block of `a` (in L3). Until
//! 2026-12-02 the kernel was MKL's shape the other way round (a 4 × 16
//! tile, a sliver of `b` in L1, a block of `a` in L2), which caps the depth
//! at what a 16-column sliver leaves of L1; this order ran W1 1.03–1.04×
//! and 1.06–1.08× faster at n = 256 and 512 on two threads and level at
//! 1024 (0.98–1.07×), and on one thread 1.11× and 1.04× at 512 and 1024
//! (0.97× at 256), alternated with the former on a busy host (see the
//! journal, "Afternoon (2026-12-02)").
//!
//! Elsewhere (CPUs with full-width AVX-512 units, where the `gemm` crate has
//! a 512-bit kernel, other architectures, and `f64`) the `gemm` crate does
//! the work; [`chosen`] has the rule, and the environment variable
//! `FERROGRAD_GEMM_KERNEL` (`own` or `gemm`) overrides it, to measure one
//! kernel against the other.

use std::arch::x86_64::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

/// Rows of the output tile (broadcasts of `a` per step of `k`).
const MR: usize = 6;
/// Columns of the output tile (two AVX registers of `b` per step of `k`).
const NR: usize = 16;
/// The deepest a packed block gets: a sliver of `a` is at most `MR × KC`
/// (9 KiB of L1's 32), a block of `b` `KC × NB`. Products deeper than `KC`
/// are cut into equal depths ([`depth`]).
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
/// rows, each cut into two blocks of 258 ([`block_rows`]): that is what the
/// block sweep measured there, not one block of 516.
const MC: usize = 512;
/// Columns of `b` packed at once: at most `KC × NB` (192 KiB, in L2, beside
/// the sliver of `a` that runs across it).
const NB: usize = 128;

/// The height of each packed block of a band of `rows` rows: `rows` cut
/// into as few equal parts as keep each within [`MC`], rounded up to whole
/// slivers (a band of 600 rows is two blocks of 300, not 512 rows and 88; a
/// band of 512 rows is one block of 516, one of 516 rows two of 258).
fn block_rows(rows: usize) -> usize {
    rows.div_ceil(rows.div_ceil(MC)).next_multiple_of(MR)
}

/// The depth of each packed block for a product of depth `k`: `k` cut into
/// as few equal parts as keep each within [`KC`] (512 → 2 × 256, 1024 →
/// 3 × 342), rather than full blocks and a shallow remainder.
fn depth(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC))
}

/// Whether this CPU can run this kernel at all: AVX2 and FMA (std caches
/// the detection). The safety condition of [`sgemm`]; whether products are
/// sent here is [`chosen`].
pub(crate) fn runs_here() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// The environment variable that overrides [`chosen`]'s rule: `own` sends
/// large `f32` products to this kernel on any CPU with AVX2 and FMA, `gemm`
/// keeps them all in the `gemm` crate (any other value: the rule). Read once,
/// at the first product; for measuring one kernel against the other on a
/// new machine (like PyTorch's `ATEN_CPU_CAPABILITY`).
const KERNEL_VAR: &str = "FERROGRAD_GEMM_KERNEL";

/// Whether large `f32` products run in this kernel rather than the `gemm`
/// crate's (decided once per process): never without AVX2 and FMA; as
/// [`KERNEL_VAR`] says if it is set; otherwise on CPUs without AVX-512F and
/// on AMD's family 19h (Zen 3 and Zen 4, see [`rule`]).
pub(crate) fn chosen() -> bool {
    static CHOICE: OnceLock<bool> = OnceLock::new();
    *CHOICE.get_or_init(|| {
        let request = std::env::var(KERNEL_VAR).ok();
        rule(
            runs_here(),
            is_x86_feature_detected!("avx512f"),
            amd_family(),
            request.as_deref(),
        )
    })
}

/// [`chosen`]'s rule, on what the CPU reports: `avx2_fma` (the kernel can
/// run), `avx512f`, the family if the vendor is AMD, and [`KERNEL_VAR`]'s
/// value.
///
/// Where AVX-512 is present the `gemm` crate's 512-bit kernel stays, except
/// on AMD's family 19h with AVX-512 (Zen 4): there a 512-bit instruction
/// runs as two 256-bit halves on the same two 256-bit FMA pipes, so this
/// kernel has the same peak. On a Zen 4 the `gemm` crate matched MKL on one
/// thread but reached only 0.79–0.89× of PyTorch's speed on two (the
/// sitting that opened issue 13), the gap this kernel's split closes on
/// Zen 3. The Zen 4 choice follows from that design, not from a
/// measurement (no Zen 4 was at hand since the kernel was written; see
/// `docs/performance-journal.md`, "Morning (2026-12-02)"); [`KERNEL_VAR`]
/// lets one be made. Zen 5 (family 1Ah) and Intel's AVX-512 cores, whose
/// 512-bit units are full width, keep the crate.
fn rule(avx2_fma: bool, avx512f: bool, amd_family: Option<u32>, request: Option<&str>) -> bool {
    if !avx2_fma {
        return false;
    }
    match request {
        Some("own") => true,
        Some("gemm") => false,
        _ => !avx512f || amd_family == Some(0x19),
    }
}

/// The CPU's family (base plus extended, as AMD counts it) if its vendor is
/// AMD.
fn amd_family() -> Option<u32> {
    // (`unused_unsafe`: in some Rust versions `__cpuid` is a safe function)
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86-64 CPU.
    let (vendor, signature) = unsafe { (__cpuid(0), __cpuid(1)) };
    let amd = [vendor.ebx, vendor.edx, vendor.ecx]
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .eq(*b"AuthenticAMD");
    let base = (signature.eax >> 8) & 0xf;
    let extended = (signature.eax >> 20) & 0xff;
    amd.then(|| if base == 0xf { base + extended } else { base })
}

/// Whether an `m × n` output fills this kernel's tiles (narrower ones stay
/// with the `gemm` crate's matrix-vector paths) and products run here
/// ([`chosen`]).
pub(crate) fn suits(m: usize, n: usize) -> bool {
    m >= MR && n >= NR && chosen()
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
/// block of `a` (its last [`MC`] rows or fewer, at the last depth) is left
/// for the end and cut into units ([`UNIT_ROWS`] rows by [`NB`] columns):
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
/// [`runs_here`] is true; `k > 0`; the strides address every element of `a`
/// and `b` inside their allocations; `c` points at `m · n` writable `f32`s
/// that overlap neither.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
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
    use rayon::prelude::*;
    let product = Product::new(m, k, n, (a, ars, acs), (b, brs, bcs), c, parts);
    match product.bands.len() {
        // SAFETY: the caller's contract; one band, run by this thread alone.
        1 => unsafe { product.band(0) },
        bands => (0..bands).into_par_iter().for_each(|t| {
            // SAFETY: the caller's contract; each band is run once, and the
            // bands' rows and units do not overlap.
            unsafe { product.band(t) }
        }),
    }
}

/// Rows of a unit of a band's last block (see [`sgemm`]): a whole number of
/// slivers.
const UNIT_ROWS: usize = 16 * MR;

/// One product, shared by the threads that run its bands.
struct Product {
    /// `a`, its row stride and column stride.
    a: (*const f32, usize, usize),
    /// `b`, its row stride and column stride.
    b: (*const f32, usize, usize),
    /// The dense `m × n` output.
    c: *mut f32,
    m: usize,
    k: usize,
    n: usize,
    /// Rows per band (a multiple of [`MR`]; the last band may have fewer).
    band: usize,
    /// Depth of the packed blocks ([`depth`]).
    depth: usize,
    bands: Vec<Band>,
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
    last_block: OnceLock<Vec<f32>>,
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
    fn new(
        m: usize,
        k: usize,
        n: usize,
        a: (*const f32, usize, usize),
        b: (*const f32, usize, usize),
        c: *mut f32,
        parts: usize,
    ) -> Self {
        debug_assert!(k > 0 && m > 0 && n > 0);
        let band = m.div_ceil(parts.max(1)).next_multiple_of(MR);
        let bands = (0..m.div_ceil(band))
            .map(|_| Band {
                started: AtomicBool::new(false),
                last_block: OnceLock::new(),
                taken: AtomicU64::new(0),
            })
            .collect();
        Product {
            a,
            b,
            c,
            m,
            k,
            n,
            band,
            depth: depth(k),
            bands,
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
        let height = block_rows(rows);
        let ic = r0 + (rows - 1) / height * height;
        (ic, (self.k - 1) / self.depth * self.depth, r0 + rows - ic)
    }

    /// How many units band `t`'s last block holds.
    fn units(&self, t: usize) -> usize {
        self.last_block(t).2.div_ceil(UNIT_ROWS) * self.n.div_ceil(NB)
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
        // Zero-filled although the packing writes every element the tiles
        // read (see the journal: leaving them uninitialised was slower).
        // Each thread allocates its own.
        let height = block_rows(rows);
        let mut packed_a = vec![0f32; self.depth * height];
        // `packed_b` holds a block of any columns, as this thread may take
        // the other bands' units.
        let mut packed_b = vec![0f32; self.depth * NB.min(self.n).next_multiple_of(NR)];
        let (last_ic, last_pc, _) = self.last_block(t);
        'blocks: for ic in (r0..r0 + rows).step_by(height) {
            let mc = height.min(r0 + rows - ic);
            for pc in (0..self.k).step_by(self.depth) {
                let kc = self.depth.min(self.k - pc);
                // SAFETY: rows `ic..ic + mc` and columns `pc..pc + kc` lie
                // inside `a` (caller's contract); `packed_a` holds `mc · kc`
                // rounded up to whole slivers.
                unsafe { pack_a(mc, kc, a.add(ic * ars + pc * acs), ars, acs, &mut packed_a) };
                if (ic, pc) == (last_ic, last_pc) {
                    break 'blocks;
                }
                for jb in (0..self.n).step_by(NB) {
                    let nb = NB.min(self.n - jb);
                    // SAFETY: as for `a`, rows `pc..pc + kc` and columns
                    // `jb..jb + nb` of `b`; the block of `c` is in this
                    // band's rows, which only this thread writes so far.
                    unsafe {
                        pack_b(kc, nb, b.add(pc * brs + jb * bcs), brs, bcs, &mut packed_b);
                        multiply(
                            kc,
                            nb,
                            mc,
                            &packed_a,
                            &packed_b,
                            self.c.add(ic * self.n + jb),
                            self.n,
                            pc == 0,
                        );
                    }
                }
            }
        }
        // The vector's buffer does not move: `packed_a` is left empty.
        let _ = me.last_block.set(std::mem::take(&mut packed_a));
        #[cfg(test)]
        if let Some((held, flag)) = &self.hold {
            while *held == t && !flag.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
        }
        let mut cached = None;
        while let Some(unit) = me.take(self.units(t), false) {
            // SAFETY: the block is published; the unit is this thread's.
            unsafe { self.unit(t, unit, &mut packed_b, &mut cached) };
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
                unsafe { self.unit(u, unit, &mut packed_b, &mut cached) };
            }
        }
    }

    /// Unit `unit` of band `t`'s last block: [`UNIT_ROWS`] of its rows
    /// times [`NB`] columns, with `packed_b` as scratch (`cached`: the
    /// first column of the block of the last depth of `b` it holds packed,
    /// the same for every band).
    ///
    /// # Safety
    /// Band `t` has published its last block; no other thread runs this
    /// unit; as [`sgemm`]'s for the whole product.
    unsafe fn unit(&self, t: usize, unit: usize, packed_b: &mut [f32], cached: &mut Option<usize>) {
        let (ic, pc, mc) = self.last_block(t);
        let kc = self.k - pc;
        let chunks = mc.div_ceil(UNIT_ROWS);
        let (jb, i0) = (unit / chunks * NB, unit % chunks * UNIT_ROWS);
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
                pack_b(kc, nb, b.add(pc * brs + jb * bcs), brs, bcs, packed_b);
                *cached = Some(jb);
            }
            multiply(
                kc,
                nb,
                UNIT_ROWS.min(mc - i0),
                &block[i0 * kc..],
                packed_b,
                self.c.add((ic + i0) * self.n + jb),
                self.n,
                pc == 0,
            );
        }
    }
}

/// `c (=|+=) a · b` for a packed `mc × kc` block of `a` and a packed
/// `kc × nb` block of `b` (`first` stores, otherwise adds), `c` with row
/// stride `ldc`: for each sliver of `a` (kept in L1), every sliver of `b`
/// (the block kept in L2).
///
/// # Safety
/// The CPU has AVX2 and FMA; `a` holds at least the block's `mc` rows
/// rounded up to whole slivers, `b` the block's `nb` columns rounded up
/// likewise; `c` addresses a writable `mc × nb` block, initialised unless
/// `first`.
#[allow(clippy::too_many_arguments)]
unsafe fn multiply(
    kc: usize,
    nb: usize,
    mc: usize,
    a: &[f32],
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    first: bool,
) {
    for ir in (0..mc).step_by(MR) {
        let rows = MR.min(mc - ir);
        let ap = a[ir * kc..].as_ptr();
        for jr in (0..nb).step_by(NR) {
            let cols = NR.min(nb - jr);
            let bp = b[jr * kc..].as_ptr();
            // SAFETY: the tile's rows and columns lie inside the block, the
            // slivers hold `kc` steps, and the CPU has AVX2 and FMA.
            unsafe {
                let cp = c.add(ir * ldc + jr);
                if rows == MR && cols == NR {
                    tile(kc, ap, bp, cp, ldc, first);
                } else {
                    edge_tile(kc, ap, bp, cp, ldc, rows, cols, first);
                }
            }
        }
    }
}

/// A tile at the output's lower or right edge: computed in full into a local
/// buffer (the packed slivers are zero-padded), and its `rows × cols` part
/// stored or added.
///
/// # Safety
/// As [`tile`], for a `rows × cols` part of `c`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn edge_tile(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    first: bool,
) {
    let mut local = [0f32; MR * NR];
    // SAFETY: `local` is a dense `MR × NR` tile; the slivers as the caller's.
    unsafe { tile(kc, a, b, local.as_mut_ptr(), NR, true) };
    for i in 0..rows {
        for j in 0..cols {
            let v = local[i * NR + j];
            // SAFETY: `(i, j)` is inside the caller's `rows × cols` part of `c`.
            unsafe {
                let d = c.add(i * ldc + j);
                if first {
                    d.write(v);
                } else {
                    *d += v;
                }
            }
        }
    }
}

/// `c[0..6, 0..16] (=|+=) a · b` for a packed `6 × kc` sliver `a` (six values
/// per step of `k`) and a packed `kc × 16` sliver `b` (sixteen per step):
/// `first` stores the sums, otherwise they are added to `c`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `a` holds `6 · kc` and `b` `16 · kc` readable
/// `f32`s; `c` addresses a writable `6 × 16` tile with row stride `ldc`,
/// initialised unless `first`.
#[target_feature(enable = "avx2,fma")]
#[allow(unused_unsafe)] // the intrinsics are safe here from Rust 1.87, unsafe before
unsafe fn tile(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, first: bool) {
    // SAFETY: the function's contract: every pointer read below stays inside
    // the slivers (`kc` steps of 6 and 16 values), every store inside the tile.
    unsafe {
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc).cast::<i8>());
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + NR - 1).cast::<i8>());
        }
        let mut acc = [_mm256_setzero_ps(); 2 * MR];
        let (mut a, mut b) = (a, b);
        macro_rules! step {
            () => {{
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                for i in 0..MR {
                    let ai = _mm256_broadcast_ss(&*a.add(i));
                    acc[2 * i] = _mm256_fmadd_ps(ai, b0, acc[2 * i]);
                    acc[2 * i + 1] = _mm256_fmadd_ps(ai, b1, acc[2 * i + 1]);
                }
                a = a.add(MR);
                b = b.add(NR);
            }};
        }
        for _ in 0..kc / 4 {
            step!();
            step!();
            step!();
            step!();
        }
        for _ in 0..kc % 4 {
            step!();
        }
        for i in 0..MR {
            let row = c.add(i * ldc);
            let (lo, hi) = (acc[2 * i], acc[2 * i + 1]);
            if first {
                _mm256_storeu_ps(row, lo);
                _mm256_storeu_ps(row.add(8), hi);
            } else {
                _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(row), lo));
                _mm256_storeu_ps(row.add(8), _mm256_add_ps(_mm256_loadu_ps(row.add(8)), hi));
            }
        }
    }
}

/// Packs an `mc × kc` block of `a` as 6-row slivers, each `kc` steps of six
/// values (rows past `mc` are zeros).
///
/// # Safety
/// The strides address every element of the block inside its allocation;
/// `out` holds `kc · mc` rounded up to a multiple of 6 rows.
unsafe fn pack_a(mc: usize, kc: usize, a: *const f32, rs: usize, cs: usize, out: &mut [f32]) {
    for (s, sliver) in out[..mc.next_multiple_of(MR) * kc]
        .chunks_exact_mut(MR * kc)
        .enumerate()
    {
        let i0 = s * MR;
        let rows = MR.min(mc - i0);
        // SAFETY: rows `i0..i0 + rows` and columns `0..kc` of the block.
        unsafe {
            if rows == MR && cs == 1 {
                // rows contiguous: read six rows side by side
                let r: [*const f32; MR] = std::array::from_fn(|i| a.add((i0 + i) * rs));
                for (p, step) in sliver.chunks_exact_mut(MR).enumerate() {
                    for i in 0..MR {
                        step[i] = *r[i].add(p);
                    }
                }
            } else {
                for (p, step) in sliver.chunks_exact_mut(MR).enumerate() {
                    for (i, v) in step.iter_mut().enumerate() {
                        *v = if i < rows {
                            *a.add((i0 + i) * rs + p * cs)
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// Packs a `kc × nc` block of `b` as 16-column slivers, each `kc` steps of
/// sixteen values (columns past `nc` are zeros).
///
/// # Safety
/// The strides address every element of the block inside its allocation;
/// `out` holds `kc · nc` rounded up to a multiple of 16 columns.
unsafe fn pack_b(kc: usize, nc: usize, b: *const f32, rs: usize, cs: usize, out: &mut [f32]) {
    for (s, sliver) in out[..nc.next_multiple_of(NR) * kc]
        .chunks_exact_mut(NR * kc)
        .enumerate()
    {
        let j0 = s * NR;
        let cols = NR.min(nc - j0);
        // SAFETY: rows `0..kc` and columns `j0..j0 + cols` of the block.
        unsafe {
            if cols == NR && cs == 1 {
                for (p, step) in sliver.chunks_exact_mut(NR).enumerate() {
                    std::ptr::copy_nonoverlapping(b.add(p * rs + j0), step.as_mut_ptr(), NR);
                }
            } else if rs == 1 {
                // columns contiguous (a transposed operand): read each column
                // along `k`, write it down the sliver
                sliver.fill(0.0);
                for j in 0..cols {
                    let col = b.add((j0 + j) * cs);
                    for p in 0..kc {
                        sliver[p * NR + j] = *col.add(p);
                    }
                }
            } else {
                for (p, step) in sliver.chunks_exact_mut(NR).enumerate() {
                    for (j, v) in step.iter_mut().enumerate() {
                        *v = if j < cols {
                            *b.add(p * rs + (j0 + j) * cs)
                        } else {
                            0.0
                        };
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

    /// `a · b` through `sgemm` (in up to `threads` bands, on the global
    /// pool) with `a` (and `b`) stored as given
    /// (`transposed`: column-major) and offset into their buffers, against
    /// the naive sum of products.
    fn check(m: usize, k: usize, n: usize, a_t: bool, b_t: bool, threads: usize) {
        let off = 3;
        let a = values(off + m * k, 1);
        let b = values(off + k * n, 2);
        let (ars, acs) = if a_t { (1, m) } else { (k, 1) };
        let (brs, bcs) = if b_t { (1, k) } else { (n, 1) };
        let mut c = vec![f32::NAN; m * n];
        // SAFETY: the CPU has the kernel's features (the caller checked);
        // the strides address `m × k` and `k × n` matrices inside the buffers
        // after `off`, and `c` is `m × n`.
        unsafe {
            let (ap, bp, cp) = (a[off..].as_ptr(), b[off..].as_ptr(), c.as_mut_ptr());
            sgemm(m, k, n, ap, ars, acs, bp, brs, bcs, cp, threads)
        };
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k)
                    .map(|p| a[off + i * ars + p * acs] * b[off + p * brs + j * bcs])
                    .sum();
                assert_eq!(
                    c[i * n + j],
                    want,
                    "({i}, {j}) of {m}×{k}·{k}×{n}, a_t {a_t}, b_t {b_t}"
                );
            }
        }
    }

    /// The cuts of rows and depths that the docs of [`block_rows`] and
    /// [`depth`] give.
    #[test]
    fn blocks_are_cut_into_equal_parts() {
        assert_eq!(block_rows(512), 516);
        assert_eq!(block_rows(600), 300);
        assert_eq!(block_rows(516), 258);
        assert_eq!(block_rows(1030), 348); // 3 blocks: 348, 348, 334
        assert_eq!(block_rows(100), 102); // whole slivers
        assert_eq!(depth(384), 384);
        assert_eq!(depth(512), 256);
        assert_eq!(depth(1024), 342);
    }

    #[test]
    fn products_match_the_naive_sums() {
        if !runs_here() {
            eprintln!("skipped: this CPU lacks AVX2 or FMA");
            return;
        }
        // whole tiles, edges in every dimension, and more than one block of
        // `k` (KC), of rows (MC), of columns (NB) and of units' rows
        // (UNIT_ROWS)
        let shapes = [
            (4, 1, 16),
            (4, 5, 16),
            (5, 3, 17),
            (7, 9, 33),
            (64, 64, 64),
            (131, 300, 530),
            (129, 513, 20),
            (3, 8, 40),
            (9, 390, 1030),
            (1030, 5, 20),
            (6, 2, 16),
        ];
        for &(m, k, n) in &shapes {
            for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
                for threads in [1, 2, 3] {
                    check(m, k, n, a_t, b_t, threads);
                }
            }
        }
        // on a pool of one thread, which runs every band in turn (so no band
        // has started when the first is done)
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        one.install(|| check(131, 300, 530, false, true, 2));
    }

    #[test]
    fn the_rule_keeps_full_width_avx512_in_the_gemm_crate() {
        // without AVX2 and FMA never, whatever is asked
        assert!(!rule(false, false, None, Some("own")));
        assert!(!rule(false, true, Some(0x19), None));
        // 256-bit CPUs: the kernel, unless the crate is asked for
        assert!(rule(true, false, None, None));
        assert!(rule(true, false, Some(0x17), None));
        assert!(!rule(true, false, Some(0x19), Some("gemm")));
        // AVX-512: the kernel on Zen 4 only, unless asked otherwise
        assert!(rule(true, true, Some(0x19), None));
        assert!(!rule(true, true, Some(0x1a), None));
        assert!(!rule(true, true, None, None));
        assert!(rule(true, true, None, Some("own")));
        assert!(!rule(true, true, Some(0x19), Some("gemm")));
        // a value it does not know leaves the rule
        assert!(rule(true, false, None, Some("fast")));
        assert!(!rule(true, true, None, Some("OWN")));
    }

    /// `FERROGRAD_GEMM_KERNEL` decides [`chosen`], in a child run of this
    /// test binary with the variable set (the choice is made once per
    /// process, so it cannot be changed within this one).
    #[test]
    fn the_variable_overrides_the_rule() {
        const CHILD: &str = "FERROGRAD_TEST_KERNEL_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let request = std::env::var(KERNEL_VAR).unwrap();
            assert_eq!(chosen(), request == "own" && runs_here());
            return;
        }
        let name = "kernels::sgemm_avx2::tests::the_variable_overrides_the_rule";
        for request in ["own", "gemm"] {
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

    /// The vendor and family read with CPUID are those Linux reports.
    #[test]
    fn the_family_is_the_one_linux_reports() {
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
            eprintln!("skipped: no /proc/cpuinfo");
            return;
        };
        let field = |name: &str| {
            info.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_owned())
        };
        let family = field("cpu family").and_then(|f| f.parse::<u32>().ok());
        let want = match field("vendor_id").as_deref() {
            Some("AuthenticAMD") => family,
            _ => None,
        };
        assert_eq!(amd_family(), want);
    }

    /// A band whose thread is held after publishing its last block has every
    /// unit of that block taken, from the back, by the other band's thread,
    /// and the product is still exact.
    #[test]
    fn a_held_band_is_finished_by_the_other_thread() {
        if !runs_here() {
            eprintln!("skipped: this CPU lacks AVX2 or FMA");
            return;
        }
        // two bands of 102 and 98 rows (two units of rows each), a depth of
        // two blocks, 600 columns (five units of columns)
        let (m, k, n) = (200, 700, 600);
        let a = values(m * k, 1);
        let b = values(k * n, 2);
        let mut c = vec![f32::NAN; m * n];
        let release = std::sync::Arc::new(AtomicBool::new(false));
        let mut product = Product::new(
            m,
            k,
            n,
            (a.as_ptr(), k, 1),
            (b.as_ptr(), n, 1),
            c.as_mut_ptr(),
            2,
        );
        product.hold = Some((1, release.clone()));
        assert_eq!((product.bands.len(), product.units(1)), (2, 10));
        let product = &product;
        std::thread::scope(|s| {
            // SAFETY: the CPU has the kernel's features (checked above); the
            // operands are dense `m × k`, `k × n` and `m × n` buffers; each
            // band runs once.
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
            (0, 10),
            "units of band 1 taken (front, back)"
        );
        assert_eq!(
            product.bands[0].taken.load(Ordering::Relaxed),
            10,
            "band 0's own units"
        );
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                assert_eq!(c[i * n + j], want, "({i}, {j})");
            }
        }
    }
}
