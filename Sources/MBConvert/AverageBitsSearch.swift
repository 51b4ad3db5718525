import MBBinarize
import MBCore
import MBPolicy

/// "Average bits only" (HBB.md section 3, the paper's DistFromAvg(B)): among the distributions
/// on a 0.05 grid over three consecutive bitwidths around B whose average is B (or as close as
/// the grid allows), keep the one with the lowest normalized error on the tensor.
///
/// For `policy check` and the target spread the error is measured on a seeded subsample of the
/// tensor (at most `sampleLimit` entries, whole channels kept together for channel scales), so
/// that a dry run stays fast on big models.
public enum AverageBitsSearch {
    public static let sampleLimit = 8192
    public static let seed: UInt64 = 0x5EED_B175
    public static let gridSteps = 20

    public struct Outcome: Sendable {
        public var mix: BitDistribution
        public var normalizedError: Double
    }

    /// The bitwidths searched for average `b`: three consecutive ones containing it, within 1...maxBits.
    public static func bitwidths(average b: Double, maxBits: Int) -> [Int] {
        let top = max(1, min(8, maxBits))
        let lo = max(1, min(Int(b.rounded(.down)) - 1, top - 2))
        return Array(lo...min(top, lo + 2))
    }

    /// Every grid distribution over `widths` whose average is closest to `b`, in MBBinarize's
    /// grid order (`AverageSearch.gridCounts`; the same enumeration `AverageSearch.grid` uses,
    /// which needs B exactly on the grid where this one takes the nearest reachable average).
    public static func candidates(average b: Double, widths: [Int]) -> [BitDistribution] {
        let found = AverageSearch.gridCounts(widths: widths.count, units: gridSteps).map { counts in
            (mix: counts, distance: abs(zip(widths, counts).reduce(0.0) { $0 + Double($1.0 * $1.1) } / Double(gridSteps) - b))
        }
        let best = found.map(\.distance).min() ?? 0
        return found.filter { $0.distance <= best + 1e-9 }.compactMap { c in
            BitDistribution(zip(widths, c.mix).filter { $0.1 > 0 }.map { ($0.0, Double($0.1) / Double(gridSteps)) })
        }
    }

    public static func best(average b: Double, maxBits: Int, sample: FloatTensor, method: MaskMethod) throws -> Outcome {
        var best: Outcome?
        for mix in candidates(average: b, widths: bitwidths(average: b, maxBits: maxBits)) {
            let e = try error(of: mix, on: sample, method: method)
            if best == nil || e < best!.normalizedError - 1e-12 { best = Outcome(mix: mix, normalizedError: e) }
        }
        return best!
    }

    /// Normalized error ||T - T_hat|| / ||T|| of binarizing `sample` with `mix`. A sample built
    /// for channel scales is [channels, entries] with the channel on axis 0.
    public static func error(of mix: BitDistribution, on sample: FloatTensor, method: MaskMethod) throws -> Double {
        // A constant tensor (every ConstantOfShape weight) is exact at one bit whatever P is.
        if let first = sample.values.first, first.isFinite, sample.values.allSatisfy({ $0 == first }) { return 0 }
        return try AverageSearch.evaluate(sample, mix, method: method,
                                          scale: sample.shape.count == 2 ? .channel(axis: 0) : .tensor, seed: seed).statistics.normalizedError
    }

    /// A seeded subsample of a tensor's values (drawn with replacement when it is big): flat for tensor scales; for channel scales up to
    /// 64 channels, each with the same number of entries, as [channels, entries].
    public static func sample(discovery: WeightDiscovery, tensor: WeightDiscovery.Tensor, scale: ScaleGranularity) throws -> FloatTensor {
        let (n, value) = try discovery.elementReader(tensor.name)
        var rng = SeededGenerator(seed: seed)
        if scale == .channel, let axis = tensor.outputAxis, axis < tensor.shape.count, tensor.shape[axis] > 1 {
            let channels = tensor.shape[axis]
            let inner = tensor.shape[(axis + 1)...].reduce(1, *)
            let outer = tensor.shape[..<axis].reduce(1, *)
            let perChannel = outer * inner
            let picked = channels <= 64 ? Array(0..<channels) : Array((0..<channels).shuffled(using: &rng).prefix(64)).sorted()
            let take = min(perChannel, max(1, sampleLimit / picked.count))
            var out: [Float] = []
            out.reserveCapacity(picked.count * take)
            for c in picked {
                for k in 0..<take {
                    // Entry j of channel c sits at outer index j / inner and inner index j % inner.
                    let j = take == perChannel ? k : Int(rng.next() % UInt64(perChannel))
                    out.append(value((j / inner) * channels * inner + c * inner + j % inner))
                }
            }
            return try FloatTensor(name: tensor.name, shape: [picked.count, take], values: out)
        }
        if n <= sampleLimit { return FloatTensor(name: tensor.name, values: (0..<n).map(value)) }
        return FloatTensor(name: tensor.name, values: (0..<sampleLimit).map { _ in value(Int(rng.next() % UInt64(n))) })
    }
}
