#!/usr/bin/env bash
# The C kernels (CBitPlanes, CFloatKernels) on aarch64: cross-compiled and run under qemu-user
# against the plain references of Tests/CKernels/kernels_test.c (NEON paths against portable
# ones and definitions; exact on integer parts and binarization sums, stated tolerances on
# float sums). This checks correctness only: ARM speed is not measured here.
#
# The kernels are compiled with clang for aarch64-linux-gnu, as SwiftPM compiles them (they use
# clang's vector extensions); the driver with Debian's cross gcc, which also supplies the aarch64
# C library and links. Needs gcc-aarch64-linux-gnu and qemu-user (Scripts/setup.sh installs
# them). Without them: under CI=true the run fails with one line; elsewhere it is skipped.
#   Scripts/test-c-kernels.sh           aarch64 under qemu (and the same driver natively on x86-64)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/.build/c-kernels"
mkdir -p "$out"
includes=(-I "$root/Sources/CBitPlanes/include" -I "$root/Sources/CFloatKernels/include")
sources=("$root"/Sources/CBitPlanes/*.c "$root"/Sources/CFloatKernels/*.c)

# Natively first (x86-64: the AVX2 / AVX-512 variants against the same references): cheap, and
# it keeps the driver's references honest on the machine that has the other variants.
clang -O2 "${includes[@]}" "$root/Tests/CKernels/kernels_test.c" "${sources[@]}" -lm -o "$out/kernels_test-native"
echo "test-c-kernels: native ($(uname -m)):"
"$out/kernels_test-native" | sed 's/^/  /'

# The tools (overridable, e.g. to check the missing-tool path).
cross_cc=${AARCH64_CC:-aarch64-linux-gnu-gcc}
qemu=${QEMU_AARCH64:-qemu-aarch64}
missing=()
command -v "$cross_cc" >/dev/null || missing+=("$cross_cc (gcc-aarch64-linux-gnu)")
command -v "$qemu" >/dev/null || missing+=("$qemu (qemu-user)")
if [ ${#missing[@]} -gt 0 ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "test-c-kernels: FAILED: aarch64 kernel tests need ${missing[*]}; run Scripts/setup.sh" >&2
    exit 1
  fi
  echo "test-c-kernels: ${missing[*]} not installed; SKIPPING the aarch64 (NEON) kernel tests (Scripts/setup.sh installs them)" >&2
  exit 0
fi

objects=()
for f in "${sources[@]}"; do
  o="$out/aarch64-$(basename "$f" .c).o"
  clang --target=aarch64-linux-gnu -O2 -fPIC "${includes[@]}" -c "$f" -o "$o"
  objects+=("$o")
done
"$cross_cc" -O2 -std=c11 -Wall "${includes[@]}" -c "$root/Tests/CKernels/kernels_test.c" -o "$out/aarch64-kernels_test.o"
"$cross_cc" "$out/aarch64-kernels_test.o" "${objects[@]}" -lm -o "$out/kernels_test-aarch64"
echo "test-c-kernels: aarch64 under qemu-user (NEON):"
"$qemu" -L /usr/aarch64-linux-gnu "$out/kernels_test-aarch64" | sed 's/^/  /'
echo "test-c-kernels: aarch64 under qemu-user, MBCONVERT_ISA=portable (the portable paths):"
MBCONVERT_ISA=portable "$qemu" -L /usr/aarch64-linux-gnu "$out/kernels_test-aarch64" | sed 's/^/  /'
echo "test-c-kernels: ok"
