"""Prints ferrograd beside its peers as one markdown table, from the last runs of

  scripts/bench_rust.sh   ferrograd: target/criterion (W2 B=1 on one core: the
                          Criterion baseline "one_core"), target/bench_rust/w6.txt
  scripts/bench_torch.sh  PyTorch eager, 2 threads: target/bench_torch/raw.jsonl, w6.txt
  scripts/bench_jax.sh    JAX jit (W1, W2; 2 cores and 1 core): target/bench_jax/raw.jsonl
  scripts/bench_peers.sh  candle, dfdx, burn: target/bench_peers/raw.jsonl

Every figure is a median over its samples. Missing figures print as "–". The burn
column is the better of its CPU backends (ndarray, flex), named in brackets. "best
peer" is the best figure of the five peers; "ferrograd vs best" is the speed-up of
ferrograd over it (> 1: ferrograd is faster, or for W6 smaller).

usage: python3 scripts/bench_table.py [--vs-torch]
  --vs-torch  the older two-column table: ferrograd beside PyTorch only
"""
import json
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TARGET = os.path.join(ROOT, "target")
GEMM_SIZES = [64, 128, 256, 512, 1024]
MLP_BATCHES = [1, 32, 256]
CHAIN_OPS = 10_000
PEERS = ["PyTorch 2t", "JAX jit", "candle", "dfdx", "burn"]


def criterion_median_s(*bench_id, baseline="new"):
    path = os.path.join(TARGET, "criterion", *bench_id, baseline, "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"] * 1e-9
    except FileNotFoundError:
        return None


def jsonl(*path):
    try:
        with open(os.path.join(TARGET, *path)) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def peak_mib(side):
    try:
        with open(os.path.join(TARGET, side, "w6.txt")) as f:
            m = re.search(r"peak RSS ([0-9.]+) MiB", f.read())
            return float(m.group(1)) if m else None
    except FileNotFoundError:
        return None


def row_keys():
    """(row name, unit, higher is better, (w, case) of the records, one core?)"""
    rows = [(f"W1 n={n}", "GFLOP/s", True, ("W1", f"n={n}"), False) for n in GEMM_SIZES]
    rows += [(f"W2 B={b}", "ms", False, ("W2", f"B={b}"), False) for b in MLP_BATCHES]
    rows.append(("W2 B=1, 1 core", "ms", False, ("W2", "B=1"), True))
    rows.append(("W3", "µs/op", False, ("W3", f"{CHAIN_OPS} ops"), False))
    rows.append(("W4", "ms", False, ("W4", "2-16-16-1"), False))
    rows.append(("W5", "ms", False, ("W5", "B16 T64"), False))
    # the same model with the fused attention, beside PyTorch's sdpa
    rows.append(("W5 fused", "ms", False, ("W5 fused", "B16 T64"), False))
    rows.append(("W6", "MiB", False, ("W6", None), False))
    return rows


def ferrograd_figures():
    out = {}
    for n in GEMM_SIZES:
        s = criterion_median_s("matmul_f32", str(n))
        out[f"W1 n={n}"] = s and 2 * n**3 / s / 1e9
    for b in MLP_BATCHES:
        s = criterion_median_s("w2_mlp_step", "batch", str(b))
        out[f"W2 B={b}"] = s and s * 1e3
    s = criterion_median_s("w2_mlp_step", "batch", "1", baseline="one_core")
    out["W2 B=1, 1 core"] = s and s * 1e3
    s = criterion_median_s("chain_10k_ops_1_element", "forward_backward")
    out["W3"] = s and s / CHAIN_OPS * 1e6
    s = criterion_median_s("w4_moons_step")
    out["W4"] = s and s * 1e3
    s = criterion_median_s("w5_gpt_step", "B16_T64")
    out["W5"] = s and s * 1e3
    s = criterion_median_s("w5_gpt_step", "B16_T64_fused")
    out["W5 fused"] = s and s * 1e3
    out["W6"] = peak_mib("bench_rust")
    return out


def pick(records, rows, keep):
    """{row name: (value, label)} from the records that `keep(record, one_core)` accepts;
    of several, the best (label: the record's backend, for burn)."""
    out = {}
    for name, _unit, higher, (w, case), one_core in rows:
        found = [r for r in records if r["w"] == w and (case is None or r["case"] == case)
                 and r.get("value") is not None and keep(r, one_core)]
        if found:
            best = (max if higher else min)(found, key=lambda r: r["value"])
            out[name] = (best["value"], best["variant"].split()[0])
    return out


def peer_figures(rows):
    figs = {}
    torch = jsonl("bench_torch", "raw.jsonl")
    # PyTorch's sdpa attention is the reference of the "W5 fused" row
    torch += [dict(r, w="W5 fused") for r in torch if r["w"] == "W5" and "sdpa" in r["variant"]]
    # W5's reference is the manual attention; no 1-core run of PyTorch here.
    figs["PyTorch 2t"] = pick(torch, rows, lambda r, one: not one and (r["w"] != "W5" or "manual" in r["variant"]))
    w6 = peak_mib("bench_torch")
    if w6 is not None:
        figs["PyTorch 2t"]["W6"] = (w6, "")
    jax = jsonl("bench_jax", "raw.jsonl")
    figs["JAX jit"] = pick(jax, rows, lambda r, one: r["variant"].startswith("jit")
                           and r["variant"].endswith("1 core" if one else "2 cores"))
    peers = jsonl("bench_peers", "raw.jsonl")
    for peer in ["candle", "dfdx", "burn"]:
        figs[peer] = pick(peers, rows, lambda r, one, p=peer: r["peer"] == p
                          and ("1t" if one else "2t") in r["variant"].split()
                          and (r["w"] != "W5" or "manual" in r["variant"]))
    return figs


def fmt(v):
    if v is None:
        return "–"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def main_table():
    rows = row_keys()
    ours = ferrograd_figures()
    figs = peer_figures(rows)
    print("| workload | unit | ferrograd | " + " | ".join(PEERS) + " | best peer | ferrograd vs best |")
    print("|---|---|---|" + "---|" * len(PEERS) + "---|---|")
    for name, unit, higher, _key, _one in rows:
        cells, best = [], None
        for peer in PEERS:
            got = figs[peer].get(name)
            if got is None:
                cells.append("–")
                continue
            value, label = got
            cells.append(fmt(value) + (f" ({label})" if peer == "burn" else ""))
            if best is None or (value > best[0] if higher else value < best[0]):
                best = (value, peer + (f" ({label})" if peer == "burn" else ""))
        mine = ours.get(name)
        best_cell = "–" if best is None else f"{fmt(best[0])} {best[1]}"
        ratio = "–"
        if mine and best and best[0]:
            ratio = f"{(mine / best[0] if higher else best[0] / mine):.2f}×"
        print(f"| {name} | {unit} | {fmt(mine)} | " + " | ".join(cells) + f" | {best_cell} | {ratio} |")
    print("\nPyTorch: eager, 2 threads; JAX: jit, 2 cores (1 core: taskset -c 0); candle, dfdx, burn: "
          "2 threads (scripts/bench_peers.sh, peers/README.md). W5's PyTorch figure is its manual attention, "
          "W5 fused's its scaled_dot_product_attention.")


def vs_torch_table():
    rows = row_keys()
    ours = ferrograd_figures()
    torch = peer_figures(rows)["PyTorch 2t"]
    print("| workload | unit | ferrograd | PyTorch 2t | ferrograd speed-up |")
    print("|---|---|---|---|---|")
    for name, unit, higher, _key, one in rows:
        if one:
            continue
        theirs = torch.get(name, (None,))[0]
        mine = ours.get(name)
        ratio = None
        if mine and theirs:
            ratio = mine / theirs if higher else theirs / mine
        print(f"| {name} | {unit} | {fmt(mine)} | {fmt(theirs)} | {'–' if ratio is None else f'{ratio:.2f}×'} |")
    print("\nspeed-up > 1: ferrograd is faster (or, for W6, smaller) than PyTorch.")


if __name__ == "__main__":
    if sys.argv[1:] == ["--vs-torch"]:
        vs_torch_table()
    elif sys.argv[1:]:
        sys.exit(__doc__)
    else:
        main_table()
