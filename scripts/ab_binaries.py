"""Two builds of one Criterion bench, run alternately: an A/B of two commits on
a machine whose speed moves from minute to minute.

Build the bench at each commit and copy its binary aside, e.g.

  cargo bench --bench matmul --no-run     # prints "Executable ... (target/release/deps/matmul-…)"
  cp target/release/deps/matmul-… /tmp/mm_a
  (check out the other commit, build again)   cp … /tmp/mm_b
  python3 scripts/ab_binaries.py /tmp/mm_a,/tmp/mm_b 'matmul_f32/(256|1024)$' 8

Each round runs every binary once on the cases the filter selects (swapping
the order every other round; Criterion's --warm-up-time 1 --measurement-time
2), and takes each case's median time. The script prints, per case, each
binary's median over the rounds and the median over the rounds of the first
binary's time divided by the last's (above 1: the last binary is faster), then
that ratio round by round.

usage: python3 scripts/ab_binaries.py BIN_A,BIN_B FILTER [ROUNDS]   (default 6)
The binaries run from the repository root (Criterion writes under target/).
"""
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
UNITS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
# a Criterion result: the id, then "time:   [low median high]" (the id may be
# on the line before when it is long)
RESULT = re.compile(r"^(\S+)\s*\n?\s*time:\s+\[\S+ \S+ (\S+) (\S+)", re.M)


def run(binary, cases_filter):
    """One run of a bench binary: {case: median time in ms}."""
    out = subprocess.run(
        [binary, "--bench", cases_filter, "--warm-up-time", "1", "--measurement-time", "2", "--noplot"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout
    return {m.group(1): float(m.group(2)) * UNITS[m.group(3)] for m in RESULT.finditer(out)}


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binaries = sys.argv[1].split(",")
    cases_filter = sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    times = {}  # case -> binary -> [ms per round]
    for r in range(rounds):
        for binary in binaries if r % 2 == 0 else binaries[::-1]:
            for case, ms in run(binary, cases_filter).items():
                times.setdefault(case, {}).setdefault(binary, []).append(ms)
    first, last = binaries[0], binaries[-1]
    for case, per in times.items():
        medians = "  ".join(f"{os.path.basename(b)} {statistics.median(v):.4g} ms" for b, v in per.items())
        ratios = [a / b for a, b in zip(per[first], per[last])]
        print(f"{case}: {medians}; {os.path.basename(first)}/{os.path.basename(last)} "
              f"median {statistics.median(ratios):.3f}, rounds {' '.join(f'{x:.2f}' for x in ratios)}")


if __name__ == "__main__":
    main()
