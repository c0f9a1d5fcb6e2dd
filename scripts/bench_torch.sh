#!/usr/bin/env bash
# The PyTorch side of the six workloads: W1-W5 with bench_torch.py (2 threads),
# then W6 (peak RSS of 100 W2 steps at B=256) with torch_peak_memory.py.
#
# usage: scripts/bench_torch.sh [WORKLOAD...]   e.g. scripts/bench_torch.sh w2 w5 w6
#   TORCH_PYTHON  a python with torch and numpy  (default target/pyenv/bin/python,
#                 made by scripts/setup_python_peers.sh)
#   BENCH_DIR     where bench_torch.py and common.py live  (default ../shared/bench
#                 beside the repository)
#   THREADS       torch threads  (default 2)
# Raw results (JSON lines) go to target/bench_torch/raw.jsonl, replaced on each run,
# and the W6 line to target/bench_torch/w6.txt. scripts/bench_table.py compares them
# with ferrograd's (scripts/bench_rust.sh).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${TORCH_PYTHON:-$root/target/pyenv/bin/python}"
bench_dir="${BENCH_DIR:-$root/../shared/bench}"
threads="${THREADS:-2}"
out="$root/target/bench_torch"
mkdir -p "$out"
rm -f "$out/raw.jsonl" "$out/w6.txt"

echo "== PyTorch $("$python" -c 'import torch; print(torch.__version__)'), $threads threads"
# bench_torch.py knows w1-w5; w6 is torch_peak_memory.py. No argument: all six.
torch_args=()
run_w6=$(( $# == 0 ))
for w in "$@"; do
    if [ "$w" = w6 ]; then run_w6=1; else torch_args+=("$w"); fi
done
if [ $# -eq 0 ] || [ ${#torch_args[@]} -gt 0 ]; then
    (cd "$bench_dir" && PEERS_RESULTS="$out/raw.jsonl" "$python" bench_torch.py "$threads" "${torch_args[@]}")
fi
if [ "$run_w6" -eq 1 ]; then
    "$python" "$root/scripts/torch_peak_memory.py" "$threads" | tee "$out/w6.txt"
fi
echo "raw results: $out/raw.jsonl"
