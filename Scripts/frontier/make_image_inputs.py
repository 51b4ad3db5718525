#!/usr/bin/env python3
"""Procedurally drawn 224x224 colour images as calibration/evaluation inputs for two image models
in ../shared/models/real: the open-nsfw classifier (NHWC, BGR 0..255 minus the mean
[104, 117, 123], as its package feeds it) and the centerface detector (NCHW, BGR 0..255, 96x96:
the centre 192x192 averaged over 2x2 blocks).

No photographs are used. Each image is drawn from seeded randomness: a two-colour vertical
gradient background ("sky/ground"), smooth 1/f noise texture, then 3-12 filled ellipses,
rectangles and soft blobs in random colours (a third of them in skin-like tones, so the
classifier's two classes are both exercised), some blurred, then mild sensor noise. Values are
clipped to 0..255.

Usage: make_image_inputs.py OUTDIR [CALIB EVAL]  (writes nsfw_{calib,eval}.npy and
centerface_{calib,eval}.npy; 32 and 100 images by default)
"""
import os
import sys

import numpy as np

S = 224
SKIN = np.array([[224, 172, 105], [198, 134, 66], [241, 194, 125], [141, 85, 36], [255, 219, 172], [232, 190, 172]])


def smooth_noise(rng, power=2.0):
    f = np.fft.rfft2(rng.standard_normal((S, S)))
    fy, fx = np.fft.fftfreq(S)[:, None], np.fft.rfftfreq(S)[None, :]
    r = np.sqrt(fy ** 2 + fx ** 2)
    r[0, 0] = 1
    n = np.fft.irfft2(f / r ** (power / 2), s=(S, S))
    return (n - n.mean()) / (n.std() + 1e-9)


def image(rng):
    y = np.linspace(0, 1, S)[:, None, None]
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = (1 - y) * top + y * bottom + np.zeros((S, S, 3))
    img += smooth_noise(rng)[..., None] * rng.uniform(5, 40) * rng.uniform(0.5, 1.0, 3)
    yy, xx = np.mgrid[0:S, 0:S]
    for _ in range(rng.integers(3, 13)):
        colour = SKIN[rng.integers(len(SKIN))] * rng.uniform(0.8, 1.1) if rng.random() < 0.33 else rng.uniform(0, 255, 3)
        cy, cx = rng.uniform(0, S, 2)
        ry, rx = rng.uniform(8, 90, 2)
        kind = rng.integers(3)
        if kind == 0:
            a = rng.uniform(0, np.pi)
            u = ((xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)) / rx
            v = (-(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)) / ry
            m = (u ** 2 + v ** 2 <= 1).astype(float)
        elif kind == 1:
            m = ((abs(xx - cx) <= rx) & (abs(yy - cy) <= ry)).astype(float)
        else:
            m = np.exp(-((xx - cx) ** 2 / (2 * rx ** 2) + (yy - cy) ** 2 / (2 * ry ** 2)))
        shade = 1 + 0.15 * smooth_noise(rng, 3.0)
        img = img * (1 - m[..., None]) + m[..., None] * colour * shade[..., None]
    img += rng.normal(0, rng.uniform(0, 6), img.shape)
    return np.clip(img, 0, 255)


def main():
    out = sys.argv[1]
    calib, evaluation = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (32, 100)
    os.makedirs(out, exist_ok=True)
    mean = np.array([104, 117, 123], dtype=np.float64)
    for name, count, seed in (("calib", calib, 3003), ("eval", evaluation, 4004)):
        rng = np.random.default_rng(seed)
        rgb = np.stack([image(rng) for _ in range(count)])
        bgr = rgb[..., ::-1] - mean
        np.save(os.path.join(out, f"nsfw_{name}.npy"), bgr.astype(np.float32))
        small = rgb[:, 16:208, 16:208, ::-1].reshape(count, 96, 2, 96, 2, 3).mean((2, 4))
        np.save(os.path.join(out, f"centerface_{name}.npy"), np.ascontiguousarray(small.transpose(0, 3, 1, 2)).astype(np.float32))
        print(name, bgr.shape, small.shape)


if __name__ == "__main__":
    main()
