//! `set_num_threads` makes the calling thread one of the pool's threads; the
//! kernels give the same results on it, and work started from other threads
//! still runs, with the other threads spinning between kernels or not
//! (`set_spin_time`). (The global pool is per process: this file is its own test
//! binary, and its one test sets the pool up.)

use ferrograd::Tensor;

/// Small integers, so every product and sum below is exact in f64.
fn ints(n: usize, seed: usize) -> Vec<f64> {
    (0..n)
        .map(|i| ((i * 7 + seed * 13) % 11) as f64 - 5.0)
        .collect()
}

/// `a · b` (m × k by k × n), one entry at a time.
fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    (0..m * n)
        .map(|ij| (0..k).map(|l| a[ij / n * k + l] * b[l * n + ij % n]).sum())
        .collect()
}

#[test]
fn the_calling_thread_joins_the_pool() {
    ferrograd::set_num_threads(2).unwrap();
    assert_eq!(ferrograd::num_threads(), 2);
    // this thread is the pool's first thread, not a caller outside it
    assert_eq!(rayon::current_thread_index(), Some(0));
    let err = ferrograd::set_num_threads(3).unwrap_err().to_string();
    assert!(
        err.contains("set_num_threads") && err.contains("already set up"),
        "{err}"
    );

    // a product large enough to be split over the pool, from this thread and
    // from another one (which hands it to the one worker)
    let (m, k, n) = (300, 260, 280);
    let (av, bv) = (ints(m * k, 1), ints(k * n, 2));
    let want = naive(&av, &bv, m, k, n);
    let product = move || {
        let a = Tensor::from_vec(ints(m * k, 1), &[m, k]).unwrap();
        let b = Tensor::from_vec(ints(k * n, 2), &[k, n]).unwrap();
        a.matmul(&b).to_vec()
    };
    assert_eq!(product(), want);
    assert_eq!(std::thread::spawn(product).join().unwrap(), want);

    // a large elementwise kernel and its gradient, split over the pool too
    let x = Tensor::from_vec(ints(1 << 19, 3), &[1 << 19])
        .unwrap()
        .requires_grad();
    let y = x.mul(&x).sum();
    assert_eq!(
        y.item(),
        ints(1 << 19, 3).iter().map(|v| v * v).sum::<f64>()
    );
    let g = y.backward().unwrap();
    assert_eq!(
        g.get(&x).unwrap().to_vec(),
        ints(1 << 19, 3).iter().map(|v| 2.0 * v).collect::<Vec<_>>()
    );

    // training steps give the same losses, bit for bit, whether the worker
    // spins between kernels (the default) or sleeps
    assert_eq!(ferrograd::spin_time(), std::time::Duration::from_millis(1));
    let spinning = train_mlp();
    ferrograd::set_spin_time(std::time::Duration::ZERO);
    let sleeping = train_mlp();
    ferrograd::set_spin_time(std::time::Duration::from_millis(1));
    assert_eq!(spinning, sleeping);
    assert!(spinning[4] < spinning[0], "{spinning:?}");
}

/// Five Adam steps of an MLP large enough for its products to be split over
/// the pool; the losses.
fn train_mlp() -> Vec<f32> {
    use ferrograd::nn::{Activation, Mlp, Module};
    use ferrograd::optim::{Adam, AdamConfig, Optimizer};
    use ferrograd::rand::{rngs::StdRng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(7);
    let model = Mlp::new(&[256, 256, 10], Activation::Relu, &mut rng);
    let mut opt = Adam::new(model.parameters(), AdamConfig::default());
    let x = Tensor::<f32>::randn(&[128, 256], &mut rng);
    let y: Vec<usize> = (0..128).map(|i| i % 10).collect();
    (0..5)
        .map(|_| {
            let loss = ferrograd::loss::cross_entropy(&model.forward(&x), &y).unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
            loss.item()
        })
        .collect()
}
