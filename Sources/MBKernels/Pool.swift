/// Max and average pooling over 1 to 3 spatial dimensions, planes = batch × channels.
public struct PoolGeometry: Sendable, Equatable, CustomStringConvertible {
    public var planes: Int
    public var input: [Int]
    public var kernel: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var padBegin: [Int]
    public var padEnd: [Int]
    /// Output size computed by the caller (ceil_mode and auto_pad decide it).
    public var output: [Int]

    public init(planes: Int, input: [Int], kernel: [Int], strides: [Int], dilations: [Int], padBegin: [Int], padEnd: [Int], output: [Int]) {
        self.planes = planes
        self.input = input
        self.kernel = kernel
        self.strides = strides
        self.dilations = dilations
        self.padBegin = padBegin
        self.padEnd = padEnd
        self.output = output
    }

    public var dims3: Dims3 {
        Dims3(input: ConvGeometry.spatial3(input, fill: 1), output: ConvGeometry.spatial3(output, fill: 1),
              kernel: ConvGeometry.spatial3(kernel, fill: 1), strides: ConvGeometry.spatial3(strides, fill: 1),
              dilations: ConvGeometry.spatial3(dilations, fill: 1), pads: ConvGeometry.spatial3(padBegin, fill: 0))
    }

    /// padEnd as 3 entries.
    var padEnd3: (Int, Int, Int) { ConvGeometry.spatial3(padEnd, fill: 0) }

    public var description: String {
        "planes=\(planes) in=\(input) k=\(kernel) s=\(strides) d=\(dilations) pads=\(padBegin)+\(padEnd) out=\(output)"
    }
}

public enum PoolKind: Sendable, Equatable {
    case max
    /// Average; with `countIncludePad` the divisor counts padded positions inside
    /// `[-padBegin, input + padEnd)` (positions past that, from ceil_mode, never count).
    case average(countIncludePad: Bool)
}

public enum Pool {
    /// Fast variant: parallel over planes; each window's in-range part is computed once per
    /// output position, so the inner loop has no bounds checks.
    public static func forward(
        _ variant: KernelVariant = .fast, _ kind: PoolKind, _ g: PoolGeometry,
        input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        if variant == .reference {
            reference(kind, g, input: input, output: output)
            return
        }
        let d = g.dims3
        let pe = g.padEnd3
        let (od, oh, ow) = d.output
        let (id, ih, iw) = d.input
        let inSize = d.inputSize, outSize = d.outputSize
        let out = UncheckedSendable(output)
        // Per-dimension window ranges: valid taps [lo, hi) and the padded count.
        func taps(_ o: Int, stride: Int, pad: Int, padEnd: Int, k: Int, dil: Int, n: Int) -> (lo: Int, hi: Int, padded: Int) {
            let start = o * stride - pad
            var lo = 0
            while lo < k && start + lo * dil < 0 { lo += 1 }
            var hi = k
            while hi > lo && start + (hi - 1) * dil >= n { hi -= 1 }
            var padded = 0
            for t in 0..<k where start + t * dil < n + padEnd { padded += 1 }
            return (lo, hi, padded)
        }
        let tz = (0..<od).map { taps($0, stride: d.strides.0, pad: d.pads.0, padEnd: pe.0, k: d.kernel.0, dil: d.dilations.0, n: id) }
        let ty = (0..<oh).map { taps($0, stride: d.strides.1, pad: d.pads.1, padEnd: pe.1, k: d.kernel.1, dil: d.dilations.1, n: ih) }
        let tx = (0..<ow).map { taps($0, stride: d.strides.2, pad: d.pads.2, padEnd: pe.2, k: d.kernel.2, dil: d.dilations.2, n: iw) }
        Parallel.forEach(g.planes, threads: threads) { p in
            let src = input + p * inSize
            var dst = out.value + p * outSize
            for oz in 0..<od {
                let z = tz[oz], bz = oz * d.strides.0 - d.pads.0
                for oy in 0..<oh {
                    let y = ty[oy], by = oy * d.strides.1 - d.pads.1
                    for ox in 0..<ow {
                        let x = tx[ox], bx = ox * d.strides.2 - d.pads.2
                        switch kind {
                        case .max:
                            var m = -Float.infinity
                            for a in z.lo..<z.hi { for b in y.lo..<y.hi {
                                let row = src + ((bz + a * d.dilations.0) * ih + by + b * d.dilations.1) * iw + bx
                                for c in x.lo..<x.hi { let v = row[c * d.dilations.2]; if v > m || v.isNaN { m = v } }
                            } }
                            dst[ox] = m
                        case .average(let includePad):
                            var s: Float = 0
                            for a in z.lo..<z.hi { for b in y.lo..<y.hi {
                                let row = src + ((bz + a * d.dilations.0) * ih + by + b * d.dilations.1) * iw + bx
                                for c in x.lo..<x.hi { s += row[c * d.dilations.2] }
                            } }
                            let n = includePad ? z.padded * y.padded * x.padded : (z.hi - z.lo) * (y.hi - y.lo) * (x.hi - x.lo)
                            dst[ox] = n > 0 ? s / Float(n) : 0
                        }
                    }
                    dst += ow
                }
            }
        }
    }
}
