//! Elementwise kernels: unary maps and broadcasting binary (and ternary) zips.
//!
//! Contiguous inputs take a slice fast path that LLVM vectorises; large ones
//! ([`Cost::PARALLEL_LEN`] elements and up) are cut into chunks computed on the
//! thread pool. Strided and broadcast inputs are walked row by row.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::parallel::{
    use_pool, ELEMENTWISE_CHEAP_LEN, ELEMENTWISE_CHUNK as CHUNK, ELEMENTWISE_COSTLY_LEN,
};
use crate::element::Element;
use crate::layout::{for_each_row, for_each_row_in, Layout};
use crate::pool;
use crate::storage::{Buf, INLINE};

/// How much work one element of a kernel is, which decides from what size it is
/// worth waking the thread pool (a dispatch costs some microseconds) and whether
/// the loop is compiled for wider vectors too. A type, not a value, so that each kernel
/// instance compiles only the loop its cost asks for.
pub(crate) trait Cost: Copy + Send + Sync + 'static {
    /// Outputs with at least this many elements are computed on the thread pool
    /// (the sizes live with the crate's other thresholds in `kernels::parallel`).
    const PARALLEL_LEN: usize;
    /// Whether the loop is worth copies for wider vectors (see [`super::wide`]).
    const WIDE: bool;
}

/// A few arithmetic instructions per element (add, mul, relu, copies):
/// memory-bound, so one SSE2 loop.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cheap;

/// A transcendental function or similar per element (exp, tanh, GELU, pow):
/// compute-bound, so AVX2 and AVX-512 copies of the loop too.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Costly;

impl Cost for Cheap {
    const PARALLEL_LEN: usize = ELEMENTWISE_CHEAP_LEN;
    const WIDE: bool = false;
}

impl Cost for Costly {
    const PARALLEL_LEN: usize = ELEMENTWISE_COSTLY_LEN;
    const WIDE: bool = true;
}

/// Runs `f` compiled for the widest vectors the CPU has when the kernel is
/// costly (see [`super::wide`]); cheap kernels are memory-bound and gain
/// nothing from wider lanes. `C::WIDE` is a constant, so a cheap kernel
/// compiles no wider copies.
#[inline(always)]
fn wide<C: Cost, R>(f: impl FnOnce() -> R) -> R {
    if C::WIDE {
        super::wide(f)
    } else {
        f()
    }
}

/// A chunk of a kernel's output: its first index and its slots to write.
type FillChunk<'a, T> = dyn Fn(usize, &mut [MaybeUninit<T>]) + Sync + 'a;

/// A fresh buffer of `n` elements written by `body`, chunk by chunk over the
/// thread pool from `min` elements on, else in one call: `body` gets a chunk's
/// start index and its slots, and must write every slot. Not generic over the
/// kernel, so the pool's machinery is compiled once per element type, and the
/// kernel's loop once (the same loop serves both paths).
fn fill<T: Element>(n: usize, min: usize, body: &FillChunk<'_, T>) -> Vec<T> {
    let mut out = pool::take(n);
    let slots = &mut out.spare_capacity_mut()[..n];
    if use_pool(n, min) {
        slots
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| body(c * CHUNK, chunk));
    } else {
        body(0, slots);
    }
    // SAFETY: the chunks cover `0..n` exactly and every caller's `body` writes
    // each slot of its chunk (it zips the slots with inputs at least as long).
    unsafe { out.set_len(n) };
    out
}

/// `body` over `dst`, chunk by chunk over the thread pool from `min` elements
/// on, else in one call (the in-place twin of [`fill`]).
fn update<T: Element>(dst: &mut [T], min: usize, body: &(dyn Fn(usize, &mut [T]) + Sync + '_)) {
    if use_pool(dst.len(), min) {
        dst.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| body(c * CHUNK, chunk));
    } else {
        body(0, dst);
    }
}

/// `f` applied to every element of a strided view, in row-major order.
pub(crate) fn map<T: Element, C: Cost>(
    data: &[T],
    layout: &Layout,
    _: C,
    f: impl Fn(T) -> T + Sync,
) -> Vec<T> {
    let n = layout.numel();
    if let Some(r) = layout.contiguous_range() {
        let src = &data[r];
        return fill(n, C::PARALLEL_LEN, &|start, slots| {
            wide::<C, _>(
                #[inline(always)]
                || {
                    for (slot, &v) in slots.iter_mut().zip(&src[start..]) {
                        slot.write(f(v));
                    }
                },
            )
        });
    }
    fill(n, C::PARALLEL_LEN, &|start, slots| {
        wide::<C, _>(
            #[inline(always)]
            || {
                let range = start..start + slots.len();
                let mut pos = 0;
                for_each_row_in(
                    &layout.shape,
                    [&layout.strides],
                    [layout.offset],
                    range,
                    |[o], [s], len| {
                        let row = &mut slots[pos..pos + len];
                        pos += len;
                        if s == 1 {
                            for (slot, &v) in row.iter_mut().zip(&data[o..o + len]) {
                                slot.write(f(v));
                            }
                        } else {
                            for (i, slot) in row.iter_mut().enumerate() {
                                slot.write(f(data[o + i * s]));
                            }
                        }
                    },
                )
            },
        )
    })
}

/// [`map`] into a [`Buf`]: a contiguous output of at most [`INLINE`] elements is
/// written inline, with no allocation (the same arithmetic, element by element).
#[inline]
pub(crate) fn map_buf<T: Element, C: Cost>(
    data: &[T],
    layout: &Layout,
    cost: C,
    f: impl Fn(T) -> T + Sync,
) -> Buf<T> {
    if let Some(r) = layout.contiguous_range() {
        if r.len() <= INLINE {
            let mut out = Buf::new();
            for &v in &data[r] {
                out.push(f(v));
            }
            return out;
        }
    }
    Buf::from_vec(map(data, layout, cost, f))
}

/// [`zip`] into a [`Buf`], inline for at most [`INLINE`] contiguous elements.
#[inline]
pub(crate) fn zip_buf<T: Element, C: Cost>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    cost: C,
    f: impl Fn(T, T) -> T + Sync,
) -> Buf<T> {
    if let (Some(ra), Some(rb)) = (la.contiguous_range(), lb.contiguous_range()) {
        if ra.len() <= INLINE {
            let mut out = Buf::new();
            for (&x, &y) in a[ra].iter().zip(&b[rb]) {
                out.push(f(x, y));
            }
            return out;
        }
    }
    Buf::from_vec(zip(a, la, b, lb, cost, f))
}

/// `f(a, b)` over two views already broadcast to one shape, in row-major order.
pub(crate) fn zip<T: Element, C: Cost>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    _: C,
    f: impl Fn(T, T) -> T + Sync,
) -> Vec<T> {
    debug_assert_eq!(la.shape, lb.shape);
    let n = la.numel();
    if let (Some(ra), Some(rb)) = (la.contiguous_range(), lb.contiguous_range()) {
        let (a, b) = (&a[ra], &b[rb]);
        return fill(n, C::PARALLEL_LEN, &|start, slots| {
            wide::<C, _>(
                #[inline(always)]
                || {
                    let inputs = a[start..].iter().zip(&b[start..]);
                    for (slot, (&x, &y)) in slots.iter_mut().zip(inputs) {
                        slot.write(f(x, y));
                    }
                },
            )
        });
    }
    fill(n, C::PARALLEL_LEN, &|start, slots| {
        wide::<C, _>(
            #[inline(always)]
            || {
                let range = start..start + slots.len();
                let mut pos = 0;
                for_each_row_in(
                    &la.shape,
                    [&la.strides, &lb.strides],
                    [la.offset, lb.offset],
                    range,
                    |[oa, ob], [sa, sb], len| {
                        let row = &mut slots[pos..pos + len];
                        pos += len;
                        match (sa, sb) {
                            (1, 1) => {
                                let inputs = a[oa..oa + len].iter().zip(&b[ob..ob + len]);
                                for (slot, (&x, &y)) in row.iter_mut().zip(inputs) {
                                    slot.write(f(x, y));
                                }
                            }
                            (1, 0) => {
                                let y = b[ob];
                                for (slot, &x) in row.iter_mut().zip(&a[oa..oa + len]) {
                                    slot.write(f(x, y));
                                }
                            }
                            (0, 1) => {
                                let x = a[oa];
                                for (slot, &y) in row.iter_mut().zip(&b[ob..ob + len]) {
                                    slot.write(f(x, y));
                                }
                            }
                            _ => {
                                for (i, slot) in row.iter_mut().enumerate() {
                                    slot.write(f(a[oa + i * sa], b[ob + i * sb]));
                                }
                            }
                        }
                    },
                )
            },
        )
    })
}

/// `f(a, b, c)` over three views already broadcast to one shape (fused backward rules).
pub(crate) fn zip3<T: Element, C: Cost>(
    (a, la): (&[T], &Layout),
    (b, lb): (&[T], &Layout),
    (c, lc): (&[T], &Layout),
    _: C,
    f: impl Fn(T, T, T) -> T + Sync,
) -> Vec<T> {
    let n = la.numel();
    if let (Some(ra), Some(rb), Some(rc)) = (
        la.contiguous_range(),
        lb.contiguous_range(),
        lc.contiguous_range(),
    ) {
        let (a, b, c) = (&a[ra], &b[rb], &c[rc]);
        return fill(n, C::PARALLEL_LEN, &|start, slots| {
            wide::<C, _>(
                #[inline(always)]
                || {
                    let inputs = a[start..].iter().zip(&b[start..]).zip(&c[start..]);
                    for (slot, ((&x, &y), &z)) in slots.iter_mut().zip(inputs) {
                        slot.write(f(x, y, z));
                    }
                },
            )
        });
    }
    fill(n, C::PARALLEL_LEN, &|start, slots| {
        wide::<C, _>(
            #[inline(always)]
            || {
                let range = start..start + slots.len();
                let mut pos = 0;
                for_each_row_in(
                    &la.shape,
                    [&la.strides, &lb.strides, &lc.strides],
                    [la.offset, lb.offset, lc.offset],
                    range,
                    |[oa, ob, oc], [sa, sb, sc], len| {
                        let row = &mut slots[pos..pos + len];
                        pos += len;
                        for (i, slot) in row.iter_mut().enumerate() {
                            slot.write(f(a[oa + i * sa], b[ob + i * sb], c[oc + i * sc]));
                        }
                    },
                )
            },
        )
    })
}

/// `dst[i] = f(dst[i])` in place over a dense buffer.
pub(crate) fn map_inplace<T: Element, C: Cost>(dst: &mut [T], _: C, f: impl Fn(T) -> T + Sync) {
    update(dst, C::PARALLEL_LEN, &|_, d| {
        wide::<C, _>(
            #[inline(always)]
            || {
                for v in d.iter_mut() {
                    *v = f(*v);
                }
            },
        )
    });
}

/// `dst[i] = f(dst[i], b[i])` in place, where `dst` is a dense row-major buffer
/// and `b` a view already broadcast to its shape.
pub(crate) fn zip_inplace<T: Element, C: Cost>(
    dst: &mut [T],
    b: &[T],
    lb: &Layout,
    _: C,
    f: impl Fn(T, T) -> T + Sync,
) {
    if let Some(rb) = lb.contiguous_range() {
        let b = &b[rb];
        update(dst, C::PARALLEL_LEN, &|start, d| {
            wide::<C, _>(
                #[inline(always)]
                || {
                    for (x, &y) in d.iter_mut().zip(&b[start..]) {
                        *x = f(*x, y);
                    }
                },
            )
        });
        return;
    }
    let mut pos = 0;
    for_each_row(&lb.shape, [&lb.strides], [lb.offset], |[o], [s], len| {
        let d = &mut dst[pos..pos + len];
        match s {
            0 => {
                let y = b[o];
                d.iter_mut().for_each(|x| *x = f(*x, y));
            }
            1 => d
                .iter_mut()
                .zip(&b[o..o + len])
                .for_each(|(x, &y)| *x = f(*x, y)),
            _ => d
                .iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = f(*x, b[o + i * s])),
        }
        pos += len;
    });
}

/// `dst += src`, where `dst` is a dense row-major buffer of `src`'s shape.
pub(crate) fn add_assign<T: Copy + std::ops::AddAssign>(dst: &mut [T], src: &[T], ls: &Layout) {
    if let Some(r) = ls.contiguous_range() {
        dst.iter_mut().zip(&src[r]).for_each(|(d, &s)| *d += s);
        return;
    }
    let mut pos = 0;
    for_each_row(&ls.shape, [&ls.strides], [ls.offset], |[o], [s], len| {
        let d = &mut dst[pos..pos + len];
        if s == 1 {
            d.iter_mut()
                .zip(&src[o..o + len])
                .for_each(|(d, &v)| *d += v);
        } else {
            d.iter_mut()
                .enumerate()
                .for_each(|(i, d)| *d += src[o + i * s]);
        }
        pos += len;
    });
}

/// `dst[view] += src` elementwise, where `ld` is a view into the dense buffer
/// `dst` and `ls` lays out `src` in the same shape.
pub(crate) fn add_into_view<T: Copy + std::ops::AddAssign>(
    dst: &mut [T],
    ld: &Layout,
    src: &[T],
    ls: &Layout,
) {
    debug_assert_eq!(ld.shape, ls.shape);
    for_each_row(
        &ld.shape,
        [&ld.strides, &ls.strides],
        [ld.offset, ls.offset],
        |[od, os], [sd, ss], len| {
            if (sd, ss) == (1, 1) {
                dst[od..od + len]
                    .iter_mut()
                    .zip(&src[os..os + len])
                    .for_each(|(d, &v)| *d += v);
            } else {
                (0..len).for_each(|i| dst[od + i * sd] += src[os + i * ss]);
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_paths_match_serial() {
        let n = Costly::PARALLEL_LEN + CHUNK / 2 + 3; // a ragged last chunk
        let a: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
        let l = Layout::contiguous(&[n]);
        let m = map(&a, &l, Costly, |x| x * 2.0);
        assert!(m.iter().enumerate().all(|(i, &v)| v == 2.0 * i as f64));
        let z = zip(&a, &l, &b, &l, Costly, |x, y| x - y);
        assert!(z
            .iter()
            .enumerate()
            .all(|(i, &v)| v == i as f64 - (i % 7) as f64));
        let z3 = zip3((&a, &l), (&b, &l), (&a, &l), Costly, |x, y, w| x * y + w);
        assert!(z3
            .iter()
            .enumerate()
            .all(|(i, &v)| v == (i * (i % 7) + i) as f64));
        assert_eq!((m.len(), z.len(), z3.len()), (n, n, n));
    }

    #[test]
    fn strided_views_are_cut_into_chunks_like_contiguous_ones() {
        // rows of 1000 against chunks of CHUNK elements: chunks start and end
        // inside rows; a broadcast row, a transposed view and a stride-0 column
        let (r, c) = (Costly::PARALLEL_LEN / 1000 + 7, 1000);
        let n = r * c;
        let a: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let bias: Vec<f64> = (0..c).map(|j| (j % 13) as f64).collect();
        let col: Vec<f64> = (0..r).map(|i| (i % 5) as f64).collect();
        let la = Layout::contiguous(&[r, c]);
        let lbias = Layout::contiguous(&[c]).broadcast_to(&[r, c]);
        let lcol = Layout::contiguous(&[r, 1]).broadcast_to(&[r, c]);
        let lt = Layout::contiguous(&[c, r]).permute(&[1, 0]); // a read as c × r, transposed
        let want =
            |f: &dyn Fn(usize, usize) -> f64| (0..n).map(|e| f(e / c, e % c)).collect::<Vec<_>>();
        let z = zip(&a, &la, &bias, &lbias, Costly, |x, y| x + y);
        assert_eq!(z, want(&|i, j| (i * c + j) as f64 + (j % 13) as f64));
        let z = zip(&col, &lcol, &a, &la, Costly, |x, y| x * y);
        assert_eq!(z, want(&|i, j| (i % 5) as f64 * (i * c + j) as f64));
        let m = map(&a, &lt, Costly, |x| x + 0.5);
        assert_eq!(m, want(&|i, j| (j * r + i) as f64 + 0.5));
        let z = zip(&a, &lt, &a, &la, Cheap, |x, y| x - y);
        assert_eq!(z, want(&|i, j| (j * r + i) as f64 - (i * c + j) as f64));
        let z3 = zip3(
            (&a, &la),
            (&bias, &lbias),
            (&col, &lcol),
            Costly,
            |x, y, w| x * y + w,
        );
        assert_eq!(
            z3,
            want(&|i, j| (i * c + j) as f64 * (j % 13) as f64 + (i % 5) as f64)
        );
    }
}
