//! `softmax` and `log_softmax` along an axis: numerically stable forward passes
//! with their own backward rules.

use crate::autograd::{grads, BackwardCx, InputGrads, Op, Saves};
use crate::element::{mono, Element};
use crate::error::{or_panic, Result};
use crate::kernels::reduce as k;
use crate::shape::{normalize_axis, split_at_axis};
use crate::tensor::{Seen, Tensor};

struct Softmax {
    axis: usize,
    log: bool,
}

impl<T: Element> Op<T> for Softmax {
    fn name(&self) -> &'static str {
        if self.log {
            "log_softmax"
        } else {
            "softmax"
        }
    }
    fn saves(&self) -> Saves {
        Saves::Output
    }
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        let y = cx.output;
        if cx.create_graph {
            let axis = self.axis as isize;
            return grads![Some(if self.log {
                // g − exp(y)·Σg
                g.sub(&y.exp().mul(&g.sum_axis(axis, true)))
            } else {
                // y·(g − Σ g·y)
                y.mul(&g.sub(&g.mul(y).sum_axis(axis, true)))
            })];
        }
        let (outer, n, inner) = split_at_axis(y.shape(), self.axis);
        let data = y.with_contiguous(|y| {
            g.with_contiguous(|g| {
                if self.log {
                    k::log_softmax_backward(y, g, outer, n, inner)
                } else {
                    k::softmax_backward(y, g, outer, n, inner)
                }
            })
        });
        grads![Some(Tensor::from_data(data, y.shape()))]
    }
}

impl<T: Element> Tensor<T> {
    fn softmax_impl(&self, op: &'static str, axis: isize, log: bool) -> Result<Tensor<T>> {
        let a = normalize_axis(op, axis, self.shape())?;
        let (outer, n, inner) = split_at_axis(self.shape(), a);
        let seen = Seen::note(&[self]);
        let data = self.with_contiguous(|x| {
            if log {
                k::log_softmax(x, outer, n, inner)
            } else {
                k::softmax(x, outer, n, inner)
            }
        });
        Ok(Tensor::from_op_data(
            seen,
            data,
            self.shape(),
            Softmax { axis: a, log },
            &[self],
        ))
    }

    /// `exp(x) / Σ exp(x)` along `axis`, shifted by the maximum so that inputs of
    /// ±1000 are safe. `-inf` entries (attention masks) get exactly 0 and exactly 0
    /// gradient; a slice that is entirely `-inf` gives NaN, as in PyTorch.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::from_vec(vec![1000.0, 1000.0, f32::NEG_INFINITY], &[3])?;
    /// assert_eq!(x.softmax(0).to_vec(), vec![0.5, 0.5, 0.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// Panics when `axis` is out of range.
    #[track_caller]
    pub fn softmax(&self, axis: isize) -> Tensor<T> {
        or_panic(self.try_softmax(axis))
    }

    /// `x − logsumexp(x)` along `axis`, computed stably (never `log(softmax)`).
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f64>::from_vec(vec![-1000.0, 1000.0], &[2])?;
    /// assert_eq!(x.log_softmax(0).to_vec(), vec![-2000.0, 0.0]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// Panics when `axis` is out of range.
    #[track_caller]
    pub fn log_softmax(&self, axis: isize) -> Tensor<T> {
        or_panic(self.try_log_softmax(axis))
    }
}

/// Fallible forms: each `try_x` is `x` returning [`Result`] instead of
/// panicking (the error carries the message the panic would print).
impl<T: Element> Tensor<T> {
    /// Like [`softmax`](Tensor::softmax), returning an error instead of panicking.
    pub fn try_softmax(&self, axis: isize) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, axis: isize| -> Result<Tensor<T>> {
                this.softmax_impl("softmax", axis, false)
            },
            (self, axis)
        )
    }

    /// Like [`log_softmax`](Tensor::log_softmax), returning an error instead of panicking.
    pub fn try_log_softmax(&self, axis: isize) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, axis: isize| -> Result<Tensor<T>> {
                this.softmax_impl("log_softmax", axis, true)
            },
            (self, axis)
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_util::{assert_close, check, rand_leaf};
    use crate::Tensor;

    #[test]
    fn forward_values_and_stability() {
        let x = Tensor::<f64>::from_vec(vec![1., 2., 3., 1., 1., 1.], &[2, 3]).unwrap();
        let s = x.softmax(-1);
        assert_close(
            &s,
            &[
                0.09003057317038046,
                0.24472847105479764,
                0.6652409557748218,
                1. / 3.,
                1. / 3.,
                1. / 3.,
            ],
            1e-14,
        );
        assert_close(
            &x.log_softmax(1),
            &[
                -2.40760596444438,
                -1.40760596444438,
                -0.40760596444438,
                -(3f64.ln()),
                -(3f64.ln()),
                -(3f64.ln()),
            ],
            1e-14,
        );
        assert_close(
            &x.softmax(0),
            &[
                0.5,
                0.7310585786300049,
                0.8807970779778823,
                0.5,
                0.2689414213699951,
                0.11920292202211755,
            ],
            1e-14,
        );
        let big = Tensor::<f32>::from_vec(vec![1000., -1000., 0., -1000., 1000., 1000.], &[2, 3])
            .unwrap();
        assert_close(&big.softmax(1), &[1., 0., 0., 0., 0.5, 0.5], 1e-6);
        let ls = big.log_softmax(1).to_vec();
        assert!(ls.iter().all(|v| v.is_finite()));
        assert_close(
            &big.log_softmax(1),
            &[
                0.,
                -2000.,
                -1000.,
                -2000.0 - 2f64.ln(),
                -(2f64.ln()),
                -(2f64.ln()),
            ],
            1e-6,
        );
    }

    #[test]
    fn masked_entries_get_exact_zeros() {
        let ninf = f64::NEG_INFINITY;
        let x = Tensor::<f64>::from_vec(vec![0.5, ninf, 1.5, ninf, ninf, ninf], &[2, 3])
            .unwrap()
            .requires_grad();
        let y = x.softmax(-1);
        let v = y.to_vec();
        assert_eq!(v[1], 0.0);
        assert!(
            v[3..].iter().all(|v| v.is_nan()),
            "an all -inf row gives NaN as in PyTorch"
        );
        let w = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0], &[3]).unwrap();
        let loss = y.narrow(0, 0, 1).mul(&w).sum();
        let g = loss.backward().unwrap();
        let g = g.get(&x).unwrap().to_vec();
        assert_eq!(g[1], 0.0);
        assert!(g[0] != 0.0 && g[2] != 0.0);
    }

    #[test]
    fn gradcheck_softmax_family() {
        for shape in [&[5][..], &[2, 3][..], &[2, 3, 4][..]] {
            let x = rand_leaf(shape, 40);
            for axis in [0isize, -1] {
                // weight the outputs so the sum-to-one constraint does not hide errors
                let w = rand_leaf(shape, 41).detach();
                check(|x| x[0].softmax(axis).mul(&w), &[x.clone()]);
                check(|x| x[0].log_softmax(axis).mul(&w), &[x.clone()]);
            }
        }
        let x = rand_leaf(&[1], 42);
        check(|x| x[0].softmax(0), &[x]);
        let x = rand_leaf(&[3, 4], 43);
        check(|x| x[0].t().softmax(-1), &[x.clone()]);
        check(|x| x[0].narrow(1, 1, 3).log_softmax(1), &[x]);
    }
}
