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
            return .binarized(mix, elements: tensor.elementCount, groups: b.scale == .channel ? tensor.channelCount : 1,
                              maskSymbols: maskGroupCount(b.granularity))
        case .quantize(let q):
            return .quantized(q, elements: tensor.elementCount, groups: quantizationGroups(q.spec).count)
        }
    }

    /// The bit widths a structured mask stores (one per group along the reduction axis, as
    /// `Conversion.maskGroups` forms them); nil for a per-entry mask or a weight that cannot have one.
    func maskGroupCount(_ granularity: MaskGranularity) -> Int? {
        let shape = tensor.shape, op = tensor.consumers.first?.opType ?? ""
        let rows: Int, taps: Int, channels: Int
        if op == "Conv", shape.count >= 3 {
            (rows, taps, channels) = (shape[0], shape[2...].reduce(1, *), shape[1])
        } else if op == "Gemm" || op == "MatMul", shape.count == 2, let axis = tensor.outputAxis, axis < 2 {
            (rows, taps, channels) = (shape[axis], 1, shape[1 - axis])
        } else {
            return nil
        }
        switch granularity {
        case .element: return nil
        case .channel: return rows
        case .group(let n):
            let m = max(1, min(n, channels))
            return rows * taps * ((channels + m - 1) / m)
        }
    }

    /// The channel axis and channels per group an `int:` / `palette:` weight is quantized with:
    /// int per output channel, a palette per N output channels or per tensor.
    func quantizationGroups(_ spec: QuantizationSpec) -> (axis: Int?, perGroup: Int, count: Int) {
        let perGroup: Int? = spec.scheme == .linear ? 1 : spec.channels
        guard let axis = tensor.outputAxis, let perGroup, axis < tensor.shape.count, tensor.shape[axis] > 0 else { return (nil, 1, 1) }
        return (axis, perGroup, QuantizedTensor.groupCount(shape: tensor.shape, axis: axis, channelsPerGroup: perGroup))
    }
}
