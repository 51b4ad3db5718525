#!/usr/bin/env bash
# The README's first command: install what is missing, build, convert the bundled example with a
# bundled policy, look inside the result, and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build -c release --product mbconvert
bin=.build/release/mbconvert
mkdir -p out
run() { echo; echo "\$ mbconvert $*"; "$bin" "$@"; }
run Examples/models/tiny_cnn.onnx Examples/policies/alexnet-paper.txt -o out/tiny_cnn.mbm --force
run inspect out/tiny_cnn.mbm
run run Examples/models/tiny_cnn.onnx --input input=Examples/models/tiny_cnn.input.npy
run run out/tiny_cnn.mbm --input input=Examples/models/tiny_cnn.input.npy --output-dir out
