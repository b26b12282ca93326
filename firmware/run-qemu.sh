#!/usr/bin/env bash
# Runs the firmware in QEMU (mps2-an386, Cortex-M4F) on one model and one input file, prints the
# decoded defmt log, copies the dump next to the caller, and exits with the firmware's exit code
# (docs/firmware.md lists them).
#
#   firmware/run-qemu.sh MODEL.dnrp INPUT.dnri OUTPUT.dnrd
#
# Env: ELF (default: the release build of denoiserep-firmware), TIMEOUT (seconds, default 120).
# The model goes into the flash partition at 0x00100000 through QEMU's generic loader
# (force-raw=on: without it QEMU may parse the file as ELF/uImage and the firmware sees zeros).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -ne 3 ]; then
  echo "usage: $0 MODEL.dnrp INPUT.dnri OUTPUT.dnrd" >&2; exit 2
fi
model="$(realpath "$1")"; input="$(realpath "$2")"; output="$3"
elf="$(realpath "${ELF:-$here/target/thumbv7em-none-eabihf/release/denoiserep-firmware}")"
for f in "$model" "$input" "$elf"; do
  [ -f "$f" ] || { echo "run-qemu.sh: $f: no such file" >&2; exit 2; }
done
command -v qemu-system-arm >/dev/null || { echo "run-qemu.sh: qemu-system-arm not found (SETUP_QEMU=1 bash scripts/setup.sh)" >&2; exit 2; }
command -v defmt-print >/dev/null || { echo "run-qemu.sh: defmt-print not found (cargo install defmt-print --version 1.2.0 --locked)" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$model" "$work/model.dnrp"
cp "$input" "$work/input.dnri"
set +e
(cd "$work" && timeout "${TIMEOUT:-120}" qemu-system-arm -M mps2-an386 -nographic -icount shift=0 \
  -semihosting-config enable=on,target=native -kernel "$elf" \
  -device loader,file=model.dnrp,addr=0x00100000,force-raw=on) | defmt-print --log-format '{L} {s}' -e "$elf"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" = 124 ]; then echo "run-qemu.sh: QEMU timed out after ${TIMEOUT:-120} s" >&2; fi
if [ -f "$work/output.dnrd" ]; then cp "$work/output.dnrd" "$output"; fi
exit "$rc"
