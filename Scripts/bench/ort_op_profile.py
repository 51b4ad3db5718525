#!/usr/bin/env python3
"""Per-operator time of onnxruntime on one model, to set beside `mbconvert run --profile`.

Runs the model with onnxruntime's profiler on (CPU, the given thread count, sequential) and
prints, per op type, the mean time per run in ms over the timed runs (warm-up runs excluded),
then the slowest nodes. onnxruntime fuses nodes (Conv+Add+Relu, MatMul+Add, ...): a fused node
is counted under the op type onnxruntime reports for it.

    .venv/bin/python Scripts/bench/ort_op_profile.py MODEL.onnx INPUT.npy [...] --threads 1
"""
import argparse
import collections
import json
import os
import tempfile

import onnxruntime as ort
from ort_feeds import load_feeds, sequential_options


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--nodes", type=int, default=15, help="slowest nodes to list")
    a = p.parse_args()
    ort.set_default_logger_severity(3)
    with tempfile.TemporaryDirectory() as tmp:
        opts = sequential_options(a.threads, profile_prefix=os.path.join(tmp, "ort"))
        sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
        feeds = load_feeds([i.name for i in sess.get_inputs()], a.inputs)
        for _ in range(a.warmup + a.repeats):
            sess.run(None, feeds)
        with open(sess.end_profiling()) as f:
            trace = json.load(f)
    runs = [ev for ev in trace if ev.get("cat") == "Session" and ev["name"] == "model_run"]
    timed = runs[a.warmup:]
    start = timed[0]["ts"] if timed else 0
    by_op = collections.defaultdict(float)
    by_node = collections.defaultdict(float)
    op_of = {}
    for ev in trace:
        if ev.get("cat") != "Node" or not ev["name"].endswith("_kernel_time") or ev["ts"] < start:
            continue
        op = ev.get("args", {}).get("op_name", "?")
        node = ev["name"][: -len("_kernel_time")]
        by_op[op] += ev["dur"]
        by_node[node] += ev["dur"]
        op_of[node] = op
    n = max(len(timed), 1)
    run_ms = sum(r["dur"] for r in timed) / n / 1000
    kernels = sum(by_op.values()) / n / 1000
    print(f"onnxruntime {ort.__version__}, {a.threads} thread(s), {len(timed)} timed runs: "
          f"run {run_ms:.3f} ms, kernels {kernels:.3f} ms")
    for op, us in sorted(by_op.items(), key=lambda kv: -kv[1]):
        print(f"  {op:28s} {us / n / 1000:8.3f} ms")
    print("slowest nodes:")
    for node, us in sorted(by_node.items(), key=lambda kv: -kv[1])[: a.nodes]:
        print(f"  {op_of[node]:20s} {us / n / 1000:8.3f} ms  {node}")


if __name__ == "__main__":
    main()
