//! W2 (MLP 784-256-256-10, batch 32), W4 (micrograd's demo) or W5 (tiny GPT,
//! batch 16) training steps as
//! a plain program, for instruction counts under callgrind:
//! `scripts/steps_callgrind.sh` runs it with 1 and 3 steps after a warm-up step
//! and prints the instructions per step of the difference (start-up cancels).
//!
//! `w2-1` and `w2-256` run W2 at batch 1 and 256.
//!
//! Run: `cargo run --release --example w_steps -- w2|w2-1|w2-256|w4|w5 STEPS`

// only the training loops are used here
#[allow(dead_code)]
#[path = "../benches/common/gpt.rs"]
mod gpt;
#[path = "../benches/common/mlp.rs"]
mod mlp;
#[path = "../benches/common/moons.rs"]
mod moons;

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: w_steps w2|w2-1|w2-256|w4|w5 STEPS";
    let workload = args.next().expect(usage);
    let steps: usize = args.next().and_then(|s| s.parse().ok()).expect(usage);
    let mut step: Box<dyn FnMut() -> f32> = match workload.as_str() {
        "w2" | "w2-1" | "w2-256" => {
            let batch = workload
                .strip_prefix("w2-")
                .map_or(32, |b| b.parse().unwrap());
            let mut t = mlp::MlpTraining::new(batch, 0);
            Box::new(move || t.step())
        }
        "w4" => {
            let mut t = moons::MoonsTraining::new();
            Box::new(move || t.step())
        }
        "w5" => {
            let mut t = gpt::GptTraining::new(gpt::GptConfig::W5, 16, 0);
            Box::new(move || t.step())
        }
        _ => panic!("{usage}"),
    };
    let mut loss = step(); // warm-up: buffers cached, as in a long run
    for _ in 0..steps {
        loss = step();
    }
    println!("{workload}: loss {loss} after {} steps", steps + 1);
}
