#!/usr/bin/env bash
# Installs what mbconvert needs on Debian/Ubuntu. Safe to run again: it only installs what is missing.
#   required: libprotobuf-c-dev (ONNX parsing), zlib1g-dev (CRC-32), libopenblas-dev (float GEMM),
#             pkg-config; protobuf-c-compiler to check the generated ONNX code for drift.
#   optional: Python packages onnx, onnxruntime, numpy for cross-checks and benchmarks against
#             the reference tools (the product itself never needs Python).
set -euo pipefail
packages=(libprotobuf-c-dev protobuf-c-compiler zlib1g-dev libopenblas-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if command -v python3 >/dev/null; then
  if ! python3 -c "import onnx, onnxruntime, numpy" >/dev/null 2>&1; then
    echo "setup: installing Python packages onnx onnxruntime numpy (optional cross-checks)"
    python3 -m pip install -q onnx onnxruntime numpy 2>/dev/null ||
      echo "setup: warning: could not install onnx/onnxruntime/numpy; cross-checks will be skipped" >&2
  fi
else
  echo "setup: warning: no python3; cross-checks against onnx will be skipped" >&2
fi
echo "setup: ok"
