//! Copies that move blocks: index_select and its scatter-add, concatenation,
//! and embedding a block into zeros (the backward of narrow).

use crate::element::Element;
use crate::pool;

/// `out[o, j, :] = x[o, idx[j], :]` for a contiguous `[outer, n, inner]` block.
pub(crate) fn index_select<T: Element>(
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    idx: &[usize],
) -> Vec<T> {
    let mut out = pool::take(outer * idx.len() * inner);
    for o in 0..outer {
        for &j in idx {
            let start = (o * n + j) * inner;
            out.extend_from_slice(&x[start..start + inner]);
        }
    }
    out
}

/// `out[o, idx[j], :] += g[o, j, :]` into zeros of `[outer, n, inner]`.
pub(crate) fn index_add<T: Element>(
    g: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    idx: &[usize],
) -> Vec<T> {
    let mut out = pool::filled(outer * n * inner, T::zero());
    for o in 0..outer {
        for (j, &t) in idx.iter().enumerate() {
            let src = &g[(o * idx.len() + j) * inner..][..inner];
            let dst = &mut out[(o * n + t) * inner..][..inner];
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
        }
    }
    out
}

/// Concatenates contiguous `[outer, n_i, inner]` blocks along their middle axis.
pub(crate) fn cat<T: Element>(parts: &[(&[T], usize)], outer: usize, inner: usize) -> Vec<T> {
    let total: usize = parts.iter().map(|(_, n)| n).sum();
    let mut out = pool::take(outer * total * inner);
    for o in 0..outer {
        for &(x, n) in parts {
            out.extend_from_slice(&x[o * n * inner..(o + 1) * n * inner]);
        }
    }
    out
}

/// Places a contiguous `[outer, len, inner]` block at `start` of the middle axis of
/// zeros shaped `[outer, n, inner]`.
pub(crate) fn pad_axis<T: Element>(
    g: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    start: usize,
    len: usize,
) -> Vec<T> {
    // each element written once: the zeros before the block, the block, the
    // zeros after it, outer row by outer row
    if len * inner == 0 {
        return pool::filled(outer * n * inner, T::zero());
    }
    let (before, after) = (start * inner, (n - start - len) * inner);
    let mut out = pool::take(outer * n * inner);
    for row in g.chunks_exact(len * inner).take(outer) {
        out.resize(out.len() + before, T::zero());
        out.extend_from_slice(row);
        out.resize(out.len() + after, T::zero());
    }
    out
}
