import MBCore
import MBKernels

extension SeededGenerator {
    /// A uniform integer in 0..<bound (Lemire's multiply-and-reject), defined here rather than
    /// through the standard library so a seed gives the same permutation on every toolchain.
    mutating func nextBounded(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
        }
        return m.high
    }
}

/// The Random heuristic: a seeded permutation of 0..<n (Fisher-Yates from the top), whose
/// first round(p_1 n) positions get the smallest width, the next round(p_2 n) the next width,
/// and the rest the last width. Shared by the fast path and the reference: it defines the
/// permutation, and is not what either is testing.
func randomMask(count n: Int, distribution: [BitDistribution.Entry], generator: inout SeededGenerator) -> [UInt8] {
    var order = Array(0..<n)
    if n > 1 {
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = Int(generator.nextBounded(UInt64(i + 1)))
            order.swapAt(i, j)
        }
    }
    var mask = [UInt8](repeating: 0, count: n)
    var position = 0
    for (e, entry) in distribution.enumerated() {
        let take = e == distribution.count - 1 ? n - position : min(HBB.roundedCount(entry.fraction, of: n), n - position)
        for p in position..<(position + take) { mask[order[p]] = UInt8(entry.bits) }
        position += take
    }
    return mask
}
