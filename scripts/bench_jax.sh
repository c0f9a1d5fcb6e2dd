#!/usr/bin/env bash
# The JAX side (jit, XLA CPU) of W1 and W2: shared/bench/bench_jax.py on both
# cores, then pinned to one core with taskset (for W2 B=1 on 1 core).
#
# usage: scripts/bench_jax.sh [w1|w2...]
#   TORCH_PYTHON  a python with jax and numpy (default target/pyenv/bin/python,
#                 made by scripts/setup_python_peers.sh)
#   BENCH_DIR     where bench_jax.py and common.py live (default ../shared/bench
#                 beside the repository)
#   ONE_CORE      the core of the 1-core run (default 0); ONE_CORE=none skips it
# Raw results (JSON lines) go to target/bench_jax/raw.jsonl, replaced on each run.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${TORCH_PYTHON:-$root/target/pyenv/bin/python}"
bench_dir="${BENCH_DIR:-$root/../shared/bench}"
one_core="${ONE_CORE:-0}"
out="$root/target/bench_jax"
mkdir -p "$out"
rm -f "$out/raw.jsonl"
bench_dir="$(cd "$bench_dir" && pwd)"

echo "== JAX $("$python" -c 'import jax; print(jax.__version__)'), 2 cores"
(cd "$bench_dir" && PEERS_RESULTS="$out/raw.jsonl" "$python" bench_jax.py "2 cores" "$@")
if [ "$one_core" != none ]; then
    echo "== JAX, 1 core (taskset -c $one_core)"
    (cd "$bench_dir" && PEERS_RESULTS="$out/raw.jsonl" taskset -c "$one_core" "$python" bench_jax.py "1 core" "$@")
fi
echo "raw results: $out/raw.jsonl"
