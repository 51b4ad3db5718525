#!/usr/bin/env python3
"""Recomputes every binarized weight of a conversion independently (numpy, following HBB.md;
Scripts/bench/binarize_numpy.py) and compares it with what mbconvert stored, read back through
`mbconvert export-onnx` (exact dequantized values).

    convert_vs_numpy.py SOURCE.onnx EXPORTED.onnx REPORT.json

REPORT.json is `mbconvert SOURCE.onnx POLICY --json REPORT.json`. For each middle-out layer the
stored values must equal numpy's T_hat: same mask and signs (a different choice changes a value
by at least a level's scale) and scales within 1e-6 relative. Prints one line per layer and a
closing 'N passed, N failed'; exits 1 on any failure.
"""
import importlib.util
import json
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("binarize_numpy", os.path.join(here, "..", "bench", "binarize_numpy.py"))
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)


def constants(model):
    """Every constant tensor of the main graph by name: initializers, Constant nodes, and
    ConstantOfShape / Identity nodes of constants (what mbconvert folds)."""
    g = model.graph
    values = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    values[n.output[0]] = numpy_helper.to_array(a.t)
        elif n.op_type == "ConstantOfShape" and n.input[0] in values:
            fill = np.zeros(1, np.float32)
            for a in n.attribute:
                if a.name == "value":
                    fill = numpy_helper.to_array(a.t)
            values[n.output[0]] = np.full(tuple(int(d) for d in values[n.input[0]]), fill.reshape(-1)[0], dtype=fill.dtype)
        elif n.op_type == "Identity" and n.input[0] in values:
            values[n.output[0]] = values[n.input[0]]
    return values


def main():
    source, exported, report_path = sys.argv[1:4]
    original = constants(onnx.load(source))
    stored = {t.name: numpy_helper.to_array(t) for t in onnx.load(exported).graph.initializer}
    report = json.load(open(report_path))
    passed = failed = skipped = 0
    for layer in report["layers"]:
        if layer.get("encoding") != "binarized":
            continue
        name = layer["name"]
        if not (layer.get("method") or "").startswith("middle-out") or "refit" in layer["method"]:
            skipped += 1
            print(f"skip {name}: method {layer.get('method')} has no numpy twin here")
            continue
        T = original[name].astype(np.float32)
        mix = layer["requestedMix"]
        bits = [m["bits"] for m in mix]
        fractions = [m["fraction"] for m in mix]
        axis = 0
        if layer.get("scale") == "channel":
            # Channel scales: one row per output channel (axis 0 for Conv/Gemm-transB; the
            # output axis is recorded as the shape's channel dimension).
            axis = layer.get("channelAxis", 0)
            rows = np.moveaxis(T, axis, 0).reshape(T.shape[axis], -1)
        else:
            rows = T.reshape(1, -1)
        T_hat, _ = reference.binarize(rows, bits, fractions)
        if layer.get("scale") == "channel":
            moved = list(np.moveaxis(T, axis, 0).shape)
            T_hat = np.moveaxis(T_hat.reshape(moved), 0, axis)
        T_hat = T_hat.reshape(T.shape)
        ours = stored[name].reshape(T.shape)
        scale = float(np.abs(T_hat).max()) if T_hat.size else 1.0
        diff = np.abs(ours.astype(np.float64) - T_hat.astype(np.float64))
        bad = int((diff > 1e-6 * max(scale, 1e-30) + 1e-12).sum())
        if bad == 0:
            passed += 1
            print(f"ok   {name}: {T.size} values, max |ours - numpy| = {diff.max() if diff.size else 0:.3g}")
        else:
            failed += 1
            print(f"FAIL {name}: {bad} of {T.size} values differ (max {diff.max():.3g})")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
