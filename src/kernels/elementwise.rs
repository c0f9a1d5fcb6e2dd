//! Elementwise kernels: unary maps and broadcasting binary zips.

use crate::element::Element;
use crate::layout::{for_each_row, Layout};
use crate::pool;

/// `f` applied to every element of a strided view, in row-major order.
#[inline]
pub(crate) fn map<T: Copy, U: Element>(data: &[T], layout: &Layout, f: impl Fn(T) -> U) -> Vec<U> {
    let mut out = pool::take(layout.numel());
    if let Some(r) = layout.contiguous_range() {
        out.extend(data[r].iter().map(|&v| f(v)));
        return out;
    }
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

/// `f(a, b)` over two views already broadcast to one shape, in row-major order.
#[inline]
pub(crate) fn zip<T: Element>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    f: impl Fn(T, T) -> T,
) -> Vec<T> {
    debug_assert_eq!(la.shape, lb.shape);
    let mut out = pool::take(la.numel());
    if let (Some(ra), Some(rb)) = (la.contiguous_range(), lb.contiguous_range()) {
        out.extend(a[ra].iter().zip(&b[rb]).map(|(&x, &y)| f(x, y)));
        return out;
    }
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
    f: impl Fn(T, T, T) -> T,
) -> Vec<T> {
    let mut out = pool::take(la.numel());
    if let (Some(ra), Some(rb), Some(rc)) = (
        la.contiguous_range(),
        lb.contiguous_range(),
        lc.contiguous_range(),
    ) {
        out.extend(
            a[ra]
                .iter()
                .zip(&b[rb])
                .zip(&c[rc])
                .map(|((&x, &y), &z)| f(x, y, z)),
        );
        return out;
    }
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
