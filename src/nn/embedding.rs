//! `Embedding`: a table of learned vectors looked up by integer id.

use rand::Rng;

use crate::element::Element;
use crate::error::{or_panic, Error, Result};
use crate::nn::functional::try_embedding;
use crate::nn::linear::as_parameter;
use crate::nn::Module;
use crate::tensor::Tensor;

/// A lookup table of `num_embeddings` vectors of size `embedding_dim`, as
/// PyTorch's `nn.Embedding`: the weight is `[num_embeddings, embedding_dim]`,
/// named `"weight"`, initialised from N(0, 1).
///
/// [`forward_ids`](Embedding::forward_ids) takes the ids as `usize` with the shape
/// they are laid out in and returns `shape + [embedding_dim]`; the lookup is an
/// [`index_select`](Tensor::index_select), so the gradients of repeated ids
/// accumulate in their row. [`Module::forward`] takes the ids as a tensor of
/// whole numbers stored as floats.
///
/// ```
/// use ferrograd::nn::{Embedding, Module};
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// use ferrograd::Tensor;
///
/// let emb: Embedding = Embedding::new(10, 4, &mut StdRng::seed_from_u64(0));
/// // a batch of 2 sequences of 3 tokens
/// let e = emb.forward_ids(&[1, 5, 1, 0, 9, 9], &[2, 3]);
/// assert_eq!(e.shape(), &[2, 3, 4]);
///
/// let grads = e.sum().backward()?;
/// let g = grads.get(emb.weight()).unwrap().to_vec();
/// assert_eq!(&g[4..8], &[2.0; 4]); // id 1 was used twice
/// assert_eq!(&g[8..12], &[0.0; 4]); // id 2 not at all
///
/// let ids = Tensor::<f32>::from_vec(vec![1., 5., 1., 0., 9., 9.], &[2, 3])?;
/// assert_eq!(emb.forward(&ids).to_vec(), e.to_vec());
/// # Ok::<(), ferrograd::Error>(())
/// ```
#[derive(Debug, Module)]
pub struct Embedding<T: Element = f32> {
    weight: Tensor<T>,
}

impl<T: Element> Embedding<T> {
    /// A table of `num_embeddings` vectors of size `embedding_dim`, drawn from the
    /// standard normal distribution (PyTorch's default).
    pub fn new<R: Rng + ?Sized>(num_embeddings: usize, embedding_dim: usize, rng: &mut R) -> Self {
        Embedding {
            weight: Tensor::randn(&[num_embeddings, embedding_dim], rng).requires_grad(),
        }
    }

    /// A table with the given weight `[num_embeddings, embedding_dim]` (e.g.
    /// pretrained vectors). A leaf that requires a gradient is kept as it is; any
    /// other tensor becomes a new leaf sharing its data.
    ///
    /// ```
    /// use ferrograd::{nn::Embedding, Tensor};
    /// let emb = Embedding::from_weight(Tensor::<f32>::eye(3))?;
    /// assert_eq!(emb.forward_ids(&[2], &[1]).to_vec(), vec![0., 0., 1.]);
    /// assert!(Embedding::from_weight(Tensor::<f32>::zeros(&[3])).is_err());
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `weight` is not 2-D.
    pub fn from_weight(weight: Tensor<T>) -> Result<Self> {
        if weight.ndim() != 2 {
            return Err(Error::invalid(
                "Embedding",
                format!(
                    "weight must be 2-D [num_embeddings, embedding_dim], got shape {:?}",
                    weight.shape()
                ),
            ));
        }
        Ok(Embedding {
            weight: as_parameter(weight),
        })
    }

    /// The table, `[num_embeddings, embedding_dim]`.
    pub fn weight(&self) -> &Tensor<T> {
        &self.weight
    }

    /// The number of vectors (ids run from 0 to `num_embeddings − 1`).
    pub fn num_embeddings(&self) -> usize {
        self.weight.shape()[0]
    }

    /// The size of each vector.
    pub fn embedding_dim(&self) -> usize {
        self.weight.shape()[1]
    }

    /// The vectors of `ids`, laid out as `shape` (whose product must be
    /// `ids.len()`): the result is `shape + [embedding_dim]`. `shape` may be `[]`
    /// for a single id.
    ///
    /// # Panics
    /// Panics when an id is not below `num_embeddings`, naming the id, or when
    /// `shape` does not hold `ids.len()` elements.
    #[track_caller]
    pub fn forward_ids(&self, ids: &[usize], shape: &[usize]) -> Tensor<T> {
        or_panic(self.try_forward_ids(ids, shape))
    }

    /// Like [`forward_ids`](Embedding::forward_ids), returning an error instead of
    /// panicking.
    ///
    /// ```
    /// use ferrograd::{nn::Embedding, Error, Tensor};
    /// let emb = Embedding::from_weight(Tensor::<f32>::zeros(&[5, 2]))?;
    /// let err = emb.try_forward_ids(&[0, 7], &[2]).unwrap_err();
    /// assert!(matches!(err, Error::IndexOutOfRange { index: 7, size: 5, .. }));
    /// assert_eq!(
    ///     err.to_string(),
    ///     "embedding: index 7 is out of range for an axis of size 5 (shape [5, 2])"
    /// );
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] naming the first id that is not below
    /// `num_embeddings`; [`Error::LengthMismatch`] when `shape` does not hold
    /// `ids.len()` elements.
    pub fn try_forward_ids(&self, ids: &[usize], shape: &[usize]) -> Result<Tensor<T>> {
        try_embedding(&self.weight, ids, shape)
    }

    /// Like [`forward`](Module::forward), returning an error instead of panicking.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when an element of `ids` is not a whole number
    /// in `[0, num_embeddings)` (negative, fractional, NaN or too large), naming it.
    pub fn try_forward(&self, ids: &Tensor<T>) -> Result<Tensor<T>> {
        let num = self.num_embeddings();
        let idx = ids
            .to_vec()
            .into_iter()
            .map(|v| {
                let f = v.to_f64_lossless();
                if f.fract() == 0.0 && f >= 0.0 && f < num as f64 {
                    Ok(f as usize)
                } else {
                    Err(Error::invalid(
                        "embedding",
                        format!(
                            "id {f} is not a whole number in [0, {num}) (the table has {num} vectors)"
                        ),
                    ))
                }
            })
            .collect::<Result<Vec<usize>>>()?;
        try_embedding(&self.weight, &idx, ids.shape())
    }
}

impl<T: Element> Module<T> for Embedding<T> {
    /// The vectors of the ids in `ids` (whole numbers stored as floats; not
    /// differentiated): `ids.shape() + [embedding_dim]`.
    ///
    /// # Panics
    /// Panics when an element of `ids` is not a whole number in
    /// `[0, num_embeddings)`, naming it.
    #[track_caller]
    fn forward(&self, ids: &Tensor<T>) -> Tensor<T> {
        or_panic(self.try_forward(ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{assert_close, check, rand_leaf};
    use rand::SeedableRng;

    #[test]
    fn lookup_known_values_and_shapes() {
        let emb = Embedding::from_weight(Tensor::<f64>::arange(6).reshape(&[3, 2])).unwrap();
        assert_eq!((emb.num_embeddings(), emb.embedding_dim()), (3, 2));
        let e = emb.forward_ids(&[2, 0, 1, 2], &[2, 2]);
        assert_eq!(e.shape(), &[2, 2, 2]);
        assert_close(&e, &[4., 5., 0., 1., 2., 3., 4., 5.], 0.0);
        assert_eq!(emb.forward_ids(&[1], &[]).shape(), &[2]);
        assert_eq!(emb.forward_ids(&[], &[0]).shape(), &[0, 2]);
        let ids = Tensor::<f64>::from_vec(vec![2., 0., 1., 2.], &[2, 2]).unwrap();
        assert_eq!(emb.forward(&ids).to_vec(), e.to_vec());
        assert_eq!(emb.forward(&ids.t()).shape(), &[2, 2, 2]);
        assert_close(
            &emb.forward(&ids.t()),
            &[4., 5., 2., 3., 0., 1., 4., 5.],
            0.0,
        );
        let names: Vec<_> = emb.named_parameters().into_iter().map(|p| p.0).collect();
        assert_eq!(names, ["weight"]);
    }

    #[test]
    fn bad_ids_are_named() {
        let emb = Embedding::<f32>::new(4, 3, &mut rand::rngs::StdRng::seed_from_u64(0));
        for bad in [-1.0, 1.5, 4.0, f32::NAN] {
            let ids = Tensor::<f32>::from_vec(vec![0.0, bad], &[2]).unwrap();
            let err = emb.try_forward(&ids).unwrap_err().to_string();
            assert!(err.contains(&format!("id {}", bad as f64)), "{err}");
        }
        let err = emb.try_forward_ids(&[0, 1], &[3]).unwrap_err();
        assert!(matches!(err, Error::LengthMismatch { .. }), "{err}");
    }

    #[test]
    #[should_panic(
        expected = "embedding: index 9 is out of range for an axis of size 4 (shape [4, 3])"
    )]
    fn forward_ids_panics_naming_the_id() {
        let emb = Embedding::<f32>::new(4, 3, &mut rand::rngs::StdRng::seed_from_u64(0));
        emb.forward_ids(&[1, 9], &[2]);
    }

    #[test]
    fn normal_init() {
        let emb = Embedding::<f64>::new(200, 100, &mut rand::rngs::StdRng::seed_from_u64(4));
        let w = emb.weight().to_vec();
        let mean = w.iter().sum::<f64>() / w.len() as f64;
        let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / w.len() as f64;
        assert!(
            mean.abs() < 0.02 && (var.sqrt() - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
        assert!(emb.weight().is_leaf() && emb.weight().needs_grad());
    }

    #[test]
    fn gradcheck_repeated_ids() {
        let w = rand_leaf(&[5, 3], 8);
        check(
            |t| {
                let emb = Embedding::from_weight(t[0].clone()).unwrap();
                emb.forward_ids(&[4, 0, 4, 4, 2, 0], &[3, 2]).tanh()
            },
            &[w.clone()],
        );
        // counts: the gradient of a sum is how often each row was used
        let emb = Embedding::from_weight(w).unwrap();
        let g = emb
            .forward_ids(&[4, 0, 4, 4], &[4])
            .sum()
            .backward()
            .unwrap();
        assert_close(
            g.get(emb.weight()).unwrap(),
            &[1., 1., 1., 0., 0., 0., 0., 0., 0., 0., 0., 0., 3., 3., 3.],
            0.0,
        );
    }
}
