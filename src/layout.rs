//! Layout = shape + strides + offset into a shared buffer: views and strided iteration.

use smallvec::SmallVec;

use crate::shape::{contiguous_strides, dims_from, numel, Dims};

/// How a tensor's logical elements map onto its buffer.
///
/// The fields are read freely in the crate but only changed here, so that the
/// cached `dense` flag (row-major without gaps) always matches them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) shape: Dims,
    pub(crate) strides: Dims,
    pub(crate) offset: usize,
    dense: bool,
}

impl Clone for Layout {
    #[inline]
    fn clone(&self) -> Self {
        // `from_slice` copies the inline dims with one memcpy; the derived clone
        // goes through the generic `extend`, measurably slower on the per-op path.
        Layout {
            shape: dims_from(&self.shape),
            strides: dims_from(&self.strides),
            offset: self.offset,
            dense: self.dense,
        }
    }
}

/// Whether `strides` are the row-major strides of `shape` (size-1 dims ignored).
fn is_dense(shape: &[usize], strides: &[usize]) -> bool {
    let mut expected = 1;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected *= d;
    }
    true
}

impl Layout {
    #[inline]
    fn new(shape: Dims, strides: Dims, offset: usize) -> Self {
        let dense = is_dense(&shape, &strides);
        Layout {
            shape,
            strides,
            offset,
            dense,
        }
    }

    /// A row-major layout starting at offset 0.
    pub(crate) fn contiguous(shape: &[usize]) -> Self {
        Layout {
            shape: dims_from(shape),
            strides: contiguous_strides(shape),
            offset: 0,
            dense: true,
        }
    }

    #[inline]
    pub(crate) fn numel(&self) -> usize {
        numel(&self.shape)
    }

    #[inline]
    pub(crate) fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// True when the elements are row-major and dense (the offset may be non-zero).
    #[inline]
    pub(crate) fn is_contiguous(&self) -> bool {
        self.dense
    }

    /// True when the view is the whole of a buffer of `len` elements, in
    /// row-major order (it may then be written as a plain slice).
    #[inline]
    pub(crate) fn is_whole(&self, len: usize) -> bool {
        self.offset == 0 && self.is_contiguous() && self.numel() == len
    }

    /// The buffer range holding the elements, when they are contiguous.
    #[inline]
    pub(crate) fn contiguous_range(&self) -> Option<std::ops::Range<usize>> {
        self.is_contiguous()
            .then(|| self.offset..self.offset + self.numel())
    }

    /// True when no two logical elements share a buffer slot (no stride-0 dims of size > 1).
    pub(crate) fn is_non_overlapping(&self) -> bool {
        let mut dims: Vec<(usize, usize)> = self
            .shape
            .iter()
            .zip(&self.strides)
            .filter(|(&d, _)| d > 1)
            .map(|(&d, &s)| (s, d))
            .collect();
        dims.sort_unstable();
        let mut span = 1;
        for (s, d) in dims {
            if s < span {
                return false;
            }
            span = s * (d - 1) + 1;
        }
        true
    }

    pub(crate) fn permute(&self, perm: &[usize]) -> Self {
        Layout::new(
            perm.iter().map(|&p| self.shape[p]).collect(),
            perm.iter().map(|&p| self.strides[p]).collect(),
            self.offset,
        )
    }

    pub(crate) fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        let mut shape = self.shape.clone();
        shape[axis] = len;
        let offset = if len > 0 {
            self.offset + start * self.strides[axis]
        } else {
            self.offset
        };
        Layout::new(shape, self.strides.clone(), offset)
    }

    /// A broadcast view onto `shape`; the caller has checked that it is compatible.
    pub(crate) fn broadcast_to(&self, shape: &[usize]) -> Self {
        if self.shape[..] == *shape {
            // the same layout, with stride 0 on size-1 dims as below (and the
            // same `dense`, which ignores size-1 dims), without recomputing it
            let mut l = self.clone();
            for (s, &d) in l.strides.iter_mut().zip(shape) {
                if d == 1 {
                    *s = 0;
                }
            }
            return l;
        }
        self.broadcast_general(shape)
    }

    /// [`broadcast_to`](Self::broadcast_to) computed from scratch.
    fn broadcast_general(&self, shape: &[usize]) -> Self {
        let extra = shape.len() - self.ndim();
        let mut strides: Dims = SmallVec::from_elem(0, shape.len());
        for (i, &d) in shape.iter().enumerate().skip(extra) {
            let src = i - extra;
            strides[i] = if self.shape[src] == d && d != 1 {
                self.strides[src]
            } else {
                0
            };
        }
        Layout::new(shape.into(), strides, self.offset)
    }

    pub(crate) fn unsqueeze(&self, axis: usize) -> Self {
        let stride = if axis < self.ndim() {
            self.strides[axis] * self.shape[axis]
        } else {
            1
        };
        let (mut shape, mut strides) = (self.shape.clone(), self.strides.clone());
        shape.insert(axis, 1);
        strides.insert(axis, stride);
        Layout::new(shape, strides, self.offset)
    }

    pub(crate) fn remove_axis(&self, axis: usize) -> Self {
        let (mut shape, mut strides) = (self.shape.clone(), self.strides.clone());
        shape.remove(axis);
        strides.remove(axis);
        Layout::new(shape, strides, self.offset)
    }

    /// The same elements under a new shape (of the same element count), when
    /// that needs no copy: always for a contiguous layout, and for a strided one
    /// when each new dimension lies inside a run of old dimensions that step
    /// through the buffer as one (a row of a transposed or narrowed tensor split
    /// into heads, say). Row-major order is kept, as PyTorch's `view` keeps it.
    pub(crate) fn reshape(&self, shape: &[usize]) -> Option<Self> {
        if self.is_contiguous() || numel(shape) == 0 {
            return Some(Layout {
                shape: Dims::from_slice(shape),
                strides: contiguous_strides(shape),
                offset: self.offset,
                dense: true,
            });
        }
        // Walk both shapes from the innermost dimension. The old dimensions
        // (size-1 ones dropped: their strides never matter) fall into runs in
        // which each stride is the next one's stride times its size; a run is
        // one strided axis of `size` elements. The new dimensions that cover a
        // run must multiply to exactly its size, and step through it with
        // strides built up from the run's innermost stride.
        let old: SmallVec<[(usize, usize); 8]> = self
            .shape
            .iter()
            .zip(&self.strides)
            .filter(|(&d, _)| d != 1)
            .map(|(&d, &s)| (d, s))
            .collect();
        let mut strides = Dims::from_elem(1, shape.len());
        let mut j = shape.len();
        let mut i = old.len();
        while i > 0 {
            let (mut size, inner) = (old[i - 1].0, old[i - 1].1);
            let mut first = i - 1;
            while first > 0 && old[first - 1].1 == old[first].1 * old[first].0 {
                first -= 1;
                size *= old[first].0;
            }
            let (mut covered, mut stride) = (1, inner);
            while covered < size {
                // the element counts agree, so new dimensions remain here
                j -= 1;
                strides[j] = stride;
                stride *= shape[j];
                covered *= shape[j];
            }
            if covered != size {
                return None;
            }
            i = first;
        }
        // what is left of the new shape are size-1 dimensions (stride unused)
        Some(Layout::new(Dims::from_slice(shape), strides, self.offset))
    }

    /// The buffer offset of a logical multi-index.
    #[inline]
    pub(crate) fn offset_of(&self, index: &[usize]) -> usize {
        self.offset
            + index
                .iter()
                .zip(&self.strides)
                .map(|(i, s)| i * s)
                .sum::<usize>()
    }

    /// The buffer offsets of all elements in row-major logical order.
    pub(crate) fn offsets(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.numel());
        for_each_row(
            &self.shape,
            [&self.strides],
            [self.offset],
            |[o], [s], len| {
                out.extend((0..len).map(|i| o + i * s));
            },
        );
        out
    }
}

/// Visits the elements of `K` equally shaped strided views row by row.
///
/// Adjacent dimensions that are laid out densely in every view are merged first,
/// so a contiguous tensor is one long row. `f` receives the buffer offset of each
/// view's first element in the row, each view's stride along the row, and the
/// row length. Kernels run their inner loop over the row, where LLVM vectorises
/// the unit-stride case.
#[inline]
pub(crate) fn for_each_row<const K: usize>(
    shape: &[usize],
    strides: [&[usize]; K],
    base: [usize; K],
    mut f: impl FnMut([usize; K], [usize; K], usize),
) {
    let Some(mut rows) = Rows::new(shape, strides, base) else {
        return;
    };
    loop {
        f(rows.off, rows.inner, rows.len);
        if !rows.next_row() {
            return;
        }
    }
}

/// [`for_each_row`] over the elements at row-major positions `range` only: the
/// first and the last row may be partial (a row's offsets then point at its
/// first element inside `range`). Lets a kernel over a strided view be cut into
/// chunks of the output, like a contiguous one.
#[inline]
pub(crate) fn for_each_row_in<const K: usize>(
    shape: &[usize],
    strides: [&[usize]; K],
    base: [usize; K],
    range: std::ops::Range<usize>,
    mut f: impl FnMut([usize; K], [usize; K], usize),
) {
    if range.is_empty() {
        return;
    }
    let Some(mut rows) = Rows::new(shape, strides, base) else {
        return;
    };
    // one call site, so that `f` is inlined: the first row starts at `col`,
    // the others at 0
    let mut col = rows.seek(range.start);
    let mut left = range.len();
    loop {
        let len = (rows.len - col).min(left);
        f(
            std::array::from_fn(|k| rows.off[k] + col * rows.inner[k]),
            rows.inner,
            len,
        );
        left -= len;
        if left == 0 || !rows.next_row() {
            return;
        }
        col = 0;
    }
}

/// The row walk of [`for_each_row`], apart from what is done with each row, so
/// that it is compiled once per number of views rather than once per kernel.
struct Rows<const K: usize> {
    /// The outer dimensions (after merging) but the innermost one: size and
    /// each view's stride.
    dims: SmallVec<[(usize, [usize; K]); 6]>,
    /// The position in `dims`.
    idx: SmallVec<[usize; 6]>,
    /// The innermost outer dimension (1 when there is none): size, each view's
    /// stride and the position in it. Kept apart so that moving to the next row
    /// within it is a few instructions, inlined into the kernel.
    near: (usize, [usize; K]),
    /// The position in `near`.
    at: usize,
    /// Each view's offset of the current row's first element.
    off: [usize; K],
    /// Each view's stride along a row.
    inner: [usize; K],
    /// The row length.
    len: usize,
}

impl<const K: usize> Rows<K> {
    /// The first row, with dense dimensions merged; `None` for an empty shape.
    #[inline(never)]
    fn new(shape: &[usize], strides: [&[usize]; K], base: [usize; K]) -> Option<Self> {
        if shape.contains(&0) {
            return None;
        }
        let mut dims: SmallVec<[(usize, [usize; K]); 6]> = SmallVec::new();
        for (i, &d) in shape.iter().enumerate() {
            if d == 1 {
                continue;
            }
            let st: [usize; K] = std::array::from_fn(|k| strides[k][i]);
            if let Some(last) = dims.last_mut() {
                if (0..K).all(|k| last.1[k] == st[k] * d) {
                    last.0 *= d;
                    last.1 = st;
                    continue;
                }
            }
            dims.push((d, st));
        }
        let (len, inner) = dims.pop().unwrap_or((1, [0; K]));
        let near = dims.pop().unwrap_or((1, [0; K]));
        let idx = SmallVec::from_elem(0, dims.len());
        Some(Rows {
            dims,
            idx,
            near,
            at: 0,
            off: base,
            inner,
            len,
        })
    }

    /// Moves to the row holding row-major position `pos` (from the first row);
    /// returns `pos`'s column in that row.
    #[inline(never)]
    fn seek(&mut self, pos: usize) -> usize {
        let mut row = pos / self.len;
        let (size, st) = self.near;
        self.at = row % size;
        row /= size;
        for (o, s) in self.off.iter_mut().zip(st) {
            *o += s * self.at;
        }
        for d in (0..self.dims.len()).rev() {
            let (size, st) = self.dims[d];
            let i = row % size;
            row /= size;
            self.idx[d] = i;
            for (o, s) in self.off.iter_mut().zip(st) {
                *o += s * i;
            }
        }
        pos % self.len
    }

    /// Moves to the next row; `false` after the last.
    #[inline(always)]
    fn next_row(&mut self) -> bool {
        let (size, st) = self.near;
        if self.at + 1 < size {
            self.at += 1;
            for (o, s) in self.off.iter_mut().zip(st) {
                *o += s;
            }
            return true;
        }
        self.carry()
    }

    /// [`Rows::next_row`] at the end of `near`: back to its start, one step on
    /// in the dimensions further out.
    #[inline(never)]
    fn carry(&mut self) -> bool {
        let (size, st) = self.near;
        for (o, s) in self.off.iter_mut().zip(st) {
            *o -= s * (size - 1);
        }
        self.at = 0;
        let mut d = self.dims.len();
        loop {
            if d == 0 {
                return false;
            }
            d -= 1;
            let (size, st) = self.dims[d];
            self.idx[d] += 1;
            if self.idx[d] < size {
                for (o, s) in self.off.iter_mut().zip(st) {
                    *o += s;
                }
                return true;
            }
            for (o, s) in self.off.iter_mut().zip(st) {
                *o -= s * (size - 1);
            }
            self.idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element position a row walk visits, with each view's offset.
    fn walked<const K: usize>(
        l: [&Layout; K],
        range: Option<std::ops::Range<usize>>,
    ) -> Vec<[usize; K]> {
        let mut seen = Vec::new();
        let mut row = |o: [usize; K], s: [usize; K], len: usize| {
            seen.extend((0..len).map(|i| std::array::from_fn(|k| o[k] + i * s[k])));
        };
        let (shape, strides, base) = (
            &l[0].shape,
            std::array::from_fn(|k| &l[k].strides[..]),
            std::array::from_fn(|k| l[k].offset),
        );
        match range {
            Some(r) => for_each_row_in(shape, strides, base, r, &mut row),
            None => for_each_row(shape, strides, base, &mut row),
        }
        seen
    }

    #[test]
    fn strided_reshapes_are_views_exactly_when_the_order_allows() {
        // a view must reach the same buffer slots in the same row-major order
        let same_walk = |l: &Layout, shape: &[usize]| {
            let v = l.reshape(shape)?;
            assert_eq!(&v.shape[..], shape);
            assert_eq!(v.offsets(), l.offsets(), "{l:?} as {shape:?}");
            Some(v)
        };
        let qkv = Layout::contiguous(&[2, 5, 12]);
        // one third of the last axis (a narrow), split into 2 heads of 2
        let q = qkv.narrow(2, 4, 4);
        let heads = same_walk(&q, &[2, 5, 2, 2]).expect("splitting a row is a view");
        assert_eq!(&heads.strides[..], [60, 12, 2, 1]);
        assert!(!heads.is_contiguous());
        // merging the heads back, size-1 dims anywhere, and splitting the batch
        assert!(same_walk(&heads, &[2, 5, 4]).is_some());
        assert!(same_walk(&q, &[1, 2, 5, 1, 4, 1]).is_some());
        assert!(same_walk(&q, &[2, 1, 5, 4]).is_some());
        // rows of 4 at a stride of 12 cannot be one run of 20 or 40
        assert!(q.reshape(&[2, 20]).is_none());
        assert!(q.reshape(&[40]).is_none());
        assert!(q.reshape(&[8, 5]).is_none());
        // a transpose merges only dims that stay in order
        let t = Layout::contiguous(&[3, 4, 6]).permute(&[0, 2, 1]);
        assert!(same_walk(&t, &[3, 6, 2, 2]).is_some());
        assert!(same_walk(&t, &[3, 3, 2, 4]).is_some());
        assert!(t.reshape(&[3, 24]).is_none());
        assert!(t.reshape(&[18, 4]).is_none());
        // broadcast (stride 0) dims merge with each other
        let b = Layout::contiguous(&[5]).broadcast_to(&[3, 4, 5]);
        let m = same_walk(&b, &[12, 5]).expect("stride-0 dims merge");
        assert_eq!(&m.strides[..], [0, 1]);
        assert!(b.reshape(&[3, 20]).is_none());
        // a contiguous layout with an offset keeps it; empty shapes are views
        let c = Layout::contiguous(&[4, 6]).narrow(0, 1, 2);
        assert_eq!(same_walk(&c, &[3, 4]).unwrap().offset, 6);
        let e = Layout::contiguous(&[3, 0, 2]).permute(&[2, 1, 0]);
        assert!(same_walk(&e, &[0, 7]).is_some());
    }

    #[test]
    fn a_row_walk_over_a_range_is_that_part_of_the_whole_walk() {
        let base = Layout::contiguous(&[3, 4, 5]);
        let bias = Layout::contiguous(&[5]).broadcast_to(&[3, 4, 5]);
        let views = [
            base.clone(),
            base.permute(&[2, 0, 1]),
            base.narrow(1, 1, 2).narrow(2, 0, 3),
            Layout::contiguous(&[7]),
            Layout::contiguous(&[]),
        ];
        for l in &views {
            let whole = walked([l], None);
            assert_eq!(whole.len(), l.numel());
            for start in 0..=whole.len() {
                for end in start..=whole.len() {
                    assert_eq!(
                        walked([l], Some(start..end)),
                        whole[start..end],
                        "{l:?} {start}..{end}"
                    );
                }
            }
        }
        let whole = walked([&base.permute(&[0, 1, 2]), &bias], None);
        for (start, end) in [(0, 60), (3, 17), (5, 10), (59, 60), (22, 22)] {
            assert_eq!(walked([&base, &bias], Some(start..end)), whole[start..end]);
        }
    }

    #[test]
    fn broadcast_to_its_own_shape_is_the_general_result() {
        let base = Layout::contiguous(&[2, 1, 3]);
        for l in [
            base.clone(),
            base.permute(&[2, 1, 0]),
            base.narrow(2, 1, 2),
            Layout::contiguous(&[1]),
            Layout::contiguous(&[]),
            Layout::contiguous(&[3]).broadcast_to(&[2, 3]),
        ] {
            assert_eq!(l.broadcast_to(&l.shape), l.broadcast_general(&l.shape));
        }
    }

    #[test]
    fn views_and_contiguity() {
        let l = Layout::contiguous(&[2, 3]);
        assert!(l.is_contiguous());
        let t = l.permute(&[1, 0]);
        assert!(!t.is_contiguous());
        assert_eq!(t.offsets(), vec![0, 3, 1, 4, 2, 5]);
        let n = l.narrow(1, 1, 2);
        assert_eq!(n.offsets(), vec![1, 2, 4, 5]);
        let b = Layout::contiguous(&[3]).broadcast_to(&[2, 3]);
        assert_eq!(b.offsets(), vec![0, 1, 2, 0, 1, 2]);
        assert!(!b.is_non_overlapping());
        assert!(t.is_non_overlapping());
        let u = l.unsqueeze(1);
        assert_eq!(u.shape.as_slice(), &[2, 1, 3]);
        assert!(u.is_contiguous());
        assert!(Layout::contiguous(&[]).is_contiguous());
        assert_eq!(Layout::contiguous(&[]).offsets(), vec![0]);
    }

    #[test]
    fn rows_merge_dense_dims() {
        let mut rows = vec![];
        for_each_row(&[2, 3, 4], [&[12, 4, 1]], [0], |o, s, len| {
            rows.push((o[0], s[0], len))
        });
        assert_eq!(rows, vec![(0, 1, 24)]);
        let mut rows = vec![];
        for_each_row(&[2, 3], [&[3, 1], &[0, 1]], [0, 0], |o, s, len| {
            rows.push((o, s, len))
        });
        assert_eq!(rows, vec![([0, 0], [1, 1], 3), ([3, 0], [1, 1], 3)]);
    }
}
