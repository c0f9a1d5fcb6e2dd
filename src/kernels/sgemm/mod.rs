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

mod bands;
mod tiles;

pub(crate) use super::gemm::Split;
use super::parallel::{
    GEMM_SPLIT_WORK_AVX512, GEMM_SPLIT_WORK_OWN, OWN_MIN_WORK, OWN_MIN_WORK_AVX512,
};
use bands::{Columns, Product};
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
/// calling thread when `split` is `Split::Rows(1)`, otherwise on up to
/// that many threads of the pool.
///
/// Cut into columns ([`Split::Columns`]), each part is a product of its
/// own, run by one thread: each thread packs its columns of `b` and all of
/// `a`. That suits an output of few rows (W2's layers at batch 32: 32 rows,
/// 256 columns), which bands would leave to one thread or to bands that
/// each pack all of `b`.
///
/// Cut into bands of rows, each thread takes a band of rows and multiplies it as one
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
    split: Split,
) {
    let (a, b) = ((a, ars, acs), (b, brs, bcs));
    match split {
        // SAFETY: the caller's contract.
        Split::Rows(parts) => unsafe {
            bands::run(Product::new(micro, m, k, n, a, b, (c, n), parts))
        },
        // SAFETY: as above.
        Split::Columns(parts) => unsafe {
            bands::run(Columns::new(micro, m, k, n, a, b, c, parts))
        },
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
    pub(super) fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7 + seed * 13) % 9) as f32 - 4.0)
            .collect()
    }

    /// The tiles this CPU runs (none: the test has nothing to check).
    pub(super) fn tiles_here() -> Vec<Micro> {
        let tiles: Vec<Micro> = [Micro::avx2(), Micro::avx512()]
            .into_iter()
            .flatten()
            .collect();
        if tiles.is_empty() {
            eprintln!("skipped: this CPU has neither AVX2 and FMA nor AVX-512F");
        }
        tiles
    }

    /// `a · b` through `sgemm` with `micro` (cut as `split` says, on the
    /// global pool) with `a` (and `b`) stored as given (`transposed`:
    /// column-major) and offset into their buffers, against the naive sum
    /// of products.
    pub(super) fn check(
        micro: Micro,
        m: usize,
        k: usize,
        n: usize,
        a_t: bool,
        b_t: bool,
        split: Split,
    ) {
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
            sgemm(micro, m, k, n, ap, ars, acs, bp, brs, bcs, cp, split)
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

    /// Every way [`sgemm`] cuts a product: one thread, bands of rows, parts
    /// of columns.
    const SPLITS: [Split; 5] = [
        Split::Rows(1),
        Split::Rows(2),
        Split::Rows(3),
        Split::Columns(2),
        Split::Columns(3),
    ];

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
                    for split in SPLITS {
                        check(micro, m, k, n, a_t, b_t, split);
                    }
                }
            }
            // on a pool of one thread, which runs every band in turn (so no
            // band has started when the first is done)
            let one = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap();
            one.install(|| {
                check(micro, 131, 300, 530, false, true, Split::Rows(2));
                check(micro, 13, 300, 530, false, true, Split::Columns(2));
            });
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
}
