import Foundation
import MBCore

extension DotConvInt8Weights {
    /// The plain twin of `forward` for one image (no activation), from the weight's mask, signs
    /// and scales (not the kernel's planes): the same quantization of each position's inputs, the
    /// exact integer sum per plane, and the same float operations in the same order
    /// (t = fma(level scale, float(sum), t) per plane from 0; y = fma(t, position scale, bias)),
    /// plus `residual` (the output's shape) when given, so it equals both kernel bodies bit for bit.
    public static func reference(
        rows: Int, reduction K: Int, mask: [UInt8], signBits signs: [[UInt64]], scales levelScales: [[Float]], perRowScales perRow: Bool,
        _ g: ConvGeometry, input x: [Float], bias: [Float]?, residual: [Float]? = nil
    ) -> [Float] {
        let d = g.dims3, positions = g.outputSize, L = max(1, signs.count)
        var y = [Float](repeating: 0, count: rows * positions)
        for p in 0..<positions {
            let ih = p / d.output.2 * d.strides.1, iw = p % d.output.2 * d.strides.2
            let column = (0..<K).map { x[$0 * g.inputSize + ih * d.input.2 + iw] }
            let (q, scale) = quantized(column)
            for o in 0..<rows {
                var t: Float = 0
                for l in 0..<L {
                    var sum = 0
                    for k in 0..<K { sum += Int(planeWeight(mask: mask, signs: signs, level: l, flat: o * K + k)) * q[k] }
                    let s: Float = l < levelScales.count ? levelScales[l][perRow ? o : 0] : 0
                    t = t.addingProduct(s, Float(sum))
                }
                let v = (bias?[o] ?? 0).addingProduct(t, scale)
                y[o * positions + p] = residual.map { v + $0[o * positions + p] } ?? v
            }
        }
        return y
    }

    /// One position's inputs quantized as the kernel does (see BitPlanesDotConv8.c): the values
    /// q - zero point (in -127...255) and the scale, |x - scale * value| <= scale / 2.
    public static func quantized(_ column: [Float]) -> (values: [Int], scale: Float) {
        var m: Float = 0
        var negative = false
        for v in column {
            m = abs(v) > m ? abs(v) : m
            negative = negative || v < 0
        }
        guard m != 0 else { return ([Int](repeating: 0, count: column.count), 0) }
        let top: Float = negative ? 127 : 255, zero = negative ? 128 : 0
        let inverse = top / m
        let values = column.map { v -> Int in
            let q = Int((v * inverse).rounded(.toNearestOrEven)) + zero
            return min(255, max(0, q)) - zero
        }
        return (values, m / top)
    }
}
