//! `+ - * /` and unary `-` on every mix of `Tensor`, `&Tensor` and a scalar, and
//! `Iterator::sum` over tensors.
//!
//! Tensor–tensor operators broadcast and panic on incompatible shapes (use
//! `try_add` and friends for a `Result`). A scalar operand never becomes a
//! broadcast tensor: `&x * 1.0001` runs `mul_scalar`.

use std::iter::Sum;
use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::element::Element;
use crate::tensor::Tensor;

macro_rules! tensor_tensor {
    ($trait:ident, $method:ident, $op:ident) => {
        impl<T: Element> $trait<&Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: &Tensor<T>) -> Tensor<T> {
                Tensor::$op(self, rhs)
            }
        }
        impl<T: Element> $trait<Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: Tensor<T>) -> Tensor<T> {
                Tensor::$op(self, &rhs)
            }
        }
        impl<T: Element> $trait<&Tensor<T>> for Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: &Tensor<T>) -> Tensor<T> {
                Tensor::$op(&self, rhs)
            }
        }
        impl<T: Element> $trait<Tensor<T>> for Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: Tensor<T>) -> Tensor<T> {
                Tensor::$op(&self, &rhs)
            }
        }
    };
}

tensor_tensor!(Add, add, add);
tensor_tensor!(Sub, sub, sub);
tensor_tensor!(Mul, mul, mul);
tensor_tensor!(Div, div, div);

macro_rules! tensor_scalar {
    ($trait:ident, $method:ident, $op:ident) => {
        impl<T: Element> $trait<T> for &Tensor<T> {
            type Output = Tensor<T>;
            fn $method(self, rhs: T) -> Tensor<T> {
                self.$op(rhs)
            }
        }
        impl<T: Element> $trait<T> for Tensor<T> {
            type Output = Tensor<T>;
            fn $method(self, rhs: T) -> Tensor<T> {
                (&self).$op(rhs)
            }
        }
    };
}

tensor_scalar!(Add, add, add_scalar);
tensor_scalar!(Sub, sub, sub_scalar);
tensor_scalar!(Mul, mul, mul_scalar);
tensor_scalar!(Div, div, div_scalar);

macro_rules! scalar_tensor {
    ($t:ty) => {
        impl Add<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn add(self, rhs: &Tensor<$t>) -> Tensor<$t> {
                rhs.add_scalar(self)
            }
        }
        impl Add<Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn add(self, rhs: Tensor<$t>) -> Tensor<$t> {
                rhs.add_scalar(self)
            }
        }
        impl Sub<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn sub(self, rhs: &Tensor<$t>) -> Tensor<$t> {
                rhs.rsub_scalar(self)
            }
        }
        impl Sub<Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn sub(self, rhs: Tensor<$t>) -> Tensor<$t> {
                rhs.rsub_scalar(self)
            }
        }
        impl Mul<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn mul(self, rhs: &Tensor<$t>) -> Tensor<$t> {
                rhs.mul_scalar(self)
            }
        }
        impl Mul<Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn mul(self, rhs: Tensor<$t>) -> Tensor<$t> {
                rhs.mul_scalar(self)
            }
        }
        impl Div<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn div(self, rhs: &Tensor<$t>) -> Tensor<$t> {
                rhs.rdiv_scalar(self)
            }
        }
        impl Div<Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn div(self, rhs: Tensor<$t>) -> Tensor<$t> {
                rhs.rdiv_scalar(self)
            }
        }
    };
}

scalar_tensor!(f32);
scalar_tensor!(f64);

impl<T: Element> Neg for &Tensor<T> {
    type Output = Tensor<T>;
    fn neg(self) -> Tensor<T> {
        Tensor::neg(self)
    }
}

impl<T: Element> Neg for Tensor<T> {
    type Output = Tensor<T>;
    fn neg(self) -> Tensor<T> {
        Tensor::neg(&self)
    }
}

/// The broadcasting sum of the tensors, as a chain of [`add`](Tensor::add)s
/// (differentiable); an empty iterator gives a 0-d zero.
///
/// ```
/// use ferrograd::Tensor;
/// let parts = vec![
///     Tensor::<f32>::ones(&[2, 2]),
///     Tensor::<f32>::from_vec(vec![10., 20.], &[2])?,
/// ];
/// let total: Tensor<f32> = parts.into_iter().sum();
/// assert_eq!(total.to_vec(), vec![11., 21., 11., 21.]);
/// let none: Tensor<f32> = Vec::<Tensor<f32>>::new().into_iter().sum();
/// assert_eq!((none.shape(), none.item()), (&[][..], 0.0));
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Panics
/// Panics when the shapes do not broadcast, as `add` does.
impl<T: Element> Sum<Tensor<T>> for Tensor<T> {
    #[track_caller]
    fn sum<I: Iterator<Item = Tensor<T>>>(mut iter: I) -> Tensor<T> {
        match iter.next() {
            None => Tensor::scalar(T::zero()),
            Some(first) => iter.fold(first, |acc, t| acc.add(&t)),
        }
    }
}

/// The broadcasting sum of borrowed tensors, as for owned ones:
/// `losses.iter().sum::<Tensor>()`.
///
/// ```
/// use ferrograd::Tensor;
/// let x = Tensor::<f64>::scalar(3.0).requires_grad();
/// let terms = [x.square(), x.mul_scalar(2.0)];
/// let y: Tensor<f64> = terms.iter().sum();
/// assert_eq!(y.item(), 15.0);
/// assert_eq!(y.backward()?.get(&x).unwrap().item(), 8.0);
/// # Ok::<(), ferrograd::Error>(())
/// ```
///
/// # Panics
/// Panics when the shapes do not broadcast, as `add` does.
impl<'a, T: Element> Sum<&'a Tensor<T>> for Tensor<T> {
    #[track_caller]
    fn sum<I: Iterator<Item = &'a Tensor<T>>>(mut iter: I) -> Tensor<T> {
        match iter.next() {
            None => Tensor::scalar(T::zero()),
            Some(first) => iter.fold(first.clone(), |acc, t| acc.add(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn every_operand_mix() {
        let a = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2]).unwrap();
        let b = Tensor::<f64>::from_vec(vec![4.0, 8.0], &[2]).unwrap();
        assert_eq!((&a + &b).to_vec(), vec![5.0, 10.0]);
        assert_eq!((a.clone() + &b).to_vec(), vec![5.0, 10.0]);
        assert_eq!((&a + b.clone()).to_vec(), vec![5.0, 10.0]);
        assert_eq!((a.clone() + b.clone()).to_vec(), vec![5.0, 10.0]);
        assert_eq!((&b - &a).to_vec(), vec![3.0, 6.0]);
        assert_eq!((&a * &b).to_vec(), vec![4.0, 16.0]);
        assert_eq!((&b / &a).to_vec(), vec![4.0, 4.0]);
        assert_eq!((&a + 1.0).to_vec(), vec![2.0, 3.0]);
        assert_eq!((a.clone() - 1.0).to_vec(), vec![0.0, 1.0]);
        assert_eq!((&a * 3.0).to_vec(), vec![3.0, 6.0]);
        assert_eq!((&a / 2.0).to_vec(), vec![0.5, 1.0]);
        assert_eq!((1.0 + &a).to_vec(), vec![2.0, 3.0]);
        assert_eq!((1.0 - &a).to_vec(), vec![0.0, -1.0]);
        assert_eq!((2.0 * a.clone()).to_vec(), vec![2.0, 4.0]);
        assert_eq!((2.0 / &a).to_vec(), vec![2.0, 1.0]);
        assert_eq!((-&a).to_vec(), vec![-1.0, -2.0]);
        assert_eq!((-a.clone()).to_vec(), vec![-1.0, -2.0]);
        let f = Tensor::<f32>::ones(&[1]);
        assert_eq!((1.5f32 * &f - 0.5).to_vec(), vec![1.0]);
    }

    #[test]
    fn sum_of_tensors() {
        let a = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2]).unwrap();
        let col = Tensor::<f64>::from_vec(vec![10.0, 20.0], &[2, 1]).unwrap();
        let s: Tensor<f64> = [a.clone(), col.clone(), a.clone()].into_iter().sum();
        assert_eq!(s.shape(), &[2, 2]);
        assert_eq!(s.to_vec(), vec![12.0, 14.0, 22.0, 24.0]);
        let s: Tensor<f64> = [&a].into_iter().sum();
        assert_eq!(s.to_vec(), vec![1.0, 2.0]);
        let e: Tensor<f64> = std::iter::empty::<&Tensor<f64>>().sum();
        assert_eq!(e.shape(), &[] as &[usize]);
        assert_eq!(e.item(), 0.0);
    }

    #[test]
    #[should_panic(expected = "add: incompatible shapes [2] and [3]")]
    fn sum_of_mismatched_tensors_panics_like_add() {
        let _: Tensor<f32> = [Tensor::zeros(&[2]), Tensor::zeros(&[3])].into_iter().sum();
    }

    #[test]
    #[should_panic(expected = "sub: incompatible shapes [2] and [3]")]
    fn operator_panics_name_op_and_shapes() {
        let _ = Tensor::<f32>::zeros(&[2]) - Tensor::<f32>::zeros(&[3]);
    }
}
