import MBCore
import MBKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Activations and other one-input elementwise operators.
enum ElementwiseOps {
    static let table: [String: OpTable.Compile] = [
        "Relu": { _ in { i, c in
            let x = try i.required(0)
            if x.elementType == .float { return [try FloatElementwise.unary(.activation(.relu), x, reusing: 0, of: i, c)] }
            return [try mapInt(x, c) { max($0, 0) }]
        } },
        "LeakyRelu": { n in
            let alpha = try n.float("alpha", default: 0.01)
            return { i, c in [try FloatElementwise.unary(.activation(.leakyRelu(alpha: alpha)), try i.float(0), reusing: 0, of: i, c)] }
        },
        "Elu": { n in
            let alpha = try n.float("alpha", default: 1)
            return { i, c in [try mapFloats(try i.float(0), c) { $0 >= 0 ? $0 : alpha * (expf($0) - 1) }] }
        },
        "Selu": { n in
            let alpha = try n.float("alpha", default: 1.67326319217681884765625)
            let gamma = try n.float("gamma", default: 1.05070102214813232421875)
            return { i, c in [try mapFloats(try i.float(0), c) { $0 > 0 ? gamma * $0 : gamma * alpha * (expf($0) - 1) }] }
        },
        "ThresholdedRelu": { n in
            let alpha = try n.float("alpha", default: 1)
            return { i, c in [try mapFloats(try i.float(0), c) { $0 > alpha ? $0 : 0 }] }
        },
        "Sigmoid": { _ in { i, c in [try FloatElementwise.unary(.activation(.sigmoid), try i.float(0), reusing: 0, of: i, c)] } },
        "HardSigmoid": { n in
            let alpha = try n.float("alpha", default: 0.2), beta = try n.float("beta", default: 0.5)
            return { i, c in [try FloatElementwise.unary(.activation(.hardSigmoid(alpha: alpha, beta: beta)), try i.float(0), reusing: 0, of: i, c)] }
        },
        "HardSwish": { _ in { i, c in [try FloatElementwise.unary(.activation(.hardSwish), try i.float(0), reusing: 0, of: i, c)] } },
        "Tanh": { _ in { i, c in [try FloatElementwise.unary(.activation(.tanh), try i.float(0), reusing: 0, of: i, c)] } },
        "Softplus": { _ in { i, c in [try mapFloats(try i.float(0), c) { $0 > 20 ? $0 : log1pf(expf($0)) }] } },
        "Softsign": { _ in { i, c in [try mapFloats(try i.float(0), c) { $0 / (1 + abs($0)) }] } },
        "Mish": { _ in { i, c in [try mapFloats(try i.float(0), c) { $0 * tanhf($0 > 20 ? $0 : log1pf(expf($0))) }] } },
        "Exp": { _ in { i, c in [try FloatElementwise.unary(.exp, try i.float(0), reusing: 0, of: i, c)] } },
        "Log": { _ in { i, c in [try mapFloats(try i.float(0), c) { logf($0) }] } },
        "Sqrt": { _ in { i, c in [try mapFloats(try i.float(0), c) { $0.squareRoot() }] } },
        "Reciprocal": { _ in { i, c in [try mapFloats(try i.float(0), c) { 1 / $0 }] } },
        "Floor": { _ in { i, c in [try mapFloats(try i.float(0), c) { $0.rounded(.down) }] } },
        "Ceil": { _ in { i, c in [try mapFloats(try i.float(0), c) { $0.rounded(.up) }] } },
        "Round": { _ in { i, c in [try mapFloats(try i.float(0), c) { $0.rounded(.toNearestOrEven) }] } },
        "Erf": { _ in { i, c in [try FloatElementwise.unary(.erf, try i.float(0), reusing: 0, of: i, c)] } },
        "Sin": { _ in { i, c in [try mapFloats(try i.float(0), c) { sinf($0) }] } },
        "Cos": { _ in { i, c in [try mapFloats(try i.float(0), c) { cosf($0) }] } },
        "Tan": { _ in { i, c in [try mapFloats(try i.float(0), c) { tanf($0) }] } },
        "Asin": { _ in { i, c in [try mapFloats(try i.float(0), c) { asinf($0) }] } },
        "Acos": { _ in { i, c in [try mapFloats(try i.float(0), c) { acosf($0) }] } },
        "Atan": { _ in { i, c in [try mapFloats(try i.float(0), c) { atanf($0) }] } },
        "Sinh": { _ in { i, c in [try mapFloats(try i.float(0), c) { sinhf($0) }] } },
        "Cosh": { _ in { i, c in [try mapFloats(try i.float(0), c) { coshf($0) }] } },
        "Asinh": { _ in { i, c in [try mapFloats(try i.float(0), c) { asinhf($0) }] } },
        "Acosh": { _ in { i, c in [try mapFloats(try i.float(0), c) { acoshf($0) }] } },
        "Atanh": { _ in { i, c in [try mapFloats(try i.float(0), c) { atanhf($0) }] } },
        "Gelu": { n in
            let approximate = try n.string("approximate", default: "none")
            switch approximate {
            case "none": return { i, c in [try FloatElementwise.unary(.gelu, try i.float(0), reusing: 0, of: i, c)] }
            case "tanh": return { i, c in [try FloatElementwise.unary(.geluTanh, try i.float(0), reusing: 0, of: i, c)] }
            default: throw n.bad("approximate '\(approximate)' is not none or tanh")
            }
        },
        "Celu": { n in
            let alpha = try n.float("alpha", default: 1)
            return { i, c in [try mapFloats(try i.float(0), c) { max(0, $0) + min(0, alpha * (expf($0 / alpha) - 1)) }] }
        },
        "Swish": { n in
            let alpha = try n.float("alpha", default: 1)
            if alpha == 1 { return { i, c in [try FloatElementwise.unary(.activation(.silu), try i.float(0), reusing: 0, of: i, c)] } }
            return { i, c in [try mapFloats(try i.float(0), c) { $0 * sigmoid(alpha * $0) }] }
        },
        "IsNaN": { _ in { i, c in [try mapToBool(try i.float(0), c) { $0.isNaN }] } },
        "IsInf": { n in
            let negative = try n.int("detect_negative", default: 1) != 0, positive = try n.int("detect_positive", default: 1) != 0
            return { i, c in [try mapToBool(try i.float(0), c) { $0.isInfinite && ($0 > 0 ? positive : negative) }] }
        },
        "Neg": { _ in { i, c in
            let x = try i.required(0)
            if x.elementType == .float { return [try mapFloats(x, c) { -$0 }] }
            return [try mapInt(x, c) { 0 &- $0 }]
        } },
        "Abs": { _ in { i, c in
            let x = try i.required(0)
            if x.elementType == .float { return [try mapFloats(x, c) { abs($0) }] }
            return [try mapInt(x, c) { $0 < 0 ? 0 &- $0 : $0 }]
        } },
        "Sign": { _ in { i, c in
            let x = try i.required(0)
            if x.elementType == .float { return [try mapFloats(x, c) { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }] }
            return [try mapInt(x, c) { $0.signum() }]
        } },
        "Shrink": { n in
            let lambd = try n.float("lambd", default: 0.5), bias = try n.float("bias", default: 0)
            return { i, c in [try mapFloats(try i.float(0), c) { $0 < -lambd ? $0 + bias : ($0 > lambd ? $0 - bias : 0) }] }
        },
        "Not": { _ in { i, c in
            let x = try i.required(0)
            guard x.elementType == .bool else { throw OpError("Not needs a bool input, got \(x.elementType.name)") }
            let out = try c.alloc(.bool, x.shape)
            let s = x.pointer(UInt8.self), d = out.mutable(UInt8.self)
            for k in 0..<x.count { d[k] = s[k] == 0 ? 1 : 0 }
            return [out]
        } },
        "Clip": { n in
            // opset < 11: min/max attributes; from 11: optional inputs 1 and 2.
            let attrMin = try n.float("min", default: -Float.greatestFiniteMagnitude)
            let attrMax = try n.float("max", default: Float.greatestFiniteMagnitude)
            let fromInputs = n.opset >= 11
            return { i, c in
                let x = try i.required(0)
                var lo = attrMin, hi = attrMax
                if fromInputs {
                    lo = try i[1].map(floatScalar) ?? -Float.infinity
                    hi = try i[2].map(floatScalar) ?? Float.infinity
                }
                if x.elementType == .float { return [try FloatElementwise.unary(.activation(.clip(min: lo, max: hi)), x, reusing: 0, of: i, c)] }
                let l = Int64(max(lo, -9.2e18)), h = Int64(min(hi, 9.2e18))
                return [try mapInt(x, c) { min(max($0, l), h) }]
            }
        },
    ]

    @inline(__always)
    static func sigmoid(_ x: Float) -> Float {
        x >= 0 ? 1 / (1 + expf(-x)) : { let e = expf(x); return e / (1 + e) }()
    }
}

/// `out[i] = f(x[i])` as a bool tensor, over a float tensor.
func mapToBool(_ x: MBTensor, _ ctx: ExecutionContext, _ f: (Float) -> Bool) throws -> MBTensor {
    let out = try ctx.alloc(.bool, x.shape)
    let s = x.pointer(Float.self), d = out.mutable(UInt8.self)
    for k in 0..<x.count { d[k] = f(s[k]) ? 1 : 0 }
    return out
}

/// `out[i] = f(x[i])` over an int64 or int32 tensor (computed in Int64).
func mapInt(_ x: MBTensor, _ ctx: ExecutionContext, _ f: (Int64) -> Int64) throws -> MBTensor {
    let out = try ctx.alloc(x.elementType, x.shape)
    switch x.elementType {
    case .int64:
        let s = x.pointer(Int64.self), d = out.mutable(Int64.self)
        for k in 0..<x.count { d[k] = f(s[k]) }
    case .int32:
        let s = x.pointer(Int32.self), d = out.mutable(Int32.self)
        for k in 0..<x.count { d[k] = Int32(truncatingIfNeeded: f(Int64(s[k]))) }
    default:
        throw OpError("element type \(x.elementType.name) is not supported here")
    }
    return out
}
