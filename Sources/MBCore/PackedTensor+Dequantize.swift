extension PackedTensor {
    /// T_hat in flat order: for each entry, `s_1 * mu_1 + s_2 * mu_2 + ...` up to its bit width,
    /// added in Float from level 1 up. The fast version; `dequantizedReference()` is its twin and
    /// the two agree bit for bit. The tensor must be valid (`validate()`).
    public func dequantized() -> [Float] {
        let layout = self.layout
        let n = count
        guard n > 0 else { return [] }
        let groupMajorMask = layout.toGroupMajor(mask)
        var out = [Float](repeating: 0, count: n)
        let groupSize = layout.groupSize
        out.withUnsafeMutableBufferPointer { out in
            groupMajorMask.withUnsafeBufferPointer { mask in
                // Level 1 reaches every entry: bit p of the stream belongs to entry p.
                levels[0].signs.withUnsafeBufferPointer { words in
                    for (g, mu) in levels[0].scales.enumerated() {
                        let start = g * groupSize
                        for p in start..<(start + groupSize) {
                            let bit = (words[p >> 6] &>> UInt64(p & 63)) & 1
                            out[p] = bit == 1 ? mu : -mu
                        }
                    }
                }
                // Higher levels: walk the entries, taking the next bit for each active one.
                for k in 1..<levels.count {
                    let level = UInt8(k + 1)
                    levels[k].signs.withUnsafeBufferPointer { words in
                        var cursor = 0
                        for (g, mu) in levels[k].scales.enumerated() where levels[k].activeCounts[g] > 0 {
                            let start = g * groupSize
                            for p in start..<(start + groupSize) where mask[p] >= level {
                                let bit = (words[cursor >> 6] &>> UInt64(cursor & 63)) & 1
                                cursor &+= 1
                                out[p] += bit == 1 ? mu : -mu
                            }
                        }
                    }
                }
            }
        }
        return layout.toFlat(out)
    }

    /// The plain definition of `dequantized()`: one entry at a time, one level at a time.
    public func dequantizedReference() -> [Float] {
        let layout = self.layout
        let groupMajorMask = layout.toGroupMajor(mask)
        var out = [Float](repeating: 0, count: count)
        var cursor = [Int](repeating: 0, count: levels.count)
        for p in 0..<count {
            let g = p / layout.groupSize
            var sum: Float = 0
            for k in 0..<Int(groupMajorMask[p]) {
                let term = levels[k].sign(cursor[k]) * levels[k].scales[g]
                cursor[k] += 1
                sum = k == 0 ? term : sum + term
            }
            out[p] = sum
        }
        return layout.toFlat(out)
    }

    /// The sign of every level for every entry, flat order: `signs[k][j]` is +1, -1, or 0 where
    /// entry j's bit width is below level k + 1. For tests and exact-mode comparisons.
    public func unpackedSigns() -> [[Int8]] {
        let layout = self.layout
        let groupMajorMask = layout.toGroupMajor(mask)
        var out = [[Int8]](repeating: [Int8](repeating: 0, count: count), count: levels.count)
        var cursor = [Int](repeating: 0, count: levels.count)
        for p in 0..<count {
            for k in 0..<Int(groupMajorMask[p]) {
                out[k][layout.flatIndex(ofGroupMajor: p)] = levels[k].sign(cursor[k]) > 0 ? 1 : -1
                cursor[k] += 1
            }
        }
        return out
    }
}
