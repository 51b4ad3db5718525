/// How a layer's input is binarized at inference time (a policy's `activations:`): the bit
/// distribution P, Middle-Out masks (the only method the runtime implements), one scale per
/// level for the whole input tensor, masks per entry or per group. MBPolicy produces it, MBFormat
/// encodes it as node attributes, the runtime decodes and applies it (MBKernels).
public struct ActivationSpec: Sendable, Hashable, CustomStringConvertible {
    public var distribution: BitDistribution
    public var granularity: MaskGranularity

    public init(distribution: BitDistribution, granularity: MaskGranularity = .element) {
        self.distribution = distribution
        self.granularity = granularity
    }

    /// The used bit widths, ascending, and their fractions (zero fractions dropped).
    public var bits: [Int] { distribution.used.map(\.bits) }
    public var fractions: [Double] { distribution.used.map(\.fraction) }

    public var averageBits: Double { distribution.averageBits }

    public var description: String {
        zip(bits, fractions).map { "\($0.0):\($0.1)" }.joined(separator: ",") + " " + granularity.description
    }
}
