#!/usr/bin/env python3
"""onnxruntime baseline for `mbbench run`: time a model on one .npy input.

Prints {"medianMs": ..., "minMs": ...} as the last line; writes the first output to --output.
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("input")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--output")
    a = p.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    x = np.load(a.input)
    feeds = {sess.get_inputs()[0].name: x}
    out = None
    for _ in range(a.warmup):
        out = sess.run(None, feeds)
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        out = sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    if a.output:
        np.save(a.output, out[0])
    print(json.dumps({"medianMs": times[len(times) // 2], "minMs": times[0]}))


if __name__ == "__main__":
    main()
