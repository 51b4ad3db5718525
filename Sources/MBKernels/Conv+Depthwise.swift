import CFloatKernels

extension Conv {
    /// Groups with one input channel each (depthwise, with any channel multiplier). 1-D and 2-D
    /// layers, any stride and dilation: each input plane is split into its stride phases with a
    /// zero border (`fillPhase`, as the shifted RowGemm path does), so every tap of an output
    /// row reads a contiguous run, and `fk_depthwise_plane` (AVX-512, or its portable loop)
    /// sums all taps of 64 outputs in registers. Parallel over input planes, each part with its
    /// own phase buffer; the channel multiplier's outputs share one split. 3-D layers take
    /// `depthwiseDirect`. Relu is applied as outputs are stored, other activations per plane.
    static func depthwise(
        _ g: ConvGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, threads: Int
    ) {
        let d = g.dims3
        guard d.kernel.0 == 1, d.input.0 == 1, d.strides.0 == 1 else {
            depthwiseDirect(g, input: input, weights: weights, bias: bias, output: output, activation: activation, threads: threads)
            return
        }
        let (_, kh, kw) = d.kernel
        let (_, ih, iw) = d.input
        let (_, oh, ow) = d.output
        let (_, sh, sw) = d.strides
        let (_, dh, dw) = d.dilations
        let (_, ph, pw) = d.pads
        let (_, phEnd, pwEnd) = g.padEnd3
        let hq = (ih + ph + phEnd + sh - 1) / sh, wq = (iw + pw + pwEnd + sw - 1) / sw
        let plane = hq * wq, phases = sh * sw
        var offsets: [Int] = []
        var used = [Bool](repeating: false, count: phases)
        for ky in 0..<kh {
            for kx in 0..<kw {
                let phase = (ky * dh % sh) * sw + kx * dw % sw
                used[phase] = true
                offsets.append(phase * plane + (ky * dh / sh) * wq + kx * dw / sw)
            }
        }
        let mult = g.outPerGroup, taps = kh * kw, inSize = ih * iw, outSize = oh * ow
        let jobs = g.batch * g.inChannels
        let parts = jobs * mult * outSize * taps > 1 << 15 ? min(jobs, 4 * threads) : 1
        let relu: Int32 = activation == .relu ? 1 : 0
        let box = UncheckedSendable((output, used))
        offsets.withUnsafeBufferPointer { offsetBuffer in
            let offs = UncheckedSendable(offsetBuffer.baseAddress!)
            Parallel.forEach(parts, threads: threads) { part in
                let (output, used) = box.value
                let buffer = UnsafeMutablePointer<Float>.allocate(capacity: phases * plane)
                defer { buffer.deallocate() }
                for job in (jobs * part / parts)..<(jobs * (part + 1) / parts) {
                    let src = input + job * inSize
                    for phase in 0..<phases where used[phase] {
                        fillPhase(phase, of: src, ih: ih, iw: iw, sh: sh, sw: sw, ph: ph, pw: pw, into: buffer + phase * plane, hq: hq, wq: wq)
                    }
                    let n = job / g.inChannels, ic = job % g.inChannels
                    for j in 0..<mult {
                        let oc = ic * mult + j
                        let dst = output + (n * g.outChannels + oc) * outSize
                        fk_depthwise_plane(buffer, wq, offs.value, weights + oc * taps, Int32(taps), bias?[oc] ?? 0, relu, dst, oh, ow)
                        if activation.needsSeparatePass { activation.apply(to: dst, count: outSize) }
                    }
                }
            }
        }
    }

    /// Direct depthwise convolution for any rank (3-D layers). Parallel over output channels;
    /// the inner loop runs along an output row over the positions where the input is in range,
    /// so it has no per-element bounds checks.
    static func depthwiseDirect(
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
