#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for SECONDS seconds each (default 60):
#   scripts/fuzz.sh 300
# Each target starts from its seed corpus (fuzz/seeds/TARGET, in the repository)
# and grows a working corpus in fuzz/corpus/TARGET (not in the repository). A crash
# stops the run with a non-zero status; its input is in fuzz/artifacts/TARGET/
# (reproduce it with `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…`).
# Needs the nightly toolchain and cargo-fuzz; without them it says so and exits 0.
set -euo pipefail

secs="${1:-60}"
case "$secs" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac
root="$(cd "$(dirname "$0")/.." && pwd)"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: skipped: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: skipped: cargo-fuzz is not installed (cargo install cargo-fuzz)"
    exit 0
fi

cd "$root/fuzz"
summary=()
for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target"
    args=(-max_total_time="$secs" -timeout=10 -print_final_stats=1)
    if [ -f "dicts/$target.dict" ]; then
        args+=(-dict="dicts/$target.dict")
    fi
    echo "fuzz: $target for ${secs}s"
    log="$(mktemp)"
    status=0
    cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- "${args[@]}" \
        2>&1 | tee "$log" || status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rm -f "$log"
    # the reader target's scratch files (one per fuzzing process)
    rm -f /dev/shm/ferrograd-fuzz-reader-*.safetensors \
        "${TMPDIR:-/tmp}"/ferrograd-fuzz-reader-*.safetensors
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $target FAILED after ${runs:-?} executions (see fuzz/artifacts/$target/)"
        exit "$status"
    fi
    summary+=("$target: ${runs:-?} executions in ${secs}s, no crash")
done
echo
for line in "${summary[@]}"; do
    echo "fuzz: $line"
done
