//! Shape ops. Most are views that share the buffer (`transpose`, `permute`, `t`,
//! `broadcast_to`, `narrow`, `unsqueeze`, `squeeze`, and `reshape` of a contiguous
//! tensor); `reshape` of a strided tensor and `contiguous` copy. `chunk`, `split`
//! and `select` are made of `narrow` (and `squeeze`) views.

use crate::autograd::{grads, BackwardCx, InputGrads, Op, Saves};
use crate::element::{mono, Element};
use crate::error::{or_panic, Error, Result};
use crate::kernels;
use crate::layout::Layout;
use crate::shape::{
    broadcast_shapes, checked_numel, normalize_axis, normalize_new_axis, split_at_axis, Dims,
};
use crate::storage::Storage;
use crate::tensor::{Seen, Tensor};

/// A change of shape (view or copy): the gradient is reshaped back.
struct Reshape;

impl<T: Element> Op<T> for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        grads![Some(g.reshape(cx.input(0).shape()))]
    }
}

/// An axis permutation (view): the gradient is permuted back.
struct Permute(Dims);

impl<T: Element> Op<T> for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    fn backward(&self, _: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        let mut inverse = vec![0; self.0.len()];
        for (i, &p) in self.0.iter().enumerate() {
            inverse[p] = i;
        }
        grads![Some(g.permute(&inverse))]
    }
}

/// A broadcast view: the walk sums the gradient back to the input's shape.
struct BroadcastTo;

impl<T: Element> Op<T> for BroadcastTo {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    fn backward(&self, _: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        grads![Some(g.clone())]
    }
}

/// A slice along one axis (view): the gradient is placed back into zeros.
struct Narrow {
    axis: usize,
    start: usize,
}

impl<T: Element> Op<T> for Narrow {
    fn name(&self) -> &'static str {
        "narrow"
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        grads![Some(pad_axis(
            g,
            self.axis,
            self.start,
            cx.input(0).shape()[self.axis]
        ))]
    }
    fn grad_region(&self, input: &[usize], grad: &[usize]) -> Option<Layout> {
        Some(Layout::contiguous(input).narrow(self.axis, self.start, grad[self.axis]))
    }
}

/// The backward of narrow: `g` placed at `start` along `axis` of zeros of size `n`.
struct PadAxis {
    axis: usize,
    start: usize,
}

impl<T: Element> Op<T> for PadAxis {
    fn name(&self) -> &'static str {
        "pad_axis"
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        let len = cx.input(0).shape()[self.axis];
        grads![Some(g.narrow(self.axis as isize, self.start, len))]
    }
}

fn pad_axis<T: Element>(g: &Tensor<T>, axis: usize, start: usize, n: usize) -> Tensor<T> {
    let mut shape: Dims = g.shape().into();
    let len = shape[axis];
    shape[axis] = n;
    let (outer, _, inner) = split_at_axis(&shape, axis);
    let seen = Seen::note(&[g]);
    let data = g.with_contiguous(|x| kernels::gather::pad_axis(x, outer, n, inner, start, len));
    Tensor::from_op_data(seen, data, &shape, PadAxis { axis, start }, &[g])
}

/// A copy into a fresh row-major buffer; the gradient passes unchanged.
struct Contiguous;

impl<T: Element> Op<T> for Contiguous {
    fn name(&self) -> &'static str {
        "contiguous"
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    fn backward(&self, _: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        grads![Some(g.clone())]
    }
}

/// Sums a gradient down to the shape its input was broadcast from.
struct SumToShape;

impl<T: Element> Op<T> for SumToShape {
    fn name(&self) -> &'static str {
        "sum_to_shape"
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        grads![Some(g.broadcast_to(cx.input(0).shape()))]
    }
}

/// Sums `g` down to `shape`, which must broadcast to `g`'s shape (the single place
/// where the backward walk undoes broadcasting).
pub(crate) fn sum_to_shape<T: Element>(g: &Tensor<T>, shape: &[usize]) -> Result<Tensor<T>> {
    if broadcast_shapes(shape, g.shape()).as_deref() != Some(g.shape()) {
        return Err(Error::shape("sum_to_shape", g.shape(), shape));
    }
    let seen = Seen::note(&[g]);
    let data = {
        let d = g.read();
        kernels::reduce::sum_to_shape(&d, g.layout(), shape)
    };
    Ok(Tensor::from_op_data(seen, data, shape, SumToShape, &[g]))
}

impl<T: Element> Tensor<T> {
    /// The same elements (row-major) under a new shape with as many elements.
    /// A view (no copy) when the elements' order in the buffer allows it, as
    /// PyTorch's `reshape` does: always for a contiguous tensor, and for a
    /// strided one when each new dimension stays inside a run of old ones that
    /// step through the buffer evenly (a narrowed row split into heads, say).
    /// A copy otherwise (a transposed matrix flattened, say).
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::arange(6).reshape(&[2, 3]);
    /// assert_eq!(x.shape(), &[2, 3]);
    /// assert_eq!(x.t().reshape(&[6]).to_vec(), vec![0., 3., 1., 4., 2., 5.]);
    /// ```
    ///
    /// # Panics
    /// Panics when the element counts differ, naming both shapes.
    #[track_caller]
    pub fn reshape(&self, shape: &[usize]) -> Tensor<T> {
        or_panic(self.try_reshape(shape))
    }

    /// The elements as a 1-D tensor.
    pub fn flatten(&self) -> Tensor<T> {
        self.reshape(&[self.numel()])
    }

    /// Removes `axis` when its size is 1; otherwise returns the tensor unchanged
    /// (as PyTorch's `squeeze(dim)`).
    ///
    /// # Panics
    /// Panics when `axis` is out of range.
    #[track_caller]
    pub fn squeeze(&self, axis: isize) -> Tensor<T> {
        or_panic(self.try_squeeze(axis))
    }

    /// Inserts an axis of size 1 at `axis`; negative values count on the output's
    /// rank (`-1` appends).
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::zeros(&[2, 3]);
    /// assert_eq!(x.unsqueeze(0).shape(), &[1, 2, 3]);
    /// assert_eq!(x.unsqueeze(-1).shape(), &[2, 3, 1]);
    /// ```
    ///
    /// # Panics
    /// Panics when `axis` is outside `-(ndim+1)..=ndim`.
    #[track_caller]
    pub fn unsqueeze(&self, axis: isize) -> Tensor<T> {
        or_panic(self.try_unsqueeze(axis))
    }

    /// Reorders the axes: output axis `i` is input axis `perm[i]` (a view).
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::zeros(&[2, 3, 4]);
    /// assert_eq!(x.permute(&[2, 0, 1]).shape(), &[4, 2, 3]);
    /// ```
    ///
    /// # Panics
    /// Panics unless `perm` is a permutation of `0..ndim`.
    #[track_caller]
    pub fn permute(&self, perm: &[usize]) -> Tensor<T> {
        or_panic(self.try_permute(perm))
    }

    /// Swaps two axes (a view).
    ///
    /// # Panics
    /// Panics when an axis is out of range.
    #[track_caller]
    pub fn transpose(&self, a: isize, b: isize) -> Tensor<T> {
        or_panic(self.try_transpose(a, b))
    }

    /// The transpose of a matrix (a view); 0-d and 1-D tensors come back unchanged.
    ///
    /// # Panics
    /// Panics for more than 2 dimensions (use [`transpose`](Tensor::transpose)).
    #[track_caller]
    pub fn t(&self) -> Tensor<T> {
        or_panic(self.try_t())
    }

    /// A view with size-1 (or missing leading) axes repeated to `shape`, NumPy-style;
    /// nothing is copied.
    ///
    /// ```
    /// let b = ferrograd::Tensor::<f32>::from_vec(vec![1., 2.], &[2])?;
    /// assert_eq!(b.broadcast_to(&[2, 2]).to_vec(), vec![1., 2., 1., 2.]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// Panics when the shape is not reachable by broadcasting, naming both shapes.
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Tensor<T> {
        or_panic(self.try_broadcast_to(shape))
    }

    /// Elements `start..start + len` along `axis` (a view).
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::arange(6).reshape(&[2, 3]);
    /// assert_eq!(x.narrow(1, 1, 2).to_vec(), vec![1., 2., 4., 5.]);
    /// ```
    ///
    /// # Panics
    /// Panics when `axis` is out of range or the slice passes the end of the axis.
    #[track_caller]
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Tensor<T> {
        or_panic(self.try_narrow(axis, start, len))
    }

    /// Splits the tensor along `axis` into chunks of `ceil(len / n)` elements
    /// (the last one smaller), as PyTorch's `chunk`: there may be fewer than `n`
    /// chunks (6 elements in 4 chunks gives 3 chunks of 2). An empty axis gives
    /// `n` empty chunks. Each chunk is a view ([`narrow`](Tensor::narrow)), so
    /// gradients flow back to the slices they came from.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::arange(5);
    /// let parts: Vec<Vec<f32>> = x.chunk(3, 0).iter().map(|c| c.to_vec()).collect();
    /// assert_eq!(parts, vec![vec![0., 1.], vec![2., 3.], vec![4.]]);
    /// assert_eq!(ferrograd::Tensor::<f32>::zeros(&[6]).chunk(4, 0).len(), 3);
    /// ```
    ///
    /// # Panics
    /// Panics when `n` is 0 or `axis` is out of range, naming the op, the value
    /// and the shape.
    #[track_caller]
    pub fn chunk(&self, n: usize, axis: isize) -> Vec<Tensor<T>> {
        or_panic(self.try_chunk(n, axis))
    }

    /// Splits the tensor along `axis` into consecutive pieces of the given
    /// `sizes`, which must add up to the axis' length (as PyTorch's `split`
    /// with a list of sizes). Each piece is a view ([`narrow`](Tensor::narrow)).
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::arange(6).reshape(&[2, 3]);
    /// let parts = x.split(&[1, 2], 1);
    /// assert_eq!(parts[0].to_vec(), vec![0., 3.]);
    /// assert_eq!(parts[1].shape(), &[2, 2]);
    /// assert_eq!(parts[1].to_vec(), vec![1., 2., 4., 5.]);
    /// ```
    ///
    /// # Panics
    /// Panics when `axis` is out of range or the sizes do not add up to the
    /// axis' length, naming the sizes and the shape.
    #[track_caller]
    pub fn split(&self, sizes: &[usize], axis: isize) -> Vec<Tensor<T>> {
        or_panic(self.try_split(sizes, axis))
    }

    /// The slice at `index` along `axis`, with that axis removed (a view; a
    /// negative `axis` counts from the end), as PyTorch's `select`.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::arange(6).reshape(&[2, 3]);
    /// assert_eq!(x.select(0, 1).to_vec(), vec![3., 4., 5.]);
    /// assert_eq!(x.select(-1, 2).to_vec(), vec![2., 5.]);
    /// assert_eq!(x.select(1, 0).shape(), &[2]);
    /// ```
    ///
    /// # Panics
    /// Panics when `axis` is out of range or `index` is not below the axis'
    /// size, naming the op, the value and the shape.
    #[track_caller]
    pub fn select(&self, axis: isize, index: usize) -> Tensor<T> {
        or_panic(self.try_select(axis, index))
    }

    /// A row-major copy when the tensor is strided; itself otherwise.
    pub fn contiguous(&self) -> Tensor<T> {
        mono!(
            |this: &Tensor<T>| -> Tensor<T> {
                if this.is_contiguous() {
                    return this.clone();
                }
                this.copy_recorded()
            },
            (self)
        )
    }

    /// A fresh contiguous copy that owns its buffer, recorded (as `contiguous`)
    /// when recording is on and this tensor needs a gradient.
    pub(crate) fn copy_recorded(&self) -> Tensor<T> {
        let seen = Seen::note(&[self]);
        Tensor::from_op_data(seen, self.to_vec(), self.shape(), Contiguous, &[self])
    }

    /// A fresh contiguous copy that owns its buffer and records nothing.
    pub(crate) fn copy(&self) -> Tensor<T> {
        Tensor::from_parts(
            Storage::new(self.to_vec()),
            Layout::contiguous(self.shape()),
            false,
        )
    }
}

/// Fallible forms: each `try_x` is `x` returning [`Result`] instead of
/// panicking (the error carries the message the panic would print).
impl<T: Element> Tensor<T> {
    /// Like [`reshape`](Tensor::reshape), returning [`Error::ShapeMismatch`] instead of panicking.
    pub fn try_reshape(&self, shape: &[usize]) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, shape: &[usize]| -> Result<Tensor<T>> {
                if checked_numel("reshape", shape)? != this.numel() {
                    return Err(Error::shape("reshape", this.shape(), shape));
                }
                if shape == this.shape() {
                    return Ok(this.clone());
                }
                Ok(match this.layout().reshape(shape) {
                    Some(layout) => this.view_op(layout, Reshape),
                    None => {
                        let seen = Seen::note(&[this]);
                        let data = this.to_vec();
                        Tensor::from_op(
                            seen,
                            Storage::new(data),
                            Layout::contiguous(shape),
                            Reshape,
                            &[this],
                        )
                    }
                })
            },
            (self, shape)
        )
    }

    /// Like [`squeeze`](Tensor::squeeze), returning an error instead of panicking.
    pub fn try_squeeze(&self, axis: isize) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, axis: isize| -> Result<Tensor<T>> {
                let a = normalize_axis("squeeze", axis, this.shape())?;
                if this.shape()[a] != 1 {
                    return Ok(this.clone());
                }
                Ok(this.view_op(this.layout().remove_axis(a), Reshape))
            },
            (self, axis)
        )
    }

    /// Like [`unsqueeze`](Tensor::unsqueeze), returning an error instead of panicking.
    pub fn try_unsqueeze(&self, axis: isize) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, axis: isize| -> Result<Tensor<T>> {
                let a = normalize_new_axis("unsqueeze", axis, this.shape())?;
                Ok(this.view_op(this.layout().unsqueeze(a), Reshape))
            },
            (self, axis)
        )
    }

    /// Like [`permute`](Tensor::permute), returning an error instead of panicking.
    pub fn try_permute(&self, perm: &[usize]) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, perm: &[usize]| -> Result<Tensor<T>> {
                let n = this.ndim();
                let mut seen = vec![false; n];
                let ok = perm.len() == n
                    && perm
                        .iter()
                        .all(|&p| p < n && !std::mem::replace(&mut seen[p], true));
                if !ok {
                    return Err(Error::invalid(
                        "permute",
                        format!(
                            "{perm:?} is not a permutation of the axes of shape {:?}",
                            this.shape()
                        ),
                    ));
                }
                if perm.iter().enumerate().all(|(i, &p)| i == p) {
                    return Ok(this.clone());
                }
                Ok(this.view_op(this.layout().permute(perm), Permute(perm.into())))
            },
            (self, perm)
        )
    }

    /// Like [`transpose`](Tensor::transpose), returning an error instead of panicking.
    pub fn try_transpose(&self, a: isize, b: isize) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, a: isize, b: isize| -> Result<Tensor<T>> {
                let n = this.ndim();
                let (a, b) = (
                    normalize_axis("transpose", a, this.shape())?,
                    normalize_axis("transpose", b, this.shape())?,
                );
                let mut perm: Vec<usize> = (0..n).collect();
                perm.swap(a, b);
                this.try_permute(&perm)
            },
            (self, a, b)
        )
    }

    /// Like [`t`](Tensor::t), returning an error instead of panicking.
    pub fn try_t(&self) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>| -> Result<Tensor<T>> {
                match this.ndim() {
                    0 | 1 => Ok(this.clone()),
                    2 => this.try_permute(&[1, 0]),
                    _ => Err(Error::invalid(
                        "t",
                        format!(
                            "expects at most 2 dimensions, got shape {:?}; use transpose(a, b)",
                            this.shape()
                        ),
                    )),
                }
            },
            (self)
        )
    }

    /// Like [`broadcast_to`](Tensor::broadcast_to), returning an error instead of panicking.
    pub fn try_broadcast_to(&self, shape: &[usize]) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, shape: &[usize]| -> Result<Tensor<T>> {
                checked_numel("broadcast_to", shape)?;
                if shape.len() < this.ndim()
                    || broadcast_shapes(this.shape(), shape).as_deref() != Some(shape)
                {
                    return Err(Error::shape("broadcast_to", this.shape(), shape));
                }
                if shape == this.shape() {
                    return Ok(this.clone());
                }
                Ok(this.view_op(this.layout().broadcast_to(shape), BroadcastTo))
            },
            (self, shape)
        )
    }

    /// Like [`narrow`](Tensor::narrow), returning an error instead of panicking.
    pub fn try_narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, axis: isize, start: usize, len: usize| -> Result<Tensor<T>> {
                let a = normalize_axis("narrow", axis, this.shape())?;
                let size = this.shape()[a];
                if start.checked_add(len).is_none_or(|end| end > size) {
                    return Err(Error::invalid(
                        "narrow",
                        format!(
                    "start {start} + length {len} exceeds size {size} of axis {axis} (shape {:?})",
                    this.shape()
                ),
                    ));
                }
                if len == size {
                    return Ok(this.clone());
                }
                Ok(this.view_op(
                    this.layout().narrow(a, start, len),
                    Narrow { axis: a, start },
                ))
            },
            (self, axis, start, len)
        )
    }

    /// Like [`chunk`](Tensor::chunk), returning an error instead of panicking.
    pub fn try_chunk(&self, n: usize, axis: isize) -> Result<Vec<Tensor<T>>> {
        mono!(
            |this: &Tensor<T>, n: usize, axis: isize| -> Result<Vec<Tensor<T>>> {
                let a = normalize_axis("chunk", axis, this.shape())?;
                if n == 0 {
                    return Err(Error::invalid(
                        "chunk",
                        format!(
                            "the number of chunks must be at least 1, got 0 (shape {:?})",
                            this.shape()
                        ),
                    ));
                }
                let len = this.shape()[a];
                if len == 0 {
                    return Ok(vec![this.clone(); n]);
                }
                let size = len.div_ceil(n);
                (0..len)
                    .step_by(size)
                    .map(|start| this.try_narrow(a as isize, start, size.min(len - start)))
                    .collect()
            },
            (self, n, axis)
        )
    }

    /// Like [`split`](Tensor::split), returning an error instead of panicking.
    pub fn try_split(&self, sizes: &[usize], axis: isize) -> Result<Vec<Tensor<T>>> {
        mono!(
            |this: &Tensor<T>, sizes: &[usize], axis: isize| -> Result<Vec<Tensor<T>>> {
                let a = normalize_axis("split", axis, this.shape())?;
                let len = this.shape()[a];
                let total = sizes.iter().try_fold(0usize, |s, &n| s.checked_add(n));
                if total != Some(len) {
                    return Err(Error::invalid(
                        "split",
                        format!(
                    "sizes {sizes:?} do not add up to {len}, the size of axis {axis} of shape {:?}",
                    this.shape()
                ),
                    ));
                }
                let mut start = 0;
                sizes
                    .iter()
                    .map(|&n| {
                        start += n;
                        this.try_narrow(a as isize, start - n, n)
                    })
                    .collect()
            },
            (self, sizes, axis)
        )
    }

    /// Like [`select`](Tensor::select), returning [`Error::IndexOutOfRange`] or
    /// [`Error::InvalidAxis`] instead of panicking.
    pub fn try_select(&self, axis: isize, index: usize) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, axis: isize, index: usize| -> Result<Tensor<T>> {
                let a = normalize_axis("select", axis, this.shape())?;
                let size = this.shape()[a];
                if index >= size {
                    return Err(Error::IndexOutOfRange {
                        op: "select",
                        index,
                        size,
                        shape: this.shape().to_vec(),
                    });
                }
                this.try_narrow(a as isize, index, 1)?
                    .try_squeeze(a as isize)
            },
            (self, axis, index)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::sum_to_shape;
    use crate::ops::test_util::{assert_close, check, rand_leaf};
    use crate::Tensor;

    #[test]
    fn views_share_the_buffer() {
        let x = Tensor::<f64>::arange(6).reshape(&[2, 3]);
        assert!(x.t().shares_storage(&x));
        assert!(x.narrow(1, 1, 2).shares_storage(&x));
        assert!(x.unsqueeze(0).shares_storage(&x));
        assert!(x.permute(&[1, 0]).shares_storage(&x));
        assert!(x.reshape(&[3, 2]).shares_storage(&x));
        assert!(x.sum_axis(0, true).broadcast_to(&[4, 3]).shape() == [4, 3]);
        assert!(
            !x.t().reshape(&[6]).shares_storage(&x),
            "a reshape that reorders elements copies"
        );
        // a strided reshape that keeps the order is a view (heads of a narrow)
        let qkv = Tensor::<f64>::arange(24).reshape(&[2, 12]);
        let heads = qkv.narrow(1, 4, 4).reshape(&[2, 2, 2]);
        assert!(heads.shares_storage(&qkv));
        assert_close(&heads, &[4., 5., 6., 7., 16., 17., 18., 19.], 0.0);
        assert_close(
            &heads.transpose(0, 1).reshape(&[2, 4]),
            &[4., 5., 16., 17., 6., 7., 18., 19.],
            0.0,
        );
        assert_close(&x.t(), &[0., 3., 1., 4., 2., 5.], 0.0);
        assert_close(&x.permute(&[1, 0]).narrow(0, 1, 2), &[1., 4., 2., 5.], 0.0);
        assert_eq!(x.unsqueeze(1).squeeze(1).shape(), &[2, 3]);
        assert_eq!(
            x.squeeze(0).shape(),
            &[2, 3],
            "squeezing a non-1 axis is a no-op"
        );
        assert_eq!(x.flatten().shape(), &[6]);
        assert_eq!(x.transpose(0, -1).shape(), &[3, 2]);
    }

    #[test]
    fn bad_shapes_and_axes() {
        let x = Tensor::<f64>::zeros(&[2, 3]);
        assert_eq!(
            x.try_reshape(&[4]).unwrap_err().to_string(),
            "reshape: incompatible shapes [2, 3] and [4]"
        );
        assert_eq!(
            x.try_broadcast_to(&[3, 3]).unwrap_err().to_string(),
            "broadcast_to: incompatible shapes [2, 3] and [3, 3]"
        );
        assert!(x.try_unsqueeze(3).is_err());
        assert!(x.try_unsqueeze(-4).is_err());
        assert!(x.try_narrow(1, 2, 2).is_err());
        assert!(x.try_permute(&[0, 0]).is_err());
        assert!(Tensor::<f64>::zeros(&[2, 2, 2]).try_t().is_err());
        assert_eq!(
            x.try_transpose(0, 2).unwrap_err().to_string(),
            "transpose: axis 2 is out of range for shape [2, 3] (valid axes are -2..=1)"
        );
    }

    #[test]
    fn gradcheck_movement() {
        let x = rand_leaf(&[2, 3, 4], 50);
        let w = rand_leaf(&[24], 51).detach();
        // weight the flattened result so each element's gradient is distinct
        let wsum = |t: Tensor<f64>| t.reshape(&[24]).mul(&w);
        check(|x| wsum(x[0].permute(&[2, 0, 1])), &[x.clone()]);
        check(|x| wsum(x[0].transpose(0, 2)), &[x.clone()]);
        check(|x| wsum(x[0].reshape(&[4, 6])), &[x.clone()]);
        check(|x| wsum(x[0].unsqueeze(1).squeeze(1)), &[x.clone()]);
        check(|x| wsum(x[0].contiguous()), &[x.clone()]);
        check(|x| x[0].narrow(2, 1, 2).square(), &[x.clone()]);
        check(
            |x| x[0].narrow(-1, 0, 3).transpose(-1, -2).reshape(&[18]),
            &[x.clone()],
        );
        check(|x| x[0].flatten().mul(&w), &[x.clone()]);
        let b = rand_leaf(&[3, 1], 52);
        check(|x| x[0].broadcast_to(&[2, 3, 4]).mul(&x[0]), &[b.clone()]);
        check(
            |x| x[0].broadcast_to(&[2, 3, 4]).reshape(&[24]).mul(&w),
            &[b],
        );
        let s = rand_leaf(&[], 53);
        check(
            |x| x[0].unsqueeze(0).broadcast_to(&[3]).mul_scalar(2.0),
            &[s],
        );
        let m = rand_leaf(&[3, 2], 54);
        check(|x| x[0].t().reshape(&[6]).mul(&w.narrow(0, 0, 6)), &[m]);
    }

    #[test]
    fn chunk_split_select_as_torch() {
        let x = Tensor::<f64>::arange(10).reshape(&[5, 2]);
        let sizes = |v: Vec<Tensor<f64>>| v.iter().map(|t| t.shape()[0]).collect::<Vec<_>>();
        // torch.empty(n).chunk(k): ceil(n / k) per chunk, possibly fewer chunks
        assert_eq!(sizes(x.chunk(3, 0)), vec![2, 2, 1]);
        assert_eq!(sizes(Tensor::<f64>::zeros(&[6]).chunk(4, 0)), vec![2, 2, 2]);
        assert_eq!(sizes(Tensor::<f64>::zeros(&[2]).chunk(5, 0)), vec![1, 1]);
        assert_eq!(
            sizes(Tensor::<f64>::zeros(&[0, 3]).chunk(3, 0)),
            vec![0, 0, 0]
        );
        assert_eq!(sizes(x.chunk(1, 0)), vec![5]);
        let c = x.chunk(2, -1);
        assert_close(&c[1], &[1., 3., 5., 7., 9.], 0.0);
        assert!(c[1].shares_storage(&x), "a view");
        let s = x.split(&[1, 0, 4], 0);
        assert_eq!(sizes(s.clone()), vec![1, 0, 4]);
        assert_close(&s[2], &[2., 3., 4., 5., 6., 7., 8., 9.], 0.0);
        assert_close(&x.select(0, 4), &[8., 9.], 0.0);
        assert_close(&x.select(-1, 1), &[1., 3., 5., 7., 9.], 0.0);
        assert_eq!(x.select(1, 0).shape(), &[5]);
        assert_eq!(x.select(0, 0).select(0, 1).shape(), &[] as &[usize]);
        assert!(x.select(0, 2).shares_storage(&x));
    }

    #[test]
    fn chunk_split_select_errors() {
        let x = Tensor::<f64>::zeros(&[2, 3]);
        assert_eq!(
            x.try_chunk(0, 1).unwrap_err().to_string(),
            "chunk: the number of chunks must be at least 1, got 0 (shape [2, 3])"
        );
        assert_eq!(
            x.try_split(&[1, 1], -1).unwrap_err().to_string(),
            "split: sizes [1, 1] do not add up to 3, the size of axis -1 of shape [2, 3]"
        );
        assert!(x.try_split(&[usize::MAX, 4], 1).is_err());
        assert_eq!(
            x.try_select(1, 3).unwrap_err().to_string(),
            "select: index 3 is out of range for an axis of size 3 (shape [2, 3])"
        );
        assert!(x.try_select(2, 0).is_err());
    }

    #[test]
    fn gradcheck_chunk_split_select() {
        let x = rand_leaf(&[3, 5], 56);
        check(|x| x[0].chunk(2, 1)[1].square(), &[x.clone()]);
        check(
            |x| {
                let p = x[0].t().split(&[2, 3], 0);
                p[0].sum_axis(0, false).mul(&p[1].sum_axis(0, false))
            },
            &[x.clone()],
        );
        check(|x| x[0].select(-1, 3).square(), &[x.clone()]);
        check(|x| x[0].t().select(0, 4).mul_scalar(2.0), &[x]);
    }

    #[test]
    fn sum_to_shape_undoes_broadcast() {
        let g = Tensor::<f64>::ones(&[2, 3, 4]);
        assert_close(&sum_to_shape(&g, &[4]).unwrap(), &[6.; 4], 0.0);
        assert_close(&sum_to_shape(&g, &[3, 1]).unwrap(), &[8.; 3], 0.0);
        assert_close(&sum_to_shape(&g, &[]).unwrap(), &[24.], 0.0);
        assert!(sum_to_shape(&g, &[5]).is_err());
        let x = rand_leaf(&[3, 1], 55);
        check(
            |x| sum_to_shape(&x[0].broadcast_to(&[2, 3, 4]).square(), &[3, 1]).unwrap(),
            &[x],
        );
    }
}
