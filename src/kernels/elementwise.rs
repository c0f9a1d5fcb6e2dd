//! Elementwise kernels: unary maps and broadcasting binary (and ternary) zips.
//!
//! Contiguous inputs take a slice fast path that LLVM vectorises; large ones
//! ([`Cost::parallel_len`] elements and up) are cut into chunks computed on the
//! thread pool. Strided and broadcast inputs are walked row by row.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::parallel::{
    use_pool, ELEMENTWISE_CHEAP_LEN, ELEMENTWISE_CHUNK as CHUNK, ELEMENTWISE_COSTLY_LEN,
};
use crate::element::Element;
use crate::layout::{for_each_row, Layout};
use crate::pool;
use crate::storage::{Buf, INLINE};

/// How much work one element of a kernel is, which decides from what size it is
/// worth waking the thread pool (a dispatch costs some microseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cost {
    /// A few arithmetic instructions (add, mul, relu, copies): memory-bound.
    Cheap,
    /// A transcendental function or similar (exp, tanh, GELU, pow).
    Costly,
}

impl Cost {
    /// Outputs with at least this many elements are computed on the thread pool
    /// (the sizes live with the crate's other thresholds in `kernels::parallel`).
    #[inline]
    pub(crate) fn parallel_len(self) -> usize {
        match self {
            Cost::Cheap => ELEMENTWISE_CHEAP_LEN,
            Cost::Costly => ELEMENTWISE_COSTLY_LEN,
        }
    }
}

/// Runs `f` compiled for AVX2 when the kernel is `Costly` (see [`super::wide`]);
/// cheap kernels are memory-bound and gain nothing from wider lanes.
#[inline(always)]
fn wide<R>(cost: Cost, f: impl FnOnce() -> R) -> R {
    if cost == Cost::Costly {
        super::wide(f)
    } else {
        f()
    }
}

/// An empty buffer of capacity `n` filled with `f` applied chunk by chunk over
/// the thread pool: `f` gets a chunk's start index and its slots, and must write
/// every slot.
fn fill_parallel<T: Element>(n: usize, f: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync) -> Vec<T> {
    let mut out = pool::take(n);
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, slots)| f(c * CHUNK, slots));
    // SAFETY: the chunks cover `0..n` exactly and every caller's `f` writes each
    // slot of its chunk (it zips the slots with inputs at least as long).
    unsafe { out.set_len(n) };
    out
}

/// `f` applied to every element of a strided view, in row-major order.
#[inline]
pub(crate) fn map<T: Element>(
    data: &[T],
    layout: &Layout,
    cost: Cost,
    f: impl Fn(T) -> T + Sync,
) -> Vec<T> {
    let n = layout.numel();
    if let Some(r) = layout.contiguous_range() {
        let src = &data[r];
        if use_pool(n, cost.parallel_len()) {
            return fill_parallel(n, |start, slots| {
                wide(
                    cost,
                    #[inline(always)]
                    || {
                        for (slot, &v) in slots.iter_mut().zip(&src[start..]) {
                            slot.write(f(v));
                        }
                    },
                )
            });
        }
        let mut out = pool::take(n);
        wide(
            cost,
            #[inline(always)]
            || out.extend(src.iter().map(|&v| f(v))),
        );
        return out;
    }
    let mut out = pool::take(n);
    for_each_row(
        &layout.shape,
        [&layout.strides],
        [layout.offset],
        |[o], [s], len| {
            if s == 1 {
                out.extend(data[o..o + len].iter().map(|&v| f(v)));
            } else {
                out.extend((0..len).map(|i| f(data[o + i * s])));
            }
        },
    );
    out
}

/// [`map`] into a [`Buf`]: a contiguous output of at most [`INLINE`] elements is
/// written inline, with no allocation (the same arithmetic, element by element).
#[inline]
pub(crate) fn map_buf<T: Element>(
    data: &[T],
    layout: &Layout,
    cost: Cost,
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
pub(crate) fn zip_buf<T: Element>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    cost: Cost,
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
#[inline]
pub(crate) fn zip<T: Element>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    cost: Cost,
    f: impl Fn(T, T) -> T + Sync,
) -> Vec<T> {
    debug_assert_eq!(la.shape, lb.shape);
    let n = la.numel();
    if let (Some(ra), Some(rb)) = (la.contiguous_range(), lb.contiguous_range()) {
        let (a, b) = (&a[ra], &b[rb]);
        if use_pool(n, cost.parallel_len()) {
            return fill_parallel(n, |start, slots| {
                wide(
                    cost,
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
        let mut out = pool::take(n);
        wide(
            cost,
            #[inline(always)]
            || out.extend(a.iter().zip(b).map(|(&x, &y)| f(x, y))),
        );
        return out;
    }
    let mut out = pool::take(n);
    for_each_row(
        &la.shape,
        [&la.strides, &lb.strides],
        [la.offset, lb.offset],
        |[oa, ob], [sa, sb], len| match (sa, sb) {
            (1, 1) => out.extend(
                a[oa..oa + len]
                    .iter()
                    .zip(&b[ob..ob + len])
                    .map(|(&x, &y)| f(x, y)),
            ),
            (1, 0) => {
                let y = b[ob];
                out.extend(a[oa..oa + len].iter().map(|&x| f(x, y)));
            }
            (0, 1) => {
                let x = a[oa];
                out.extend(b[ob..ob + len].iter().map(|&y| f(x, y)));
            }
            _ => out.extend((0..len).map(|i| f(a[oa + i * sa], b[ob + i * sb]))),
        },
    );
    out
}

/// `f(a, b, c)` over three views already broadcast to one shape (fused backward rules).
#[inline]
pub(crate) fn zip3<T: Element>(
    (a, la): (&[T], &Layout),
    (b, lb): (&[T], &Layout),
    (c, lc): (&[T], &Layout),
    cost: Cost,
    f: impl Fn(T, T, T) -> T + Sync,
) -> Vec<T> {
    let n = la.numel();
    if let (Some(ra), Some(rb), Some(rc)) = (
        la.contiguous_range(),
        lb.contiguous_range(),
        lc.contiguous_range(),
    ) {
        let (a, b, c) = (&a[ra], &b[rb], &c[rc]);
        if use_pool(n, cost.parallel_len()) {
            return fill_parallel(n, |start, slots| {
                let inputs = a[start..].iter().zip(&b[start..]).zip(&c[start..]);
                for (slot, ((&x, &y), &z)) in slots.iter_mut().zip(inputs) {
                    slot.write(f(x, y, z));
                }
            });
        }
        let mut out = pool::take(n);
        out.extend(a.iter().zip(b).zip(c).map(|((&x, &y), &z)| f(x, y, z)));
        return out;
    }
    let mut out = pool::take(n);
    for_each_row(
        &la.shape,
        [&la.strides, &lb.strides, &lc.strides],
        [la.offset, lb.offset, lc.offset],
        |[oa, ob, oc], [sa, sb, sc], len| {
            out.extend((0..len).map(|i| f(a[oa + i * sa], b[ob + i * sb], c[oc + i * sc])))
        },
    );
    out
}

/// `dst[i] = f(dst[i])` in place over a dense buffer.
pub(crate) fn map_inplace<T: Element>(dst: &mut [T], cost: Cost, f: impl Fn(T) -> T + Sync) {
    let run = |d: &mut [T]| {
        wide(
            cost,
            #[inline(always)]
            || d.iter_mut().for_each(|v| *v = f(*v)),
        )
    };
    if use_pool(dst.len(), cost.parallel_len()) {
        dst.par_chunks_mut(CHUNK).for_each(run);
    } else {
        run(dst);
    }
}

/// `dst[i] = f(dst[i], b[i])` in place, where `dst` is a dense row-major buffer
/// and `b` a view already broadcast to its shape.
pub(crate) fn zip_inplace<T: Element>(
    dst: &mut [T],
    b: &[T],
    lb: &Layout,
    cost: Cost,
    f: impl Fn(T, T) -> T + Sync,
) {
    if let Some(rb) = lb.contiguous_range() {
        let b = &b[rb];
        let run = |(d, b): (&mut [T], &[T])| {
            wide(
                cost,
                #[inline(always)]
                || d.iter_mut().zip(b).for_each(|(x, &y)| *x = f(*x, y)),
            )
        };
        if use_pool(dst.len(), cost.parallel_len()) {
            dst.par_chunks_mut(CHUNK)
                .zip(b.par_chunks(CHUNK))
                .for_each(run);
        } else {
            run((dst, b));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_paths_match_serial() {
        let n = Cost::Costly.parallel_len() + CHUNK / 2 + 3; // a ragged last chunk
        let a: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
        let l = Layout::contiguous(&[n]);
        let m = map(&a, &l, Cost::Costly, |x| x * 2.0);
        assert!(m.iter().enumerate().all(|(i, &v)| v == 2.0 * i as f64));
        let z = zip(&a, &l, &b, &l, Cost::Costly, |x, y| x - y);
        assert!(z
            .iter()
            .enumerate()
            .all(|(i, &v)| v == i as f64 - (i % 7) as f64));
        let z3 = zip3((&a, &l), (&b, &l), (&a, &l), Cost::Costly, |x, y, w| {
            x * y + w
        });
        assert!(z3
            .iter()
            .enumerate()
            .all(|(i, &v)| v == (i * (i % 7) + i) as f64));
        assert_eq!((m.len(), z.len(), z3.len()), (n, n, n));
    }
}
