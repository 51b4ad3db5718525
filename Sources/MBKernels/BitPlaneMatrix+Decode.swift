extension BitPlaneMatrix {
    /// The weights as floats, exactly `PackedTensor.dequantized()` (levels added in Float from
    /// level 1 up), written at `offset + row * rowStride + tap * tapStride + channel * channelStride`.
    /// For float activations through the float kernels; `decodeReference` is its plain twin.
    /// `rowBlocks` limits the work to some blocks of 8 rows (disjoint rows: callers split it across threads).
    public func decode(into out: UnsafeMutablePointer<Float>, offset: Int = 0, rowStride: Int, tapStride: Int, channelStride: Int,
                       rowBlocks: Range<Int>? = nil) {
        for b in rowBlocks ?? 0..<blocks {
            for k in 0..<levels {
                let list = b * levels + k
                let e0 = Int(listStart.pointer[list]), e1 = Int(listStart.pointer[list + 1])
                let full = listFull.pointer[list] == 1
                let acts = entryActs.pointer + 8 * (Int(listActs.pointer[list]) - e0)
                for e in e0..<e1 {
                    let w = Int(entryWord.pointer[e]), t = w / wordsPerTap, i = w % wordsPerTap
                    for r in 0..<8 {
                        let o = Int(rowOrder[8 * b + r])
                        guard o >= 0 else { continue }
                        let mu = scales.pointer[k * blocks * 8 + 8 * b + r]
                        var a = full ? validMask.pointer[i] : acts[8 * e + r]
                        let s = entrySigns.pointer[8 * e + r]
                        let base = offset + o * rowStride + t * tapStride + 64 * i * channelStride
                        while a != 0 {
                            let bit = a.trailingZeroBitCount
                            a &= a &- 1
                            let term = (s >> UInt64(bit)) & 1 == 1 ? mu : -mu
                            let j = base + bit * channelStride
                            out[j] = k == 0 ? term : out[j] + term
                        }
                    }
                }
            }
        }
    }
}
