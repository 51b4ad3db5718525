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
            // Tables: table[group][code], code bit j = + for entry 4 * group + j.
            var table = [[Int32]](repeating: [Int32](repeating: 0, count: 16), count: groups)
            var tableScale = [Float](repeating: 0, count: blocks)
            for b in 0..<blocks {
                let g0 = b * blockQuads * 4, g1 = min(groups, (b + 1) * blockQuads * 4)
                var m: Float = 0
                for grp in g0..<g1 {
                    let v = column[(4 * grp)..<(4 * grp + 4)].map { abs($0) }
                    let a = (v[v.startIndex] + v[v.startIndex + 1]) + (v[v.startIndex + 2] + v[v.startIndex + 3])
                    m = a > m ? a : m
                }
                tableScale[b] = m / 127
                let inv: Float = m > 0 ? 127 / m : 0
                for grp in g0..<g1 {
                    for code in 0..<16 {
                        var sum: Float = 0
                        // The kernels' order: (±x0 ±x1) + (±x2 ±x3), pairs formed as p and q.
                        let x0 = column[4 * grp], x1 = column[4 * grp + 1], x2 = column[4 * grp + 2], x3 = column[4 * grp + 3]
                        let pv: Float = [-x0 - x1, x0 - x1, x1 - x0, x0 + x1][code & 3]
                        let qv: Float = [-x2 - x3, x2 - x3, x3 - x2, x2 + x3][code >> 2]
                        if code >= 8 {
                            sum = pv + qv
                            table[grp][code] = Int32((sum * inv).rounded(.toNearestOrEven))
                        }
                    }
                    for code in 0..<8 { table[grp][code] = -table[grp][15 - code] }
                }
            }
            for o in 0..<rows {
                var acc: Float = 0
                for l in 0..<halves.count {
                    let pair = halves[l] == 2
                    var s: Float = l < levelScales.count ? levelScales[l][perRow ? o : 0] : 0
                    if let rowScale { s *= rowScale[o] }
                    let rowActive = K > 0 && Int(mask[o * K]) > l
                    let scale: Float = pair ? 0.5 * s : (rowActive ? s : 0)
                    for b in 0..<blocks {
                        var sum: Int32 = 0
                        for grp in (b * blockQuads * 4)..<min(groups, (b + 1) * blockQuads * 4) {
                            var active = 0, plus = 0
                            for j in 0..<4 {
                                let k = 4 * grp + j
                                guard k < K else { active |= 1 << j; continue }
                                if Int(mask[o * K + k]) > l { active |= 1 << j }
                                if l < signs.count, (signs[l][(o * K + k) >> 6] >> UInt64((o * K + k) & 63)) & 1 == 1 { plus |= 1 << j }
                            }
                            if pair {
                                sum += table[grp][(plus & active) | (~active & 15)] + table[grp][plus & active]
                            } else {
                                sum += table[grp][plus]
                            }
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
            var t = [[Int32]](repeating: [Int32](repeating: 0, count: 16), count: groups)
            var s = [Float](repeating: 0, count: blocks)
            for b in 0..<blocks {
                let g0 = b * blockGroups, g1 = min(groups, g0 + blockGroups)
                var m: Float = 0
                for grp in g0..<g1 {
                    let a = (abs(column[4 * grp]) + abs(column[4 * grp + 1])) + (abs(column[4 * grp + 2]) + abs(column[4 * grp + 3]))
                    m = a > m ? a : m
                }
                s[b] = m / 127
                let inv: Float = m > 0 ? 127 / m : 0
                for grp in g0..<g1 {
                    let x0 = column[4 * grp], x1 = column[4 * grp + 1], x2 = column[4 * grp + 2], x3 = column[4 * grp + 3]
                    for code in 8..<16 {
                        let pv: Float = [-x0 - x1, x0 - x1, x1 - x0, x0 + x1][code & 3]
                        let qv: Float = [-x2 - x3, x2 - x3, x3 - x2, x2 + x3][code >> 2]
                        t[grp][code] = Int32(((pv + qv) * inv).rounded(.toNearestOrEven))
                    }
                    for code in 0..<8 { t[grp][code] = -t[grp][15 - code] }
                }
            }
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
                    var s: Float = l < levelScales.count ? levelScales[l][perRow ? o : 0] : 0
                    if let rowScale { s *= rowScale[o] }
                    let rowActive = K > 0 && Int(mask[o * K]) > l
                    let scale: Float = pair ? 0.5 * s : (rowActive ? s : 0)
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
                                var active = 0, plus = 0
                                for j in 0..<4 {
                                    let flat = o * K + t * C + 4 * grp + j
                                    if Int(mask[flat]) > l { active |= 1 << j }
                                    if l < signs.count, (signs[l][flat >> 6] >> UInt64(flat & 63)) & 1 == 1 { plus |= 1 << j }
                                }
                                sum += pair ? table[grp][(plus & active) | (~active & 15)] + table[grp][plus & active] : table[grp][plus]
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
}
