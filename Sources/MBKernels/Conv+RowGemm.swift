import CFloatKernels

extension Conv {
    /// How a (non-depthwise) convolution feeds `RowGemm`.
    public enum RowGemmPath: Sendable, CaseIterable {
        /// 1×1, stride 1, no padding: the input planes are the rows of B.
        case pointwise
        /// 1-D or 2-D, any stride and dilation: a zero-padded copy of the input split into
        /// stride phases, whose rows, shifted by each tap, are the rows of B. The product is
        /// computed on the padded width over the stride (the extra columns are dropped when the
        /// result is compacted into the output).
        case shifted
        /// Anything else: an im2col matrix.
        case im2col
        /// 1-D or 2-D, any stride and dilation, AVX-512 only: the im2col matrix is never built;
        /// RowGemm gathers each block of it from the input while packing (`fk_gemm_conv2d`), so
        /// there is no padded copy, no wider product to compact and no wasted columns. Without
        /// AVX-512 this path runs `.im2col`.
        case implicit
    }

    /// The path for `g`. Measured (`mbbench conv --cpu-time`, Zen 4): shifted computes
    /// `wq - ow` wasted columns per output row for every output channel (`wq`: the padded width
    /// over the stride) and then compacts the result (`m·n` floats read and written again);
    /// im2col copies the input once per tap (`k·n` floats, contiguous runs at stride 1, gathers
    /// otherwise). Shifted wins while `outPerGroup * (wq - ow) <= 30 * ow` (SqueezeNet at 55×55
    /// and 27×27, YOLO/U-Net/ResNet layers at strides 1 and 2, first layers on 3 channels);
    /// im2col beyond (3×3 with 256 or 384 channels at 13×13), and at stride 1 when the
    /// reduction is at most a quarter of the output channels (its matrix is then smaller than the
    /// compaction). 3-D kernels take im2col.
    ///
    /// On AVX-512 (`implicitAvailable`) shifted computes no wasted columns: its product reads the
    /// phase planes with a pitch (`fk_gemm_rows_pitched`) and packs compact columns, so there is
    /// nothing to compact and it is taken for every 1-D/2-D layer except stride-2 layers with 8 or
    /// more input channels per group and at most 9 taps, which take `.implicit` (no phase copy
    /// of a large input; 10-15 % faster on YOLO's stride-2 layers). Measured with
    /// `mbbench conv --set all --cpu-time` (Zen 4): pitched shifted beat implicit by 0-25 % on
    /// every stride-1 shape (SqueezeNet, ResNet, U-Net, YOLO, AlexNet, dilated) and on first
    /// layers (3 channels, 3×3/2 and 7×7/2), and im2col everywhere.
    public static func rowGemmPath(_ g: ConvGeometry, implicitAvailable: Bool = fk_has_avx512() != 0) -> RowGemmPath {
        if isPointwise(g) { return .pointwise }
        let d = g.dims3
        guard d.kernel.0 == 1, d.input.0 == 1, d.strides.0 == 1 else { return .im2col }
        if implicitAvailable {
            let stride2 = max(d.strides.1, d.strides.2) == 2
            return stride2 && g.inPerGroup >= 8 && d.kernelSize <= 9 ? .implicit : .shifted
        }
        let ow = d.output.2, wq = (d.input.2 + d.pads.2 + g.padEnd3.2 + d.strides.2 - 1) / d.strides.2
        let kRows = g.inPerGroup * d.kernelSize
        if d.strides == (1, 1, 1) && wq != ow && 4 * kRows <= g.outPerGroup { return .im2col }
        return g.outPerGroup * (wq - ow) <= 30 * ow ? .shifted : .im2col
    }

    /// Convolution through `RowGemm` (groups run one after another, each GEMM split across
    /// `threads`; batches of two or more images per thread split by image on the paths that need
    /// no scratch). Only when `RowGemm.isAvailable`; `path` overrides the choice (tests).
    /// `scratch` nil: a `KernelScratch` of its own (the per-image calls of a split batch).
    static func rowGemm(
        _ g: ConvGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, threads: Int, scratch: KernelScratch?, path: RowGemmPath? = nil
    ) {
        var path = path ?? rowGemmPath(g)
        if path == .implicit && fk_has_avx512() == 0 { path = .im2col }
        let d = g.dims3
        let inSize = d.inputSize, outSize = d.outputSize
        let kRows = g.inPerGroup * d.kernelSize
        if threads > 1 && g.batch >= 2 * threads && (path == .pointwise || path == .implicit) {
            // A batch of at least two images per thread: whole images per thread (no split
            // inside small products, and each thread keeps to the same images in every layer).
            let box = UncheckedSendable((input, output))
            Parallel.forEach(g.batch, threads: threads) { n in
                let (input, output) = box.value
                var one = g
                one.batch = 1
                rowGemm(one, input: input + n * g.inChannels * inSize, weights: weights, bias: bias,
                        output: output + n * g.outChannels * outSize, activation: activation, threads: 1, scratch: nil, path: path)
            }
            return
        }
        let scratch = scratch ?? KernelScratch()
        defer { withExtendedLifetime(scratch) {} }
        let rows = scratch.rowPointers(kRows)
        for n in 0..<g.batch {
            for grp in 0..<g.groups {
                let x = input + (n * g.inChannels + grp * g.inPerGroup) * inSize
                let y = output + (n * g.outChannels + grp * g.outPerGroup) * outSize
                let w = weights + grp * g.outPerGroup * kRows
                let b = bias.map { $0 + grp * g.outPerGroup }
                switch path {
                case .pointwise:
                    for p in 0..<kRows { rows[p] = x + p * inSize }
                    RowGemm.forward(m: g.outPerGroup, n: outSize, k: kRows, a: w, lda: kRows, rows: rows, bias: b,
                                    activation: activation, c: y, ldc: outSize, threads: threads)
                case .im2col:
                    let col = scratch.floats(kRows * outSize, .columns)
                    im2col(d, channels: g.inPerGroup, input: x, col: col, threads: threads)
                    for p in 0..<kRows { rows[p] = UnsafePointer(col + p * outSize) }
                    RowGemm.forward(m: g.outPerGroup, n: outSize, k: kRows, a: w, lda: kRows, rows: rows, bias: b,
                                    activation: activation, c: y, ldc: outSize, threads: threads)
                case .shifted:
                    shifted(g, x: x, w: w, bias: b, y: y, activation: activation, threads: threads, scratch: scratch, rows: rows)
                case .implicit:
                    let (_, ih, iw) = d.input, (_, _, ow) = d.output, (_, kh, kw) = d.kernel
                    let (_, sh, sw) = d.strides, (_, dh, dw) = d.dilations, (_, ph, pw) = d.pads
                    let source = fk_conv2d_source(input: x, channels: g.inPerGroup, ih: ih, iw: iw, ow: ow, kh: kh, kw: kw,
                                                  sh: sh, sw: sw, dh: dh, dw: dw, ph: ph, pw: pw)
                    RowGemm.conv2d(m: g.outPerGroup, n: outSize, source: source, a: w, lda: kRows, bias: b,
                                   activation: activation, c: y, ldc: outSize, threads: threads)
                }
            }
        }
    }

    /// One group of a 1-D/2-D convolution on its input split into stride phases (space to
    /// depth) with zero borders: phase `(ry, rx)` holds the padded input's rows `ry, ry + sh, ...`
    /// and columns `rx, rx + sw, ...`, so tap `(ky, kx)` of output `(oy, ox)` reads phase
    /// `(ky·dh mod sh, kx·dw mod sw)` at `(oy + ky·dh / sh, ox + kx·dw / sw)`. Every tap is
    /// then a shifted view of one phase plane: the GEMM reads B through row pointers and
    /// computes `wq` columns per output row (the `wq - ow` extra ones are dropped when the
    /// result is compacted). At stride 1 the phase is the zero-padded input itself. The copy is
    /// the size of the padded input, where im2col's is `kh·kw` times the output.
    static func shifted(
        _ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        y: UnsafeMutablePointer<Float>, activation: Activation, threads: Int, scratch: KernelScratch,
        rows: UnsafeMutablePointer<UnsafePointer<Float>?>
    ) {
        let d = g.dims3
        let (_, kh, kw) = d.kernel
        let (_, ih, iw) = d.input
        let (_, oh, ow) = d.output
        let (_, sh, sw) = d.strides
        let (_, dh, dw) = d.dilations
        let (_, ph, pw) = d.pads
        let (_, phEnd, pwEnd) = g.padEnd3
        let hq = (ih + ph + phEnd + sh - 1) / sh, wq = (iw + pw + pwEnd + sw - 1) / sw
        let plane = hq * wq
        let channels = g.inPerGroup
        // Shifted rows of the last plane run up to (kw - 1) * dw / sw past it (columns that are dropped).
        let slack = (kw - 1) * dw / sw + 16
        let phases = sh * sw
        let padded = scratch.floats(channels * phases * plane + slack, .padded)
        // Phases no tap reads (1×1 stride 2 reads only the first) are not filled.
        var used = [Bool](repeating: false, count: phases)
        for ky in 0..<kh { for kx in 0..<kw { used[(ky * dh % sh) * sw + kx * dw % sw] = true } }
        let p = UncheckedSendable((padded, used))
        // Split by rows, as the product below splits its columns: each thread copies the part
        // of every plane it will mostly read (see `WorkerPool.Job` on why data stays on one core).
        let fillParts = channels * phases * plane > 1 << 15 ? min(4 * threads, hq) : 1
        Parallel.forEach(fillParts, threads: threads) { part in
            let (padded, used) = p.value
            let rows = hq * part / fillParts..<hq * (part + 1) / fillParts
            for job in 0..<channels * phases where used[job % phases] {
                fillPhase(job % phases, of: x + job / phases * ih * iw, ih: ih, iw: iw, sh: sh, sw: sw, ph: ph, pw: pw,
                          into: padded + job * plane, hq: hq, wq: wq, rows: rows)
            }
        }
        (padded + channels * phases * plane).update(repeating: 0, count: slack)
        for c in 0..<channels {
            for ky in 0..<kh {
                let vy = ky * dh
                for kx in 0..<kw {
                    let vx = kx * dw
                    let phase = (vy % sh) * sw + vx % sw
                    rows[(c * kh + ky) * kw + kx] = UnsafePointer(padded + (c * phases + phase) * plane + (vy / sh) * wq + vx / sw)
                }
            }
        }
        let m = g.outPerGroup, kRows = channels * kh * kw
        if wq != ow && RowGemm.pitchedAvailable {
            // B read with a pitch of wq and packed into compact columns: no wasted columns are
            // computed and nothing is compacted.
            RowGemm.forward(m: m, n: oh * ow, k: kRows, a: w, lda: kRows, rows: rows, width: ow, pitch: wq, bias: bias,
                            activation: activation, c: y, ldc: oh * ow, threads: threads)
            return
        }
        if wq == ow {
            RowGemm.forward(m: m, n: oh * ow, k: kRows, a: w, lda: kRows, rows: rows, bias: bias, activation: activation,
                            c: y, ldc: oh * ow, threads: threads)
            return
        }
        let wideColumns = oh * wq
        let wide = scratch.floats(m * wideColumns, .wideOutput)
        RowGemm.forward(m: m, n: wideColumns, k: kRows, a: w, lda: kRows, rows: rows, bias: bias, activation: activation,
                        c: wide, ldc: wideColumns, threads: threads)
        let box = UncheckedSendable((wide, y))
        // Split by output rows, like the product's columns, so each thread compacts what it computed.
        let parts = m * wideColumns > 1 << 15 ? min(4 * threads, oh) : 1
        Parallel.forEach(parts, threads: threads) { part in
            let (wide, y) = box.value
            for oc in 0..<m {
                for r in oh * part / parts..<oh * (part + 1) / parts {
                    (y + (oc * oh + r) * ow).update(from: wide + oc * wideColumns + r * wq, count: ow)
                }
            }
        }
    }

    /// Fills phase `phase` (`ry·sw + rx`) of one input plane `[ih, iw]`: `dst[j, i]` = input
    /// `(j·sh + ry - ph, i·sw + rx - pw)`, zero outside the input, for `j` in `rows` (default
    /// all `hq`), `i < wq`.
    static func fillPhase(_ phase: Int, of src: UnsafePointer<Float>, ih: Int, iw: Int, sh: Int, sw: Int, ph: Int, pw: Int,
                          into dst: UnsafeMutablePointer<Float>, hq: Int, wq: Int, rows: Range<Int>? = nil) {
        let ry = phase / sw, rx = phase % sw
        // Phase column i reads input column i·sw + rx - pw: valid for i in cols.
        let cols = validRange(outCount: wq, inCount: iw, stride: sw, offset: rx - pw)
        for j in rows ?? 0..<hq {
            let row = dst + j * wq
            let iy = j * sh + ry - ph
            guard iy >= 0, iy < ih, !cols.isEmpty else { row.update(repeating: 0, count: wq); continue }
            row.update(repeating: 0, count: cols.lowerBound)
            let s = src + iy * iw + rx - pw
            if sw == 1 {
                (row + cols.lowerBound).update(from: s + cols.lowerBound, count: cols.count)
            } else {
                fk_gather_stride(s + cols.lowerBound * sw, sw, row + cols.lowerBound, cols.count)
            }
            (row + cols.upperBound).update(repeating: 0, count: wq - cols.upperBound)
        }
    }
}

extension ConvGeometry {
    /// padEnd as 3 entries (d, h, w).
    var padEnd3: (Int, Int, Int) { ConvGeometry.spatial3(padEnd, fill: 0) }
}
