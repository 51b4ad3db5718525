#!/usr/bin/env python3
"""Synthesized speech-like audio as calibration/evaluation inputs for the two audio CNNs in
../shared/models/real (sig_bak_ovr: DNSMOS, raw 16 kHz waveform; embedding_model: a wake-word
speech embedding that reads log-mel windows).

No recordings are used. Each clip is made from seeded randomness, by source-filter synthesis:
- a voiced source: a glottal pulse train whose pitch follows a slow random contour (80-260 Hz,
  with jitter), shaped by a -12 dB/octave tilt; unvoiced stretches use white noise;
- "syllables" of 120-400 ms, each a vowel (three formants from a table of English vowels,
  bandwidths 60-120 Hz) applied in the frequency domain, with a raised-cosine envelope and
  pauses of 0-300 ms between them;
- then a degradation, drawn per clip: additive white, pink or brown noise or a hum (SNR
  -5...35 dB), a room (exponentially decaying noise impulse response, RT60 0.1-0.8 s),
  clipping, or none.
Levels are normalized to a peak of 0.3-0.95.

The log-mel windows for the embedding model approximate openWakeWord's front end (25 ms Hann
window, 10 ms hop, 512-point FFT, 32 triangular mel bands 60-3800 Hz on the power spectrum,
10·log10, then /10 + 2, as the package does before the embedding model) and take 76 frames
from a random position of a clip. This is an approximation of the package's melspectrogram.onnx
(which is not in ../shared), close enough to feed the model speech-like inputs.

Usage: make_audio_inputs.py OUTDIR   (writes dnsmos_calib.npy [64,144160], dnsmos_eval.npy
[200,144160], wakeword_calib.npy [64,76,32,1], wakeword_eval.npy [200,76,32,1])
"""
import os
import sys

import numpy as np

SR = 16000
VOWELS = [  # F1, F2, F3 (Hz), adult averages of English vowels
    (270, 2290, 3010), (390, 1990, 2550), (530, 1840, 2480), (660, 1720, 2410), (730, 1090, 2440),
    (570, 840, 2410), (440, 1020, 2240), (300, 870, 2240), (640, 1190, 2390), (490, 1350, 1690),
]


def syllable(rng, n):
    t = np.arange(n) / SR
    voiced = rng.random() < 0.8
    if voiced:
        f0 = rng.uniform(80, 260) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t + rng.uniform(0, 6)))
        f0 *= 1 + 0.01 * rng.standard_normal(n)
        phase = np.cumsum(f0) / SR
        src = np.diff(np.floor(phase), prepend=0.0)  # one pulse per period
        src = src - src.mean()
    else:
        src = rng.standard_normal(n) * 0.3
    spec = np.fft.rfft(src)
    f = np.fft.rfftfreq(n, 1 / SR)
    env = np.ones_like(f)
    formants = VOWELS[rng.integers(len(VOWELS))]
    for fc in formants:
        fc = fc * rng.uniform(0.9, 1.15)
        bw = rng.uniform(60, 120)
        env *= 1 / np.sqrt((1 - (f / fc) ** 2) ** 2 + (f * bw / fc ** 2) ** 2)
    if voiced:
        env /= np.sqrt(1 + (f / 200) ** 4)  # spectral tilt of the glottal source
    else:
        env *= (f / 4000) ** 2 / (1 + (f / 4000) ** 2)  # fricative-like
    y = np.fft.irfft(spec * env, n)
    w = np.sin(np.pi * np.arange(n) / n) ** 0.5
    return y / (np.abs(y).max() + 1e-9) * w * rng.uniform(0.3, 1.0)


def colored(rng, n, kind):
    x = rng.standard_normal(n)
    if kind == "white":
        return x
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    shape = 1 / np.sqrt(f) if kind == "pink" else 1 / f
    return np.fft.irfft(np.fft.rfft(x) * shape, n)


def clip(rng, n):
    y = np.zeros(n)
    pos = int(rng.uniform(0, 0.5) * SR)
    while pos < n:
        ln = int(rng.uniform(0.12, 0.4) * SR)
        seg = syllable(rng, ln)[: n - pos]
        y[pos:pos + len(seg)] += seg
        pos += len(seg) + int(rng.uniform(0, 0.3) * SR)
    kind = rng.choice(["none", "white", "pink", "brown", "hum", "room", "clip"])
    if kind in ("white", "pink", "brown", "hum"):
        noise = colored(rng, n, kind) if kind != "hum" else sum(
            np.sin(2 * np.pi * 50 * h * np.arange(n) / SR + rng.uniform(0, 6)) / h for h in range(1, 6))
        snr = rng.uniform(-5, 35)
        noise *= np.sqrt(np.mean(y ** 2) / (np.mean(noise ** 2) + 1e-12) / 10 ** (snr / 10))
        y = y + noise
    elif kind == "room":
        rt60 = rng.uniform(0.1, 0.8)
        m = int(rt60 * SR)
        ir = rng.standard_normal(m) * np.exp(-6.9 * np.arange(m) / m)
        ir[0] = 1
        y = np.fft.irfft(np.fft.rfft(y, n + m) * np.fft.rfft(ir, n + m), n + m)[:n]
    elif kind == "clip":
        lim = rng.uniform(0.1, 0.5) * np.abs(y).max()
        y = np.clip(y, -lim, lim)
    return (y / (np.abs(y).max() + 1e-9) * rng.uniform(0.3, 0.95)).astype(np.float32)


def mel_filters(n_fft=512, n_mels=32, fmin=60, fmax=3800):
    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    def hz(m):
        return 700 * (10 ** (m / 2595) - 1)

    pts = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    f = np.fft.rfftfreq(n_fft, 1 / SR)
    fb = np.zeros((n_mels, len(f)))
    for i in range(n_mels):
        lo, c, hi = pts[i], pts[i + 1], pts[i + 2]
        fb[i] = np.clip(np.minimum((f - lo) / (c - lo), (hi - f) / (hi - c)), 0, None)
    return fb


def logmel_window(rng, y, frames=76):
    win, hop, n_fft = 400, 160, 512
    need = (frames - 1) * hop + win
    start = rng.integers(0, len(y) - need)
    seg = y[start:start + need].astype(np.float64)
    idx = np.arange(frames)[:, None] * hop + np.arange(win)[None, :]
    spec = np.abs(np.fft.rfft(seg[idx] * np.hanning(win), n_fft)) ** 2
    m = 10 * np.log10(np.maximum(spec @ mel_filters().T, 1e-10))
    return (m / 10 + 2).astype(np.float32)[:, :, None]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, count, seed in (("calib", 64, 1001), ("eval", 200, 2002)):
        rng = np.random.default_rng(seed)
        clips = np.stack([clip(rng, 144160) for _ in range(count)])
        np.save(os.path.join(out, f"dnsmos_{name}.npy"), clips)
        np.save(os.path.join(out, f"wakeword_{name}.npy"), np.stack([logmel_window(rng, c) for c in clips]))
        print(name, clips.shape)


if __name__ == "__main__":
    main()
