#!/usr/bin/env python3
"""Runs every model of ../shared/models and ../shared/models/real that has reference data
(<stem>/io.json, input_N.npy, output_N.npy) through a release `mbconvert`, from its .onnx and from
a float .mbm (every weight kept float32), at 1 and 2 threads, and checks each output within 1e-4 of
its scale (max |Δ| / max(max |ref|, 0.01)). Usage: Scripts/check-shared-outputs.py [MBCONVERT]
(default .build/release/mbconvert). Exits 1 on any failure.
"""
import glob, json, os, subprocess, sys, tempfile

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
exe = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", ".build", "release", "mbconvert")
shared = os.path.join(here, "..", "..", "shared", "models")
if not os.path.isdir(shared):
    print("check-shared-outputs: ../shared/models not found; SKIPPING")
    sys.exit(0)
work = tempfile.mkdtemp()
policy = os.path.join(work, "float.txt")
open(policy, "w").write("version: 1\ndefault:\n  keep: float32\n")
failures = 0
for model in sorted(glob.glob(shared + "/*.onnx") + glob.glob(shared + "/real/*.onnx")):
    stem = os.path.splitext(os.path.basename(model))[0]
    data = os.path.join(os.path.dirname(model), stem)
    if not os.path.exists(data + "/io.json"):
        continue
    io = json.load(open(data + "/io.json"))
    mbm = os.path.join(work, stem + ".mbm")
    r = subprocess.run([exe, "convert", model, policy, "-o", mbm, "--force", "--quiet"], capture_output=True, text=True)
    if r.returncode:
        print("FAIL %s: convert: %s" % (stem, r.stderr.strip()[:300])); failures += 1; continue
    for label, path in (("onnx", model), ("float .mbm", mbm)):
        for threads in (1, 2):
            out = tempfile.mkdtemp(dir=work)
            args = [exe, "run", path, "--threads", str(threads), "--output-dir", out]
            for i in io["inputs"]:
                args += ["--input", "%s=%s/%s" % (i["name"], data, i["file"])]
            r = subprocess.run(args, capture_output=True, text=True)
            if r.returncode:
                print("FAIL %s (%s): %s" % (stem, label, r.stderr.strip()[:300])); failures += 1; continue
            worst = 0.0
            for o in io["outputs"]:
                safe = "".join(c if (c.isascii() and c.isalnum()) or c in ".-_" else "_" for c in o["name"]) or "output"
                got = np.load(os.path.join(out, safe + ".npy")).astype(np.float64)
                ref = np.load(os.path.join(data, o["file"])).astype(np.float64)
                if ref.size:
                    worst = max(worst, np.abs(got.reshape(ref.shape) - ref).max() / max(np.abs(ref).max(), 0.01))
            ok = worst <= 1e-4
            failures += not ok
            print("%-32s %-10s threads=%d  max |Δ| / scale %.2e  %s" % (stem, label, threads, worst, "ok" if ok else "FAIL"))
print("failures: %d" % failures)
sys.exit(1 if failures else 0)
