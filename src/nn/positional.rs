//! Positional embeddings: learned (an `Embedding` of positions) or the fixed
//! sinusoids of Vaswani et al.

use rand::Rng;

use crate::element::{c, Element};
use crate::error::{or_panic, Error, Result};
use crate::nn::{Embedding, Module, ModuleParams};
use crate::tensor::Tensor;

/// The fixed sinusoidal position table of "Attention Is All You Need",
/// `[n_positions, dim]`:
///
/// ```text
/// PE[pos, 2i]     = sin(pos / 10000^(2i / dim))
/// PE[pos, 2i + 1] = cos(pos / 10000^(2i / dim))
/// ```
///
/// (computed in `f64`, then converted; an odd `dim` ends with a sine column).
///
/// ```
/// use ferrograd::nn::sinusoidal_positions;
/// let pe = sinusoidal_positions::<f64>(3, 4);
/// assert_eq!(pe.shape(), &[3, 4]);
/// let v = pe.to_vec();
/// assert_eq!(&v[..4], &[0.0, 1.0, 0.0, 1.0]); // position 0: sin 0, cos 0
/// assert_eq!(v[4], 1f64.sin());               // position 1, i = 0
/// assert_eq!(v[7], (1.0 / 100.0f64).cos());   // position 1, i = 1: 10000^(2/4) = 100
/// ```
pub fn sinusoidal_positions<T: Element>(n_positions: usize, dim: usize) -> Tensor<T> {
    let mut data = Vec::with_capacity(n_positions * dim);
    for pos in 0..n_positions {
        for j in 0..dim {
            let i2 = (j - j % 2) as f64;
            let angle = pos as f64 / 10000f64.powf(i2 / dim as f64);
            data.push(c(if j % 2 == 0 { angle.sin() } else { angle.cos() }));
        }
    }
    Tensor::from_data(data, &[n_positions, dim])
}

/// Position vectors for the first `t` positions of a sequence, added to the
/// token embeddings: learned (a table of `[n_positions, dim]` trained with the
/// model, its parameter named `"weight"` as an [`Embedding`]'s) or the fixed
/// table of [`sinusoidal_positions`].
///
/// The sinusoidal table is a constant: it is not a parameter, and it is not
/// a buffer either (it is not saved in checkpoints, as PyTorch's
/// `register_buffer(.., persistent=False)`), since it is recomputed from
/// `n_positions` and `dim` alone.
///
/// ```
/// use ferrograd::nn::{Module, ModuleParams, PositionalEmbedding};
/// use ferrograd::rand::{rngs::StdRng, SeedableRng};
/// use ferrograd::Tensor;
/// let learned = PositionalEmbedding::<f32>::learned(16, 8, &mut StdRng::seed_from_u64(0));
/// assert_eq!(learned.forward_len(5).shape(), &[5, 8]);
/// assert_eq!(learned.named_parameters()[0].0, "weight");
///
/// let fixed = PositionalEmbedding::<f32>::sinusoidal(16, 8);
/// assert!(fixed.named_parameters().is_empty());
/// // `forward` adds the positions to `[.., T, dim]` token embeddings
/// let x = Tensor::<f32>::zeros(&[2, 5, 8]);
/// assert_eq!(fixed.forward(&x).narrow(0, 1, 1).reshape(&[5, 8]).to_vec(), fixed.forward_len(5).to_vec());
/// ```
#[derive(Debug)]
pub enum PositionalEmbedding<T: Element = f32> {
    /// A learned table, `[n_positions, dim]`.
    Learned(Embedding<T>),
    /// The fixed table of [`sinusoidal_positions`], `[n_positions, dim]`.
    Sinusoidal(Tensor<T>),
}

const OP: &str = "PositionalEmbedding";

impl<T: Element> PositionalEmbedding<T> {
    /// A learned table of `n_positions` vectors of size `dim`, drawn from N(0, 1)
    /// as [`Embedding::new`] ([`Gpt`](crate::nn::Gpt) re-initialises it with
    /// N(0, 0.02²)).
    pub fn learned<R: Rng + ?Sized>(n_positions: usize, dim: usize, rng: &mut R) -> Self {
        PositionalEmbedding::Learned(Embedding::new(n_positions, dim, rng))
    }

    /// The fixed sinusoidal table of [`sinusoidal_positions`].
    pub fn sinusoidal(n_positions: usize, dim: usize) -> Self {
        PositionalEmbedding::Sinusoidal(sinusoidal_positions(n_positions, dim))
    }

    /// The whole table, `[n_positions, dim]`.
    pub fn table(&self) -> &Tensor<T> {
        match self {
            PositionalEmbedding::Learned(e) => e.weight(),
            PositionalEmbedding::Sinusoidal(t) => t,
        }
    }

    /// The number of positions (the longest sequence it can embed).
    pub fn n_positions(&self) -> usize {
        self.table().shape()[0]
    }

    /// The size of each vector.
    pub fn dim(&self) -> usize {
        self.table().shape()[1]
    }

    /// The vectors of positions `0..t`, `[t, dim]`.
    ///
    /// # Panics
    /// Panics when `t > n_positions`, naming both.
    #[track_caller]
    pub fn forward_len(&self, t: usize) -> Tensor<T> {
        or_panic(self.try_forward_len(t))
    }

    /// Like [`forward_len`](PositionalEmbedding::forward_len), returning an error
    /// instead of panicking.
    ///
    /// ```
    /// use ferrograd::nn::PositionalEmbedding;
    /// let err = PositionalEmbedding::<f32>::sinusoidal(4, 2).try_forward_len(6).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "PositionalEmbedding: a sequence of length 6 is longer than the 4 positions of the table"
    /// );
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `t > n_positions`.
    pub fn try_forward_len(&self, t: usize) -> Result<Tensor<T>> {
        let n = self.n_positions();
        if t > n {
            return Err(Error::invalid(
                OP,
                format!("a sequence of length {t} is longer than the {n} positions of the table"),
            ));
        }
        Ok(match self {
            PositionalEmbedding::Learned(e) => {
                let ids: Vec<usize> = (0..t).collect();
                e.try_forward_ids(&ids, &[t])?
            }
            PositionalEmbedding::Sinusoidal(table) => table.narrow(0, 0, t),
        })
    }

    /// Like [`forward`](Module::forward), returning an error instead of panicking.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `x` is not `[.., T, dim]` with
    /// `T ≤ n_positions`.
    pub fn try_forward(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let s = x.shape();
        if s.len() < 2 || s[s.len() - 1] != self.dim() {
            return Err(Error::invalid(
                OP,
                format!(
                    "the input must be [.., time, {}], got shape {s:?}",
                    self.dim()
                ),
            ));
        }
        Ok(x + self.try_forward_len(s[s.len() - 2])?)
    }
}

impl<T: Element> Module<T> for PositionalEmbedding<T> {
    /// `x` `[.., T, dim]` plus the vectors of positions `0..T`.
    ///
    /// # Panics
    /// Panics when `x` is not `[.., T, dim]` with `T ≤ n_positions`.
    #[track_caller]
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        or_panic(self.try_forward(x))
    }
}

/// A learned table has one parameter, `"weight"`; the sinusoidal table none
/// (and no buffer: it is recomputed, not saved).
impl<T: Element> ModuleParams<T> for PositionalEmbedding<T> {
    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        match self {
            PositionalEmbedding::Learned(e) => e.named_parameters(),
            PositionalEmbedding::Sinusoidal(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinusoids_known_values() {
        let pe = sinusoidal_positions::<f64>(5, 6).to_vec();
        for pos in 0..5 {
            for j in 0..6 {
                let a = pos as f64 / 10000f64.powf((2 * (j / 2)) as f64 / 6.0);
                let want = if j % 2 == 0 { a.sin() } else { a.cos() };
                assert_eq!(pe[pos * 6 + j], want, "pos {pos} j {j}");
            }
        }
        // odd width ends with a sine
        let pe = sinusoidal_positions::<f32>(2, 3).to_vec();
        assert_eq!(pe[5], ((1.0f64) / 10000f64.powf(2.0 / 3.0)).sin() as f32);
        assert_eq!(sinusoidal_positions::<f32>(0, 4).shape(), &[0, 4]);
    }
}
