/// The rows a convolution multiplies its weights with (im2col), for fitting weights to layer
/// outputs: for one sample and one group, row p (an output position, d-h-w order) holds the
/// input values under the kernel, column `c * kernelSize + tap` (input channel of the group,
/// then kernel tap in d-h-w order: the flat order of one output channel's weights). Padding
/// reads as zero.
public enum ConvRows {
    /// Writes geometry.outputSize × (inPerGroup · kernelSize) values to `rows` (Float for the
    /// single-precision moment accumulation, Double for the plain reference).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func extract<T: BinaryFloatingPoint>(_ x: UnsafePointer<Float>, geometry g: ConvGeometry, sample: Int, group: Int,
                                                       into rows: UnsafeMutablePointer<T>) {
        let d3 = g.dims3
        let (id, ih, iw) = d3.input, (od, oh, ow) = d3.output, (kd, kh, kw) = d3.kernel
        let (sd, sh, sw) = d3.strides
        let (dd, dh, dw) = d3.dilations
        let (pd, ph, pw) = d3.pads
        let taps = kd * kh * kw, cols = g.inPerGroup * taps
        let plane = id * ih * iw
        let base = x + (sample * g.inChannels + group * g.inPerGroup) * plane
        var p = 0
        for z in 0..<od {
            for y in 0..<oh {
                for xo in 0..<ow {
                    let row = rows + p * cols
                    for c in 0..<g.inPerGroup {
                        let src = base + c * plane
                        var t = c * taps
                        for a in 0..<kd {
                            let iz = z * sd - pd + a * dd
                            for b in 0..<kh {
                                let iy = y * sh - ph + b * dh
                                for e in 0..<kw {
                                    let ix = xo * sw - pw + e * dw
                                    let inside = iz >= 0 && iz < id && iy >= 0 && iy < ih && ix >= 0 && ix < iw
                                    row[t] = inside ? T(src[(iz * ih + iy) * iw + ix]) : 0
                                    t += 1
                                }
                            }
                        }
                    }
                    p += 1
                }
            }
        }
    }
}
