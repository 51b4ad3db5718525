import MBKernels

/// What the optimizer fused into one Conv, ConvTranspose, Gemm or MatMul node: the operators it now
/// runs (for `run --profile`: "Conv+BatchNormalization+HardSwish"), the activation its epilogue
/// applies, and whether its last input is a residual added before that activation.
struct FusedPlan: Sendable, Equatable {
    /// Operator names, the node's own first.
    var operators: [String]
    var activation: Activation = .none
    /// The node's inputs end with a residual tensor R: y = activation(op(...) + R).
    var residual = false
    /// For an `ElementwiseChain` node: its steps, applied in order in one pass over memory.
    var chain: [ChainStep] = []

    var label: String { operators.joined(separator: "+") }
}

/// One step of a fused elementwise chain: a unary function, or a binary operator with a scalar
/// constant on one side.
enum ChainStep: Sendable, Equatable {
    case unary(Elementwise.Unary)
    case scalar(Elementwise.BinaryOp, Float, onLeft: Bool)
}
