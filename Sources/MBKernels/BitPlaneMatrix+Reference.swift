extension BitPlaneMatrix {
    /// Plain twin of `gemv`: every bit of every stored word, one at a time, summed in Double.
    public func gemvReference(x: UnsafePointer<Float>, bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>) {
        for br in 0..<(blocks * 8) {
            let o = Int(rowOrder[br])
            guard o >= 0 else { continue }
            var total = 0.0
            for k in 0..<levels {
                var sum = 0.0
                for w in 0..<wordsPerRow {
                    let (act, sign) = words(blockRow: br, level: k, word: w)
                    for bit in 0..<64 where (act >> UInt64(bit)) & 1 == 1 {
                        let v = Double(x[w * 64 + bit])
                        sum += (sign >> UInt64(bit)) & 1 == 1 ? v : -v
                    }
                }
                total += Double(scale(blockRow: br, level: k)) * sum
            }
            y[o] = Float(total + Double(bias?[o] ?? 0))
        }
    }

    /// Plain twin of the kernels' per-level sums: `out[k * blocks * 8 + block row]` =
    /// sum over the row's active entries at level k of s x, in Double.
    public func levelSumsReference(x: UnsafePointer<Float>) -> [Float] {
        var out = [Float](repeating: 0, count: levels * blocks * 8)
        for br in 0..<(blocks * 8) where rowOrder[br] >= 0 {
            for k in 0..<levels {
                var sum = 0.0
                for w in 0..<wordsPerRow {
                    let (act, sign) = words(blockRow: br, level: k, word: w)
                    for bit in 0..<64 where (act >> UInt64(bit)) & 1 == 1 {
                        let v = Double(x[w * 64 + bit])
                        sum += (sign >> UInt64(bit)) & 1 == 1 ? v : -v
                    }
                }
                out[k * blocks * 8 + br] = Float(sum)
            }
        }
        return out
    }

    /// The weights as floats in their original layout (`decode`'s plain twin): per entry
    /// `s_1 mu_1 + s_2 mu_2 + ...` up to its bit width, added in Float from level 1 up, which
    /// is exactly `PackedTensor.dequantized()`.
    public func decodeReference(rowStride: Int, tapStride: Int, channelStride: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows * taps * tapChannels)
        for br in 0..<(blocks * 8) {
            let o = Int(rowOrder[br])
            guard o >= 0 else { continue }
            for k in 0..<levels {
                let mu = scale(blockRow: br, level: k)
                for t in 0..<taps {
                    for ch in 0..<tapChannels {
                        let (act, sign) = words(blockRow: br, level: k, word: t * wordsPerTap + ch / 64)
                        guard (act >> UInt64(ch % 64)) & 1 == 1 else { continue }
                        let term = (sign >> UInt64(ch % 64)) & 1 == 1 ? mu : -mu
                        let j = o * rowStride + t * tapStride + ch * channelStride
                        out[j] = k == 0 ? term : out[j] + term
                    }
                }
            }
        }
        return out
    }
}

extension BitPlaneMatrix {
    /// Plain twin of `binaryCounts`: bit by bit over every tap and channel.
    public func binaryCountsReference(acts: ActivationPlanes, patches: UnsafePointer<Int32>, positions: Int) -> (X: [Int32], M: [Int32]) {
        let Lx = acts.levels
        var X = [Int32](repeating: 0, count: positions * blocks * levels * Lx * 8), M = X
        for p in 0..<positions {
            for br in 0..<(blocks * 8) {
                for k in 0..<levels {
                    for l in 0..<Lx {
                        var x = 0, m = 0
                        for t in 0..<taps {
                            let u = Int(patches[p * taps + t])
                            guard u >= 0 else { continue }
                            for i in 0..<wordsPerTap {
                                let (a, s) = words(blockRow: br, level: k, word: t * wordsPerTap + i)
                                let (b, tt) = acts.words(unit: u, level: l, word: i)
                                for bit in 0..<64 {
                                    let both = (a >> UInt64(bit)) & (b >> UInt64(bit)) & 1
                                    m += Int(both)
                                    x += Int(both & ((s ^ tt) >> UInt64(bit)) & 1)
                                }
                            }
                        }
                        let at = ((((p * blocks + br / 8) * levels + k) * Lx + l) * 8) + br % 8
                        X[at] = Int32(x)
                        M[at] = Int32(m)
                    }
                }
            }
        }
        return (X, M)
    }

    /// Plain twin of `binaryForward`: counts from `binaryCountsReference`, epilogue in Double.
    public func binaryForwardReference(acts: ActivationPlanes, patches: UnsafePointer<Int32>, positions: Int, bias: UnsafePointer<Float>?,
                                       relu: Bool, y: UnsafeMutablePointer<Float>, strideRow: Int, stridePos: Int) {
        let (X, M) = binaryCountsReference(acts: acts, patches: patches, positions: positions)
        let Lx = acts.levels
        for p in 0..<positions {
            for br in 0..<(blocks * 8) {
                let o = Int(rowOrder[br])
                guard o >= 0 else { continue }
                var acc = 0.0
                for k in 0..<levels {
                    for l in 0..<Lx {
                        let at = ((((p * blocks + br / 8) * levels + k) * Lx + l) * 8) + br % 8
                        acc += Double(scale(blockRow: br, level: k)) * Double(acts.scales[l]) * Double(M[at] - 2 * X[at])
                    }
                }
                var v = Float(acc + Double(bias?[o] ?? 0))
                if relu && !(v > 0) { v = 0 }
                y[o * strideRow + p * stridePos] = v
            }
        }
    }
}
