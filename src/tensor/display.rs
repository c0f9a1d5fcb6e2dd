//! `Display` (PyTorch-like, long tensors elided), `Debug`, and the `approx`
//! comparison traits.

use std::fmt;

use approx::{AbsDiffEq, RelativeEq};

use crate::element::Element;
use crate::tensor::Tensor;

/// Tensors with more elements than this print only their edges.
const ELIDE_ABOVE: usize = 1000;
/// How many leading and trailing entries an elided dimension shows.
const EDGE: usize = 3;
const LINE_WIDTH: usize = 80;

/// How the numbers of one tensor are written (one style for all, so columns align).
#[derive(Clone, Copy)]
enum Style {
    /// `1.`, `-3.` when every value is an integer.
    Integer,
    /// `0.1700` with four decimals.
    Fixed,
    /// `1.2346e-5` when magnitudes are very large, very small, or far apart.
    Scientific,
}

impl Style {
    fn pick(vals: &[f64]) -> Style {
        let finite: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.iter().all(|v| v.fract() == 0.0 && v.abs() < 1e8) {
            return Style::Integer;
        }
        let nonzero = finite.iter().map(|v| v.abs()).filter(|&v| v > 0.0);
        let (lo, hi) = nonzero.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if hi >= 1e8 || lo < 1e-4 || hi / lo > 1e3 {
            Style::Scientific
        } else {
            Style::Fixed
        }
    }

    fn write(self, v: f64) -> String {
        if v.is_nan() {
            return "nan".into();
        }
        if v.is_infinite() {
            return if v > 0.0 { "inf".into() } else { "-inf".into() };
        }
        match self {
            Style::Integer => format!("{v:.0}."),
            Style::Fixed => format!("{v:.4}"),
            Style::Scientific => format!("{v:.4e}"),
        }
    }
}

/// The indices shown along a dimension of size `n`; `None` marks the `...`.
fn shown(n: usize, elide: bool) -> Vec<Option<usize>> {
    if elide && n > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain([None])
            .chain((n - EDGE..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    }
}

struct Printer<'a, T> {
    data: &'a [T],
    shape: &'a [usize],
    strides: &'a [usize],
    elide: bool,
}

impl<T: Element> Printer<'_, T> {
    fn collect(&self, dim: usize, offset: usize, out: &mut Vec<f64>) {
        if dim == self.shape.len() {
            out.push(self.data[offset].to_f64_lossless());
            return;
        }
        for i in shown(self.shape[dim], self.elide).into_iter().flatten() {
            self.collect(dim + 1, offset + i * self.strides[dim], out);
        }
    }

    fn write(
        &self,
        f: &mut fmt::Formatter<'_>,
        dim: usize,
        indent: usize,
        cells: &mut impl Iterator<Item = String>,
        width: usize,
    ) -> fmt::Result {
        if dim == self.shape.len() {
            return write!(f, "{:>width$}", cells.next().unwrap_or_default());
        }
        f.write_str("[")?;
        let idx = shown(self.shape[dim], self.elide);
        let last_dim = dim + 1 == self.shape.len();
        let per_line = ((LINE_WIDTH.saturating_sub(indent + 1)) / (width + 2)).max(1);
        for (k, i) in idx.iter().enumerate() {
            if k > 0 {
                if last_dim {
                    if k % per_line == 0 {
                        write!(f, ",\n{:indent$}", "", indent = indent + 1)?;
                    } else {
                        f.write_str(", ")?;
                    }
                } else {
                    let blank = "\n".repeat(self.shape.len() - dim - 1);
                    write!(f, ",{blank}{:indent$}", "", indent = indent + 1)?;
                }
            }
            match i {
                Some(_) => self.write(f, dim + 1, indent + 1, cells, width)?,
                None => f.write_str("...")?,
            }
        }
        f.write_str("]")
    }
}

impl<T: Element> fmt::Display for Tensor<T> {
    /// Prints like PyTorch: the values (edges only above 1000 elements), the shape,
    /// the dtype when it is not `f32`, and the gradient flag or producing op.
    ///
    /// ```
    /// let x = ferrograd::Tensor::<f32>::from_vec(vec![1.0, -2.5, 3.0, 4.0], &[2, 2])?;
    /// assert_eq!(x.to_string(), "tensor([[ 1.0000, -2.5000],\n        [ 3.0000,  4.0000]], shape=[2, 2])");
    /// assert_eq!(ferrograd::Tensor::<f64>::scalar(2.0).to_string(), "tensor(2., shape=[], dtype=f64)");
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = self.read();
        let layout = self.layout();
        let p = Printer {
            data: &data,
            shape: &layout.shape,
            strides: &layout.strides,
            elide: self.numel() > ELIDE_ABOVE,
        };
        let mut vals = Vec::new();
        if self.numel() > 0 {
            p.collect(0, layout.offset, &mut vals);
        }
        let style = Style::pick(&vals);
        let cells: Vec<String> = vals.iter().map(|&v| style.write(v)).collect();
        let width = cells.iter().map(String::len).max().unwrap_or(0);
        f.write_str("tensor(")?;
        if self.numel() == 0 {
            f.write_str("[]")?;
        } else {
            p.write(f, 0, "tensor(".len(), &mut cells.into_iter(), width)?;
        }
        write!(f, ", shape={:?}", self.shape())?;
        if T::DTYPE != "f32" {
            write!(f, ", dtype={}", T::DTYPE)?;
        }
        match self.op_name() {
            Some(op) => write!(f, ", grad_fn=<{op}>")?,
            None if self.needs_grad() => f.write_str(", requires_grad=true")?,
            None => {}
        }
        f.write_str(")")
    }
}

impl<T: Element> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Tensor");
        s.field("id", &self.id().get())
            .field("shape", &self.shape())
            .field("strides", &self.strides())
            .field("dtype", &T::DTYPE)
            .field("requires_grad", &self.needs_grad())
            .field("op", &self.op_name());
        if self.numel() <= 16 {
            s.field("data", &self.to_vec());
        }
        s.finish()
    }
}

impl<T: Element> PartialEq for Tensor<T> {
    /// Equal shapes and equal elements (NaN is never equal, as for floats).
    fn eq(&self, other: &Self) -> bool {
        self.shape() == other.shape() && self.to_vec() == other.to_vec()
    }
}

impl<T: Element> AbsDiffEq for Tensor<T> {
    type Epsilon = T;

    fn default_epsilon() -> T {
        T::epsilon()
    }

    /// Equal shapes and every pair of elements within `epsilon`.
    ///
    /// ```
    /// use approx::assert_abs_diff_eq;
    /// use ferrograd::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1.0, 2.0], &[2])?;
    /// let b = Tensor::<f32>::from_vec(vec![1.0, 2.0 + 1e-7], &[2])?;
    /// assert_abs_diff_eq!(a, b, epsilon = 1e-6);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    fn abs_diff_eq(&self, other: &Self, epsilon: T) -> bool {
        self.shape() == other.shape()
            && self
                .to_vec()
                .iter()
                .zip(other.to_vec())
                .all(|(a, b)| a.abs_diff_eq(&b, epsilon))
    }
}

impl<T: Element> RelativeEq for Tensor<T> {
    fn default_max_relative() -> T {
        T::epsilon()
    }

    fn relative_eq(&self, other: &Self, epsilon: T, max_relative: T) -> bool {
        self.shape() == other.shape()
            && self
                .to_vec()
                .iter()
                .zip(other.to_vec())
                .all(|(a, b)| a.relative_eq(&b, epsilon, max_relative))
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn display_forms() {
        let x = Tensor::<f32>::from_vec(vec![0.17], &[]).unwrap();
        assert_eq!(x.to_string(), "tensor(0.1700, shape=[])");
        let w = Tensor::<f32>::arange(3).requires_grad();
        assert_eq!(
            w.to_string(),
            "tensor([0., 1., 2.], shape=[3], requires_grad=true)"
        );
        assert_eq!(
            (&w * 2.0).to_string(),
            "tensor([0., 2., 4.], shape=[3], grad_fn=<mul_scalar>)"
        );
        let s = Tensor::<f64>::from_vec(vec![1e-6, 1.0], &[2]).unwrap();
        assert_eq!(
            s.to_string(),
            "tensor([1.0000e-6,  1.0000e0], shape=[2], dtype=f64)"
        );
        let e = Tensor::<f32>::zeros(&[0, 3]);
        assert_eq!(e.to_string(), "tensor([], shape=[0, 3])");
        let n = Tensor::<f32>::from_vec(vec![f32::NAN, f32::NEG_INFINITY, 1.5], &[3]).unwrap();
        assert_eq!(n.to_string(), "tensor([   nan,   -inf, 1.5000], shape=[3])");
        let big = Tensor::<f32>::arange(2000).reshape(&[40, 50]);
        assert_eq!(
            big.to_string(),
            "tensor([[   0.,    1.,    2., ...,   47.,   48.,   49.],\n\
             \x20       [  50.,   51.,   52., ...,   97.,   98.,   99.],\n\
             \x20       [ 100.,  101.,  102., ...,  147.,  148.,  149.],\n\
             \x20       ...,\n\
             \x20       [1850., 1851., 1852., ..., 1897., 1898., 1899.],\n\
             \x20       [1900., 1901., 1902., ..., 1947., 1948., 1949.],\n\
             \x20       [1950., 1951., 1952., ..., 1997., 1998., 1999.]], shape=[40, 50])"
        );
        let t3 = Tensor::<f32>::arange(8).reshape(&[2, 2, 2]);
        assert_eq!(t3.to_string(), "tensor([[[0., 1.],\n         [2., 3.]],\n\n        [[4., 5.],\n         [6., 7.]]], shape=[2, 2, 2])");
    }

    #[test]
    fn approx_and_eq() {
        let a = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2]).unwrap();
        let b = Tensor::<f64>::from_vec(vec![1.0, 2.0 + 1e-12], &[2]).unwrap();
        assert!(approx::abs_diff_eq!(a, b, epsilon = 1e-9));
        assert!(approx::relative_eq!(a, b, max_relative = 1e-9));
        assert!(!approx::abs_diff_eq!(a, b.reshape(&[1, 2]), epsilon = 1.0));
        assert_eq!(a, a.t());
        assert!(format!("{a:?}").contains("shape: [2]"));
    }
}
