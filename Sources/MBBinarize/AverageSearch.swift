import MBCore
/// "Average bits only" (the paper's DistFromAvg(B), HBB.md section 3): every distribution over
/// the allowed bit widths on a 0.05 grid whose average is B, each binarized; the one with the
/// lowest normalized error on this tensor wins (ties: the first in grid order).
public enum AverageSearch {
    /// The grid step of HBB.md.
    public static let step = 0.05

    public struct Candidate: Sendable {
        public let distribution: BitDistribution
        public let statistics: Statistics
    }

    public struct Result: Sendable {
        /// Every distribution on the grid with the requested average, in grid order.
        public let candidates: [Candidate]
        /// Index into `candidates` of the chosen one.
        public let bestIndex: Int
        public var best: Candidate { candidates[bestIndex] }
    }

    /// Distributions over `bits` with fractions on the grid (multiples of `1/units`) whose
    /// average is `average`, ordered by the fraction of the first width, then the second, ...
    /// (ascending). Throws when `average` is not reachable on the grid.
    public static func grid(average: Double, bits: [Int], units: Int = 20) throws(BinarizeError) -> [BitDistribution] {
        guard !bits.isEmpty, bits == bits.sorted(), Set(bits).count == bits.count, bits.allSatisfy({ (1...BitDistribution.maxBits).contains($0) }) else {
            throw .invalidConfiguration("allowed bit widths must be distinct, ascending and in 1...\(BitDistribution.maxBits), got \(bits)")
        }
        let target = average * Double(units)
        let total = Int(target.rounded())
        guard average.isFinite, abs(target - Double(total)) < 1e-6 else {
            throw .invalidConfiguration("average \(average) is not on the \(1 / Double(units)) grid")
        }
        var out: [BitDistribution] = []
        for counts in gridCounts(widths: bits.count, units: units) where zip(bits, counts).reduce(0, { $0 + $1.0 * $1.1 }) == total {
            if let d = try? BitDistribution(bits: bits, fractions: counts.map { Double($0) / Double(units) }) { out.append(d) }
        }
        guard !out.isEmpty else {
            throw .invalidConfiguration("no distribution over bit widths \(bits) averages \(average) bits")
        }
        return out
    }

    /// Every split of `units` grid units over `widths` bit widths (counts summing to `units`),
    /// in grid order: by the count of the first width, then the second, ... (ascending). The one
    /// enumeration behind `grid` and the converter's sampled search (MBConvert's
    /// AverageBitsSearch), so both walk the same candidates in the same order.
    public static func gridCounts(widths: Int, units: Int = 20) -> [[Int]] {
        guard widths > 0, units >= 0 else { return [] }
        var out: [[Int]] = []
        var counts = [Int](repeating: 0, count: widths)
        func fill(_ i: Int, left: Int) {
            if i == widths - 1 {
                counts[i] = left
                out.append(counts)
                return
            }
            for c in 0...left {
                counts[i] = c
                fill(i + 1, left: left - c)
            }
        }
        fill(0, left: units)
        return out
    }

    /// One candidate: `tensor` binarized with `distribution` (HBB.md, no extras) and its statistics.
    /// Shared with the converter's sampled search.
    public static func evaluate(_ tensor: FloatTensor, _ distribution: BitDistribution, method: MaskMethod, scale: ScaleMode,
                                seed: UInt64) throws(BinarizeError) -> Candidate {
        let packed = try Binarizer.binarize(tensor, BinarizationConfig(distribution: distribution, method: method, scale: scale, seed: seed))
        return Candidate(distribution: distribution, statistics: Statistics(original: tensor.values, packed: packed))
    }

    /// Binarizes `tensor` with every grid distribution of average `average` and keeps the best.
    public static func search(
        _ tensor: FloatTensor, average: Double, bits: [Int] = [1, 2, 3], method: MaskMethod = .middleOut,
        scale: ScaleMode = .tensor, seed: UInt64 = 0
    ) throws(BinarizeError) -> Result {
        var candidates: [Candidate] = []
        for distribution in try grid(average: average, bits: bits) {
            candidates.append(try evaluate(tensor, distribution, method: method, scale: scale, seed: seed))
        }
        var best = 0
        for (i, c) in candidates.enumerated() where c.statistics.normalizedError < candidates[best].statistics.normalizedError { best = i }
        return Result(candidates: candidates, bestIndex: best)
    }
}
