#!/usr/bin/env python3
"""Reference values of ONNX Cast to every low-precision type, from onnx's reference evaluator.

Usage: low_precision_casts.py OUT_DIR

Writes OUT_DIR/x.npy (float32: seeded random bit patterns, so NaNs, infinities and subnormals,
plus values around each format's range and exact ties) and, for each Cast target, saturate and
round_mode, the values Cast(Cast(x, to), float) gives, as float32 .npy, listed in
OUT_DIR/cases.txt as `file to saturate round_mode`. LowPrecisionCastTests compares mbconvert's
runtime against them bit for bit.
"""
import os
import sys
import warnings

import numpy as np
from onnx import TensorProto as T
from onnx import helper
from onnx.reference import ReferenceEvaluator


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    random_bits = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    ties = np.ldexp(rng.integers(-40, 40, 5000).astype(np.float64) * 0.5 + 0.25, rng.integers(-20, 18, 5000))
    ranges = np.concatenate([rng.uniform(-600, 600, 5000), rng.uniform(-70000, 70000, 5000), rng.uniform(-8, 8, 5000), ties])
    x = np.concatenate([random_bits, ranges.astype(np.float32)]).astype(np.float32)
    np.save(os.path.join(out, "x.npy"), x)
    cases = [(t, s, "up") for t in (T.FLOAT8E4M3FN, T.FLOAT8E4M3FNUZ, T.FLOAT8E5M2, T.FLOAT8E5M2FNUZ, T.FLOAT4E2M1) for s in (0, 1)]
    cases += [(T.FLOAT8E8M0, s, m) for m in ("up", "down", "nearest") for s in (0, 1)]
    cases += [(t, 1, "up") for t in (T.INT4, T.UINT4, T.INT2, T.UINT2)]
    lines = []
    for to, saturate, mode in cases:
        attrs = {"to": to, "saturate": saturate}
        if to == T.FLOAT8E8M0:
            attrs["round_mode"] = mode
        nodes = [helper.make_node("Cast", ["x"], ["y"], **attrs), helper.make_node("Cast", ["y"], ["z"], to=T.FLOAT)]
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", T.FLOAT, [len(x)])],
                                  [helper.make_tensor_value_info("z", T.FLOAT, [len(x)])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # out-of-range float → int casts warn in numpy
            z = ReferenceEvaluator(model).run(None, {"x": x})[0].astype(np.float32)
        name = f"{T.DataType.Name(to).lower()}_sat{saturate}_{mode}.npy"
        np.save(os.path.join(out, name), z)
        lines.append(f"{name} {to} {saturate} {mode}")
    with open(os.path.join(out, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
