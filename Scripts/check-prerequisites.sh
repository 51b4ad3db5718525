#!/usr/bin/env bash
# What the full suite needs beyond Swift: the pinned Python packages (in the interpreter of
# Scripts/lib/python.sh), ../shared (or $MBCONVERT_SHARED) with models/ and onnx-backend/, and
# protoc-c (the generated-code drift check). One line per missing prerequisite. Under CI=true
# any missing one fails (exit 1); elsewhere the tests that need it are reported as skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
source Scripts/lib/python.sh
missing=()
if ! "$MBCONVERT_PYTHON" -c "import onnx, onnxruntime, numpy" >/dev/null 2>&1; then
  why=$("$MBCONVERT_PYTHON" -c "import onnx, onnxruntime, numpy" 2>&1 | tail -1)
  missing+=("Python $MBCONVERT_PYTHON cannot import onnx, onnxruntime, numpy (${why:-not found}; Scripts/setup.sh installs Scripts/requirements.txt into .venv)")
fi
shared=${MBCONVERT_SHARED:-../shared}
for sub in models onnx-backend; do
  [ -d "$shared/$sub" ] || missing+=("$shared/$sub not found (set MBCONVERT_SHARED)")
done
command -v protoc-c >/dev/null || missing+=("protoc-c not installed (protobuf-c-compiler; the generated-code drift check)")
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "${CI:-}" = true ]; then
  for m in "${missing[@]}"; do echo "test: error: CI=true requires $m" >&2; done
  exit 1
fi
for m in "${missing[@]}"; do echo "test: warning: $m; the tests that need it are reported as skipped" >&2; done
exit 0
