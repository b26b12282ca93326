#!/usr/bin/env bash
# Flash footprint of the generic firmware (`denoiserep-firmware`, no model inside: the model lives
# in its own flash partition), release profile (firmware/Cargo.toml: opt-level "z", the core at
# "s", fat LTO), mps2-an386 (and the all-ops build for the nRF52840 memory map):
#
#  1. flash per op-family build (cargo features of firmware/ and denoiserep-core: all ops, and
#     trimmed builds without the families a model does not use; each also with
#     `reference-kernels`, the reference loops instead of the Cortex-M4 DSP/FPU kernels), and
#  2. the code size of every kernel, op and engine module of the all-ops build (llvm-nm -S),
#     so a user can see what each family costs before dropping it.
#
#   bash bench/footprint.sh            # prints markdown for docs/firmware.md ("Footprint")
#
# Builds go to /tmp/denoiserep-footprint (the feature sets are separate builds).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/firmware"
bin="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
[ -x "$bin/llvm-size" ] && [ -x "$bin/llvm-nm" ] \
  || { echo "bench/footprint.sh: llvm-size / llvm-nm not found: rustup component add llvm-tools" >&2; exit 1; }
target=/tmp/denoiserep-footprint

flash() { # ELF → .vector_table + .text + .rodata + .data bytes
  "$bin/llvm-size" -A "$1" | awk '$1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" || $1 == ".data" { s += $2 } END { print s }'
}

build() { # $1 = features (comma-separated, may be empty) → flash bytes of that build
  local dir="$target/${1:-none}"
  dir="${dir//,/+}"
  cargo build --release --locked --bin denoiserep-firmware --no-default-features \
    ${1:+--features "$1"} --target-dir "$dir" >&2
  flash "$dir/thumbv7em-none-eabihf/release/denoiserep-firmware"
}

echo "| op families compiled in (firmware features) | models it runs | flash | with \`reference-kernels\` |"
echo "|---|---|---:|---:|"
sets=("all-ops|every architecture (MLP, CNN, resnet8, ds-cnn, mobilenet, autoencoder, ViT)"
      "ops-conv,ops-pool,ops-graph|CNNs with residuals (resnet8, ds-cnn, mobilenet, autoencoder)"
      "ops-conv,ops-pool|plain CNNs (cnn:…)"
      "|MLPs (Linear, ReLU, Reshape, Quantize/Dequantize only)")
for entry in "${sets[@]}"; do
  features="${entry%%|*}"; models="${entry#*|}"
  fast="$(build "$features")"
  reference="$(build "${features:+$features,}reference-kernels")"
  echo "| ${features:-(none)} | $models | $fast B | $reference B |"
done
echo
echo "nRF52840 memory map (\`board-nrf52840\`, 48 interrupt vectors instead of 32), all ops: $(build all-ops,board-nrf52840) B."

echo
echo "Code and read-only data by module, all-ops build (\`llvm-nm -S\`; inlined code counts where it landed):"
echo
echo "| module | bytes |"
echo "|---|---:|"
"$bin/llvm-nm" -S --size-sort -C --radix=d "$target/all-ops/thumbv7em-none-eabihf/release/denoiserep-firmware" \
  | awk '$3 ~ /^[tTrR]$/ {
      size = $2 + 0; $1 = $2 = $3 = ""; name = $0; sub(/^ +/, "", name); key = "other"
      if (match(name, /denoiserep_core::(kernels|ops)::[a-z0-9_]+/)) key = substr(name, RSTART, RLENGTH)
      else if (match(name, /denoiserep_core::[a-z0-9_]+/)) key = substr(name, RSTART, RLENGTH)
      else if (match(name, /denoiserep_firmware::[a-z0-9_]+/)) key = substr(name, RSTART, RLENGTH)
      else if (match(name, /compiler_builtins::[a-z0-9_]+/)) key = substr(name, RSTART, RLENGTH)
      else if (match(name, /^(core|libm|postcard|defmt|defmt_semihosting|serde_core|serde|cortex_m|cortex_m_rt|heapless|semihosting)::/)) key = substr(name, RSTART, RLENGTH - 2)
      else if (name ~ /^\.Lanon|^anon\./) key = "(string and constant data)"
      else if (name ~ /fmt/) key = "core::fmt"
      sub(/^denoiserep_core/, "denoiserep-core", key); sub(/^denoiserep_firmware/, "firmware", key)
      total[key] += size; all += size
    }
    END { for (k in total) printf "%d\t%s\n", total[k], k; printf "%d\t%s\n", all, "TOTAL (symbols)" }' \
  | sort -n -r | awk -F'\t' '{ printf "| %s | %d |\n", ($2 ~ /^TOTAL/ ? "**" $2 "**" : "`" $2 "`"), $1 }'
