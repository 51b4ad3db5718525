#!/usr/bin/env bash
# Runs one libFuzzer target for a given time and reports executions and coverage.
#
#   Scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]
#   TARGET: onnx | mbm | policy | npy
#
# Builds the target (Fuzz/Sources/Fuzz<Target>, declared in Package.swift only when
# MBCONVERT_FUZZ is set) with -sanitize=fuzzer,address into .build-fuzz, then runs it on
#   .fuzz/<target>/corpus    new inputs libFuzzer finds (git-ignored, kept between runs)
#   Fuzz/corpus/<target>     committed small seeds
#   .fuzz/seeds/<target>     seeds Scripts/fuzz-seeds.sh generates from real models (git-ignored)
# Crashes, leaks and timeouts land in .fuzz/<target>/artifacts/; turn each into a regression
# input under Tests/<Module>Tests/Regressions/ and fix it.
#
# Environment: FUZZ_CONFIG=debug|release (default debug), FUZZ_JOBS (build jobs, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
    echo "usage: $0 onnx|mbm|policy|npy SECONDS [libFuzzer options...]" >&2
    exit 2
fi
target=$1 seconds=$2
shift 2
case $target in
    onnx) product=FuzzONNX ;;
    mbm) product=FuzzMBM ;;
    policy) product=FuzzPolicy ;;
    npy) product=FuzzNPY ;;
    *) echo "unknown target '$target' (onnx, mbm, policy, npy)" >&2; exit 2 ;;
esac
config=${FUZZ_CONFIG:-debug}

MBCONVERT_FUZZ=1 swift build -c "$config" --product "$product" --scratch-path .build-fuzz -j "${FUZZ_JOBS:-2}" \
    -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address 2>&1 \
    | grep -v "warning: Cannot export local symbol" >&2
binary=.build-fuzz/$config/$product

work=.fuzz/$target
mkdir -p "$work/corpus" "$work/artifacts" ".fuzz/seeds/$target" "Fuzz/corpus/$target"
log=$work/last-run.log
echo "fuzzing $target for ${seconds}s: $binary $work/corpus Fuzz/corpus/$target .fuzz/seeds/$target" >&2
set +e
"$binary" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2560 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$@" \
    "$work/corpus" "Fuzz/corpus/$target" ".fuzz/seeds/$target" >"$log" 2>&1
status=$?
set -e

# Summary: libFuzzer's last status line (coverage, features, corpus) and its final stats.
last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
rate=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}')
rss=$(grep -E '^stat::peak_rss_mb' "$log" | awk '{print $2}')
cov=$(echo "$last" | grep -oE 'cov: [0-9]+' | awk '{print $2}')
ft=$(echo "$last" | grep -oE 'ft: [0-9]+' | awk '{print $2}')
corp=$(echo "$last" | grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' | awk '{print $2}')
echo "target=$target seconds=$seconds exit=$status executions=${execs:-?} execs_per_sec=${rate:-?} coverage_edges=${cov:-?} features=${ft:-?} corpus=${corp:-?} peak_rss_mb=${rss:-?}"
if [ $status -ne 0 ]; then
    echo "FAILED: see $log; artifacts:" >&2
    ls -1 "$work/artifacts" >&2
    grep -E 'ERROR: |SUMMARY: |Fatal error|panic' "$log" | head -5 >&2
fi
exit $status
