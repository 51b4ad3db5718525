#!/usr/bin/env python3
"""Cross-check `mbconvert inspect --json` against the `onnx` Python package.

For every model given (files, or folders searched for *.onnx), compares: node count per op type
in the main graph, initializer count and bytes, and Constant-node tensor count and bytes.
Prints one line per model and a closing 'N passed, N failed' line; exits 1 on any mismatch.

    Scripts/crosscheck/inspect_vs_onnx.py --mbconvert .build/debug/mbconvert ../shared/models ../shared/onnx-backend
"""
import argparse
import collections
import json
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def onnx_facts(path):
    model = onnx.load(path, load_external_data=False)
    g = model.graph
    ops = collections.Counter(
        n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in g.node
    )
    def nbytes(t):
        if t.data_type == onnx.TensorProto.STRING:
            return 0
        n = int(np.prod(t.dims)) if len(t.dims) else 1
        bits = {1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64,
                14: 64, 15: 128, 16: 16, 17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4, 24: 8}[t.data_type]
        return (n * bits + 7) // 8
    # Weights of subgraphs (If/Loop/Scan bodies) count too, as mbconvert lists them.
    graphs, sub_ops = [], collections.Counter()
    def walk(graph, depth):
        graphs.append(graph)
        for n in graph.node:
            if depth > 0:
                sub_ops[n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"] += 1
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g, depth + 1)
                for sg in a.graphs:
                    walk(sg, depth + 1)
    walk(g, 0)
    inits = [t for gr in graphs for t in gr.initializer if t.data_location != onnx.TensorProto.EXTERNAL]
    consts = []
    for n in (n for gr in graphs for n in gr.node):
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            for a in n.attribute:
                if a.name == "value":
                    consts.append(nbytes(a.t))
                elif a.name in ("value_float", "value_int"):
                    consts.append(4 if a.name == "value_float" else 8)
                elif a.name in ("value_floats", "value_ints"):
                    consts.append((4 if a.name == "value_floats" else 8) * len(a.floats if a.name == "value_floats" else a.ints))
    return {
        "ops": dict(ops),
        "subgraph_ops": dict(sub_ops),
        "initializers": len(inits),
        "initializer_bytes": sum(nbytes(t) for t in inits),
        "constants": len(consts),
        "constant_bytes": sum(consts),
    }


def ours(mbconvert, path):
    out = subprocess.run([mbconvert, "inspect", "--json", path], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    s = json.loads(out.stdout)
    t = s["totals"]
    return {
        "ops": {o["op"]: o["count"] for o in s["operators"]},
        "subgraph_ops": {o["op"]: o["count"] for o in s["subgraphOperators"]},
        "initializers": t["initializers"],
        "initializer_bytes": t["initializerBytes"],
        "constants": t["constantNodeTensors"],
        "constant_bytes": t["constantNodeBytes"],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mbconvert", required=True)
    ap.add_argument("paths", nargs="+")
    args = ap.parse_args()
    files = []
    for p in args.paths:
        if os.path.isdir(p):
            for root, _, names in os.walk(p):
                files += [os.path.join(root, n) for n in names if n.endswith(".onnx")]
        else:
            files.append(p)
    passed = failed = 0
    for f in sorted(files):
        try:
            a, b = onnx_facts(f), ours(args.mbconvert, f)
        except Exception as e:  # report and count, keep going
            print(f"FAIL {f}: {e}")
            failed += 1
            continue
        if a == b:
            passed += 1
            print(f"ok   {f}: {sum(a['ops'].values())} nodes, {a['initializers']} initializers "
                  f"({a['initializer_bytes']} B), {a['constants']} Constant tensors ({a['constant_bytes']} B)")
        else:
            failed += 1
            diffs = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
            print(f"FAIL {f}: onnx vs mbconvert: {diffs}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
