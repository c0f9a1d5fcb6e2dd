//! W3 as a plain program, for instruction counts under callgrind (the noise-free
//! measure of per-op overhead): `REPS` runs of a chain of 10,000 ops on a
//! 1-element tensor, each followed by backward. `KIND` picks the chain:
//!
//! - `scalar` (the default, W3 itself): `x = x * 1.0001 + 0.0001`, 5,000 times;
//! - `tensor`: `x = x * a + b`, 5,000 times, with `a` and `b` 1-element leaves
//!   that require grad (tensor–tensor `mul`/`add`, two gradients per op);
//! - `tanh`: `x = x.tanh()`, 10,000 times (a unary op that saves its output).
//!
//! `scripts/w3_callgrind.sh` runs each with 1 and 11 repetitions and prints the
//! instructions per op of the difference (start-up cancels out).
//!
//! Run: `cargo run --release --example w3_chain -- REPS [scalar|tensor|tanh]`

use ferrograd::Tensor;

const USAGE: &str = "usage: w3_chain [REPS] [scalar|tensor|tanh]";

fn main() {
    let mut args = std::env::args().skip(1);
    let reps: usize = args.next().map_or(1, |s| s.parse().expect(USAGE));
    let kind = args.next().unwrap_or_else(|| "scalar".into());
    let x0 = Tensor::<f32>::ones(&[1]).requires_grad();
    let a = Tensor::<f32>::full(&[1], 1.0001).requires_grad();
    let b = Tensor::<f32>::full(&[1], 0.0001).requires_grad();
    let mut last = 0.0;
    for _ in 0..reps {
        let mut x = x0.clone();
        match kind.as_str() {
            "scalar" => {
                for _ in 0..5_000 {
                    x = x * 1.0001 + 0.0001;
                }
            }
            "tensor" => {
                for _ in 0..5_000 {
                    x = &(&x * &a) + &b;
                }
            }
            "tanh" => {
                for _ in 0..10_000 {
                    x = x.tanh();
                }
            }
            _ => panic!("{USAGE}"),
        }
        last = x.backward().unwrap().get(&x0).unwrap().item();
    }
    println!("{kind}: d x / d x0 = {last}");
}
