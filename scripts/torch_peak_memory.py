"""W6 for PyTorch: peak resident memory of 100 W2 steps (MLP 784-256-256-10, Adam
lr 1e-3, random data) at batch 256, the model and step of bench_torch.py's w2_step.

usage: torch_peak_memory.py [THREADS]   (default 2)
"""
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

STEPS, BATCH = 100, 256


def main():
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(BATCH, 784), torch.randint(0, 10, (BATCH,))
    t0 = time.perf_counter()
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    dt = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"W6 torch ({torch.get_num_threads()}t): {STEPS} W2 steps at B={BATCH}: "
          f"peak RSS {peak_kib / 1024:.1f} MiB, {dt / STEPS * 1e3:.3f} ms/step")


if __name__ == "__main__":
    main()
