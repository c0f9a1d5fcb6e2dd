//! Stateless forms of the layers: `linear`, `layer_norm`, `dropout`, `embedding`,
//! and `scaled_dot_product_attention`.
//!
//! The layer structs ([`Linear`](crate::nn::Linear), [`LayerNorm`](crate::nn::LayerNorm),
//! [`Dropout`](crate::nn::Dropout), [`Embedding`](crate::nn::Embedding)) hold
//! parameters (or an RNG) and call these functions in their forward pass. Like the
//! tensor ops, the functions that combine shapes panic with a message naming the
//! shapes, and have a `try_` twin returning [`Result`].

use rand::{Rng, RngExt};

use crate::element::{c, mono, Element};
use crate::error::{or_panic, Error, Result};
use crate::tensor::Tensor;

pub use crate::nn::sdpa::{
    scaled_dot_product_attention, scaled_dot_product_attention_with_rng, seed_attention_dropout,
    try_scaled_dot_product_attention,
};

/// `x · weightᵀ + bias`, PyTorch's `F.linear`: `x` is `[.., in]` with any leading
/// dimensions (or a single vector `[in]`), `weight` is `[out, in]` and `bias`
/// `[out]`; the result is `[.., out]`. One op in the graph (`"linear"`, like
/// PyTorch's `addmm`): `weight` is read as transposed in place, a batch
/// `[B, T, in]` runs as one matrix product, the bias is added into its result,
/// and the backward pass is one product per gradient and a sum for the bias.
/// Differentiable to any order.
///
/// ```
/// use ferrograd::{nn::functional::linear, Tensor};
/// let x = Tensor::<f32>::from_vec(vec![1., 2.], &[1, 2])?;
/// let w = Tensor::<f32>::from_vec(vec![1., 0., 1., 1., 0., -1.], &[3, 2])?;
/// let b = Tensor::<f32>::from_vec(vec![0.5, 0.5, 0.5], &[3])?;
/// assert_eq!(linear(&x, &w, Some(&b)).to_vec(), vec![1.5, 3.5, -1.5]);
/// assert_eq!(linear(&x, &w, None).shape(), &[1, 3]);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Panics
/// Panics when `weight` is not 2-D, `x`'s last dimension is not `weight`'s second,
/// or `bias` is not `[out]`, naming the shapes.
#[track_caller]
pub fn linear<T: Element>(
    x: &Tensor<T>,
    weight: &Tensor<T>,
    bias: Option<&Tensor<T>>,
) -> Tensor<T> {
    or_panic(try_linear(x, weight, bias))
}

/// Like [`linear`], returning an error instead of panicking.
///
/// # Errors
/// [`Error::InvalidArgument`] when `weight` is not 2-D; [`Error::ShapeMismatch`]
/// (op `"linear"`) when `x` does not end in `in` (shapes of `x` and `weight`) or
/// `bias` is not `[out]` (shapes of `weight` and `bias`).
pub fn try_linear<T: Element>(
    x: &Tensor<T>,
    weight: &Tensor<T>,
    bias: Option<&Tensor<T>>,
) -> Result<Tensor<T>> {
    mono!(
        |x: &Tensor<T>, weight: &Tensor<T>, bias: Option<&Tensor<T>>| -> Result<Tensor<T>> {
            check_linear_shapes(weight, bias)?;
            if x.shape().last() != Some(&weight.shape()[1]) {
                return Err(Error::shape("linear", x.shape(), weight.shape()));
            }
            Ok(crate::ops::matmul::linear_nd(x, weight, bias))
        },
        (x, weight, bias)
    )
}

/// Checks that `weight` is `[out, in]` and `bias` (when given) is `[out]`.
pub(crate) fn check_linear_shapes<T: Element>(
    weight: &Tensor<T>,
    bias: Option<&Tensor<T>>,
) -> Result<()> {
    if weight.ndim() != 2 {
        return Err(Error::invalid(
            "linear",
            format!(
                "weight must be 2-D [out_features, in_features], got shape {:?}",
                weight.shape()
            ),
        ));
    }
    if let Some(b) = bias {
        if b.shape() != [weight.shape()[0]] {
            return Err(Error::shape("linear", weight.shape(), b.shape()));
        }
    }
    Ok(())
}

/// Layer normalisation over the last axis, PyTorch's `F.layer_norm(x, (d,), weight,
/// bias, eps)`:
///
/// `y = (x − mean) / sqrt(var + eps) · weight + bias`
///
/// where `mean` and `var` are taken over the last axis of size `d`, `var` is the
/// *biased* variance (divided by `d`, not `d − 1`, unlike
/// [`var_axis`](Tensor::var_axis)), and `weight`, `bias` are `[d]` (each optional:
/// `None` means ones / zeros). One fused op with its own backward rule; gradients
/// flow to `x`, `weight` and `bias`. `eps` is usually `1e-5`.
///
/// ```
/// use ferrograd::{nn::functional::layer_norm, Tensor};
/// // mean 2.5, biased variance 1.25
/// let x = Tensor::<f64>::from_vec(vec![1., 2., 3., 4.], &[1, 4])?;
/// let y = layer_norm(&x, None, None, 0.0);
/// let s = 1.25f64.sqrt();
/// let expected = [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s];
/// for (a, b) in y.to_vec().iter().zip(expected) {
///     assert!((a - b).abs() < 1e-12);
/// }
/// let w = Tensor::<f64>::full(&[4], 2.0);
/// let b = Tensor::<f64>::ones(&[4]);
/// let z = layer_norm(&x, Some(&w), Some(&b), 0.0);
/// assert!((z.to_vec()[0] - (1.0 - 3.0 / s)).abs() < 1e-12);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Panics
/// Panics when `x` is 0-d, or `weight` / `bias` is not `[d]`, naming the shapes.
#[track_caller]
pub fn layer_norm<T: Element>(
    x: &Tensor<T>,
    weight: Option<&Tensor<T>>,
    bias: Option<&Tensor<T>>,
    eps: T,
) -> Tensor<T> {
    or_panic(try_layer_norm(x, weight, bias, eps))
}

/// Like [`layer_norm`], returning an error instead of panicking.
///
/// # Errors
/// [`Error::InvalidArgument`] when `x` is 0-d; [`Error::ShapeMismatch`] (op
/// `"layer_norm"`, shapes of `x` and the parameter) when `weight` or `bias` is not
/// `[d]`, `d` the size of `x`'s last axis.
pub fn try_layer_norm<T: Element>(
    x: &Tensor<T>,
    weight: Option<&Tensor<T>>,
    bias: Option<&Tensor<T>>,
    eps: T,
) -> Result<Tensor<T>> {
    mono!(
        |x: &Tensor<T>,
         weight: Option<&Tensor<T>>,
         bias: Option<&Tensor<T>>,
         eps: T|
         -> Result<Tensor<T>> {
            let Some(&d) = x.shape().last() else {
                return Err(Error::invalid(
                    "layer_norm",
                    "expects a tensor with at least one dimension, got a 0-d tensor",
                ));
            };
            for p in [weight, bias].into_iter().flatten() {
                if p.shape() != [d] {
                    return Err(Error::shape("layer_norm", x.shape(), p.shape()));
                }
            }
            Ok(crate::ops::layer_norm(x, weight, bias, eps))
        },
        (x, weight, bias, eps)
    )
}

/// Inverted dropout, PyTorch's `F.dropout(x, p, training)`: in training, each
/// element is zeroed with probability `p` and the others are scaled by
/// `1 / (1 − p)`, so the expected value is unchanged; with `training == false`
/// it returns `x` itself. The mask is drawn from `rng` (one uniform sample per
/// element, in row-major order) and is a constant of the graph: the gradient is
/// the same mask.
///
/// `p == 0` returns `x`; `p == 1` zeroes everything (as PyTorch, which also
/// accepts `p == 1`).
///
/// ```
/// use ferrograd::nn::functional::dropout;
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// use ferrograd::Tensor;
/// let mut rng = StdRng::seed_from_u64(0);
/// let x = Tensor::<f32>::ones(&[1000]);
/// let y = dropout(&x, 0.2, true, &mut rng).to_vec();
/// assert!(y.iter().all(|&v| v == 0.0 || v == 1.25));
/// let zeroed = y.iter().filter(|&&v| v == 0.0).count();
/// assert!((150..250).contains(&zeroed));
/// assert_eq!(dropout(&x, 0.2, false, &mut rng).to_vec(), x.to_vec());
/// ```
///
/// # Panics
/// Panics when `p` is not in `[0, 1]` (or is NaN), as PyTorch raises.
#[track_caller]
pub fn dropout<T: Element, R: Rng + ?Sized>(
    x: &Tensor<T>,
    p: f64,
    training: bool,
    rng: &mut R,
) -> Tensor<T> {
    or_panic(check_dropout_p(p));
    if !training || p == 0.0 {
        return x.clone();
    }
    let scale: T = if p == 1.0 {
        T::zero()
    } else {
        c(1.0 / (1.0 - p))
    };
    let mask: Vec<T> = (0..x.numel())
        .map(|_| {
            if rng.random::<f64>() < p {
                T::zero()
            } else {
                scale
            }
        })
        .collect();
    x.mul(&Tensor::from_data(mask, x.shape()))
}

/// Checks a dropout probability: `[0, 1]`, as PyTorch.
pub(crate) fn check_dropout_p(p: f64) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::invalid(
            "dropout",
            format!("probability has to be between 0 and 1, got {p}"),
        ))
    }
}

/// Embedding lookup, PyTorch's `F.embedding`: the rows of `weight` (`[num, dim]`)
/// at `ids`, shaped `shape + [dim]` (`shape` describes how the ids are laid out,
/// e.g. `[batch, time]`; its product must be `ids.len()`). Gradients of repeated
/// ids accumulate in the same row of `weight`.
///
/// ```
/// use ferrograd::{nn::functional::embedding, Tensor};
/// let table = Tensor::<f32>::arange(6).reshape(&[3, 2]);
/// let e = embedding(&table, &[2, 0, 2, 1], &[2, 2]);
/// assert_eq!(e.shape(), &[2, 2, 2]);
/// assert_eq!(e.to_vec(), vec![4., 5., 0., 1., 4., 5., 2., 3.]);
/// ```
///
/// # Panics
/// Panics when `weight` is not 2-D, `shape` does not hold `ids.len()` elements, or
/// an id is not below `num`, naming the id.
#[track_caller]
pub fn embedding<T: Element>(weight: &Tensor<T>, ids: &[usize], shape: &[usize]) -> Tensor<T> {
    or_panic(try_embedding(weight, ids, shape))
}

/// Like [`embedding`], returning an error instead of panicking.
///
/// # Errors
/// [`Error::InvalidArgument`] when `weight` is not 2-D, [`Error::LengthMismatch`]
/// when `shape` does not hold `ids.len()` elements, [`Error::IndexOutOfRange`]
/// (op `"embedding"`) naming the first id that is not below `num`.
pub fn try_embedding<T: Element>(
    weight: &Tensor<T>,
    ids: &[usize],
    shape: &[usize],
) -> Result<Tensor<T>> {
    mono!(
        |weight: &Tensor<T>, ids: &[usize], shape: &[usize]| -> Result<Tensor<T>> {
            let &[num, dim] = weight.shape() else {
                return Err(Error::invalid(
                    "embedding",
                    format!(
                        "weight must be 2-D [num_embeddings, embedding_dim], got shape {:?}",
                        weight.shape()
                    ),
                ));
            };
            let expected: usize = shape.iter().product();
            if expected != ids.len() {
                return Err(Error::LengthMismatch {
                    op: "embedding",
                    len: ids.len(),
                    shape: shape.to_vec(),
                    expected,
                });
            }
            if let Some(&bad) = ids.iter().find(|&&i| i >= num) {
                return Err(Error::IndexOutOfRange {
                    op: "embedding",
                    index: bad,
                    size: num,
                    shape: weight.shape().to_vec(),
                });
            }
            let mut out_shape = shape.to_vec();
            out_shape.push(dim);
            Ok(weight.index_select(0, ids).reshape(&out_shape))
        },
        (weight, ids, shape)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{assert_close, check, rand_leaf};
    use rand::SeedableRng;

    #[test]
    fn linear_known_values_and_shapes() {
        let x = Tensor::<f64>::from_vec(vec![1., 2., 3., -1., 0., 1.], &[2, 3]).unwrap();
        let w = Tensor::<f64>::from_vec(vec![1., 0., 2., 0., 1., -1.], &[2, 3]).unwrap();
        let b = Tensor::<f64>::from_vec(vec![10., 20.], &[2]).unwrap();
        // rows: [1+6, 2-3] + b, [-1+2, 0-1] + b
        assert_close(&linear(&x, &w, Some(&b)), &[17., 19., 11., 19.], 0.0);
        assert_close(&linear(&x, &w, None), &[7., -1., 1., -1.], 0.0);
        // a single vector, and a 3-D batch
        assert_eq!(
            linear(&x.narrow(0, 0, 1).squeeze(0), &w, Some(&b)).shape(),
            &[2]
        );
        let x3 = Tensor::<f64>::ones(&[4, 5, 3]);
        assert_eq!(linear(&x3, &w, Some(&b)).shape(), &[4, 5, 2]);
    }

    #[test]
    fn linear_errors_name_the_shapes() {
        let w = Tensor::<f32>::zeros(&[2, 3]);
        let e = try_linear(&Tensor::zeros(&[4, 5]), &w, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linear: incompatible shapes [4, 5] and [2, 3]"
        );
        let e = try_linear(&Tensor::zeros(&[4, 3]), &w, Some(&Tensor::zeros(&[3]))).unwrap_err();
        assert_eq!(e.to_string(), "linear: incompatible shapes [2, 3] and [3]");
        let e = try_linear(&Tensor::<f32>::zeros(&[3]), &Tensor::zeros(&[3]), None).unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument { op: "linear", .. }),
            "{e}"
        );
        assert!(try_linear(&Tensor::scalar(1.0), &w, None).is_err());
    }

    #[test]
    #[should_panic(expected = "linear: incompatible shapes [4, 5] and [2, 3]")]
    fn linear_panics_with_the_shapes() {
        linear(
            &Tensor::<f32>::zeros(&[4, 5]),
            &Tensor::zeros(&[2, 3]),
            None,
        );
    }

    #[test]
    fn linear_gradcheck() {
        let (w, b) = (rand_leaf(&[3, 4], 1), rand_leaf(&[3], 2));
        for (shape, seed) in [(vec![4], 3), (vec![2, 4], 4), (vec![2, 3, 4], 5)] {
            let x = rand_leaf(&shape, seed);
            check(
                |t| linear(&t[0], &t[1], Some(&t[2])),
                &[x.clone(), w.clone(), b.clone()],
            );
            check(|t| linear(&t[0], &t[1], None), &[x, w.clone()]);
        }
    }

    #[test]
    fn layer_norm_hand_computed() {
        // row 0: mean 2, deviations [-1, 0, 1], biased var 2/3
        // row 1: mean 0, deviations [-3, 0, 3], biased var 6
        let x = Tensor::<f64>::from_vec(vec![1., 2., 3., -3., 0., 3.], &[2, 3]).unwrap();
        let eps = 1e-5;
        let (s0, s1) = ((2.0f64 / 3.0 + eps).sqrt(), (6.0f64 + eps).sqrt());
        let plain = layer_norm(&x, None, None, eps);
        assert_close(
            &plain,
            &[-1. / s0, 0., 1. / s0, -3. / s1, 0., 3. / s1],
            1e-12,
        );
        let w = Tensor::<f64>::from_vec(vec![1., 2., -1.], &[3]).unwrap();
        let b = Tensor::<f64>::from_vec(vec![0., 0.5, 1.], &[3]).unwrap();
        assert_close(
            &layer_norm(&x, Some(&w), Some(&b), eps),
            &[-1. / s0, 0.5, 1. - 1. / s0, -3. / s1, 0.5, 1. - 3. / s1],
            1e-12,
        );
        // weight only / bias only
        assert_close(
            &layer_norm(&x, Some(&w), None, eps),
            &[-1. / s0, 0., -1. / s0, -3. / s1, 0., -3. / s1],
            1e-12,
        );
        assert_close(
            &layer_norm(&x, None, Some(&b), eps),
            &[-1. / s0, 0.5, 1. + 1. / s0, -3. / s1, 0.5, 1. + 3. / s1],
            1e-12,
        );
        // biased: a row of two values ±1 normalises to ±1 (eps 0), not ±1/√2
        let pair = Tensor::<f32>::from_vec(vec![-1., 1.], &[2]).unwrap();
        assert_close(&layer_norm(&pair, None, None, 0.0), &[-1., 1.], 1e-6);
        // a constant row gives zeros (then bias), not NaN, thanks to eps
        let flat = Tensor::<f32>::full(&[1, 4], 3.0);
        assert_close(&layer_norm(&flat, None, None, 1e-5), &[0.; 4], 0.0);
    }

    #[test]
    fn layer_norm_errors() {
        let x = Tensor::<f64>::zeros(&[2, 3]);
        let e = try_layer_norm(&x, Some(&Tensor::ones(&[2])), None, 1e-5).unwrap_err();
        assert_eq!(
            e.to_string(),
            "layer_norm: incompatible shapes [2, 3] and [2]"
        );
        let e = try_layer_norm(&x, None, Some(&Tensor::ones(&[1, 3])), 1e-5).unwrap_err();
        assert_eq!(
            e.to_string(),
            "layer_norm: incompatible shapes [2, 3] and [1, 3]"
        );
        assert!(try_layer_norm(&Tensor::scalar(1.0), None, None, 1e-5).is_err());
    }

    #[test]
    fn layer_norm_gradcheck() {
        for (shape, seed) in [(vec![5], 11), (vec![3, 4], 12), (vec![2, 3, 4], 13)] {
            let d = *shape.last().unwrap();
            let x = rand_leaf(&shape, seed);
            let w = rand_leaf(&[d], seed + 100);
            let b = rand_leaf(&[d], seed + 200);
            check(
                |t| layer_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5),
                &[x.clone(), w, b],
            );
            check(|t| layer_norm(&t[0], None, None, 1e-5), &[x]);
        }
    }

    #[test]
    fn dropout_masks_scales_and_is_identity_in_eval() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let x = Tensor::<f64>::full(&[100, 100], 2.0).requires_grad();
        let y = dropout(&x, 0.3, true, &mut rng);
        let v = y.to_vec();
        let scaled = 2.0 / 0.7;
        assert!(v.iter().all(|&e| e == 0.0 || (e - scaled).abs() < 1e-12));
        let frac = v.iter().filter(|&&e| e == 0.0).count() as f64 / v.len() as f64;
        assert!((frac - 0.3).abs() < 0.02, "fraction zeroed {frac}");
        // the gradient is the mask: 0 or 1/(1-p), where the output was 0 or scaled
        let g = y.sum().backward().unwrap();
        let gx = g.get(&x).unwrap().to_vec();
        for (gi, yi) in gx.iter().zip(&v) {
            assert_eq!(*gi == 0.0, *yi == 0.0);
        }
        assert_eq!(dropout(&x, 0.3, false, &mut rng).id(), x.id());
        assert_eq!(dropout(&x, 0.0, true, &mut rng).id(), x.id());
        assert_eq!(dropout(&x, 1.0, true, &mut rng).to_vec(), vec![0.0; 10_000]);
        for bad in [-0.1, 1.1, f64::NAN] {
            assert!(check_dropout_p(bad).is_err());
        }
    }

    #[test]
    #[should_panic(expected = "dropout: probability has to be between 0 and 1, got 1.5")]
    fn dropout_rejects_p_above_one() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        dropout(&Tensor::<f32>::ones(&[2]), 1.5, true, &mut rng);
    }

    #[test]
    fn embedding_lookup_errors_and_gradcheck() {
        let table = Tensor::<f64>::arange(8).reshape(&[4, 2]);
        let e = embedding(&table, &[3, 3, 0], &[3]);
        assert_eq!(e.shape(), &[3, 2]);
        assert_close(&e, &[6., 7., 6., 7., 0., 1.], 0.0);
        // an empty batch and a scalar id
        assert_eq!(embedding(&table, &[], &[0, 5]).shape(), &[0, 5, 2]);
        assert_eq!(embedding(&table, &[1], &[]).shape(), &[2]);
        let err = try_embedding(&table, &[0, 4], &[2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "embedding: index 4 is out of range for an axis of size 4 (shape [4, 2])"
        );
        let err = try_embedding(&table, &[0, 1], &[3]).unwrap_err();
        assert!(matches!(
            err,
            Error::LengthMismatch {
                op: "embedding",
                ..
            }
        ));
        assert!(try_embedding(&Tensor::<f64>::zeros(&[4]), &[0], &[1]).is_err());
        let w = rand_leaf(&[4, 3], 21);
        check(|t| embedding(&t[0], &[1, 3, 1, 1, 0, 3], &[2, 3]), &[w]);
    }
}
