import MBCore

/// DeformConv (opset 19), 2-D: a convolution whose every kernel tap samples the input at its
/// regular position plus a learned offset (per output position, tap and offset group), bilinearly
/// with zeros outside the image, optionally weighted by a mask (DCNv2). Plain loops with double sums.
enum DeformConvOp {
    /// The input plane `p` ([h, w]) sampled at (y, x): bilinear, zero outside.
    @inline(__always)
    static func sample(_ p: UnsafePointer<Float>, _ h: Int, _ w: Int, _ y: Double, _ x: Double) -> Double {
        let y0 = Int(y.rounded(.down)), x0 = Int(x.rounded(.down))
        let fy = y - Double(y0), fx = x - Double(x0)
        var v = 0.0
        for (yy, wy) in [(y0, 1 - fy), (y0 + 1, fy)] where yy >= 0 && yy < h && wy != 0 {
            for (xx, wx) in [(x0, 1 - fx), (x0 + 1, fx)] where xx >= 0 && xx < w && wx != 0 {
                v += Double(p[yy * w + xx]) * wy * wx
            }
        }
        return v
    }

    static let table: [String: OpTable.Compile] = [
        "DeformConv": { n in
            let a = try ConvOps.Attributes(n)
            let offsetGroups = try n.int("offset_group", default: 1)
            guard offsetGroups >= 1 else { throw n.bad("offset_group must be >= 1, got \(offsetGroups)") }
            return { i, c in
                let x = try i.float(0, "X"), w = try i.float(1, "W"), offset = try i.float(2, "offset")
                let bias = try i[3].map { _ in try i.float(3, "B") }, mask = try i[4].map { _ in try i.float(4, "mask") }
                guard x.rank == 4 else { throw OpError("X \(x.shape): only 2-D DeformConv is supported", kind: .unsupportedOperator) }
                try ConvOps.Attributes.checkDimensions(("X", x), ("W", w))
                let g = try a.geometry(x: x, w: w.shape, bias: bias)
                let (kh, kw) = (g.kernel[0], g.kernel[1]), (oh, ow) = (g.output[0], g.output[1]), (ih, iw) = (g.input[0], g.input[1])
                guard g.inChannels % offsetGroups == 0 else { throw OpError("\(g.inChannels) input channels are not divisible by offset_group \(offsetGroups)") }
                guard offset.shape == [g.batch, offsetGroups * kh * kw * 2, oh, ow] else {
                    throw OpError("offset \(offset.shape) must be [\(g.batch), \(offsetGroups * kh * kw * 2), \(oh), \(ow)]")
                }
                if let mask, mask.shape != [g.batch, offsetGroups * kh * kw, oh, ow] {
                    throw OpError("mask \(mask.shape) must be [\(g.batch), \(offsetGroups * kh * kw), \(oh), \(ow)]")
                }
                let perOffsetGroup = g.inChannels / offsetGroups
                let y = try c.alloc(.float, [g.batch, g.outChannels, oh, ow])
                let px = x.pointer(Float.self), pw = w.pointer(Float.self), po = offset.pointer(Float.self)
                let pm = mask?.pointer(Float.self), pb = bias?.pointer(Float.self), py = y.mutable(Float.self)
                // Sampled input values per (input channel, tap, output position), then a plain contraction.
                var columns = [Double](repeating: 0, count: g.inChannels * kh * kw * oh * ow)
                for b in 0..<g.batch {
                    for ic in 0..<g.inChannels {
                        let og = ic / perOffsetGroup
                        let plane = px + (b * g.inChannels + ic) * ih * iw
                        for u in 0..<kh { for v in 0..<kw {
                            let tap = u * kw + v
                            for r in 0..<oh { for s in 0..<ow {
                                let o = ((b * offsetGroups + og) * kh * kw + tap) * 2
                                let dy = Double(po[(o * oh + r) * ow + s]), dx = Double(po[((o + 1) * oh + r) * ow + s])
                                let sy = Double(r * g.strides[0] - g.padBegin[0] + u * g.dilations[0]) + dy
                                let sx = Double(s * g.strides[1] - g.padBegin[1] + v * g.dilations[1]) + dx
                                var value = sample(plane, ih, iw, sy, sx)
                                if let pm { value *= Double(pm[((((b * offsetGroups + og) * kh * kw + tap) * oh + r) * ow + s)]) }
                                columns[((ic * kh * kw + tap) * oh + r) * ow + s] = value
                            } }
                        } }
                    }
                    for oc in 0..<g.outChannels {
                        let grp = oc / g.outPerGroup
                        for r in 0..<oh { for s in 0..<ow {
                            var sum = Double(pb?[oc] ?? 0)
                            for icg in 0..<g.inPerGroup {
                                let ic = grp * g.inPerGroup + icg
                                for tap in 0..<(kh * kw) {
                                    sum += Double(pw[(oc * g.inPerGroup + icg) * kh * kw + tap]) * columns[((ic * kh * kw + tap) * oh + r) * ow + s]
                                }
                            }
                            py[((b * g.outChannels + oc) * oh + r) * ow + s] = Float(sum)
                        } }
                    }
                }
                return [y]
            }
        },
    ]
}
