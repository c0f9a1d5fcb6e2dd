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
import statistics
import subprocess
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TARGET = os.path.join(ROOT, "target")
PYTHON = os.environ.get("TORCH_PYTHON", os.path.join(TARGET, "pyenv", "bin", "python"))
BENCH_DIR = os.path.abspath(os.environ.get("BENCH_DIR", os.path.join(ROOT, "..", "shared", "bench")))
ONE_CORE = os.environ.get("ONE_CORE", "0")
CRITERION = os.environ.get("CRITERION", "--warm-up-time 1 --measurement-time 3").split()
OUT = os.path.join(TARGET, "bench_alternate")

# workload: (peer script and arguments, records to keep as {case: label},
#            higher is better, Criterion bench, filter, {case: Criterion id},
#            run on one core?)
WORKLOADS = {
    "w1": (
        ["bench_torch.py", "2", "w1"],
        ("W1", "eager"),
        True,
        "matmul",
        "matmul_f32/(256|512|1024)$",
        {"n=256": ("matmul_f32", "256"), "n=512": ("matmul_f32", "512"), "n=1024": ("matmul_f32", "1024")},
        False,
    ),
    "w2": (
        ["bench_jax.py", "2 cores", "w2"],
        ("W2", "jit"),
        False,
        "w2_mlp",
        "w2_mlp_step/batch/",
        {f"B={b}": ("w2_mlp_step", "batch", str(b)) for b in (1, 32, 256)},
        False,
    ),
    "w2-1core": (
        ["bench_jax.py", "1 core", "w2"],
        ("W2", "jit"),
        False,
        "w2_mlp",
        "w2_mlp_step/batch/1$",
        {"B=1": ("w2_mlp_step", "batch", "1")},
        True,
    ),
    "w5": (
        ["bench_torch.py", "2", "w5"],
        ("W5", "manual"),
        False,
        "w5_gpt",
        "w5_gpt_step/B16_T64$",
        {None: ("w5_gpt_step", "B16_T64")},
        False,
    ),
    "w5-fused": (
        ["bench_torch.py", "2", "w5"],
        ("W5", "sdpa"),
        False,
        "w5_gpt",
        "w5_gpt_step/B16_T64_fused$",
        {None: ("w5_gpt_step", "B16_T64_fused")},
        False,
    ),
}


def run_peer(args, keep, one_core):
    """The peer's records of this round: {case: value}."""
    raw = os.path.join(OUT, "peer.jsonl")
    if os.path.exists(raw):
        os.remove(raw)
    cmd = [PYTHON] + args
    if one_core:
        cmd = ["taskset", "-c", ONE_CORE] + cmd
    env = dict(os.environ, PEERS_RESULTS=raw)
    subprocess.run(cmd, cwd=BENCH_DIR, env=env, check=True, stdout=subprocess.DEVNULL)
    w, variant = keep
    found = {}
    with open(raw) as f:
        for line in f:
            r = json.loads(line)
            if r["w"] == w and variant in r["variant"]:
                found[r["case"]] = r["value"]
    return found


def run_ferrograd(bench, filt, ids, one_core, unit_gflops):
    """ferrograd's figures of this round: {case: value} (GFLOP/s for W1, ms otherwise)."""
    cmd = ["cargo", "bench", "--quiet", "--bench", bench, "--", filt] + CRITERION
    env = dict(os.environ)
    if one_core:
        cmd = ["taskset", "-c", ONE_CORE] + cmd
        env["RAYON_NUM_THREADS"] = "1"
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    found = {}
    for case, bench_id in ids.items():
        with open(os.path.join(TARGET, "criterion", *bench_id, "new", "estimates.json")) as f:
            s = json.load(f)["median"]["point_estimate"] * 1e-9
        if unit_gflops:
            n = int(bench_id[-1])
            found[case] = 2 * n**3 / s / 1e9
        else:
            found[case] = s * 1e3
    return found


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in WORKLOADS:
        sys.exit(__doc__)
    name = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    peer_args, keep, higher, bench, filt, ids, one_core = WORKLOADS[name]
    os.makedirs(OUT, exist_ok=True)
    subprocess.run(["cargo", "bench", "--quiet", "--bench", bench, "--no-run"], cwd=ROOT, check=True,
                   stderr=subprocess.DEVNULL)
    log = os.path.join(OUT, f"{name}.jsonl")
    ratios = {case: [] for case in ids}
    for r in range(rounds):
        if r % 2 == 0:
            peer = run_peer(peer_args, keep, one_core)
            ours = run_ferrograd(bench, filt, ids, one_core, higher)
        else:
            ours = run_ferrograd(bench, filt, ids, one_core, higher)
            peer = run_peer(peer_args, keep, one_core)
        # W5's peer records have their own case name; there is one of them.
        if None in ids:
            peer = {None: next(iter(peer.values()))}
        line = []
        for case in ids:
            ratio = ours[case] / peer[case] if higher else peer[case] / ours[case]
            ratios[case].append(ratio)
            line.append(f"{case or name}: {ours[case]:.4g} vs {peer[case]:.4g} ({ratio:.2f}x)")
            with open(log, "a") as f:
                f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "round": r, "case": case,
                                    "ferrograd": ours[case], "peer": peer[case], "ratio": ratio,
                                    "peer_first": r % 2 == 0}) + "\n")
        print(f"round {r + 1}: " + "; ".join(line), flush=True)
    unit = "GFLOP/s" if higher else "ms"
    print(f"{name}, {rounds} rounds ({unit}; ratio > 1: ferrograd ahead)")
    for case, rs in ratios.items():
        print(f"  {case or name}: median ratio {statistics.median(rs):.2f}x, "
              f"range {min(rs):.2f}-{max(rs):.2f}x, ahead in {sum(x > 1 for x in rs)} of {len(rs)}")


if __name__ == "__main__":
    main()
