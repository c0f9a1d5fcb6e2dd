//! Layer normalisation over the last axis as one op: a fused forward pass that
//! keeps each row's mean and reciprocal standard deviation, and a fused backward
//! rule. (The composite of `mean_axis`, `sub`, `square`, … is nine ops each way;
//! it stays in the tests as the reference.) Public as
//! `nn::functional::layer_norm`.

use crate::autograd::{BackwardCx, InputGrads, Op, Saves};
use crate::element::{c, Element};
use crate::pool;
use crate::tensor::Tensor;

struct LayerNorm<T> {
    /// Per row: the mean and `1 / sqrt(var + eps)`.
    stats: Vec<(T, T)>,
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
    let rows = x.numel().checked_div(d).unwrap_or(0);
    let w = weight.map(Tensor::to_vec);
    let b = bias.map(Tensor::to_vec);
    let mut stats = Vec::with_capacity(rows);
    let mut out = pool::take(x.numel());
    x.with_contiguous(|x| {
        for row in x.chunks_exact(d.max(1)).take(rows) {
            let mean = row.iter().copied().sum::<T>() / c(d as f64);
            let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>() / c(d as f64);
            let rstd = T::one() / (var + eps).sqrt();
            stats.push((mean, rstd));
            let normed = row.iter().map(|&v| (v - mean) * rstd);
            match (&w, &b) {
                (Some(w), Some(b)) => {
                    out.extend(normed.zip(w).zip(b).map(|((v, &w), &b)| v * w + b))
                }
                (Some(w), None) => out.extend(normed.zip(w).map(|(v, &w)| v * w)),
                (None, Some(b)) => out.extend(normed.zip(b).map(|(v, &b)| v + b)),
                (None, None) => out.extend(normed),
            }
        }
    });
    let op = LayerNorm {
        stats,
        has_weight: weight.is_some(),
        has_bias: bias.is_some(),
    };
    let mut inputs = vec![x];
    inputs.extend(weight);
    inputs.extend(bias);
    Tensor::from_op_data(out, x.shape(), op, &inputs)
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
    /// `dbias = Σ_rows g`.
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        let x = cx.input(0);
        let d = *x.shape().last().expect("internal error: layer_norm shape");
        let weight = self.has_weight.then(|| cx.input(1).to_vec());
        let need_w = self.has_weight && cx.needs(1);
        let need_b = self.has_bias && cx.needs(1 + self.has_weight as usize);
        let mut dx = pool::take(x.numel());
        let mut dw = vec![T::zero(); if need_w { d } else { 0 }];
        let mut db = vec![T::zero(); if need_b { d } else { 0 }];
        let mut ghat = vec![T::zero(); d];
        let mut xhat = vec![T::zero(); d];
        let inv_d = T::one() / c(d as f64);
        x.with_contiguous(|x| {
            g.with_contiguous(|g| {
                let rows = x.chunks_exact(d.max(1)).zip(g.chunks_exact(d.max(1)));
                for ((xr, gr), &(mean, rstd)) in rows.zip(&self.stats) {
                    let (mut sum_g, mut sum_gx) = (T::zero(), T::zero());
                    for j in 0..d {
                        xhat[j] = (xr[j] - mean) * rstd;
                        ghat[j] = match &weight {
                            Some(w) => gr[j] * w[j],
                            None => gr[j],
                        };
                        sum_g += ghat[j];
                        sum_gx += ghat[j] * xhat[j];
                    }
                    let (mg, mgx) = (sum_g * inv_d, sum_gx * inv_d);
                    dx.extend((0..d).map(|j| rstd * (ghat[j] - mg - xhat[j] * mgx)));
                    if need_w {
                        dw.iter_mut()
                            .zip(gr)
                            .zip(&xhat)
                            .for_each(|((a, &g), &h)| *a += g * h);
                    }
                    if need_b {
                        db.iter_mut().zip(gr).for_each(|(a, &g)| *a += g);
                    }
                }
            })
        });
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

#[cfg(test)]
mod tests {
    use super::layer_norm;
    use crate::ops::test_util::{assert_close, check, rand_leaf};
    use crate::Tensor;

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
