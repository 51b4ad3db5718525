#!/usr/bin/env python3
"""Runs an ONNX model with onnxruntime and compares its outputs with mbconvert's, saved as
`<output-dir>/<name>.npy` by `mbconvert run --output-dir` (characters other than ASCII letters,
digits, '.', '-' and '_' in output names become '_').

    outputs_vs_ort.py MODEL.onnx OUR_OUTPUT_DIR NAME=input.npy [NAME=input.npy ...] [--rtol 1e-4]

Relative error = max |ours - ort| / max |ort| per output. Prints one line per output and a closing
'N passed, N failed'; exits 1 on any failure.
"""
import os
import sys

import numpy as np
import onnxruntime as ort


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    rtol = 1e-4
    if "--rtol" in sys.argv:
        rtol = float(sys.argv[sys.argv.index("--rtol") + 1])
        args.remove(str(sys.argv[sys.argv.index("--rtol") + 1]))
    model, ours = args[0], args[1]
    feeds = {}
    for spec in args[2:]:
        name, path = spec.split("=", 1)
        feeds[name] = np.load(path)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    passed = failed = 0
    for info, value in zip(session.get_outputs(), session.run(None, feeds)):
        safe = "".join(c if (c.isascii() and c.isalnum()) or c in ".-_" else "_" for c in info.name) or "output"
        mine = np.load(os.path.join(ours, safe + ".npy"))
        scale = float(np.abs(value).max()) or 1.0
        rel = float(np.abs(mine.astype(np.float64) - value.astype(np.float64)).max()) / scale
        ok = mine.shape == value.shape and rel <= rtol
        passed += ok
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {info.name} {list(value.shape)}: relative error {rel:.3g} (bar {rtol:g})")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
