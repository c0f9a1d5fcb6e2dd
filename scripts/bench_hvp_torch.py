"""PyTorch side of benches/hvp.rs: a Hessian-vector product of W2's loss (MLP
784-256-256-10, ReLU, cross-entropy, batch 32) with respect to all weights, as
torch.autograd.grad twice with create_graph=True, beside one gradient.

usage: python3 scripts/bench_hvp_torch.py [THREADS]   (default 2)
Prints the median ms of each over several samples (after warm-up).
"""
import statistics
import sys
import time

import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
torch.manual_seed(0)

sizes = [784, 256, 256, 10]
batch = 32
model = torch.nn.Sequential(
    torch.nn.Linear(sizes[0], sizes[1]),
    torch.nn.ReLU(),
    torch.nn.Linear(sizes[1], sizes[2]),
    torch.nn.ReLU(),
    torch.nn.Linear(sizes[2], sizes[3]),
)
params = list(model.parameters())
x = torch.randn(batch, sizes[0])
y = torch.randint(0, sizes[3], (batch,))
v = [torch.randn_like(p) for p in params]


def loss():
    return torch.nn.functional.cross_entropy(model(x), y)


def gradient():
    return torch.autograd.grad(loss(), params)


def hvp():
    g = torch.autograd.grad(loss(), params, create_graph=True)
    dot = sum((gi * vi).sum() for gi, vi in zip(g, v))
    return torch.autograd.grad(dot, params)


def median_ms(f, seconds=3.0, samples=15):
    for _ in range(20):
        f()
    per = []
    t_end = time.perf_counter() + seconds
    while len(per) < samples or time.perf_counter() < t_end:
        n = 10
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        per.append((time.perf_counter() - t0) / n * 1e3)
        if len(per) > 200:
            break
    return statistics.median(per)


print(f"PyTorch {torch.__version__}, {threads} threads")
print(f"gradient  {median_ms(gradient):.3f} ms")
print(f"hvp       {median_ms(hvp):.3f} ms")
