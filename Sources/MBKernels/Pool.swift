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
    /// Whether `g` has one window covering each whole plane: no padding, no dilation, one output
    /// position (the average is then the plane's mean whatever count_include_pad says).
    public static func isGlobal(_ g: PoolGeometry) -> Bool {
        g.kernel == g.input && g.output.allSatisfy { $0 == 1 } && g.dilations.allSatisfy { $0 == 1 } &&
            g.padBegin.allSatisfy { $0 == 0 } && g.padEnd.allSatisfy { $0 == 0 }
    }

    /// Fast variant: parallel over planes; for each output row the taps are the outer loops and
    /// the output positions the inner one, over the positions where the tap is in range (no
    /// bounds checks or branches inside). NaN inputs are not propagated (as with maxps).
    public static func forward(
        _ variant: KernelVariant = .fast, _ kind: PoolKind, _ g: PoolGeometry,
        input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        if variant == .reference {
            reference(kind, g, input: input, output: output)
            return
        }
        if case .average = kind, isGlobal(g) {
            // One window over the whole plane (ResNet's 7×7 head): one SIMD pass per plane.
            Reduce.forward(.fast, .mean, outer: g.planes, length: g.input.reduce(1, *), inner: 1, input: input, output: output, threads: threads)
            return
        }
        if case .max = kind, maxPool2DValid(g, input: input, output: output, threads: threads) { return }
        if case .max = kind, maxPool2DPadded(g, input: input, output: output, threads: threads) { return }
        let d = g.dims3
        let pe = g.padEnd3
        let (od, oh, ow) = d.output
        let (id, ih, iw) = d.input
        let inSize = d.inputSize, outSize = d.outputSize
        let out = UncheckedSendable(output)
        // Per dimension and output index: the in-range taps [lo, hi) and the padded tap count.
        func taps(_ outCount: Int, stride: Int, pad: Int, padEnd: Int, k: Int, dil: Int, n: Int) -> (lo: [Int], hi: [Int], padded: [Int]) {
            var lo: [Int] = [], hi: [Int] = [], padded: [Int] = []
            for o in 0..<outCount {
                let start = o * stride - pad
                var l = 0
                while l < k && start + l * dil < 0 { l += 1 }
                var h = k
                while h > l && start + (h - 1) * dil >= n { h -= 1 }
                var p = 0
                for t in 0..<k where start + t * dil < n + padEnd { p += 1 }
                lo.append(l); hi.append(h); padded.append(p)
            }
            return (lo, hi, padded)
        }
        let tz = taps(od, stride: d.strides.0, pad: d.pads.0, padEnd: pe.0, k: d.kernel.0, dil: d.dilations.0, n: id)
        let ty = taps(oh, stride: d.strides.1, pad: d.pads.1, padEnd: pe.1, k: d.kernel.1, dil: d.dilations.1, n: ih)
        let tx = taps(ow, stride: d.strides.2, pad: d.pads.2, padEnd: pe.2, k: d.kernel.2, dil: d.dilations.2, n: iw)
        let (sz, sy, sx) = d.strides
        let (pz, py, px) = d.pads
        let (dz, dy, dx) = d.dilations
        let isMax: Bool, includePad: Bool
        switch kind {
        case .max: isMax = true; includePad = false
        case .average(let inc): isMax = false; includePad = inc
        }
        tz.lo.withUnsafeBufferPointer { zlo in tz.hi.withUnsafeBufferPointer { zhi in
        ty.lo.withUnsafeBufferPointer { ylo in ty.hi.withUnsafeBufferPointer { yhi in
        tx.lo.withUnsafeBufferPointer { xlo in tx.hi.withUnsafeBufferPointer { xhi in
            let zl = UncheckedSendable((zlo, zhi, ylo, yhi, xlo, xhi))
            Parallel.forEach(g.planes, threads: g.planes * outSize > 4096 ? threads : 1) { p in
                let (zlo, zhi, ylo, yhi, xlo, xhi) = zl.value
                let src = input + p * inSize
                var dst = out.value + p * outSize
                // Taps outermost, output positions innermost (no branches in the inner loop).
                let xRanges = (0..<d.kernel.2).map { c in validRange(outCount: ow, inCount: iw, stride: sx, offset: c * dx - px) }
                for oz in 0..<od {
                    let bz = oz * sz - pz
                    for oy in 0..<oh {
                        let by = oy * sy - py
                        dst.update(repeating: isMax ? -Float.infinity : 0, count: ow)
                        for a in zlo[oz]..<zhi[oz] {
                            for b in ylo[oy]..<yhi[oy] {
                                let row = src + ((bz + a * dz) * ih + by + b * dy) * iw
                                for c in 0..<d.kernel.2 {
                                    let off = c * dx - px
                                    let r = xRanges[c]
                                    if isMax {
                                        if sx == 1 {
                                            for ox in r { let v = row[ox + off]; dst[ox] = dst[ox] > v ? dst[ox] : v }
                                        } else {
                                            for ox in r { let v = row[ox &* sx &+ off]; dst[ox] = dst[ox] > v ? dst[ox] : v }
                                        }
                                    } else {
                                        if sx == 1 {
                                            for ox in r { dst[ox] += row[ox + off] }
                                        } else {
                                            for ox in r { dst[ox] += row[ox &* sx &+ off] }
                                        }
                                    }
                                }
                            }
                        }
                        if !isMax {
                            for ox in 0..<ow {
                                let n = includePad ? tz.padded[oz] * ty.padded[oy] * tx.padded[ox]
                                    : (zhi[oz] - zlo[oz]) * (yhi[oy] - ylo[oy]) * (xhi[ox] - xlo[ox])
                                dst[ox] = n > 0 ? dst[ox] / Float(n) : 0
                            }
                        }
                        dst += ow
                    }
                }
            }
        } } } } } }
    }
}
