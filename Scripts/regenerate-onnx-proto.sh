#!/usr/bin/env bash
# Regenerates Sources/CONNXProto from Schemas/onnx.proto with protoc-c (Debian: protobuf-c-compiler).
#   Scripts/regenerate-onnx-proto.sh          rewrite the generated files
#   Scripts/regenerate-onnx-proto.sh --check  exit 1 if the committed files differ from fresh output
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v protoc-c >/dev/null || { echo "regenerate-onnx-proto: protoc-c not found (apt-get install protobuf-c-compiler)" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$root/Schemas" && protoc-c --c_out="$tmp" onnx.proto)
# The header is included as <onnx.pb-c.h> from the target's public include folder.
sed -i 's|#include "onnx.pb-c.h"|#include "include/onnx.pb-c.h"|' "$tmp/onnx.pb-c.c"
if [ "${1:-}" = "--check" ]; then
  diff -u "$root/Sources/CONNXProto/include/onnx.pb-c.h" "$tmp/onnx.pb-c.h" &&
  diff -u "$root/Sources/CONNXProto/onnx.pb-c.c" "$tmp/onnx.pb-c.c" ||
  { echo "regenerate-onnx-proto: generated code drifted from Schemas/onnx.proto; run Scripts/regenerate-onnx-proto.sh" >&2; exit 1; }
  echo "regenerate-onnx-proto: generated code matches Schemas/onnx.proto"
else
  cp "$tmp/onnx.pb-c.h" "$root/Sources/CONNXProto/include/onnx.pb-c.h"
  cp "$tmp/onnx.pb-c.c" "$root/Sources/CONNXProto/onnx.pb-c.c"
  echo "regenerate-onnx-proto: wrote Sources/CONNXProto/{onnx.pb-c.c,include/onnx.pb-c.h}"
fi
