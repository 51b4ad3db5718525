#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run mbconvert on the bundled example.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build -c release --product mbconvert
bin=.build/release/mbconvert
echo
echo "\$ mbconvert inspect Examples/models/tiny_cnn.onnx"
"$bin" inspect Examples/models/tiny_cnn.onnx
