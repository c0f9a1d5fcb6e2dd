//! Anomaly mode through the public API: a forward NaN panics naming the op,
//! its input shapes and the line of this file that made it (through a layer,
//! a closure and a composite loss); a backward NaN or infinity is
//! `Error::Anomaly` with the op and the line where the op was created.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ferrograd::nn::{Linear, Module};
use ferrograd::{detect_anomaly, is_anomaly_enabled, loss, Error, Tensor};

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    match err.downcast::<String>() {
        Ok(s) => *s,
        Err(e) => e.downcast_ref::<&str>().unwrap_or(&"?").to_string(),
    }
}

fn here(line: u32) -> String {
    format!("tests/anomaly.rs:{line}:")
}

/// Whether `msg` can name a file and line: always in a debug build (the
/// default test profile, asserted there); in a release build without debug
/// info the message says so instead, and names only what the symbols give.
fn has_line_info(msg: &str) -> bool {
    cfg!(debug_assertions) || !msg.contains("no debug info")
}

/// A small model whose third step takes the log of a negative number; `line`
/// gets the line of that call before it runs.
fn deep_model(x: &Tensor<f64>, fc: &Linear<f64>, line: &mut u32) -> Tensor<f64> {
    let h = fc.forward(x).tanh();
    let shifted = &h - 2.0; // tanh < 1: every element negative
    *line = line!() + 1;
    let y = shifted.log();
    y.sum()
}

fn layer() -> Linear<f64> {
    let w = Tensor::<f64>::from_vec(vec![0.5, -0.25, 1.0, 0.75], &[2, 2]).unwrap();
    Linear::from_tensors(w.requires_grad(), None).unwrap()
}

#[test]
fn a_forward_nan_deep_in_a_model_names_the_op_and_the_line() {
    let fc = layer();
    let x = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    let mut line = 0;
    // without the guard: NaN flows through silently, as in PyTorch
    assert!(deep_model(&x, &fc, &mut line).item().is_nan());
    let _guard = detect_anomaly();
    assert!(is_anomaly_enabled());
    let msg = panic_message(|| drop(deep_model(&x, &fc, &mut line)));
    assert!(
        msg.starts_with(
            "anomaly: `log` produced NaN from inputs without NaN (input shapes [[2, 2]]); called "
        ),
        "{msg}"
    );
    if has_line_info(&msg) {
        assert!(msg.contains("; called at "), "{msg}");
        assert!(msg.contains(&here(line)), "expected line {line}: {msg}");
        assert!(msg.contains("(in anomaly::deep_model"), "{msg}");
    }
}

#[test]
fn a_nan_made_inside_linear_points_at_the_call_of_forward() {
    let w = Tensor::<f64>::zeros(&[2, 2]).requires_grad();
    let fc = Linear::from_tensors(w, None).unwrap();
    // inf · 0 = NaN: the input holds an infinity (legitimate), not a NaN
    let x = Tensor::<f64>::from_vec(vec![f64::INFINITY, 1.0], &[1, 2]).unwrap();
    let _guard = detect_anomaly();
    let line = line!() + 1;
    let msg = panic_message(|| drop(fc.forward(&x)));
    assert!(
        msg.contains("produced NaN from inputs without NaN"),
        "{msg}"
    );
    assert!(
        msg.contains("[[1, 2], [2, 2]]") || msg.contains("[[2, 2], [1, 2]]"),
        "{msg}"
    );
    if has_line_info(&msg) {
        assert!(msg.contains(&here(line)), "expected line {line}: {msg}");
        assert!(msg.contains("Linear"), "names the layer it ran in: {msg}");
    }
}

#[test]
fn a_nan_made_in_a_closure_points_into_the_closure() {
    let x = Tensor::<f64>::from_vec(vec![4.0, -1.0], &[2]).unwrap();
    let _guard = detect_anomaly();
    let line = line!() + 1;
    let f = |t: &Tensor<f64>| t.sqrt();
    let msg = panic_message(|| drop(f(&x)));
    assert!(msg.starts_with("anomaly: `sqrt` produced NaN"), "{msg}");
    if has_line_info(&msg) {
        assert!(msg.contains(&here(line)), "expected line {line}: {msg}");
    }
}

#[test]
fn a_nan_made_inside_a_composite_loss_points_at_the_loss_call() {
    let log_q = Tensor::<f64>::from_vec(vec![-0.5, -1.0], &[1, 2]).unwrap();
    let p = Tensor::<f64>::from_vec(vec![-0.2, 1.2], &[1, 2]).unwrap(); // not a distribution
    let _guard = detect_anomaly();
    let line = line!() + 1;
    let msg = panic_message(|| drop(loss::kl_div(&log_q, &p)));
    assert!(msg.starts_with("anomaly: `log` produced NaN"), "{msg}");
    if has_line_info(&msg) {
        assert!(msg.contains(&here(line)), "expected line {line}: {msg}");
        assert!(msg.contains("kl_div"), "names the loss it ran in: {msg}");
    }
}

#[test]
fn infinities_and_propagated_nans_are_legitimate_forward() {
    let _guard = detect_anomaly();
    let x = Tensor::<f64>::from_vec(vec![0.0, 1.0], &[2]).unwrap();
    assert_eq!(x.log().to_vec()[0], f64::NEG_INFINITY); // -inf, not NaN: fine
    let masked = x
        .masked_fill(&x.equal_scalar(0.0), f64::NEG_INFINITY)
        .softmax(0);
    assert_eq!(masked.to_vec(), vec![0.0, 1.0]);
    let n = Tensor::<f64>::from_vec(vec![f64::NAN, 1.0], &[2]).unwrap();
    assert!(
        (&n * 2.0).to_vec()[0].is_nan(),
        "a NaN in, a NaN out: not new"
    );
}

#[test]
fn a_backward_infinity_is_an_error_naming_the_op_and_where_it_was_made() {
    let w = Tensor::<f64>::from_vec(vec![0.0, 1.0, 4.0], &[3])
        .unwrap()
        .requires_grad();
    let x = Tensor::<f64>::from_vec(vec![1.0, 1.0, 1.0], &[3]).unwrap();
    let run = || {
        let h = &w * &x;
        let line = line!() + 1;
        let r = h.sqrt(); // sqrt(0) = 0 forward, but its derivative is infinite there
        ((r * 3.0).tanh().sum(), line)
    };
    // without the guard: the infinity comes back silently
    let (loss, _) = run();
    let g = loss.backward().unwrap();
    assert!(g.get(&w).unwrap().to_vec()[0].is_infinite());

    let _guard = detect_anomaly();
    let (loss, line) = run();
    match loss.backward() {
        Err(Error::Anomaly {
            op,
            input,
            value,
            input_shapes,
            location,
        }) => {
            assert_eq!(op, "sqrt");
            assert_eq!(input, 0);
            assert_eq!(value, "an infinity");
            assert_eq!(input_shapes, vec![vec![3]]);
            if has_line_info(&location) {
                assert!(
                    location.contains(&here(line)),
                    "expected line {line}: {location}"
                );
            }
        }
        other => panic!("expected Error::Anomaly, got {other:?}"),
    }
    let msg = loss.backward().unwrap_err().to_string();
    assert!(
        msg.starts_with("anomaly: the backward of `sqrt` (input shapes [[3]]) produced an infinity in the gradient of input 0; the op was created "),
        "{msg}"
    );
    if has_line_info(&msg) {
        assert!(msg.contains("the op was created at "), "{msg}");
    }
}

#[test]
fn a_graph_built_without_the_guard_says_so() {
    let w = Tensor::<f64>::from_vec(vec![0.0], &[1])
        .unwrap()
        .requires_grad();
    let loss = w.sqrt().sum();
    let _guard = detect_anomaly();
    let e = loss.backward().unwrap_err();
    assert!(
        e.to_string().ends_with("the op was created outside detect_anomaly (turn it on before the forward pass to learn where)"),
        "{e}"
    );
}

#[test]
fn the_guard_is_per_thread_and_nests() {
    assert!(!is_anomaly_enabled());
    let outer = detect_anomaly();
    {
        let _inner = detect_anomaly();
        assert!(is_anomaly_enabled());
        assert!(!std::thread::spawn(is_anomaly_enabled).join().unwrap());
        // another thread makes NaN freely while this one is in anomaly mode
        std::thread::spawn(|| {
            let x = Tensor::<f64>::from_vec(vec![-1.0], &[1]).unwrap();
            assert!(x.log().item().is_nan());
        })
        .join()
        .unwrap();
    }
    assert!(is_anomaly_enabled());
    drop(outer);
    assert!(!is_anomaly_enabled());
}
