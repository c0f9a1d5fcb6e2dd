//! The op table: every operation on [`Tensor`], how its gradient is
//! computed, and how many times it can be differentiated.
//!
//! The ops themselves are methods on [`Tensor`] (this module holds no public
//! items, only this table). Every op listed with an order can be used under
//! [`grad`](crate::grad) with `create_graph` and differentiated again.
//!
//! # The op table
//!
//! "Backward" is the rule of the plain first-order walk; under `create_graph`
//! every rule builds its result from recorded ops instead ("recorded form"), so
//! that it can be differentiated again. "Order" is how many times an op can be
//! differentiated: ∞ everywhere (at kinks, the derivative PyTorch picks: relu'' =
//! abs'' = 0, and max/min send the gradient to the first extreme). A composite
//! is made of other ops in the table and differentiates through them. "File" is
//! where the op lives in `src/ops/` (or `src/tensor/`).
//!
//! | op | file | kind | backward | recorded form | order |
//! |---|---|---|---|---|---|
//! | `add sub` | `binary.rs` | primitive | tensor ops | the same | ∞ |
//! | `mul div` | `binary.rs` | primitive | fused kernels | `mul`, `div` | ∞ |
//! | `pow` | `binary.rs` | primitive | fused kernels | `pow`, `log`, `masked_fill` (safe at 0) | ∞ |
//! | `maximum minimum` | `binary.rs` | primitive | fused kernels | `g` × a constant share | ∞ |
//! | `Iterator::sum` (over tensors: impl Sum for Tensor) | `tensor/operators.rs` | composite (a chain of `add`; empty gives a 0-d zero) | — | — | ∞ |
//! | `add_scalar sub_scalar rsub_scalar mul_scalar div_scalar rdiv_scalar` (and the operators with a scalar) | `scalar.rs` | primitive, `unary!` | fused kernel | scalar ops | ∞ |
//! | `neg exp log sqrt abs square recip sin cos tanh sigmoid relu leaky_relu gelu gelu_erf erf silu softplus clamp powf powi` | `unary.rs` | primitive, `unary!` | fused kernel | each op's `graph:` (piecewise ops: `g` × a constant) | ∞ |
//! | `sum mean sum_axis mean_axis` | `reduce.rs` | primitive | broadcast view | the same | ∞ |
//! | `max_axis min_axis` | `reduce.rs` | primitive | `index_add` (scatter) | the same | ∞ |
//! | `logsumexp` | `reduce.rs` | primitive (stable) | fused kernel | `exp(x − y)` | ∞ |
//! | `var_axis` | `reduce.rs` | composite | — | — | ∞ |
//! | `argmax argmin` | `reduce.rs` | not differentiable (indices as element values) | — | — | — |
//! | `softmax log_softmax` | `softmax.rs` | primitive (stable) | fused kernel | `y·(g − Σg·y)`, `g − exp(y)·Σg` | ∞ |
//! | `layer_norm` (public as nn::functional::layer_norm) | `norm.rs` | primitive | fused kernel | the statistics recomputed from `x` | ∞ |
//! | `scaled_dot_product_attention` (public as nn::functional::scaled_dot_product_attention) | `attention.rs` | primitive (stable; the mask is a constant, not an input; saves the weights and the dropout bits) | fused kernels (GEMMs per batch·head) | the weights recomputed from `q`, `k` as recorded ops, then `P_dᵀ·g`, `scale·P⊙(dP − Σ dP⊙P)` times `k`, `q` | ∞ |
//! | `bce` (public as loss::bce and loss::per_sample::bce) | `loss.rs` | primitive (PyTorch's clamped logs and bounded gradient) | fused kernels | recorded ops (logs of a clamped `p`) | ∞ |
//! | `matmul` | `matmul.rs` | primitive | tensor ops (GEMM) | the same | ∞ |
//! | `linear` (public as nn::functional::linear) | `matmul.rs` | primitive (`x·Wᵀ + b` in one node, as PyTorch's `addmm`) | tensor ops (GEMM, `sum_axis`) | the same | ∞ |
//! | `reshape flatten squeeze unsqueeze transpose t permute broadcast_to narrow contiguous` | `movement.rs` | views | tensor ops (`narrow` ↔ `pad_axis`) | the same | ∞ |
//! | `chunk split select` | `movement.rs` | composite (`narrow` views; `select` also `squeeze`) | — | — | ∞ |
//! | `index_select masked_fill cat stack` | `index.rs` | primitive | `index_add` ↔ `index_select`, a masked kernel, `narrow` | the same, `masked_fill` | ∞ |
//! | `tril triu` | `index.rs` | primitive | the same mask on `g` | the same | ∞ |
//! | `where_cond` | `compare.rs` | primitive (the mask is not differentiated) | a masked kernel per branch | `where_cond` of `g` against zeros | ∞ |
//! | `equal not_equal greater greater_equal less less_equal` (and each `_scalar` form) | `compare.rs` | not differentiable (0/1 masks, never recorded) | — | — | — |
//! | `cast` | `tensor/cast.rs` | not differentiable (a copy into another element type; refuses a tensor that needs a gradient while recording) | — | — | — |
//!
//! "Fused kernel" rules compute `grad × local derivative` in one pass over the
//! buffers instead of several tensor ops; the crate's tests check that both
//! forms give the same first derivative, and check every row with an order
//! against finite differences, to the second order.
//!
//! Rules of broadcasting ops return gradients of the output's shape: the walk
//! sums each one down to its input's shape, the one place where broadcasting is
//! undone.

// # Adding an op
//
// 1. A section in the family file: the op's `Tensor` method and its backward
//    rule, next to each other; its `try_` twin (when it combines shapes, takes
//    axes or can fail otherwise) goes in the file's "Fallible forms" impl block,
//    which follows the panicking forms, so that rustdoc lists the twins
//    together. An elementwise op is one `unary!` (in `unary.rs`, or `scalar.rs`
//    with a scalar parameter: `f`, the fused `df`, and the recorded `graph:`
//    form) or one `binary_method!` (with its `binary_try_method!`) and its
//    `impl Op`. Any other op is a struct with `impl Op`, whose `backward`
//    branches on `cx.create_graph`: recorded tensor ops there (or a backward op
//    with its own `impl Op`, as `pad_axis` is for `narrow`), a fused kernel
//    otherwise if it is faster. Forward: `Seen::note(inputs)` before reading
//    them, then `Tensor::from_op_data(seen, ..)`.
// 2. A row in the table above, with its order (`tests/all_ops_gradcheck.rs`
//    parses it; rows saying "not differentiable" are skipped).
// 3. Known-value tests in the file's `mod tests`.
// 4. An entry in `tests/all_ops_gradcheck.rs`: it runs `gradcheck`,
//    `gradgradcheck` and the fused-vs-recorded comparison on it.
// 5. A line in `CHANGELOG.md`.

mod attention;
mod binary;
mod compare;
mod index;
mod loss;
pub(crate) mod matmul;
mod movement;
mod norm;
mod reduce;
mod scalar;
mod softmax;
mod unary;

use std::borrow::Cow;
use std::sync::RwLockReadGuard;

use smallvec::SmallVec;

pub(crate) use attention::{attention, combined_mask, recorded_attention, DropMask, SdpaShapes};
pub(crate) use loss::bce;
pub(crate) use movement::sum_to_shape;
pub(crate) use norm::layer_norm;

use crate::element::Element;
pub(crate) use crate::kernels::elementwise::{Cheap, Cost, Costly};
use crate::layout::Layout;
use crate::tensor::{Seen, Tensor};

/// Read guards for several tensors, taking each distinct buffer's lock once (a
/// second read lock on the same buffer from one thread could wait behind a writer).
pub(crate) struct ReadMany<'a, T> {
    guards: SmallVec<[RwLockReadGuard<'a, crate::storage::Buf<T>>; 3]>,
    which: SmallVec<[usize; 3]>,
}

impl<'a, T: Element> ReadMany<'a, T> {
    pub(crate) fn new(tensors: &[&'a Tensor<T>]) -> Self {
        let mut guards = SmallVec::new();
        let mut which = SmallVec::new();
        for (i, t) in tensors.iter().enumerate() {
            match tensors[..i].iter().position(|u| u.shares_storage(t)) {
                Some(j) => which.push(which[j]),
                None => {
                    which.push(guards.len());
                    guards.push(t.read());
                }
            }
        }
        ReadMany { guards, which }
    }

    /// The whole buffer of the `i`-th tensor.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> &[T] {
        &self.guards[self.which[i]]
    }
}

/// `f` on the whole buffers of `a` and `b`, read-locked (once when they share a
/// buffer, as [`ReadMany`] does).
#[inline]
pub(crate) fn read2<T: Element, R>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    f: impl FnOnce(&[T], &[T]) -> R,
) -> R {
    let ga = a.read();
    if a.shares_storage(b) {
        return f(&ga, &ga);
    }
    let gb = b.read();
    f(&ga, &gb)
}

/// Elementwise `f(x)` over a tensor, as a fresh contiguous output of `op`.
#[inline]
pub(crate) fn map_op<T: Element>(
    x: &Tensor<T>,
    op: impl crate::autograd::Op<T>,
    cost: impl Cost,
    f: impl Fn(T) -> T + Sync,
) -> Tensor<T> {
    let seen = Seen::note(&[x]);
    Tensor::from_op_data_like(seen, map_data(x, cost, f), x, op, &[x])
}

/// Elementwise `f(x)` as a plain tensor that records nothing (masks, derivatives).
#[inline]
pub(crate) fn map_plain<T: Element>(
    x: &Tensor<T>,
    cost: impl Cost,
    f: impl Fn(T) -> T + Sync,
) -> Tensor<T> {
    Tensor::from_buf(map_data(x, cost, f), x.shape())
}

/// `f` over `x`'s elements in row-major order, into a fresh buffer.
#[inline]
fn map_data<T: Element>(
    x: &Tensor<T>,
    cost: impl Cost,
    f: impl Fn(T) -> T + Sync,
) -> crate::storage::Buf<T> {
    crate::kernels::elementwise::map_buf(&x.read(), x.layout(), cost, f)
}

/// True when two shapes are equal (shapes are short: a loop, not a call to `memcmp`).
#[inline(always)]
pub(crate) fn same_shape(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// `t`'s layout broadcast to `shape` (which it broadcasts to): its own layout,
/// borrowed, when it has that shape and is contiguous (the kernels then read
/// only its range), a computed one otherwise.
#[inline]
pub(crate) fn layout_as<'a, T: Element>(t: &'a Tensor<T>, shape: &[usize]) -> Cow<'a, Layout> {
    let l = t.layout();
    if l.is_contiguous() && same_shape(&l.shape, shape) {
        Cow::Borrowed(l)
    } else {
        Cow::Owned(l.broadcast_to(shape))
    }
}

/// `f(a, b)` with `a` and `b` broadcast to `shape`, as a plain tensor (records nothing).
pub(crate) fn zip_plain<T: Element>(
    shape: &[usize],
    a: &Tensor<T>,
    b: &Tensor<T>,
    cost: impl Cost,
    f: impl Fn(T, T) -> T + Sync,
) -> Tensor<T> {
    let (la, lb) = (layout_as(a, shape), layout_as(b, shape));
    let data = read2(a, b, |da, db| {
        crate::kernels::elementwise::zip_buf(da, &la, db, &lb, cost, f)
    });
    Tensor::from_buf(data, shape)
}

/// `f(a, b, c)` with all three broadcast to `shape`, as a plain tensor.
pub(crate) fn zip3_plain<T: Element>(
    shape: &[usize],
    a: &Tensor<T>,
    b: &Tensor<T>,
    c: &Tensor<T>,
    cost: impl Cost,
    f: impl Fn(T, T, T) -> T + Sync,
) -> Tensor<T> {
    let ls: [Cow<'_, Layout>; 3] = [a, b, c].map(|t| layout_as(t, shape));
    let r = ReadMany::new(&[a, b, c]);
    let data = crate::kernels::elementwise::zip3(
        (r.get(0), &*ls[0]),
        (r.get(1), &*ls[1]),
        (r.get(2), &*ls[2]),
        cost,
        f,
    );
    Tensor::from_data(data, shape)
}

/// The buffer a backward rule may write its result into: the gradient it was
/// handed, when nothing else holds that buffer ([`Tensor::exclusive_buf`]) and
/// nothing is being recorded (a recorded rule must leave its inputs intact for
/// higher-order gradients).
#[inline]
fn reusable<T: Element>(g: &mut Tensor<T>) -> Option<&mut crate::storage::Buf<T>> {
    if crate::autograd::is_grad_enabled() {
        return None;
    }
    g.exclusive_buf()
}

/// `f(g)` elementwise, in `g`'s own buffer when it is [`reusable`].
pub(crate) fn map_grad<T: Element>(
    mut g: Tensor<T>,
    cost: impl Cost,
    f: impl Fn(T) -> T + Sync,
) -> Tensor<T> {
    if let Some(dst) = reusable(&mut g) {
        crate::kernels::elementwise::map_inplace(dst, cost, f);
        return g;
    }
    map_plain(&g, cost, f)
}

/// `f(g, b)` elementwise with `b` broadcast to `g`'s shape, in `g`'s own buffer
/// when it is [`reusable`].
pub(crate) fn zip_grad<T: Element>(
    mut g: Tensor<T>,
    b: &Tensor<T>,
    cost: impl Cost,
    f: impl Fn(T, T) -> T + Sync,
) -> Tensor<T> {
    let lb = layout_as(b, g.shape());
    if let Some(dst) = reusable(&mut g) {
        // `g`'s buffer is exclusive, so `b` cannot share it: `b`'s lock is free
        crate::kernels::elementwise::zip_inplace(dst, &b.read(), &lb, cost, f);
        return g;
    }
    zip_plain(g.shape(), &g, b, cost, f)
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers shared by the op files' tests.
    use crate::gradcheck::gradcheck;
    use crate::Tensor;
    use rand::SeedableRng;

    /// A seeded f64 tensor with values in [-1, 1), marked as requiring a gradient.
    pub(crate) fn rand_leaf(shape: &[usize], seed: u64) -> Tensor<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Tensor::rand_uniform(shape, -1.0, 1.0, &mut rng).requires_grad()
    }

    /// Same values, avoiding a band around zero (for kinks and poles).
    pub(crate) fn rand_leaf_away_from_zero(shape: &[usize], seed: u64) -> Tensor<f64> {
        let x = rand_leaf(shape, seed).detach();
        crate::ops::map_plain(
            &x,
            super::Cheap,
            |v| {
                if v >= 0.0 {
                    v + 0.2
                } else {
                    v - 0.2
                }
            },
        )
        .requires_grad()
    }

    /// Panics with gradcheck's message when `f` fails it.
    #[track_caller]
    pub(crate) fn check(f: impl Fn(&[Tensor<f64>]) -> Tensor<f64>, inputs: &[Tensor<f64>]) {
        if let Err(e) = gradcheck(f, inputs) {
            panic!("{e}");
        }
    }

    /// Asserts elementwise closeness of a tensor to expected values.
    #[track_caller]
    pub(crate) fn assert_close<T: crate::Element>(t: &Tensor<T>, expected: &[f64], tol: f64) {
        let got = t.to_vec();
        assert_eq!(got.len(), expected.len(), "length of {:?}", t.shape());
        for (i, (g, e)) in got.iter().zip(expected).enumerate() {
            let g = g.to_f64_lossless();
            assert!(
                (g - e).abs() <= tol * (1.0 + e.abs()) || (g.is_nan() && e.is_nan()),
                "element {i}: got {g}, expected {e}"
            );
        }
    }
}
