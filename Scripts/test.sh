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
swift build --build-tests
swift test --skip-build
