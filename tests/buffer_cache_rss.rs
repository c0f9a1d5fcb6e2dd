//! The per-thread buffer cache stays bounded by what is reused: training a small
//! MLP with a different batch size every step keeps the resident set within 3×
//! that of training at a fixed (the largest) batch size. (Before the cache was
//! bounded by reuse, every batch size left its buffers in the cache, up to 256 MiB
//! per thread: 280–300 MB resident for a 1.2 MB model. This model is smaller, so
//! that the test spends little time in matrix products in a debug build.)
//!
//! Alone in its own file, so that it runs in its own process and the resident set
//! it reads (`VmRSS` in `/proc/self/status`) is its own; skipped where that file
//! does not exist.

use ferrograd::loss::cross_entropy;
use ferrograd::nn::{Activation, Mlp, Module};
use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::rand::{rngs::StdRng, RngExt, SeedableRng};
use ferrograd::Tensor;

/// 128·256 + 256·10 weights and their biases: 35,594 `f32`.
const SIZES: [usize; 3] = [128, 256, 10];
const MAX_BATCH: usize = 256;

/// The resident set size in bytes, where `/proc/self/status` exists.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One training step on a fresh random batch of `batch` samples.
fn step(model: &Mlp, opt: &mut Adam, batch: usize, rng: &mut StdRng) -> f32 {
    let x = Tensor::<f32>::randn(&[batch, SIZES[0]], rng);
    let y: Vec<usize> = (0..batch).map(|_| rng.random_range(0..SIZES[2])).collect();
    let loss = cross_entropy(&model.forward(&x), &y).expect("labels are in range");
    let grads = loss.backward().expect("the loss is a scalar");
    opt.step(&grads).expect("every parameter has a gradient");
    loss.item()
}

#[test]
fn random_batch_sizes_keep_the_resident_set_near_the_steady_one() {
    let Some(base) = rss_bytes() else {
        eprintln!("skipped: no /proc/self/status on this system");
        return;
    };
    let mut rng = StdRng::seed_from_u64(7);
    let model = Mlp::new(&SIZES, Activation::Relu, &mut rng);
    let params: usize = model.parameters().iter().map(|p| p.numel()).sum();
    assert_eq!(params, 35_594);
    let mut opt = Adam::new(
        model.parameters(),
        AdamConfig {
            lr: 1e-3,
            ..Default::default()
        },
    );

    // The steady working set: the same (largest) batch size every step.
    let mut steady = 0;
    for _ in 0..10 {
        step(&model, &mut opt, MAX_BATCH, &mut rng);
        steady = steady.max(rss_bytes().unwrap().saturating_sub(base));
    }

    // A different batch size every step.
    let mut random = 0;
    for _ in 0..64 {
        let batch = rng.random_range(1..=MAX_BATCH);
        assert!(step(&model, &mut opt, batch, &mut rng).is_finite());
        random = random.max(rss_bytes().unwrap().saturating_sub(base));
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "resident set above the start: steady {:.1} MiB, random batch sizes {:.1} MiB",
        mib(steady),
        mib(random)
    );
    assert!(
        random <= 3 * steady,
        "random batch sizes: {:.1} MiB resident above the start, more than 3× the \
         steady {:.1} MiB",
        mib(random),
        mib(steady)
    );
}
