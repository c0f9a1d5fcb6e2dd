"""ferrograd and one peer, run alternately, round after round, on one workload.

On a shared machine whose speed moves by 10-20% from minute to minute, a
sitting that runs every peer and then ferrograd compares the two sides at
different moments. This script runs the peer's bench and ferrograd's Criterion
bench of the same workload one after the other, ROUNDS times, swapping which
side goes first each round, and prints each round's ratio and their median.

  workload    peer                                   ferrograd
  w1          PyTorch 2 threads (bench_torch.py w1)  matmul_f32/{256,512,1024}
  w2          JAX jit, 2 cores (bench_jax.py w2)     w2_mlp_step/batch/{1,32,256}
  w2-1core    JAX jit on one core (taskset)          W2 B=1, one thread, same core
  w5          PyTorch 2 threads (bench_torch.py w5,  w5_gpt_step/B16_T64
              manual attention)
  w5-fused    PyTorch's sdpa row of the same run     w5_gpt_step/B16_T64_fused

A ratio above 1 means ferrograd is ahead: its GFLOP/s over the peer's for W1,
the peer's time over ferrograd's otherwise. Each round's figures are medians
over their samples (the peer's PEERS_SAMPLES, default 7; Criterion's).
Beside the median over all rounds, the script prints the median over the
calm rounds: those in which both sides ran within 10% of their own fastest
round of the sitting (on a shared host, the rounds no neighbour slowed),
and each side's median figure with its spread (interquartile range over
median).

usage: python3 scripts/bench_alternate.py WORKLOAD [ROUNDS]   (default 5 rounds)
  TORCH_PYTHON  the python with torch and jax (default target/pyenv/bin/python,
                made by scripts/setup_python_peers.sh)
  BENCH_DIR     where bench_torch.py, bench_jax.py and common.py live (default
                ../shared/bench beside the repository)
  ONE_CORE      the core of w2-1core (default 0)
  CRITERION     Criterion's time settings (default "--warm-up-time 1
                --measurement-time 3")
Every round is appended to target/bench_alternate/WORKLOAD.jsonl.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time
from typing import NamedTuple

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TARGET = os.path.join(ROOT, "target")
PYTHON = os.environ.get("TORCH_PYTHON", os.path.join(TARGET, "pyenv", "bin", "python"))
BENCH_DIR = os.path.abspath(os.environ.get("BENCH_DIR", os.path.join(ROOT, "..", "shared", "bench")))
ONE_CORE = os.environ.get("ONE_CORE", "0")
CRITERION = os.environ.get("CRITERION", "--warm-up-time 1 --measurement-time 3").split()
OUT = os.path.join(TARGET, "bench_alternate")

class Workload(NamedTuple):
    """One workload: the peer's run and ferrograd's Criterion bench of it."""
    peer_args: list      # the peer's script and its arguments, in BENCH_DIR
    peer_records: tuple  # which of its records: (workload, a word of the variant)
    ids: dict            # the peer's case -> ferrograd's Criterion id (its path parts)
    bench: str           # ferrograd's Criterion bench (benches/BENCH.rs)
    gflops: bool = False  # W1: compare GFLOP/s (higher is better), else ms
    one_core: bool = False  # both pinned to ONE_CORE, ferrograd on one thread


def w5(variant, bench_id):
    """W5 against one of PyTorch's two attention forms."""
    return Workload(["bench_torch.py", "2", "w5"], ("W5", variant), {"B16 T64": ("w5_gpt_step", bench_id)}, "w5_gpt")


WORKLOADS = {
    "w1": Workload(["bench_torch.py", "2", "w1"], ("W1", "eager"),
                   {f"n={n}": ("matmul_f32", str(n)) for n in (256, 512, 1024)}, "matmul", gflops=True),
    "w2": Workload(["bench_jax.py", "2 cores", "w2"], ("W2", "jit"),
                   {f"B={b}": ("w2_mlp_step", "batch", str(b)) for b in (1, 32, 256)}, "w2_mlp"),
    "w2-1core": Workload(["bench_jax.py", "1 core", "w2"], ("W2", "jit"),
                         {"B=1": ("w2_mlp_step", "batch", "1")}, "w2_mlp", one_core=True),
    "w5": w5("manual", "B16_T64"),
    "w5-fused": w5("sdpa", "B16_T64_fused"),
}


def run_peer(wl):
    """The peer's figures of this round: {case: value}."""
    raw = os.path.join(OUT, "peer.jsonl")
    if os.path.exists(raw):
        os.remove(raw)
    cmd = [PYTHON] + wl.peer_args
    if wl.one_core:
        cmd = ["taskset", "-c", ONE_CORE] + cmd
    env = dict(os.environ, PEERS_RESULTS=raw)
    subprocess.run(cmd, cwd=BENCH_DIR, env=env, check=True, stdout=subprocess.DEVNULL)
    w, variant = wl.peer_records
    found = {}
    with open(raw) as f:
        for line in f:
            r = json.loads(line)
            if r["w"] == w and variant in r["variant"]:
                found[r["case"]] = r["value"]
    return found


def run_ferrograd(wl):
    """ferrograd's figures of this round: {case: value} (GFLOP/s for W1, ms otherwise)."""
    # exactly the workload's Criterion ids
    only = "^(" + "|".join(re.escape("/".join(i)) for i in wl.ids.values()) + ")$"
    cmd = ["cargo", "bench", "--quiet", "--bench", wl.bench, "--", only] + CRITERION
    env = dict(os.environ)
    if wl.one_core:
        cmd = ["taskset", "-c", ONE_CORE] + cmd
        env["RAYON_NUM_THREADS"] = "1"
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    found = {}
    for case, bench_id in wl.ids.items():
        with open(os.path.join(TARGET, "criterion", *bench_id, "new", "estimates.json")) as f:
            s = json.load(f)["median"]["point_estimate"] * 1e-9
        if wl.gflops:
            n = int(bench_id[-1])  # matmul_f32/N: an N x N x N product
            found[case] = 2 * n**3 / s / 1e9
        else:
            found[case] = s * 1e3
    return found


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in WORKLOADS:
        sys.exit(__doc__)
    name = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    wl = WORKLOADS[name]
    os.makedirs(OUT, exist_ok=True)
    subprocess.run(["cargo", "bench", "--quiet", "--bench", wl.bench, "--no-run"], cwd=ROOT, check=True,
                   stderr=subprocess.DEVNULL)
    log = os.path.join(OUT, f"{name}.jsonl")
    ratios = {case: [] for case in wl.ids}
    speeds = {case: ([], []) for case in wl.ids}  # (ferrograd's, the peer's), higher is faster
    for r in range(rounds):
        if r % 2 == 0:
            peer = run_peer(wl)
            ours = run_ferrograd(wl)
        else:
            ours = run_ferrograd(wl)
            peer = run_peer(wl)
        line = []
        for case in wl.ids:
            ratio = ours[case] / peer[case] if wl.gflops else peer[case] / ours[case]
            ratios[case].append(ratio)
            for side, value in zip(speeds[case], (ours[case], peer[case])):
                side.append(value if wl.gflops else 1 / value)
            line.append(f"{case}: {ours[case]:.4g} vs {peer[case]:.4g} ({ratio:.2f}x)")
            with open(log, "a") as f:
                f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "round": r, "case": case,
                                    "ferrograd": ours[case], "peer": peer[case], "ratio": ratio,
                                    "peer_first": r % 2 == 0}) + "\n")
        print(f"round {r + 1}: " + "; ".join(line), flush=True)
    unit = "GFLOP/s" if wl.gflops else "ms"
    print(f"{name}, {rounds} rounds ({unit}; ratio > 1: ferrograd ahead)")
    for case, rs in ratios.items():
        print(f"  {case}: median ratio {statistics.median(rs):.2f}x, "
              f"range {min(rs):.2f}-{max(rs):.2f}x, ahead in {sum(x > 1 for x in rs)} of {len(rs)}")
        (ours, peer), values = speeds[case], {}
        for side, xs in (("ferrograd", ours), ("peer", peer)):
            xs = xs if wl.gflops else [1 / x for x in xs]
            values[side] = f"{statistics.median(xs):.4g} {unit} (spread {spread(xs):.0%})"
        print(f"    ferrograd {values['ferrograd']}, peer {values['peer']}")
        calm = calm_rounds(ours, peer)
        if calm:
            cr = [rs[i] for i in calm]
            print(f"    calm rounds (both sides within {CALM:.0%} of their fastest round): {len(cr)} of "
                  f"{len(rs)}, median ratio {statistics.median(cr):.2f}x, range {min(cr):.2f}-{max(cr):.2f}x")
        else:
            print(f"    no calm round (both sides within {CALM:.0%} of their fastest round)")


# How far below its fastest round of the sitting a side may be for a round to
# count as calm: a neighbour on the host that slows either side by more takes
# the round out of the calm rounds' median, whichever side it hit.
CALM = 0.10


def spread(xs):
    """Interquartile range over median (0 for a single round)."""
    if len(xs) < 2:
        return 0.0
    q = statistics.quantiles(xs, n=4)
    return (q[2] - q[0]) / statistics.median(xs)


def calm_rounds(ours, peer):
    """The rounds in which both sides ran within CALM of their fastest round."""
    return [i for i in range(len(ours))
            if ours[i] >= (1 - CALM) * max(ours) and peer[i] >= (1 - CALM) * max(peer)]


if __name__ == "__main__":
    main()
