import CFloatKernels

extension Pool {
    /// Max pooling of 2-D planes without padding or dilation whose windows all lie inside the
    /// input (SqueezeNet's and AlexNet's 3×3 stride-2 pools) through the AVX-512 kernel in
    /// `CFloatKernels`, parallel over bands of output rows. Returns false, doing nothing, for any other
    /// geometry or CPU.
    static func maxPool2DValid(_ g: PoolGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, threads: Int) -> Bool {
        guard fk_has_avx512() != 0 || fk_has_neon() != 0 else { return false }
        let d = g.dims3
        let (kd, kh, kw) = d.kernel
        let (id, ih, iw) = d.input
        let (od, oh, ow) = d.output
        let (_, sh, sw) = d.strides
        guard kd == 1, id == 1, od == 1, d.dilations == (1, 1, 1), d.pads == (0, 0, 0), g.padEnd3 == (0, 0, 0),
              oh >= 1, ow >= 1, (oh - 1) * sh + kh <= ih, (ow - 1) * sw + kw <= iw else { return false }
        let work = g.planes * oh * ow * kh * kw
        let out = UncheckedSendable(output)
        guard threads > 1, work > 1 << 15, oh > 1 else {
            fk_maxpool2d_valid(g.planes, input, ih, iw, output, oh, ow, kh, kw, sh, sw)
            return true
        }
        // Parts are bands of output rows across every plane (not groups of planes): a thread
        // reads the band of each input plane that the same thread wrote when the layer before
        // split its output alike (see `WorkerPool.Job`).
        let parts = min(4 * threads, oh)
        Parallel.forEach(parts, threads: threads) { t in
            let r0 = oh * t / parts, r1 = oh * (t + 1) / parts
            guard r1 > r0 else { return }
            let rowsIn = (r1 - r0 - 1) * sh + kh
            for p in 0..<g.planes {
                fk_maxpool2d_valid(1, input + p * ih * iw + r0 * sh * iw, rowsIn, iw, out.value + p * oh * ow + r0 * ow, r1 - r0, ow,
                                   kh, kw, sh, sw)
            }
        }
        return true
    }
}

extension Pool {
    /// Max pooling of 2-D planes with padding (or ceil_mode overhang), no dilation: each part's
    /// planes are copied into a -inf-bordered buffer just large enough for every window, then
    /// pooled by the valid-window kernel (AVX-512 or NEON). -inf never wins a max, so the result is the
    /// max over the in-range taps, as the reference computes. Returns false for any other
    /// geometry or CPU.
    static func maxPool2DPadded(_ g: PoolGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, threads: Int) -> Bool {
        guard fk_has_avx512() != 0 || fk_has_neon() != 0 else { return false }
        let d = g.dims3
        let (kd, kh, kw) = d.kernel
        let (id, ih, iw) = d.input
        let (od, oh, ow) = d.output
        let (_, sh, sw) = d.strides
        let (_, pt, pl) = d.pads
        guard kd == 1, id == 1, od == 1, d.dilations == (1, 1, 1), oh >= 1, ow >= 1,
              pt < kh, pl < kw else { return false }
        // The padded plane every window fits in; input rows/columns past it are never read.
        let hp = (oh - 1) * sh + kh, wp = (ow - 1) * sw + kw
        let rowsIn = min(ih, hp - pt), colsIn = min(iw, wp - pl)
        guard rowsIn > 0, colsIn > 0 else { return false }
        let parts = g.planes * oh * ow * kh * kw > 1 << 15 ? min(4 * threads, g.planes) : 1
        let out = UncheckedSendable(output)
        Parallel.forEach(parts, threads: threads) { t in
            let p0 = g.planes * t / parts, p1 = g.planes * (t + 1) / parts
            let count = p1 - p0
            if count == 0 { return }
            // One plane at a time through a small buffer (stays in cache).
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: hp * wp)
            defer { buffer.deallocate() }
            buffer.update(repeating: -.infinity, count: hp * wp)
            for p in p0..<p1 {
                let src = input + p * ih * iw
                for r in 0..<rowsIn { (buffer + (pt + r) * wp + pl).update(from: src + r * iw, count: colsIn) }
                fk_maxpool2d_valid(1, buffer, hp, wp, out.value + p * oh * ow, oh, ow, kh, kw, sh, sw)
            }
        }
        return true
    }
}
