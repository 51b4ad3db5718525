#!/usr/bin/env python3
"""Trains two small glyph classifiers on characters rendered with this machine's fonts and exports
them to ONNX, with held-out calibration and evaluation inputs: real classifiers to measure the
size/agreement frontier on (`mbbench frontier`). Not part of the product; needs torch (CPU) and
Pillow in the virtual environment:

    .venv/bin/pip install pillow torch    # torch's CPU wheel
    .venv/bin/python Scripts/frontier/train_glyph_classifier.py OUTDIR

Data: 32 classes (digits 2-9 and A-Z without I and O, so no class is another's lookalike), each
image 1x32x32 in [0, 1]: one character from one of the TrueType fonts under /usr/share/fonts
(DejaVu and Liberation on Debian, every style), 14-26 px, rotated up to +-12 degrees, sheared,
shifted, on a background of random grey level with a gradient, 0-3 random strokes of clutter,
blur and sensor noise, sometimes inverted. Every image is drawn from a seeded generator: training
(`--train`, default 24,000), then 64 calibration and 200 evaluation images drawn independently.

Models (seeded initialisation, AdamW, cosine schedule, label smoothing 0.05):
- glyphnet_bn: MobileNetV3-style: 3x3 stride-2 stem, seven inverted-residual blocks (1x1 expand, 3x3/5x5
  depthwise, squeeze-excite on five, 1x1 project; residual where shapes match), BatchNorm after
  every convolution, ReLU / HardSwish, global pooling, two Linear layers.
- glyphnet_ln: the same blocks without BatchNorm: a channel LayerNorm (LayerNormalization over C
  between two Transposes) after the stem, each 1x1 expansion and projection and the head
  convolution, none after the depthwise ones; biases on every convolution.
  (Trained here it stayed at chance for three epochs; not used for the frontier tables.)
- glyphnet_plain: no normalization at all: six 3x3 convolutions with biases and ReLU (16, 32,
  32, 64, 64, 128 channels; 2x2 max pooling after the first, third and fifth), global pooling,
  two Linear layers; He-normal initialisation.
GlyphNet's convolutions start He-normal (fan-out), its Linear layers N(0, 0.01^2), as
torchvision's MobileNetV3.

The README's frontier models: `--models plain --train 24000 --epochs 15 --threads 1` (99.0 % on
the evaluation images, int8 per channel keeps every answer; the first one, 12,000 images and 10
epochs, was under-trained at 95.0 %) and `--models bn --train 24000 --epochs 15 --threads 1` (the
first one, `--train 12000 --epochs 14`, was under-trained too). The calibration, evaluation and
held-out images come from their own seeds, so they do not change with `--train` or `--models`.

Writes OUTDIR/glyphnet_{bn,ln,plain}.onnx (opset 17, symbolic batch), OUTDIR/glyph_{calib,eval}_x.npy
(float32 N x 1 x 32 x 32), OUTDIR/glyph_{calib,eval}_y.npy (labels) and OUTDIR/glyphnet_MODELS.json
(training and held-out accuracy of both models, the seed, the fonts used). `--holdout 1000` also
writes OUTDIR/glyph_holdout_{x,y}.npy: 1,000 more images from seed 4242, the README's second check
set. `--models ""` trains nothing and only renders the calibration, evaluation and held-out sets.
"""
import argparse
import glob
import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# The held-out check set's seed: no other set uses it (training uses --seed, calibration and
# evaluation --seed + 1 and + 2).
HOLDOUT_SEED = 4242
CLASSES = list("23456789ABCDEFGHJKLMNPQRSTUVWXYZ")
SIZE = 32


def fonts():
    paths = sorted(glob.glob("/usr/share/fonts/truetype/**/*.ttf", recursive=True))
    # Math fonts draw Latin letters too, but keep the set to text faces.
    return [p for p in paths if "Math" not in os.path.basename(p)]


def render(rng, font_paths, cache):
    label = rng.randrange(len(CLASSES))
    path = rng.choice(font_paths)
    px = rng.randint(14, 26)
    key = (path, px)
    if key not in cache:
        cache[key] = ImageFont.truetype(path, px)
    font = cache[key]
    big = 64
    glyph = Image.new("L", (big, big), 0)
    d = ImageDraw.Draw(glyph)
    box = d.textbbox((0, 0), CLASSES[label], font=font)
    w, h = box[2] - box[0], box[3] - box[1]
    d.text(((big - w) / 2 - box[0], (big - h) / 2 - box[1]), CLASSES[label], fill=255, font=font)
    shear = rng.uniform(-0.25, 0.25)
    glyph = glyph.transform((big, big), Image.AFFINE, (1, shear, -shear * big / 2, 0, 1, 0), resample=Image.BILINEAR)
    glyph = glyph.rotate(rng.uniform(-12, 12), resample=Image.BILINEAR)
    off = (big - SIZE) // 2
    dx, dy = rng.randint(-3, 3), rng.randint(-3, 3)
    glyph = glyph.crop((off + dx, off + dy, off + dx + SIZE, off + dy + SIZE))
    mask = np.asarray(glyph, dtype=np.float32) / 255.0

    bg = rng.uniform(0.0, 0.55)
    fg = min(1.0, bg + rng.uniform(0.35, 0.9))
    yy = np.linspace(-0.5, 0.5, SIZE)[:, None]
    xx = np.linspace(-0.5, 0.5, SIZE)[None, :]
    gradient = rng.uniform(-0.15, 0.15) * yy + rng.uniform(-0.15, 0.15) * xx
    img = bg + gradient + (fg - bg) * mask
    clutter = Image.new("L", (SIZE, SIZE), 0)
    cd = ImageDraw.Draw(clutter)
    for _ in range(rng.randint(0, 3)):
        cd.line([(rng.uniform(0, SIZE), rng.uniform(0, SIZE)), (rng.uniform(0, SIZE), rng.uniform(0, SIZE))],
                fill=rng.randint(60, 160), width=rng.randint(1, 2))
    img = img + (fg - bg) * 0.6 * np.asarray(clutter, dtype=np.float32) / 255.0
    out = Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.9)))
    a = np.asarray(out, dtype=np.float32) / 255.0
    a = a + np.float32(rng.uniform(0.0, 0.06)) * np.asarray(np.random.default_rng(rng.randrange(1 << 30)).standard_normal((SIZE, SIZE)), dtype=np.float32)
    if rng.random() < 0.2:
        a = 1.0 - a
    return np.clip(a, 0, 1).astype(np.float32), label


def dataset(n, seed, font_paths):
    rng = random.Random(seed)
    cache = {}
    xs = np.zeros((n, 1, SIZE, SIZE), dtype=np.float32)
    ys = np.zeros(n, dtype=np.int64)
    for i in range(n):
        xs[i, 0], ys[i] = render(rng, font_paths, cache)
    return xs, ys


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels at every position (exports as Transpose, LayerNormalization, Transpose)."""

    def __init__(self, c):
        super().__init__()
        self.norm = nn.LayerNorm(c)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def norm(c, kind):
    return {"bn": lambda: nn.BatchNorm2d(c), "ln": lambda: ChannelLayerNorm(c), "none": nn.Identity}[kind]()


class SqueezeExcite(nn.Module):
    def __init__(self, c):
        super().__init__()
        hidden = max(8, c // 4)
        self.reduce = nn.Conv2d(c, hidden, 1)
        self.expand = nn.Conv2d(hidden, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.relu(self.reduce(s))
        return x * F.hardsigmoid(self.expand(s))


class Block(nn.Module):
    def __init__(self, cin, exp, cout, k, stride, se, act, kind):
        super().__init__()
        bias = kind != "bn"
        self.expand = nn.Sequential(nn.Conv2d(cin, exp, 1, bias=bias), norm(exp, kind), act())
        # The depthwise convolution has no norm of its own in the LayerNorm model (as in ConvNeXt).
        self.depthwise = nn.Sequential(nn.Conv2d(exp, exp, k, stride, k // 2, groups=exp, bias=bias),
                                       nn.BatchNorm2d(exp) if kind == "bn" else nn.Identity(), act())
        self.se = SqueezeExcite(exp) if se else nn.Identity()
        self.project = nn.Sequential(nn.Conv2d(exp, cout, 1, bias=bias), norm(cout, kind))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class GlyphNet(nn.Module):
    # (in, expand, out, kernel, stride, squeeze-excite, activation)
    BLOCKS = [(16, 32, 16, 3, 1, True, nn.ReLU), (16, 64, 24, 3, 1, False, nn.ReLU), (24, 72, 24, 3, 1, False, nn.ReLU),
              (24, 96, 40, 5, 2, True, nn.Hardswish), (40, 120, 40, 5, 1, True, nn.Hardswish),
              (40, 160, 48, 5, 1, True, nn.Hardswish), (48, 192, 64, 5, 2, True, nn.Hardswish)]

    def __init__(self, kind):
        super().__init__()
        bias = kind != "bn"
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1, bias=bias), norm(16, kind), nn.Hardswish())
        self.blocks = nn.Sequential(*[Block(*b, kind) for b in self.BLOCKS])
        self.head = nn.Sequential(nn.Conv2d(64, 256, 1, bias=bias), norm(256, kind), nn.Hardswish())
        self.classifier = nn.Sequential(nn.Linear(256, 128), nn.Hardswish(), nn.Dropout(0.1), nn.Linear(128, len(CLASSES)))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class PlainNet(nn.Module):
    """A VGG-style network with no normalization at all: 3x3 convolutions with biases, ReLU, max pooling."""

    def __init__(self):
        super().__init__()
        layers, cin = [], 1
        for cout, pool in ((16, True), (32, False), (32, True), (64, False), (64, True), (128, False)):
            layers += [nn.Conv2d(cin, cout, 3, 1, 1), nn.ReLU()] + ([nn.MaxPool2d(2)] if pool else [])
            cin = cout
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, len(CLASSES)))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def train(kind, xs, ys, epochs, seed, log):
    torch.manual_seed(seed)
    model = PlainNet() if kind == "plain" else GlyphNet(kind)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.02)
    steps = epochs * math.ceil(len(xs) / 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    x = torch.from_numpy(xs)
    y = torch.from_numpy(ys)
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        started = time.process_time()
        model.train()
        order = torch.randperm(len(x), generator=g)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(x), 128):
            idx = order[i:i + 128]
            out = model(x[idx])
            loss = F.cross_entropy(out, y[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += len(idx)
            correct += (out.argmax(1) == y[idx]).sum().item()
            loss_sum += loss.item() * len(idx)
        log(f"{kind} epoch {epoch + 1}/{epochs}: loss {loss_sum / total:.4f}, training accuracy {correct / total:.4f} "
            f"({time.process_time() - started:.0f} s CPU)")
    model.eval()
    return model


def accuracy(model, xs, ys):
    with torch.no_grad():
        return float((model(torch.from_numpy(xs)).argmax(1).numpy() == ys).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--train", type=int, default=24000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--models", default="bn,plain", help="which models to train (bn, ln, none, plain), comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--holdout", type=int, default=0,
                    help="also render this many held-out images from seed 4242 (glyph_holdout_{x,y}.npy), a second check set")
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    torch.set_num_threads(args.threads)
    font_paths = fonts()

    def log(s):
        print(s, flush=True)

    models = [k for k in args.models.split(",") if k]
    train_n = args.train if models else 0
    log(f"{len(font_paths)} fonts; rendering {train_n} training, 64 calibration, 200 evaluation, {args.holdout} held-out images")
    train_x, train_y = dataset(train_n, args.seed, font_paths)
    calib_x, calib_y = dataset(64, args.seed + 1, font_paths)
    eval_x, eval_y = dataset(200, args.seed + 2, font_paths)
    for name, a in (("glyph_calib_x", calib_x), ("glyph_calib_y", calib_y), ("glyph_eval_x", eval_x), ("glyph_eval_y", eval_y)):
        np.save(os.path.join(args.outdir, name + ".npy"), a)
    if args.holdout:
        hold_x, hold_y = dataset(args.holdout, HOLDOUT_SEED, font_paths)
        np.save(os.path.join(args.outdir, "glyph_holdout_x.npy"), hold_x)
        np.save(os.path.join(args.outdir, "glyph_holdout_y.npy"), hold_y)
    if not models:
        return
    summary = {"seed": args.seed, "train": args.train, "epochs": args.epochs, "classes": "".join(CLASSES),
               "fonts": [os.path.basename(p) for p in font_paths], "models": {}}
    for kind in models:
        model = train(kind, train_x, train_y, args.epochs, args.seed, log)
        acc = {"train": accuracy(model, train_x[:4000], train_y[:4000]), "calibration": accuracy(model, calib_x, calib_y),
               "evaluation": accuracy(model, eval_x, eval_y)}
        if args.holdout:
            acc["holdout"] = accuracy(model, hold_x, hold_y)
        log(f"{kind}: accuracy {acc}")
        path = os.path.join(args.outdir, f"glyphnet_{kind}.onnx")
        torch.onnx.export(model, torch.from_numpy(eval_x[:1]), path, input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}}, opset_version=17, dynamo=False)
        summary["models"][f"glyphnet_{kind}"] = {"accuracy": acc, "parameters": sum(p.numel() for p in model.parameters())}
    with open(os.path.join(args.outdir, f"glyphnet_{args.models.replace(',', '_')}.json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
