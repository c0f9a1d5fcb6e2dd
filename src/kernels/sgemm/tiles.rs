//! The micro-kernels of [`super`]: one tile of the output from a packed
//! sliver of `a` and one of `b`, and the packing that lays the slivers out.
//!
//! Two tiles, one per vector width, in the same shape: each step of `k`
//! loads one row of the `b` sliver (two or four vector registers) and
//! broadcasts each of the `a` sliver's six values of the step against it,
//! adding into one accumulator per row and register, the step unrolled
//! four times.
//!
//! - [`tile_avx2`]: 6 × 16, twelve of the sixteen 256-bit registers;
//! - [`tile_avx512`]: 6 × 64, twenty-four of the thirty-two 512-bit
//!   registers, and ten loads per step for its 24 multiply-adds (the
//!   former 12 × 32 tile needed fourteen: two rows of `b`, twelve
//!   broadcasts of `a`). Alone on data in L1 and L2 it ran 1.06× as fast
//!   as the 12 × 32 one on an Intel Xeon (Sapphire Rapids class), 91% of
//!   the core's peak of multiply-adds against 86%; 8 × 48, 9 × 48 and
//!   5 × 80 ran level with it, 4 × 96 slower, and 64 columns divide the
//!   usual widths. It prefetches its sliver of `b` 16 steps ahead.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// The signature every tile shares: `c[0..MR, 0..NR] (=|+=) a · b` for a
/// packed `MR × kc` sliver `a` and a packed `kc × NR` sliver `b`, `c` with
/// row stride `ldc` (`true`: store, `false`: add to `c`).
pub(super) type TileFn = unsafe fn(usize, *const f32, *const f32, *mut f32, usize, bool);

/// The signature of the packers: `(rows or columns, kc, matrix, row stride,
/// column stride, out)` (see [`pack_a`] and [`pack_b`]).
pub(super) type PackFn = unsafe fn(usize, usize, *const f32, usize, usize, &mut [MaybeUninit<f32>]);

/// The largest tile, in elements: the size of [`edge_tile`]'s buffer.
pub(super) const MAX_TILE: usize = 6 * 64;

/// A tile and the packers of its shape, all compiled for the tile's
/// instructions (the packers' copies then move whole vector registers: built
/// for the baseline x86-64, `pack_b` moved 16 bytes at a time and was 8% of
/// a two-thread product at n = 256).
#[derive(Clone, Copy, Debug)]
pub(super) struct Shape {
    /// Rows of the tile.
    pub(super) mr: usize,
    /// Columns of the tile.
    pub(super) nr: usize,
    pub(super) tile: TileFn,
    pub(super) pack_a: PackFn,
    pub(super) pack_b: PackFn,
}

/// [`pack_a`] and [`pack_b`] for an `$mr × $nr` tile, compiled with
/// `$features` enabled.
macro_rules! packers {
    ($features:literal, $mr:literal, $nr:literal, $pack_a:ident, $pack_b:ident) => {
        /// [`pack_a`] for this tile's rows, built for its instructions.
        ///
        /// # Safety
        /// As [`pack_a`]'s; the CPU runs the tile.
        #[target_feature(enable = $features)]
        unsafe fn $pack_a(
            mc: usize,
            kc: usize,
            a: *const f32,
            rs: usize,
            cs: usize,
            out: &mut [MaybeUninit<f32>],
        ) {
            // SAFETY: the caller's contract.
            unsafe { pack_a::<$mr>(mc, kc, a, rs, cs, out) }
        }

        /// [`pack_b`] for this tile's columns, built for its instructions.
        ///
        /// # Safety
        /// As [`pack_b`]'s; the CPU runs the tile.
        #[target_feature(enable = $features)]
        unsafe fn $pack_b(
            kc: usize,
            nc: usize,
            b: *const f32,
            rs: usize,
            cs: usize,
            out: &mut [MaybeUninit<f32>],
        ) {
            // SAFETY: the caller's contract.
            unsafe { pack_b::<$nr>(kc, nc, b, rs, cs, out) }
        }
    };
}

packers!("avx2,fma", 6, 16, pack_a_avx2, pack_b_avx2);
packers!("avx512f", 6, 64, pack_a_avx512, pack_b_avx512);

/// The 6 × 16 tile of 256-bit registers ([`tile_avx2`]): only for a CPU
/// with AVX2 and FMA.
pub(super) const AVX2: Shape = Shape {
    mr: 6,
    nr: 16,
    tile: tile_avx2,
    pack_a: pack_a_avx2,
    pack_b: pack_b_avx2,
};

/// The 6 × 64 tile of 512-bit registers ([`tile_avx512`]): only for a CPU
/// with AVX-512F.
pub(super) const AVX512: Shape = Shape {
    mr: 6,
    nr: 64,
    tile: tile_avx512,
    pack_a: pack_a_avx512,
    pack_b: pack_b_avx512,
};

/// `c[0..6, 0..16] (=|+=) a · b` (see [`TileFn`]).
///
/// # Safety
/// The CPU has AVX2 and FMA; `a` holds `6 · kc` and `b` `16 · kc` readable
/// `f32`s; `c` addresses a writable `6 × 16` tile with row stride `ldc`,
/// initialised unless `first`.
#[target_feature(enable = "avx2,fma")]
#[allow(unused_unsafe)] // the intrinsics are safe here from Rust 1.87, unsafe before
pub(super) unsafe fn tile_avx2(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    first: bool,
) {
    const MR: usize = 6;
    const NR: usize = 16;
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

/// `c[0..6, 0..64] (=|+=) a · b` (see [`TileFn`]).
///
/// # Safety
/// The CPU has AVX-512F; `a` holds `6 · kc` and `b` `64 · kc` readable
/// `f32`s; `c` addresses a writable `6 × 64` tile with row stride `ldc`,
/// initialised unless `first`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn tile_avx512(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    first: bool,
) {
    const MR: usize = 6;
    const NR: usize = 64;
    // How many steps ahead the `b` sliver is prefetched into L1 (16 steps:
    // 4 KiB ahead). The sliver streams from L2, four cache lines a step;
    // left to the hardware prefetchers, one thread on an Intel Xeon
    // (Sapphire Rapids class) ran W1 1.14× slower at n = 1024 and 1.25× at
    // 256 (with the former 12 × 32 tile; 8 steps ahead was level with 16;
    // journal, "Morning (2026-12-03)").
    const PF: usize = 16;
    // SAFETY: the function's contract: every pointer read below stays inside
    // the slivers (`kc` steps of 6 and 64 values), every store inside the
    // tile.
    unsafe {
        for i in 0..MR {
            for line in 0..4 {
                _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + 16 * line).cast::<i8>());
            }
        }
        let mut acc = [[_mm512_setzero_ps(); 4]; MR];
        let (mut a, mut b) = (a, b);
        macro_rules! step {
            () => {{
                for line in 0..4 {
                    // (`wrapping_add`: past the sliver's end the address is
                    // only a hint, never read)
                    let ahead = b.wrapping_add(PF * NR + 16 * line);
                    _mm_prefetch::<_MM_HINT_T0>(ahead.cast::<i8>());
                }
                let row: [__m512; 4] = std::array::from_fn(|v| _mm512_loadu_ps(b.add(16 * v)));
                for (i, acc) in acc.iter_mut().enumerate() {
                    let ai = _mm512_set1_ps(*a.add(i));
                    for (acc, row) in acc.iter_mut().zip(row) {
                        *acc = _mm512_fmadd_ps(ai, row, *acc);
                    }
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
        for (i, acc) in acc.iter().enumerate() {
            for (v, &sum) in acc.iter().enumerate() {
                let at = c.add(i * ldc + 16 * v);
                if first {
                    _mm512_storeu_ps(at, sum);
                } else {
                    _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), sum));
                }
            }
        }
    }
}

/// A tile at the output's lower or right edge: computed in full by `tile`
/// (an `mr × nr` one) into a local buffer (the packed slivers are
/// zero-padded), and its `rows × cols` part stored or added.
///
/// # Safety
/// As `tile`'s, for a `rows × cols` part of `c`; `mr · nr ≤ MAX_TILE`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn edge_tile(
    tile: TileFn,
    (mr, nr): (usize, usize),
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    (rows, cols): (usize, usize),
    first: bool,
) {
    debug_assert!(mr * nr <= MAX_TILE && rows <= mr && cols <= nr);
    let mut local = [0f32; MAX_TILE];
    // SAFETY: `local` holds a dense `mr × nr` tile; the slivers as the
    // caller's.
    unsafe { tile(kc, a, b, local.as_mut_ptr(), nr, true) };
    for i in 0..rows {
        for j in 0..cols {
            let v = local[i * nr + j];
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

/// Packs an `mc × kc` block of `a` as `MR`-row slivers, each `kc` steps of
/// `MR` values (rows past `mc` are zeros).
///
/// # Safety
/// The strides address every element of the block inside its allocation;
/// `out` holds `kc · mc` rounded up to a multiple of `MR` rows (it may
/// be uninitialised: every one of those is written).
#[inline(always)]
unsafe fn pack_a<const MR: usize>(
    mc: usize,
    kc: usize,
    a: *const f32,
    rs: usize,
    cs: usize,
    out: &mut [MaybeUninit<f32>],
) {
    if rs == 1 {
        // columns contiguous (a transposed operand, `gᵀ · x`): eight
        // slivers at a time, step by step, each step's values for the eight
        // read in one run and dealt out to them. (Value by value, sliver by
        // sliver, it was half of `pack_a`'s time in W5's step, each step a
        // new line; all the slivers at once, their steps land `MR · kc`
        // values apart, in as few as two sets of L1.)
        let out = out.as_mut_ptr().cast::<f32>();
        // SAFETY: rows `0..mc` and columns `0..kc` of the block; `out`
        // holds `kc · mc` rounded up to whole slivers.
        unsafe {
            for g0 in (0..mc).step_by(8 * MR) {
                for p in 0..kc {
                    let column = a.add(p * cs);
                    for i0 in (g0..mc.min(g0 + 8 * MR)).step_by(MR) {
                        let to = out.add(i0 * kc + p * MR);
                        if i0 + MR <= mc {
                            // (a constant length: a few moves, not a call)
                            std::ptr::copy_nonoverlapping(column.add(i0), to, MR);
                        } else {
                            // the last sliver: rows past `mc` are zeros
                            let rows = mc - i0;
                            std::ptr::copy_nonoverlapping(column.add(i0), to, rows);
                            std::ptr::write_bytes(to.add(rows), 0, MR - rows);
                        }
                    }
                }
            }
        }
        return;
    }
    for (s, sliver) in out[..mc.next_multiple_of(MR) * kc]
        .chunks_exact_mut(MR * kc)
        .enumerate()
    {
        let i0 = s * MR;
        let rows = MR.min(mc - i0);
        // SAFETY: rows `i0..i0 + rows` and columns `0..kc` of the block.
        unsafe {
            if rows == MR && cs == 1 {
                // rows contiguous: read the sliver's rows side by side
                let r: [*const f32; MR] = std::array::from_fn(|i| a.add((i0 + i) * rs));
                // (built for AVX-512, the compiler scatters each row's
                // values into the steps: 0.26 ns an element for a 6-row
                // sliver, against 0.37 with 4 × 4 transposes and 0.45
                // built for baseline x86-64)
                for (p, step) in sliver.chunks_exact_mut(MR).enumerate() {
                    for i in 0..MR {
                        step[i].write(*r[i].add(p));
                    }
                }
            } else {
                for (p, step) in sliver.chunks_exact_mut(MR).enumerate() {
                    for (i, v) in step.iter_mut().enumerate() {
                        v.write(if i < rows {
                            *a.add((i0 + i) * rs + p * cs)
                        } else {
                            0.0
                        });
                    }
                }
            }
        }
    }
}

/// One `NR`-column sliver of a block of `b` whose columns are contiguous
/// (column `j` at `b + j·cs`, its steps one after the other): `cols`
/// columns, those past them zeros.
///
/// Eight columns by eight steps at a time, read as eight vectors along `k`
/// and turned into eight rows of the sliver in registers ([`turn8`]). Before,
/// each value went to its place one at a time (the compiler made it a
/// scatter), and packing `Wᵀ` took 15% of W2's step at batch 256 on an
/// Intel Xeon, more than half the time of the tile it fed.
///
/// # Safety
/// As [`pack_b`]'s for the sliver's columns; the CPU has AVX (every tile's
/// packers are compiled for AVX2 or AVX-512F).
#[inline(always)]
unsafe fn pack_b_columns<const NR: usize>(
    kc: usize,
    cols: usize,
    b: *const f32,
    cs: usize,
    sliver: &mut [MaybeUninit<f32>],
) {
    let (whole_cols, whole_steps) = (cols / 8 * 8, kc / 8 * 8);
    let out = sliver.as_mut_ptr().cast::<f32>();
    // SAFETY: columns `0..cols` and steps `0..kc` of the block; the sliver
    // holds `kc · NR` values.
    unsafe {
        for p in (0..whole_steps).step_by(8) {
            for j in (0..whole_cols).step_by(8) {
                let rows = std::array::from_fn(|t| _mm256_loadu_ps(b.add((j + t) * cs + p)));
                for (q, row) in turn8(rows).into_iter().enumerate() {
                    _mm256_storeu_ps(out.add((p + q) * NR + j), row);
                }
            }
        }
        for p in 0..kc {
            // the steps after the last eight for the whole eights of
            // columns, then every step for the columns after them
            let from = if p < whole_steps { whole_cols } else { 0 };
            for j in from..NR {
                *out.add(p * NR + j) = if j < cols { *b.add(j * cs + p) } else { 0.0 };
            }
        }
    }
}

/// The 8 × 8 matrix whose rows are `r` turned over: row `q` of the result
/// holds element `q` of every row of `r`.
///
/// # Safety
/// The CPU has AVX.
#[inline(always)]
#[allow(unused_unsafe)] // the intrinsics are safe here from Rust 1.87, unsafe before
unsafe fn turn8(r: [__m256; 8]) -> [__m256; 8] {
    // SAFETY: the caller's contract.
    unsafe {
        // pairs of rows interleaved: (0 1), (2 3), (4 5), (6 7)
        let lo: [__m256; 4] = std::array::from_fn(|i| _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]));
        let hi: [__m256; 4] = std::array::from_fn(|i| _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]));
        // four rows' elements side by side in each 128-bit lane: elements
        // (0, 4), (1, 5), (2, 6), (3, 7) of rows 0–3 and of rows 4–7
        let quads = |x: [__m256; 4], y: usize| {
            (
                _mm256_shuffle_ps::<0x44>(x[y], x[y + 1]),
                _mm256_shuffle_ps::<0xee>(x[y], x[y + 1]),
            )
        };
        let (e0, e1) = quads(lo, 0);
        let (e2, e3) = quads(hi, 0);
        let (f0, f1) = quads(lo, 2);
        let (f2, f3) = quads(hi, 2);
        let (e, f) = ([e0, e1, e2, e3], [f0, f1, f2, f3]);
        // the lanes joined: low lanes give elements 0–3, high lanes 4–7
        std::array::from_fn(|q| {
            if q < 4 {
                _mm256_permute2f128_ps::<0x20>(e[q], f[q])
            } else {
                _mm256_permute2f128_ps::<0x31>(e[q - 4], f[q - 4])
            }
        })
    }
}

/// Packs a `kc × nc` block of `b` as `NR`-column slivers, each `kc` steps of
/// `NR` values (columns past `nc` are zeros).
///
/// # Safety
/// The strides address every element of the block inside its allocation;
/// `out` holds `kc · nc` rounded up to a multiple of `NR` columns (it may
/// be uninitialised: every one of those is written).
#[inline(always)]
unsafe fn pack_b<const NR: usize>(
    kc: usize,
    nc: usize,
    b: *const f32,
    rs: usize,
    cs: usize,
    out: &mut [MaybeUninit<f32>],
) {
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
                    std::ptr::copy_nonoverlapping(b.add(p * rs + j0), step.as_mut_ptr().cast(), NR);
                }
            } else if rs == 1 {
                // columns contiguous (a transposed operand, `x · Wᵀ`): eight
                // steps of eight columns at a time, turned in registers
                pack_b_columns::<NR>(kc, cols, b.add(j0 * cs), cs, sliver);
            } else {
                for (p, step) in sliver.chunks_exact_mut(NR).enumerate() {
                    for (j, v) in step.iter_mut().enumerate() {
                        v.write(if j < cols {
                            *b.add(p * rs + (j0 + j) * cs)
                        } else {
                            0.0
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::sgemm::tests::tiles_here;

    /// Packs a block `len` rows (of `a`) or columns (of `b`) by `kc` steps,
    /// whose element at row or column `x` and step `p` is `x * 1000 + p`,
    /// once stored with `x` and `p` contiguous, in `width`-wide slivers
    /// through `pack(data, x's stride, p's stride, out)`, and checks that
    /// both give the slivers value by value, zeros past `len` included.
    fn packs_alike(
        what: &str,
        (width, kc, len): (usize, usize, usize),
        pack: impl Fn(&[f32], usize, usize, &mut [MaybeUninit<f32>]),
    ) {
        let value = |x: usize, p: usize| (x * 1000 + p) as f32;
        let by_steps: Vec<f32> = (0..len * kc).map(|i| value(i / kc, i % kc)).collect();
        let by_x: Vec<f32> = (0..len * kc).map(|i| value(i % len, i / len)).collect();
        let size = len.next_multiple_of(width) * kc;
        let mut one = vec![MaybeUninit::new(f32::NAN); size];
        let mut other = vec![MaybeUninit::new(f32::NAN); size];
        pack(&by_steps, kc, 1, &mut one);
        pack(&by_x, 1, len, &mut other);
        for i in 0..size {
            // SAFETY: both packings write every element.
            let got = unsafe { (one[i].assume_init(), other[i].assume_init()) };
            let (s, p, x) = (i / (width * kc), i / width % kc, i % width);
            let want = if s * width + x < len {
                value(s * width + x, p)
            } else {
                0.0
            };
            assert_eq!(
                got,
                (want, want),
                "{what}: len {len}, kc {kc}, sliver {s}, step {p}, {x}"
            );
        }
    }

    /// Every tile's `pack_a` lays out a block of `a` stored by columns
    /// (`rs == 1`, as `gᵀ` is) exactly as one stored by rows.
    #[test]
    fn columns_of_a_are_packed_as_rows_are() {
        for micro in tiles_here() {
            let mr = micro.mr;
            for kc in [1, 2, 7, 30] {
                for mc in [1, mr - 1, mr, mr + 1, 5 * mr, 5 * mr + 2] {
                    packs_alike(micro.name, (mr, kc, mc), |a, rs, cs, out| {
                        // SAFETY: the strides address the `mc × kc` block;
                        // `out` holds whole slivers.
                        unsafe { (micro.pack_a)(mc, kc, a.as_ptr(), rs, cs, out) }
                    });
                }
            }
        }
    }

    /// Every tile's `pack_b` lays out a block of `b` stored by columns
    /// (`rs == 1`, as `Wᵀ` is) exactly as one stored by rows: whole eights
    /// of steps and columns and the remainders of both.
    #[test]
    fn columns_are_packed_as_rows_are() {
        for micro in tiles_here() {
            let nr = micro.nr;
            for kc in [1, 7, 8, 9, 16, 23, 64] {
                for nc in [1, 7, 8, 9, 15, 16, 17, nr - 1, nr, nr + 9, 2 * nr] {
                    // `b`'s rows are the steps: a column's stride is the
                    // step's stride of `packs_alike` and the other way round
                    packs_alike(micro.name, (nr, kc, nc), |b, x_stride, p_stride, out| {
                        // SAFETY: the strides address the `kc × nc` block;
                        // `out` holds whole slivers.
                        unsafe { (micro.pack_b)(kc, nc, b.as_ptr(), p_stride, x_stride, out) }
                    });
                }
            }
        }
    }
}
