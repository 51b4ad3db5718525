extension Conv {
    /// How a (non-depthwise) convolution feeds `RowGemm`.
    public enum RowGemmPath: Sendable, CaseIterable {
        /// 1×1, stride 1, no padding: the input planes are the rows of B.
        case pointwise
        /// Stride 1, 1-D or 2-D: a zero-padded copy of the input whose rows, shifted by each
        /// tap, are the rows of B. The product is computed on the padded width (the extra
        /// columns are dropped when the result is compacted into the output).
        case shifted
        /// Anything else: an im2col matrix.
        case im2col
    }

    /// The path for `g`. Shifted computes `wp - ow` wasted columns per output row for every
    /// output channel; im2col copies the input once per tap. Measured (`mbbench conv`, Zen 4):
    /// shifted wins while `outPerGroup * (wp - ow) <= 30 * ow` (SqueezeNet at 55×55 and 27×27,
    /// AlexNet's 5×5 at 27×27); im2col wins beyond (3×3 with 256 or 384 channels at 13×13).
    public static func rowGemmPath(_ g: ConvGeometry) -> RowGemmPath {
        if isPointwise(g) { return .pointwise }
        let d = g.dims3
        guard d.strides == (1, 1, 1), d.kernel.0 == 1, d.input.0 == 1 else { return .im2col }
        let ow = d.output.2, wp = d.input.2 + d.pads.2 + g.padEnd3.2
        return g.outPerGroup * (wp - ow) <= 30 * ow ? .shifted : .im2col
    }

    /// Convolution through `RowGemm` (groups run one after another, each GEMM split across
    /// `threads`). Only when `RowGemm.isAvailable`; `path` overrides the choice (tests).
    static func rowGemm(
        _ g: ConvGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, threads: Int, scratch: KernelScratch, path: RowGemmPath? = nil
    ) {
        let path = path ?? rowGemmPath(g)
        let d = g.dims3
        let inSize = d.inputSize, outSize = d.outputSize
        let kRows = g.inPerGroup * d.kernelSize
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
                }
            }
        }
    }

    /// One group of a stride-1 1-D/2-D convolution on a zero-padded copy of its input.
    private static func shifted(
        _ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        y: UnsafeMutablePointer<Float>, activation: Activation, threads: Int, scratch: KernelScratch,
        rows: UnsafeMutablePointer<UnsafePointer<Float>?>
    ) {
        let d = g.dims3
        let (_, kh, kw) = d.kernel
        let (_, ih, iw) = d.input
        let (_, oh, ow) = d.output
        let (_, dh, dw) = d.dilations
        let (_, ph, pw) = d.pads
        let (_, phEnd, pwEnd) = g.padEnd3
        let hp = ih + ph + phEnd, wp = iw + pw + pwEnd
        let plane = hp * wp
        let channels = g.inPerGroup
        // Shifted rows of the last channel run (kw - 1) * dw past its plane (into columns that are dropped).
        let slack = (kw - 1) * dw + 16
        let padded = scratch.floats(channels * plane + slack, .padded)
        let p = UncheckedSendable(padded)
        Parallel.forEach(channels, threads: channels * plane > 1 << 15 ? threads : 1) { c in
            let dst = p.value + c * plane, src = x + c * ih * iw
            dst.update(repeating: 0, count: ph * wp)
            for r in 0..<ih {
                let row = dst + (ph + r) * wp
                row.update(repeating: 0, count: pw)
                (row + pw).update(from: src + r * iw, count: iw)
                (row + pw + iw).update(repeating: 0, count: pwEnd)
            }
            (dst + (ph + ih) * wp).update(repeating: 0, count: phEnd * wp)
        }
        (padded + channels * plane).update(repeating: 0, count: slack)
        for c in 0..<channels {
            for ky in 0..<kh {
                for kx in 0..<kw { rows[(c * kh + ky) * kw + kx] = UnsafePointer(padded + c * plane + ky * dh * wp + kx * dw) }
            }
        }
        let m = g.outPerGroup, kRows = channels * kh * kw
        if wp == ow {
            RowGemm.forward(m: m, n: oh * ow, k: kRows, a: w, lda: kRows, rows: rows, bias: bias, activation: activation,
                            c: y, ldc: oh * ow, threads: threads)
            return
        }
        let wideColumns = oh * wp
        let wide = scratch.floats(m * wideColumns, .wideOutput)
        RowGemm.forward(m: m, n: wideColumns, k: kRows, a: w, lda: kRows, rows: rows, bias: bias, activation: activation,
                        c: wide, ldc: wideColumns, threads: threads)
        let box = UncheckedSendable((wide, y))
        Parallel.forEach(m, threads: m * wideColumns > 1 << 15 ? threads : 1) { oc in
            let (wide, y) = box.value
            for r in 0..<oh { (y + oc * oh * ow + r * ow).update(from: wide + oc * wideColumns + r * wp, count: ow) }
        }
    }
}

extension ConvGeometry {
    /// padEnd as 3 entries (d, h, w).
    var padEnd3: (Int, Int, Int) { ConvGeometry.spatial3(padEnd, fill: 0) }
}
