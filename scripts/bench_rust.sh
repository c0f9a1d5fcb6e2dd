#!/usr/bin/env bash
# The ferrograd side of the six workloads: the Criterion benches of W1-W5, then
# W6 (examples/peak_memory). Extra arguments go to Criterion, e.g. the short
# settings used while developing:
#   scripts/bench_rust.sh --warm-up-time 1 --measurement-time 3
# Criterion keeps its estimates under target/criterion; the W6 line is copied to
# target/bench_rust/w6.txt. W2 at batch 1 is measured a second time on one core
# (RAYON_NUM_THREADS=1, taskset -c ONE_CORE, default 0; ONE_CORE=none skips it),
# beside JAX's 1-core run; Criterion keeps it as the baseline "one_core"
# (target/criterion/w2_mlp_step/batch/1/one_core). It runs before the 2-thread W2,
# since Criterion writes every run to "new" too. scripts/bench_table.py puts
# ferrograd and its peers in one table.
set -euo pipefail

cd "$(dirname "$0")/.."
mkdir -p target/bench_rust

cargo bench --bench matmul -- 'matmul_f32/' "$@"           # W1 (forward GEMM only)
cargo bench --bench chain -- 'forward_backward' "$@"       # W3
one_core="${ONE_CORE:-0}"
if [ "$one_core" != none ]; then                           # W2 B=1, one core
    cargo bench --bench w2_mlp --no-run
    RAYON_NUM_THREADS=1 taskset -c "$one_core" \
        cargo bench --bench w2_mlp -- 'w2_mlp_step/batch/1$' --save-baseline one_core "$@"
fi
cargo bench --bench w2_mlp -- "$@"                         # W2
cargo bench --bench w4_moons -- "$@"                       # W4
cargo bench --bench w5_gpt -- "$@"                         # W5
cargo run --release --example peak_memory | tee target/bench_rust/w6.txt   # W6
