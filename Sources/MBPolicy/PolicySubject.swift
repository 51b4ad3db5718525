import MBCore

/// The facts about one tensor that policy rules can match. MBConvert builds these from the model
/// (see WeightDiscovery); MBPolicy never sees ONNX.
public struct PolicySubject: Sendable, Hashable {
    /// A node that reads the tensor.
    public struct Consumer: Sendable, Hashable {
        /// The node's name, "" when the model gives none.
        public var name: String
        public var opType: String
        public init(name: String, opType: String) {
            self.name = name
            self.opType = opType
        }
    }

    public var tensorName: String
    /// Every node that reads the tensor, in graph order (a shared weight has several).
    public var consumers: [Consumer]
    public var shape: [Int64]
    public var elementCount: Int
    /// A weight input of Conv, ConvTranspose, Gemm or MatMul. Other tensors are reached only by
    /// rules with a `tensor:` matcher, never by `default`.
    public var isWeight: Bool
    /// Read by the first / last weighted node in graph order.
    public var isFirst: Bool
    public var isLast: Bool
    /// A Conv weight with group > 1 and group == input channels.
    public var isDepthwise: Bool

    public init(tensorName: String, consumers: [Consumer], shape: [Int64], elementCount: Int, isWeight: Bool = true,
                isFirst: Bool = false, isLast: Bool = false, isDepthwise: Bool = false) {
        self.tensorName = tensorName
        self.consumers = consumers
        self.shape = shape
        self.elementCount = elementCount
        self.isWeight = isWeight
        self.isFirst = isFirst
        self.isLast = isLast
        self.isDepthwise = isDepthwise
    }

    /// The spatial kernel dims of a Conv/ConvTranspose weight (shape after [out, in]), else nil.
    public var kernel: [Int64]? {
        guard shape.count >= 3, consumers.contains(where: { WeightedOp(rawValue: $0.opType)?.isConvolution == true }) else { return nil }
        return Array(shape.dropFirst(2))
    }
}
