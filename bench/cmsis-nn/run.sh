#!/usr/bin/env bash
# CMSIS-NN's instruction counts per layer for bench/device.sh: the FACTS §7 anchor shapes and every
# layer of the whole models (resnet8, ds-cnn, mobilenet-v1:0.25, the demo MLP), in QEMU
# mps2-an386 under -icount shift=0. Writes counts.txt beside this script (committed, so
# bench/device.sh needs neither GCC nor CMSIS-NN):
#
#   CMSIS_GIT=<git dir of a clone of github.com/ARM-software/CMSIS-NN> bash bench/cmsis-nn/run.sh
#
# Needs arm-none-eabi-gcc and newlib (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi, which
# this script installs with apt when missing and it may) and qemu-system-arm (scripts/setup.sh).
# The CMSIS-NN sources are extracted to /tmp; build outputs go to /tmp.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CMSIS_GIT=${CMSIS_GIT:-/work/.mirror/ARM-software+CMSIS-NN/repo}
CMSIS_REV=${CMSIS_REV:-v7.0.0}
[ -d "$CMSIS_GIT" ] || { echo "run.sh: CMSIS_GIT=$CMSIS_GIT is not a git directory (clone ARM-software/CMSIS-NN)" >&2; exit 2; }
if ! command -v arm-none-eabi-gcc >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi >&2
  else
    echo "run.sh: arm-none-eabi-gcc missing (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)" >&2; exit 2
  fi
fi
src=/tmp/cmsis-nn-src-$CMSIS_REV
b=/tmp/cmsis-nn-build-models
if [ ! -d "$src/Source" ]; then
  mkdir -p "$src" && git --git-dir="$CMSIS_GIT" archive "$CMSIS_REV" | tar -x -C "$src"
fi
commit="$(git --git-dir="$CMSIS_GIT" rev-parse "$CMSIS_REV^{commit}")"
mkdir -p "$b"
arch="-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard"
cflags="-O3 $arch -ffunction-sections -fdata-sections -Wall -I$src/Include"
s=$src/Source
srcs="$here/harness.c $here/startup.c
  $s/FullyConnectedFunctions/arm_fully_connected_s8.c
  $s/FullyConnectedFunctions/arm_fully_connected_get_buffer_sizes_s8.c
  $s/NNSupportFunctions/arm_nn_vec_mat_mult_t_s8.c
  $s/NNSupportFunctions/arm_nn_mat_mult_nt_t_s8.c
  $s/NNSupportFunctions/arm_s8_to_s16_unordered_with_offset.c
  $s/NNSupportFunctions/arm_q7_to_q15_with_offset.c
  $s/ConvolutionFunctions/arm_convolve_wrapper_s8.c
  $s/ConvolutionFunctions/arm_convolve_s8.c
  $s/ConvolutionFunctions/arm_convolve_1x1_s8.c
  $s/ConvolutionFunctions/arm_convolve_1x1_s8_fast.c
  $s/ConvolutionFunctions/arm_convolve_1_x_n_s8.c
  $s/ConvolutionFunctions/arm_convolve_get_buffer_sizes_s8.c
  $s/ConvolutionFunctions/arm_nn_mat_mult_kernel_s8_s16.c
  $s/ConvolutionFunctions/arm_nn_mat_mult_kernel_row_offset_s8_s16.c
  $s/ConvolutionFunctions/arm_depthwise_conv_wrapper_s8.c
  $s/ConvolutionFunctions/arm_depthwise_conv_3x3_s8.c
  $s/ConvolutionFunctions/arm_depthwise_conv_s8_opt.c
  $s/ConvolutionFunctions/arm_depthwise_conv_s8.c
  $s/ConvolutionFunctions/arm_depthwise_conv_get_buffer_sizes_s8.c
  $s/BasicMathFunctions/arm_elementwise_add_s8.c
  $s/PoolingFunctions/arm_avgpool_s8.c
  $s/PoolingFunctions/arm_avgpool_get_buffer_sizes_s8.c"
objs=""
for f in $srcs; do
  [ -f "$f" ] || { echo "run.sh: $f not in CMSIS-NN $CMSIS_REV" >&2; exit 2; }
  o=$b/$(basename "$f" .c).o
  arm-none-eabi-gcc $cflags -c "$f" -o "$o"
  objs="$objs $o"
done
# Full newlib (not nano): its memcpy/memset are the optimized ARMv7-M ones.
arm-none-eabi-gcc $arch -nostartfiles -T "$here/link.ld" -Wl,--gc-sections $objs -lc -lgcc -o "$b/harness.elf"
out="$b/cmsis.out"
timeout 900 qemu-system-arm -M mps2-an386 -cpu cortex-m4 -icount shift=0 \
  -semihosting-config enable=on,target=native -nographic -kernel "$b/harness.elf" >"$out" 2>&1
grep -q '^DONE' "$out" || { echo "run.sh: the harness did not finish:" >&2; tail -5 "$out" >&2; exit 1; }
if grep '^R|' "$out" | grep -v 'ref_mismatch=0|'; then
  echo "run.sh: CMSIS-NN disagrees with the TFLite reference above" >&2; exit 1
fi
{
  echo "# CMSIS-NN $CMSIS_REV ($commit), $(arm-none-eabi-gcc --version | head -1), -O3 $arch;"
  echo "# QEMU $(qemu-system-arm --version | head -1 | sed 's/.*version //'), mps2-an386, -icount shift=0; bench/cmsis-nn/run.sh, $(date -u +%Y-%m-%d)."
  echo "# R|layer|CMSIS-NN path|MACs|instructions (run 1)|instructions (run 2)|scratch bytes|checksum|status|reference check|saturated"
  grep -E '^(CAL|R)\|' "$out"
} >"$here/counts.txt"
echo "wrote $here/counts.txt ($(grep -c '^R|' "$here/counts.txt") layers)" >&2
