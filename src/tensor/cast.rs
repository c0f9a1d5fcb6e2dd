//! `cast`: a copy of a tensor's values in another element type.

use crate::element::Element;
use crate::error::{or_panic, Error, Result};
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// A copy of the values as element type `U` (`f32` ↔ `f64`, or the same
    /// type): `f64` → `f32` rounds to nearest, `f32` → `f64` is exact. The copy
    /// is cut from the graph (it never needs a gradient), so casting a tensor
    /// that needs a gradient is refused rather than silently stopping gradients
    /// there (also under [`no_grad`](crate::no_grad), so that code does not
    /// change meaning with the grad mode): [`detach`](Tensor::detach) it first.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![0.1, 2.5], &[2])?;
    /// let y: Tensor<f32> = x.cast::<f32>();
    /// assert_eq!(y.to_vec(), vec![0.1f32, 2.5]);
    /// assert_eq!(y.cast::<f64>().to_vec(), vec![0.1f32 as f64, 2.5]);
    ///
    /// let w = x.requires_grad();
    /// assert!(w.try_cast::<f32>().is_err());
    /// assert_eq!(w.detach().cast::<f32>().shape(), &[2]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// Panics when this tensor needs a gradient (see
    /// [`try_cast`](Tensor::try_cast)).
    #[track_caller]
    pub fn cast<U: Element>(&self) -> Tensor<U> {
        or_panic(self.try_cast())
    }
}

/// Fallible forms: each `try_x` is `x` returning [`Result`] instead of
/// panicking (the error carries the message the panic would print).
impl<T: Element> Tensor<T> {
    /// Like [`cast`](Tensor::cast), returning [`Error::InvalidArgument`] instead
    /// of panicking when the tensor needs a gradient.
    pub fn try_cast<U: Element>(&self) -> Result<Tensor<U>> {
        if self.needs_grad() {
            return Err(Error::invalid(
                "cast",
                format!(
                    "the tensor of shape {:?} needs a gradient, and cast from {} to {} is \
                     not differentiable; call detach() first to cast its values",
                    self.shape(),
                    T::DTYPE,
                    U::DTYPE
                ),
            ));
        }
        let data = self
            .to_vec()
            .into_iter()
            .map(|v| U::from_f64_lossy(v.to_f64_lossless()))
            .collect();
        Ok(Tensor::from_data(data, self.shape()))
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn rounds_to_nearest_and_keeps_specials() {
        let x = Tensor::<f64>::from_vec(
            vec![1.0 + 1e-12, f64::NAN, f64::INFINITY, -0.0, 1e300, 1e-320],
            &[2, 3],
        )
        .unwrap();
        let y = x.t().cast::<f32>();
        assert_eq!(y.shape(), &[3, 2]);
        let v = y.to_vec();
        assert_eq!(v[0], 1.0);
        assert_eq!(v[1], -0.0);
        assert!(v[2].is_nan());
        assert_eq!(v[3], f32::INFINITY);
        assert_eq!(v[4], f32::INFINITY);
        assert_eq!(v[5], 0.0);
        let z = x.cast::<f64>();
        assert!(!z.shares_storage(&x), "a copy");
        assert_eq!(z.to_vec()[0], 1.0 + 1e-12);
    }

    #[test]
    fn refuses_a_tensor_that_needs_a_gradient() {
        let w = Tensor::<f32>::ones(&[2]).requires_grad();
        let e = w.try_cast::<f64>().unwrap_err().to_string();
        assert_eq!(
            e,
            "cast: the tensor of shape [2] needs a gradient, and cast from f32 to f64 is \
             not differentiable; call detach() first to cast its values"
        );
        let y = {
            let _guard = crate::no_grad();
            w.try_cast::<f64>()
        };
        assert!(y.is_err(), "refused under no_grad too");
        assert!(!w.detach().cast::<f64>().needs_grad());
    }
}
