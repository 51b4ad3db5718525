import MBCore
import MBPolicy

/// What the conversion does with one weight: the tensor, the policy's decision and, once the
/// allocation is resolved (stated, searched, or spread by a target), the P it is binarized with.
/// `PolicyCheck` predicts storage from these plans; `Conversion` binarizes by them.
public struct ConversionPlan: Sendable {
    public var tensor: WeightDiscovery.Tensor
    public var decision: WeightDecision
    /// The P used: as stated, or found by the average search / target spread.
    public var mix: BitDistribution?
    /// For `average` and `target`: the average bits asked of the search.
    public var requestedAverage: Double?
    /// Widest bitwidth the search may use (a target's max_bits).
    public var searchMaxBits = 8

    public var prediction: StoragePrediction {
        switch decision.action {
        case .keep(let type):
            return .keep(type, elements: tensor.elementCount)
        case .binarize(let b):
            guard let mix else { return .keep(.float, elements: tensor.elementCount) }
            return .binarized(mix, elements: tensor.elementCount, groups: b.scale == .channel ? tensor.channelCount : 1)
        }
    }
}
