#!/usr/bin/env bash
# Regenerates host-trainer/tflite-schema/src/generated.rs from TFLite's official flatbuffer schema.
#
#   bash scripts/gen-tflite-schema.sh PATH/TO/schema.fbs
#
# The schema used is tensorflow/tflite-micro's tensorflow/compiler/mlir/lite/schema/schema.fbs at
# commit 90b983c2b3f1480642e040bbd2ddb37b998f3424 (sha256 3741d5b8e81686333055a0008d24527c879b2bb6
# 95e8763f3d203f3ff5914709; Apache-2.0, The TensorFlow Authors). planus 1.3 does not parse the
# `(deprecated)` attribute on enum values, union variants, tables and fields; it is removed first.
# That changes no wire layout: a deprecated field keeps its slot (planus then generates an accessor
# for it, which nothing here calls).
set -euo pipefail
schema="${1:?usage: bash scripts/gen-tflite-schema.sh PATH/TO/schema.fbs}"
root="$(cd "$(dirname "$0")/.." && pwd)"
command -v planus >/dev/null || cargo install planus-cli --version 1.3.0 --locked
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed 's/ (deprecated)//' "$schema" > "$tmp/schema.fbs"
planus rust -o "$tmp/generated.rs" "$tmp/schema.fbs"
# Stable provenance lines instead of the temporary path.
sed "s#$tmp/schema.fbs#tensorflow/compiler/mlir/lite/schema/schema.fbs#g" "$tmp/generated.rs" \
    > "$root/host-trainer/tflite-schema/src/generated.rs"
echo "wrote host-trainer/tflite-schema/src/generated.rs ($(wc -l < "$root/host-trainer/tflite-schema/src/generated.rs") lines)"
