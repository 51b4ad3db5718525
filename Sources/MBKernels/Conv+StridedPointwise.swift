import CFloatKernels

extension Conv {
    /// Whether `g` is a 1×1 convolution with a stride above 1 and no padding (ResNet's
    /// downsampling shortcuts, YOLO's and MobileNet's strided 1×1 layers): every output reads
    /// one input pixel, so the input subsampled once is a stride-1 pointwise problem.
    public static func isStridedPointwise(_ g: ConvGeometry) -> Bool {
        g.kernel.allSatisfy { $0 == 1 } && g.strides.contains { $0 > 1 } &&
            g.padBegin.allSatisfy { $0 == 0 } && g.padEnd.allSatisfy { $0 == 0 }
    }

    /// A strided 1×1 convolution as a gather and a pointwise one: the pixels the stride keeps
    /// are copied into a compact `[batch, inChannels, outputSize]` buffer (a quarter of the input
    /// at stride 2), which then runs on the stride-1 pointwise path, where RowGemm reads its rows
    /// straight. Measured (`mbbench conv --filter 1x1/2 --cpu-time`): faster than gathering the
    /// columns while packing (`.implicit`), which repeats the strided gather for every block of
    /// output channels.
    static func stridedPointwise(
        _ g: ConvGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, threads: Int, scratch: KernelScratch
    ) {
        let d = g.dims3
        let (_, ih, iw) = d.input, (od, oh, ow) = d.output, (sd, sh, sw) = d.strides
        let outSize = d.outputSize, inSize = d.inputSize
        let planes = g.batch * g.inChannels
        let compact = scratch.floats(planes * outSize, .padded)
        let box = UncheckedSendable(compact)
        // Split by output rows, as the product splits its columns: each thread gathers the part
        // of every plane it will mostly read (see `WorkerPool.Job` on why data stays on one core).
        let rows = od * oh
        let parts = planes * outSize > 1 << 15 ? min(4 * threads, rows) : 1
        Parallel.forEach(parts, threads: threads) { part in
            for p in 0..<planes {
                let src = input + p * inSize, dst = box.value + p * outSize
                for r in rows * part / parts..<rows * (part + 1) / parts {
                    let z = r / oh, y = r % oh
                    let from = src + (z * sd * ih + y * sh) * iw
                    if sw == 1 {
                        (dst + r * ow).update(from: from, count: ow)
                    } else {
                        fk_gather_stride(from, sw, dst + r * ow, ow)
                    }
                }
            }
        }
        var pointwise = g
        pointwise.input = g.output
        pointwise.strides = g.strides.map { _ in 1 }
        rowGemm(pointwise, input: compact, weights: weights, bias: bias, output: output, activation: activation,
                threads: threads, scratch: scratch, path: .pointwise)
    }
}
