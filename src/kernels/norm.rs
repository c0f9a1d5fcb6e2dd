//! Layer normalisation loops over contiguous rows: the fused forward pass that
//! keeps each row's mean and reciprocal standard deviation, and the fused
//! backward pass. The op and its recording are in `ops::norm`.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::parallel::{use_pool, LAYER_NORM_GROUP, LAYER_NORM_LEN};
use super::reduce::{dot, sum_map, sum_slice};
use crate::element::{c, Element};

/// One group of rows in the backward pass: `dx` to fill, `x` and `g`, and the
/// rows' statistics.
type BackwardGroup<'a, T> = ((&'a mut [MaybeUninit<T>], (&'a [T], &'a [T])), &'a [(T, T)]);

/// Rows per group for rows of length `d`.
fn group_rows(d: usize) -> usize {
    (LAYER_NORM_GROUP / d.max(1)).max(1)
}

/// `out = (x − mean) / sqrt(var + eps) · weight + bias` for each row of length
/// `d > 0` of the contiguous `x` (biased variance), written to every slot of
/// `out` (as long as `x`); `weight` and `bias`, when given, have length `d`.
/// Returns each row's mean and `1 / sqrt(var + eps)`. Large inputs split their rows over the thread pool;
/// every row is computed the same way either way.
pub(crate) fn layer_norm_forward<T: Element>(
    x: &[T],
    d: usize,
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    eps: T,
    out: &mut [MaybeUninit<T>],
) -> Vec<(T, T)> {
    let affine = |p: Option<&[T]>| p.is_none_or(|p| p.len() == d);
    assert!(
        d > 0
            && x.len().is_multiple_of(d)
            && out.len() == x.len()
            && affine(weight)
            && affine(bias),
        "internal error: layer_norm_forward lengths"
    );
    let rows = group_rows(d) * d;
    let normalize = |(out, x): (&mut [MaybeUninit<T>], &[T])| {
        super::wide(
            #[inline(always)]
            || normalize_rows(x, d, weight, bias, eps, out),
        )
    };
    if !use_pool(x.len(), LAYER_NORM_LEN) {
        return normalize((out, x));
    }
    let groups: Vec<Vec<(T, T)>> = out
        .par_chunks_mut(rows)
        .zip(x.par_chunks(rows))
        .map(normalize)
        .collect();
    groups.concat()
}

/// The rows of one group of [`layer_norm_forward`], with their statistics.
#[inline(always)]
fn normalize_rows<T: Element>(
    x: &[T],
    d: usize,
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    eps: T,
    out: &mut [MaybeUninit<T>],
) -> Vec<(T, T)> {
    let mut stats = Vec::with_capacity(x.len() / d);
    for (row, dst) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        // pairwise sums: a running sum drifts on long rows
        let mean = sum_slice(row) / c(d as f64);
        let var = sum_map(row, |v| (v - mean) * (v - mean)) / c(d as f64);
        let rstd = T::one() / (var + eps).sqrt();
        stats.push((mean, rstd));
        // one loop per case, zipped: no per-element test of the options and
        // no bounds checks, so each vectorises
        let out = dst.iter_mut().zip(row);
        let norm = |v: T| (v - mean) * rstd;
        match (weight, bias) {
            (Some(w), Some(b)) => {
                for ((o, &v), (&w, &b)) in out.zip(w.iter().zip(b)) {
                    o.write(norm(v) * w + b);
                }
            }
            (Some(w), None) => {
                for ((o, &v), &w) in out.zip(w) {
                    o.write(norm(v) * w);
                }
            }
            (None, Some(b)) => {
                for ((o, &v), &b) in out.zip(b) {
                    o.write(norm(v) + b);
                }
            }
            (None, None) => {
                for (o, &v) in out {
                    o.write(norm(v));
                }
            }
        }
    }
    stats
}

/// The backward pass of [`layer_norm_forward`] for the upstream gradient `g`
/// (contiguous, as long as `x`, rows of length `d > 0`) and the forward pass's
/// `stats`. With `x̂ = (x − mean)·rstd` and `ĝ = g·weight`, per row:
/// `dx = rstd · (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))` written to every slot of `dx` (as
/// long as `x`), and returns
/// `(dweight, dbias)` = `(Σ_rows g·x̂, Σ_rows g)`, each of length `d` when asked
/// for (`need_w`, `need_b`), else empty. Large inputs split their rows over the
/// thread pool; the per-group sums are then added in order, so the result does
/// not depend on how rayon split the work.
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_norm_backward<T: Element>(
    x: &[T],
    g: &[T],
    d: usize,
    stats: &[(T, T)],
    weight: Option<&[T]>,
    need_w: bool,
    need_b: bool,
    dx: &mut [MaybeUninit<T>],
) -> (Vec<T>, Vec<T>) {
    assert!(
        d > 0
            && stats.len() * d == x.len()
            && g.len() == x.len()
            && dx.len() == x.len()
            && weight.is_none_or(|w| w.len() == d),
        "internal error: layer_norm_backward lengths"
    );
    let zeros = |on: bool| vec![T::zero(); if on { d } else { 0 }];
    let group = group_rows(d);
    let rows = group * d;
    let grads = |((dx, (x, g)), stats): BackwardGroup<'_, T>| {
        super::wide(
            #[inline(always)]
            || grad_rows(x, g, d, stats, weight, need_w, need_b, dx),
        )
    };
    if !use_pool(x.len(), LAYER_NORM_LEN) {
        return grads(((dx, (x, g)), stats));
    }
    dx.par_chunks_mut(rows)
        .zip(x.par_chunks(rows).zip(g.par_chunks(rows)))
        .zip(stats.par_chunks(group))
        .map(grads)
        // collected in order and summed in order, so the result
        // does not depend on how rayon split the work
        .collect::<Vec<_>>()
        .into_iter()
        .fold(
            (zeros(need_w), zeros(need_b)),
            |(mut w1, mut b1), (w2, b2)| {
                w1.iter_mut().zip(w2).for_each(|(a, b)| *a += b);
                b1.iter_mut().zip(b2).for_each(|(a, b)| *a += b);
                (w1, b1)
            },
        )
}

/// The rows of one group of [`layer_norm_backward`]: writes their `dx` and
/// returns the group's `(dweight, dbias)` sums (empty when not asked for).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn grad_rows<T: Element>(
    x: &[T],
    g: &[T],
    d: usize,
    stats: &[(T, T)],
    weight: Option<&[T]>,
    need_w: bool,
    need_b: bool,
    dx: &mut [MaybeUninit<T>],
) -> (Vec<T>, Vec<T>) {
    let inv_d = T::one() / c(d as f64);
    let zeros = |on: bool| vec![T::zero(); if on { d } else { 0 }];
    let (mut dw, mut db) = (zeros(need_w), zeros(need_b));
    let mut ghat = vec![T::zero(); d];
    let mut xhat = vec![T::zero(); d];
    let rows = x
        .chunks_exact(d)
        .zip(g.chunks_exact(d))
        .zip(dx.chunks_exact_mut(d));
    for (((xr, gr), dxr), &(mean, rstd)) in rows.zip(stats) {
        // zipped loops, the option tested once per row: they vectorise
        for (h, &v) in xhat.iter_mut().zip(xr) {
            *h = (v - mean) * rstd;
        }
        match weight {
            Some(w) => {
                for (h, (&g, &w)) in ghat.iter_mut().zip(gr.iter().zip(w)) {
                    *h = g * w;
                }
            }
            None => ghat.copy_from_slice(gr),
        }
        let mg = sum_slice(&ghat) * inv_d;
        let mgx = dot(&ghat, &xhat) * inv_d;
        for (o, (&gh, &xh)) in dxr.iter_mut().zip(ghat.iter().zip(&xhat)) {
            o.write(rstd * (gh - mg - xh * mgx));
        }
        if need_w {
            for ((a, &g), &h) in dw.iter_mut().zip(gr).zip(&xhat) {
                *a += g * h;
            }
        }
        if need_b {
            for (a, &g) in db.iter_mut().zip(gr) {
                *a += g;
            }
        }
    }
    (dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in about [-2, 2).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 22) as f32 - 2.0
            })
            .collect()
    }

    /// [`layer_norm_forward`] into a fresh buffer: the output and the row statistics.
    fn forward(
        x: &[f32],
        d: usize,
        w: Option<&[f32]>,
        b: Option<&[f32]>,
    ) -> (Vec<f32>, Vec<(f32, f32)>) {
        // SAFETY: `layer_norm_forward` writes every slot of its output.
        unsafe { crate::pool::written(x.len(), |out| layer_norm_forward(x, d, w, b, 1e-5, out)) }
    }

    /// [`layer_norm_backward`] into a fresh buffer: `dx`, `dweight`, `dbias`.
    fn backward(
        x: &[f32],
        g: &[f32],
        d: usize,
        stats: &[(f32, f32)],
        w: Option<&[f32]>,
        need: (bool, bool),
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        // SAFETY: `layer_norm_backward` writes every slot of its `dx`.
        let (dx, (dw, db)) = unsafe {
            crate::pool::written(x.len(), |dx| {
                layer_norm_backward(x, g, d, stats, w, need.0, need.1, dx)
            })
        };
        (dx, dw, db)
    }

    #[test]
    fn parallel_rows_are_the_rows_computed_one_by_one() {
        // 64 rows of 1024: past LAYER_NORM_LEN, so the rows are split over the
        // pool; each row alone is below it, so it takes the serial loop
        let d = 1024;
        let (x, g) = (values(64 * d, 1), values(64 * d, 2));
        let (w, b) = (values(d, 3), values(d, 4));
        assert!(x.len() >= LAYER_NORM_LEN);
        let (out, stats) = forward(&x, d, Some(&w), Some(&b));
        let (dx, dw, db) = backward(&x, &g, d, &stats, Some(&w), (true, true));
        let (mut dw1, mut db1) = (vec![0.0f32; d], vec![0.0f32; d]);
        for (r, &row_stats) in stats.iter().enumerate() {
            let rows = r * d..(r + 1) * d;
            let (o, s) = forward(&x[rows.clone()], d, Some(&w), Some(&b));
            assert_eq!(s, [row_stats]);
            assert_eq!(o, out[rows.clone()]);
            let (dxr, w1, b1) = backward(
                &x[rows.clone()],
                &g[rows.clone()],
                d,
                &s,
                Some(&w),
                (true, true),
            );
            assert_eq!(dxr, dx[rows]);
            dw1.iter_mut().zip(w1).for_each(|(a, v)| *a += v);
            db1.iter_mut().zip(b1).for_each(|(a, v)| *a += v);
        }
        // the sums over rows are grouped differently: close, not equal
        for (got, want) in dw.iter().chain(&db).zip(dw1.iter().chain(&db1)) {
            assert!(
                (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                "{got} vs {want}"
            );
        }
    }

    /// Every case of the affine parameters (weight and bias each given or
    /// not) against the formulas written element by element in `f64`, rows of
    /// lengths around the vector widths; a weight or bias of the wrong
    /// length is refused rather than leaving slots unwritten.
    #[test]
    fn every_affine_case_matches_the_formula() {
        for d in [1, 7, 8, 16, 31, 64, 100] {
            let (x, g) = (values(5 * d, 6), values(5 * d, 7));
            let (w, b) = (values(d, 8), values(d, 9));
            for (wt, bs) in [(true, true), (true, false), (false, true), (false, false)] {
                let (wo, bo) = (wt.then_some(&w[..]), bs.then_some(&b[..]));
                let (out, stats) = forward(&x, d, wo, bo);
                let (dx, _, _) = backward(&x, &g, d, &stats, wo, (false, false));
                for r in 0..5 {
                    let row = |v: &[f32]| -> Vec<f64> {
                        v[r * d..(r + 1) * d]
                            .iter()
                            .map(|&v| f64::from(v))
                            .collect()
                    };
                    let (xr, gr) = (row(&x), row(&g));
                    let mean = xr.iter().sum::<f64>() / d as f64;
                    let var = xr.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
                    let rstd = 1.0 / (var + 1e-5).sqrt();
                    let wj = |j: usize| if wt { f64::from(w[j]) } else { 1.0 };
                    let bj = |j: usize| if bs { f64::from(b[j]) } else { 0.0 };
                    let xhat: Vec<f64> = xr.iter().map(|v| (v - mean) * rstd).collect();
                    let ghat: Vec<f64> = (0..d).map(|j| gr[j] * wj(j)).collect();
                    let mg = ghat.iter().sum::<f64>() / d as f64;
                    let mgx = ghat.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / d as f64;
                    for j in 0..d {
                        let at = r * d + j;
                        let (want, want_dx) = (
                            xhat[j] * wj(j) + bj(j),
                            rstd * (ghat[j] - mg - xhat[j] * mgx),
                        );
                        let case = format!("d = {d}, weight {wt}, bias {bs}, row {r}, column {j}");
                        assert!(
                            (f64::from(out[at]) - want).abs() <= 1e-5,
                            "{case}: {} vs {want}",
                            out[at]
                        );
                        assert!(
                            (f64::from(dx[at]) - want_dx).abs() <= 1e-4,
                            "{case}: dx {} vs {want_dx}",
                            dx[at]
                        );
                    }
                }
            }
        }
        let x = values(8, 10);
        let short = values(3, 11);
        for (wo, bo) in [(Some(&short[..]), None), (None, Some(&short[..]))] {
            let refused = std::panic::catch_unwind(|| forward(&x, 4, wo, bo));
            assert!(refused.is_err(), "a weight or bias of 3 for rows of 4");
        }
    }

    #[test]
    fn gradients_not_asked_for_are_empty() {
        let x = values(12, 5);
        let (_, stats) = forward(&x, 4, None, None);
        assert_eq!(stats.len(), 3);
        let (_, dw, db) = backward(&x, &x, 4, &stats, None, (false, true));
        assert!(dw.is_empty());
        assert_eq!(db.len(), 4);
    }
}
