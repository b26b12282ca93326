#!/usr/bin/env bash
# README's test command: installs whatever is missing (scripts/setup.sh), then runs every check:
# formatting, clippy (-D warnings), all workspace tests, and the Cortex-M builds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

step "setup"
# SETUP_QEMU=1: the device tests (tests/tests/device_*.rs) need qemu-system-arm and defmt-print.
SETUP_QEMU="${SETUP_QEMU:-1}" bash scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all --check
# Without --all: in firmware/, --all would also walk the path dependency's host workspace.
if [ -f firmware/Cargo.toml ]; then (cd firmware && cargo fmt --check); fi

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p denoiserep-core --target thumbv7em-none-eabihf --features defmt --locked -- -D warnings

step "core builds for thumbv7em-none-eabihf (no_std, no alloc)"
cargo build -p denoiserep-core --target thumbv7em-none-eabihf --release --locked
cargo build -p denoiserep-core --target thumbv7em-none-eabihf --release --features defmt --locked

if [ -f firmware/Cargo.toml ]; then
  step "firmware builds (mps2-an386 and nrf52840 memory maps)"
  (cd firmware && cargo clippy --release --locked -- -D warnings \
    && cargo clippy --release --locked --features board-nrf52840 --target-dir target/nrf52840 -- -D warnings \
    && cargo build --release --locked \
    && cargo build --release --locked --features board-nrf52840 --target-dir target/nrf52840)
  step "firmware library unit tests (on the host)"
  host="$(rustc -vV | sed -n 's/^host: //p')"
  (cd firmware && cargo clippy --lib --tests --target "$host" --locked -- -D warnings \
    && cargo test --lib --target "$host" --locked)
fi

# Includes the host == device parity tests (tests/tests/device_*.rs), which run the firmware built
# above in QEMU; they print SKIPPED only if qemu-system-arm could not be installed.
step "cargo test (workspace)"
cargo test --workspace --locked
