#!/usr/bin/env python3
"""HBB.md (residual binarization, Middle-Out mask) in numpy: the baseline of `mbbench binarize`.

Follows HBB.md section 3 to the letter, vectorized the ordinary numpy way: per width, the key
| |T| - mean |T| over the remaining entries | in float64, the round(p * n) smallest (half away
from zero) found with np.partition plus an exact tie rule (lower index first), the last width
takes the rest; then each level's scale is the float64 mean of |E| over its active entries,
stored as float32. Rows are the groups that share scales (one row for tensor scales, one per
output channel for channel scales).

Usage: binarize_numpy.py TENSOR.npy --mix 0.7,0.2,0.1@1,2,3 [--channel] [--repeats 3]
Prints one JSON object: seconds (best of the repeats), values_per_second, normalized_error.
"""
import argparse
import json
import sys
import time

import numpy as np


def binarize(T, bits, fractions):
    """T: 2-D float32 (groups x entries). Returns T_hat (float32) and the mask."""
    groups, n = T.shape
    A = np.abs(T)
    M = np.zeros(T.shape, dtype=np.uint8)
    rows = np.arange(groups)[:, None]
    # Column indices of the remaining entries of each row, ascending (every row has as many).
    remaining = np.broadcast_to(np.arange(n), (groups, n))
    used = [(b, p) for b, p in zip(bits, fractions) if p > 0]
    for i, (b, p) in enumerate(used):
        if i == len(used) - 1:
            M[rows, remaining] = b
            break
        left = remaining.shape[1]
        c = min(int(np.floor(p * n + 0.5)), left)
        if c == 0:
            continue
        a = A[rows, remaining].astype(np.float64)
        m = a.sum(axis=1) / left
        key = np.abs(a - m[:, None])
        if c < left:
            # The c smallest keys, ties by lower index: everything below the c-th smallest key,
            # then the first entries equal to it (introselect, O(n), instead of a full sort).
            kth = np.partition(key, c - 1, axis=1)[:, c - 1:c]
            below = key < kth
            need = c - below.sum(axis=1, keepdims=True)
            equal = key == kth
            chosen = below | (equal & (np.cumsum(equal, axis=1) <= need))
        else:
            chosen = np.ones(key.shape, dtype=bool)
        M[rows, remaining[chosen].reshape(groups, c)] = b
        remaining = remaining[~chosen].reshape(groups, left - c)
    E = T.copy()
    T_hat = np.zeros_like(T)
    for k in range(1, int(M.max()) + 1):
        active = M >= k
        count = active.sum(axis=1)
        mu = (np.where(active, np.abs(E).astype(np.float64), 0.0).sum(axis=1) / np.maximum(count, 1)).astype(np.float32)
        step = np.where(E >= 0, mu[:, None], -mu[:, None]) * active
        E -= step
        T_hat += step
    return T_hat, M


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tensor")
    ap.add_argument("--mix", default="0.7,0.2,0.1@1,2,3")
    ap.add_argument("--channel", action="store_true", help="one set of scales per row (axis 0)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    fractions, bits = args.mix.split("@")
    fractions = [float(x) for x in fractions.split(",")]
    bits = [int(x) for x in bits.split(",")]
    T = np.load(args.tensor).astype(np.float32)
    T2 = T.reshape(T.shape[0], -1) if args.channel else T.reshape(1, -1)
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        T_hat, _ = binarize(T2, bits, fractions)
        best = min(best, time.perf_counter() - start)
    err = float(np.linalg.norm((T2 - T_hat).astype(np.float64)) / np.linalg.norm(T2.astype(np.float64)))
    json.dump({"seconds": best, "values_per_second": T.size / best, "normalized_error": err,
               "numpy": np.__version__}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
