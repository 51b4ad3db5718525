#!/usr/bin/env bash
# Converts every shared model (../shared/models/*.onnx, ../shared/models/real/*.onnx) and the
# example model with every example policy (Examples/policies/*.txt, the calibration policy with
# its data where a model has some) and the comparison fixtures (Scripts/compare-policies/*.txt),
# and writes one manifest line per conversion: "model+policy sha256" for an .mbm, or
# "model+policy FAIL <first line of the error>" for a conversion that stops.
#
#   Scripts/compare-conversions.sh record DIR          # convert into DIR, write DIR/manifest.txt
#   Scripts/compare-conversions.sh compare DIR NEWDIR  # convert into NEWDIR, diff the manifests
#
# For refactorings that must not change a single output byte: record before, compare after.
# Uses the release build (`swift build -c release --product mbconvert` first, or set MBCONVERT).
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${MBCONVERT:-.build/release/mbconvert}
[ -x "$bin" ] || { echo "compare-conversions: $bin not built (swift build -c release --product mbconvert)" >&2; exit 2; }

convert_all() {
  local dir=$1
  mkdir -p "$dir"
  : >"$dir/manifest.txt"
  local models=(../shared/models/*.onnx ../shared/models/real/*.onnx Examples/models/tiny_cnn.onnx)
  local policies=(Examples/policies/*.txt Scripts/compare-policies/*.txt)
  for model in "${models[@]}"; do
    [ -f "$model" ] || continue
    local base; base=$(basename "$model" .onnx)
    # Calibration data: the model's calib_x.npy, else its input_0.npy (tiny_cnn: its example input).
    local data=""
    local folder="${model%.onnx}"
    if [ -f "$folder/calib_x.npy" ]; then data="$folder/calib_x.npy"
    elif [ -f "$folder/input_0.npy" ]; then data="$folder/input_0.npy"
    elif [ -f "${model%.onnx}.input.npy" ]; then data="${model%.onnx}.input.npy"; fi
    local runs=()
    for policy in "${policies[@]}"; do runs+=("$policy|"); done
    if [ -n "$data" ]; then
      for policy in Examples/policies/with-calibration/*.txt; do runs+=("$policy|$data"); done
      runs+=("Examples/policies/post-training.txt|$data")
    fi
    for run in "${runs[@]}"; do
      local policy=${run%%|*} calib=${run#*|}
      local name="$base+$(basename "$policy" .txt)"
      local extra=()
      if [ -n "$calib" ]; then name="$name+calibrated"; extra=(--calibrate "$calib"); fi
      local out="$dir/$name.mbm"
      if "$bin" "$model" "$policy" -o "$out" --force --quiet "${extra[@]}" 2>"$dir/$name.err"; then
        echo "$name $(sha256sum "$out" | cut -d' ' -f1)" >>"$dir/manifest.txt"
      else
        echo "$name FAIL $(head -1 "$dir/$name.err")" >>"$dir/manifest.txt"
      fi
    done
  done
  echo "compare-conversions: $(grep -vc ' FAIL ' "$dir/manifest.txt") written, $(grep -c ' FAIL ' "$dir/manifest.txt") failed (manifest $dir/manifest.txt)"
}

case "${1:-}" in
  record)
    [ $# = 2 ] || { echo "usage: $0 record DIR" >&2; exit 2; }
    convert_all "$2" ;;
  compare)
    [ $# = 3 ] || { echo "usage: $0 compare DIR NEWDIR" >&2; exit 2; }
    [ -f "$2/manifest.txt" ] || { echo "compare-conversions: $2/manifest.txt not found (record first)" >&2; exit 2; }
    convert_all "$3"
    if diff "$2/manifest.txt" "$3/manifest.txt"; then
      echo "compare-conversions: all $(wc -l <"$3/manifest.txt") conversions identical (same .mbm SHA-256, same failures)"
    else
      echo "compare-conversions: DIFFERENT (lines above: < before, > after)"; exit 1
    fi ;;
  *) echo "usage: $0 record DIR | compare DIR NEWDIR" >&2; exit 2 ;;
esac
