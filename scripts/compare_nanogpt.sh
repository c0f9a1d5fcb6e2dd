#!/usr/bin/env bash
# The nanoGPT comparison of issue 10 (docs/nanogpt_comparison.md): PyTorch
# (benches/nanogpt_torch.py) and ferrograd (examples/tiny_gpt) train the same
# character-level GPT in nanoGPT's CPU configuration on the same text, seed by
# seed, one right after the other, and a side-by-side table of `final val loss`
# and the mean training-step time is printed.
#
# usage: scripts/compare_nanogpt.sh [CORPUS]   (default: vim's options.txt, see the doc)
#   SEEDS         seeds to run                       (default "0 1 2")
#   THREADS       threads on both sides              (default 2)
#   STEPS         training steps                     (default 2000)
#   TORCH_PYTHON  a python with torch                (default target/pyenv/bin/python,
#                 made by scripts/setup_python_peers.sh)
# Logs go to target/nanogpt_compare/{torch,ferrograd}_seedS.log.
# Run it on an otherwise idle machine: the step times are only comparable when
# neither side shares its cores with anything else.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="${1:-/usr/share/vim/vim90/doc/options.txt}"
seeds="${SEEDS:-0 1 2}"
threads="${THREADS:-2}"
steps="${STEPS:-2000}"
python="${TORCH_PYTHON:-$root/target/pyenv/bin/python}"
out="$root/target/nanogpt_compare"
mkdir -p "$out"

[ -r "$corpus" ] || { echo "no corpus at $corpus" >&2; exit 1; }
echo "== corpus $corpus ($(wc -c < "$corpus") bytes, sha256 $(sha256sum "$corpus" | cut -c1-16)…)"
echo "== PyTorch $("$python" -c 'import torch; print(torch.__version__)'), $threads threads, $steps steps"

(cd "$root" && cargo build --release --example tiny_gpt)
rust_bin="$root/target/release/examples/tiny_gpt"

# The configuration, identical on both sides.
common=(--corpus "$corpus" --tokenizer char --layers 4 --heads 4 --width 128 --context 64
        --batch 12 --lr 1e-3 --warmup 100 --steps "$steps" --dropout 0 --weight-decay 0.1
        --clip 1.0 --beta2 0.99 --no-bias --threads "$threads" --eval-every 500 --eval-batches 20)

final_loss() { sed -n 's/^final val loss \([0-9.]*\).*/\1/p' "$1" | tail -1; }
step_ms() { sed -n 's/^step time \([0-9.]*\) ms.*/\1/p' "$1" | tail -1; }

rows=()
for s in $seeds; do
    echo "== seed $s: PyTorch"
    "$python" "$root/benches/nanogpt_torch.py" "${common[@]}" --seed "$s" | tee "$out/torch_seed$s.log"
    echo "== seed $s: ferrograd"
    rm -rf "$out/ferrograd_seed$s"   # a fresh run, never a resumed one
    "$rust_bin" "${common[@]}" --seed "$s" --quiet --sample 0 --out "$out/ferrograd_seed$s" \
        | tee "$out/ferrograd_seed$s.log"
    rows+=("$s $(final_loss "$out/torch_seed$s.log") $(final_loss "$out/ferrograd_seed$s.log") \
$(step_ms "$out/torch_seed$s.log") $(step_ms "$out/ferrograd_seed$s.log")")
done

printf '%s\n' "${rows[@]}" | awk '
BEGIN {
    printf "\n%-6s | %-24s | %-24s | %-26s\n", "seed", "final val loss PyTorch", "final val loss ferrograd", "step ms PyTorch / ferrograd"
    print "-------+--------------------------+--------------------------+---------------------------"
}
{
    printf "%-6s | %-24.4f | %-24.4f | %8.2f / %-8.2f (%.2fx)\n", $1, $2, $3, $4, $5, $5 / $4
    n++; lt += $2; lf += $3; tt += $4; tf += $5
}
END {
    lt /= n; lf /= n; tt /= n; tf /= n
    print "-------+--------------------------+--------------------------+---------------------------"
    printf "%-6s | %-24.4f | %-24.4f | %8.2f / %-8.2f (%.2fx)\n", "mean", lt, lf, tt, tf, tf / tt
    d = lf - lt
    printf "\nloss: ferrograd - PyTorch = %+.4f (bar: within 0.03) -> %s\n", d, (d <= 0.03 && d >= -0.03) ? "met" : "NOT met"
    printf "step: ferrograd / PyTorch = %.2fx (bar: <= 1) -> %s\n", tf / tt, (tf <= tt) ? "met" : "NOT met"
}'
