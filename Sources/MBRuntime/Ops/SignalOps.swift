import MBCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Signal processing for audio front ends: HannWindow, HammingWindow, BlackmanWindow, DFT
/// (forward, inverse, one-sided, real or complex input; opset 17's axis attribute and opset 20's
/// axis input) and STFT. Transforms are direct O(n^2) sums in Double: exact enough for any
/// length and simple; front ends transform short frames.
enum SignalOps {
    /// A window of `size` points from its cosine series a0 - a1 cos(2πn/N) + a2 cos(4πn/N), N = size
    /// (periodic) or size - 1 (symmetric).
    static func window(_ n: NodeContext, _ a: (Double, Double, Double)) throws -> OpRun {
        let periodic = try n.int("periodic", default: 1) != 0
        let outputCode = try n.int("output_datatype", default: 1)
        guard let declared = ElementType(rawValue: Int32(outputCode)) else { throw n.bad("output_datatype \(outputCode) is not an element type") }
        let type = try runtimeCastTarget(declared, n)
        return { i, c in
            let size = try IndexingOps.scalarInt(try i.required(0, "size"), "size")
            guard size >= 0 else { throw OpError("size \(size) is negative") }
            _ = try c.checkedBytes(.float, [size])  // before building the values
            let denominator = Double(periodic ? size : size - 1)
            let values = (0..<size).map { k -> Float in
                guard denominator > 0 else { return 1 }
                let t = 2 * Double.pi * Double(k) / denominator
                return Float(a.0 - a.1 * cos(t) + a.2 * cos(2 * t))
            }
            return [try castTensor(MBTensor(shape: [size], floats: values), to: type, c, rounding: declared)]
        }
    }

    /// The DFT of `x` (last axis 1 = real, 2 = complex) along `axis`: output last axis 2.
    static func dft(_ x: MBTensor, axis: Int, length requested: Int?, inverse: Bool, onesided: Bool, _ c: ExecutionContext) throws -> MBTensor {
        guard x.rank >= 2, x.shape[x.rank - 1] == 1 || x.shape[x.rank - 1] == 2 else {
            throw OpError("input \(x.shape) must end in an axis of 1 (real) or 2 (complex) values")
        }
        guard axis < x.rank - 1 else { throw OpError("axis \(axis) must not be the last (real/imaginary) axis of \(x.shape)") }
        let complexIn = x.shape[x.rank - 1] == 2
        let inLength = x.shape[axis]
        let n = requested ?? (inverse && onesided ? 2 * (inLength - 1) : inLength)
        guard n > 0 else { throw OpError("dft_length \(n) must be positive") }
        // Each transform holds its n (complex) samples: checked before they are built.
        _ = try c.checkedBytes(.double, [n, 2])
        // Inverse one-sided: the input holds bins 0...n/2 of a Hermitian spectrum; output real.
        let outLength = inverse ? n : (onesided ? n / 2 + 1 : n)
        var shape = x.shape
        shape[axis] = outLength
        shape[x.rank - 1] = inverse && onesided ? 1 : 2
        let y = try c.alloc(.float, shape)
        let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)..<(x.rank - 1)].reduce(1, *)
        let inStride = inner * (complexIn ? 2 : 1), outParts = shape[x.rank - 1]
        let src = x.pointer(Float.self), dst = y.mutable(Float.self)
        let sign: Double = inverse ? 1 : -1
        for o in 0..<outer {
            for q in 0..<inner {
                /// Input sample j (zero past the input, or the Hermitian mirror for inverse one-sided).
                func sample(_ j: Int) -> (Double, Double) {
                    if inverse && onesided {
                        let m = j < inLength ? j : n - j
                        guard m >= 0, m < inLength else { return (0, 0) }
                        let at = (o * inLength + m) * inStride + q * (complexIn ? 2 : 1)
                        let re = Double(src[at]), im = complexIn ? Double(src[at + 1]) : 0
                        return j < inLength ? (re, im) : (re, -im)
                    }
                    guard j < inLength else { return (0, 0) }
                    let at = (o * inLength + j) * inStride + q * (complexIn ? 2 : 1)
                    return (Double(src[at]), complexIn ? Double(src[at + 1]) : 0)
                }
                let samples = (0..<n).map(sample)
                for k in 0..<outLength {
                    var re = 0.0, im = 0.0
                    for (j, s) in samples.enumerated() {
                        let t = sign * 2 * Double.pi * Double((k * j) % n) / Double(n)
                        re += s.0 * cos(t) - s.1 * sin(t)
                        im += s.0 * sin(t) + s.1 * cos(t)
                    }
                    if inverse { re /= Double(n); im /= Double(n) }
                    let at = ((o * outLength + k) * inner + q) * outParts
                    dst[at] = Float(re)
                    if outParts == 2 { dst[at + 1] = Float(im) }
                }
            }
        }
        return y
    }

    static let table: [String: OpTable.Compile] = [
        "HannWindow": { try window($0, (0.5, 0.5, 0)) },
        "HammingWindow": { try window($0, (25.0 / 46.0, 21.0 / 46.0, 0)) },
        "BlackmanWindow": { try window($0, (0.42, 0.5, 0.08)) },
        "DFT": { n in
            let inverse = try n.int("inverse", default: 0) != 0, onesided = try n.int("onesided", default: 0) != 0
            let axisFromInput = n.opset >= 20
            let axisAttr = try n.int("axis", default: 1)
            return { i, c in
                let x = try i.float(0, "input")
                let length = try i[1].flatMap { $0.count > 0 ? try IndexingOps.scalarInt($0, "dft_length") : nil }
                let axisValue = axisFromInput ? try i[2].map { try IndexingOps.scalarInt($0, "axis") } ?? -2 : axisAttr
                let axis = try normalizeAxis(axisValue, rank: x.rank)
                return [try dft(x, axis: axis, length: length, inverse: inverse, onesided: onesided, c)]
            }
        },
        "STFT": { n in
            let onesided = try n.int("onesided", default: 1) != 0
            return { i, c in
                let signal = try i.float(0, "signal")
                guard signal.rank == 3 else { throw OpError("signal \(signal.shape) must be [batch, length, 1 or 2]") }
                let step = try IndexingOps.scalarInt(try i.required(1, "frame_step"), "frame_step")
                let window = try i[2].map { _ in try i.float(2, "window") }
                let frameLength = try i[3].map { try IndexingOps.scalarInt($0, "frame_length") } ?? window?.count ?? signal.shape[1]
                let (batch, length, parts) = (signal.shape[0], signal.shape[1], signal.shape[2])
                guard step > 0, frameLength > 0, frameLength <= length, window.map({ $0.count == frameLength }) ?? true else {
                    throw OpError("frame_step \(step), frame_length \(frameLength) and window \(window?.shape ?? []) do not fit a signal of \(length)")
                }
                let frames = 1 + (length - frameLength) / step
                // The windowed frames as [batch, frames, frameLength, parts], transformed along axis 2.
                let framed = try c.alloc(.float, [batch, frames, frameLength, parts])
                let s = signal.pointer(Float.self), d = framed.mutable(Float.self), w = window?.pointer(Float.self)
                for b in 0..<batch {
                    for f in 0..<frames {
                        for j in 0..<frameLength {
                            for p in 0..<parts {
                                d[((b * frames + f) * frameLength + j) * parts + p] = s[(b * length + f * step + j) * parts + p] * (w?[j] ?? 1)
                            }
                        }
                    }
                }
                return [try dft(framed, axis: 2, length: frameLength, inverse: false, onesided: onesided, c)]
            }
        },
    ]
}
