import CFloatKernels

/// Elementwise float kernels over contiguous memory: unary functions (every `Activation` plus
/// exp, erf and GELU) and binary arithmetic with an optional fused activation, in C with
/// AVX-512 / AVX2 / portable bodies picked by cpuid (CFloatKernels/Elementwise.c). The
/// definitions are the Double references in Elementwise+Reference.swift.
///
/// Maximum error of the exp-based functions against the Double reference (measured on a dense
/// sweep of [-100, 100], asserted in ElementwiseKernelTests): sigmoid, tanh, exp, erf within
/// 5e-7 relative (results under FLT_MIN are flushed to 0); SiLU and GELU within 2e-6 of
/// max(1, |reference|) (their negative tails lose relative precision the way `x * tiny` does).
public enum Elementwise {
    /// A one-input function.
    public enum Unary: Sendable, Equatable, Hashable {
        case activation(Activation)
        case exp
        case erf
        /// 0.5 x (1 + erf(x / sqrt 2)).
        case gelu
        /// 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
        case geluTanh
    }

    public enum BinaryOp: Int32, Sendable, CaseIterable {
        case add = 0, sub, mul, div, max, min
    }

    /// Which instruction set the kernels use (2 AVX-512F, 1 AVX2+FMA, 0 portable).
    public static var isa: Int { Int(fk_ew_isa()) }

    static func code(_ f: Unary) -> (Int32, Float, Float) {
        switch f {
        case .activation(let a):
            switch a {
            case .none: return (Int32(FK_ACT_NONE), 0, 0)
            case .relu: return (Int32(FK_ACT_RELU), 0, 0)
            case .clip(let lo, let hi): return (Int32(FK_ACT_CLIP), lo, hi)
            case .leakyRelu(let alpha): return (Int32(FK_ACT_LEAKY_RELU), alpha, 0)
            case .hardSigmoid(let alpha, let beta): return (Int32(FK_ACT_HARD_SIGMOID), alpha, beta)
            case .hardSwish: return (Int32(FK_ACT_HARD_SWISH), 0, 0)
            case .sigmoid: return (Int32(FK_ACT_SIGMOID), 0, 0)
            case .silu: return (Int32(FK_ACT_SILU), 0, 0)
            case .tanh: return (Int32(FK_ACT_TANH), 0, 0)
            }
        case .exp: return (Int32(FK_ACT_EXP), 0, 0)
        case .erf: return (Int32(FK_ACT_ERF), 0, 0)
        case .gelu: return (Int32(FK_ACT_GELU), 0, 0)
        case .geluTanh: return (Int32(FK_ACT_GELU_TANH), 0, 0)
        }
    }

    /// y[i] = f(x[i]) for i < count; `y` may be `x`. `isa` nil is the best the CPU has (tests
    /// pass 0, 1, 2 to run each body).
    public static func unary(_ f: Unary, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, isa: Int? = nil) {
        let (c, p0, p1) = code(f)
        fk_ew_unary(Int32(isa ?? -1), c, p0, p1, x, y, count)
    }

    /// y[i] = act(a[i * aStride] op b[i * bStride]) for i < count; strides are 1 (vector) or 0
    /// (scalar). `y` may be a vector operand.
    public static func binary(_ op: BinaryOp, _ a: UnsafePointer<Float>, aStride: Int, _ b: UnsafePointer<Float>, bStride: Int,
                              _ y: UnsafeMutablePointer<Float>, count: Int, then act: Activation = .none, isa: Int? = nil) {
        precondition((aStride == 0 || aStride == 1) && (bStride == 0 || bStride == 1), "strides must be 0 or 1")
        let (c, p0, p1) = code(.activation(act))
        fk_ew_binary(Int32(isa ?? -1), op.rawValue, a, aStride, b, bStride, y, count, c, p0, p1)
    }

    /// Softmax of `rows` contiguous rows of `n` floats; `y` may be `x`.
    public static func softmaxRows(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, n: Int, isa: Int? = nil) {
        fk_softmax_rows(Int32(isa ?? -1), x, y, rows, n)
    }
}
