#!/usr/bin/env bash
# README's main command: installs whatever is missing (scripts/setup.sh), then runs the main job.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
cargo run -p denoiserep-core --release --example demo
