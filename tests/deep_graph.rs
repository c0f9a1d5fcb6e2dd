//! Very deep graphs: a chain of a million ops must run forward, backward and be
//! dropped without overflowing the stack (both the walk and `Drop` are iterative).

use ferrograd::Tensor;

const OPS: usize = 1_000_000;

/// `y = (y · 1.0000001) + 1e-9`, repeated: half the ops are muls, half adds.
fn chain(x: &Tensor<f64>, ops: usize) -> Tensor<f64> {
    let mut y = x.clone();
    for _ in 0..ops / 2 {
        y = &y * 1.000_000_1 + 1e-9;
    }
    y
}

#[test]
fn million_op_chain_forward_backward_drop() {
    let x = Tensor::<f64>::scalar(1.0).requires_grad();
    let y = chain(&x, OPS);
    let g = y.backward().expect("backward over a million ops");
    let expected = 1.000_000_1f64.powi((OPS / 2) as i32);
    let got = g.get(&x).unwrap().item();
    assert!(
        (got - expected).abs() < 1e-9 * expected,
        "{got} vs {expected}"
    );
    // a second pass over the same graph gives the same answer
    assert_eq!(y.backward().unwrap().get(&x).unwrap().item(), got);
    drop(g);
    drop(y); // the whole chain is freed here, iteratively
}

#[test]
fn million_op_chain_dropped_without_backward_and_in_another_thread() {
    let x = Tensor::<f64>::scalar(1.0).requires_grad();
    let y = chain(&x, OPS);
    std::thread::spawn(move || drop(y)).join().unwrap();
}

/// A long chain of views (reshape/unsqueeze/squeeze) shares one buffer throughout.
#[test]
fn long_chain_of_views() {
    let mut v = Tensor::<f64>::ones(&[2, 2]).requires_grad();
    let leaf = v.clone();
    for _ in 0..50_000 {
        v = v.unsqueeze(0).squeeze(0).reshape(&[4]).reshape(&[2, 2]);
    }
    let g = v.sum().backward().unwrap();
    assert_eq!(g.get(&leaf).unwrap().to_vec(), vec![1.0; 4]);
}
