//! Constructors: from data, filled, ranges, identity, random.

use rand::Rng;

use crate::element::{c, mono, Element};
use crate::error::{or_panic, Error, Result};
use crate::shape::checked_numel;
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// A tensor of `shape` holding `data` in row-major order.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3])?;
    /// assert_eq!(x.shape(), &[2, 3]);
    /// assert!(Tensor::<f32>::from_vec(vec![1., 2.], &[3]).is_err());
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `data.len()` is not the product of `shape`.
    pub fn from_vec(data: Vec<T>, shape: &[usize]) -> Result<Tensor<T>> {
        mono!(
            |data: Vec<T>, shape: &[usize]| -> Result<Tensor<T>> {
                Tensor::from_vec_body(data, shape)
            },
            (data, shape)
        )
    }

    fn from_vec_body(data: Vec<T>, shape: &[usize]) -> Result<Tensor<T>> {
        let expected = checked_numel("from_vec", shape)?;
        if data.len() != expected {
            return Err(Error::LengthMismatch {
                op: "from_vec",
                len: data.len(),
                shape: shape.to_vec(),
                expected,
            });
        }
        Ok(Tensor::from_data(data, shape))
    }

    /// Like [`from_vec`](Tensor::from_vec), copying from a slice.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `data.len()` is not the product of `shape`.
    pub fn from_slice(data: &[T], shape: &[usize]) -> Result<Tensor<T>> {
        Tensor::from_vec(data.to_vec(), shape).map_err(|e| match e {
            Error::LengthMismatch {
                len,
                shape,
                expected,
                ..
            } => Error::LengthMismatch {
                op: "from_slice",
                len,
                shape,
                expected,
            },
            e => e,
        })
    }

    /// A 0-d tensor (shape `[]`) holding `v`.
    ///
    /// ```
    /// let w = ferrograd::Tensor::scalar(0.17f32);
    /// assert_eq!(w.shape(), &[] as &[usize]);
    /// assert_eq!(w.item(), 0.17);
    /// ```
    pub fn scalar(v: T) -> Tensor<T> {
        Tensor::from_data(vec![v], &[])
    }

    /// A tensor of `shape` filled with `v`.
    ///
    /// # Panics
    /// Panics when the shape has more elements than memory can address (as do
    /// `zeros`, `ones`, `randn` and `rand_uniform`).
    #[track_caller]
    pub fn full(shape: &[usize], v: T) -> Tensor<T> {
        Tensor::filled("full", shape, v)
    }

    #[track_caller]
    fn filled(op: &'static str, shape: &[usize], v: T) -> Tensor<T> {
        let n = or_panic(checked_numel(op, shape));
        Tensor::from_data(crate::pool::filled(n, v), shape)
    }

    /// A tensor of zeros.
    #[track_caller]
    ///
    /// ```
    /// let z = ferrograd::Tensor::<f64>::zeros(&[2, 3]);
    /// assert_eq!(z.to_vec(), vec![0.0; 6]);
    /// ```
    pub fn zeros(shape: &[usize]) -> Tensor<T> {
        Tensor::filled("zeros", shape, T::zero())
    }

    /// A tensor of ones.
    #[track_caller]
    pub fn ones(shape: &[usize]) -> Tensor<T> {
        Tensor::filled("ones", shape, T::one())
    }

    /// Zeros with the shape of `t`.
    pub fn zeros_like(t: &Tensor<T>) -> Tensor<T> {
        Tensor::zeros(t.shape())
    }

    /// Ones with the shape of `t`.
    pub fn ones_like(t: &Tensor<T>) -> Tensor<T> {
        Tensor::ones(t.shape())
    }

    /// `[0, 1, …, n − 1]` as a 1-D tensor.
    ///
    /// ```
    /// assert_eq!(ferrograd::Tensor::<f32>::arange(4).to_vec(), vec![0., 1., 2., 3.]);
    /// ```
    pub fn arange(n: usize) -> Tensor<T> {
        Tensor::from_data((0..n).map(|i| c(i as f64)).collect(), &[n])
    }

    /// The `n × n` identity matrix.
    ///
    /// ```
    /// assert_eq!(ferrograd::Tensor::<f32>::eye(2).to_vec(), vec![1., 0., 0., 1.]);
    /// ```
    #[track_caller]
    pub fn eye(n: usize) -> Tensor<T> {
        let mut data = crate::pool::filled(or_panic(checked_numel("eye", &[n, n])), T::zero());
        for i in 0..n {
            data[i * n + i] = T::one();
        }
        Tensor::from_data(data, &[n, n])
    }

    /// Samples of the standard normal distribution.
    ///
    /// ```
    /// use ferrograd::{rand::SeedableRng, Tensor};
    /// let mut rng = ferrograd::rand::rngs::StdRng::seed_from_u64(0);
    /// let w = Tensor::<f32>::randn(&[256, 256], &mut rng);
    /// let mean = w.mean().item();
    /// let std = w.var_axis(0, false).mean().item().sqrt();
    /// assert!(mean.abs() < 0.02 && (std - 1.0).abs() < 0.02);
    /// ```
    #[track_caller]
    pub fn randn<R: Rng + ?Sized>(shape: &[usize], rng: &mut R) -> Tensor<T> {
        let data = (0..or_panic(checked_numel("randn", shape)))
            .map(|_| T::sample_normal(rng))
            .collect();
        Tensor::from_data(data, shape)
    }

    /// Samples of the uniform distribution on `[low, high)`.
    ///
    /// # Panics
    /// Panics unless `low <= high` and both are finite.
    #[track_caller]
    pub fn rand_uniform<R: Rng + ?Sized>(
        shape: &[usize],
        low: T,
        high: T,
        rng: &mut R,
    ) -> Tensor<T> {
        assert!(
            low.is_finite() && high.is_finite() && low <= high,
            "rand_uniform: invalid bounds [{low}, {high})"
        );
        let data = (0..or_panic(checked_numel("rand_uniform", shape)))
            .map(|_| T::sample_uniform(low, high, rng))
            .collect();
        Tensor::from_data(data, shape)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Error, Tensor};

    #[test]
    fn constructors() {
        let e = Tensor::<f32>::from_vec(vec![1.0; 5], &[2, 3]).unwrap_err();
        assert!(matches!(
            e,
            Error::LengthMismatch {
                len: 5,
                expected: 6,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "from_vec: 5 values cannot fill shape [2, 3] (6 elements)"
        );
        assert!(Tensor::<f32>::from_slice(&[1.0], &[]).is_ok());
        assert_eq!(Tensor::<f64>::full(&[2], 7.0).to_vec(), vec![7.0, 7.0]);
        assert_eq!(
            Tensor::<f64>::ones_like(&Tensor::zeros(&[0, 3])).shape(),
            &[0, 3]
        );
        assert_eq!(Tensor::<f64>::eye(3).sum().item(), 3.0);
        // shapes whose element count overflows are refused, never wrapped
        let huge = [1usize << 32, 1 << 32];
        let e = Tensor::<f32>::from_vec(vec![], &huge).unwrap_err();
        assert_eq!(
            e.to_string(),
            "from_vec: shape [4294967296, 4294967296] has more elements than memory can address"
        );
        assert!(Tensor::<f32>::from_vec(vec![], &[0, 1 << 32, 1 << 32]).is_err());
        assert!(std::panic::catch_unwind(|| Tensor::<f32>::zeros(&huge)).is_err());
        let x = Tensor::<f32>::zeros(&[0]);
        assert!(x.try_reshape(&[0, 1 << 40, 1 << 40]).is_err());
        assert!(Tensor::<f32>::scalar(1.0).try_broadcast_to(&huge).is_err());
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
        let u = Tensor::<f64>::rand_uniform(&[1000], -2.0, 3.0, &mut rng).to_vec();
        assert!(u.iter().all(|&v| (-2.0..3.0).contains(&v)));
    }
}
