//! `Tensor` ↔ `ndarray` arrays (feature `ndarray`). Both directions copy the
//! elements in logical (row-major) order, whatever either side's strides are;
//! an owned array in standard layout moves its buffer into the tensor instead.
//! The results are plain values: a tensor made from an array records nothing,
//! and an array made from a tensor is cut from the graph.

use ndarray::{ArrayBase, ArrayD, Data, Dimension, IxDyn};

use crate::element::Element;
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// A copy of the elements as an `ndarray` array of the same shape (standard
    /// layout), whatever this tensor's strides (feature `ndarray`).
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let t = Tensor::<f64>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3])?;
    /// let a = t.t().to_ndarray();                 // a transposed view
    /// assert_eq!(a.shape(), &[3, 2]);
    /// assert_eq!(a[[2, 1]], 6.0);
    /// assert_eq!(Tensor::from_ndarray(&a), t.t());
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    pub fn to_ndarray(&self) -> ArrayD<T> {
        ArrayD::from_shape_vec(IxDyn(self.shape()), self.to_vec())
            .expect("a tensor's element count matches its shape")
    }

    /// A tensor with the array's shape and elements (copied in logical order, so
    /// any memory layout, views and slices included), recording nothing
    /// (feature `ndarray`).
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// use ndarray::{array, s};
    /// let a = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
    /// let t = Tensor::from_ndarray(&a.slice(s![.., ..;2]));   // a strided view
    /// assert_eq!(t.shape(), &[2, 2]);
    /// assert_eq!(t.to_vec(), vec![1.0, 3.0, 4.0, 6.0]);
    /// ```
    pub fn from_ndarray<S, D>(array: &ArrayBase<S, D>) -> Tensor<T>
    where
        S: Data<Elem = T>,
        D: Dimension,
    {
        let data: Vec<T> = array.iter().copied().collect();
        Tensor::from_data(data, array.shape())
    }
}

/// `Tensor::from_ndarray(&array)`.
impl<T: Element, S: Data<Elem = T>, D: Dimension> From<&ArrayBase<S, D>> for Tensor<T> {
    fn from(array: &ArrayBase<S, D>) -> Self {
        Tensor::from_ndarray(array)
    }
}

/// An owned array: its buffer becomes the tensor's without a copy when it is
/// in standard layout, else the elements are copied.
impl<T: Element, D: Dimension> From<ndarray::Array<T, D>> for Tensor<T> {
    fn from(array: ndarray::Array<T, D>) -> Self {
        if array.is_standard_layout() {
            // row-major and dense from `offset`: keep that stretch of the buffer
            let (shape, len) = (array.shape().to_vec(), array.len());
            let (mut data, offset) = array.into_raw_vec_and_offset();
            let start = offset.unwrap_or(0).min(data.len());
            data.drain(..start);
            data.truncate(len);
            return Tensor::from_data(data, &shape);
        }
        Tensor::from_ndarray(&array)
    }
}

/// `tensor.to_ndarray()`.
impl<T: Element> From<&Tensor<T>> for ArrayD<T> {
    fn from(t: &Tensor<T>) -> Self {
        t.to_ndarray()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, s, Array3, ShapeBuilder};

    #[test]
    fn round_trips_in_every_layout() {
        // a Fortran-order array, a negative-stride slice, a 0-d and an empty one
        let f =
            Array3::<f64>::from_shape_fn((2, 3, 4).f(), |(i, j, k)| (i * 100 + j * 10 + k) as f64);
        let t = Tensor::from_ndarray(&f);
        assert_eq!(t.shape(), &[2, 3, 4]);
        assert_eq!(t.to_vec()[23], 123.0);
        assert_eq!(t.to_ndarray(), f.into_dyn());

        let a = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let rev = a.slice(s![..;-1, 1..]);
        assert_eq!(
            Tensor::from_ndarray(&rev).to_vec(),
            vec![5.0, 6.0, 2.0, 3.0]
        );
        let owned_rev = rev.to_owned();
        // an owned array whose data starts past its buffer's start
        let mut tail = ndarray::Array1::from_vec(vec![9.0f32, 1.0, 2.0]);
        tail.slice_collapse(s![1..]);
        assert_eq!(Tensor::from(tail).to_vec(), vec![1.0, 2.0]);
        assert_eq!(Tensor::from(owned_rev).to_vec(), vec![5.0, 6.0, 2.0, 3.0]);

        let zero_d = ndarray::arr0(2.5f64);
        let t = Tensor::from(&zero_d);
        assert_eq!((t.shape(), t.item()), (&[][..], 2.5));
        assert_eq!(t.to_ndarray().ndim(), 0);

        let empty = ndarray::Array2::<f32>::zeros((0, 3));
        let t: Tensor<f32> = Tensor::from(empty);
        assert_eq!(t.shape(), &[0, 3]);
        assert_eq!(t.to_ndarray().shape(), &[0, 3]);
    }

    #[test]
    fn tensor_views_convert_in_logical_order() {
        let t = Tensor::<f32>::from_vec((0..24).map(|v| v as f32).collect(), &[2, 3, 4]).unwrap();
        let v = t.permute(&[2, 0, 1]).narrow(0, 1, 2);
        let a: ArrayD<f32> = (&v).into();
        assert_eq!(a.shape(), &[2, 2, 3]);
        assert_eq!(a.iter().copied().collect::<Vec<_>>(), v.to_vec());
        // an owned standard-layout array moves its buffer
        let owned = ndarray::Array::from_shape_vec((2, 2), vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
        let t = Tensor::from(owned);
        assert_eq!(t.to_vec(), vec![1.0, 2.0, 3.0, 4.0]);
        assert!(!t.needs_grad());
    }
}
