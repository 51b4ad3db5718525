#!/usr/bin/env python3
"""Output-aware residual binarization in numpy: an independent prototype of `fit: output`.

Written to check the Swift implementation (MBBinarize/OutputFit.swift, MBConvert/
OutputAwareConversion.swift) step by step on a real model, not to be used instead of it.
onnxruntime computes every layer's input, in the float model (X_f) and in the model whose
earlier layers are already binarized and corrected (X_q); numpy does the rest:

1. rows: im2col rows of a Conv (per group), rows of the last axis of a MatMul/Gemm input;
2. H = X_qᵀX_q + λI (λ = damping × mean diag), C = X_qᵀX_f, target w' = H⁻¹(C + λI)w
   (the minimizer of ‖X_f·w − X_q·q‖² + λ‖q − w‖² over float q);
3. start: K-bit residual binarization of w' (greedy, then alternating least-squares refit),
   tensor or per-channel scales;
4. GPTQ: columns in order, each entry to the nearest value its K levels can hold, the error
   divided by U[i,i] pushed through row i of U (upper Cholesky factor of H⁻¹);
5. least-squares level scales on (q − w')ᵀH(q − w'); 4-5 repeated, best kept;
6. correction of the layer's output statistics: `match` (per-channel affine so the binarized
   layer's output has the float model's mean/std on the calibration inputs; what
   `--calibrate` does), `ls` (per-channel least-squares gain and shift, y_f ≈ a·y_q + b), `bn` (BatchNormalization mean/var re-estimated from the binarized
   model's own batch statistics, the classic re-estimation), or `none`.

Usage: output_fit_prototype.py [--model M] [--calib X.npy] [--eval X.npy] [--bits 2]
           [--scale tensor|channel] [--objective asymmetric|symmetric|weights]
           [--correct match|bn|none] [--damping 0.01] [--bits-for PATTERN=K ...]
Prints per-layer relative output errors and the top-1 agreement on the evaluation inputs.
"""
import argparse
import fnmatch
import itertools
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

SHARED = "../shared/models"


def load(path):
    """The model with every Constant tensor moved to an initializer (so weights are editable)."""
    m = onnx.load(path)
    keep = []
    for n in m.graph.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(n.attribute[0].t)
            t.name = n.output[0]
            m.graph.initializer.append(t)
        else:
            keep.append(n)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    return m


class Runner:
    def __init__(self, model):
        self.model = model
        self.params = {t.name: numpy_helper.to_array(t).copy() for t in model.graph.initializer}

    def run(self, x, names, params=None):
        """Values of `names` (plus the graph outputs) on input x with `params` as initializers."""
        m = onnx.ModelProto()
        m.CopyFrom(self.model)
        p = params or self.params
        del m.graph.initializer[:]
        m.graph.initializer.extend(numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in p.items())
        have = {o.name for o in m.graph.output}
        for name in names:
            if name not in have:
                m.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.intra_op_num_threads = 1
        s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        outs = [o.name for o in m.graph.output]
        vals = []
        for i in range(0, len(x), 32):
            vals.append(s.run(outs, {m.graph.input[0].name: x[i:i + 32]}))
        return {n: np.concatenate([v[j] for v in vals]) for j, n in enumerate(outs)}


def attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def conv_rows(x, node, wshape):
    """im2col rows per group: array (groups, rows, Cg·kh·kw), columns in weight order."""
    n, c, h, w = x.shape
    g = attr(node, "group", 1)
    kh, kw = wshape[2], wshape[3]
    sh, sw = attr(node, "strides", [1, 1])
    dh, dw = attr(node, "dilations", [1, 1])
    pads = attr(node, "pads", [0, 0, 0, 0])
    assert attr(node, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"), "auto_pad not handled by the prototype"
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pads[1] + pads[3] - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
    cg = c // g
    # (n, g, cg, kh, kw, oh, ow) -> (g, n, oh, ow, cg·kh·kw)
    cols = cols.reshape(n, g, cg, kh, kw, oh, ow).transpose(1, 0, 5, 6, 2, 3, 4)
    return cols.reshape(g, n * oh * ow, cg * kh * kw)


def patterns(K):
    return np.array(list(itertools.product([-1.0, 1.0], repeat=K)))  # (2^K, K)


def nearest(x, scales, P):
    """x: (rows, d); scales: (rows, K). Returns the nearest values (rows, d) and patterns (rows, d, K)."""
    vals = scales @ P.T  # (rows, 2^K)
    idx = np.abs(x[..., None] - vals[:, None, :]).argmin(-1)
    return np.take_along_axis(vals, idx, 1), P[idx]


def start_binarize(W, K, per_channel, iters=40):
    """Greedy residual binarization of W (rows × d), then alternating LS refit. Returns scales (rows, K)."""
    P = patterns(K)
    R = W.copy()
    S = np.zeros((W.shape[0], K))
    for k in range(K):
        s = np.abs(R).mean(1) if per_channel else np.full(W.shape[0], np.abs(R).mean())
        S[:, k] = s
        R = R - np.where(R >= 0, 1, -1) * s[:, None]
    for _ in range(iters):
        _, B = nearest(W, S, P)  # (rows, d, K)
        S = ls_scales(B, W, None, per_channel)
    return S


def ls_scales(B, W, H, per_channel):
    """Least-squares scales for signs B (rows, d, K) against W (rows, d), metric H (d, d) or identity."""
    HB = B if H is None else np.einsum("ij,rjk->rik", H, B)
    A = np.einsum("rik,ril->rkl", B, HB)
    r = np.einsum("rik,ri->rk", HB, W)
    K = B.shape[-1]
    if not per_channel:
        A = A.sum(0, keepdims=True)
        r = r.sum(0, keepdims=True)
    A = A + 1e-12 * np.eye(K) * np.trace(A, axis1=1, axis2=2)[:, None, None]
    S = np.linalg.solve(A, r[..., None])[..., 0]
    S = np.abs(S)  # a negative scale is a flipped level: same values, stored >= 0
    return np.broadcast_to(S, (W.shape[0], K)).copy()


def gptq(Wt, S, U, P):
    """Signs column by column: Wt (groups, rg, d) targets, S (groups, rg, K), U (groups, d, d)."""
    W = Wt.copy()
    G, rg, d = W.shape
    Q = np.zeros_like(W)
    for i in range(d):
        vals = np.einsum("grk,pk->grp", S, P)
        idx = np.abs(W[:, :, i, None] - vals).argmin(-1)
        q = np.take_along_axis(vals, idx[..., None], -1)[..., 0]
        Q[:, :, i] = q
        err = (W[:, :, i] - q) / U[:, i, i][:, None]
        W[:, :, i + 1:] -= err[:, :, None] * U[:, None, i, i + 1:]
    return Q


def objective(Q, T, H):
    D = Q - T
    return float(np.einsum("grd,gde,gre->", D, H, D))


def fit_layer(w, rows_q, rows_f, K, per_channel, objective_kind, damping, rounds=3):
    """w: (O, d·g... ) reshaped to (G, rg, d); rows: (G, n, d). Returns fitted weights and errors."""
    G, rg, d = w.shape
    Hq = np.einsum("gni,gnj->gij", rows_q, rows_q)
    Cx = np.einsum("gni,gnj->gij", rows_q, rows_f)
    Hf = np.einsum("gni,gnj->gij", rows_f, rows_f)
    lam = damping * np.einsum("gii->g", Hq) / d
    I = np.eye(d)
    H = Hq + lam[:, None, None] * I
    if objective_kind == "asymmetric":
        T = np.einsum("gij,grj->gri", np.linalg.inv(H), np.einsum("gij,grj->gri", Cx + lam[:, None, None] * I, w))
    else:
        T = w.copy()
    if objective_kind == "weights":
        H = np.broadcast_to(I, (G, d, d)).copy()
    P = patterns(K)
    flat_t = T.reshape(G * rg, d)
    if per_channel == "gain":
        # One free gain per output channel (folded into the output correction that --calibrate
        # stores per channel anyway) times K tensor-wide level scales.
        gain = np.maximum(np.abs(flat_t).mean(1), 1e-12)
        S = start_binarize((flat_t / gain[:, None]).reshape(1, -1), K, False)
        S = gain[:, None] * S[:1]
    elif per_channel:
        S = start_binarize(flat_t, K, True)
    else:
        S = start_binarize(flat_t.reshape(1, -1), K, False)
        S = np.broadcast_to(S, (G * rg, K)).copy()
    S = S.reshape(G, rg, K)
    Q0, _ = nearest(flat_t, S.reshape(-1, K), P)
    Q = Q0.reshape(G, rg, d)
    best, best_obj = Q, objective(Q, T, H)
    if objective_kind != "weights":
        Hinv = np.linalg.inv(H)
        U = np.linalg.cholesky(Hinv).transpose(0, 2, 1)  # upper: Hinv = UᵀU
        for _ in range(rounds):
            Q = gptq(T, S, U, P)
            # signs of each level from the chosen values: re-derive patterns by nearest (same values)
            _, B = nearest(Q.reshape(-1, d), S.reshape(-1, K), P)
            B = B.reshape(G, rg, d, K)
            if per_channel == "gain":
                S = refit_gain(B, T, H, S)
            else:
                S = refit_output(B, T, H, per_channel)
            Q = np.einsum("grdk,grk->grd", B, S)
            o = objective(Q, T, H)
            if not o < best_obj * (1 - 1e-9):
                break
            best, best_obj = Q, o
    # relative output error on the undamped moments: ‖X_f w − X_q q‖² / ‖X_f w‖²
    num = (np.einsum("grd,gde,gre->", w, Hf, w) - 2 * np.einsum("grd,gde,gre->", best, Cx, w)
           + np.einsum("grd,gde,gre->", best, Hq, best))
    den = np.einsum("grd,gde,gre->", w, Hf, w)
    Qs, _ = nearest(T.reshape(-1, d), S.reshape(-1, K), P)
    return best, max(num, 0) / den, rg, S


def refit_gain(B, T, H, S, rounds=4):
    """Scales of the form gain[row] × level[k]: alternating least squares on Σ (q − t)ᵀH_g(q − t)."""
    G, rg, d, K = B.shape
    gain = np.abs(S).sum(-1).reshape(G, rg)
    for _ in range(rounds):
        level = refit_output(B * gain[..., None, None], T, H, False).reshape(G, rg, K)[0, 0]
        v = np.einsum("grdk,k->grd", B, level)
        Hv = np.einsum("gij,grj->gri", H, v)
        gain = np.maximum(np.einsum("gri,gri->gr", Hv, T) / np.maximum(np.einsum("gri,gri->gr", Hv, v), 1e-30), 1e-12)
    return gain[..., None] * level


def refit_output(B, T, H, per_channel):
    """LS scales per row (channel) or for the whole tensor on Σ (q − t)ᵀH_g(q − t)."""
    G, rg, d, K = B.shape
    HB = np.einsum("gij,grjk->grik", H, B)
    A = np.einsum("grik,gril->grkl", B, HB).reshape(G * rg, K, K)
    r = np.einsum("grik,gri->grk", HB, T).reshape(G * rg, K)
    if not per_channel:
        A = A.sum(0, keepdims=True)
        r = r.sum(0, keepdims=True)
    A = A + 1e-12 * np.eye(K) * np.trace(A, axis1=1, axis2=2)[:, None, None]
    S = np.abs(np.linalg.solve(A, r[..., None])[..., 0])
    return np.broadcast_to(S, (G * rg, K)).reshape(G, rg, K).copy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=f"{SHARED}/ch_ppocr_mobile_v2.0_cls_infer.onnx")
    ap.add_argument("--calib", default=f"{SHARED}/ch_ppocr_mobile_v2.0_cls_infer/calib_x.npy")
    ap.add_argument("--eval", default=f"{SHARED}/ch_ppocr_mobile_v2.0_cls_infer/eval_x.npy")
    ap.add_argument("--bits", type=int, default=2)
    ap.add_argument("--bits-for", action="append", default=[], help="PATTERN=K (weight or node name), first match wins")
    ap.add_argument("--float", action="append", default=[], help="weight name pattern kept float")
    ap.add_argument("--scale", choices=["tensor", "channel", "gain", "norm"], default="tensor",
                    help="gain: one gain per output channel (counted as free: folded into the calibration correction) × K tensor scales")
    ap.add_argument("--objective", choices=["asymmetric", "symmetric", "weights"], default="asymmetric")
    ap.add_argument("--correct", choices=["match", "ls", "bn", "none"], default="match")
    ap.add_argument("--damping", type=float, default=0.01)
    ap.add_argument("--trace", action="store_true", help="top-1 agreement on the evaluation inputs after each layer")
    ap.add_argument("--max-rows", type=int, default=0, help="sample at most this many rows per group (0: all)")
    args = ap.parse_args()

    model = load(args.model)
    runner = Runner(model)
    calib = np.load(args.calib).astype(np.float32)
    evalx = np.load(args.eval).astype(np.float32)
    nodes = list(model.graph.node)
    layers = [n for n in nodes if n.op_type in ("Conv", "MatMul", "Gemm") and n.input[1] in runner.params]
    consumers = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    floats = runner.run(calib, [n.input[0] for n in layers] + [n.output[0] for n in layers])
    params = {k: v.copy() for k, v in runner.params.items()}
    rng = np.random.default_rng(0)
    fe = runner.run(evalx, [])[model.graph.output[0].name] if args.trace else None
    total_bits = 0.0
    total_w = 0
    for node in layers:
        wname = node.input[1]
        w = runner.params[wname].astype(np.float64)
        K = args.bits
        for spec in args.bits_for:
            pat, k = spec.rsplit("=", 1)
            if fnmatch.fnmatch(wname, pat) or fnmatch.fnmatch(node.name, pat):
                K = int(k)
                break
        if any(fnmatch.fnmatch(wname, p) for p in args.float):
            total_bits += 32 * w.size
            total_w += w.size
            continue
        cur = runner.run(calib, [node.input[0]], params)
        xq, xf = cur[node.input[0]].astype(np.float64), floats[node.input[0]].astype(np.float64)
        if node.op_type == "Conv":
            g = attr(node, "group", 1)
            rq, rf = conv_rows(xq, node, w.shape), conv_rows(xf, node, w.shape)
            W = w.reshape(g, w.shape[0] // g, -1)
        else:
            rq, rf = xq.reshape(1, -1, xq.shape[-1]), xf.reshape(1, -1, xf.shape[-1])
            gemm_t = node.op_type == "Gemm" and attr(node, "transB", 0)
            W = w[None] if gemm_t else w.T[None]  # rows = outputs (Gemm transB: (out, in); MatMul: (in, out))
        if args.max_rows and rq.shape[1] > args.max_rows:
            pick = rng.choice(rq.shape[1], args.max_rows, replace=False)
            rq, rf = rq[:, pick], rf[:, pick]
        if args.scale == "norm":
            # Rows divided by their mean |w|, fitted with tensor scales, multiplied back (the
            # per-channel factor is what the output correction restores); the error printed is
            # the normalized problem's.
            n = np.maximum(np.abs(W).mean(-1, keepdims=True), 1e-12)
            Q, rel, rg, S = fit_layer(W / n, rq, rf, K, False, args.objective, args.damping)
            Q = Q * n
        else:
            Q, rel, rg, S = fit_layer(W, rq, rf, K, {"channel": True, "tensor": False}.get(args.scale, args.scale),
                                      args.objective, args.damping)
        q = Q.reshape(w.shape) if node.op_type == "Conv" else (Q[0] if gemm_t else Q[0].T)
        params[wname] = q.astype(np.float32)
        nscales = Q.shape[0] * Q.shape[1] if args.scale == "channel" else 1
        total_bits += K * w.size + 16 * K * nscales
        total_w += w.size
        # Correct the output statistics.
        out = node.output[0]
        bn = [c for c in consumers.get(out, []) if c.op_type == "BatchNormalization"]
        if args.correct != "none" and bn and node.op_type == "Conv":
            y = runner.run(calib, [out], params)[out].astype(np.float64)
            b = bn[0]
            gamma, beta, mean, var = (params[b.input[i]].astype(np.float64) for i in (1, 2, 3, 4))
            eps = attr(b, "epsilon", 1e-5)
            mq, vq = y.mean((0, 2, 3)), y.var((0, 2, 3))
            if args.correct == "bn":
                params[b.input[3]], params[b.input[4]] = mq.astype(np.float32), vq.astype(np.float32)
            else:
                yf = floats[out].astype(np.float64)
                mf, vf = yf.mean((0, 2, 3)), yf.var((0, 2, 3))
                if args.correct == "match":
                    a = np.sqrt((vf + 1e-12) / (vq + 1e-12))
                else:  # least squares: y_f ≈ a·y_q + sh per channel
                    cov = ((yf - mf[None, :, None, None]) * (y - mq[None, :, None, None])).mean((0, 2, 3))
                    a = cov / (vq + 1e-12)
                sh = mf - a * mq
                # BN(a·y + sh) = BN' (y) with gamma' = gamma·a, mean' = (mean − sh)/a
                params[b.input[1]] = (gamma * a).astype(np.float32)
                params[b.input[3]] = ((mean - sh) / a).astype(np.float32)
        elif args.correct in ("match", "ls") and not bn:
            # No BatchNormalization (folded by the exporter): y' = a·y + sh on the layer's own
            # output channels, folded into its weight rows and bias (what --calibrate stores as Mul/Add).
            y = runner.run(calib, [out], params)[out].astype(np.float64)
            yf = floats[out].astype(np.float64)
            axes = (0,) + tuple(range(2, y.ndim))
            mq, vq, mf, vf = y.mean(axes), y.var(axes), yf.mean(axes), yf.var(axes)
            if args.correct == "match":
                a = np.sqrt((vf + 1e-12) / (vq + 1e-12))
            else:
                sh_ = (-1,) + (1,) * (y.ndim - 2)
                cov = ((yf - mf.reshape(sh_)) * (y - mq.reshape(sh_))).mean(axes)
                a = cov / (vq + 1e-12)
            sh = mf - a * mq
            rows_axis = 0 if (node.op_type == "Conv" or gemm_t) else 1
            qa = params[wname].astype(np.float64)
            qa = qa * (a.reshape((-1,) + (1,) * (qa.ndim - 1)) if rows_axis == 0 else a[None, :])
            params[wname] = qa.astype(np.float32)
            bname = node.input[2] if len(node.input) > 2 and node.input[2] else None
            b0 = params[bname].astype(np.float64) if bname else np.zeros_like(a)
            if bname is None:
                raise SystemExit(f"{node.name}: no bias to fold the correction into")
            params[bname] = (a * b0 + sh).astype(np.float32)
        line = f"{wname:32s} {str(tuple(w.shape)):18s} K={K} rows={rq.shape[1]:7d} rel.out.err={rel:.4f}"
        if args.trace:
            qe = runner.run(evalx, [], params)[model.graph.output[0].name]
            agree_now = (fe.argmax(1) == qe.argmax(1)).mean()
            line += f"  eval agreement so far {100 * agree_now:.1f} %"
        print(line, flush=True)

    ref_path = args.eval.replace("eval_x.npy", "eval_float_probs.npy")
    ref = np.load(ref_path) if "eval_x" in args.eval and os.path.exists(ref_path) else None
    out_name = model.graph.output[0].name
    fl = runner.run(evalx, [])[out_name]
    qv = runner.run(evalx, [], params)[out_name]
    if ref is not None:
        assert np.allclose(fl, ref, atol=1e-4)
    agree = (fl.argmax(1) == qv.argmax(1)).mean()
    cos = np.mean(np.sum(fl * qv, 1) / (np.linalg.norm(fl, axis=1) * np.linalg.norm(qv, axis=1)))
    print(f"stored bits/w {total_bits / total_w:.3f} (f16 scales)  top-1 agreement {100 * agree:.1f} %  cosine {cos:.4f}")


if __name__ == "__main__":
    sys.exit(main())
