#!/usr/bin/env bash
# W3's instructions per op under callgrind, for three chains of 10,000 ops on a
# 1-element tensor (examples/w3_chain): `scalar` (W3: x * 1.0001 + 0.0001),
# `tensor` (x * a + b with 1-element leaves a, b) and `tanh`. Each runs with 1
# and 11 repetitions of its chain (forward + backward); the difference divided
# by 100,000 ops cancels start-up. Instruction counts do not depend on the
# machine's load, so a change of a few percent is visible where timings are noise.
#   scripts/w3_callgrind.sh [scalar|tensor|tanh ...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example w3_chain 2>/dev/null
bin="${CARGO_TARGET_DIR:-target}/release/examples/w3_chain"
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
[ "$#" -gt 0 ] || set -- scalar tensor tanh
for kind in "$@"; do
    one=$(count 1 "$kind")
    eleven=$(count 11 "$kind")
    echo "$kind: instructions per op $(( (eleven - one) / 100000 ))  (1 rep $one, 11 reps $eleven)"
done
