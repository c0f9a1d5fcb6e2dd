//! W3 as a plain program, for instruction counts under callgrind (the noise-free
//! measure of per-op overhead): `REPS` runs of a chain of 10,000 ops on a
//! 1-element tensor (`x = x * 1.0001 + 0.0001`, 5,000 times), each followed by
//! backward. `scripts/w3_callgrind.sh` runs it with 1 and 11 repetitions and
//! prints the instructions per op of the difference (start-up cancels out).
//!
//! Run: `cargo run --release --example w3_chain -- REPS`

use ferrograd::Tensor;

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .map_or(1, |s| s.parse().expect("usage: w3_chain [REPS]"));
    let x0 = Tensor::<f32>::ones(&[1]).requires_grad();
    let mut last = 0.0;
    for _ in 0..reps {
        let mut x = x0.clone();
        for _ in 0..5_000 {
            x = x * 1.0001 + 0.0001;
        }
        last = x.backward().unwrap().get(&x0).unwrap().item();
    }
    println!("d x / d x0 = {last}");
}
