import CFloatKernels

extension Pool {
    /// Max pooling of 2-D planes without padding or dilation whose windows all lie inside the
    /// input (SqueezeNet's and AlexNet's 3×3 stride-2 pools) through the AVX-512 kernel in
    /// `CFloatKernels`, parallel over planes. Returns false, doing nothing, for any other
    /// geometry or CPU.
    static func maxPool2DValid(_ g: PoolGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, threads: Int) -> Bool {
        guard fk_has_avx512() != 0 else { return false }
        let d = g.dims3
        let (kd, kh, kw) = d.kernel
        let (id, ih, iw) = d.input
        let (od, oh, ow) = d.output
        let (_, sh, sw) = d.strides
        guard kd == 1, id == 1, od == 1, d.dilations == (1, 1, 1), d.pads == (0, 0, 0), g.padEnd3 == (0, 0, 0),
              oh >= 1, ow >= 1, (oh - 1) * sh + kh <= ih, (ow - 1) * sw + kw <= iw else { return false }
        let parts = g.planes * oh * ow * kh * kw > 1 << 15 ? min(4 * threads, g.planes) : 1
        let out = UncheckedSendable(output)
        Parallel.forEach(parts, threads: threads) { t in
            let p0 = g.planes * t / parts, p1 = g.planes * (t + 1) / parts
            fk_maxpool2d_valid(p1 - p0, input + p0 * ih * iw, ih, iw, out.value + p0 * oh * ow, oh, ow, kh, kw, sh, sw)
        }
        return true
    }
}
