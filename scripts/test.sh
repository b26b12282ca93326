#!/usr/bin/env bash
# README's test command: installs whatever is missing (scripts/setup.sh), then runs every check:
# formatting, clippy (-D warnings), all workspace tests, and the Cortex-M builds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

step "setup"
# SETUP_QEMU=1: the device tests (tests/tests/device_*.rs) need qemu-system-arm and defmt-print.
# SETUP_AARCH64=1: the aarch64 step below needs the cross target, linker and qemu-aarch64.
SETUP_QEMU="${SETUP_QEMU:-1}" SETUP_AARCH64="${SETUP_AARCH64:-1}" bash scripts/setup.sh

# Under CI (CI set to anything but empty, 0 or false) the device tests are required, and the
# build skips incremental compilation: a clean clone gains nothing from it but gigabytes of caches.
ci=1
case "$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]')" in ""|0|false) ci=0 ;; esac
[ "$ci" = 0 ] || export CARGO_INCREMENTAL=0

step "cargo fmt --check"
cargo fmt --all --check
# Without --all: in firmware/, --all would also walk the path dependency's host workspace.
if [ -f firmware/Cargo.toml ]; then (cd firmware && cargo fmt --check); fi

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p denoiserep-core --all-targets --features fast-math --locked -- -D warnings
cargo clippy -p denoiserep-core --target thumbv7em-none-eabihf --features defmt --locked -- -D warnings
cargo clippy -p denoiserep-core --target thumbv7em-none-eabihf --features defmt,fast-math --locked -- -D warnings
# Op families compiled out (cargo features ops-conv / ops-pool / ops-graph / ops-attention): the
# trimmed builds must stay warning-free too (docs/firmware.md, "Footprint").
for families in "" "ops-conv,ops-pool"; do
  cargo clippy -p denoiserep-core --target thumbv7em-none-eabihf --no-default-features \
    --features "defmt${families:+,$families}" --locked -- -D warnings
done
# The reference loops instead of the DSP/FPU kernels (`reference-kernels`), all ops and none.
cargo clippy -p denoiserep-core --target thumbv7em-none-eabihf --features defmt,reference-kernels --locked -- -D warnings
cargo clippy -p denoiserep-core --target thumbv7em-none-eabihf --no-default-features \
  --features defmt,reference-kernels --locked -- -D warnings

step "core builds for thumbv7em-none-eabihf (no_std, no alloc)"
cargo build -p denoiserep-core --target thumbv7em-none-eabihf --release --locked
cargo build -p denoiserep-core --target thumbv7em-none-eabihf --release --features defmt --locked

if [ -f firmware/Cargo.toml ]; then
  step "firmware builds (mps2-an386 and nrf52840 memory maps)"
  (cd firmware && cargo clippy --release --locked -- -D warnings \
    && cargo clippy --release --locked --features board-nrf52840 --target-dir target/nrf52840 -- -D warnings \
    && cargo build --release --locked \
    && cargo build --release --locked --features board-nrf52840 --target-dir target/nrf52840 \
    && cargo clippy --release --locked --features fast-math --target-dir target/fast-math -- -D warnings \
    && cargo clippy --release --locked --features reference-kernels --target-dir target/reference-kernels -- -D warnings)
  step "firmware library unit tests (on the host)"
  host="$(rustc -vV | sed -n 's/^host: //p')"
  (cd firmware && cargo clippy --lib --tests --target "$host" --locked -- -D warnings \
    && cargo test --lib --target "$host" --locked)
fi

# Includes the host == device parity tests (tests/tests/device_*.rs), which run the firmware built
# above in QEMU. Under CI (or DENOISEREP_REQUIRE_DEVICE=1) a missing QEMU fails them; elsewhere they
# print SKIPPED. Every comparison and skip is counted in a ledger (tests/device.rs) for the summary.
# --no-fail-fast: one failing test binary must not hide the others.
step "cargo test (workspace)"
work="$(mktemp -d "${TMPDIR:-/tmp}/denoiserep-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export DENOISEREP_DEVICE_LEDGER="$work/device-ledger.tsv"
: >"$DENOISEREP_DEVICE_LEDGER"
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$work/cargo-test.log"
test_rc=${PIPESTATUS[0]}
set -e

# A model loads exactly when its op families are compiled in (core/tests/op_families.rs; the
# workspace run above covers the default, every family in).
step "op families compiled out (core/tests/op_families.rs)"
cargo test -p denoiserep-core --locked --no-default-features --test op_families
cargo test -p denoiserep-core --locked --no-default-features --features ops-conv,ops-pool --test op_families

# The core's `fast-math` feature (micromath Softmax / GELU / LayerNorm, docs/kernels.md): its
# error bounds against the default math (the core's unit tests, a few seconds), the core's fuzz
# tests (never a panic on any input bytes; the other integration tests pin the default math's
# bits and values, so they are not run with the feature), and host == device
# in that math on the small LayerNorm + GELU + Softmax model (builds the firmware with fast-math
# into firmware/target/fast-math, and the test crate once more with the feature).
step "fast-math (core unit tests, host == device)"
set +e
{ cargo test -p denoiserep-core --features fast-math --lib --test fuzz --locked \
  && cargo test -p denoiserep-tests --features fast-math --test device_math --locked; } 2>&1 \
  | tee -a "$work/cargo-test.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || test_rc=1
set -e

# The core on aarch64 (its NEON int8 Linear and the portable kernels as LLVM compiles them for
# NEON): clippy, then the core's unit and integration tests cross-compiled and run in qemu-aarch64
# (user mode). On an aarch64 host the workspace run above already ran them natively. Under CI (or
# DENOISEREP_REQUIRE_DEVICE=1) missing tools fail the run; elsewhere the step prints SKIPPED.
step "aarch64 (core tests in qemu-aarch64: NEON host kernels)"
if [ "$(uname -m)" = x86_64 ]; then
  if command -v qemu-aarch64 >/dev/null 2>&1 && command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 \
      && rustup target list --installed 2>/dev/null | grep -x aarch64-unknown-linux-gnu >/dev/null; then
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
    set +e
    { cargo clippy -p denoiserep-core --all-targets --target aarch64-unknown-linux-gnu --locked -- -D warnings \
      && cargo test -p denoiserep-core --target aarch64-unknown-linux-gnu --tests --locked; } 2>&1 \
      | tee -a "$work/cargo-test.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || test_rc=1
    set -e
  elif [ "$ci" = 1 ] || [ "${DENOISEREP_REQUIRE_DEVICE:-0}" = 1 ]; then
    echo "FAILED: the aarch64 tests are required here, but qemu-aarch64, aarch64-linux-gnu-gcc or the Rust target is missing (scripts/setup.sh with SETUP_AARCH64=1)"
    test_rc=1
  else
    echo "SKIPPED: qemu-aarch64, aarch64-linux-gnu-gcc or the Rust target aarch64-unknown-linux-gnu is missing"
  fi
else
  echo "not an x86_64 host: the workspace tests above ran the core natively"
fi

# Coverage-guided fuzzing, smoke size: every cargo-fuzz target ≈20 s from its committed seeds
# (the long runs are in docs/reliability.md). Needs the pinned nightly + cargo-fuzz, which
# scripts/setup-fuzz.sh installs.
step "fuzz smoke (cargo-fuzz, every target ≈20 s)"
set +e
bash scripts/fuzz.sh smoke 2>&1 | tee "$work/fuzz-smoke.log"
fuzz_rc=${PIPESTATUS[0]}
set -e

step "summary"
# Sums cargo's per-binary "test result:" lines; lists the ignored (skipped) tests by name.
sum_field() { grep -a '^test result:' "$work/cargo-test.log" | grep -o "[0-9]* $1" | awk '{s += $1} END {print s + 0}'; }
passed=$(sum_field passed); failed=$(sum_field failed); ignored=$(sum_field ignored)
comparisons=$(grep -c $'^compared\t' "$DENOISEREP_DEVICE_LEDGER" || true)
compared_samples=$(awk -F'\t' '$1 == "compared" {s += $2} END {print s + 0}' "$DENOISEREP_DEVICE_LEDGER")
device_skips=$(grep -c $'^skipped\t' "$DENOISEREP_DEVICE_LEDGER" || true)
device_refused=$(grep -c $'^refused\t' "$DENOISEREP_DEVICE_LEDGER" || true)
echo "ignored tests (#[ignore]: benchmarks and long runs, run by hand): $ignored"
grep -a -E '^test .* \.\.\. ignored' "$work/cargo-test.log" | sed 's/^test /  /' || true
echo "host == device: $comparisons bit-for-bit comparisons ($compared_samples samples) ran; $device_skips device tests skipped (no QEMU); $device_refused models not run (more tensors than the firmware holds, refused cleanly)"
fuzz_targets=$(grep -c ' execs ' "$work/fuzz-smoke.log" || true)
echo "fuzz smoke: $fuzz_targets targets run, $( [ "$fuzz_rc" -eq 0 ] && echo 'no crash' || echo 'FAILED (see above)')"
# Where the builds are, and how full: a CI machine can run out of disk.
builds="${CARGO_TARGET_DIR:-$root/target}"
echo "disk: $(df -h --output=avail "$builds" 2>/dev/null | tail -1 | tr -d ' ') free where the builds are ($builds, $(du -sh "$builds" 2>/dev/null | cut -f1) used); fuzz/target $(du -sh fuzz/target 2>/dev/null | cut -f1)"
# Why a step failed, in the last lines of the run (all a CI report may show): the first lines
# of $1 that name a build error, a crash, a killed process or a full disk.
causes() {
  grep -a -m "${2:-8}" -E '^ *error(\[|:)|^Error:|panicked at|CRASH|==ERROR|No space left|^Killed|signal: 9|SIGKILL|[Oo]ut of memory|could not compile' "$1" \
    | cut -c1-200 | sed 's/^/  /' || true
}
if [ "$failed" -gt 0 ] || [ "$test_rc" -ne 0 ]; then
  echo "FAILED tests:"
  grep -a -E '^test .* \.\.\. FAILED' "$work/cargo-test.log" | sed 's/^test /  /' || true
  [ "$failed" -gt 0 ] || { echo "cargo's errors (no test failed):"; causes "$work/cargo-test.log"; }
fi
if [ "$fuzz_rc" -ne 0 ]; then
  echo "fuzz smoke failed$( [ "$fuzz_targets" -eq 0 ] && echo ' before any target ran (setup or build)'):"
  causes "$work/fuzz-smoke.log"
fi
device_required=$ci
[ "${DENOISEREP_REQUIRE_DEVICE:-0}" = 1 ] && device_required=1
if [ "$device_required" = 1 ] && { [ "$comparisons" -eq 0 ] || [ "$device_skips" -gt 0 ]; }; then
  echo "the device tests are required here (CI or DENOISEREP_REQUIRE_DEVICE=1), but $comparisons host == device comparisons ran and $device_skips were skipped"
  test_rc=1
fi
[ "$fuzz_rc" -eq 0 ] || { failed=$((failed + 1)); test_rc=1; }
echo "$passed passed, $failed failed, $((ignored + device_skips)) skipped"
exit "$test_rc"
