#!/usr/bin/env python3
"""onnxruntime baseline for `mbbench run`: time a model on .npy inputs.

Inputs are `NAME=file.npy` or bare paths (given to the model's inputs in order). Prints
{"medianMs": ..., "minMs": ..., "peakRSSBytes": ...} as the last line (peak RSS: VmHWM of this
process, the same measure `mbbench run-once` reports for ours); writes the first output to --output.
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort
from ort_feeds import load_feeds


def peak_rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--output")
    a = p.parse_args()
    ort.set_default_logger_severity(3)  # errors only (models listing initializers as inputs warn per tensor)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feeds = load_feeds(names, a.inputs)
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
    print(json.dumps({"medianMs": times[len(times) // 2], "minMs": times[0], "peakRSSBytes": peak_rss_bytes()}))


if __name__ == "__main__":
    main()
