//! `+ - * /` and unary `-` on every mix of `Tensor`, `&Tensor` and a scalar.
//!
//! Tensor–tensor operators broadcast and panic on incompatible shapes (use
//! `try_add` and friends for a `Result`). A scalar operand never becomes a
//! broadcast tensor: `&x * 1.0001` runs `mul_scalar`.

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
    #[should_panic(expected = "sub: incompatible shapes [2] and [3]")]
    fn operator_panics_name_op_and_shapes() {
        let _ = Tensor::<f32>::zeros(&[2]) - Tensor::<f32>::zeros(&[3]);
    }
}
