import Foundation
import MBCore

extension LutConvInt8Weights {
    /// The plain twin of `forward` for one image, from the weight's mask and signs (not the
    /// kernel's codes): the same int8 tables and table scales, exact integer sums per level and
    /// block, and the same float operations in the same order, so it equals both kernel bodies
    /// bit for bit. Levels where a row has some entries active and some not count pairs of
    /// lookups at half scale, exactly as the kernel does (`halves`).
    public static func reference(
        rows: Int, reduction K: Int, mask: [UInt8], signBits signs: [[UInt64]], scales levelScales: [[Float]], perRowScales perRow: Bool,
        halves: [Int32], rowScale: [Float]? = nil, _ g: ConvGeometry, input x: [Float], bias: [Float]?
    ) -> [Float] {
        let d = g.dims3, taps = g.kernelSize, positions = g.outputSize
        let quads = (K + 15) / 16, groups = quads * 4, blockQuads = 16, blocks = (quads + blockQuads - 1) / blockQuads
        var y = [Float](repeating: 0, count: rows * positions)
        for p in 0..<positions {
            let oh = p / d.output.2, ow = p % d.output.2
            // The input entry k of this position (0 in the padding and past the reduction).
            let column: [Float] = (0..<(groups * 4)).map { k in
                guard k < K else { return 0 }
                let c = k / taps, t = k % taps
                let ih = oh * d.strides.1 - d.pads.1 + (t / d.kernel.2) * d.dilations.1
                let iw = ow * d.strides.2 - d.pads.2 + (t % d.kernel.2) * d.dilations.2
                guard ih >= 0, ih < d.input.1, iw >= 0, iw < d.input.2 else { return 0 }
                return x[c * g.inputSize + ih * d.input.2 + iw]
            }
            let (table, tableScale) = quantizedTables(column, groups: groups, blockGroups: blockQuads * 4)
            for o in 0..<rows {
                var acc: Float = 0
                for l in 0..<halves.count {
                    let pair = halves[l] == 2
                    let scale = planeScale(level: l, row: o, pair: pair, scales: levelScales, perRow: perRow, rowScale: rowScale, mask: mask, reduction: K)
                    for b in 0..<blocks {
                        var sum: Int32 = 0
                        for grp in (b * blockQuads * 4)..<min(groups, (b + 1) * blockQuads * 4) {
                            sum += lookup(table[grp], pair: pair, mask: mask, signs: signs, level: l, first: o * K + 4 * grp, count: min(4, K - 4 * grp))
                        }
                        acc = acc + Float(sum) * (scale * tableScale[b])
                    }
                }
                y[o * positions + p] = acc + (bias?[o] ?? 0)
            }
        }
        return y
    }
}

extension LutConvInt8Weights {
    /// The plain twin of `forward` on pixel tables (`pixelChannels`) for one image, from a
    /// tap-major mask and signs (entry t * channels + c; `tapMajor`): per input pixel and block
    /// of 256 channels the same int8 tables as `reference` with the pixel's scale; per plane
    /// acc = fma(float(block sum), pixel scale, acc) over taps and blocks, then
    /// total = fma(level scale, acc, total) over planes, y = total + bias: the kernels' operations
    /// in their order, so it equals both bodies bit for bit.
    public static func referencePixels(
        rows: Int, channels C: Int, mask: [UInt8], signBits signs: [[UInt64]], scales levelScales: [[Float]], perRowScales perRow: Bool,
        halves: [Int32], rowScale: [Float]? = nil, _ g: ConvGeometry, input x: [Float], bias: [Float]?
    ) -> [Float] {
        let d = g.dims3, taps = g.kernelSize, K = C * taps, positions = g.outputSize
        let groups = C / 4, blockGroups = 64, blocks = (groups + blockGroups - 1) / blockGroups
        // Tables [group][code] and scales [block] of every input pixel (zero outside the image).
        var tables = [[[Int32]]](), tableScales = [[Float]]()
        for pixel in 0..<g.inputSize {
            let column = (0..<C).map { x[$0 * g.inputSize + pixel] }
            let (t, s) = quantizedTables(column, groups: groups, blockGroups: blockGroups)
            tables.append(t)
            tableScales.append(s)
        }
        let zeroTable = [[Int32]](repeating: [Int32](repeating: 0, count: 16), count: groups), zeroScales = [Float](repeating: 0, count: blocks)
        var y = [Float](repeating: 0, count: rows * positions)
        for p in 0..<positions {
            let oh = p / d.output.2, ow = p % d.output.2
            for o in 0..<rows {
                var total: Float = 0
                for l in 0..<halves.count {
                    let pair = halves[l] == 2
                    let scale = planeScale(level: l, row: o, pair: pair, scales: levelScales, perRow: perRow, rowScale: rowScale, mask: mask, reduction: K)
                    var acc: Float = 0
                    for t in 0..<taps {
                        let ih = oh * d.strides.1 - d.pads.1 + (t / d.kernel.2) * d.dilations.1
                        let iw = ow * d.strides.2 - d.pads.2 + (t % d.kernel.2) * d.dilations.2
                        let inside = ih >= 0 && ih < d.input.1 && iw >= 0 && iw < d.input.2
                        let table = inside ? tables[ih * d.input.2 + iw] : zeroTable
                        let ts = inside ? tableScales[ih * d.input.2 + iw] : zeroScales
                        for b in 0..<blocks {
                            var sum: Int32 = 0
                            for grp in (b * blockGroups)..<min(groups, (b + 1) * blockGroups) {
                                sum += lookup(table[grp], pair: pair, mask: mask, signs: signs, level: l, first: o * K + t * C + 4 * grp, count: 4)
                            }
                            acc = acc.addingProduct(Float(sum), ts[b])
                        }
                    }
                    total = total.addingProduct(scale, acc)
                }
                y[o * positions + p] = total + (bias?[o] ?? 0)
            }
        }
        return y
    }

    /// Per block of `blockGroups` groups of 4 entries of `column`: scale m / 127 (m the block's
    /// largest sum of |x| over a group) and each group's 16 int8 entries, code bit j = + for entry
    /// j: round-to-nearest-even(((±x0 ±x1) + (±x2 ±x3)) * 127 / m) for codes 8 ... 15 (the
    /// kernels' order, pairs formed as p and q), their negations for codes 7 ... 0.
    static func quantizedTables(_ column: [Float], groups: Int, blockGroups: Int) -> (tables: [[Int32]], scales: [Float]) {
        let blocks = (groups + blockGroups - 1) / blockGroups
        var tables = [[Int32]](repeating: [Int32](repeating: 0, count: 16), count: groups)
        var scales = [Float](repeating: 0, count: blocks)
        for b in 0..<blocks {
            let g0 = b * blockGroups, g1 = min(groups, g0 + blockGroups)
            var m: Float = 0
            for grp in g0..<g1 {
                let a = (abs(column[4 * grp]) + abs(column[4 * grp + 1])) + (abs(column[4 * grp + 2]) + abs(column[4 * grp + 3]))
                m = a > m ? a : m
            }
            scales[b] = m / 127
            let inv: Float = m > 0 ? 127 / m : 0
            for grp in g0..<g1 {
                let x0 = column[4 * grp], x1 = column[4 * grp + 1], x2 = column[4 * grp + 2], x3 = column[4 * grp + 3]
                for code in 8..<16 {
                    let pv: Float = [-x0 - x1, x0 - x1, x1 - x0, x0 + x1][code & 3]
                    let qv: Float = [-x2 - x3, x2 - x3, x3 - x2, x2 + x3][code >> 2]
                    tables[grp][code] = Int32(((pv + qv) * inv).rounded(.toNearestOrEven))
                }
                for code in 0..<8 { tables[grp][code] = -tables[grp][15 - code] }
            }
        }
        return (tables, scales)
    }

    /// The scale a plane adds its sums at for `row`: the level's (times `rowScale`), halved for a
    /// pair plane, 0 for a one-set plane the row does not have.
    static func planeScale(level l: Int, row o: Int, pair: Bool, scales levelScales: [[Float]], perRow: Bool, rowScale: [Float]?, mask: [UInt8],
                           reduction K: Int) -> Float {
        var s: Float = l < levelScales.count ? levelScales[l][perRow ? o : 0] : 0
        if let rowScale { s *= rowScale[o] }
        let rowActive = K > 0 && Int(mask[o * K]) > l
        return pair ? 0.5 * s : (rowActive ? s : 0)
    }

    /// One group's lookup at `level`: flat entries first ..< first + count of the weight (entries
    /// past `count` count as active with any sign: their inputs are 0); a pair plane looks up both
    /// codes (inactive entries + in one, - in the other).
    static func lookup(_ table: [Int32], pair: Bool, mask: [UInt8], signs: [[UInt64]], level l: Int, first: Int, count: Int) -> Int32 {
        var active = 0, plus = 0
        for j in 0..<4 {
            guard j < count else { active |= 1 << j; continue }
            let flat = first + j
            if Int(mask[flat]) > l { active |= 1 << j }
            if l < signs.count, (signs[l][flat >> 6] >> UInt64(flat & 63)) & 1 == 1 { plus |= 1 << j }
        }
        return pair ? table[(plus & active) | (~active & 15)] + table[plus & active] : table[plus]
    }
}
