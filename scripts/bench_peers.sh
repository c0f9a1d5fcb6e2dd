#!/usr/bin/env bash
# The Rust peers' side of the six workloads: candle, dfdx and burn (ndarray and
# flex backends), from the separate Cargo project peers/ (see peers/README.md).
#
# usage: scripts/bench_peers.sh [PEER...] [WORKLOAD...]
#   e.g. scripts/bench_peers.sh candle dfdx w2 w6
#   PEER      candle, dfdx, burn-ndarray, burn-flex (default: all)
#   WORKLOAD  w1 ... w6 (default: all; W5 is candle's only)
#   THREADS   threads for the peers' pools (default 2; RAYON_NUM_THREADS,
#             MATMUL_NUM_THREADS and CANDLE_NUM_THREADS)
#   PEERS_SAMPLES, PEERS_MIN_SAMPLE_S  as in shared/bench/common.py (7, 0.1 s);
#             smaller values give a quick smoke run
# Results (JSON lines, common.py's format) go to target/bench_peers/raw.jsonl,
# replaced on each run. The release build goes to target/peers.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/target/bench_peers"
mkdir -p "$out"
rm -f "$out/raw.jsonl"

cargo build --release --locked --manifest-path "$root/peers/Cargo.toml" --target-dir "$root/target/peers"
PEERS_THREADS="${THREADS:-2}" PEERS_RESULTS="$out/raw.jsonl" \
    "$root/target/peers/release/ferrograd-peers" "$@"
echo "raw results: $out/raw.jsonl"
