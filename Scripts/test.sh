#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks generated code for drift, runs the
# Swift tests (with the onnx/onnxruntime cross-checks) and the numpy recomputation of the shared models.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
# --- Prerequisites: CI=true requires every one (one line each, then exit 1); elsewhere the
# tests that need a missing one are reported as skipped. One Python for everything: $MBCONVERT_PYTHON.
source Scripts/lib/python.sh
Scripts/check-prerequisites.sh
# --- end prerequisites ---
# Package.swift against the module table in Sources/README.md (dependencies, imports, runtime closure).
Scripts/check-modules.sh
if command -v protoc-c >/dev/null; then
  Scripts/regenerate-onnx-proto.sh --check
else
  echo "test: protoc-c not installed; SKIPPING the generated-code drift check" >&2
fi
# --- embedding: the app and the C kernels on aarch64 (Scripts/test-app.sh, Scripts/test-c-kernels.sh) ---
# An app that depends on mbconvert by version (a tagged bare clone, from: "0.1.0", the MBRuntime
# product alone) must build in release and run: SwiftPM refuses unsafeFlags in such a package.
Scripts/test-app.sh
# The C kernels against their references: natively, and cross-compiled for aarch64 under qemu-user
# (NEON paths). Under CI=true a missing cross compiler or qemu fails the run.
Scripts/test-c-kernels.sh
# --- end embedding ---
# ONNX's node conformance cases, written out from the installed onnx package's generators.
if "$MBCONVERT_PYTHON" -c "import onnx" >/dev/null 2>&1; then
  "$MBCONVERT_PYTHON" Scripts/fixtures/onnx_node_cases.py .build/onnx-node-cases
  export MBCONVERT_ONNX_NODE_CASES="$PWD/.build/onnx-node-cases"
else
  echo "test: Python's onnx is not installed; SKIPPING the ONNX node conformance cases" >&2
fi
swift build --build-tests
swift test --skip-build
# --- reports: the HTML report rendered by headless Chromium (skipped without it; CI=true fails when installable) ---
Scripts/test-report-render.sh --bin "$(swift build --show-bin-path)/mbconvert"
# --- end reports ---
# --- The independent numpy recomputation (Scripts/convert-shared.sh) on the debug build: every
# shared model up to 4M weights with every example policy, exported, loaded by onnxruntime and
# recomputed with numpy. Larger models are printed as skipped (minutes each in a debug build;
# run the script alone, release build, for them). ../shared is required under CI=true (above).
shared_models="${MBCONVERT_SHARED:-../shared}/models"
if [ -d "$shared_models" ]; then
  Scripts/convert-shared.sh --bin "$(swift build --show-bin-path)/mbconvert" --max-weights 4000000 "$shared_models"
else
  echo "test: $shared_models not found; SKIPPING Scripts/convert-shared.sh" >&2
fi
# --- end convert-shared ---
