extension Pool {
    /// The definition: every tap of every window checked against the input bounds.
    public static func reference(_ kind: PoolKind, _ g: PoolGeometry, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        let d = g.dims3
        let pe = g.padEnd3
        let (od, oh, ow) = d.output
        let (id, ih, iw) = d.input
        let (kd, kh, kw) = d.kernel
        for p in 0..<g.planes {
            for oz in 0..<od { for oy in 0..<oh { for ox in 0..<ow {
                var m = -Float.infinity
                var sum: Double = 0
                var valid = 0, padded = 0
                for z in 0..<kd { for y in 0..<kh { for x in 0..<kw {
                    let iz = oz * d.strides.0 - d.pads.0 + z * d.dilations.0
                    let iy = oy * d.strides.1 - d.pads.1 + y * d.dilations.1
                    let ix = ox * d.strides.2 - d.pads.2 + x * d.dilations.2
                    if iz < id + pe.0 && iy < ih + pe.1 && ix < iw + pe.2 { padded += 1 }
                    guard iz >= 0, iz < id, iy >= 0, iy < ih, ix >= 0, ix < iw else { continue }
                    let v = input[((p * id + iz) * ih + iy) * iw + ix]
                    valid += 1
                    sum += Double(v)
                    if v > m { m = v }
                } } }
                let o = ((p * od + oz) * oh + oy) * ow + ox
                switch kind {
                case .max: output[o] = m
                case .average(let includePad):
                    let n = includePad ? padded : valid
                    output[o] = n > 0 ? Float(sum / Double(n)) : 0
                }
            } } }
        }
    }
}
