//! Shape ops and broadcasting on arbitrary shapes (zero-size dimensions, 0-d
//! tensors, views) and arbitrary axes.
//!
//! A chain of ops is applied to a tensor `a` (with another tensor `b` for binary
//! ops, `cat`, `stack` and `matmul`), each through its `try_` form:
//!
//! - no op panics: an argument that does not fit is an `Err`;
//! - the shape of every result is the one NumPy's rules give, and an `Err` comes
//!   exactly when they give none (for the ops whose rules are simple enough to
//!   restate here);
//! - sums along an axis and broadcast `+`, `-`, `*` agree with a plain reference
//!   on small integers (exact in `f64`);
//! - backward through the whole chain gives `a` and `b` gradients of their shapes.

#![no_main]

use arbitrary::Arbitrary;
use ferrograd::Tensor;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Case {
    a: Vec<u8>,
    b: Vec<u8>,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Sum(i8, bool),
    Mean(i8, bool),
    Max(i8, bool),
    Min(i8, bool),
    Var(i8, bool),
    Logsumexp(i8, bool),
    Softmax(i8),
    LogSoftmax(i8),
    Transpose(i8, i8),
    T,
    Permute(Vec<u8>),
    Reshape(Vec<u8>),
    Narrow(i8, u8, u8),
    Unsqueeze(i8),
    Squeeze(i8),
    BroadcastTo(Vec<u8>),
    Contiguous,
    Flatten,
    Add,
    Sub,
    Mul,
    Div,
    Matmul,
    Cat(i8),
    Stack(i8),
    IndexSelect(i8, Vec<u8>),
    /// The other operand becomes this one, or a view of it.
    SetB(u8),
}

/// At most 5 dimensions of at most 4.
fn shape(raw: &[u8]) -> Vec<usize> {
    raw.iter().take(5).map(|&d| usize::from(d % 5)).collect()
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

fn tensor(s: &[usize], seed: usize) -> Tensor<f64> {
    let data = (0..numel(s))
        .map(|i| ((i * 7 + seed) % 11) as f64 - 5.0)
        .collect();
    Tensor::from_vec(data, s).unwrap()
}

fn axis(a: i8, ndim: usize) -> Option<usize> {
    let n = ndim as isize;
    let a = isize::from(a);
    let a = if a < 0 { a + n } else { a };
    (0..n).contains(&a).then_some(a as usize)
}

fn reduced(s: &[usize], ax: usize, keep: bool) -> Vec<usize> {
    let mut out = s.to_vec();
    if keep {
        out[ax] = 1;
    } else {
        out.remove(ax);
    }
    out
}

fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let da = if i + a.len() >= n {
                a[i + a.len() - n]
            } else {
                1
            };
            let db = if i + b.len() >= n {
                b[i + b.len() - n]
            } else {
                1
            };
            match (da, db) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// Row-major multi-index of `flat` in `s`.
fn unravel(mut flat: usize, s: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; s.len()];
    for (i, &d) in s.iter().enumerate().rev() {
        idx[i] = flat % d;
        flat /= d;
    }
    idx
}

/// The flat index in `s` of the element that broadcasting maps `idx` (of a shape
/// of rank `idx.len()`) to.
fn broadcast_source(idx: &[usize], s: &[usize]) -> usize {
    let skip = idx.len() - s.len();
    s.iter()
        .zip(&idx[skip..])
        .fold(0, |acc, (&d, &i)| acc * d + if d == 1 { 0 } else { i })
}

fn check_binary(x: &Tensor<f64>, y: &Tensor<f64>, out: &Tensor<f64>, f: fn(f64, f64) -> f64) {
    let (xv, yv, ov) = (x.to_vec(), y.to_vec(), out.to_vec());
    for (flat, &o) in ov.iter().enumerate() {
        let idx = unravel(flat, out.shape());
        let want = f(
            xv[broadcast_source(&idx, x.shape())],
            yv[broadcast_source(&idx, y.shape())],
        );
        assert!(same(o, want, 0.0), "element {idx:?}: {o} vs {want}");
    }
}

/// `got` is `want` up to `tol` (NaN matches NaN, infinities match exactly).
fn same(got: f64, want: f64, tol: f64) -> bool {
    if want.is_nan() {
        got.is_nan()
    } else if want.is_infinite() {
        got == want
    } else {
        (got - want).abs() <= tol
    }
}

/// The sum along `ax`, against a plain loop (any summation order: to a relative
/// 1e-12 of the sum of magnitudes).
fn check_sum(x: &Tensor<f64>, ax: usize, out: &Tensor<f64>) {
    let s = x.shape();
    let r = reduced(s, ax, true);
    let mut want = vec![0.0; numel(&r)];
    let mut scale = vec![0.0f64; numel(&r)];
    for (flat, &v) in x.to_vec().iter().enumerate() {
        let mut idx = unravel(flat, s);
        idx[ax] = 0;
        let dst = idx.iter().zip(&r).fold(0, |acc, (&i, &d)| acc * d + i);
        want[dst] += v;
        scale[dst] += v.abs();
    }
    for (i, (&o, &w)) in out.to_vec().iter().zip(&want).enumerate() {
        assert!(
            same(o, w, 1e-12 * scale[i]),
            "sum_axis element {i}: {o} vs {w}"
        );
    }
}

/// Checks `r` against the expected shape: `Some` must be `Ok` of that shape,
/// `None` an `Err`.
fn expect(
    what: &str,
    r: ferrograd::Result<Tensor<f64>>,
    want: Option<Vec<usize>>,
) -> Option<Tensor<f64>> {
    match (r, want) {
        (Ok(t), Some(s)) => {
            assert_eq!(t.shape(), &s[..], "{what}");
            Some(t)
        }
        (Err(_), None) => None,
        (Ok(t), None) => panic!("{what}: expected an error, got shape {:?}", t.shape()),
        (Err(e), Some(s)) => panic!("{what}: expected shape {s:?}, got {e}"),
    }
}

/// The result must not panic; its shape is checked when the op succeeds.
fn lenient(
    what: &str,
    r: ferrograd::Result<Tensor<f64>>,
    want: Option<Vec<usize>>,
) -> Option<Tensor<f64>> {
    let t = r.ok()?;
    if let Some(s) = want {
        assert_eq!(t.shape(), &s[..], "{what}");
    }
    Some(t)
}

fuzz_target!(|case: Case| {
    let a = tensor(&shape(&case.a), 0).requires_grad();
    let b = tensor(&shape(&case.b), 3).requires_grad();
    let mut x = a.clone();
    let mut y = b.clone();
    for op in case.ops.iter().take(8) {
        let s = x.shape().to_vec();
        let nd = s.len();
        let next = match *op {
            Op::Sum(ax, keep) => {
                let want = axis(ax, nd).map(|i| reduced(&s, i, keep));
                let out = expect("sum_axis", x.try_sum_axis(ax.into(), keep), want);
                if let (Some(o), Some(i)) = (&out, axis(ax, nd)) {
                    check_sum(&x, i, o);
                }
                out
            }
            Op::Mean(ax, keep) => expect(
                "mean_axis",
                x.try_mean_axis(ax.into(), keep),
                axis(ax, nd).map(|i| reduced(&s, i, keep)),
            ),
            Op::Max(ax, keep) => expect(
                "max_axis",
                x.try_max_axis(ax.into(), keep),
                axis(ax, nd)
                    .filter(|&i| s[i] > 0)
                    .map(|i| reduced(&s, i, keep)),
            ),
            Op::Min(ax, keep) => expect(
                "min_axis",
                x.try_min_axis(ax.into(), keep),
                axis(ax, nd)
                    .filter(|&i| s[i] > 0)
                    .map(|i| reduced(&s, i, keep)),
            ),
            Op::Var(ax, keep) => lenient(
                "var_axis",
                x.try_var_axis(ax.into(), keep),
                axis(ax, nd).map(|i| reduced(&s, i, keep)),
            ),
            Op::Logsumexp(ax, keep) => lenient(
                "logsumexp",
                x.try_logsumexp(ax.into(), keep),
                axis(ax, nd).map(|i| reduced(&s, i, keep)),
            ),
            Op::Softmax(ax) => expect(
                "softmax",
                x.try_softmax(ax.into()),
                axis(ax, nd).map(|_| s.clone()),
            ),
            Op::LogSoftmax(ax) => expect(
                "log_softmax",
                x.try_log_softmax(ax.into()),
                axis(ax, nd).map(|_| s.clone()),
            ),
            Op::Transpose(p, q) => expect(
                "transpose",
                x.try_transpose(p.into(), q.into()),
                axis(p, nd).zip(axis(q, nd)).map(|(i, j)| {
                    let mut o = s.clone();
                    o.swap(i, j);
                    o
                }),
            ),
            Op::T => expect(
                "t",
                x.try_t(),
                (nd <= 2).then(|| s.iter().rev().copied().collect()),
            ),
            Op::Permute(ref p) => {
                let perm: Vec<usize> = p.iter().take(6).map(|&v| usize::from(v % 6)).collect();
                let mut sorted = perm.clone();
                sorted.sort_unstable();
                let valid = sorted == (0..nd).collect::<Vec<_>>();
                expect(
                    "permute",
                    x.try_permute(&perm),
                    valid.then(|| perm.iter().map(|&i| s[i]).collect()),
                )
            }
            Op::Reshape(ref r) => {
                let target = shape(r);
                expect(
                    "reshape",
                    x.try_reshape(&target),
                    (numel(&target) == numel(&s)).then(|| target.clone()),
                )
            }
            Op::Narrow(ax, start, len) => {
                let (start, len) = (usize::from(start % 6), usize::from(len % 6));
                expect(
                    "narrow",
                    x.try_narrow(ax.into(), start, len),
                    axis(ax, nd).filter(|&i| start + len <= s[i]).map(|i| {
                        let mut o = s.clone();
                        o[i] = len;
                        o
                    }),
                )
            }
            Op::Unsqueeze(ax) => {
                let n = nd as isize + 1;
                let a = isize::from(ax);
                let a = if a < 0 { a + n } else { a };
                expect(
                    "unsqueeze",
                    x.try_unsqueeze(ax.into()),
                    (0..n).contains(&a).then(|| {
                        let mut o = s.clone();
                        o.insert(a as usize, 1);
                        o
                    }),
                )
            }
            Op::Squeeze(ax) => expect(
                "squeeze",
                x.try_squeeze(ax.into()),
                axis(ax, nd).map(|i| {
                    let mut o = s.clone();
                    if o[i] == 1 {
                        o.remove(i);
                    }
                    o
                }),
            ),
            Op::BroadcastTo(ref t) => {
                let target = shape(t);
                let ok = broadcast(&s, &target).is_some_and(|b| b == target);
                expect(
                    "broadcast_to",
                    x.try_broadcast_to(&target),
                    ok.then(|| target.clone()),
                )
            }
            Op::Contiguous => Some(x.contiguous()),
            Op::Flatten => Some(x.flatten()),
            Op::Add | Op::Sub | Op::Mul | Op::Div => {
                let want = broadcast(&s, y.shape());
                let (r, f): (_, fn(f64, f64) -> f64) = match op {
                    Op::Add => (x.try_add(&y), |p, q| p + q),
                    Op::Sub => (x.try_sub(&y), |p, q| p - q),
                    Op::Mul => (x.try_mul(&y), |p, q| p * q),
                    _ => (x.try_div(&y), |p, q| p / q),
                };
                let out = expect("binary", r, want);
                if let Some(o) = &out {
                    if !matches!(op, Op::Div) {
                        check_binary(&x, &y, o, f);
                    }
                }
                out
            }
            Op::Matmul => lenient("matmul", x.try_matmul(&y), None),
            Op::Cat(ax) => {
                let ys = y.shape();
                let want = axis(ax, nd)
                    .filter(|&i| ys.len() == nd && (0..nd).all(|j| j == i || s[j] == ys[j]))
                    .map(|i| {
                        let mut o = s.clone();
                        o[i] += ys[i];
                        o
                    });
                lenient("cat", Tensor::try_cat(&[&x, &y], ax.into()), want)
            }
            Op::Stack(ax) => {
                let n = nd as isize + 1;
                let a = isize::from(ax);
                let a = if a < 0 { a + n } else { a };
                let want = ((0..n).contains(&a) && y.shape() == &s[..]).then(|| {
                    let mut o = s.clone();
                    o.insert(a as usize, 2);
                    o
                });
                lenient("stack", Tensor::try_stack(&[&x, &y], ax.into()), want)
            }
            Op::IndexSelect(ax, ref idx) => {
                let idx: Vec<usize> = idx.iter().take(6).map(|&i| usize::from(i % 6)).collect();
                let want = axis(ax, nd)
                    .filter(|&i| idx.iter().all(|&k| k < s[i]))
                    .map(|i| {
                        let mut o = s.clone();
                        o[i] = idx.len();
                        o
                    });
                expect("index_select", x.try_index_select(ax.into(), &idx), want)
            }
            Op::SetB(k) => {
                y = match k % 3 {
                    0 => x.clone(),
                    1 => x.try_t().unwrap_or_else(|_| x.clone()),
                    _ => b.clone(),
                };
                None
            }
        };
        if let Some(t) = next {
            x = t;
        }
    }
    // Backward through the chain: gradients of the leaves' shapes.
    let loss = (&x * &x).sum() + (&y * 0.5).sum();
    let grads = loss.backward().expect("backward");
    if let Some(g) = grads.get(&a) {
        assert_eq!(g.shape(), a.shape());
    }
    if let Some(g) = grads.get(&b) {
        assert_eq!(g.shape(), b.shape());
    }
});
