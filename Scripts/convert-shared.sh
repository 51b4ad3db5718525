#!/usr/bin/env bash
# Converts every model in ../shared/models (or MODELS) with every example policy, exports each
# result back to ONNX, loads it in onnxruntime, and recomputes every Middle-Out layer
# independently with numpy (Scripts/crosscheck/convert_vs_numpy.py).
# Prints one line per model x policy and a closing 'N passed, N failed, N skipped'.
#
#   Scripts/convert-shared.sh [--bin PATH] [--max-weights N] [MODELS]
#   --bin PATH       use this mbconvert (Scripts/test.sh passes its debug build) instead of
#                    building the release one
#   --max-weights N  convert only models with at most N weight elements; larger ones are
#                    printed as 'skip' (never silently)
set -uo pipefail
cd "$(dirname "$0")/.."
source Scripts/lib/python.sh
bin=""; max_weights=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2;;
    --max-weights) max_weights=$2; shift 2;;
    *) break;;
  esac
done
models=${1:-../shared/models}
[ -d "$models" ] || { echo "convert-shared: $models not found" >&2; exit 2; }
if [ -z "$bin" ]; then
  swift build -c release --product mbconvert >/dev/null || exit 1
  bin=.build/release/mbconvert
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
have_python=0
"$MBCONVERT_PYTHON" -c "import onnx, onnxruntime, numpy" 2>/dev/null && have_python=1
if [ $have_python = 0 ]; then
  [ "${CI:-}" = true ] && { echo "convert-shared: error: CI=true requires $MBCONVERT_PYTHON with onnx/onnxruntime/numpy" >&2; exit 1; }
  echo "convert-shared: $MBCONVERT_PYTHON with onnx/onnxruntime/numpy missing: SKIPPING the onnxruntime load and numpy recomputation" >&2
fi
passed=0; failed=0; skipped=0
for model in "$models"/*.onnx; do
  if [ "$max_weights" -gt 0 ]; then
    weights=$("$bin" policy check Examples/policies/alexnet-paper.txt "$model" --json 2>/dev/null |
      "$MBCONVERT_PYTHON" -c "import json,sys; print(json.load(sys.stdin)['totals']['weightElements'])" 2>/dev/null || echo 0)
    if [ "${weights:-0}" -gt "$max_weights" ]; then
      echo "skip $(basename "$model" .onnx): $weights weights > --max-weights $max_weights"; skipped=$((skipped+1)); continue
    fi
  fi
  for policy in Examples/policies/*.txt; do
    name="$(basename "$model" .onnx)+$(basename "$policy" .txt)"
    out="$work/$name.mbm"
    if ! "$bin" "$model" "$policy" -o "$out" --quiet --json "$work/$name.json" 2>"$work/err"; then
      echo "FAIL $name: $(head -3 "$work/err")"; failed=$((failed+1)); continue
    fi
    line=$("$MBCONVERT_PYTHON" -c "import json,sys; t=json.load(open(sys.argv[1]))['totals']; print(f\"{t['onnxBytes']}->{t['mbmBytes']} bytes, {t['bitsPerWeight']:.3f} bits/weight, {t['seconds']:.2f} s\")" "$work/$name.json" 2>/dev/null)
    if [ $have_python = 1 ]; then
      "$bin" export-onnx "$out" "$work/$name.onnx" || { echo "FAIL $name: export-onnx"; failed=$((failed+1)); continue; }
      if ! "$MBCONVERT_PYTHON" -c "import onnxruntime as o,sys; o.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])" "$work/$name.onnx" 2>"$work/err"; then
        echo "FAIL $name: onnxruntime cannot load the export: $(tail -1 "$work/err")"; failed=$((failed+1)); continue
      fi
      check=$("$MBCONVERT_PYTHON" Scripts/crosscheck/convert_vs_numpy.py "$model" "$work/$name.onnx" "$work/$name.json" | tail -1)
      case "$check" in *" 0 failed"*) ;; *) echo "FAIL $name: numpy recomputation: $check"; failed=$((failed+1)); continue;; esac
      line="$line; onnxruntime loads the export; numpy: $check"
    fi
    echo "ok   $name: $line"
    passed=$((passed+1))
    rm -f "$work/$name".*
  done
done
echo "$passed passed, $failed failed, $skipped models skipped"
[ $failed = 0 ]
