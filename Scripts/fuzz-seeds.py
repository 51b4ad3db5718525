#!/usr/bin/env python3
"""Generates seed corpora for the fuzz targets into .fuzz/seeds/<target>/ (git-ignored).

    Scripts/fuzz-seeds.py [--mbconvert PATH]

onnx:   Examples/models, the small shared models, every ONNX backend case's model.onnx, and a
        "constant" variant of each backend case whose inputs are initializers (so lowering and
        folding see real values).
mbm:    each of those converted by mbconvert with a keep-float32 policy (the constant variants
        make the runtime fold every node at load, so mutations reach the operators).
policy: Examples/policies and the policy in Schemas/policy.md.
npy:    Examples/models/*.npy, small shared .npy files, and one array per supported dtype, shape
        and format version written by numpy.
Needs python3 with numpy and onnx; mbconvert defaults to .build-hd/debug/mbconvert.
"""
import argparse, glob, os, shutil, subprocess, sys, tempfile

import numpy as np
import onnx
from onnx import numpy_helper

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
shared = os.path.join(os.path.dirname(root), "shared")
out = os.path.join(root, ".fuzz", "seeds")
parser = argparse.ArgumentParser()
parser.add_argument("--mbconvert", default=os.path.join(root, ".build-hd", "debug", "mbconvert"))
args = parser.parse_args()

def target(name):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    return d

def small(path, limit=256 * 1024):
    return os.path.getsize(path) <= limit

onnx_dir, mbm_dir, policy_dir, npy_dir = (target(t) for t in ("onnx", "mbm", "policy", "npy"))

# ONNX: real models and backend cases, plus constant variants.
models = [p for p in glob.glob(os.path.join(root, "Examples", "models", "*.onnx"))]
models += [p for p in glob.glob(os.path.join(shared, "models", "*.onnx")) if small(p, 2 << 20)]
cases = sorted(glob.glob(os.path.join(shared, "onnx-backend", "*", "*", "model.onnx")))
for p in models + cases:
    name = os.path.relpath(p, os.path.dirname(root)).replace("/", "_")
    shutil.copy(p, os.path.join(onnx_dir, name))

constants = []
for p in cases:
    case = os.path.dirname(p)
    try:
        m = onnx.load(p)
        inputs = sorted(glob.glob(os.path.join(case, "test_data_set_0", "input_*.pb")))
        init_names = {t.name for t in m.graph.initializer}
        graph_inputs = [i for i in m.graph.input if i.name not in init_names]
        if len(inputs) != len(graph_inputs):
            continue
        for info, pb in zip(graph_inputs, inputs):
            t = onnx.TensorProto()
            with open(pb, "rb") as f:
                t.ParseFromString(f.read())
            t.name = info.name
            m.graph.initializer.append(t)
        del m.graph.input[:]
        path = os.path.join(onnx_dir, "const_" + os.path.basename(case) + ".onnx")
        data = m.SerializeToString()
        if len(data) <= 64 * 1024:
            with open(path, "wb") as f:
                f.write(data)
            constants.append(path)
    except Exception as e:  # a case python's onnx cannot rewrite is just not a seed
        print(f"skip constant variant of {case}: {e}", file=sys.stderr)

# MBM: convert what converts.
if os.path.exists(args.mbconvert):
    with tempfile.TemporaryDirectory() as tmp:
        policy = os.path.join(tmp, "keep.txt")
        with open(policy, "w") as f:
            f.write("version: 1\ndefault:\n  keep: float32\n")
        sources = [p for p in models if small(p, 64 * 1024)] + cases + constants
        for p in sources:
            name = os.path.basename(os.path.dirname(p)) if p.endswith("model.onnx") else os.path.splitext(os.path.basename(p))[0]
            dst = os.path.join(mbm_dir, name + ".mbm")
            r = subprocess.run([args.mbconvert, p, policy, "-o", dst, "--force", "--quiet"], capture_output=True)
            if r.returncode != 0 or not small(dst, 128 * 1024):
                if os.path.exists(dst):
                    os.remove(dst)
        # A binarized model too (mask coder, packed payloads).
        tiny = os.path.join(root, "Examples", "models", "tiny_cnn.onnx")
        for pol in glob.glob(os.path.join(root, "Examples", "policies", "*.txt")):
            dst = os.path.join(mbm_dir, "tiny_cnn_" + os.path.splitext(os.path.basename(pol))[0] + ".mbm")
            subprocess.run([args.mbconvert, tiny, pol, "-o", dst, "--force", "--quiet"], capture_output=True)
else:
    print(f"no mbconvert at {args.mbconvert}: build it first for .mbm seeds", file=sys.stderr)

# Policies.
for p in glob.glob(os.path.join(root, "Examples", "policies", "*.txt")):
    shutil.copy(p, policy_dir)
text = open(os.path.join(root, "Schemas", "policy.md")).read()
blocks = text.split("```")
for i, block in enumerate(blocks[1::2]):
    body = block.split("\n", 1)[1] if "\n" in block else block
    if "version:" in body:
        with open(os.path.join(policy_dir, f"policy-md-{i}.txt"), "w") as f:
            f.write(body)

# NPY.
for p in glob.glob(os.path.join(root, "Examples", "models", "*.npy")) + glob.glob(os.path.join(shared, "models", "*", "*.npy")):
    if small(p, 64 * 1024):
        shutil.copy(p, os.path.join(npy_dir, os.path.basename(os.path.dirname(p)) + "_" + os.path.basename(p)))
rng = np.random.default_rng(8)
for dtype in ["<f4", "<f2", "<f8", "<i8", "<i4", "|u1", "|b1"]:
    for shape in [(), (0,), (3,), (2, 3), (1, 2, 1, 2)]:
        a = (rng.standard_normal(shape) * 10).astype(dtype)
        for version in [(1, 0), (2, 0), (3, 0)]:
            name = f"{dtype[1:]}_{'x'.join(map(str, shape)) or 'scalar'}_v{version[0]}.npy"
            with open(os.path.join(npy_dir, name), "wb") as f:
                np.lib.format.write_array(f, a, version=version)

for t in ("onnx", "mbm", "policy", "npy"):
    d = os.path.join(out, t)
    files = os.listdir(d)
    print(f"{t}: {len(files)} seeds, {sum(os.path.getsize(os.path.join(d, x)) for x in files) // 1024} KiB in {d}")
