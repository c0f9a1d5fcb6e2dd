//! Selection and assembly: `index_select` (embedding lookups), `masked_fill`,
//! the triangular masks `tril` and `triu`, `cat` and `stack`.

use super::{zip_grad, Cheap, ReadMany};
use crate::autograd::{grads, BackwardCx, InputGrads, Op, Saves};
use crate::element::{mono, Element};
use crate::error::{or_panic, Error, Result};
use crate::kernels::gather;
use crate::shape::{broadcast_shapes, normalize_axis, normalize_new_axis, split_at_axis, Dims};
use crate::tensor::{Seen, Tensor};

// ----- index_select -----

struct IndexSelect {
    axis: usize,
    indices: Vec<usize>,
}

impl<T: Element> Op<T> for IndexSelect {
    fn name(&self) -> &'static str {
        "index_select"
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        let n = cx.input(0).shape()[self.axis];
        grads![Some(index_add(g, self.axis, &self.indices, n))]
    }
}

/// The backward of index_select: rows of `g` added at `indices` into zeros (a
/// repeated index accumulates).
struct IndexAdd {
    axis: usize,
    indices: Vec<usize>,
}

impl<T: Element> Op<T> for IndexAdd {
    fn name(&self) -> &'static str {
        "index_add"
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    fn backward(&self, _: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        grads![Some(g.index_select(self.axis as isize, &self.indices))]
    }
}

pub(super) fn index_add<T: Element>(
    g: &Tensor<T>,
    axis: usize,
    indices: &[usize],
    n: usize,
) -> Tensor<T> {
    let mut shape: Dims = g.shape().into();
    shape[axis] = n;
    let (outer, _, inner) = split_at_axis(&shape, axis);
    let seen = Seen::note(&[g]);
    let data = g.with_contiguous(|g| gather::index_add(g, outer, n, inner, indices));
    let op = IndexAdd {
        axis,
        indices: indices.to_vec(),
    };
    Tensor::from_op_data(seen, data, &shape, op, &[g])
}

// ----- masked_fill -----

struct MaskedFill;

impl<T: Element> Op<T> for MaskedFill {
    fn name(&self) -> &'static str {
        "masked_fill"
    }
    fn saves(&self) -> Saves {
        Saves::Input(1)
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let mask = cx.input(1);
        if cx.create_graph {
            return grads![Some(g.masked_fill(mask, T::zero())), None];
        }
        let gx = zip_grad(
            g,
            mask,
            Cheap,
            |g, m| {
                if m != T::zero() {
                    T::zero()
                } else {
                    g
                }
            },
        );
        grads![Some(gx), None]
    }
}

// ----- tril / triu -----

/// Zeroes the elements of each matrix (last two axes) outside a triangle:
/// below diagonal `k` for `triu` (`upper`), above it for `tril`.
struct Triangle {
    upper: bool,
    k: isize,
}

impl<T: Element> Op<T> for Triangle {
    fn name(&self) -> &'static str {
        if self.upper {
            "triu"
        } else {
            "tril"
        }
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    /// The same mask on the gradient (the op is linear, so any order).
    fn backward(&self, _: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        grads![Some(
            triangle(&g, self.upper, self.k).expect("the forward pass checked the rank")
        )]
    }
}

fn triangle<T: Element>(x: &Tensor<T>, upper: bool, k: isize) -> Result<Tensor<T>> {
    let name = if upper { "triu" } else { "tril" };
    let shape = x.shape();
    let n = shape.len();
    if n < 2 {
        return Err(Error::invalid(
            name,
            format!("expects at least 2 dimensions, got shape {shape:?}"),
        ));
    }
    let (rows, cols) = (shape[n - 2], shape[n - 1]);
    let seen = Seen::note(&[x]);
    let mut data = x.to_vec();
    if rows * cols > 0 {
        for matrix in data.chunks_mut(rows * cols) {
            for (i, row) in matrix.chunks_mut(cols).enumerate() {
                // keep column j when j − i ≥ k (triu) or j − i ≤ k (tril)
                for (j, v) in row.iter_mut().enumerate() {
                    let d = j as isize - i as isize;
                    if (upper && d < k) || (!upper && d > k) {
                        *v = T::zero();
                    }
                }
            }
        }
    }
    Ok(Tensor::from_op_data(
        seen,
        data,
        shape,
        Triangle { upper, k },
        &[x],
    ))
}

// ----- cat / stack -----

struct Cat {
    axis: usize,
    sizes: Vec<usize>,
}

impl<T: Element> Op<T> for Cat {
    fn name(&self) -> &'static str {
        "cat"
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        let mut start = 0;
        self.sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let s = start;
                start += len;
                cx.needs(i).then(|| g.narrow(self.axis as isize, s, len))
            })
            .collect()
    }
}

impl<T: Element> Tensor<T> {
    /// The slices at `indices` along `axis`, in that order (repeats allowed): an
    /// embedding lookup is `table.index_select(0, &ids)`. Gradients of repeated
    /// indices accumulate.
    ///
    /// ```
    /// let table = ferrograd::Tensor::<f32>::arange(6).reshape(&[3, 2]);
    /// assert_eq!(table.index_select(0, &[2, 0, 2]).to_vec(), vec![4., 5., 0., 1., 4., 5.]);
    /// ```
    ///
    /// # Panics
    /// Panics when `axis` is out of range or an index is not below the axis size.
    #[track_caller]
    pub fn index_select(&self, axis: isize, indices: &[usize]) -> Tensor<T> {
        or_panic(self.try_index_select(axis, indices))
    }

    /// `value` where `mask` is nonzero, the input elsewhere. `mask` broadcasts to
    /// the input's shape and is not differentiated; `value` may be `-inf` (attention
    /// masks, followed by [`softmax`](Tensor::softmax)). Filled slots get gradient 0.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let x = Tensor::<f32>::ones(&[2, 2]);
    /// let upper = Tensor::<f32>::from_vec(vec![0., 1., 0., 0.], &[2, 2])?;
    /// let y = x.masked_fill(&upper, f32::NEG_INFINITY);
    /// assert_eq!(y.to_vec(), vec![1., f32::NEG_INFINITY, 1., 1.]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// Panics when the mask does not broadcast to the input's shape, naming both.
    #[track_caller]
    pub fn masked_fill(&self, mask: &Tensor<T>, value: T) -> Tensor<T> {
        or_panic(self.try_masked_fill(mask, value))
    }

    /// The lower triangle of each matrix (the last two axes): element `[i, j]`
    /// is kept where `j − i ≤ k` and zeroed elsewhere, as PyTorch's `tril`.
    /// `k = 0` keeps the main diagonal, `k < 0` drops diagonals below it, `k > 0`
    /// keeps diagonals above it; a `k` past the matrix keeps everything or
    /// nothing. The gradient is masked the same way.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::ones(&[3, 3]);
    /// assert_eq!(x.tril(0).to_vec(), vec![1., 0., 0., 1., 1., 0., 1., 1., 1.]);
    /// assert_eq!(x.tril(-1).to_vec(), vec![0., 0., 0., 1., 0., 0., 1., 1., 0.]);
    /// ```
    ///
    /// # Panics
    /// Panics when the tensor has fewer than 2 dimensions, naming its shape.
    #[track_caller]
    pub fn tril(&self, k: isize) -> Tensor<T> {
        or_panic(self.try_tril(k))
    }

    /// The upper triangle of each matrix (the last two axes): element `[i, j]`
    /// is kept where `j − i ≥ k` and zeroed elsewhere, as PyTorch's `triu`
    /// (a causal attention mask is `ones.triu(1)`: 1 above the diagonal).
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::ones(&[2, 3]);
    /// assert_eq!(x.triu(1).to_vec(), vec![0., 1., 1., 0., 0., 1.]);
    /// ```
    ///
    /// # Panics
    /// Panics when the tensor has fewer than 2 dimensions, naming its shape.
    #[track_caller]
    pub fn triu(&self, k: isize) -> Tensor<T> {
        or_panic(self.try_triu(k))
    }

    /// Joins tensors along an existing `axis`; all other dimensions must agree.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let a = Tensor::<f32>::zeros(&[2, 1]);
    /// let b = Tensor::<f32>::ones(&[2, 2]);
    /// let c = Tensor::cat(&[&a, &b], 1);
    /// assert_eq!(c.shape(), &[2, 3]);
    /// assert_eq!(c.to_vec(), vec![0., 1., 1., 0., 1., 1.]);
    /// ```
    ///
    /// # Panics
    /// Panics when the list is empty, `axis` is out of range or the shapes differ
    /// off the axis, naming the shapes.
    #[track_caller]
    pub fn cat(tensors: &[&Tensor<T>], axis: isize) -> Tensor<T> {
        or_panic(Self::try_cat(tensors, axis))
    }

    /// Joins equally shaped tensors along a new `axis` (negative counts on the
    /// output's rank).
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let a = Tensor::<f32>::zeros(&[3]);
    /// let b = Tensor::<f32>::ones(&[3]);
    /// assert_eq!(Tensor::stack(&[&a, &b], 0).shape(), &[2, 3]);
    /// assert_eq!(Tensor::stack(&[&a, &b], -1).shape(), &[3, 2]);
    /// ```
    ///
    /// # Panics
    /// Panics when the list is empty, the shapes differ or `axis` is out of range.
    #[track_caller]
    pub fn stack(tensors: &[&Tensor<T>], axis: isize) -> Tensor<T> {
        or_panic(Self::try_stack(tensors, axis))
    }
}

/// Fallible forms: each `try_x` is `x` returning [`Result`] instead of
/// panicking (the error carries the message the panic would print).
impl<T: Element> Tensor<T> {
    /// Like [`index_select`](Tensor::index_select), returning
    /// [`Error::IndexOutOfRange`] or [`Error::InvalidAxis`] instead of panicking.
    pub fn try_index_select(&self, axis: isize, indices: &[usize]) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, axis: isize, indices: &[usize]| -> Result<Tensor<T>> {
                let a = normalize_axis("index_select", axis, this.shape())?;
                let (outer, n, inner) = split_at_axis(this.shape(), a);
                if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
                    return Err(Error::IndexOutOfRange {
                        op: "index_select",
                        index: bad,
                        size: n,
                        shape: this.shape().to_vec(),
                    });
                }
                let seen = Seen::note(&[this]);
                let data =
                    this.with_contiguous(|x| gather::index_select(x, outer, n, inner, indices));
                let mut shape: Dims = this.shape().into();
                shape[a] = indices.len();
                let op = IndexSelect {
                    axis: a,
                    indices: indices.to_vec(),
                };
                Ok(Tensor::from_op_data(seen, data, &shape, op, &[this]))
            },
            (self, axis, indices)
        )
    }

    /// Like [`masked_fill`](Tensor::masked_fill), returning an error instead of panicking.
    pub fn try_masked_fill(&self, mask: &Tensor<T>, value: T) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, mask: &Tensor<T>, value: T| -> Result<Tensor<T>> {
                if broadcast_shapes(mask.shape(), this.shape()).as_deref() != Some(this.shape()) {
                    return Err(Error::shape("masked_fill", this.shape(), mask.shape()));
                }
                let (lx, lm) = (
                    this.layout().clone(),
                    mask.layout().broadcast_to(this.shape()),
                );
                let mask = mask.detach();
                let seen = Seen::note(&[this, &mask]);
                let data = {
                    let r = ReadMany::new(&[this, &mask]);
                    crate::kernels::elementwise::zip(r.get(0), &lx, r.get(1), &lm, Cheap, |x, m| {
                        if m != T::zero() {
                            value
                        } else {
                            x
                        }
                    })
                };
                Ok(Tensor::from_op_data(
                    seen,
                    data,
                    this.shape(),
                    MaskedFill,
                    &[this, &mask],
                ))
            },
            (self, mask, value)
        )
    }

    /// Like [`tril`](Tensor::tril), returning an error instead of panicking.
    pub fn try_tril(&self, k: isize) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, k: isize| -> Result<Tensor<T>> { triangle(this, false, k) },
            (self, k)
        )
    }

    /// Like [`triu`](Tensor::triu), returning an error instead of panicking.
    pub fn try_triu(&self, k: isize) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, k: isize| -> Result<Tensor<T>> { triangle(this, true, k) },
            (self, k)
        )
    }

    /// Like [`cat`](Tensor::cat), returning an error instead of panicking.
    pub fn try_cat(tensors: &[&Tensor<T>], axis: isize) -> Result<Tensor<T>> {
        mono!(
            |tensors: &[&Tensor<T>], axis: isize| -> Result<Tensor<T>> {
                let Some(first) = tensors.first() else {
                    return Err(Error::invalid("cat", "expects at least one tensor"));
                };
                let a = normalize_axis("cat", axis, first.shape())?;
                for t in &tensors[1..] {
                    let same = t.ndim() == first.ndim()
                        && t.shape()
                            .iter()
                            .zip(first.shape())
                            .enumerate()
                            .all(|(i, (x, y))| i == a || x == y);
                    if !same {
                        return Err(Error::shape("cat", first.shape(), t.shape()));
                    }
                }
                let (outer, _, inner) = split_at_axis(first.shape(), a);
                let sizes: Vec<usize> = tensors.iter().map(|t| t.shape()[a]).collect();
                let seen = Seen::note(tensors);
                let parts: Vec<Vec<T>> = tensors.iter().map(|t| t.to_vec()).collect();
                let views: Vec<(&[T], usize)> = parts
                    .iter()
                    .map(|p| p.as_slice())
                    .zip(sizes.iter().copied())
                    .collect();
                let data = gather::cat(&views, outer, inner);
                let mut shape: Dims = first.shape().into();
                shape[a] = sizes.iter().sum();
                Ok(Tensor::from_op_data(
                    seen,
                    data,
                    &shape,
                    Cat { axis: a, sizes },
                    tensors,
                ))
            },
            (tensors, axis)
        )
    }

    /// Like [`stack`](Tensor::stack), returning an error instead of panicking.
    pub fn try_stack(tensors: &[&Tensor<T>], axis: isize) -> Result<Tensor<T>> {
        mono!(
            |tensors: &[&Tensor<T>], axis: isize| -> Result<Tensor<T>> {
                let Some(first) = tensors.first() else {
                    return Err(Error::invalid("stack", "expects at least one tensor"));
                };
                if let Some(t) = tensors.iter().find(|t| t.shape() != first.shape()) {
                    return Err(Error::shape("stack", first.shape(), t.shape()));
                }
                let a = normalize_new_axis("stack", axis, first.shape())?;
                let expanded: Vec<Tensor<T>> =
                    tensors.iter().map(|t| t.unsqueeze(a as isize)).collect();
                let refs: Vec<&Tensor<T>> = expanded.iter().collect();
                Tensor::try_cat(&refs, a as isize)
            },
            (tensors, axis)
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_util::{assert_close, check, rand_leaf};
    use crate::{Error, Tensor};

    #[test]
    fn forward_values() {
        let x = Tensor::<f64>::arange(6).reshape(&[2, 3]);
        assert_close(
            &x.index_select(1, &[2, 2, 0]),
            &[2., 2., 0., 5., 5., 3.],
            0.0,
        );
        assert_close(&x.index_select(0, &[]), &[], 0.0);
        assert_eq!(x.index_select(0, &[]).shape(), &[0, 3]);
        let mask = Tensor::<f64>::from_vec(vec![1., 0., 0.], &[3]).unwrap();
        assert_close(
            &x.masked_fill(&mask, -1.0),
            &[-1., 1., 2., -1., 4., 5.],
            0.0,
        );
        let c = Tensor::cat(&[&x, &x.narrow(0, 0, 1)], 0);
        assert_close(&c, &[0., 1., 2., 3., 4., 5., 0., 1., 2.], 0.0);
        let s = Tensor::stack(&[&x, &x], 1);
        assert_eq!(s.shape(), &[2, 2, 3]);
        assert_close(&s, &[0., 1., 2., 0., 1., 2., 3., 4., 5., 3., 4., 5.], 0.0);
    }

    #[test]
    fn errors() {
        let x = Tensor::<f64>::zeros(&[2, 3]);
        let e = x.try_index_select(0, &[0, 2]).unwrap_err();
        assert!(matches!(
            e,
            Error::IndexOutOfRange {
                index: 2,
                size: 2,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "index_select: index 2 is out of range for an axis of size 2 (shape [2, 3])"
        );
        assert_eq!(
            Tensor::try_cat(&[&x, &Tensor::zeros(&[3, 3])], 1)
                .unwrap_err()
                .to_string(),
            "cat: incompatible shapes [2, 3] and [3, 3]"
        );
        assert!(Tensor::<f64>::try_cat(&[], 0).is_err());
        assert!(Tensor::try_stack(&[&x, &Tensor::zeros(&[3, 2])], 0).is_err());
        assert!(x.try_masked_fill(&Tensor::zeros(&[2]), 0.0).is_err());
    }

    #[test]
    fn tril_and_triu_as_torch() {
        // torch.arange(12.).reshape(3, 4).tril(k) / .triu(k)
        let x = Tensor::<f64>::arange(12).reshape(&[3, 4]);
        let z = [0.0; 12];
        let all: Vec<f64> = (0..12).map(f64::from).collect();
        assert_close(
            &x.tril(0),
            &[0., 0., 0., 0., 4., 5., 0., 0., 8., 9., 10., 0.],
            0.0,
        );
        assert_close(
            &x.tril(-1),
            &[0., 0., 0., 0., 4., 0., 0., 0., 8., 9., 0., 0.],
            0.0,
        );
        assert_close(
            &x.tril(1),
            &[0., 1., 0., 0., 4., 5., 6., 0., 8., 9., 10., 11.],
            0.0,
        );
        assert_close(
            &x.triu(0),
            &[0., 1., 2., 3., 0., 5., 6., 7., 0., 0., 10., 11.],
            0.0,
        );
        assert_close(
            &x.triu(-1),
            &[0., 1., 2., 3., 4., 5., 6., 7., 0., 9., 10., 11.],
            0.0,
        );
        assert_close(
            &x.triu(3),
            &[0., 0., 0., 3., 0., 0., 0., 0., 0., 0., 0., 0.],
            0.0,
        );
        assert_close(&x.tril(-5), &z, 0.0);
        assert_close(&x.tril(isize::MAX), &all, 0.0);
        assert_close(&x.triu(isize::MIN), &all, 0.0);
        assert_close(&x.triu(9), &z, 0.0);
        // batched, and on a transposed view
        let b = Tensor::<f64>::ones(&[2, 2, 2]).triu(1);
        assert_close(&b, &[0., 1., 0., 0., 0., 1., 0., 0.], 0.0);
        assert_close(
            &x.t().tril(0),
            &[0., 0., 0., 1., 5., 0., 2., 6., 10., 3., 7., 11.],
            0.0,
        );
        assert_eq!(
            Tensor::<f64>::zeros(&[3])
                .try_tril(0)
                .unwrap_err()
                .to_string(),
            "tril: expects at least 2 dimensions, got shape [3]"
        );
    }

    #[test]
    fn gradcheck_triangles() {
        let x = rand_leaf(&[2, 3, 4], 76);
        for k in [-1isize, 0, 2] {
            check(|x| x[0].tril(k).square(), &[x.clone()]);
            check(|x| x[0].transpose(-1, -2).triu(k).square(), &[x.clone()]);
        }
    }

    #[test]
    fn repeated_indices_accumulate() {
        let table = rand_leaf(&[4, 2], 70);
        let g = table
            .index_select(0, &[1, 3, 1, 1])
            .sum()
            .backward()
            .unwrap();
        assert_close(
            g.get(&table).unwrap(),
            &[0., 0., 3., 3., 0., 0., 1., 1.],
            0.0,
        );
    }

    #[test]
    fn gradcheck_index_ops() {
        let x = rand_leaf(&[3, 4], 71);
        let w = rand_leaf(&[3, 5], 72).detach();
        check(
            |x| x[0].index_select(1, &[3, 0, 3, 1, 1]).mul(&w),
            &[x.clone()],
        );
        check(|x| x[0].t().index_select(0, &[2, 2]), &[x.clone()]);
        let mask = Tensor::<f64>::from_vec(vec![0., 1., 0., 1.], &[4]).unwrap();
        check(|x| x[0].masked_fill(&mask, 3.0).square(), &[x.clone()]);
        check(
            |x| x[0].t().masked_fill(&mask.reshape(&[4, 1]), -1.0).square(),
            &[x.clone()],
        );
        let y = rand_leaf(&[3, 2], 73);
        check(
            |x| Tensor::cat(&[&x[0], &x[1], &x[0].narrow(1, 0, 1)], 1).square(),
            &[x.clone(), y.clone()],
        );
        check(
            |x| Tensor::cat(&[&x[0].t(), &x[1].t()], 0).square(),
            &[x.clone(), y],
        );
        let z = rand_leaf(&[3, 4], 74);
        for axis in [0isize, 1, 2, -1] {
            check(
                |x| Tensor::stack(&[&x[0], &x[1]], axis).square(),
                &[x.clone(), z.clone()],
            );
        }
        let s = rand_leaf(&[], 75);
        check(|x| Tensor::stack(&[&x[0], &x[0]], 0).mul_scalar(2.0), &[s]);
    }
}
