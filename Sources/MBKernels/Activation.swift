#if canImport(Glibc)
import Glibc
private func libmTanh(_ x: Double) -> Double { Glibc.tanh(x) }
#elseif canImport(Darwin)
import Darwin
private func libmTanh(_ x: Double) -> Double { Darwin.tanh(x) }
#endif

/// A pointwise activation a kernel applies to its outputs as it finishes them (the epilogue of a
/// fused Conv/Gemm + activation), or that runs on its own over a buffer. Parameters follow the
/// ONNX operators of the same name; `silu` is `x * sigmoid(x)`, `hardSwish` is
/// `x * max(0, min(1, x / 6 + 0.5))`.
public enum Activation: Sendable, Equatable, Hashable {
    case none
    case relu
    case clip(min: Float, max: Float)
    case leakyRelu(alpha: Float)
    case hardSigmoid(alpha: Float, beta: Float)
    case hardSwish
    case sigmoid
    case silu
    case tanh

    /// The definition, one element in Double: what every fast path is tested against.
    public func reference(_ x: Double) -> Double {
        switch self {
        case .none: return x
        case .relu: return x > 0 ? x : 0
        case .clip(let lo, let hi): return Swift.min(Swift.max(x, Double(lo)), Double(hi))
        case .leakyRelu(let alpha): return x >= 0 ? x : Double(alpha) * x
        case .hardSigmoid(let alpha, let beta): return Swift.max(0, Swift.min(1, Double(alpha) * x + Double(beta)))
        case .hardSwish: return x * Swift.max(0, Swift.min(1, x / 6 + 0.5))
        case .sigmoid: return 1 / (1 + exp(-x))
        case .silu: return x / (1 + exp(-x))
        case .tanh: return libmTanh(x)
        }
    }

    /// Applies the activation in place to `count` floats through the SIMD elementwise kernels
    /// (`Elementwise.unary`; errors stated there). Kernels whose own epilogue handles only
    /// `.none` and `.relu` call this for the rest.
    public func apply(to values: UnsafeMutablePointer<Float>, count: Int) {
        if self == .none { return }
        Elementwise.unary(.activation(self), values, values, count: count)
    }

    /// The plain-loop twin of `apply`: each element through `reference` in Double.
    public func applyReference(to values: UnsafeMutablePointer<Float>, count: Int) {
        if self == .none { return }
        for i in 0..<count { values[i] = Float(reference(Double(values[i]))) }
    }

    /// What a kernel with a Relu-only epilogue applies itself: `.relu` or `.none`.
    public var kernelEpilogue: Activation { self == .relu ? .relu : .none }
    /// Whether the activation needs a pass after a Relu-only kernel epilogue.
    public var needsSeparatePass: Bool { self != .none && self != .relu }
}

extension Conv {
    /// The activations a convolution's epilogue applies (kept as `Conv.Activation` for callers).
    public typealias Activation = MBKernels.Activation
}
