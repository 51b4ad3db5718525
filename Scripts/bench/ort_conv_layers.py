#!/usr/bin/env python3
"""Per-layer convolution times of onnxruntime, for `mbbench conv --layers`.

Runs a model at one thread with onnxruntime's profiler on, and prints one line per Conv node of
the ONNX graph: the geometry (from onnx shape inference on the given input shapes), its
multiply-adds and onnxruntime's median time for that node. The line format is what
`mbbench conv --layers FILE` reads:

    name  N C H W  O kh kw  sh sw  dh dw  pt pl pb pr  groups  ort_us

onnxruntime renames nodes it rewrites, so nodes
whose time cannot be found print ort_us -1. A Conv fused with what follows it is timed with it
(that node's work is in ort_us too).
"""
import argparse
import collections
import json
import os
import statistics
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import shape_inference
from ort_feeds import load_feeds


def attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            if a.type == onnx.AttributeProto.STRING:
                return a.s
            return list(a.ints) if a.type == onnx.AttributeProto.INTS else a.i
    return default


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args()
    ort.set_default_logger_severity(3)
    model = onnx.load(a.model)
    names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    feeds = load_feeds(names, a.inputs)
    # Fix the input shapes so inference gives every Conv input a concrete shape.
    for i in model.graph.input:
        if i.name in feeds:
            dims = i.type.tensor_type.shape.dim
            for d, v in zip(dims, feeds[i.name].shape):
                d.ClearField("dim_param")
                d.dim_value = v
    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    inits = {t.name: list(t.dims) for t in model.graph.initializer}

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
        for _ in range(3 + a.repeats):
            sess.run(None, feeds)
        with open(sess.end_profiling()) as f:
            trace = json.load(f)
    times = collections.defaultdict(list)
    for ev in trace:
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            times[ev["name"][: -len("_kernel_time")]].append(ev["dur"])
    consumers = collections.defaultdict(list)
    for node in model.graph.node:
        for i in node.input:
            consumers[i].append(node)
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        x = shapes.get(node.input[0])
        w = inits.get(node.input[1]) or shapes.get(node.input[1])
        if not x or not w or len(x) != 4 or 0 in x:
            continue
        kh, kw = w[2], w[3]
        s = attr(node, "strides", [1, 1])
        d = attr(node, "dilations", [1, 1])
        pads = attr(node, "pads", [0, 0, 0, 0])
        auto = attr(node, "auto_pad", b"NOTSET")
        if auto in (b"SAME_UPPER", b"SAME_LOWER"):
            # Total padding so that out = ceil(in / stride); the odd one at the end for SAME_UPPER.
            begin, end = [], []
            for n, k, st, dl in zip(x[2:], [kh, kw], s, d):
                total = max(0, (-(-n // st) - 1) * st + (k - 1) * dl + 1 - n)
                small = total // 2
                begin.append(small if auto == b"SAME_UPPER" else total - small)
                end.append(total - begin[-1])
            pads = begin + end
        groups = attr(node, "group", 1)
        # onnxruntime names a Conv it fused with the next node (an activation, an Add) after that
        # node, and its NCHWc layout pass names the node after its output with "_nchwc".
        after = consumers.get(node.output[0], [])[:1]
        candidates = [node.name, node.output[0]] + [c.name for c in after] + [c.output[0] for c in after]
        t = next((times[n + sfx] for n in candidates for sfx in ("", "_nchwc") if n + sfx in times), None)
        us = statistics.median(t) if t else -1
        name = node.name or node.output[0]
        print(name.replace(" ", "_"), *x, w[0], kh, kw, *s, *d, pads[0], pads[1], pads[2], pads[3], groups, us)


if __name__ == "__main__":
    main()
