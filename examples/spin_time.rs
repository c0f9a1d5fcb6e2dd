//! What the pool's spinning threads (`ferrograd::set_spin_time`) change: one
//! workload timed in blocks, alternately with the other threads sleeping as
//! soon as rayon lets them (spin time 0) and spinning for the given time after
//! each kernel, in one process, so both settings see the same machine.
//!
//! Run: `cargo run --release --example spin_time -- [WORKLOAD] [SPIN_US]`
//! with WORKLOAD one of `w2:BATCH` (W2's MLP step, default `w2:32`), `w5`
//! (W5's tiny GPT step) or `w1:N` (an N×N product), and SPIN_US the spin time
//! in microseconds (default 1000, the default of `set_spin_time`). Prints the
//! median time per step of each setting over ten blocks, their range, and the
//! ratio (above 1: spinning is faster).

#[path = "../benches/common/mlp.rs"]
mod mlp;

#[path = "../benches/common/gpt.rs"]
#[allow(dead_code)]
mod gpt;

use std::time::{Duration, Instant};

use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::Tensor;

/// Timed blocks per setting.
const BLOCKS: usize = 10;

fn main() {
    ferrograd::set_num_threads(0).expect("the pool is set up first thing");
    let mut args = std::env::args().skip(1);
    let workload = args.next().unwrap_or_else(|| "w2:32".into());
    let spin: u64 = args
        .next()
        .map_or(1000, |s| s.parse().expect("SPIN_US: microseconds"));
    let (kind, size) = workload.split_once(':').unwrap_or((&workload, "0"));
    let size: usize = size.parse().expect("a size after the colon");
    let mut step: Box<dyn FnMut()> = match kind {
        "w2" => {
            let mut t = mlp::MlpTraining::new(size, 0);
            Box::new(move || {
                t.step();
            })
        }
        "w5" => {
            let mut t = gpt::GptTraining::new(gpt::GptConfig::W5, 16, 0);
            Box::new(move || {
                t.step();
            })
        }
        "w1" => {
            let mut rng = StdRng::seed_from_u64(0);
            let a = Tensor::<f32>::randn(&[size, size], &mut rng);
            let b = Tensor::<f32>::randn(&[size, size], &mut rng);
            Box::new(move || {
                std::hint::black_box(a.matmul(&b));
            })
        }
        _ => panic!("unknown workload {workload:?}: w2:BATCH, w5 or w1:N"),
    };
    // warm up, then size the blocks to about 0.15 s
    for _ in 0..5 {
        step();
    }
    let start = Instant::now();
    for _ in 0..5 {
        step();
    }
    let steps = ((0.15 / (start.elapsed().as_secs_f64() / 5.0)) as usize).max(3);
    let mut ms = [vec![], vec![]];
    for round in 0..BLOCKS {
        // which setting goes first alternates
        for spinning in [round % 2, 1 - round % 2] {
            let time = Duration::from_micros(if spinning == 1 { spin } else { 0 });
            ferrograd::set_spin_time(time);
            // let the threads of the previous block stop spinning
            std::thread::sleep(Duration::from_millis(3));
            let start = Instant::now();
            for _ in 0..steps {
                step();
            }
            ms[spinning].push(start.elapsed().as_secs_f64() * 1e3 / steps as f64);
        }
    }
    for m in ms.iter_mut() {
        m.sort_by(f64::total_cmp);
    }
    let median = |m: &[f64]| (m[BLOCKS / 2 - 1] + m[BLOCKS / 2]) / 2.0;
    println!(
        "{workload}: spin 0: {:.3} ms [{:.3}-{:.3}]; spin {spin} µs: {:.3} ms [{:.3}-{:.3}]; ratio {:.3}",
        median(&ms[0]),
        ms[0][0],
        ms[0][BLOCKS - 1],
        median(&ms[1]),
        ms[1][0],
        ms[1][BLOCKS - 1],
        median(&ms[0]) / median(&ms[1])
    );
}
