#!/usr/bin/env bash
# Instructions per training step of W2 (batch 32), W4 and W5 under callgrind, on one
# thread (RAYON_NUM_THREADS=1, so idle workers' spinning does not count):
# examples/w_steps with 1 and 3 steps after a warm-up; the difference divided by
# 2 cancels start-up. Instruction counts do not depend on the machine's load.
#   scripts/steps_callgrind.sh [w2|w4|w5 ...]   (default: w2 w5)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example w_steps 2>/dev/null
bin="${CARGO_TARGET_DIR:-target}/release/examples/w_steps"
count() {
    RAYON_NUM_THREADS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$bin" "$1" "$2" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
[ "$#" -gt 0 ] || set -- w2 w5
for w in "$@"; do
    one=$(count "$w" 1)
    three=$(count "$w" 3)
    echo "$w: instructions per step $(( (three - one) / 2 ))"
done
