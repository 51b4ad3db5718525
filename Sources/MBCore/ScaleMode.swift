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
}

