extension Conv {
    /// Direct convolution for groups with one input channel each (depthwise, with any channel
    /// multiplier). Parallel over output channels; the inner loop runs along an output row over
    /// the positions where the input is in range, so it has no per-element bounds checks.
    static func depthwise(
        _ g: ConvGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, threads: Int
    ) {
        let d = g.dims3
        let (kd, kh, kw) = d.kernel
        let (od, oh, ow) = d.output
        let (id, ih, iw) = d.input
        let (sd, sh, sw) = d.strides
        let (dd, dh, dw) = d.dilations
        let (pd, ph, pw) = d.pads
        let inSize = d.inputSize, outSize = d.outputSize, kSize = d.kernelSize
        let mult = g.outPerGroup
        let out = UncheckedSendable(output)
        let ranges = (0..<kw).map { x in validRange(outCount: ow, inCount: iw, stride: sw, offset: x * dw - pw) }
        Parallel.forEach(g.batch * g.outChannels, threads: threads) { job in
            let n = job / g.outChannels, oc = job % g.outChannels
            let ic = oc / mult
            let plane = input + (n * g.inChannels + ic) * inSize
            let w = weights + oc * kSize
            let dst = out.value + (n * g.outChannels + oc) * outSize
            dst.update(repeating: bias?[oc] ?? 0, count: outSize)
            for oz in 0..<od {
                for oy in 0..<oh {
                    let row = dst + (oz * oh + oy) * ow
                    for z in 0..<kd {
                        let iz = oz * sd - pd + z * dd
                        if iz < 0 || iz >= id { continue }
                        for y in 0..<kh {
                            let iy = oy * sh - ph + y * dh
                            if iy < 0 || iy >= ih { continue }
                            let src = plane + (iz * ih + iy) * iw
                            for x in 0..<kw {
                                let wv = w[(z * kh + y) * kw + x]
                                let off = x * dw - pw
                                let r = ranges[x]
                                if sw == 1 {
                                    for ox in r { row[ox] += wv * src[ox + off] }
                                } else {
                                    for ox in r { row[ox] += wv * src[ox * sw + off] }
                                }
                            }
                        }
                    }
                }
            }
            if activation == .relu {
                for i in 0..<outSize { dst[i] = dst[i] > 0 ? dst[i] : 0 }
            } else {
                activation.apply(to: dst, count: outSize)
            }
        }
    }
}
