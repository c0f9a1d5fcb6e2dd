//! A single-threaded `f32` matrix product for x86-64 CPUs with AVX2 and FMA
//! but no AVX-512 (AMD Zen 2 and 3, Intel before Ice Lake): the large
//! products of [`super::gemm`] run here instead of in the `gemm` crate.
//!
//! Why a kernel of our own: on the project's Zen 3 machine (shared with other
//! work), W1's products on two threads ran 1.20× faster with it than with
//! the `gemm` crate at n = 512 and 1024, in six alternated runs of six. On one
//! thread, run in one process with the `gemm` crate and alternated product by
//! product, it was 1.18× faster at n = 1024, level at 384 and 512, and 3–7%
//! slower at 128–256 (hence `OWN_MIN_WORK` in [`super::parallel`]); beside MKL's one-thread `sgemm` it
//! reached 0.98–1.09× of MKL's speed where the `gemm` crate reached 0.81–0.95×
//! (see `docs/performance.md`, "Late night (2026-12-01)"). Its shape is MKL's for
//! that CPU: a 4 × 16 tile of the output in eight accumulators, two loads of
//! `b` and four broadcasts of `a` per step of `k`, the step unrolled four
//! times. The blocking is Goto's: a `KC × NC` panel of `b` packed in
//! 16-column slivers, an `MC × KC` block of `a` packed in 4-row slivers, and
//! for each sliver of `b` (kept in L1) every sliver of `a`.
//!
//! Elsewhere (AVX-512 machines, where the `gemm` crate has a 512-bit kernel,
//! other architectures, and `f64`) the `gemm` crate does the work.

use std::arch::x86_64::*;

/// Rows of the output tile (broadcasts of `a` per step of `k`).
const MR: usize = 4;
/// Columns of the output tile (two AVX registers of `b` per step of `k`).
const NR: usize = 16;
/// The deepest a packed block gets: a sliver of `b` is at most `KC × NR`
/// (24 KiB of L1's 32). Products deeper than `KC` are cut into equal depths
/// ([`depth`]).
///
/// `KC`, `MC` and `NC` were measured together on the project's Zen 3 on a
/// quiet host: against 256, 128 and 512, W1 ran 1.02×, 1.01× and 1.05×
/// faster at n = 256, 512 and 1024 on two threads and 1.02× and 1.05× at
/// 512 and 1024 on one, where the kernel then matched MKL's one-thread
/// speed (1.005×); a depth of 512 was faster still at n = 1024 but 4%
/// slower at 512 (see `docs/performance.md`, "After midnight").
const KC: usize = 384;
/// Rows of `a` packed at once: at most `MC × KC` (96 KiB, in L2).
const MC: usize = 64;
/// Columns of `b` packed at once: at most `KC × NC` (1.5 MiB, in L3), so
/// that `a` is packed once for up to 1024 columns.
const NC: usize = 1024;

/// The depth of each packed block for a product of depth `k`: `k` cut into
/// as few equal parts as keep each within [`KC`] (512 → 2 × 256, 1024 →
/// 3 × 342), rather than full blocks and a shallow remainder.
fn depth(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC))
}

/// Whether this CPU runs this kernel: AVX2 and FMA without AVX-512F (std
/// caches the detection).
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && !is_x86_feature_detected!("avx512f")
}

/// Whether an `m × n` output fills this kernel's tiles (narrower ones stay
/// with the `gemm` crate's matrix-vector paths) and the CPU runs it.
pub(crate) fn suits(m: usize, n: usize) -> bool {
    m >= MR && n >= NR && available()
}

/// `c = a · b` for an `m × k` matrix `a` (element `(i, p)` at
/// `a + i·ars + p·acs`), a `k × n` matrix `b` (element `(p, j)` at
/// `b + p·brs + j·bcs`) and a dense row-major `m × n` output `c`, which is
/// written without being read first (it may be uninitialised).
///
/// # Safety
/// [`available`] is true; `k > 0`; the strides address every element of `a`
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
) {
    debug_assert!(k > 0);
    // Zero-filled although the packing writes every element the tiles read:
    // leaving them uninitialised removed a 3% `memset` from the profile but
    // ran n = 1024 at 0.93–0.97× the speed (three alternated runs).
    let depth = depth(k);
    let mut packed_b = vec![0f32; depth * NC.min(n).next_multiple_of(NR)];
    let mut packed_a = vec![0f32; depth * MC.min(m).next_multiple_of(MR)];
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(depth) {
            let kc = depth.min(k - pc);
            let first = pc == 0;
            // SAFETY: rows `pc..pc + kc` and columns `jc..jc + nc` lie inside
            // `b` (caller's contract); `packed_b` holds `kc · nc` rounded up
            // to whole slivers.
            unsafe { pack_b(kc, nc, b.add(pc * brs + jc * bcs), brs, bcs, &mut packed_b) };
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                // SAFETY: as for `b`, rows `ic..ic + mc` and columns
                // `pc..pc + kc` of `a`.
                unsafe { pack_a(mc, kc, a.add(ic * ars + pc * acs), ars, acs, &mut packed_a) };
                for jr in (0..nc).step_by(NR) {
                    let cols = NR.min(nc - jr);
                    let bp = packed_b[jr * kc..].as_ptr();
                    for ir in (0..mc).step_by(MR) {
                        let rows = MR.min(mc - ir);
                        let ap = packed_a[ir * kc..].as_ptr();
                        // SAFETY: the tile's rows and columns lie inside the
                        // `m × n` output, the packed slivers hold `kc` steps,
                        // and the CPU has AVX2 and FMA (`available`).
                        unsafe {
                            let cp = c.add((ic + ir) * n + jc + jr);
                            if rows == MR && cols == NR {
                                tile(kc, ap, bp, cp, n, first);
                            } else {
                                edge_tile(kc, ap, bp, cp, n, rows, cols, first);
                            }
                        }
                    }
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

/// `c[0..4, 0..16] (=|+=) a · b` for a packed `4 × kc` sliver `a` (four values
/// per step of `k`) and a packed `kc × 16` sliver `b` (sixteen per step):
/// `first` stores the sums, otherwise they are added to `c`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `a` holds `4 · kc` and `b` `16 · kc` readable
/// `f32`s; `c` addresses a writable `4 × 16` tile with row stride `ldc`,
/// initialised unless `first`.
#[target_feature(enable = "avx2,fma")]
#[allow(unused_unsafe)] // the intrinsics are safe here from Rust 1.87, unsafe before
unsafe fn tile(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, first: bool) {
    // SAFETY: the function's contract: every pointer read below stays inside
    // the slivers (`kc` steps of 4 and 16 values), every store inside the tile.
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
                let a0 = _mm256_broadcast_ss(&*a);
                acc[0] = _mm256_fmadd_ps(a0, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(a0, b1, acc[1]);
                let a1 = _mm256_broadcast_ss(&*a.add(1));
                acc[2] = _mm256_fmadd_ps(a1, b0, acc[2]);
                acc[3] = _mm256_fmadd_ps(a1, b1, acc[3]);
                let a2 = _mm256_broadcast_ss(&*a.add(2));
                acc[4] = _mm256_fmadd_ps(a2, b0, acc[4]);
                acc[5] = _mm256_fmadd_ps(a2, b1, acc[5]);
                let a3 = _mm256_broadcast_ss(&*a.add(3));
                acc[6] = _mm256_fmadd_ps(a3, b0, acc[6]);
                acc[7] = _mm256_fmadd_ps(a3, b1, acc[7]);
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

/// Packs an `mc × kc` block of `a` as 4-row slivers, each `kc` steps of four
/// values (rows past `mc` are zeros).
///
/// # Safety
/// The strides address every element of the block inside its allocation;
/// `out` holds `kc · mc` rounded up to a multiple of 4 rows.
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
                // rows contiguous: read four rows side by side
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

    /// `a · b` through `sgemm` with `a` (and `b`) stored as given
    /// (`transposed`: column-major) and offset into their buffers, against
    /// the naive sum of products.
    fn check(m: usize, k: usize, n: usize, a_t: bool, b_t: bool) {
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
            sgemm(
                m,
                k,
                n,
                a[off..].as_ptr(),
                ars,
                acs,
                b[off..].as_ptr(),
                brs,
                bcs,
                c.as_mut_ptr(),
            )
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

    #[test]
    fn products_match_the_naive_sums() {
        if !available() {
            eprintln!("skipped: this CPU lacks AVX2 and FMA or has AVX-512");
            return;
        }
        // whole tiles, edges in every dimension, and more than one block of
        // `k` (KC), of rows (MC) and of columns (NC)
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
        ];
        for &(m, k, n) in &shapes {
            for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
                check(m, k, n, a_t, b_t);
            }
        }
    }
}
