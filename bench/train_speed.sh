#!/usr/bin/env bash
# Training speed: steps/s of the tch trainer vs PyTorch-Python for the same MLP 784-256-128-10,
# Adam, batch 256, CPU, 2 threads (override with THREADS=n). Installs full PyTorch 2.11.0 into
# the git-ignored .venv-bench on first use (~4.7 GB, ~70 s). Numbers go to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"
STEPS="${STEPS:-500}"
if [ ! -x .venv-bench/bin/python ] || ! .venv-bench/bin/python -c 'import torch' 2>/dev/null; then
    python3 -m venv .venv-bench
    .venv-bench/bin/pip install --quiet torch==2.11.0
fi
cargo build --release -p denoiserep-trainer --example train_speed
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
for _ in 1 2 3; do
    target/release/examples/train_speed --threads "$THREADS" --steps "$STEPS"
    target/release/examples/train_speed --threads "$THREADS" --steps "$STEPS" --tch-adam
    .venv-bench/bin/python -W ignore::UserWarning bench/train_speed.py --threads "$THREADS" --steps "$STEPS"
done
