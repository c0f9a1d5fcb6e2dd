#!/usr/bin/env bash
# The ferrograd side of the six workloads: the Criterion benches of W1-W5, then
# W6 (examples/peak_memory). Extra arguments go to Criterion, e.g. the short
# settings used while developing:
#   scripts/bench_rust.sh --warm-up-time 1 --measurement-time 3
# Criterion keeps its estimates under target/criterion; the W6 line is copied to
# target/bench_rust/w6.txt. scripts/bench_table.py puts both sides in one table.
set -euo pipefail

cd "$(dirname "$0")/.."
mkdir -p target/bench_rust

cargo bench --bench matmul -- 'matmul_f32/' "$@"           # W1 (forward GEMM only)
cargo bench --bench chain -- 'forward_backward' "$@"       # W3
cargo bench --bench w2_mlp -- "$@"                         # W2
cargo bench --bench w4_moons -- "$@"                       # W4
cargo bench --bench w5_gpt -- "$@"                         # W5
cargo run --release --example peak_memory | tee target/bench_rust/w6.txt   # W6
