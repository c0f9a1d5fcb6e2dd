//! Reductions: sum, mean (whole tensor or along an axis), max/min along an axis,
//! logsumexp, variance, and the non-differentiable argmax/argmin.

use super::{zip3_plain, Costly};
use crate::autograd::{grads, BackwardCx, InputGrads, Op, Saves};
use crate::element::{c, mono, Element};
use crate::error::{or_panic, Result};
use crate::kernels::reduce as k;
use crate::shape::{normalize_axis, reduced_shape, split_at_axis};
use crate::tensor::{Seen, Tensor};

/// `g` (reduced along `axis`, with or without the kept dim) broadcast back to `shape`.
fn expand_back<T: Element>(
    g: &Tensor<T>,
    axis: Option<usize>,
    keepdim: bool,
    shape: &[usize],
) -> Tensor<T> {
    let g = match axis {
        Some(a) if !keepdim => g.unsqueeze(a as isize),
        _ => g.clone(),
    };
    g.broadcast_to(shape)
}

// ----- sum / mean over everything -----

struct SumAll {
    mean: bool,
}

impl<T: Element> Op<T> for SumAll {
    fn name(&self) -> &'static str {
        if self.mean {
            "mean"
        } else {
            "sum"
        }
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        let x = cx.input(0);
        let g = if self.mean {
            g.div_scalar(c(x.numel() as f64))
        } else {
            g.clone()
        };
        grads![Some(g.broadcast_to(x.shape()))]
    }
}

// ----- sum / mean along an axis -----

struct SumAxis {
    axis: usize,
    keepdim: bool,
    mean: bool,
}

impl<T: Element> Op<T> for SumAxis {
    fn name(&self) -> &'static str {
        if self.mean {
            "mean_axis"
        } else {
            "sum_axis"
        }
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        let x = cx.input(0);
        let g = if self.mean {
            g.div_scalar(c(x.shape()[self.axis] as f64))
        } else {
            g.clone()
        };
        grads![Some(expand_back(
            &g,
            Some(self.axis),
            self.keepdim,
            x.shape()
        ))]
    }
}

impl<T: Element> Tensor<T> {
    /// The sum of all elements, as a 0-d tensor.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::from_vec(vec![1., 2., 3., 4.], &[2, 2])?;
    /// assert_eq!(x.sum().item(), 10.0);
    /// assert_eq!(x.sum().shape(), &[] as &[usize]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn sum(&self) -> Tensor<T> {
        mono!(
            |this: &Tensor<T>| -> Tensor<T> {
                let seen = Seen::note(&[this]);
                let s = this.with_contiguous(k::sum_slice);
                Tensor::from_op_data(seen, vec![s], &[], SumAll { mean: false }, &[this])
            },
            (self)
        )
    }

    /// The mean of all elements, as a 0-d tensor (NaN for an empty tensor).
    pub fn mean(&self) -> Tensor<T> {
        mono!(
            |this: &Tensor<T>| -> Tensor<T> {
                let n = this.numel();
                let seen = Seen::note(&[this]);
                let s = this.with_contiguous(k::sum_slice) / c(n as f64);
                Tensor::from_op_data(seen, vec![s], &[], SumAll { mean: true }, &[this])
            },
            (self)
        )
    }

    fn reduce_axis(
        &self,
        op: &'static str,
        axis: isize,
        keepdim: bool,
        mean: bool,
    ) -> Result<Tensor<T>> {
        let a = normalize_axis(op, axis, self.shape())?;
        let (outer, n, inner) = split_at_axis(self.shape(), a);
        let seen = Seen::note(&[self]);
        let mut data = self.with_contiguous(|x| k::sum_axis(x, outer, n, inner));
        if mean {
            let inv = c::<T>(n as f64);
            data.iter_mut().for_each(|v| *v /= inv);
        }
        let shape = reduced_shape(self.shape(), a, keepdim);
        Ok(Tensor::from_op_data(
            seen,
            data,
            &shape,
            SumAxis {
                axis: a,
                keepdim,
                mean,
            },
            &[self],
        ))
    }

    /// Sums along `axis` (negative counts from the end); `keepdim` keeps it as size 1.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3])?;
    /// assert_eq!(x.sum_axis(0, false).to_vec(), vec![5., 7., 9.]);
    /// assert_eq!(x.sum_axis(-1, true).shape(), &[2, 1]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// Panics when `axis` is out of range, naming the op, the axis and the rank.
    #[track_caller]
    pub fn sum_axis(&self, axis: isize, keepdim: bool) -> Tensor<T> {
        or_panic(self.try_sum_axis(axis, keepdim))
    }

    /// The mean along `axis`.
    ///
    /// # Panics
    /// Panics when `axis` is out of range.
    #[track_caller]
    pub fn mean_axis(&self, axis: isize, keepdim: bool) -> Tensor<T> {
        or_panic(self.try_mean_axis(axis, keepdim))
    }
}

// ----- max / min along an axis -----

struct ExtremeAxis {
    max: bool,
    /// The flat (row-major) position in the input of the (first) extreme, per
    /// output element.
    pos: Vec<usize>,
}

impl<T: Element> Op<T> for ExtremeAxis {
    fn name(&self) -> &'static str {
        if self.max {
            "max_axis"
        } else {
            "min_axis"
        }
    }
    fn saves(&self) -> Saves {
        Saves::Nothing
    }
    /// The gradient scattered to the extremes' positions: an `index_add`, whose
    /// own backward (a gather) makes the rule differentiable at every order.
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let x = cx.input(0);
        let flat = g.reshape(&[self.pos.len()]);
        let scattered = super::index::index_add(&flat, 0, &self.pos, x.numel());
        grads![Some(scattered.reshape(x.shape()))]
    }
}

impl<T: Element> Tensor<T> {
    fn extreme_axis(
        &self,
        op: &'static str,
        axis: isize,
        keepdim: bool,
        max: bool,
    ) -> Result<Tensor<T>> {
        let a = normalize_axis(op, axis, self.shape())?;
        let (outer, n, inner) = split_at_axis(self.shape(), a);
        if n == 0 {
            return Err(crate::Error::invalid(op, "cannot reduce an axis of size 0"));
        }
        let seen = Seen::note(&[self]);
        let (vals, arg) = self.with_contiguous(|x| k::extreme_axis(x, outer, n, inner, max));
        let shape = reduced_shape(self.shape(), a, keepdim);
        let pos = k::axis_positions(arg, n, inner);
        let op = ExtremeAxis { max, pos };
        Ok(Tensor::from_op_data(seen, vals, &shape, op, &[self]))
    }

    /// The maximum along `axis`. The gradient goes to the first maximal element;
    /// NaN wins, as in PyTorch.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::from_vec(vec![1., 5., 5., 2.], &[2, 2])?;
    /// assert_eq!(x.max_axis(1, false).to_vec(), vec![5., 5.]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// Panics when `axis` is out of range or has size 0.
    #[track_caller]
    pub fn max_axis(&self, axis: isize, keepdim: bool) -> Tensor<T> {
        or_panic(self.try_max_axis(axis, keepdim))
    }

    /// The minimum along `axis`; the gradient goes to the first minimal element.
    ///
    /// # Panics
    /// Panics when `axis` is out of range or has size 0.
    #[track_caller]
    pub fn min_axis(&self, axis: isize, keepdim: bool) -> Tensor<T> {
        or_panic(self.try_min_axis(axis, keepdim))
    }

    fn arg_extreme(&self, op: &'static str, axis: isize, max: bool) -> Result<Tensor<T>> {
        let a = normalize_axis(op, axis, self.shape())?;
        let (outer, n, inner) = split_at_axis(self.shape(), a);
        if n == 0 {
            return Err(crate::Error::invalid(op, "cannot reduce an axis of size 0"));
        }
        let (_, arg) = self.with_contiguous(|x| k::extreme_axis(x, outer, n, inner, max));
        let data = arg.into_iter().map(|i| c(i as f64)).collect();
        Ok(Tensor::from_data(
            data,
            &reduced_shape(self.shape(), a, false),
        ))
    }

    /// The index of the first maximum along `axis` (the axis is removed), as
    /// element values (`0.0`, `1.0`, …). Not differentiable: the result never
    /// requires a gradient. A NaN counts as the maximum.
    ///
    /// ```
    /// let logits = ferrograd::Tensor::<f32>::from_vec(vec![0.1, 2.0, -1.0, 3.0, 0.0, 0.5], &[2, 3])?;
    /// assert_eq!(logits.argmax(-1).to_vec(), vec![1.0, 0.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// Panics when `axis` is out of range or has size 0.
    #[track_caller]
    pub fn argmax(&self, axis: isize) -> Tensor<T> {
        or_panic(self.arg_extreme("argmax", axis, true))
    }

    /// The index of the first minimum along `axis`; see [`argmax`](Tensor::argmax).
    ///
    /// # Panics
    /// Panics when `axis` is out of range or has size 0.
    #[track_caller]
    pub fn argmin(&self, axis: isize) -> Tensor<T> {
        or_panic(self.arg_extreme("argmin", axis, false))
    }
}

// ----- logsumexp -----

struct LogSumExp {
    axis: usize,
    keepdim: bool,
}

impl<T: Element> Op<T> for LogSumExp {
    fn name(&self) -> &'static str {
        "logsumexp"
    }
    fn saves(&self) -> Saves {
        Saves::Both
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        let x = cx.input(0);
        let s = x.shape();
        let gb = expand_back(g, Some(self.axis), self.keepdim, s);
        let yb = expand_back(cx.output, Some(self.axis), self.keepdim, s);
        // d lse / dx = softmax(x) = exp(x - lse)
        if cx.create_graph {
            return grads![Some(gb.mul(&x.sub(&yb).exp()))];
        }
        grads![Some(
            zip3_plain(s, &gb, x, &yb, Costly, |g, x, y| g * (x - y).exp_k())
        )]
    }
}

impl<T: Element> Tensor<T> {
    /// `log Σ exp(x)` along `axis`, computed stably (shifted by the maximum), so
    /// inputs of ±1000 give finite results.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::from_vec(vec![1000.0, 1000.0], &[2])?;
    /// let lse = x.logsumexp(0, false).item();
    /// assert!((lse - (1000.0 + 2f32.ln())).abs() < 1e-3);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// Panics when `axis` is out of range.
    #[track_caller]
    pub fn logsumexp(&self, axis: isize, keepdim: bool) -> Tensor<T> {
        or_panic(self.try_logsumexp(axis, keepdim))
    }

    /// The variance along `axis` with Bessel's correction (divides by N − 1, as
    /// PyTorch's default); N = 1 and an empty axis give NaN. A composite of `mean_axis`, `sub`,
    /// `square` and `sum_axis`.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f64>::from_vec(vec![1., 2., 3., 4.], &[4])?;
    /// assert!((x.var_axis(0, false).item() - 5.0 / 3.0).abs() < 1e-12);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// Panics when `axis` is out of range.
    #[track_caller]
    pub fn var_axis(&self, axis: isize, keepdim: bool) -> Tensor<T> {
        or_panic(self.try_var_axis(axis, keepdim))
    }
}

/// Fallible forms: each `try_x` is `x` returning [`Result`] instead of
/// panicking (the error carries the message the panic would print).
impl<T: Element> Tensor<T> {
    /// Like [`sum_axis`](Tensor::sum_axis), returning [`Error::InvalidAxis`](crate::Error::InvalidAxis) instead of panicking.
    pub fn try_sum_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, axis: isize, keepdim: bool| -> Result<Tensor<T>> {
                this.reduce_axis("sum_axis", axis, keepdim, false)
            },
            (self, axis, keepdim)
        )
    }

    /// Like [`mean_axis`](Tensor::mean_axis), returning an error instead of panicking.
    pub fn try_mean_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, axis: isize, keepdim: bool| -> Result<Tensor<T>> {
                this.reduce_axis("mean_axis", axis, keepdim, true)
            },
            (self, axis, keepdim)
        )
    }

    /// Like [`max_axis`](Tensor::max_axis), returning an error instead of panicking.
    pub fn try_max_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, axis: isize, keepdim: bool| -> Result<Tensor<T>> {
                this.extreme_axis("max_axis", axis, keepdim, true)
            },
            (self, axis, keepdim)
        )
    }

    /// Like [`min_axis`](Tensor::min_axis), returning an error instead of panicking.
    pub fn try_min_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, axis: isize, keepdim: bool| -> Result<Tensor<T>> {
                this.extreme_axis("min_axis", axis, keepdim, false)
            },
            (self, axis, keepdim)
        )
    }

    /// Like [`logsumexp`](Tensor::logsumexp), returning an error instead of panicking.
    pub fn try_logsumexp(&self, axis: isize, keepdim: bool) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, axis: isize, keepdim: bool| -> Result<Tensor<T>> {
                let a = normalize_axis("logsumexp", axis, this.shape())?;
                let (outer, n, inner) = split_at_axis(this.shape(), a);
                let seen = Seen::note(&[this]);
                let data = this.with_contiguous(|x| k::logsumexp(x, outer, n, inner));
                let shape = reduced_shape(this.shape(), a, keepdim);
                Ok(Tensor::from_op_data(
                    seen,
                    data,
                    &shape,
                    LogSumExp { axis: a, keepdim },
                    &[this],
                ))
            },
            (self, axis, keepdim)
        )
    }

    /// Like [`var_axis`](Tensor::var_axis), returning an error instead of panicking.
    pub fn try_var_axis(&self, axis: isize, keepdim: bool) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, axis: isize, keepdim: bool| -> Result<Tensor<T>> {
                let a = normalize_axis("var_axis", axis, this.shape())?;
                let n = this.shape()[a];
                let centered = this.sub(&this.mean_axis(axis, true));
                let ss = centered.square().sum_axis(axis, keepdim);
                // N = 1 and N = 0 both give 0/0 = NaN, as PyTorch
                Ok(ss.div_scalar(c(n.saturating_sub(1) as f64)))
            },
            (self, axis, keepdim)
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_util::{assert_close, check, rand_leaf};
    use crate::Tensor;

    #[test]
    fn forward_values() {
        let x = Tensor::<f64>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]).unwrap();
        assert_close(&x.sum(), &[21.], 0.0);
        assert_close(&x.mean(), &[3.5], 0.0);
        assert_close(&x.sum_axis(1, false), &[6., 15.], 0.0);
        assert_close(&x.mean_axis(0, false), &[2.5, 3.5, 4.5], 0.0);
        assert_close(&x.max_axis(-1, false), &[3., 6.], 0.0);
        assert_close(&x.min_axis(0, true), &[1., 2., 3.], 0.0);
        assert_eq!(x.min_axis(0, true).shape(), &[1, 3]);
        assert_close(&x.var_axis(1, false), &[1., 1.], 1e-15);
        assert_close(&x.argmax(0), &[1., 1., 1.], 0.0);
        assert_close(&x.argmin(1), &[0., 0.], 0.0);
        let l = x.logsumexp(1, false);
        assert_close(&l, &[3.40760596444438, 6.40760596444438], 1e-14);
        // stable at ±1000 and with -inf
        let big = Tensor::<f32>::from_vec(
            vec![1000., -1000., f32::NEG_INFINITY, f32::NEG_INFINITY],
            &[2, 2],
        )
        .unwrap();
        let l = big.logsumexp(1, false).to_vec();
        assert_eq!(l[0], 1000.0);
        assert_eq!(l[1], f32::NEG_INFINITY);
        assert!(x.try_sum_axis(2, false).is_err());
        assert_eq!(
            x.try_max_axis(-3, false).unwrap_err().to_string(),
            "max_axis: axis -3 is out of range for shape [2, 3] (valid axes are -2..=1)"
        );
    }

    #[test]
    fn gradcheck_reductions() {
        for shape in [&[][..], &[4][..], &[2, 3][..], &[2, 3, 2][..]] {
            let x = rand_leaf(shape, 30);
            check(|x| x[0].sum(), &[x.clone()]);
            check(|x| x[0].mean(), &[x.clone()]);
            if shape.is_empty() {
                continue;
            }
            for axis in [0isize, -1] {
                for keep in [false, true] {
                    check(|x| x[0].sum_axis(axis, keep), &[x.clone()]);
                    check(|x| x[0].mean_axis(axis, keep), &[x.clone()]);
                    check(|x| x[0].max_axis(axis, keep), &[x.clone()]);
                    check(|x| x[0].min_axis(axis, keep), &[x.clone()]);
                    check(|x| x[0].logsumexp(axis, keep), &[x.clone()]);
                    if x.shape()[if axis < 0 { x.ndim() - 1 } else { 0 }] > 1 {
                        check(|x| x[0].var_axis(axis, keep), &[x.clone()]);
                    }
                }
            }
        }
        let x = rand_leaf(&[3, 4], 31);
        check(|x| x[0].t().sum_axis(1, false), &[x.clone()]);
        check(|x| x[0].narrow(1, 1, 2).max_axis(0, true), &[x.clone()]);
        check(|x| x[0].t().logsumexp(0, false), &[x.clone()]);
        check(|x| x[0].t().var_axis(-1, true), &[x]);
    }

    #[test]
    fn max_ties_send_gradient_to_first() {
        let x = Tensor::<f64>::from_vec(vec![2., 5., 5., 1.], &[4])
            .unwrap()
            .requires_grad();
        let g = x.max_axis(0, false).backward().unwrap();
        assert_close(g.get(&x).unwrap(), &[0., 1., 0., 0.], 0.0);
        let g = x.min_axis(0, false).mul_scalar(3.0).backward().unwrap();
        assert_close(g.get(&x).unwrap(), &[0., 0., 0., 3.], 0.0);
        assert!(!x.argmax(0).needs_grad());
    }
}
