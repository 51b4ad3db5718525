/// The operators whose weights mbconvert binarizes, and what each says about its weight: the one
/// table that weight discovery, conversion, calibration, sensitivity and the policy schema read.
public enum WeightedOp: String, CaseIterable, Sendable {
    case conv = "Conv"
    case convTranspose = "ConvTranspose"
    case gemm = "Gemm"
    case matMul = "MatMul"

    /// The op of a node in ONNX's default domain, or nil when it has no binarizable weight.
    public init?(_ node: IRNode) {
        guard OperatorDomain.isDefault(node.domain) else { return nil }
        self.init(rawValue: node.opType)
    }

    /// A convolution: its weight is `[out, in, k...]` (ConvTranspose: `[in, out, k...]`) and the
    /// dims after the first two are the spatial kernel.
    public var isConvolution: Bool { self == .conv || self == .convTranspose }

    /// Whether the runtime can binarize this layer's first input at inference time (a policy's
    /// `activations:`).
    public var takesBinarizedInputs: Bool { self != .convTranspose }

    /// The constant weight operand of `node` and its output-channel axis, given the shapes of
    /// the graph's constants (`shapeOf` returns nil for a value that is not constant).
    public func weight(of node: IRNode, shapeOf: (String) -> [Int]?) -> (name: String, outputAxis: Int)? {
        func constant(_ i: Int) -> (String, [Int])? {
            guard i < node.inputs.count, let shape = shapeOf(node.inputs[i]) else { return nil }
            return (node.inputs[i], shape)
        }
        func flag(_ name: String) -> Bool {
            if case .int(let v)? = node.attribute(name) { return v != 0 }
            return false
        }
        switch self {
        case .conv:
            // W is [M, C/group, k...]: outputs along axis 0.
            return constant(1).map { ($0.0, 0) }
        case .convTranspose:
            // W is [C, M/group, k...]: outputs along axis 1.
            return constant(1).map { ($0.0, $0.1.count > 1 ? 1 : 0) }
        case .gemm:
            // Y = A' B' with A' (M, K), B' (K, N): B's outputs are its columns (rows when transposed).
            if let b = constant(1) { return (b.0, flag("transB") ? 0 : min(1, b.1.count - 1)) }
            if let a = constant(0) { return (a.0, flag("transA") ? min(1, a.1.count - 1) : 0) }
            return nil
        case .matMul:
            // [..., K, N] on the right: outputs along the last axis; a constant left operand
            // [..., M, K] gives outputs along its second-to-last axis.
            if let b = constant(1) { return (b.0, max(0, b.1.count - 1)) }
            if let a = constant(0) { return (a.0, max(0, a.1.count - 2)) }
            return nil
        }
    }
}
