extension Conv {
    /// The definition: for every output element, the sum over its window with explicit bounds
    /// checks (Double accumulator).
    public static func reference(
        _ g: ConvGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation = .none
    ) {
        let d = g.dims3
        let (kd, kh, kw) = d.kernel
        let (od, oh, ow) = d.output
        let (id, ih, iw) = d.input
        for n in 0..<g.batch {
            for oc in 0..<g.outChannels {
                let grp = oc / g.outPerGroup
                for oz in 0..<od { for oy in 0..<oh { for ox in 0..<ow {
                    var sum = Double(bias?[oc] ?? 0)
                    for icg in 0..<g.inPerGroup {
                        let ic = grp * g.inPerGroup + icg
                        for z in 0..<kd { for y in 0..<kh { for x in 0..<kw {
                            let iz = oz * d.strides.0 - d.pads.0 + z * d.dilations.0
                            let iy = oy * d.strides.1 - d.pads.1 + y * d.dilations.1
                            let ix = ox * d.strides.2 - d.pads.2 + x * d.dilations.2
                            guard iz >= 0, iz < id, iy >= 0, iy < ih, ix >= 0, ix < iw else { continue }
                            let xv = input[(((n * g.inChannels + ic) * id + iz) * ih + iy) * iw + ix]
                            let wv = weights[(((oc * g.inPerGroup + icg) * kd + z) * kh + y) * kw + x]
                            sum += Double(xv) * Double(wv)
                        } } }
                    }
                    sum = activation.reference(sum)
                    output[(((n * g.outChannels + oc) * od + oz) * oh + oy) * ow + ox] = Float(sum)
                } } }
            }
        }
    }
}
