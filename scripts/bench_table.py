"""Prints ferrograd vs PyTorch as a markdown table, from the last runs of
scripts/bench_rust.sh (target/criterion, target/bench_rust/w6.txt) and
scripts/bench_torch.sh (target/bench_torch/raw.jsonl, target/bench_torch/w6.txt).
Both sides are medians over their samples. Missing figures print as "–".

usage: python3 scripts/bench_table.py
"""
import json
import os
import re

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TARGET = os.path.join(ROOT, "target")


def criterion_median_s(*bench_id):
    path = os.path.join(TARGET, "criterion", *bench_id, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"] * 1e-9
    except FileNotFoundError:
        return None


def torch_results():
    out = {}
    try:
        with open(os.path.join(TARGET, "bench_torch", "raw.jsonl")) as f:
            for line in f:
                r = json.loads(line)
                if r["w"] == "W5" and "manual" not in r["variant"]:
                    continue  # the reference for W5 is the manual attention
                out[(r["w"], r["case"])] = r["value"]
    except FileNotFoundError:
        pass
    return out


def peak_mib(side):
    try:
        with open(os.path.join(TARGET, side, "w6.txt")) as f:
            m = re.search(r"peak RSS ([0-9.]+) MiB", f.read())
            return float(m.group(1)) if m else None
    except FileNotFoundError:
        return None


def main():
    torch = torch_results()
    rows = []  # (workload, unit, ferrograd, torch, higher_is_better)
    for n in [64, 128, 256, 512, 1024]:
        s = criterion_median_s("matmul_f32", str(n))
        rows.append((f"W1 n={n}", "GFLOP/s", s and 2 * n**3 / s / 1e9, torch.get(("W1", f"n={n}")), True))
    for b in [1, 32, 256]:
        s = criterion_median_s("w2_mlp_step", "batch", str(b))
        rows.append((f"W2 B={b}", "ms", s and s * 1e3, torch.get(("W2", f"B={b}")), False))
    s = criterion_median_s("chain_10k_ops_1_element", "forward_backward")
    rows.append(("W3", "µs/op", s and s / 10_000 * 1e6, torch.get(("W3", "10000 ops")), False))
    s = criterion_median_s("w4_moons_step")
    rows.append(("W4", "ms", s and s * 1e3, torch.get(("W4", "2-16-16-1")), False))
    s = criterion_median_s("w5_gpt_step", "B16_T64")
    rows.append(("W5", "ms", s and s * 1e3, torch.get(("W5", "B16 T64")), False))
    rows.append(("W6", "MiB", peak_mib("bench_rust"), peak_mib("bench_torch"), False))

    fmt = lambda v: "–" if v is None else f"{v:.3g}"
    print("| workload | unit | ferrograd | PyTorch 2t | ferrograd speed-up |")
    print("|---|---|---|---|---|")
    for name, unit, ours, theirs, higher_better in rows:
        ratio = None
        if ours and theirs:
            ratio = ours / theirs if higher_better else theirs / ours
        print(f"| {name} | {unit} | {fmt(ours)} | {fmt(theirs)} | {'–' if ratio is None else f'{ratio:.2f}×'} |")
    print("\nspeed-up > 1: ferrograd is faster (or, for W6, smaller) than PyTorch.")


if __name__ == "__main__":
    main()
