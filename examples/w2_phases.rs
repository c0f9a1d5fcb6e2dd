//! W2 (MLP 784-256-256-10, Adam) on one fixed batch, timed phase by phase:
//! forward with the loss, backward, and Adam's update, in blocks of steps; after
//! each block, how many of Adam's first moments and squared-gradient terms are
//! subnormal. Once the network has memorised its batch, the dead units' first
//! moments decay into the subnormal range and stay there, and the update slows
//! down (see "Afternoon" in `docs/performance-journal.md`).
//!
//! Run: `RAYON_NUM_THREADS=1 cargo run --release --example w2_phases -- [BATCH] [BLOCKS] [STEPS]`
//! (defaults: batch 1, 8 blocks of 250 steps).

use std::time::{Duration, Instant};

use ferrograd::loss::cross_entropy;
use ferrograd::nn::{Activation, Mlp, Module};
use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::rand::{rngs::StdRng, RngExt, SeedableRng};
use ferrograd::Tensor;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let batch = args.next().unwrap_or(1);
    let blocks = args.next().unwrap_or(8);
    let steps = args.next().unwrap_or(250);
    let mut rng = StdRng::seed_from_u64(0);
    let model = Mlp::new(&[784, 256, 256, 10], Activation::Relu, &mut rng);
    let config = AdamConfig {
        lr: 1e-3,
        ..Default::default()
    };
    let mut opt = Adam::new(model.parameters(), config);
    let x = Tensor::randn(&[batch, 784], &mut rng);
    let y: Vec<usize> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    println!("W2 at batch {batch}, {blocks} blocks of {steps} steps; µs per step");
    for block in 0..blocks {
        let (mut forward, mut backward, mut update) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let mut loss = 0.0;
        let mut grads = None;
        for _ in 0..steps {
            let t0 = Instant::now();
            let l = cross_entropy(&model.forward(&x), &y).expect("labels in range");
            let t1 = Instant::now();
            let g = l.backward().expect("a scalar loss");
            let t2 = Instant::now();
            opt.step(&g).expect("every parameter has a gradient");
            let t3 = Instant::now();
            (forward, backward, update) = (
                forward + (t1 - t0),
                backward + (t2 - t1),
                update + (t3 - t2),
            );
            loss = l.item();
            grads = Some(g);
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6 / steps as f64;
        // the first moments, and the (1 − β₂)·g·g terms of the last step, that are subnormal
        let grads = grads.expect("at least one step");
        let (mut sub_m, mut sub_gg, mut all) = (0, 0, 0);
        for (i, p) in model.parameters().iter().enumerate() {
            let state = opt.state(i).expect("stepped");
            sub_m += state
                .exp_avg
                .iter()
                .filter(|m: &&f32| m.is_subnormal())
                .count();
            let g = grads.get(p).expect("a gradient").to_vec();
            sub_gg += g
                .iter()
                .filter(|&&g| ((1.0 - config.beta2) * g * g).is_subnormal())
                .count();
            all += g.len();
        }
        println!(
            "steps {:>5}: loss {loss:.3e}  forward {:6.1}  backward {:6.1}  adam {:6.1}  total {:6.1}  subnormal m {sub_m} / (1-b2)g² {sub_gg} of {all}",
            (block + 1) * steps,
            us(forward),
            us(backward),
            us(update),
            us(forward + backward + update),
        );
    }
}
