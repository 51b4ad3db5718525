extension ConvTranspose {
    /// The definition: every input element scatters `x * w` into each output position its
    /// kernel window reaches (Double accumulation in a temporary).
    public static func reference(
        _ g: ConvTransposeGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>
    ) {
        let d = g.dims3
        let (kd, kh, kw) = d.kernel
        let (id, ih, iw) = d.input
        let (od, oh, ow) = d.output
        let outSize = d.outputSize
        var acc = [Double](repeating: 0, count: g.batch * g.outChannels * outSize)
        for n in 0..<g.batch {
            for ic in 0..<g.inChannels {
                let grp = ic / g.inPerGroup
                for iz in 0..<id { for iy in 0..<ih { for ix in 0..<iw {
                    let xv = Double(input[(((n * g.inChannels + ic) * id + iz) * ih + iy) * iw + ix])
                    for ocg in 0..<g.outPerGroup {
                        let oc = grp * g.outPerGroup + ocg
                        for z in 0..<kd { for y in 0..<kh { for x in 0..<kw {
                            let oz = iz * d.strides.0 - d.pads.0 + z * d.dilations.0
                            let oy = iy * d.strides.1 - d.pads.1 + y * d.dilations.1
                            let ox = ix * d.strides.2 - d.pads.2 + x * d.dilations.2
                            guard oz >= 0, oz < od, oy >= 0, oy < oh, ox >= 0, ox < ow else { continue }
                            let wv = Double(weights[(((ic * g.outPerGroup + ocg) * kd + z) * kh + y) * kw + x])
                            acc[((n * g.outChannels + oc) * od + oz) * oh * ow + oy * ow + ox] += xv * wv
                        } } }
                    }
                } } }
            }
        }
        for n in 0..<g.batch {
            for oc in 0..<g.outChannels {
                let b = Double(bias?[oc] ?? 0)
                for i in 0..<outSize {
                    let k = (n * g.outChannels + oc) * outSize + i
                    output[k] = Float(acc[k] + b)
                }
            }
        }
    }
}
