#!/usr/bin/env bash
# Host latency, batch 1, one thread, one process: denoiserep-core f32 and int8 vs tract (ONNX
# export) vs tch (libtorch CPU) on the same fused mlp:256,128, cnn:32,64/128 and resnet8 models, in
# interleaved rounds (tests/benches/latency.rs, criterion). Prints markdown for
# docs/benchmarks.md ("Host latency (batch 1, one thread)").
#
#   bash bench/latency.sh                          # trains 1-epoch mnist baselines, ~10 min
#   LATENCY_RUN=runs/b LATENCY_CNN_RUN=runs/cnn LATENCY_RESNET8_RUN=runs/r8 bash bench/latency.sh
#                                                  # existing runs
#   LATENCY_SKIP_CNN=1 LATENCY_SKIP_RESNET8=1 LATENCY_ROUNDS=5 bash bench/latency.sh
#   LATENCY_COMPARE_GUARD=1 bash bench/latency.sh  # also without the vzeroupper guard
#   DENOISEREP_HOST_ISA=avx2 bash bench/latency.sh # the core's AVX2 kernels on an AVX-512 CPU
#   LATENCY_ALIGN=0 bash bench/latency.sh          # each file's largest weight payload placed on
#                                                  # a cache line (S = 0..63: address mod 64)
#
# Extra arguments go to criterion (e.g. --measurement-time 5).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CRITERION_HOME="$root/target/criterion"
# One thread for every engine: libtorch's intra-op pool is also set from the bench.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
rm -rf "$CRITERION_HOME"/latency_*
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
cargo bench -p denoiserep-tests --bench latency --locked -- "$@" >&2
if [ "${LATENCY_COMPARE_GUARD:-0}" = 1 ]; then
  LATENCY_VZEROUPPER=0 cargo bench -p denoiserep-tests --bench latency --locked -- "$@" >&2
fi
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
flags="$(grep -m1 '^flags' /proc/cpuinfo | grep -ow -E 'avx2|avx512f' | tr '\n' ' ' || true)"
# getconf, not nproc: nproc honours OMP_NUM_THREADS=1 exported above.
echo "Machine: $cpu ($flags), $(getconf _NPROCESSORS_ONLN) cores, $(uname -sm); $(rustc --version | cut -d' ' -f1-2);"
echo "core kernels: DENOISEREP_HOST_ISA=${DENOISEREP_HOST_ISA:-unset} (unset: the fastest path the CPU has; the bench prints it to stderr);"
echo "model placement: LATENCY_ALIGN=${LATENCY_ALIGN:-unset} (unset: on a cache line, as denoiserep infer loads it; S: each file's largest weight payload at an address ≡ S mod 64);"
echo "tract-onnx 0.23.9, libtorch $(sed -n 's/^Version: //p' .venv-torch/lib/python3*/site-packages/torch-*.dist-info/METADATA 2>/dev/null | head -1);"
echo "load average before/after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg); $(( $(date +%s) - start )) s; $(date -u +%Y-%m-%d)."
echo
python3 bench/latency_table.py "$CRITERION_HOME"
