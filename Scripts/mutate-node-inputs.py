#!/usr/bin/env python3
"""Runs `mbconvert run` on every ONNX node case with damaged inputs and reports crashes.

For each case folder (model.onnx + test_data_set_0/input_N.pb, as written by
Scripts/fixtures/onnx_node_cases.py) four variants of its inputs are tried: floats scaled by 1e30
with a NaN, integers replaced by small random values (indices out of range), the last axis one
shorter, and an extra leading axis of 3. Each run must end in outputs or a one-line error (exit 1);
a signal, an exit code from a trap or a silent failure is reported with the case and variant.

Usage: mutate-node-inputs.py CASES_DIR [MBCONVERT] (default .build/debug/mbconvert: bounds-checked)
"""
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import onnx
from onnx import numpy_helper

VARIANTS = ("huge floats and a NaN", "random small integers", "last axis shorter", "extra leading axis")
HELD_AS_IS = set("fiub")  # numpy kinds the CLI reads from .npy (float, int, uint8, bool)


def mutate(a, variant, rng):
    b = a.copy()
    if variant == 0 and b.dtype.kind == "f" and b.size:
        b = (b * 1e30).astype(b.dtype)
        b.flat[0] = np.nan
    elif variant == 1 and b.dtype.kind == "i" and b.size:
        b = rng.integers(-5, 50, size=b.shape).astype(b.dtype)
    elif variant == 2 and b.ndim >= 1:
        b = np.resize(b, tuple(b.shape[:-1]) + (max(b.shape[-1] - 1, 0),))
    elif variant == 3:
        b = np.resize(b, (3,) + b.shape)
    return b


def main():
    root = sys.argv[1]
    exe = sys.argv[2] if len(sys.argv) > 2 else ".build/debug/mbconvert"
    rng = np.random.default_rng(7)
    work = tempfile.mkdtemp()
    runs, problems = 0, []
    for case in sorted(os.listdir(root)):
        folder = os.path.join(root, case)
        data = os.path.join(folder, "test_data_set_0")
        try:
            graph = onnx.load(os.path.join(folder, "model.onnx")).graph
        except Exception:
            continue
        inputs = []
        for k, info in enumerate(graph.input):
            path = os.path.join(data, f"input_{k}.pb")
            if not os.path.exists(path):
                inputs = []
                break
            inputs.append((info.name, numpy_helper.to_array(onnx.load_tensor(path))))
        if not inputs or any(a.dtype.kind not in HELD_AS_IS or a.dtype.itemsize == 2 or a.dtype in (np.int8, np.uint32, np.uint64) for _, a in inputs):
            continue
        for variant in range(len(VARIANTS)):
            args = [exe, "run", os.path.join(folder, "model.onnx"), "--output-dir", work]
            for j, (name, a) in enumerate(inputs):
                path = os.path.join(work, f"input{j}.npy")
                np.save(path, mutate(a, variant, rng))
                args += ["--input", f"{name}={path}"]
            try:
                r = subprocess.run(args, capture_output=True, timeout=120)
            except subprocess.TimeoutExpired:
                problems.append(f"{case}: {VARIANTS[variant]}: no answer in 120 s")
                continue
            runs += 1
            if r.returncode < 0 or r.returncode >= 128 or (r.returncode != 0 and not r.stderr.strip()):
                tail = r.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
                problems.append(f"{case}: {VARIANTS[variant]}: exit {r.returncode} {tail[0][:200]}")
    print(f"mutate-node-inputs: {runs} runs, {len(problems)} problems")
    for p in problems:
        print("  " + p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    main()
