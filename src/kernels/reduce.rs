//! Reductions along an axis, sums down to a broadcast source shape, and the
//! row-wise softmax family.

use std::mem::MaybeUninit;

use crate::element::Element;
use rayon::prelude::*;

use super::parallel::{use_pool, ROWS_CHUNK, ROWS_LEN};
use crate::layout::{for_each_row, Layout};
use crate::pool;

/// Lanes of the blocked sums: eight independent accumulators (one or two SIMD
/// registers, so the loops vectorise).
const LANES: usize = 8;
/// Elements per block of the blocked pairwise sums (32 per lane).
const BLOCK: usize = 256;

type Lanes<T> = [T; LANES];

/// Eight running folds over `x`, each from `init`: element `i` goes to lane
/// `i % 8` as `lane = step(lane, x[i])`. Eight independent chains, so the loop
/// vectorises when `step` is branch-free.
#[inline(always)]
fn fold_lanes<T: Element>(x: &[T], init: T, step: impl Fn(T, T) -> T) -> Lanes<T> {
    let mut lanes = [init; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = step(*l, v);
        }
    }
    for (l, &v) in lanes.iter_mut().zip(rest) {
        *l = step(*l, v);
    }
    lanes
}

/// The lane sums of `f` over one block: element `i` goes to lane `i % 8`.
#[inline(always)]
fn block_lanes<T: Element>(x: &[T], f: impl Fn(T) -> T) -> Lanes<T> {
    fold_lanes(x, T::zero(), |l, v| l + f(v))
}

#[inline(always)]
fn add_lanes<T: Element>(a: Lanes<T>, b: Lanes<T>) -> Lanes<T> {
    std::array::from_fn(|i| a[i] + b[i])
}

/// Combines the lane sums of `blocks` consecutive blocks, `block(c)` giving
/// block `c`'s, pairwise (a binary counter: after block `c`, the last
/// `trailing_zeros(c + 1)` partial sums merge), then the lanes by a tree. Each
/// element goes through at most 32 additions in its lane, `log₂(blocks)` merges
/// and 3 lane additions, so the error bound grows with `log n`, not `n` (a
/// running sum of 2²⁰ terms loses 1e-3 relative in `f32`; this keeps about
/// 1e-7).
///
/// The blocks come from an indexed closure rather than an iterator: an
/// iterator's `next` is a separate function that LLVM may keep out of line, and
/// out of line it is compiled for the baseline target, outside a kernel's
/// [`wide`](super::wide) widened region (the softmax's `exp` ran at SSE2 width
/// that way).
#[inline(always)]
fn pairwise<T: Element>(blocks: usize, mut block: impl FnMut(usize) -> Lanes<T>) -> T {
    let tree = |[a, b, c, d, e, f, g, h]: Lanes<T>| ((a + b) + (c + d)) + ((e + f) + (g + h));
    // A row of at most one block (softmax over a vocabulary of 256, say) needs
    // no merging: skip the stack and its zeroing.
    match blocks {
        0 => return T::zero(),
        1 => return tree(block(0)),
        _ => {}
    }
    // 64 levels hold 2⁶⁴ blocks: more than any slice
    let mut stack = [[T::zero(); LANES]; 64];
    let mut depth = 0;
    for c in 0..blocks {
        let mut s = block(c);
        for _ in 0..(c + 1).trailing_zeros() {
            depth -= 1;
            s = add_lanes(stack[depth], s);
        }
        stack[depth] = s;
        depth += 1;
    }
    let mut s = [T::zero(); LANES];
    for partial in stack[..depth].iter().rev() {
        s = add_lanes(*partial, s);
    }
    tree(s)
}

/// The `c`-th block of `x` (the last one may be short).
#[inline(always)]
fn nth_block<T>(x: &[T], c: usize) -> &[T] {
    &x[c * BLOCK..((c + 1) * BLOCK).min(x.len())]
}

/// Sum of a slice, blocked and pairwise (vectorised, and accurate to about
/// `log₂ n` roundings rather than `n`; see [`pairwise`]).
#[inline(always)]
pub(crate) fn sum_slice<T: Element>(x: &[T]) -> T {
    sum_map(x, |v| v)
}

/// `Σ f(x)` over a slice, summed as [`sum_slice`] does.
#[inline(always)]
pub(crate) fn sum_map<T: Element>(x: &[T], f: impl Fn(T) -> T + Copy) -> T {
    pairwise(
        x.len().div_ceil(BLOCK),
        #[inline(always)]
        |c| block_lanes(nth_block(x, c), f),
    )
}

/// Writes `f(x)` into every slot of `out` (as long as `x`) and returns `Σ out`,
/// summed as [`sum_slice`] does, with `out` as the values it now holds.
#[inline(always)]
pub(crate) fn map_sum_into<'o, T: Element>(
    x: &[T],
    out: &'o mut [MaybeUninit<T>],
    f: impl Fn(T) -> T + Copy,
) -> (T, &'o mut [T]) {
    assert_eq!(x.len(), out.len(), "internal error: map_sum_into lengths");
    let s = pairwise(
        x.len().div_ceil(BLOCK),
        #[inline(always)]
        |c| {
            let x = nth_block(x, c);
            let out = &mut out[c * BLOCK..c * BLOCK + x.len()];
            for (o, &v) in out.iter_mut().zip(x) {
                o.write(f(v));
            }
            // SAFETY: every slot of this block was written just above (`x`'s
            // block is as long as it).
            block_lanes(unsafe { super::assume_init(out) }, |v| v)
        },
    );
    // SAFETY: the blocks above cover `out` (as long as `x`), and `pairwise`
    // consumed all of them, so every slot was written.
    (s, unsafe { super::assume_init(out) })
}

/// `Σ a·b` over two slices of one length, summed as [`sum_slice`] does.
#[inline(always)]
pub(crate) fn dot<T: Element>(a: &[T], b: &[T]) -> T {
    debug_assert_eq!(a.len(), b.len());
    pairwise(
        a.len().div_ceil(BLOCK),
        #[inline(always)]
        |c| {
            let (a, b) = (nth_block(a, c), nth_block(b, c));
            let mut lanes = [T::zero(); LANES];
            let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
            let (ra, rb) = (ca.remainder(), cb.remainder());
            for (ca, cb) in ca.zip(cb) {
                for ((l, &x), &y) in lanes.iter_mut().zip(ca).zip(cb) {
                    *l += x * y;
                }
            }
            for ((l, &x), &y) in lanes.iter_mut().zip(ra).zip(rb) {
                *l += x * y;
            }
            lanes
        },
    )
}

/// Sums a contiguous `[outer, n, inner]` block over its middle axis → `[outer, inner]`.
pub(crate) fn sum_axis<T: Element>(x: &[T], outer: usize, n: usize, inner: usize) -> Vec<T> {
    if n == 0 || inner == 0 {
        return pool::filled(outer * inner, T::zero());
    }
    if inner == 1 {
        let mut out = pool::take(outer);
        out.extend(x.chunks_exact(n).map(sum_slice));
        return out;
    }
    let mut out = pool::filled(outer * inner, T::zero());
    for (o, dst) in out.chunks_exact_mut(inner).enumerate() {
        let block = &x[o * n * inner..(o + 1) * n * inner];
        for row in block.chunks_exact(inner) {
            dst.iter_mut().zip(row).for_each(|(d, &v)| *d += v);
        }
    }
    out
}

/// Max (or min) over the middle axis of a contiguous `[outer, n, inner]` block,
/// with the index of the first extreme. NaN wins (and its first index), as in PyTorch.
pub(crate) fn extreme_axis<T: Element>(
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    max: bool,
) -> (Vec<T>, Vec<usize>) {
    let mut vals = pool::take(outer * inner);
    let mut idxs = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let base = o * n * inner + i;
            let mut best = x[base];
            let mut arg = 0;
            if !best.is_nan() {
                for k in 1..n {
                    let v = x[base + k * inner];
                    if v.is_nan() {
                        best = v;
                        arg = k;
                        break;
                    }
                    if (max && v > best) || (!max && v < best) {
                        best = v;
                        arg = k;
                    }
                }
            }
            vals.push(best);
            idxs.push(arg);
        }
    }
    (vals, idxs)
}

/// The flat (row-major) positions in a contiguous `[outer, n, inner]` block of
/// the elements `arg` picks along the middle axis: `arg[j]` indexes the axis for
/// output element `j` of `[outer, inner]` (as [`extreme_axis`] returns them).
/// The backward pass of `max_axis` and `min_axis` scatters its gradient to these.
pub(crate) fn axis_positions(arg: Vec<usize>, n: usize, inner: usize) -> Vec<usize> {
    arg.into_iter()
        .enumerate()
        .map(|(j, k)| ((j / inner) * n + k) * inner + j % inner)
        .collect()
}

/// Sums a view (`data`, `layout`) down to `target` (a shape it was broadcast from):
/// the summed-out axes are the leading extra ones and those where `target` has 1.
pub(crate) fn sum_to_shape<T: Element>(data: &[T], layout: &Layout, target: &[usize]) -> Vec<T> {
    let n = layout.ndim();
    let extra = n - target.len();
    let tstrides = crate::shape::contiguous_strides(target);
    let mut out_strides = vec![0usize; n];
    for i in extra..n {
        if target[i - extra] == layout.shape[i] {
            out_strides[i] = tstrides[i - extra];
        }
    }
    let mut out = pool::filled(crate::shape::numel(target), T::zero());
    for_each_row(
        &layout.shape,
        [&layout.strides, &out_strides],
        [layout.offset, 0],
        |[oa, ob], [sa, sb], len| match (sa, sb) {
            (1, 1) => out[ob..ob + len]
                .iter_mut()
                .zip(&data[oa..oa + len])
                .for_each(|(d, &v)| *d += v),
            (1, 0) => out[ob] += sum_slice(&data[oa..oa + len]),
            _ => (0..len).for_each(|i| out[ob + i * sb] += data[oa + i * sa]),
        },
    );
    out
}

/// A new buffer shaped as the `K` equally shaped `inputs`, contiguous
/// `[outer, n, inner]` blocks, written lane by lane along their middle axis: `f`
/// gets each input's lane (borrowed when `inner == 1`, else gathered into a
/// scratch row) and that lane's slots of the output. Rows of large inputs are
/// split over the thread pool.
///
/// # Safety
/// `f` writes every slot of the lane it is given.
unsafe fn map_lanes<T: Element, const K: usize>(
    inputs: [&[T]; K],
    outer: usize,
    n: usize,
    inner: usize,
    f: impl Fn([&[T]; K], &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let len = inputs[0].len();
    assert!(
        inputs.iter().all(|x| x.len() == len),
        "internal error: lane lengths"
    );
    let fill = |out: &mut [MaybeUninit<T>]| {
        if n == 0 {
            return;
        }
        if inner == 1 {
            // the rows from `r0` on, into `dst`
            let rows = |r0: usize, dst: &mut [MaybeUninit<T>]| {
                super::wide(
                    #[inline(always)]
                    || {
                        for (r, d) in dst.chunks_exact_mut(n).enumerate() {
                            let at = (r0 + r) * n;
                            f(inputs.map(|x| &x[at..at + n]), d);
                        }
                    },
                )
            };
            if use_pool(len, ROWS_LEN) {
                // rows are independent: groups of them on the thread pool
                let per = (ROWS_CHUNK / n).max(1);
                out.par_chunks_mut(per * n)
                    .enumerate()
                    .for_each(|(c, dst)| rows(c * per, dst));
            } else {
                rows(0, out);
            }
            return;
        }
        let mut lanes = [(); K].map(|_| vec![T::zero(); n]);
        let mut dst = vec![MaybeUninit::uninit(); n];
        for o in 0..outer {
            for i in 0..inner {
                let base = o * n * inner + i;
                for (lane, x) in lanes.iter_mut().zip(inputs) {
                    for (k, l) in lane.iter_mut().enumerate() {
                        *l = x[base + k * inner];
                    }
                }
                f(std::array::from_fn(|j| &lanes[j][..]), &mut dst);
                for (k, d) in dst.iter().enumerate() {
                    // SAFETY: `f` wrote every slot of `dst` (the caller's contract).
                    out[base + k * inner].write(unsafe { d.assume_init() });
                }
            }
        }
    };
    // SAFETY: `fill` visits every lane of the output and `f` writes every
    // slot of each (the caller's contract).
    unsafe { pool::written(len, fill).0 }
}

/// The largest element (NaN if any is NaN), `-inf` for an empty row.
///
/// Eight running maxima, element `i` going to lane `i % 8`, with a branch-free
/// update that vectorises (a running maximum with a data-dependent branch
/// mispredicted on every new maximum of a row of attention scores): a lane takes
/// `v` when `v` is larger or NaN, and a lane holding NaN keeps it, since no
/// comparison with NaN is true.
#[inline(always)]
pub(crate) fn row_max<T: Element>(row: &[T]) -> T {
    #[inline(always)]
    fn step<T: Element>(m: T, v: T) -> T {
        if v > m || v.is_nan() {
            v
        } else {
            m
        }
    }
    fold_lanes(row, T::neg_infinity(), step)
        .into_iter()
        .fold(T::neg_infinity(), step)
}

/// Softmax along the middle axis of a contiguous `[outer, n, inner]` block.
/// Stable for any finite inputs; `-inf` entries give exactly 0; a row of only
/// `-inf` gives NaN, as in PyTorch.
pub(crate) fn softmax<T: Element>(x: &[T], outer: usize, n: usize, inner: usize) -> Vec<T> {
    exp_lanes(
        x,
        outer,
        n,
        inner,
        #[inline(always)]
        |_, exps, _, s| {
            let inv = T::one() / s;
            for d in exps.iter_mut() {
                *d *= inv;
            }
        },
    )
}

/// Log-softmax along the middle axis: `x - max - log Σ exp(x - max)`.
pub(crate) fn log_softmax<T: Element>(x: &[T], outer: usize, n: usize, inner: usize) -> Vec<T> {
    exp_lanes(
        x,
        outer,
        n,
        inner,
        #[inline(always)]
        |src, exps, m, s| {
            // (x - max) - log s keeps the precision that x - (max + log s) loses
            let ln_s = s.ln();
            for (d, &v) in exps.iter_mut().zip(src) {
                *d = (v - m) - ln_s;
            }
        },
    )
}

/// The two passes that softmax and log-softmax share, lane by lane along the
/// middle axis: the lane's max `m`, then `exp(x - m)` into the output's lane
/// and its sum `s`; `finish(lane, exps, m, s)` turns the exponentials into the
/// result in place.
#[inline(always)]
fn exp_lanes<T: Element>(
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    finish: impl Fn(&[T], &mut [T], T, T) + Sync,
) -> Vec<T> {
    // SAFETY: `map_sum_into` writes every slot of the lane.
    unsafe {
        map_lanes(
            [x],
            outer,
            n,
            inner,
            #[inline(always)]
            |[src], dst| {
                let m = row_max(src);
                let (s, exps) = map_sum_into(src, dst, |v| (v - m).exp_k());
                finish(src, exps, m, s);
            },
        )
    }
}

/// `log Σ exp` along the middle axis → `[outer, inner]`. `+inf` in a row gives
/// `+inf`; a row of only `-inf` gives `-inf`.
pub(crate) fn logsumexp<T: Element>(x: &[T], outer: usize, n: usize, inner: usize) -> Vec<T> {
    let lse = |row: &[T]| {
        let m = row_max(row);
        if m.is_infinite() {
            m
        } else {
            m + sum_map(row, |v| (v - m).exp_k()).ln()
        }
    };
    let mut out = pool::take(outer * inner);
    if inner == 1 && n > 0 {
        out.extend(x.chunks_exact(n).map(lse));
        return out;
    }
    let mut lane = vec![T::zero(); n];
    for o in 0..outer {
        for i in 0..inner {
            let base = o * n * inner + i;
            for (k, l) in lane.iter_mut().enumerate() {
                *l = x[base + k * inner];
            }
            out.push(lse(&lane));
        }
    }
    out
}

/// Backward of softmax along the middle axis: `y · (g − Σ g·y)`.
pub(crate) fn softmax_backward<T: Element>(
    y: &[T],
    g: &[T],
    outer: usize,
    n: usize,
    inner: usize,
) -> Vec<T> {
    // SAFETY: the closure writes every slot of its lane (the lanes of `y` and
    // `g` are as long as it).
    unsafe {
        map_lanes(
            [y, g],
            outer,
            n,
            inner,
            #[inline(always)]
            |[y, g], d| {
                let dot = dot(y, g);
                for ((d, &y), &g) in d.iter_mut().zip(y).zip(g) {
                    d.write(y * (g - dot));
                }
            },
        )
    }
}

/// Backward of log-softmax along the middle axis: `g − exp(y) · Σ g`.
pub(crate) fn log_softmax_backward<T: Element>(
    y: &[T],
    g: &[T],
    outer: usize,
    n: usize,
    inner: usize,
) -> Vec<T> {
    // SAFETY: the closure writes every slot of its lane (the lanes of `y` and
    // `g` are as long as it).
    unsafe {
        map_lanes(
            [y, g],
            outer,
            n,
            inner,
            #[inline(always)]
            |[y, g], d| {
                let s = sum_slice(g);
                for ((d, &y), &g) in d.iter_mut().zip(y).zip(g) {
                    d.write(g - y.exp_k() * s);
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums() {
        let x: Vec<f64> = (0..19).map(|i| i as f64).collect();
        assert_eq!(sum_slice(&x), 171.0);
        // [2, 3] summed over axis 1 and axis 0
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(sum_axis(&x, 2, 3, 1), vec![6.0, 15.0]);
        assert_eq!(sum_axis(&x, 1, 2, 3), vec![5.0, 7.0, 9.0]);
        assert_eq!(sum_axis::<f64>(&[], 2, 0, 1), vec![0.0, 0.0]);
        let l = Layout::contiguous(&[2, 3]);
        assert_eq!(sum_to_shape(&x, &l, &[3]), vec![5.0, 7.0, 9.0]);
        assert_eq!(sum_to_shape(&x, &l, &[2, 1]), vec![6.0, 15.0]);
        assert_eq!(sum_to_shape(&x, &l, &[]), vec![21.0]);
    }

    #[test]
    fn blocked_sums_match_f64_at_every_length() {
        // empty and all-negative-zero sums are +0, as a running sum from 0 gives
        for n in [0, 1, 300, 600] {
            let s = sum_slice(&vec![-0.0f64; n]);
            assert!(s == 0.0 && s.is_sign_positive(), "n = {n}: {s}");
        }
        // lengths around the lane width, the block and powers of two of blocks
        let mut lens = vec![0, 1, 7, 8, 9, 255, 256, 257, 511, 512, 513, 1000];
        lens.extend([3 * 256 + 5, 1 << 12, (1 << 12) + 1, 7 * 256, 100_003]);
        for n in lens {
            let x: Vec<f32> = (0..n)
                .map(|i| 1.0 + ((i * 37) % 101) as f32 / 101.0)
                .collect();
            let y: Vec<f32> = (0..n).map(|i| ((i * 13) % 7) as f32 - 2.5).collect();
            let exact: f64 = x.iter().map(|&v| f64::from(v)).sum();
            let close = |got: f32, want: f64, scale: f64| {
                assert!(
                    (f64::from(got) - want).abs() <= 1e-7 * scale.max(1.0),
                    "n = {n}: {got} vs {want}"
                );
            };
            close(sum_slice(&x), exact, exact);
            let squares: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
            close(sum_map(&x, |v| v * v), squares, squares);
            let dot_exact: f64 = x.iter().zip(&y).map(|(&a, &b)| f64::from(a * b)).sum();
            let dot_scale: f64 = x
                .iter()
                .zip(&y)
                .map(|(&a, &b)| f64::from((a * b).abs()))
                .sum();
            close(dot(&x, &y), dot_exact, dot_scale);
            let mut slots = vec![MaybeUninit::uninit(); n];
            let (s, out) = map_sum_into(&x, &mut slots, |v| 2.0 * v);
            close(s, 2.0 * exact, 2.0 * exact);
            assert!(out.iter().zip(&x).all(|(&o, &v)| o == 2.0 * v));
        }
    }

    #[test]
    fn row_max_matches_a_running_maximum_at_every_length() {
        // lengths around the 8 lanes; the maximum, a NaN, +inf and -inf at every
        // position, in f32 and f64
        for n in 0..27usize {
            let base: Vec<f64> = (0..n).map(|i| ((i * 7) % 11) as f64 - 20.0).collect();
            let naive = base.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(row_max(&base), naive, "n = {n}");
            let base32: Vec<f32> = base.iter().map(|&v| v as f32).collect();
            assert_eq!(row_max(&base32), naive as f32, "n = {n}");
            for at in 0..n {
                let mut x = base.clone();
                x[at] = 3.5;
                assert_eq!(row_max(&x), 3.5, "n = {n}, maximum at {at}");
                x[at] = f64::INFINITY;
                assert_eq!(row_max(&x), f64::INFINITY, "n = {n}, +inf at {at}");
                x[at] = f64::NAN;
                assert!(row_max(&x).is_nan(), "n = {n}, NaN at {at}");
                let mut x32 = base32.clone();
                x32[at] = f32::NAN;
                assert!(row_max(&x32).is_nan(), "n = {n}, f32 NaN at {at}");
                let mut all = vec![f64::NEG_INFINITY; n];
                all[at] = f64::NAN;
                assert!(row_max(&all).is_nan(), "n = {n}, NaN among -inf at {at}");
            }
            assert_eq!(row_max(&vec![f64::NEG_INFINITY; n]), f64::NEG_INFINITY);
        }
    }

    #[test]
    fn extremes_propagate_nan() {
        let x = [1.0, 3.0, 3.0, f64::NAN, 2.0, 5.0];
        let (v, i) = extreme_axis(&x, 2, 3, 1, true);
        assert_eq!(v[0], 3.0);
        assert_eq!(i, vec![1, 0]);
        assert!(v[1].is_nan());
    }

    #[test]
    fn axis_positions_index_the_block() {
        // [2, 3, 2]: element (o, arg, i) is at (o·3 + arg)·2 + i
        let x: Vec<f64> = [5., 0., 1., 9., 2., 4., 0., 7., 8., 1., 3., 2.].to_vec();
        let (v, arg) = extreme_axis(&x, 2, 3, 2, true);
        assert_eq!(arg, [0, 1, 1, 0]);
        let pos = axis_positions(arg, 3, 2);
        assert_eq!(pos, [0, 3, 8, 7]);
        assert!(pos.iter().zip(&v).all(|(&p, &m)| x[p] == m));
        assert!(axis_positions(Vec::new(), 3, 2).is_empty());
    }
}
