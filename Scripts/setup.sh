#!/usr/bin/env bash
# Installs what mbconvert needs on Debian/Ubuntu. Safe to run again: it only installs what is missing.
#   required: libprotobuf-c-dev (ONNX parsing), zlib1g-dev (CRC-32), libopenblas-dev (float GEMM),
#             libpng-dev and libjpeg-dev (libjpeg-turbo; calibration on PNG/JPEG image folders),
#             pkg-config; protobuf-c-compiler to check the generated ONNX code for drift;
#             gcc-aarch64-linux-gnu and qemu-user to test the NEON kernels (Scripts/test-c-kernels.sh).
#   python3-venv: .venv/ with Scripts/requirements.txt (onnx, onnxruntime, numpy) for the
#             cross-checks and benchmarks against the reference tools (the product itself never
#             needs Python; optional outside CI, required under CI=true).
set -euo pipefail
packages=(libprotobuf-c-dev protobuf-c-compiler zlib1g-dev libopenblas-dev libpng-dev libjpeg-dev pkg-config python3-venv)
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
# --- embedding: aarch64 cross compiler and qemu-user for Scripts/test-c-kernels.sh (NEON kernels) ---
cross=(gcc-aarch64-linux-gnu qemu-user)
missing=()
for p in "${cross[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (aarch64 kernel tests under qemu)"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  { $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
    echo "setup: warning: could not install ${missing[*]}; the aarch64 kernel tests will be skipped (and fail under CI=true)" >&2
fi
# --- end embedding ---
# --- HTML reports: headless Chromium renders a report to PNG (Scripts/test-report-render.sh) ---
if ! dpkg -s chromium >/dev/null 2>&1; then
  echo "setup: installing chromium (headless rendering test of the HTML report)"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  { $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null; } ||
    echo "setup: warning: could not install chromium; the report rendering test will be skipped (and fail under CI=true)" >&2
fi
# --- Python: a project-local virtual environment with the pinned Scripts/requirements.txt ---
# .venv/ (git-ignored) sees the system's site-packages, so pins already installed need no
# download; Debian's system pip refuses global installs, a venv does not. Under CI=true a
# Python that cannot be set up fails setup; elsewhere the cross-checks are reported as skipped.
python_problem=""
if ! command -v python3 >/dev/null; then
  python_problem="no python3"
elif [ ! -x .venv/bin/python ] && ! python3 -m venv --system-site-packages .venv >/dev/null 2>&1; then
  rm -rf .venv
  python_problem="python3 -m venv failed (install python3-venv)"
elif ! .venv/bin/python -m pip install -q --disable-pip-version-check -r Scripts/requirements.txt >/dev/null 2>&1; then
  python_problem="pip could not install Scripts/requirements.txt into .venv"
fi
if [ -n "$python_problem" ]; then
  if [ "${CI:-}" = true ]; then
    echo "setup: error: $python_problem; CI=true requires the Python cross-checks" >&2
    exit 1
  fi
  echo "setup: warning: $python_problem; the Python cross-checks will be reported as skipped" >&2
fi
# --- end Python ---
echo "setup: ok"
