#!/usr/bin/env bash
# The Python peers' environment: a venv at target/pyenv (inside the repository,
# ignored by git) with torch, numpy and jax, for scripts/bench_torch.sh and
# scripts/bench_jax.sh, which use it by default. torch runs on the CPU.
#
# usage: scripts/setup_python_peers.sh
#   PYTHON       the python that makes the venv (default python3; needs the venv
#                module, on Debian the python3-venv package)
#   TORCH_INDEX  a package index to take torch from instead of PyPI, e.g.
#                PyTorch's own CPU-only index, whose wheels are much smaller than
#                PyPI's (PyPI's torch carries the CUDA libraries: about 3 GB)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/pyenv"
"${PYTHON:-python3}" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --upgrade)
if [ -n "${TORCH_INDEX:-}" ]; then
    "${pip[@]}" --index-url "$TORCH_INDEX" torch
else
    "${pip[@]}" torch
fi
"${pip[@]}" numpy jax
"$venv/bin/python" -c 'import torch, jax, numpy; print("torch", torch.__version__, "| jax", jax.__version__, "| numpy", numpy.__version__)'
