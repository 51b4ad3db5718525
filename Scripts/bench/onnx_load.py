#!/usr/bin/env python3
"""Baseline for `mbbench import`: times onnx.load(path) (external data included, as onnx does by
default) and prints {"seconds": ..., "peakRSSBytes": ...} as one JSON line."""
import json
import resource
import sys
import time

import onnx

path = sys.argv[1]
start = time.perf_counter()
model = onnx.load(path)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
print(json.dumps({"seconds": seconds, "peakRSSBytes": peak}))
