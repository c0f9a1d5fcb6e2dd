//! Bad input gives the documented error, or a panic whose message names the op
//! and the shapes (asserted on the text, as a user would read it).

use std::panic::{catch_unwind, AssertUnwindSafe};

use ferrograd::{Error, Tensor};

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap()
}

#[test]
fn from_vec_with_a_wrong_length() {
    let e = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0], &[2, 2]).unwrap_err();
    assert!(matches!(
        e,
        Error::LengthMismatch {
            len: 3,
            expected: 4,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "from_vec: 3 values cannot fill shape [2, 2] (4 elements)"
    );
    let e = Tensor::<f64>::from_slice(&[1.0], &[0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "from_slice: 1 values cannot fill shape [0] (0 elements)"
    );
}

#[test]
fn bad_axes() {
    let x = Tensor::<f32>::zeros(&[2, 3]);
    let e = x.try_sum_axis(2, false).unwrap_err();
    assert!(matches!(
        e,
        Error::InvalidAxis {
            op: "sum_axis",
            axis: 2,
            ndim: 2,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "sum_axis: axis 2 is out of range for shape [2, 3] (valid axes are -2..=1)"
    );
    assert_eq!(
        panic_message(|| {
            x.softmax(-3);
        }),
        "softmax: axis -3 is out of range for shape [2, 3] (valid axes are -2..=1)"
    );
    assert_eq!(
        panic_message(|| {
            x.unsqueeze(4);
        }),
        "unsqueeze: axis 4 is out of range for shape [2, 3] (valid axes are -3..=2)"
    );
    assert!(x
        .try_narrow(0, 1, 2)
        .unwrap_err()
        .to_string()
        .contains("exceeds size 2 of axis 0"));
}

#[test]
fn every_op_with_an_axis_names_the_op_the_axis_and_the_shape() {
    let x = Tensor::<f32>::zeros(&[2, 3]);
    let y = x.clone();
    let out_of_range = |op: &str, axis: isize| {
        format!("{op}: axis {axis} is out of range for shape [2, 3] (valid axes are -2..=1)")
    };
    type AxisOp = fn(&Tensor<f32>, isize) -> Tensor<f32>;
    let ops: &[(&str, AxisOp)] = &[
        ("sum_axis", |x, a| x.sum_axis(a, false)),
        ("mean_axis", |x, a| x.mean_axis(a, true)),
        ("max_axis", |x, a| x.max_axis(a, false)),
        ("min_axis", |x, a| x.min_axis(a, false)),
        ("logsumexp", |x, a| x.logsumexp(a, false)),
        ("var_axis", |x, a| x.var_axis(a, false)),
        ("argmax", |x, a| x.argmax(a)),
        ("argmin", |x, a| x.argmin(a)),
        ("softmax", |x, a| x.softmax(a)),
        ("log_softmax", |x, a| x.log_softmax(a)),
        ("squeeze", |x, a| x.squeeze(a)),
        ("narrow", |x, a| x.narrow(a, 0, 1)),
        ("index_select", |x, a| x.index_select(a, &[0])),
        ("transpose", |x, a| x.transpose(0, a)),
        ("cat", |x, a| Tensor::cat(&[x, x], a)),
        ("chunk", |x, a| x.chunk(2, a).remove(0)),
        ("split", |x, a| x.split(&[1, 1], a).remove(0)),
        ("select", |x, a| x.select(a, 0)),
    ];
    for &(op, f) in ops {
        for axis in [2, -3, 7] {
            assert_eq!(panic_message(|| drop(f(&y, axis))), out_of_range(op, axis));
        }
    }
    // ops that insert an axis count on the output's rank
    let inserted = |op: &str, axis: isize| {
        format!("{op}: axis {axis} is out of range for shape [2, 3] (valid axes are -3..=2)")
    };
    assert_eq!(
        panic_message(|| drop(x.unsqueeze(3))),
        inserted("unsqueeze", 3)
    );
    assert_eq!(
        panic_message(|| drop(Tensor::stack(&[&x, &x], -4))),
        inserted("stack", -4)
    );
    // a 0-d tensor has no axis
    let s = Tensor::<f32>::scalar(1.0);
    assert_eq!(
        s.try_sum_axis(0, false).unwrap_err().to_string(),
        "sum_axis: axis 0 is out of range for shape [] (a 0-d tensor has no axis)"
    );
    // try_ twins give the same text as the panics
    assert_eq!(
        x.try_softmax(5).unwrap_err().to_string(),
        out_of_range("softmax", 5)
    );
    assert_eq!(
        x.try_narrow(1, 2, 2).unwrap_err().to_string(),
        "narrow: start 2 + length 2 exceeds size 3 of axis 1 (shape [2, 3])"
    );
}

#[test]
fn mismatched_matmul_shapes() {
    let a = Tensor::<f32>::zeros(&[2, 3]);
    let b = Tensor::<f32>::zeros(&[2, 3]);
    let e = a.try_matmul(&b).unwrap_err();
    assert!(
        matches!(&e, Error::ShapeMismatch { op: "matmul", lhs, rhs } if lhs == &[2, 3] && rhs == &[2, 3])
    );
    assert_eq!(
        panic_message(|| {
            a.matmul(&b);
        }),
        "matmul: incompatible shapes [2, 3] and [2, 3]"
    );
    let batched = Tensor::<f32>::zeros(&[4, 2, 3]);
    assert_eq!(
        batched
            .try_matmul(&Tensor::zeros(&[5, 3, 2]))
            .unwrap_err()
            .to_string(),
        "matmul: incompatible shapes [4, 2, 3] and [5, 3, 2]"
    );
}

#[test]
fn mismatched_broadcast_shapes() {
    let a = Tensor::<f32>::zeros(&[2, 3]);
    let b = Tensor::<f32>::zeros(&[4]);
    for (msg, f) in [
        ("add", Box::new(|| drop(&a + &b)) as Box<dyn Fn()>),
        ("sub", Box::new(|| drop(&a - &b))),
        ("mul", Box::new(|| drop(&a * &b))),
        ("div", Box::new(|| drop(&a / &b))),
        ("maximum", Box::new(|| drop(a.maximum(&b)))),
    ] {
        assert_eq!(
            panic_message(f),
            format!("{msg}: incompatible shapes [2, 3] and [4]")
        );
    }
    assert_eq!(
        a.try_broadcast_to(&[3, 3]).unwrap_err().to_string(),
        "broadcast_to: incompatible shapes [2, 3] and [3, 3]"
    );
    assert_eq!(
        panic_message(|| drop(a.reshape(&[5]))),
        "reshape: incompatible shapes [2, 3] and [5]"
    );
    assert_eq!(
        panic_message(|| drop(Tensor::cat(&[&a, &b], 0))),
        "cat: incompatible shapes [2, 3] and [4]"
    );
}

#[test]
fn backward_on_a_non_scalar_and_item_on_a_vector() {
    let x = Tensor::<f32>::ones(&[3]).requires_grad();
    let e = (&x * 2.0).backward().unwrap_err();
    assert!(matches!(&e, Error::NotScalar { shape } if shape == &[3]));
    assert!(e
        .to_string()
        .contains("expected a tensor with exactly one element, got shape [3]"));
    assert_eq!(
        panic_message(|| {
            x.item();
        }),
        "item: expected a tensor with exactly one element, got shape [3]"
    );
    assert!(x.try_item().is_err());
}

#[test]
fn index_out_of_range() {
    let table = Tensor::<f32>::zeros(&[3, 2]);
    assert_eq!(
        panic_message(|| drop(table.index_select(0, &[0, 3]))),
        "index_select: index 3 is out of range for an axis of size 3 (shape [3, 2])"
    );
}

#[test]
fn new_ops_name_the_op_the_value_and_the_shape() {
    let x = Tensor::<f32>::zeros(&[2, 3]);
    // select: an index past the axis
    let e = x.try_select(1, 3).unwrap_err();
    assert!(matches!(
        e,
        Error::IndexOutOfRange {
            op: "select",
            index: 3,
            size: 3,
            ..
        }
    ));
    assert_eq!(
        panic_message(|| drop(x.select(-2, 2))),
        "select: index 2 is out of range for an axis of size 2 (shape [2, 3])"
    );
    assert_eq!(
        x.try_select(5, 0).unwrap_err().to_string(),
        "select: axis 5 is out of range for shape [2, 3] (valid axes are -2..=1)"
    );
    // chunk: zero chunks
    assert_eq!(
        panic_message(|| drop(x.chunk(0, 1))),
        "chunk: the number of chunks must be at least 1, got 0 (shape [2, 3])"
    );
    // split: sizes that do not add up (the same text from the try_ twin)
    let msg = "split: sizes [2, 2] do not add up to 3, the size of axis 1 of shape [2, 3]";
    assert_eq!(panic_message(|| drop(x.split(&[2, 2], 1))), msg);
    assert_eq!(x.try_split(&[2, 2], 1).unwrap_err().to_string(), msg);
    // tril/triu: fewer than two axes
    let v = Tensor::<f32>::zeros(&[4]);
    assert_eq!(
        panic_message(|| drop(v.tril(0))),
        "tril: expects at least 2 dimensions, got shape [4]"
    );
    assert_eq!(
        v.try_triu(1).unwrap_err().to_string(),
        "triu: expects at least 2 dimensions, got shape [4]"
    );
    // where_cond: the first pair of operands that does not broadcast
    let mask = Tensor::<f32>::ones(&[2, 3]);
    let e = Tensor::try_where_cond(&mask, &x, &Tensor::zeros(&[4])).unwrap_err();
    assert!(
        matches!(&e, Error::ShapeMismatch { op: "where_cond", lhs, rhs } if lhs == &[2, 3] && rhs == &[4])
    );
    assert_eq!(
        panic_message(|| drop(Tensor::where_cond(&Tensor::zeros(&[5]), &x, &x))),
        "where_cond: incompatible shapes [5] and [2, 3]"
    );
    // comparisons broadcast like the binary ops
    type Cmp = fn(&Tensor<f32>, &Tensor<f32>) -> Tensor<f32>;
    let cmps: &[(&str, Cmp)] = &[
        ("equal", |a, b| a.equal(b)),
        ("not_equal", |a, b| a.not_equal(b)),
        ("greater", |a, b| a.greater(b)),
        ("greater_equal", |a, b| a.greater_equal(b)),
        ("less", |a, b| a.less(b)),
        ("less_equal", |a, b| a.less_equal(b)),
    ];
    for &(op, f) in cmps {
        assert_eq!(
            panic_message(|| drop(f(&x, &v))),
            format!("{op}: incompatible shapes [2, 3] and [4]")
        );
    }
    assert!(x.try_less_equal(&v).is_err());
    // cast: a tensor that needs a gradient
    let w = Tensor::<f32>::ones(&[2]).requires_grad();
    let msg = "cast: the tensor of shape [2] needs a gradient, and cast from f32 to f64 is \
               not differentiable; call detach() first to cast its values";
    assert_eq!(panic_message(|| drop(w.cast::<f64>())), msg);
    assert!(matches!(
        w.try_cast::<f64>().unwrap_err(),
        Error::InvalidArgument { op: "cast", .. }
    ));
}

#[test]
fn panics_point_at_the_callers_line() {
    // #[track_caller]: the location of the panic is this file, not the crate's
    let hook = std::panic::take_hook();
    let (tx, rx) = std::sync::mpsc::channel();
    std::panic::set_hook(Box::new(move |info| {
        let _ = tx.send(info.location().map(|l| l.file().to_string()));
    }));
    let _ = catch_unwind(|| Tensor::<f32>::zeros(&[2]).matmul(&Tensor::zeros(&[3])));
    std::panic::set_hook(hook);
    assert_eq!(rx.recv().unwrap().as_deref(), Some("tests/errors.rs"));
}
