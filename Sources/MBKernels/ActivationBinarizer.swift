import CBitPlanes
import MBCore

/// A tensor binarized at run time (one scale per level for the whole tensor): the mask, per
/// level a flat bitset of signs (bit set = +1; 0 where inactive), and the level scales nu_l.
public struct BinarizedValues: Sendable {
    public var mask: [UInt8]
    /// Level l's bitset is words `l * wordsPerLevel ..< (l + 1) * wordsPerLevel`.
    public var signs: [UInt64]
    public var scales: [Float]

    public var levels: Int { scales.count }
    public var wordsPerLevel: Int { (mask.count + 63) / 64 }

    /// Sign of entry j at level l (true = +1).
    @inline(__always) public func sign(level l: Int, _ j: Int) -> Bool {
        (signs[l * wordsPerLevel + (j >> 6)] >> UInt64(j & 63)) & 1 == 1
    }

    /// x_hat in flat order: `s_1 nu_1 + s_2 nu_2 + ...` up to each entry's width, in Float from
    /// level 1 up (the expanded path's input, and what the bit-plane path computes with).
    public func dequantized(into out: UnsafeMutablePointer<Float>) {
        for j in 0..<mask.count {
            var v: Float = 0
            for k in 0..<Int(mask[j]) {
                let term = sign(level: k, j) ? scales[k] : -scales[k]
                v = k == 0 ? term : v + term
            }
            out[j] = v
        }
    }
}

/// HBB of an activation tensor at inference time (HBB.md sections 2 and 3, tensor scale): the
/// Middle-Out mask, then residual binarization level by level over the shrinking active set.
/// With `groups == nil` the result equals MBBinarize's `Binarizer.binarize` with Middle-Out and
/// tensor scale bit for bit (mask, scales and signs; tests compare them).
public enum ActivationBinarizer {
    /// `isa` picks the passes' instruction set (tests compare them; default: the best available).
    /// `runs` (the groups' runs of consecutive ids) lets the group passes skip the ids.
    public static func binarize(_ values: UnsafeBufferPointer<Float>, bits: [Int], fractions: [Double], groups: MaskGroups?,
                                runs: GroupRuns? = nil, isa: Int32 = bp_isa()) -> BinarizedValues {
        var total: Double?
        let mask = MiddleOutMask.select(values, bits: bits, fractions: fractions, groups: groups, runs: runs, isa: isa, total: &total)
        return residual(values, mask: mask, isa: isa, total: total)
    }

    /// Residual binarization for a given mask as whole-tensor passes (CBitPlanes
    /// `bp_active_abs_sum`, `bp_residual_level`): level k's active set is {j : M_j >= k + 1}
    /// (every entry at level 1, as `residualPlain`'s first list), same sums, same signs. Each
    /// level's pass also sums the next level's |residual| (`bp_residual_level_sum`); `total`, the
    /// canonical sum of every |v| when the mask selection already computed it, saves the first.
    public static func residual(_ values: UnsafeBufferPointer<Float>, mask: [UInt8], isa: Int32 = bp_isa(), total: Double? = nil) -> BinarizedValues {
        let n = values.count
        let K = Int(mask.max() ?? 0)
        let wordsPerLevel = (n + 63) / 64
        var signs = [UInt64](repeating: 0, count: K * wordsPerLevel)
        var scales = [Float](repeating: 0, count: K)
        guard n > 0, K > 0 else { return BinarizedValues(mask: mask, signs: signs, scales: scales) }
        let residual = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { residual.deallocate() }
        residual.update(from: values.baseAddress!, count: n)
        mask.withUnsafeBufferPointer { mask in
            signs.withUnsafeMutableBufferPointer { signs in
                var count = Int64(n)
                var sum = total ?? bp_active_abs_sum(isa, residual, mask.baseAddress, Int64(n), 0, 1, &count)
                for k in 0..<K {
                    guard count > 0 else { break }
                    let mu = Float(sum / Double(count))
                    scales[k] = mu
                    let mode: Int32 = k == 0 ? 0 : 1
                    let next = k + 1 < K ? UInt8(k + 2) : 0
                    sum = bp_residual_level_sum(isa, residual, mask.baseAddress, Int64(n), mode, UInt8(k + 1), mu,
                                                signs.baseAddress! + k * wordsPerLevel, next, &count)
                }
            }
        }
        return BinarizedValues(mask: mask, signs: signs, scales: scales)
    }

    /// Plain twin of `residual` (index lists, one entry at a time): mu_k = mean |E_{k-1}| over
    /// A_k = {j : M_j >= k} (canonical Double sum, lane = position in the active list),
    /// s = sign(E) with sign(0) = +1, E -= mu s.
    public static func residualPlain(_ values: UnsafeBufferPointer<Float>, mask: [UInt8]) -> BinarizedValues {
        let n = values.count
        let K = Int(mask.max() ?? 0)
        let wordsPerLevel = (n + 63) / 64
        var signs = [UInt64](repeating: 0, count: K * wordsPerLevel)
        var scales = [Float](repeating: 0, count: K)
        guard n > 0, K > 0 else { return BinarizedValues(mask: mask, signs: signs, scales: scales) }
        let residual = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { residual.deallocate() }
        residual.update(from: values.baseAddress!, count: n)
        let active = UnsafeMutablePointer<UInt32>.allocate(capacity: n)
        defer { active.deallocate() }
        var count = n
        for j in 0..<n { active[j] = UInt32(j) }
        mask.withUnsafeBufferPointer { mask in
            signs.withUnsafeMutableBufferPointer { signs in
                for k in 0..<K {
                    guard count > 0 else { break }
                    let mu = HBB.levelScale(sum: HBB.canonicalAbsSum(HBB.ListedEntries(list: active, count: count), residual), count: count)
                    scales[k] = mu
                    let bits = signs.baseAddress! + k * wordsPerLevel
                    // Branch-free: signs of real data are coin flips to a branch predictor.
                    for i in 0..<count {
                        let j = Int(active[i])
                        let e = residual[j]
                        let positive: UInt32 = e >= 0 ? 1 : 0
                        bits[j >> 6] |= UInt64(positive) << UInt64(j & 63)
                        residual[j] = e - Float(bitPattern: mu.bitPattern ^ ((positive ^ 1) << 31))
                    }
                    var kept = 0
                    let next = UInt32(k + 2)
                    for i in 0..<count {
                        let j = active[i]
                        active[kept] = j
                        kept &+= UInt32(mask[Int(j)]) >= next ? 1 : 0
                    }
                    count = kept
                }
            }
        }
        return BinarizedValues(mask: mask, signs: signs, scales: scales)
    }
}
