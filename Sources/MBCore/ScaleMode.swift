/// Which entries share a set of level scales.
public enum ScaleMode: Sendable, Hashable, CustomStringConvertible {
    /// One scale per level for the whole tensor (the paper's choice).
    case tensor
    /// One scale per level for each slice along `axis` (axis 0 for Conv weights). With channel
    /// scales the mask is chosen per slice too, each slice receiving the distribution P.
    case channel(axis: Int)

    public var description: String {
        switch self {
        case .tensor: return "tensor"
        case .channel(let axis): return axis == 0 ? "channel" : "channel(axis \(axis))"
        }
    }

    /// The mode for a granularity, channel scales along `channelAxis` (the weighted op's
    /// output-channel axis).
    public init(_ granularity: ScaleGranularity, channelAxis: Int) {
        self = granularity == .channel ? .channel(axis: channelAxis) : .tensor
    }

    public var granularity: ScaleGranularity {
        if case .channel = self { return .channel }
        return .tensor
    }
}

/// `scale:` as a policy states it: a `ScaleMode` before the layer's output-channel axis is known.
public enum ScaleGranularity: String, Sendable, CaseIterable {
    case tensor, channel
}
