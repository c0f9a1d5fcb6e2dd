//! `matmul` with NumPy semantics (1-D·1-D, matrix·vector, batched N-D with
//! broadcast batch dimensions), on the tuned GEMM in `kernels::gemm`.

use super::ReadMany;
use crate::autograd::{grads, BackwardCx, InputGrads, Op};
use crate::element::{mono, Element};
use crate::error::{or_panic, Error, Result};

use crate::kernels::elementwise::{zip_inplace, Cheap};
use crate::kernels::gemm::{matmul_batch, matmul_to_vec, MatRef};
use crate::layout::for_each_row;
use crate::shape::{broadcast_shapes, numel, Dims};
use crate::tensor::{Seen, Tensor};

/// Batched matrix product of two tensors with at least 2 dimensions each.
struct MatMul;

/// `x · Wᵀ + b` in one node (PyTorch's `addmm`): `x: [.., in]`, `W: [out, in]`,
/// an optional `b: [out]`. Inputs `x`, `W` and, when present, `b`.
struct Linear;

impl<T: Element> Op<T> for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    /// `dA = G·Bᵀ` and `dB = Aᵀ·G`; transposes are stride swaps, never copies.
    /// A gradient is computed in its input's memory order: for an input that is a
    /// transposed view (as `x.matmul(&w.t())` makes of a Linear weight), the
    /// transposed product is computed and handed back as a view, so that the
    /// weight's gradient comes out dense in the weight's own layout.
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let g = &g;
        let (a, b) = (cx.input(0), cx.input(1));
        let tr = |t: &Tensor<T>| t.transpose(-1, -2);
        let ga = cx.needs(0).then(|| {
            if is_col_major(a) {
                tr(&matmul_nd(b, &tr(g)))
            } else {
                matmul_nd(g, &tr(b))
            }
        });
        let gb = cx.needs(1).then(|| {
            if b.ndim() == 2 && a.ndim() > 2 {
                // [.., M, K]ᵀ·[.., M, N] summed over the batch is one GEMM of
                // [K, rows]·[rows, N] with the batch folded into the rows.
                let k = a.shape()[a.ndim() - 1];
                let n = g.shape()[g.ndim() - 1];
                // (not numel / k: with k = 0 that loses the row count)
                let rows: usize = a.shape()[..a.ndim() - 1].iter().product();
                let (a2, g2) = (a.reshape(&[rows, k]), g.reshape(&[rows, n]));
                if is_col_major(b) {
                    tr(&matmul_nd(&tr(&g2), &a2))
                } else {
                    matmul_nd(&tr(&a2), &g2)
                }
            } else if is_col_major(b) {
                tr(&matmul_nd(&tr(g), a))
            } else {
                matmul_nd(&tr(a), g)
            }
        });
        grads![ga, gb]
    }
}

impl<T: Element> Op<T> for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }
    /// `dx = G·W`, `dW = Gᵀ·x` and `db = Σ G` over every row, with the leading
    /// dimensions of `x` and `G` folded into the rows (one GEMM each).
    fn backward(&self, cx: &BackwardCx<'_, T>, g: Tensor<T>) -> InputGrads<T> {
        let (x, w) = (cx.input(0), cx.input(1));
        let (out, inp) = (w.shape()[0], w.shape()[1]);
        let rows = numel(&x.shape()[..x.ndim() - 1]);
        let g2 = g.reshape(&[rows, out]);
        let gx = cx.needs(0).then(|| g.matmul(w));
        let gw = cx.needs(1).then(|| g2.t().matmul(&x.reshape(&[rows, inp])));
        let mut v = grads![gx, gw];
        if cx.inputs.len() == 3 {
            v.push(cx.needs(2).then(|| g2.sum_axis(0, false)));
        }
        v
    }
}

/// `x · Wᵀ + b` for `x: [.., in]` (1-D or more), `W: [out, in]`, `b: [out]`
/// (shapes checked by the caller): one GEMM over all rows of `x` against `W`
/// read as transposed in place, the bias added into the product's buffer.
pub(crate) fn linear_nd<T: Element>(
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: Option<&Tensor<T>>,
) -> Tensor<T> {
    let (out, inp) = (w.shape()[0], w.shape()[1]);
    let sx = x.shape();
    let rows = numel(&sx[..sx.len() - 1]);
    let mut out_shape: Dims = sx[..sx.len() - 1].into();
    out_shape.push(out);
    let inputs: &[&Tensor<T>] = match b {
        Some(b) => &[x, w, b],
        None => &[x, w],
    };
    let lx = x.layout();
    let x_cs = lx.strides[sx.len() - 1];
    let x_rs = if sx.len() == 1 {
        Some(inp * x_cs) // one row: never stepped
    } else {
        folded_row_stride(sx, &lx.strides)
    };
    // rows that no single stride walks: a dense copy
    let dense_x = x_rs.is_none().then(|| x.to_vec());
    let seen = Seen::note(inputs);
    let mut data = {
        let r = ReadMany::new(inputs);
        let lw = w.layout();
        // Wᵀ, read in place: its element (k, j) is W[j, k]
        let wt = MatRef {
            data: r.get(1),
            offset: lw.offset,
            rs: lw.strides[1],
            cs: lw.strides[0],
        };
        let xm = match (x_rs, &dense_x) {
            (Some(rs), _) => MatRef {
                data: r.get(0),
                offset: lx.offset,
                rs,
                cs: x_cs,
            },
            (None, d) => MatRef {
                data: d
                    .as_deref()
                    .expect("made above when no stride walks the rows"),
                offset: 0,
                rs: inp,
                cs: 1,
            },
        };
        matmul_to_vec(rows, inp, out, xm, wt)
    };
    if let Some(b) = b {
        let lb = b.layout().broadcast_to(&[rows, out]);
        zip_inplace(&mut data, &b.read(), &lb, Cheap, |y, c| y + c);
    }
    debug_assert_eq!(data.len(), numel(&out_shape));
    Tensor::from_op_data(seen, data, &out_shape, Linear, inputs)
}

/// True when the last two dimensions are laid out column-major: the tensor is a
/// transposed view of a dense stack of matrices.
fn is_col_major<T: Element>(t: &Tensor<T>) -> bool {
    let (s, st) = (t.shape(), t.strides());
    let n = s.len();
    n >= 2 && s[n - 2] > 1 && s[n - 1] > 1 && st[n - 2] == 1 && st[n - 1] == s[n - 2]
}

/// The stride that steps through the rows of `[.., M, K]` when all leading
/// dimensions can be walked as one, i.e. the tensor is a stack of rows with
/// uniform spacing.
fn folded_row_stride(shape: &[usize], strides: &[usize]) -> Option<usize> {
    let n = shape.len();
    let row = strides[n - 2];
    let mut expected = row * shape[n - 2];
    for i in (0..n - 2).rev() {
        if shape[i] != 1 && strides[i] != expected {
            return None;
        }
        expected *= shape[i];
    }
    Some(row)
}

/// `a · b` for `a: [.., M, K]`, `b: [.., K, N]` with broadcast batch dims.
fn matmul_nd<T: Element>(a: &Tensor<T>, b: &Tensor<T>) -> Tensor<T> {
    let (sa, sb) = (a.shape(), b.shape());
    let (na, nb) = (sa.len(), sb.len());
    let (m, k, n) = (sa[na - 2], sa[na - 1], sb[nb - 1]);
    let batch = broadcast_shapes(&sa[..na - 2], &sb[..nb - 2])
        .expect("internal error: matmul batch dims checked by the caller");
    let mut out_shape: Dims = batch.clone();
    out_shape.extend([m, n]);
    let seen = Seen::note(&[a, b]);
    let out = {
        let r = ReadMany::new(&[a, b]);
        let (la, lb) = (a.layout(), b.layout());
        let (a_cs, b_rs, b_cs) = (la.strides[na - 1], lb.strides[nb - 2], lb.strides[nb - 1]);
        let bm = MatRef {
            data: r.get(1),
            offset: lb.offset,
            rs: b_rs,
            cs: b_cs,
        };
        match (nb, folded_row_stride(sa, &la.strides)) {
            // [.., M, K]·[K, N]: one GEMM over all rows of the batch.
            (2, Some(a_rs)) => {
                let am = MatRef {
                    data: r.get(0),
                    offset: la.offset,
                    rs: a_rs,
                    cs: a_cs,
                };
                matmul_to_vec(numel(&sa[..na - 1]), k, n, am, bm)
            }
            _ => {
                let mut full_a: Dims = batch.clone();
                full_a.extend([m, k]);
                let mut full_b: Dims = batch.clone();
                full_b.extend([k, n]);
                let (ba, bb) = (la.broadcast_to(&full_a), lb.broadcast_to(&full_b));
                let nbat = batch.len();
                // the operands' offsets for each product of the batch
                let mut offsets = Vec::with_capacity(numel(&batch));
                for_each_row(
                    &batch,
                    [&ba.strides[..nbat], &bb.strides[..nbat]],
                    [ba.offset, bb.offset],
                    |[oa, ob], [sa, sb], len| {
                        offsets.extend((0..len).map(|i| (oa + i * sa, ob + i * sb)));
                    },
                );
                let am = MatRef {
                    data: r.get(0),
                    offset: 0,
                    rs: ba.strides[nbat],
                    cs: a_cs,
                };
                matmul_batch(m, k, n, am, bm, &offsets)
            }
        }
    };
    debug_assert_eq!(out.len(), numel(&out_shape));
    Tensor::from_op_data(seen, out, &out_shape, MatMul, &[a, b])
}

impl<T: Element> Tensor<T> {
    /// Matrix product with NumPy's `matmul` semantics:
    ///
    /// - 1-D · 1-D: the dot product, a 0-d tensor;
    /// - 2-D · 2-D: the matrix product;
    /// - 1-D · N-D: the vector is a row (`[1, K]`), removed from the result;
    /// - N-D · 1-D: the vector is a column (`[K, 1]`), removed from the result;
    /// - N-D · N-D: a batch of matrix products over the leading dimensions, which
    ///   broadcast.
    ///
    /// `[B, T, C] · [C, D]` runs as a single GEMM of `[B·T, C] · [C, D]`, and so
    /// does its backward pass.
    ///
    /// ```
    /// use ferrograd::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1., 2., 3., 4.], &[2, 2])?;
    /// let v = Tensor::<f32>::from_vec(vec![1., 1.], &[2])?;
    /// assert_eq!(a.matmul(&a).to_vec(), vec![7., 10., 15., 22.]);
    /// assert_eq!(a.matmul(&v).to_vec(), vec![3., 7.]);
    /// assert_eq!(v.matmul(&v).item(), 2.0);
    /// let batch = Tensor::<f32>::ones(&[5, 1, 3, 2]);
    /// assert_eq!(batch.matmul(&Tensor::ones(&[4, 2, 6])).shape(), &[5, 4, 3, 6]);
    /// # Ok::<(), ferrograd::Error>(())
    /// ```
    ///
    /// # Panics
    /// Panics when an operand is 0-d, the inner dimensions differ or the batch
    /// dimensions do not broadcast, naming both shapes.
    #[track_caller]
    pub fn matmul(&self, other: &Tensor<T>) -> Tensor<T> {
        or_panic(self.try_matmul(other))
    }
}

/// Fallible forms: each `try_x` is `x` returning [`Result`] instead of
/// panicking (the error carries the message the panic would print).
impl<T: Element> Tensor<T> {
    /// Like [`matmul`](Tensor::matmul), returning [`Error::ShapeMismatch`] instead of panicking.
    pub fn try_matmul(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        mono!(
            |this: &Tensor<T>, other: &Tensor<T>| -> Result<Tensor<T>> {
                let (sa, sb) = (this.shape(), other.shape());
                let mismatch = || Error::shape("matmul", sa, sb);
                let (na, nb) = (sa.len(), sb.len());
                if na == 0 || nb == 0 {
                    return Err(mismatch());
                }
                let k_a = sa[na - 1];
                let k_b = if nb == 1 { sb[0] } else { sb[nb - 2] };
                if k_a != k_b {
                    return Err(mismatch());
                }
                if na > 2 && nb > 2 && broadcast_shapes(&sa[..na - 2], &sb[..nb - 2]).is_none() {
                    return Err(mismatch());
                }
                Ok(match (na, nb) {
                    (1, 1) => matmul_nd(&this.unsqueeze(0), &other.unsqueeze(1)).reshape(&[]),
                    (1, _) => matmul_nd(&this.unsqueeze(0), other).squeeze(-2),
                    (_, 1) => matmul_nd(this, &other.unsqueeze(1)).squeeze(-1),
                    _ => matmul_nd(this, other),
                })
            },
            (self, other)
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::test_util::{assert_close, check, rand_leaf};
    use crate::Tensor;

    #[test]
    fn forward_values_numpy_semantics() {
        let a = Tensor::<f64>::arange(6).reshape(&[2, 3]);
        let b = Tensor::<f64>::arange(6).reshape(&[3, 2]);
        assert_close(&a.matmul(&b), &[10., 13., 28., 40.], 0.0);
        let v = Tensor::<f64>::from_vec(vec![1., 2., 3.], &[3]).unwrap();
        assert_close(&a.matmul(&v), &[8., 26.], 0.0);
        assert_eq!(a.matmul(&v).shape(), &[2]);
        let w = Tensor::<f64>::from_vec(vec![1., -1.], &[2]).unwrap();
        assert_close(&w.matmul(&a), &[-3., -3., -3.], 0.0);
        assert_eq!(v.matmul(&v).shape(), &[] as &[usize]);
        assert_close(&v.matmul(&v), &[14.], 0.0);
        // batched with broadcast batch dims: [2, 1, 2, 3] · [4, 3, 2] → [2, 4, 2, 2]
        let a4 = Tensor::<f64>::arange(12).reshape(&[2, 1, 2, 3]);
        let b3 = Tensor::<f64>::arange(24).reshape(&[4, 3, 2]);
        let c = a4.matmul(&b3);
        assert_eq!(c.shape(), &[2, 4, 2, 2]);
        // check one block against the 2-D product
        let blk = a4
            .narrow(0, 1, 1)
            .reshape(&[2, 3])
            .matmul(&b3.narrow(0, 2, 1).reshape(&[3, 2]));
        assert_close(
            &c.narrow(0, 1, 1).narrow(1, 2, 1).reshape(&[2, 2]),
            &blk.to_vec(),
            0.0,
        );
        // [B, T, C] · [C, D] folds the batch into rows
        let x = Tensor::<f64>::arange(24).reshape(&[2, 3, 4]);
        let m = Tensor::<f64>::arange(8).reshape(&[4, 2]);
        let y = x.matmul(&m);
        assert_close(&y, &x.reshape(&[6, 4]).matmul(&m).to_vec(), 0.0);
        // transposed operands (strides, no copy)
        assert_close(
            &a.t().matmul(&a),
            &a.t().contiguous().matmul(&a).to_vec(),
            0.0,
        );
        // empty inner dimension gives zeros
        let e = Tensor::<f64>::zeros(&[2, 0]).matmul(&Tensor::zeros(&[0, 3]));
        assert_close(&e, &[0.0; 6], 0.0);
    }

    #[test]
    fn a_batch_times_a_matrix_is_one_gemm_forward_and_two_backward() {
        use crate::kernels::gemm::CALLS;
        let x = Tensor::<f32>::ones(&[4, 8, 16]).requires_grad();
        let w = Tensor::<f32>::ones(&[16, 3]).requires_grad();
        let calls = || CALLS.with(|c| c.get());
        let before = calls();
        let y = x.matmul(&w);
        assert_eq!(
            calls() - before,
            1,
            "[B, T, C]·[C, D] runs as one [B·T, C]·[C, D] GEMM"
        );
        let before = calls();
        let g = y.sum().backward().unwrap();
        assert_eq!(calls() - before, 2, "one GEMM for dX, one for dW");
        assert_eq!(g.get(&w).unwrap().to_vec(), vec![32.0; 48]);
        assert_eq!(g.get(&x).unwrap().to_vec(), vec![3.0; 512]);
    }

    #[test]
    fn a_transposed_weight_gets_a_dense_gradient_without_a_copy() {
        // Linear: y = x·Wᵀ with W [out, in]; dW must come back dense in W's layout
        let x = rand_leaf(&[5, 3], 101);
        let w = rand_leaf(&[4, 3], 102);
        let y = x.matmul(&w.t());
        let g = y.square().sum().backward().unwrap();
        let gw = g.get(&w).unwrap();
        assert!(gw.is_contiguous() && gw.shape() == [4, 3]);
        // against the same product with a dense (copied) transpose
        let w2 = w.detach().t().contiguous().requires_grad();
        let g2 = x.matmul(&w2).square().sum().backward().unwrap();
        assert_close(gw, &g2.get(&w2).unwrap().t().to_vec(), 1e-12);
        assert_close(g.get(&x).unwrap(), &g2.get(&x).unwrap().to_vec(), 1e-12);
        // a transposed left operand, and the batched form
        let a = rand_leaf(&[3, 5], 103);
        check(|t| t[0].t().matmul(&t[1].t()), &[a, w.clone()]);
        let xb = rand_leaf(&[2, 5, 3], 104);
        check(|t| t[0].matmul(&t[1].t()), &[xb, w]);
        let wb = rand_leaf(&[2, 4, 3], 105);
        check(
            |t| t[0].matmul(&t[1].transpose(1, 2)),
            &[rand_leaf(&[2, 5, 3], 106), wb],
        );
    }

    #[test]
    fn parallel_batches_match_serial_products() {
        // 32 products of 32×32·32×32: above the threshold for one task per product
        let a = Tensor::<f64>::arange(32 * 32 * 32)
            .reshape(&[32, 32, 32])
            .div_scalar(1e4);
        let b = a.transpose(1, 2).mul_scalar(0.5);
        let c = a.matmul(&b);
        for i in [0usize, 17, 31] {
            let ai = a.narrow(0, i, 1).reshape(&[32, 32]);
            let bi = b.narrow(0, i, 1).reshape(&[32, 32]);
            assert_close(
                &c.narrow(0, i, 1).reshape(&[32, 32]),
                &ai.matmul(&bi).to_vec(),
                1e-12,
            );
        }
    }

    #[test]
    fn mismatches_name_both_shapes() {
        let a = Tensor::<f32>::zeros(&[2, 3]);
        let b = Tensor::<f32>::zeros(&[4, 5]);
        assert_eq!(
            a.try_matmul(&b).unwrap_err().to_string(),
            "matmul: incompatible shapes [2, 3] and [4, 5]"
        );
        let p = std::panic::catch_unwind(|| a.matmul(&b)).unwrap_err();
        assert_eq!(
            p.downcast_ref::<String>().unwrap(),
            "matmul: incompatible shapes [2, 3] and [4, 5]"
        );
        assert!(Tensor::<f32>::zeros(&[2, 2, 3])
            .try_matmul(&Tensor::zeros(&[3, 3, 1]))
            .is_err());
        assert!(Tensor::<f32>::scalar(1.0).try_matmul(&a).is_err());
    }

    #[test]
    fn gradcheck_all_forms() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[3], &[3]),
            (&[2, 3], &[3, 4]),
            (&[2, 3], &[3]),
            (&[3], &[3, 2]),
            (&[2, 2, 3], &[3, 2]),
            (&[2, 1, 2, 3], &[3, 3, 2]),
            (&[3], &[2, 3, 2]),
            (&[2, 2, 3], &[3]),
            (&[1, 2, 3], &[2, 3, 1]),
        ];
        for (i, (sa, sb)) in cases.iter().enumerate() {
            let a = rand_leaf(sa, 60 + i as u64);
            let b = rand_leaf(sb, 80 + i as u64);
            check(|x| x[0].matmul(&x[1]), &[a, b]);
        }
        // transposed and narrowed operands
        let a = rand_leaf(&[3, 2], 90);
        let b = rand_leaf(&[4, 5], 91);
        check(
            |x| x[0].t().matmul(&x[1].narrow(0, 1, 3)),
            &[a.clone(), b.clone()],
        );
        check(|x| x[1].narrow(1, 1, 2).matmul(&x[0].t()), &[a, b]);
        let a = rand_leaf(&[2, 3, 4], 92);
        let b = rand_leaf(&[2, 4], 93);
        check(|x| x[0].transpose(0, 1).matmul(&x[1].t()), &[a, b]);
    }
}
