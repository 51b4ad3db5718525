import Foundation

/// The definitions of the elementwise kernels, in Double: what the C bodies are tested against.
extension Elementwise {
    public static func reference(_ f: Unary, _ x: Double) -> Double {
        switch f {
        case .activation(let a): return a.reference(x)
        case .exp: return Foundation.exp(x)
        case .erf: return Foundation.erf(x)
        case .gelu: return 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot()))
        case .geluTanh: return 0.5 * x * (1 + Foundation.tanh(0.79788456080286536 * (x + 0.044715 * x * x * x)))
        }
    }

    public static func reference(_ op: BinaryOp, _ a: Double, _ b: Double) -> Double {
        switch op {
        case .add: return a + b
        case .sub: return a - b
        case .mul: return a * b
        case .div: return a / b
        case .max: return a.isNaN || b.isNaN ? .nan : Swift.max(a, b)
        case .min: return a.isNaN || b.isNaN ? .nan : Swift.min(a, b)
        }
    }

    /// Softmax of one row in Double.
    public static func referenceSoftmax(_ x: [Float]) -> [Double] {
        let m = x.map(Double.init).max() ?? 0
        let e = x.map { Foundation.exp(Double($0) - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }
}
