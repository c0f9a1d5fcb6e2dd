#!/usr/bin/env bash
# W3's instructions per op under callgrind: examples/w3_chain with 1 and 11
# repetitions of the 10,000-op chain (forward + backward); the difference divided
# by 100,000 ops cancels start-up. Instruction counts do not depend on the
# machine's load, so a change of a few percent is visible where timings are noise.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example w3_chain 2>/dev/null
bin=target/release/examples/w3_chain
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
one=$(count 1)
eleven=$(count 11)
echo "instructions: 1 rep $one, 11 reps $eleven"
echo "per op: $(( (eleven - one) / 100000 ))"
