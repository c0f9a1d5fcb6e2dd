//! Layer normalisation over the last axis as one op: a fused forward pass that
//! keeps each row's mean and reciprocal standard deviation, and a fused backward
//! rule. (The composite of `mean_axis`, `sub`, `square`, … is nine ops each way;
//! it stays in the tests as the reference.) Public as
//! `nn::functional::layer_norm`; the loops over rows are in `kernels::norm`.

use crate::autograd::{BackwardCx, InputGrads, Op, Saves};
use crate::element::{c, Element};
use crate::kernels::norm::{layer_norm_backward, layer_norm_forward};
use crate::pool;
use crate::tensor::{Seen, Tensor};

struct LayerNorm<T> {
    /// Per row: the mean and `1 / sqrt(var + eps)`.
    stats: Vec<(T, T)>,
    eps: T,
    has_weight: bool,
    has_bias: bool,
}

/// `(x − mean) / sqrt(var + eps) · weight + bias` over the last axis (biased
/// variance). `weight` and `bias`, when given, are `[d]`; the caller checked shapes.
pub(crate) fn layer_norm<T: Element>(
    x: &Tensor<T>,
    weight: Option<&Tensor<T>>,
    bias: Option<&Tensor<T>>,
    eps: T,
) -> Tensor<T> {
    let d = *x
        .shape()
        .last()
        .expect("internal error: layer_norm of a 0-d tensor");
    let mut inputs = vec![x];
    inputs.extend(weight);
    inputs.extend(bias);
    let seen = Seen::note(&inputs);
    let w = weight.map(Tensor::to_vec);
    let b = bias.map(Tensor::to_vec);
    let (out, stats) = if d == 0 {
        (Vec::new(), Vec::new()) // no elements
    } else {
        x.with_contiguous(|x| {
            // SAFETY: `layer_norm_forward` writes every slot of its output.
            unsafe {
                pool::written(x.len(), |out| {
                    layer_norm_forward(x, d, w.as_deref(), b.as_deref(), eps, out)
                })
            }
        })
    };
    let op = LayerNorm {
        stats,
        eps,
        has_weight: weight.is_some(),
        has_bias: bias.is_some(),
    };
    Tensor::from_op_data(seen, out, x.shape(), op, &inputs)
}

impl<T: Element> Op<T> for LayerNorm<T> {
    fn name(&self) -> &'static str {
        "layer_norm"
    }
    fn saves(&self) -> Saves {
        Saves::Inputs
    }
    /// With `x̂ = (x − mean)·rstd` and `ĝ = g·weight`, per row of length `d`:
    /// `dx = rstd · (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`, `dweight = Σ_rows g·x̂`,
    /// `dbias = Σ_rows g` (summed per group of rows, then across groups).
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        if cx.create_graph {
            return self.backward_graph(cx, &g);
        }
        let x = cx.input(0);
        let d = *x.shape().last().expect("internal error: layer_norm shape");
        let weight = self.has_weight.then(|| cx.input(1).to_vec());
        let need_w = self.has_weight && cx.needs(1);
        let need_b = self.has_bias && cx.needs(1 + self.has_weight as usize);
        let zeros = |on: bool| vec![T::zero(); if on { d } else { 0 }];
        let (dx, (dw, db)) = if d == 0 {
            (Vec::new(), (zeros(need_w), zeros(need_b))) // no elements
        } else {
            x.with_contiguous(|x| {
                g.with_contiguous(|g| {
                    let w = weight.as_deref();
                    // SAFETY: `layer_norm_backward` writes every slot of its `dx`.
                    unsafe {
                        pool::written(x.len(), |dx| {
                            layer_norm_backward(x, g, d, &self.stats, w, need_w, need_b, dx)
                        })
                    }
                })
            })
        };
        let mut grads: InputGrads<T> =
            smallvec::smallvec![cx.needs(0).then(|| Tensor::from_data(dx, x.shape()))];
        if self.has_weight {
            grads.push(need_w.then(|| Tensor::from_data(dw, &[d])));
        }
        if self.has_bias {
            grads.push(need_b.then(|| Tensor::from_data(db, &[d])));
        }
        grads
    }
}

impl<T: Element> LayerNorm<T> {
    /// The same rule as recorded tensor ops (the row statistics recomputed from
    /// `x`, so that they carry its graph), for `create_graph`.
    fn backward_graph(&self, cx: &BackwardCx<'_, T>, g: &Tensor<T>) -> InputGrads<T> {
        let x = cx.input(0);
        let mean = x.mean_axis(-1, true);
        let centered = x.sub(&mean);
        let rstd = centered
            .square()
            .mean_axis(-1, true)
            .add_scalar(self.eps)
            .powf(c(-0.5));
        let xhat = centered.mul(&rstd);
        let ghat = if self.has_weight {
            g.mul(cx.input(1))
        } else {
            g.clone()
        };
        let mut grads: InputGrads<T> = smallvec::smallvec![cx.needs(0).then(|| {
            let mean_g = ghat.mean_axis(-1, true);
            let mean_gx = ghat.mul(&xhat).mean_axis(-1, true);
            ghat.sub(&mean_g).sub(&xhat.mul(&mean_gx)).mul(&rstd)
        })];
        // the walk sums these [.., d] gradients down to [d]
        if self.has_weight {
            grads.push(cx.needs(1).then(|| g.mul(&xhat)));
        }
        if self.has_bias {
            grads.push(cx.needs(1 + self.has_weight as usize).then(|| g.clone()));
        }
        grads
    }
}

#[cfg(test)]
mod tests {
    use super::layer_norm;
    use crate::ops::test_util::{assert_close, check, rand_leaf};
    use crate::Tensor;

    #[test]
    fn parallel_weight_gradients_are_the_same_in_every_run() {
        // 1024 rows of 64: past LAYER_NORM_LEN, so the rows are split over the
        // pool; the per-group sums must be added in one fixed order.
        let x = rand_leaf(&[1024, 64], 31).detach().cast::<f32>();
        let w = Tensor::<f32>::ones(&[64]).requires_grad();
        let b = Tensor::<f32>::zeros(&[64]).requires_grad();
        let g = rand_leaf(&[1024, 64], 32).detach().cast::<f32>();
        let run = || {
            let y = layer_norm(&x, Some(&w), Some(&b), 1e-5);
            let grads = y.mul(&g).sum().backward().unwrap();
            (
                grads.get(&w).unwrap().to_vec(),
                grads.get(&b).unwrap().to_vec(),
            )
        };
        let first = run();
        for _ in 0..30 {
            assert_eq!(run(), first);
        }
    }

    /// The composite form: the reference the fused op must match.
    fn composite(
        x: &Tensor<f64>,
        w: Option<&Tensor<f64>>,
        b: Option<&Tensor<f64>>,
        eps: f64,
    ) -> Tensor<f64> {
        let centered = x.sub(&x.mean_axis(-1, true));
        let var = centered.square().mean_axis(-1, true);
        let mut y = centered.div(&var.add_scalar(eps).sqrt());
        if let Some(w) = w {
            y = y.mul(w);
        }
        if let Some(b) = b {
            y = y.add(b);
        }
        y
    }

    #[test]
    fn forward_matches_the_composite_and_known_values() {
        // mean 2.5, biased variance 1.25
        let x = Tensor::<f64>::from_vec(vec![1., 2., 3., 4.], &[1, 4]).unwrap();
        let s = 1.25f64.sqrt();
        assert_close(
            &layer_norm(&x, None, None, 0.0),
            &[-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s],
            1e-14,
        );
        let x = rand_leaf(&[2, 3, 5], 1);
        let w = rand_leaf(&[5], 2);
        let b = rand_leaf(&[5], 3);
        for (wo, bo) in [
            (None, None),
            (Some(&w), None),
            (None, Some(&b)),
            (Some(&w), Some(&b)),
        ] {
            let fused = layer_norm(&x, wo, bo, 1e-5);
            assert_close(&fused, &composite(&x, wo, bo, 1e-5).to_vec(), 1e-12);
        }
    }

    #[test]
    fn parallel_groups_match_the_composite() {
        // 64 rows of 1024: above the parallel size, many groups
        let x = rand_leaf(&[64, 1024], 11);
        let w = rand_leaf(&[1024], 12);
        let b = rand_leaf(&[1024], 13);
        let weigh = rand_leaf(&[64, 1024], 14).detach();
        let fused = layer_norm(&x, Some(&w), Some(&b), 1e-5);
        assert_close(
            &fused,
            &composite(&x, Some(&w), Some(&b), 1e-5).to_vec(),
            1e-12,
        );
        let g1 = fused.mul(&weigh).sum().backward().unwrap();
        let g2 = composite(&x, Some(&w), Some(&b), 1e-5)
            .mul(&weigh)
            .sum()
            .backward()
            .unwrap();
        for t in [&x, &w, &b] {
            assert_close(g1.get(t).unwrap(), &g2.get(t).unwrap().to_vec(), 1e-10);
        }
    }

    #[test]
    fn gradcheck_every_input_combination() {
        let x = rand_leaf(&[3, 4], 4);
        let w = rand_leaf(&[4], 5);
        let b = rand_leaf(&[4], 6);
        let weigh = rand_leaf(&[3, 4], 7).detach();
        check(
            |t| layer_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5).mul(&weigh),
            &[x.clone(), w.clone(), b.clone()],
        );
        check(
            |t| layer_norm(&t[0], Some(&t[1]), None, 1e-3).mul(&weigh),
            &[x.clone(), w.clone()],
        );
        check(
            |t| layer_norm(&t[0], None, Some(&t[1]), 1e-3).mul(&weigh),
            &[x.clone(), b],
        );
        check(
            |t| layer_norm(&t[0], None, None, 1e-3).mul(&weigh),
            &[x.clone()],
        );
        // 3-D, strided input, weight only needing a gradient
        let x3 = rand_leaf(&[2, 4, 3], 8);
        check(
            |t| layer_norm(&t[0].transpose(1, 2), Some(&t[1]), None, 1e-5).square(),
            &[x3, w],
        );
        // the weight and bias do not need gradients
        let wc = rand_leaf(&[4], 9).detach();
        check(
            |t| layer_norm(&t[0], Some(&wc), Some(&wc), 1e-5).mul(&weigh),
            &[x],
        );
    }
}
