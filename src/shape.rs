//! Shape arithmetic: broadcasting, axis normalisation, contiguous strides.

use smallvec::SmallVec;

use crate::error::{Error, Result};

/// A shape or a stride vector; four dimensions live inline (no allocation).
pub(crate) type Dims = SmallVec<[usize; 4]>;

/// A copy of a shape or strides: up to four dims element by element, inline
/// (a call to `memcpy` for a few words costs more than the copy itself).
#[inline(always)]
pub(crate) fn dims_from(s: &[usize]) -> Dims {
    let n = s.len();
    if n > 4 {
        return Dims::from_slice(s);
    }
    let at = |i: usize| if i < n { s[i] } else { 0 };
    Dims::from_buf_and_len([at(0), at(1), at(2), at(3)], n)
}

/// Number of elements of a shape (1 for the 0-d shape `[]`).
#[inline]
pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The number of elements of a shape given by a user, checked: the product of the
/// non-zero dimensions (which the strides reach) must fit in memory addresses.
pub(crate) fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    let limit = isize::MAX as usize / 8;
    let mut nonzero: usize = 1;
    for &d in shape.iter().filter(|&&d| d != 0) {
        nonzero = nonzero
            .checked_mul(d)
            .filter(|&n| n <= limit)
            .ok_or_else(|| {
                Error::invalid(
                    op,
                    format!("shape {shape:?} has more elements than memory can address"),
                )
            })?;
    }
    Ok(if shape.contains(&0) { 0 } else { nonzero })
}

/// Row-major strides of a contiguous tensor of this shape.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Dims {
    let mut strides: Dims = SmallVec::from_elem(0, shape.len());
    let mut acc = 1;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc *= d;
    }
    strides
}

/// The NumPy broadcast of two shapes, or `None` when they do not broadcast.
pub(crate) fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Dims> {
    if a == b {
        return Some(Dims::from_slice(a));
    }
    let n = a.len().max(b.len());
    let mut out: Dims = SmallVec::from_elem(0, n);
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Like [`broadcast_shapes`], with the error an op reports.
pub(crate) fn try_broadcast(op: &'static str, a: &[usize], b: &[usize]) -> Result<Dims> {
    broadcast_shapes(a, b).ok_or_else(|| Error::shape(op, a, b))
}

/// Resolves a possibly negative axis against a rank.
#[inline]
pub(crate) fn normalize_axis(op: &'static str, axis: isize, shape: &[usize]) -> Result<usize> {
    check_axis(op, axis, shape, shape.len())
}

/// [`normalize_axis`] for an op that inserts an axis (`unsqueeze`, `stack`):
/// `axis` counts on the output's rank, one more than `shape`'s.
pub(crate) fn normalize_new_axis(op: &'static str, axis: isize, shape: &[usize]) -> Result<usize> {
    check_axis(op, axis, shape, shape.len() + 1)
}

fn check_axis(op: &'static str, axis: isize, shape: &[usize], ndim: usize) -> Result<usize> {
    let n = ndim as isize;
    let a = if axis < 0 { axis + n } else { axis };
    if a < 0 || a >= n {
        Err(Error::InvalidAxis {
            op,
            axis,
            ndim,
            shape: shape.to_vec(),
        })
    } else {
        Ok(a as usize)
    }
}

/// The shape after reducing `axis` (kept as size 1 with `keepdim`).
pub(crate) fn reduced_shape(shape: &[usize], axis: usize, keepdim: bool) -> Dims {
    let mut out: Dims = shape.into();
    if keepdim {
        out[axis] = 1;
    } else {
        out.remove(axis);
    }
    out
}

/// Splits a contiguous shape around `axis` into `(outer, len, inner)` extents.
#[inline]
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        numel(&shape[..axis]),
        shape[axis],
        numel(&shape[axis + 1..]),
    )
}

/// Converts a row-major flat index to a multi-index.
pub(crate) fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            idx[i] = flat % d;
            flat /= d;
        }
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy() {
        assert_eq!(broadcast_shapes(&[2, 3], &[3]).unwrap().as_slice(), &[2, 3]);
        assert_eq!(
            broadcast_shapes(&[4, 1, 3], &[5, 1]).unwrap().as_slice(),
            &[4, 5, 3]
        );
        assert_eq!(broadcast_shapes(&[], &[2]).unwrap().as_slice(), &[2]);
        assert_eq!(broadcast_shapes(&[0], &[1]).unwrap().as_slice(), &[0]);
        assert!(broadcast_shapes(&[2, 3], &[2]).is_none());
    }

    #[test]
    fn axes_and_strides() {
        assert_eq!(normalize_axis("op", -1, &[1, 2, 3]).unwrap(), 2);
        assert_eq!(normalize_axis("op", 0, &[4]).unwrap(), 0);
        assert!(normalize_axis("op", 3, &[1, 2, 3]).is_err());
        assert!(normalize_axis("op", -4, &[1, 2, 3]).is_err());
        assert!(normalize_axis("op", 0, &[]).is_err());
        assert_eq!(normalize_new_axis("op", -1, &[2]).unwrap(), 1);
        assert!(normalize_new_axis("op", 2, &[2]).is_err());
        assert_eq!(contiguous_strides(&[2, 3, 4]).as_slice(), &[12, 4, 1]);
        assert_eq!(unravel(7, &[2, 4]), vec![1, 3]);
        assert_eq!(split_at_axis(&[2, 3, 4], 1), (2, 3, 4));
    }
}
