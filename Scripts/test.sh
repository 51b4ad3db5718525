#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks generated code for drift, runs the
# Swift tests (which include the onnx cross-checks when Python's onnx is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
if command -v protoc-c >/dev/null; then
  Scripts/regenerate-onnx-proto.sh --check
else
  echo "test: protoc-c not installed; SKIPPING the generated-code drift check" >&2
fi
# The example app that embeds the runtime alone must build and run.
swift run --package-path Examples/RuntimeApp --scratch-path Examples/RuntimeApp/.build RuntimeApp
# ONNX's node conformance cases, written out from the installed onnx package's generators.
if python3 -c "import onnx" >/dev/null 2>&1; then
  python3 Scripts/fixtures/onnx_node_cases.py .build/onnx-node-cases
  export MBCONVERT_ONNX_NODE_CASES="$PWD/.build/onnx-node-cases"
else
  echo "test: Python's onnx is not installed; SKIPPING the ONNX node conformance cases" >&2
fi
swift build --build-tests
swift test --skip-build
