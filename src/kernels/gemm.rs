//! Matrix multiply through the `gemm` crate, on strided operands (a transposed
//! operand is passed as swapped strides, never copied): one product, or a batch
//! of products at given offsets.

use std::mem::MaybeUninit;

use gemm_common::Parallelism;
use rayon::prelude::*;

use super::parallel::{
    use_pool, ELEMENTWISE_CHEAP_LEN, ELEMENTWISE_CHUNK, GEMM_BATCH_WORK, GEMM_MIN_COLUMNS_PER_PART,
    GEMM_MIN_ROWS_PER_PART, GEMM_SPLIT_WORK, GEMM_WORK,
};
use crate::element::Element;
use crate::pool;

/// A strided matrix inside a buffer: element `(i, j)` is at `offset + i*rs + j*cs`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a, T> {
    pub(crate) data: &'a [T],
    pub(crate) offset: usize,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl<T> MatRef<'_, T> {
    /// The transpose: the same elements with the strides swapped.
    #[inline]
    pub(crate) fn t(self) -> Self {
        MatRef {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Panics (internal error) unless every element of a `rows × cols` matrix is in bounds.
    fn check(&self, rows: usize, cols: usize) {
        if rows == 0 || cols == 0 {
            return;
        }
        let last = self.offset + (rows - 1) * self.rs + (cols - 1) * self.cs;
        assert!(
            last < self.data.len(),
            "internal error: gemm operand out of bounds ({last} >= {})",
            self.data.len()
        );
    }
}

#[cfg(test)]
thread_local! {
    /// GEMM calls made by this thread (tests check how ops use the GEMM).
    pub(crate) static CALLS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// `out = a · b`, where `a` is `m × k`, `b` is `k × n` and `out` is a dense
/// row-major `m × n` slice, possibly uninitialised: every element is written, so
/// output buffers need no zero-fill first (the matrix-vector shapes zero their
/// few output elements before the `gemm` crate sees them). Large products use the thread pool,
/// unless `serial` (set when the caller already runs products in parallel).
pub(crate) fn matmul<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    out: &mut [MaybeUninit<T>],
    serial: bool,
) {
    #[cfg(test)]
    CALLS.with(|c| c.set(c.get() + 1));
    assert_eq!(out.len(), m * n, "internal error: gemm output size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.iter_mut().for_each(|v| {
            v.write(T::zero());
        });
        return;
    }
    a.check(m, k);
    b.check(k, n);
    if k == 1 {
        return outer(m, n, a, b, out, serial);
    }
    let pool = !serial && use_pool(m * n * k, GEMM_WORK);
    // the cutoffs of the crate's own kernel, if this product may run there
    let own = own_kernel::<T>(m, n);
    let split_work = own.map_or(GEMM_SPLIT_WORK, |(split, _)| split);
    let parts = if !pool || m * n * k < split_work {
        1
    } else {
        rayon::current_num_threads().min(m / GEMM_MIN_ROWS_PER_PART)
    };
    if parts <= 1 && pool && own.is_some() && m * n * k >= split_work {
        // too few rows for bands: parts of columns in the crate's kernel
        let columns = rayon::current_num_threads().min(n / GEMM_MIN_COLUMNS_PER_PART);
        if columns > 1 {
            return own_product(m, k, n, a, b, out, Split::Columns(columns));
        }
    }
    if parts <= 1 {
        // `gemm`'s own threading for products below the split and for wide
        // ones too short to split by rows that the crate's kernel does not
        // take (`f64`, narrow outputs); on one thread, the crate's kernel
        // for large products where it runs
        let via = if pool {
            Via::Gemm(Parallelism::Rayon(0))
        } else if own.is_some_and(|(_, one_thread)| m * n * k >= one_thread) {
            Via::Own
        } else {
            Via::Gemm(Parallelism::None)
        };
        return gemm_rows(m, k, n, a, b, out, via);
    }
    if own.is_some() {
        // bands of rows whose last panel's blocks the threads share out
        return own_product(m, k, n, a, b, out, Split::Rows(parts));
    }
    // Split the rows: each part is one single-threaded product into its own
    // slice of the output (measured faster than `gemm`'s own threading here).
    let rows = m.div_ceil(parts);
    out.par_chunks_mut(rows * n)
        .enumerate()
        .for_each(|(p, dst)| {
            let r0 = p * rows;
            let part_a = MatRef {
                offset: a.offset + r0 * a.rs,
                ..a
            };
            gemm_rows(
                dst.len() / n,
                k,
                n,
                part_a,
                b,
                dst,
                Via::Gemm(Parallelism::None),
            );
        });
}

/// How the crate's own kernel cuts a product for the pool's threads
/// (`super::sgemm::sgemm`, x86-64 only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Split {
    /// Into up to this many bands of rows (1: on the calling thread).
    Rows(usize),
    /// Into up to this many parts of columns, each a whole number of the
    /// tile's columns wide: for outputs with too few rows for bands.
    Columns(usize),
}

/// Which kernel runs a single-threaded product or part.
#[derive(Clone, Copy)]
enum Via {
    /// [`super::sgemm`] (`f32` only, where [`own_kernel`] says so).
    Own,
    /// The `gemm` crate, on one thread or with its own threading.
    Gemm(Parallelism),
}

/// Whether `T`'s products of an `m`-row, `n`-column output may run in the
/// crate's own kernel (AVX2 or AVX-512): `T` is `f32`, the CPU runs it, and
/// the output fills its tiles. If so, the kernel's cutoffs: the work from
/// which a product on the pool is cut into bands, and the work from which
/// one on a single thread runs there.
fn own_kernel<T: Element>(m: usize, n: usize) -> Option<(usize, usize)> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::any::TypeId::of::<T>() != std::any::TypeId::of::<f32>() {
            return None;
        }
        super::sgemm::suits(m, n).map(|k| k.cutoffs())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, n);
        None
    }
}

/// One product in the crate's own kernel, on checked operands (`k > 1`,
/// `T = f32` on a CPU that runs it: what [`own_kernel`] and `matmul` ensure
/// before choosing [`Via::Own`]): on the calling thread for
/// `Split::Rows(1)`, otherwise on the pool in bands of rows, whose threads
/// share out the last blocks, or in parts of columns, as `split` says
/// ([`super::sgemm::sgemm`]).
fn own_product<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    out: &mut [MaybeUninit<T>],
    split: Split,
) {
    #[cfg(target_arch = "x86_64")]
    {
        let micro = super::sgemm::chosen()
            .filter(|_| std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && k > 0)
            .expect("internal error: the crate's kernel chosen for another type or CPU");
        a.check(m, k);
        b.check(k, n);
        let (ap, bp, cp) = (
            // SAFETY: `check` just placed both operands' offsets in bounds.
            unsafe { a.data.as_ptr().add(a.offset).cast::<f32>() },
            // SAFETY: as above.
            unsafe { b.data.as_ptr().add(b.offset).cast::<f32>() },
            out.as_mut_ptr().cast::<f32>(),
        );
        // SAFETY: just checked: `T` is `f32`, the CPU runs the kernel and
        // `k > 0`, and the operands are in bounds; `out` is a unique
        // `m × n` buffer, which the kernel writes without reading.
        unsafe { super::sgemm::sgemm(micro, m, k, n, ap, a.rs, a.cs, bp, b.rs, b.cs, cp, split) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, k, n, a, b, out, split);
        unreachable!("internal error: the crate's kernel chosen off x86-64");
    }
}

/// `a · b` for `k = 1`, an outer product (the weight gradient of a layer at
/// batch 1): row `i` of the output is `a[i, 0]` times `b`'s one row, written
/// once in a loop compiled for the widest vectors the CPU has. The `gemm` crate's
/// blocked path spent about five times the instructions on it. Large outputs
/// split their rows over the thread pool like other cheap elementwise work.
fn outer<T: Element>(
    m: usize,
    n: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    out: &mut [MaybeUninit<T>],
    serial: bool,
) {
    // `b`'s row, borrowed when dense, else gathered
    let gathered: Vec<T>;
    let brow: &[T] = if b.cs == 1 || n == 1 {
        &b.data[b.offset..b.offset + n]
    } else {
        gathered = (0..n).map(|j| b.data[b.offset + j * b.cs]).collect();
        &gathered
    };
    let rows = |i0: usize, dst: &mut [MaybeUninit<T>]| {
        super::wide(
            #[inline(always)]
            || {
                for (r, row) in dst.chunks_exact_mut(n).enumerate() {
                    let ai = a.data[a.offset + (i0 + r) * a.rs];
                    for (o, &bj) in row.iter_mut().zip(brow) {
                        o.write(ai * bj);
                    }
                }
            },
        )
    };
    if !serial && use_pool(m * n, ELEMENTWISE_CHEAP_LEN) {
        let per = ELEMENTWISE_CHUNK.div_ceil(n).max(1);
        out.par_chunks_mut(per * n)
            .enumerate()
            .for_each(|(p, dst)| rows(p * per, dst));
    } else {
        rows(0, out);
    }
}

/// `a · b` (see [`matmul`]) into a new dense row-major `m × n` buffer, using the
/// thread pool for large products.
pub(crate) fn matmul_to_vec<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
) -> Vec<T> {
    let len = m * n;
    let mut out = pool::take(len);
    matmul(m, k, n, a, b, &mut out.spare_capacity_mut()[..len], false);
    // SAFETY: `matmul` writes every element of its `m × n` output (zeros when
    // `k == 0`), and that output is `out[..len]`.
    unsafe { out.set_len(len) };
    out
}

/// A batch of `m × k` by `k × n` products into a new dense buffer, one `m × n`
/// block per product in order: product `i` reads its operands from `a` and `b`
/// at the offsets `offsets[i]` (the strides are `a`'s and `b`'s; their own
/// offsets are not used). Many small products (from [`GEMM_BATCH_WORK`]) run as
/// one task each on the thread pool, each on one thread; otherwise they run one
/// after the other, each free to use the pool.
pub(crate) fn matmul_batch<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    offsets: &[(usize, usize)],
) -> Vec<T> {
    let len = offsets.len() * m * n;
    let mut out = pool::take(len);
    let product = |dst: &mut [MaybeUninit<T>], &(oa, ob): &(usize, usize), serial: bool| {
        let am = MatRef { offset: oa, ..a };
        let bm = MatRef { offset: ob, ..b };
        matmul(m, k, n, am, bm, dst, serial);
    };
    let chunk = (m * n).max(1);
    let spare = &mut out.spare_capacity_mut()[..len];
    if offsets.len() > 1 && use_pool(offsets.len() * m * n * k, GEMM_BATCH_WORK) {
        // many small products: one task each, each on one thread
        spare
            .par_chunks_exact_mut(chunk)
            .zip(offsets.par_iter())
            .for_each(|(dst, o)| product(dst, o, true));
    } else {
        for (dst, o) in spare.chunks_exact_mut(chunk).zip(offsets) {
            product(dst, o, false);
        }
    }
    // SAFETY: every element of `out[..len]` was written above: the products
    // cover it exactly (one `m × n` block per offset pair, `len` in all; nothing
    // when `m · n = 0`), and `matmul` writes all of its output (zeros when
    // `k == 0`).
    unsafe { out.set_len(len) };
    out
}

/// One product on checked operands, in the kernel `via` names: the crate's
/// own kernel (its AVX2 or AVX-512 tile) or one call of the `gemm` crate.
fn gemm_rows<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    out: &mut [MaybeUninit<T>],
    via: Via,
) {
    debug_assert_eq!(out.len(), m * n);
    a.check(m, k);
    b.check(k, n);
    let parallelism = match via {
        Via::Gemm(parallelism) => parallelism,
        Via::Own => return own_product(m, k, n, a, b, out, Split::Rows(1)),
    };
    if m <= 1 || n <= 1 {
        // The crate's matrix-vector paths (a 1×k or k×1 operand) view the output
        // as `&mut [T]`, which must not point at uninitialised values: zero those
        // few elements first (m·n of the m·n·k work). The other paths only write
        // the output through raw pointers when `read_dst` is false.
        out.iter_mut().for_each(|v| {
            v.write(T::zero());
        });
    }
    // SAFETY: `check` proved that every element the strides address lies inside
    // `a.data` and `b.data`; `out` holds exactly `m*n` elements addressed with row
    // stride `n` and column stride 1; `out` is a unique borrow, so it cannot
    // overlap the shared inputs. `gemm` writes every element of `out` without
    // reading it (`read_dst = false`), so `out` may be uninitialised, except on
    // the matrix-vector paths, whose output was initialised above. `T` is `f32`
    // or `f64` (sealed `Element`), which `gemm` supports.
    unsafe {
        kernel(
            m,
            n,
            k,
            out.as_mut_ptr().cast::<T>(),
            a.data.as_ptr().add(a.offset),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr().add(b.offset),
            b.rs as isize,
            b.cs as isize,
            parallelism,
        );
    }
}

/// `dst = a · b` (`dst` dense row-major `m × n`, not read) through the `gemm`
/// crates' kernel for `T`, arranged as the `gemm` crate's own entry point
/// arranges it: the micro-kernels prefer a column-major destination, so a
/// row-major one (`n > 1`) is computed as `dstᵀ = bᵀ · aᵀ`. Strides are in
/// elements, never negative here.
///
/// # Safety
/// `a` and `b` address every element of an `m × k` and a `k × n` matrix
/// through their strides, `dst` points at `m · n` writable elements that
/// overlap neither.
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    a: *const T,
    a_rs: isize,
    a_cs: isize,
    b: *const T,
    b_rs: isize,
    b_cs: isize,
    parallelism: Parallelism,
) {
    // (m, n, dst_cs, dst_rs, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs)
    let (m, n, dst_cs, dst_rs, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs) = if n > 1 {
        (n, m, n as isize, 1, b, b_rs, b_cs, a, a_rs, a_cs)
    } else {
        (m, n, 1, n as isize, a, a_cs, a_rs, b, b_cs, b_rs)
    };
    // One call of the kernel crate for `$ty`: the operands cast to it (they
    // are `$ty` when this branch runs), `dst = 0·dst + 1·(lhs·rhs)`.
    macro_rules! call {
        ($kernels:path, $ty:ty) => {{
            use $kernels as kernels;
            // SAFETY: the caller's contract; `T` is `$ty` in this branch, and
            // the operands are passed with the strides that address them.
            unsafe {
                kernels::get_gemm_fn()(
                    m,
                    n,
                    k,
                    dst.cast::<$ty>(),
                    dst_cs,
                    dst_rs,
                    false,
                    lhs.cast::<$ty>(),
                    lhs_cs,
                    lhs_rs,
                    rhs.cast::<$ty>(),
                    rhs_cs,
                    rhs_rs,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                )
            }
        }};
    }
    // `Element` is sealed to `f32` and `f64`.
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        call!(gemm_f32::gemm::f32, f32)
    } else {
        call!(gemm_f64::gemm::f64, f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::parallel::{
        GEMM_SPLIT_WORK_AVX512, GEMM_SPLIT_WORK_OWN, OWN_MIN_WORK, OWN_MIN_WORK_AVX512,
    };

    /// `matmul` into a fresh buffer.
    fn product<T: Element>(
        m: usize,
        k: usize,
        n: usize,
        a: MatRef<'_, T>,
        b: MatRef<'_, T>,
        serial: bool,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(m * n);
        matmul(
            m,
            k,
            n,
            a,
            b,
            &mut out.spare_capacity_mut()[..m * n],
            serial,
        );
        // SAFETY: `matmul` wrote all `m * n` elements.
        unsafe { out.set_len(m * n) };
        out
    }

    #[test]
    fn strided_operands() {
        // a = [[1, 2], [3, 4]], b = aᵀ via strides
        let a = [1.0f64, 2.0, 3.0, 4.0];
        let ar = MatRef {
            data: &a,
            offset: 0,
            rs: 2,
            cs: 1,
        };
        let bt = MatRef {
            data: &a,
            offset: 0,
            rs: 1,
            cs: 2,
        };
        assert_eq!(product(2, 2, 2, ar, bt, false), [5.0, 11.0, 11.0, 25.0]);
        assert_eq!(product(2, 2, 2, ar, bt, true), [5.0, 11.0, 11.0, 25.0]);
        assert_eq!(product(2, 0, 2, ar, bt, false), [0.0; 4]);
    }

    #[test]
    fn vector_shapes_write_every_element() {
        // 1×k·k×n, m×k·k×1 and 1×k·k×1 into buffers of NaN: none of it survives
        let a: Vec<f64> = (0..60).map(|i| (i % 7) as f64 - 3.0).collect();
        let rows = |rs, cs| MatRef {
            data: &a,
            offset: 0,
            rs,
            cs,
        };
        for (m, k, n) in [(1, 6, 10), (10, 6, 1), (1, 60, 1), (1, 2, 5), (30, 2, 1)] {
            let (am, bm) = (rows(k, 1), rows(n, 1));
            let want: Vec<f64> = (0..m * n)
                .map(|ij| {
                    (0..k)
                        .map(|l| a[(ij / n) * k + l] * a[l * n + ij % n])
                        .sum()
                })
                .collect();
            for serial in [false, true] {
                let mut out = vec![MaybeUninit::new(f64::NAN); m * n];
                matmul(m, k, n, am, bm, &mut out, serial);
                // SAFETY: `out` was initialised (with NaN) when it was made.
                let got: Vec<f64> = out.iter().map(|v| unsafe { v.assume_init() }).collect();
                assert_eq!(got, want, "{m}×{k}·{k}×{n}");
            }
        }
    }

    #[test]
    fn outer_products_are_every_pair_of_products() {
        // k = 1: dense and strided operands, offsets, vector shapes, and an
        // output large enough for the pool (600 × 500 ≥ ELEMENTWISE_CHEAP_LEN)
        const { assert!(600 * 500 >= ELEMENTWISE_CHEAP_LEN) };
        let v: Vec<f64> = (0..2000)
            .map(|i| ((i * 37) % 101) as f64 * 0.25 - 12.0)
            .collect();
        let at = |offset, rs| MatRef {
            data: &v,
            offset,
            rs,
            cs: 7, // never stepped: one column
        };
        let bt = |offset, cs| MatRef {
            data: &v,
            offset,
            rs: 3, // never stepped: one row
            cs,
        };
        for (m, n, a, b) in [
            (3, 4, at(0, 1), bt(10, 1)),
            (5, 6, at(3, 2), bt(1, 3)),
            (1, 9, at(7, 1), bt(0, 1)),
            (8, 1, at(0, 5), bt(4, 2)),
            (600, 500, at(0, 1), bt(600, 1)),
            (600, 500, at(0, 3), bt(1, 2)),
        ] {
            let want: Vec<f64> = (0..m * n)
                .map(|ij| v[a.offset + (ij / n) * a.rs] * v[b.offset + (ij % n) * b.cs])
                .collect();
            for serial in [false, true] {
                let mut out = vec![MaybeUninit::new(f64::NAN); m * n];
                matmul(m, 1, n, a, b, &mut out, serial);
                // SAFETY: `out` was initialised (with NaN) when it was made.
                let got: Vec<f64> = out.iter().map(|v| unsafe { v.assume_init() }).collect();
                assert_eq!(got, want, "{m}×1·1×{n}, serial {serial}");
            }
        }
    }

    #[test]
    fn parallel_batches_match_serial_products() {
        // 32 products of 32×32·32×32: above the threshold for one task per
        // product; b is each a transposed and halved, read through strides
        let (m, batch) = (32, 32);
        let a: Vec<f64> = (0..batch * m * m).map(|i| i as f64 / 1e4).collect();
        let b: Vec<f64> = a.iter().map(|v| v * 0.5).collect();
        assert!(batch * m * m * m >= GEMM_BATCH_WORK);
        let am = MatRef {
            data: &a,
            offset: 0,
            rs: m,
            cs: 1,
        };
        let bm = MatRef {
            data: &b,
            offset: 0,
            rs: 1,
            cs: m,
        };
        let offsets: Vec<_> = (0..batch).map(|i| (i * m * m, i * m * m)).collect();
        let c = matmul_batch(m, m, m, am, bm, &offsets);
        assert_eq!(c.len(), batch * m * m);
        for (i, &(oa, ob)) in offsets.iter().enumerate() {
            let one = product(
                m,
                m,
                m,
                MatRef { offset: oa, ..am },
                MatRef { offset: ob, ..bm },
                false,
            );
            assert_eq!(c[i * m * m..(i + 1) * m * m], one[..], "product {i}");
        }
        // one product runs alone; an empty batch is empty
        assert_eq!(
            matmul_batch(m, m, m, am, bm, &offsets[..1]),
            product(m, m, m, am, bm, false)
        );
        assert!(matmul_batch(m, m, m, am, bm, &[]).is_empty());
        assert_eq!(
            matmul_to_vec(m, m, m, am, bm),
            product(m, m, m, am, bm, false)
        );
    }

    /// `a · bᵀ` for small-integer `a` (`m × k`) and `b` (`n × k`, read through
    /// swapped strides; exact in `f32` and `f64` at these sizes) on the pool
    /// and on one thread; checks that they agree and (at `stride`-spaced
    /// entries) that they equal the naive sums.
    fn pool_product_matches<T: Element>(m: usize, k: usize, n: usize, stride: usize) {
        let a: Vec<T> = (0..m * k)
            .map(|i| T::from_f64_lossy(((i * 7) % 13) as f64 - 6.0))
            .collect();
        let b: Vec<T> = (0..k * n)
            .map(|i| T::from_f64_lossy(((i * 5) % 11) as f64 - 5.0))
            .collect();
        let am = MatRef {
            data: &a,
            offset: 0,
            rs: k,
            cs: 1,
        };
        let bm = MatRef {
            data: &b,
            offset: 0,
            rs: 1,
            cs: k,
        }; // bᵀ read as k × n
        let pooled = product(m, k, n, am, bm, false);
        let serial = product(m, k, n, am, bm, true);
        assert_eq!(pooled, serial);
        for e in (0..m * n).step_by(stride) {
            let (i, j) = (e / n, e % n);
            let naive: f64 = (0..k)
                .map(|l| a[i * k + l].to_f64_lossless() * b[j * k + l].to_f64_lossless())
                .sum();
            assert_eq!(pooled[e].to_f64_lossless(), naive, "entry ({i}, {j})");
        }
    }

    #[test]
    fn pool_products_match_one_thread() {
        // 200 x 200 x 200: on the pool through `gemm`'s own threading
        const { assert!(201 * 200 * 199 >= GEMM_WORK && 201 * 200 * 199 < GEMM_SPLIT_WORK) };
        pool_product_matches::<f64>(201, 200, 199, 1);
        // from GEMM_SPLIT_WORK: split by rows into single-threaded parts
        const { assert!(515 * 512 * 511 >= GEMM_SPLIT_WORK) };
        pool_product_matches::<f64>(515, 512, 511, 97);
        // `f32` outputs of too few rows for bands (under twice
        // GEMM_MIN_ROWS_PER_PART) but wide enough: parts of columns in the
        // crate's kernel where the CPU runs it (W2's layers at batch 32)
        const { assert!(32 < 2 * GEMM_MIN_ROWS_PER_PART && 256 >= 2 * GEMM_MIN_COLUMNS_PER_PART) };
        pool_product_matches::<f32>(32, 784, 256, 1);
        pool_product_matches::<f32>(47, 300, 1000, 7);
        pool_product_matches::<f32>(6, 1030, 270, 1);
    }

    /// `f32` products large enough for the crate's kernel (on CPUs that run
    /// it; elsewhere through the `gemm` crate), each on the pool and on one
    /// thread: with the AVX2 tile split in bands on the pool from
    /// `GEMM_SPLIT_WORK_OWN`, on one thread in the kernel from
    /// `OWN_MIN_WORK` (the `gemm` crate below); with the AVX-512 tile from
    /// `GEMM_SPLIT_WORK_AVX512` and `OWN_MIN_WORK_AVX512`.
    #[test]
    fn f32_products_match_the_naive_sums() {
        const { assert!(70 * 64 * 66 >= OWN_MIN_WORK_AVX512 && 70 * 64 * 66 < GEMM_WORK) };
        const { assert!(100 * 100 * 99 >= GEMM_SPLIT_WORK_AVX512) };
        pool_product_matches::<f32>(70, 64, 66, 5);
        pool_product_matches::<f32>(100, 100, 99, 2);
        const { assert!(300 * 300 * 299 >= GEMM_SPLIT_WORK_OWN && 300 * 300 * 299 < OWN_MIN_WORK) };
        const { assert!(395 * 390 * 387 >= OWN_MIN_WORK) };
        pool_product_matches::<f32>(300, 300, 299, 3);
        pool_product_matches::<f32>(395, 390, 387, 7);
        pool_product_matches::<f32>(515, 512, 511, 13);
    }
}
