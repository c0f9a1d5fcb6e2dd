#!/usr/bin/env bash
# How long a crate that depends on ferrograd takes to build in release: the
# README's quick tour plus Adam, Linear, cross_entropy and save_safetensors, in
# a fresh crate with the stock release profile (no .cargo/config, RUSTFLAGS or
# linker change). Reports the clean build (ferrograd and its dependencies
# included) and the median of 5 rebuilds after touching the crate's main.rs,
# and writes the clean build's `cargo build --timings` report.
#   scripts/dependent_build_time.sh [DIR]     (default: a new temporary directory)
# Run it on a quiet machine: a build running beside it doubles the figures.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$(mktemp -d)}"
mkdir -p "$dir/src"
cd "$dir"
unset RUSTFLAGS CARGO_TARGET_DIR CARGO_BUILD_RUSTFLAGS CARGO_PROFILE_RELEASE_DEBUG
cat > Cargo.toml <<TOML
[package]
name = "dependent"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
ferrograd = { path = "$repo" }

[workspace]
TOML
cat > src/main.rs <<'RS'
use ferrograd::nn::{Linear, Module};
use ferrograd::optim::{Adam, AdamConfig, Optimizer};
use ferrograd::{loss, rand::SeedableRng, Tensor};

fn main() -> Result<(), ferrograd::Error> {
    // the README's quick tour
    let mut rng = ferrograd::rand::rngs::StdRng::seed_from_u64(0);
    let x = Tensor::<f32>::randn(&[64, 3], &mut rng);
    let y = x.matmul(&Tensor::from_vec(vec![1.0, -2.0, 0.5], &[3, 1])?);
    let w1 = (Tensor::<f32>::randn(&[3, 16], &mut rng) * 0.5).requires_grad();
    let w2 = (Tensor::<f32>::randn(&[16, 1], &mut rng) * 0.25).requires_grad();
    for _ in 0..300 {
        let pred = x.matmul(&w1).tanh().matmul(&w2);
        let loss = (&pred - &y).square().mean();
        let grads = loss.backward()?;
        for w in [&w1, &w2] {
            w.assign(&(w - grads.get(w).unwrap() * 0.05))?;
        }
    }
    // plus a layer, Adam, cross-entropy and a checkpoint
    let fc = Linear::<f32>::new(3, 2, true, &mut rng);
    let labels: Vec<usize> = (0..64).map(|i| i % 2).collect();
    let mut opt = Adam::new(fc.parameters(), AdamConfig::default());
    for _ in 0..10 {
        let loss = loss::cross_entropy(&fc.forward(&x), &labels)?;
        opt.step(&loss.backward()?)?;
    }
    let path = std::env::temp_dir().join("dependent_build_time.safetensors");
    ferrograd::io::save_safetensors(&path, &fc.named_parameters())?;
    println!("done");
    Ok(())
}
RS
cp "$repo/Cargo.lock" Cargo.lock 2>/dev/null || true
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f\n", b - a }'; }
rm -rf target
clean=$(secs cargo build --release --timings)
cargo run --release -q | grep -q done
rebuilds=()
for _ in 1 2 3 4 5; do
    touch src/main.rs
    rebuilds+=("$(secs cargo build --release)")
done
median=$(printf '%s\n' "${rebuilds[@]}" | sort -n | sed -n 3p)
echo "clean release build: ${clean} s (timings: $dir/target/cargo-timings/cargo-timing.html)"
echo "release rebuilds after editing main.rs: ${rebuilds[*]} s; median ${median} s"
