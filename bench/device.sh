#!/usr/bin/env bash
# Device benchmark: the firmware's footprint (llvm-size, both boards) and its instruction counts
# in QEMU mps2-an386 under -icount shift=0 (per inference, per op, per MAC) for MNIST-shaped
# MLP and CNN models, f32 and int8, plus the `footprint-sine` application (TFLM hello_world
# topology) for the comparison with TFLite-Micro and MicroFlow; then issue 14's side-by-side
# table: the int8 kernels on the FACTS §7 shapes (firmware binary `kernel-check`) and the whole
# MLPerf Tiny models and the demo MLP (tests/tests/device_bench.rs), against CMSIS-NN's counts
# (bench/cmsis-nn/counts.txt; bench/cmsis-nn/run.sh regenerates them). Prints markdown for
# docs/benchmarks.md ("Device").
#
#   bash bench/device.sh [--json FILE]   # FILE: the side-by-side rows as JSON lines
#
# Instruction counts are emulated instructions (deterministic), not Cortex-M4 cycles.
set -euo pipefail
json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --json) [ $# -ge 2 ] || { echo "bench/device.sh: --json needs a file name" >&2; exit 2; }
            json="$(realpath -m "$2")"; shift 2 ;;
    *) echo "bench/device.sh: unknown argument '$1' (usage: bench/device.sh [--json FILE])" >&2; exit 2 ;;
  esac
done
if [ -n "$json" ]; then
  : >"$json" 2>/dev/null || { echo "bench/device.sh: cannot write --json file $json" >&2; exit 2; }
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
SETUP_QEMU=1 bash scripts/setup.sh

(cd firmware && cargo build --release --locked \
  && cargo build --release --locked --features board-nrf52840 --target-dir target/nrf52840) >&2

size="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-size"
[ -x "$size" ] || { echo "llvm-size not found: rustup component add llvm-tools" >&2; exit 1; }

section() { # $1 = ELF, $2 = section name → size in bytes (0 if absent)
  "$size" -A "$1" | awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'
}

echo "### Footprint (\`llvm-size\`, release: opt-level s, fat LTO)"
echo
echo "| board | binary | .vector_table + .text | .rodata | .data | .bss | flash (text+rodata+data) |"
echo "|---|---|---:|---:|---:|---:|---:|"
for board in mps2-an386 nrf52840; do
  dir=firmware/target/thumbv7em-none-eabihf/release
  [ "$board" = nrf52840 ] && dir=firmware/target/nrf52840/thumbv7em-none-eabihf/release
  for bin in denoiserep-firmware size-baseline footprint-sine; do
    elf="$dir/$bin"
    text=$(( $(section "$elf" .vector_table) + $(section "$elf" .text) ))
    rodata=$(section "$elf" .rodata); data=$(section "$elf" .data); bss=$(section "$elf" .bss)
    echo "| $board | $bin | $text | $rodata | $data | $bss | $(( text + rodata + data )) |"
  done
done
echo
echo "### footprint-sine in QEMU (stack painting; output for x = 0 checked against the host core)"
echo
elf=firmware/target/thumbv7em-none-eabihf/release/footprint-sine-report
timeout 60 qemu-system-arm -M mps2-an386 -nographic -icount shift=0 \
  -semihosting-config enable=on,target=native -kernel "$elf" | defmt-print --log-format '{s}' -e "$elf"
echo
echo "### Instruction counts (QEMU mps2-an386, \`-icount shift=0\`, 8 samples per model)"
cargo test -p denoiserep-tests --locked --test device_bench device_instruction_counts -- --ignored --nocapture 2>/dev/null \
  | sed -n '/^|/p; /^$/p' | cat -s

echo
echo "### Side by side with CMSIS-NN (issue 14; QEMU mps2-an386, \`-icount shift=0\`)"
echo
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
elf=firmware/target/thumbv7em-none-eabihf/release/kernel-check
timeout 900 qemu-system-arm -M mps2-an386 -nographic -icount shift=0 \
  -semihosting-config enable=on,target=native -kernel "$elf" \
  | defmt-print --log-format '{s}' -e "$elf" >"$work/kernel-check.log"
grep -q 'kernel_check ok' "$work/kernel-check.log" \
  || { echo "bench/device.sh: kernel-check failed:" >&2; tail -5 "$work/kernel-check.log" >&2; exit 1; }
cargo test -p denoiserep-tests --locked --test device_bench whole_model -- --ignored --nocapture \
  2>/dev/null >"$work/models.log"
python3 bench/device_table.py --kernel-log "$work/kernel-check.log" --models "$work/models.log" \
  --cmsis bench/cmsis-nn/counts.txt ${json:+--json "$json"}
