//! Tensors are `Send + Sync`: graphs built in one thread run backward in another,
//! and independent graphs train in parallel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use ferrograd::Tensor;

#[test]
fn graph_built_in_one_thread_backward_in_another() {
    let x = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0], &[3])
        .unwrap()
        .requires_grad();
    let loss = (&x * &x).sum(); // d/dx = 2x
    let (x2, loss2) = (x.clone(), loss.clone());
    let g = thread::spawn(move || loss2.backward().unwrap().get(&x2).unwrap().to_vec())
        .join()
        .unwrap();
    assert_eq!(g, vec![2.0, 4.0, 6.0]);
    // and the original thread can still use the graph
    assert_eq!(loss.backward().unwrap().get(&x).unwrap().to_vec(), g);
}

#[test]
fn shared_weights_read_by_many_threads() {
    let w = Tensor::<f32>::from_vec(vec![0.5, -1.0], &[2, 1])
        .unwrap()
        .requires_grad();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let w = w.clone();
            thread::spawn(move || {
                let x = Tensor::<f32>::full(&[3, 2], i as f32);
                let g = x.matmul(&w).sum().backward().unwrap();
                g.get(&w).unwrap().to_vec()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), vec![3.0 * i as f32; 2]);
    }
}

/// Fits y = 3x − 1 by gradient descent; each thread has its own parameters.
fn train(seed: u64) -> (f64, f64) {
    let x =
        Tensor::<f64>::from_vec((0..16).map(|i| i as f64 / 8.0 - 1.0).collect(), &[16, 1]).unwrap();
    let y = &x * 3.0 - 1.0;
    let w = Tensor::<f64>::from_vec(vec![seed as f64 * 0.1], &[1, 1])
        .unwrap()
        .requires_grad();
    let b = Tensor::<f64>::zeros(&[1]).requires_grad();
    for _ in 0..500 {
        let loss = (x.matmul(&w) + &b - &y).square().mean();
        let g = loss.backward().unwrap();
        w.assign(&(&w - g.get(&w).unwrap() * 0.3)).unwrap();
        b.assign(&(&b - g.get(&b).unwrap() * 0.3)).unwrap();
        // no_grad is per thread: another thread's guard never disables ours
        assert!(ferrograd::is_grad_enabled());
    }
    (w.item(), b.item())
}

#[test]
fn two_threads_train_independent_graphs_at_once() {
    let a = thread::spawn(|| train(1));
    let b = thread::spawn(|| train(7));
    for (w, b) in [a.join().unwrap(), b.join().unwrap()] {
        assert!(
            (w - 3.0).abs() < 1e-6 && (b + 1.0).abs() < 1e-6,
            "w {w} b {b}"
        );
    }
}

#[test]
fn a_no_grad_guard_in_one_thread_never_stops_another_from_recording() {
    // Thread b holds a no_grad guard for the whole time thread a trains (the
    // barriers make the overlap certain); a checks at every step that it still
    // records (`train` asserts it), and b that its own recording is off.
    let start = Arc::new(Barrier::new(2));
    let done = Arc::new(Barrier::new(2));
    let a = {
        let (start, done) = (start.clone(), done.clone());
        thread::spawn(move || {
            start.wait();
            let r = train(3);
            done.wait();
            r
        })
    };
    let b = thread::spawn(move || {
        let _guard = ferrograd::no_grad();
        start.wait();
        let w = Tensor::<f64>::ones(&[2]).requires_grad();
        let off = !(&w * 2.0).needs_grad();
        done.wait();
        off
    });
    let (w, bias) = a.join().unwrap();
    assert!((w - 3.0).abs() < 1e-6 && (bias + 1.0).abs() < 1e-6);
    assert!(
        b.join().unwrap(),
        "the guard's own thread stopped recording"
    );
}

#[test]
fn an_ok_gradient_is_always_the_gradient_at_the_values_the_forward_pass_saw() {
    // One thread runs y = Σ w·w and backward while another keeps setting w to
    // uniform values k. Backward may refuse (the graph went stale), but every
    // gradient it returns must be 2k for the k the forward pass saw (y = n·k²),
    // never a mix of old and new values.
    const N: usize = 64;
    let w = Tensor::<f64>::full(&[N], 1.0).requires_grad();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (w, stop) = (w.clone(), stop.clone());
        thread::spawn(move || {
            let mut k = 1.0;
            while !stop.load(Ordering::Relaxed) {
                k = if k >= 50.0 { 1.0 } else { k + 1.0 };
                w.assign(&Tensor::full(&[N], k)).unwrap();
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    let (mut ok, mut refused) = (0, 0);
    while Instant::now() < deadline {
        let y = w.mul(&w).sum();
        let k = (y.item() / N as f64).sqrt();
        match y.backward() {
            Ok(g) => {
                ok += 1;
                let g = g.get(&w).unwrap().to_vec();
                assert!(
                    g.iter().all(|&v| v == 2.0 * k),
                    "forward saw k = {k}, gradient {:?}",
                    &g[..4]
                );
            }
            Err(ferrograd::Error::ModifiedInPlace { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(ok + refused > 0, "ok {ok}, refused {refused}");
}

#[test]
fn in_place_updates_while_other_threads_read() {
    // one thread updates a parameter in place while others run forward passes:
    // each reader sees either the old or the new values, never a torn mix
    let w = Tensor::<f32>::zeros(&[1000]);
    let writer = {
        let w = w.clone();
        thread::spawn(move || {
            for k in 1..=200 {
                w.assign(&Tensor::full(&[1000], k as f32)).unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let w = w.clone();
            thread::spawn(move || {
                for _ in 0..200 {
                    let v = w.mul_scalar(1.0).to_vec();
                    assert!(v.iter().all(|&x| x == v[0]), "torn read");
                }
            })
        })
        .collect();
    writer.join().unwrap();
    readers.into_iter().for_each(|r| r.join().unwrap());
    assert_eq!(w.to_vec()[0], 200.0);
}
