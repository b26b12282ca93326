#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted bytes (cargo-fuzz / libFuzzer; fuzz/,
# docs/reliability.md "Fuzzing").
#
#   bash scripts/fuzz.sh smoke                    build every target, run each ≈20 s from its seeds
#   bash scripts/fuzz.sh long [SECONDS] [EXECS]   each target until EXECS executions (10,000,000)
#                                                 or SECONDS (1800), whichever comes first
#   bash scripts/fuzz.sh build                    build only
#
# Exits non-zero when any target crashes (panic, sanitizer report, out-of-memory, timeout); the
# input is kept in fuzz/artifacts/<target>/. One line per target: executions, coverage (cov:
# libFuzzer's coverage points, ft: features), wall seconds. Logs: fuzz/artifacts/logs/<target>.log.
#
# Targets denoiserep-core parses (model, model_body, samples) are built with AddressSanitizer
# (core has unsafe AVX2 kernels); the trainer's data parsers (safe Rust) without a sanitizer, which
# doubles their executions per second. Every build has debug assertions and overflow checks.
#
# Environment: FUZZ_JOBS (targets run at once, 1; never more than the cores), FUZZ_TARGETS
# (space-separated subset), FUZZ_NICE (nice level, 10).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT/fuzz"

ASAN_TARGETS="model_body model samples tflite_import"
PLAIN_TARGETS="mnist_json csv idx mnist_cache cifar10 npy onnx"
TARGETS=${FUZZ_TARGETS:-"$ASAN_TARGETS $PLAIN_TARGETS"}
JOBS=${FUZZ_JOBS:-1}
NICE=${FUZZ_NICE:-10}
LOGS=artifacts/logs

sanitizer() {
    case " $ASAN_TARGETS " in *" $1 "*) echo address ;; *) echo none ;; esac
}

# cargo fuzz with the settings of target $1 (the unsanitized build has its own target dir,
# fuzz/target/nosan, so that switching sanitizers does not rebuild everything).
cargo_fuzz() {
    local cmd=$1 t=$2
    shift 2
    local s dir=()
    s=$(sanitizer "$t")
    [ "$s" = none ] && dir=(--target-dir target/nosan)
    nice -n "$NICE" cargo fuzz "$cmd" -O -a -s "$s" "${dir[@]}" "$t" "$@"
}

build_all() {
    local t0=$SECONDS t
    for t in $TARGETS; do
        cargo_fuzz build "$t"
    done
    echo "[fuzz] build: $((SECONDS - t0)) s"
}

# Runs one target: $1 target, $2 corpus dir, $3 seconds, $4 executions (0 = no limit).
# Prints its summary line; returns libFuzzer's status.
run_one() {
    local t=$1 corpus=$2 secs=$3 runs=$4 t0=$SECONDS rc=0
    mkdir -p "$corpus" "$LOGS" "artifacts/$t"
    touch "$LOGS/$t.start"
    local args=(-max_total_time="$secs" -print_final_stats=1 -timeout=60)
    [ "$runs" -gt 0 ] && args+=(-runs="$runs")
    cargo_fuzz run "$t" "$corpus" "seeds/$t" -- "${args[@]}" >"$LOGS/$t.log" 2>&1 || rc=$?
    local wall=$((SECONDS - t0))
    local execs cov ft eps rss
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGS/$t.log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOGS/$t.log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$LOGS/$t.log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$LOGS/$t.log" | tail -1 | awk '{print $2}')
    ft=$(grep -o 'ft: [0-9]*' "$LOGS/$t.log" | tail -1 | awk '{print $2}')
    local verdict=ok
    if [ "$rc" -ne 0 ]; then
        verdict="CRASH (exit $rc; see fuzz/$LOGS/$t.log, input in fuzz/artifacts/$t/)"
    fi
    printf '%-12s %-8s execs %10s  exec/s %7s  cov %5s  ft %6s  rss %5s MB  wall %5s s  %s\n' \
        "$t" "$(sanitizer "$t")" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${rss:-?}" \
        "$wall" "$verdict"
    [ "$rc" -ne 0 ] && crash_report "$t"
    return "$rc"
}

# What a crash of target $1 was, printed into the run's own output: on a CI machine the log and
# the input under fuzz/artifacts/ are gone with the clone, so the panic message (or sanitizer
# report) and the input itself (base64; `base64 -d > crash && cargo fuzz run T crash`) are all
# there is to reproduce it from.
crash_report() {
    local t=$1 f
    echo "---- $t: the report (fuzz/$LOGS/$t.log) ----"
    grep -m1 -A24 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)|==ERROR" "$LOGS/$t.log" |
        head -30 || tail -30 "$LOGS/$t.log"
    # Only this run's inputs: artifacts/ keeps those of earlier runs on a developer's machine.
    find "artifacts/$t" -maxdepth 1 -type f -newer "$LOGS/$t.start" \
        \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | sort |
    while read -r f; do
        echo "---- $t: input $f ($(wc -c <"$f") bytes), base64 ----"
        head -c 4096 "$f" | base64
    done
    echo "---- end of $t ----"
}

# Runs every target (FUZZ_JOBS at once): $1 corpus root, $2 seconds, $3 executions.
run_all() {
    local root=$1 secs=$2 runs=$3 t0=$SECONDS
    export -f run_one cargo_fuzz sanitizer crash_report
    export ASAN_TARGETS NICE LOGS
    local status=0
    printf '%s\n' $TARGETS |
        xargs -P "$JOBS" -I{} bash -c 'run_one "$1" "$2/$1" "$3" "$4"' _ {} "$root" "$secs" "$runs" ||
        status=$?
    echo "[fuzz] all targets: $((SECONDS - t0)) s"
    if [ "$status" -ne 0 ]; then
        echo "[fuzz] FAILED: a target crashed (see above)" >&2
        return 1
    fi
}

mode=${1:-smoke}
bash "$ROOT/scripts/setup-fuzz.sh" >/dev/null
case "$mode" in
build)
    build_all
    ;;
smoke)
    build_all
    # A fresh corpus from the seeds every time, so that a smoke run is reproducible.
    rm -rf corpus/smoke
    run_all corpus/smoke 20 0
    ;;
long)
    secs=${2:-1800}
    runs=${3:-10000000}
    build_all
    run_all corpus "$secs" "$runs"
    ;;
*)
    echo "usage: $0 smoke | long [SECONDS] [EXECS] | build" >&2
    exit 2
    ;;
esac
