#!/usr/bin/env bash
# Converts every model in ../shared/models (or $1) with every example policy (release build),
# exports each result back to ONNX, loads it in onnxruntime, and recomputes every Middle-Out
# layer independently with numpy (Scripts/crosscheck/convert_vs_numpy.py).
# Prints one line per model x policy and a closing 'N passed, N failed'.
set -uo pipefail
cd "$(dirname "$0")/.."
source Scripts/lib/python.sh
models=${1:-../shared/models}
[ -d "$models" ] || { echo "convert-shared: $models not found" >&2; exit 2; }
swift build -c release --product mbconvert >/dev/null || exit 1
bin=.build/release/mbconvert
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
have_python=0
"$MBCONVERT_PYTHON" -c "import onnx, onnxruntime, numpy" 2>/dev/null && have_python=1
if [ $have_python = 0 ]; then
  [ "${CI:-}" = true ] && { echo "convert-shared: error: CI=true requires $MBCONVERT_PYTHON with onnx/onnxruntime/numpy" >&2; exit 1; }
  echo "convert-shared: $MBCONVERT_PYTHON with onnx/onnxruntime/numpy missing: SKIPPING the onnxruntime load and numpy recomputation" >&2
fi
passed=0; failed=0
for model in "$models"/*.onnx; do
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
echo "$passed passed, $failed failed"
[ $failed = 0 ]
