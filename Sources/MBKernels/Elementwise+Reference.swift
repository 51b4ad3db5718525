// libm rather than Foundation (the runtime does not load it).
#if canImport(Glibc)
import Glibc
private func libmExp(_ x: Double) -> Double { Glibc.exp(x) }
private func libmErf(_ x: Double) -> Double { Glibc.erf(x) }
private func libmTanh(_ x: Double) -> Double { Glibc.tanh(x) }
#elseif canImport(Darwin)
import Darwin
private func libmExp(_ x: Double) -> Double { Darwin.exp(x) }
private func libmErf(_ x: Double) -> Double { Darwin.erf(x) }
private func libmTanh(_ x: Double) -> Double { Darwin.tanh(x) }
#endif

/// The definitions of the elementwise kernels, in Double: what the C bodies are tested against.
extension Elementwise {
    public static func reference(_ f: Unary, _ x: Double) -> Double {
        switch f {
        case .activation(let a): return a.reference(x)
        case .exp: return libmExp(x)
        case .erf: return libmErf(x)
        case .gelu: return 0.5 * x * (1 + libmErf(x / 2.0.squareRoot()))
        case .geluTanh: return 0.5 * x * (1 + libmTanh(0.79788456080286536 * (x + 0.044715 * x * x * x)))
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
        let e = x.map { libmExp(Double($0) - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }
}
