/// Convolution, NC + spatial layout, weights `[outC, inC/groups, k...]`, optional bias `[outC]`.
/// The fast variant picks per call: a direct kernel for depthwise convolutions; on AVX-512 CPUs
/// the kernel vectorised over output channels where the caller keeps packed weights
/// (`packedWeights`) and `prefersChannels` measured it faster (`Conv+Channels.swift`), else
/// `RowGemm` (bias and Relu fused, no im2col for 1×1 and stride-1 2-D kernels, see
/// `Conv+RowGemm.swift`; strided 1×1 ones subsampled first, `Conv+StridedPointwise.swift`); elsewhere BLAS GEMM straight on the input for 1×1 stride-1 unpadded
/// ones and im2col + BLAS GEMM otherwise.
public enum Conv {
    public static func forward(
        _ variant: KernelVariant = .fast, _ g: ConvGeometry,
        input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation = .none, threads: Int = 1, scratch: KernelScratch? = nil,
        implementation: Implementation = .automatic, packedWeights: ConvChannelWeights? = nil
    ) {
        if variant == .reference {
            reference(g, input: input, weights: weights, bias: bias, output: output, activation: activation)
            return
        }
        let threads = g.multiplyAdds < minParallelMultiplyAdds ? 1 : threads
        let viaBLAS = implementation == .blas || (implementation == .automatic && !RowGemm.isAvailable)
        if activation.needsSeparatePass && viaBLAS && !(g.inPerGroup == 1 && g.groups > 1) {
            // The BLAS path's epilogue has bias and Relu only.
            forward(.fast, g, input: input, weights: weights, bias: bias, output: output, activation: .none,
                    threads: threads, scratch: scratch, implementation: implementation)
            activation.apply(to: output, count: g.batch * g.outChannels * g.outputSize)
            return
        }
        if g.inPerGroup == 1 && g.groups > 1 && implementation == .depthwiseDirect {
            depthwiseDirect(g, input: input, weights: weights, bias: bias, output: output, activation: activation, threads: threads)
            return
        }
        if g.inPerGroup == 1 && g.groups > 1 {
            depthwise(g, input: input, weights: weights, bias: bias, output: output, activation: activation, threads: threads)
            return
        }
        let scratch = scratch ?? KernelScratch()
        defer { withExtendedLifetime(scratch) {} }
        switch implementation {
        case .automatic where packedWeights != nil && channelsAvailable(g) && prefersChannels(g):
            channels(g, input: input, weights: weights, packed: packedWeights, bias: bias, output: output, activation: activation,
                     threads: threads, scratch: scratch)
            return
        case .channels:
            channels(g, input: input, weights: weights, packed: packedWeights, bias: bias, output: output, activation: activation,
                     threads: threads, scratch: scratch)
            return
        case .automatic where RowGemm.isAvailable:
            if isStridedPointwise(g) {
                stridedPointwise(g, input: input, weights: weights, bias: bias, output: output, activation: activation, threads: threads, scratch: scratch)
                return
            }
            rowGemm(g, input: input, weights: weights, bias: bias, output: output, activation: activation, threads: threads, scratch: scratch)
            return
        case .rowGemm(let path):
            rowGemm(g, input: input, weights: weights, bias: bias, output: output, activation: activation, threads: threads, scratch: scratch, path: path)
            return
        case .automatic, .blas, .depthwiseDirect, .channels:
            break
        }
        im2colGemm(g, input: input, weights: weights, bias: bias, output: output, activation: activation, threads: threads, scratch: scratch)
    }

    /// Which fast implementation runs a non-depthwise convolution: `.automatic` (RowGemm where
    /// the CPU has AVX-512, else BLAS), or one forced (benchmarks, tests). A forced `.rowGemm`
    /// path must suit the geometry (`.pointwise` only for 1×1 stride-1 unpadded, `.shifted`
    /// only for stride-1 1-D/2-D); without AVX-512 it runs RowGemm's reference loops.
    public enum Implementation: Sendable, Equatable {
        case automatic
        case blas
        case rowGemm(RowGemmPath)
        /// Depthwise layers only: the direct loops `Conv+Depthwise.swift` keeps for 3-D layers.
        case depthwiseDirect
        /// Vectorised over output channels (`Conv+Channels.swift`); only where `channelsAvailable(g)`.
        case channels
    }

    /// Convolutions with fewer multiply-adds run on one thread: about 20 µs of work at one
    /// thread, where a fork-join with the spinning helper (about 1 µs) would save little.
    /// Larger ones are split even when small: a layer left to the caller alone reads the half
    /// of its input the helper wrote, which puts those cache lines in both cores' caches, and
    /// the next write to them (the buffer's next tenant) is 10-50x slower than to lines one
    /// core holds (see `WorkerPool`). (At 4 M multiply-adds, the earlier bound, SqueezeNet's
    /// 1×1 layers at 55×55 ran 2-3x slower at two threads than at one.)
    public static let minParallelMultiplyAdds = 1 << 20

    /// Whether im2col is the identity (1×1 kernel, stride 1, no padding).
    public static func isPointwise(_ g: ConvGeometry) -> Bool {
        g.kernel.allSatisfy { $0 == 1 } && g.strides.allSatisfy { $0 == 1 } &&
            g.padBegin.allSatisfy { $0 == 0 } && g.padEnd.allSatisfy { $0 == 0 }
    }

    static func im2colGemm(
        _ g: ConvGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, threads: Int, scratch: KernelScratch
    ) {
        let d = g.dims3
        let inSize = d.inputSize, outSize = d.outputSize
        let kRows = g.inPerGroup * d.kernelSize
        let pointwise = isPointwise(g)
        let col = pointwise ? nil : scratch.floats(kRows * outSize)
        for n in 0..<g.batch {
            for grp in 0..<g.groups {
                let x = input + (n * g.inChannels + grp * g.inPerGroup) * inSize
                let y = output + (n * g.outChannels + grp * g.outPerGroup) * outSize
                let w = weights + grp * g.outPerGroup * kRows
                let b: UnsafePointer<Float>
                if let col {
                    im2col(d, channels: g.inPerGroup, input: x, col: col, threads: threads)
                    b = UnsafePointer(col)
                } else {
                    b = x
                }
                Gemm.parallel(threads: threads, transA: false, transB: false, m: g.outPerGroup, n: outSize, k: kRows,
                              alpha: 1, a: w, lda: kRows, b: b, ldb: outSize, beta: 0, c: y, ldc: outSize)
                if bias != nil || activation != .none {
                    let yb = UncheckedSendable(y)
                    let relu = activation == .relu
                    Parallel.forEach(g.outPerGroup, threads: outSize * g.outPerGroup > 1 << 16 ? threads : 1) { oc in
                        let v = bias?[grp * g.outPerGroup + oc] ?? 0
                        let row = yb.value + oc * outSize
                        if relu {
                            for i in 0..<outSize { let t = row[i] + v; row[i] = t > 0 ? t : 0 }
                        } else {
                            for i in 0..<outSize { row[i] += v }
                        }
                    }
                }
            }
        }
    }

    /// Unfolds `channels` input planes into a `[channels * kernelSize, outputSize]` matrix.
    static func im2col(_ d: Dims3, channels: Int, input: UnsafePointer<Float>, col: UnsafeMutablePointer<Float>, threads: Int) {
        let (kd, kh, kw) = d.kernel
        let (od, oh, ow) = d.output
        let (id, ih, iw) = d.input
        let (sd, sh, sw) = d.strides
        let (dd, dh, dw) = d.dilations
        let (pd, ph, pw) = d.pads
        let rows = channels * kd * kh * kw
        let outSize = od * oh * ow
        let colBox = UncheckedSendable(col)
        Parallel.forEach(rows, threads: rows * outSize > 1 << 15 ? threads : 1) { r in
            var rest = r
            let x = rest % kw; rest /= kw
            let y = rest % kh; rest /= kh
            let z = rest % kd; rest /= kd
            let c = rest
            let plane = input + c * id * ih * iw
            var dst = colBox.value + r * outSize
            let wRange = validRange(outCount: ow, inCount: iw, stride: sw, offset: x * dw - pw)
            for oz in 0..<od {
                let iz = oz * sd - pd + z * dd
                for oy in 0..<oh {
                    let iy = oy * sh - ph + y * dh
                    if iz < 0 || iz >= id || iy < 0 || iy >= ih {
                        dst.update(repeating: 0, count: ow)
                    } else {
                        let src = plane + (iz * ih + iy) * iw
                        for ox in 0..<wRange.lowerBound { dst[ox] = 0 }
                        let off = x * dw - pw
                        if sw == 1 {
                            for ox in wRange { dst[ox] = src[ox + off] }
                        } else {
                            for ox in wRange { dst[ox] = src[ox * sw + off] }
                        }
                        for ox in wRange.upperBound..<ow { dst[ox] = 0 }
                    }
                    dst += ow
                }
            }
        }
    }
}
