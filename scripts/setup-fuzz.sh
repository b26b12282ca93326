#!/usr/bin/env bash
# Installs what `scripts/fuzz.sh` needs; idempotent (a second run changes nothing):
#  - the dated nightly pinned by fuzz/rust-toolchain.toml (rustup, profile minimal, + clippy and
#    rustfmt for the fuzz crate's checks);
#  - cargo-fuzz at the pinned version (cargo install --locked), when missing or another version.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
NIGHTLY=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' fuzz/rust-toolchain.toml)
[ -n "$NIGHTLY" ] || { echo "setup-fuzz: no channel in fuzz/rust-toolchain.toml" >&2; exit 1; }

if ! rustup run "$NIGHTLY" rustc -V >/dev/null 2>&1; then
    echo "[setup-fuzz] installing $NIGHTLY"
    rustup toolchain install "$NIGHTLY" --profile minimal
fi
for c in clippy rustfmt; do
    if ! rustup component list --toolchain "$NIGHTLY" --installed 2>/dev/null | grep -q "^$c"; then
        rustup component add "$c" --toolchain "$NIGHTLY"
    fi
done

have=$(cargo fuzz --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$CARGO_FUZZ_VERSION" ]; then
    echo "[setup-fuzz] installing cargo-fuzz $CARGO_FUZZ_VERSION (found: ${have:-none})"
    nice -n 10 cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --force
fi
echo "[setup-fuzz] ok: $NIGHTLY, cargo-fuzz $(cargo fuzz --version | awk '{print $2}')"
