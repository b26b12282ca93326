#!/usr/bin/env bash
# The comparisons behind docs/results.md (issue 11's re-run with converged denoisers), in the
# order they were run: the MLP with the strong-step sweep, the 500-label MLP, then the CNN.
# Every run is seeded; re-running reuses finished arms. Reports go to runs/results/*/compare.md;
# docs/results/ holds copies of compare.md/.json/.png and dose-response.png (variants named
# FAMILY-bBETA).
#
#   bash bench/results.sh            # all three (≈ 1 h on 2 idle cores)
#   ONLY=mlp bash bench/results.sh   # one of: mlp, labels, cnn
#
# JOBS (default 2) runs that many trainings at a time, one libtorch thread each.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-2}"
ONLY="${ONLY:-all}"
cargo build --release --locked -p denoiserep-trainer
BIN=target/release/denoiserep
COMMON=(--data mnist --device cpu --threads 1 --jobs "$JOBS")
BETAS=(0.001 0.01 0.03 0.1)

# The strong step: t = 1 at every layer with β_1 = β, (a) applied to the baseline unchanged
# (analytic shrinkage, no training) and (b) with the backbone retrained through it
# (label-guided with closed-form A phases).
strong=()
for b in "${BETAS[@]}"; do
    strong+=(--variant "shrink-b$b=--regime label-free --denoiser-fit closed-form --t-list 1,1,1 --beta-start $b --beta-end $b")
done
for b in "${BETAS[@]}"; do
    strong+=(--variant "lg-b$b=--regime label-guided --denoiser-fit closed-form --t-list 1,1,1 --beta-start $b --beta-end $b")
done

if [ "$ONLY" = all ] || [ "$ONLY" = mlp ]; then
    "$BIN" compare "${COMMON[@]}" --arch mlp:256,128 --seeds 10 --epochs 5 --extra-epochs 6 \
        "${strong[@]}" --out runs/results/mlp
fi
if [ "$ONLY" = all ] || [ "$ONLY" = labels ]; then
    "$BIN" compare "${COMMON[@]}" --arch mlp:256,128 --labels 500 --seeds 10 --epochs 20 \
        --extra-epochs 6 \
        --variant "shrink-b0.1=--regime label-free --denoiser-fit closed-form --t-list 1,1,1 --beta-start 0.1 --beta-end 0.1" \
        --variant "lg-b0.01=--regime label-guided --denoiser-fit closed-form --t-list 1,1,1 --beta-start 0.01 --beta-end 0.01" \
        --variant "lg-b0.1=--regime label-guided --denoiser-fit closed-form --t-list 1,1,1 --beta-start 0.1 --beta-end 0.1" \
        --out runs/results/labels-500
fi
if [ "$ONLY" = all ] || [ "$ONLY" = cnn ]; then
    "$BIN" compare "${COMMON[@]}" --arch cnn:16,32/64 --seeds 10 --epochs 3 --extra-epochs 4 \
        --out runs/results/cnn
fi
