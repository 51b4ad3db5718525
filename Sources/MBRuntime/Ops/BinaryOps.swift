import MBCore
import MBKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Broadcasting arithmetic, comparison and logic, and the variadic Sum/Mean/Min/Max.
enum BinaryOps {
    static let table: [String: OpTable.Compile] = [
        "Add": { _ in { i, c in [try arith(i, c, .add, { $0 + $1 }, { $0 &+ $1 })] } },
        "Sub": { _ in { i, c in [try arith(i, c, .sub, { $0 - $1 }, { $0 &- $1 })] } },
        "Mul": { _ in { i, c in [try arith(i, c, .mul, { $0 * $1 }, { $0 &* $1 })] } },
        "Div": { _ in { i, c in [try arith(i, c, .div, { $0 / $1 }, { $1 == 0 ? 0 : $0 / $1 })] } },
        "Pow": { _ in { i, c in
            let x = try i.required(0), y = try i.required(1)
            if x.elementType == .float {
                let yf = y.elementType == .float ? y : try castTensor(y, to: .float, c)
                return [try broadcastMap(x, yf, .float, c) { (a: Float, b: Float) -> Float in b == 2 ? a * a : powf(a, b) }]
            }
            if y.elementType == .float {
                // An integer base with a float exponent keeps the base's type (the power truncated).
                let p = try broadcastMap(try castTensor(x, to: .float, c), y, .float, c) { (a: Float, b: Float) -> Float in powf(a, b) }
                return [try castTensor(p, to: x.elementType, c)]
            }
            return [try arith(x, y, c, { powf($0, $1) }, { a, b in b < 0 ? 0 : (0..<b).reduce(Int64(1)) { r, _ in r &* a } })]
        } },
        "Mod": { n in
            let fmod = try n.int("fmod", default: 0) != 0
            return { i, c in [try arith(i[0], i[1], c, { a, b in fmod ? fmodf(a, b) : floorMod(a, b) },
                                        { a, b in b == 0 ? 0 : (fmod ? a % b : ((a % b) + b) % b) })] }
        },
        "PRelu": { _ in { i, c in
            let x = try i.float(0), slope = try i.float(1)
            // The slope broadcasts to X (numpy rules; a [C] slope against [N, C] also works).
            return [try broadcastMap(x, unidirectionalSlope(slope, x.shape), .float, c) { (v: Float, s: Float) -> Float in v >= 0 ? v : v * s }]
        } },
        "Equal": { _ in { i, c in [try compare(i[0], i[1], c, { $0 == $1 }, { $0 == $1 })] } },
        "Less": { _ in { i, c in [try compare(i[0], i[1], c, { $0 < $1 }, { $0 < $1 })] } },
        "Greater": { _ in { i, c in [try compare(i[0], i[1], c, { $0 > $1 }, { $0 > $1 })] } },
        "LessOrEqual": { _ in { i, c in [try compare(i[0], i[1], c, { $0 <= $1 }, { $0 <= $1 })] } },
        "GreaterOrEqual": { _ in { i, c in [try compare(i[0], i[1], c, { $0 >= $1 }, { $0 >= $1 })] } },
        "And": { _ in { i, c in [try logic(i[0], i[1], c) { $0 & $1 }] } },
        "Or": { _ in { i, c in [try logic(i[0], i[1], c) { $0 | $1 }] } },
        "Xor": { _ in { i, c in [try logic(i[0], i[1], c) { $0 ^ $1 }] } },
        "Sum": { _ in { i, c in [try variadic(i, c, .add, { $0 + $1 }, { $0 &+ $1 })] } },
        "Max": { _ in { i, c in [try variadic(i, c, .max, { $0.isNaN || $1.isNaN ? .nan : max($0, $1) }, { max($0, $1) })] } },
        "Min": { _ in { i, c in [try variadic(i, c, .min, { $0.isNaN || $1.isNaN ? .nan : min($0, $1) }, { min($0, $1) })] } },
        "Mean": { _ in { i, c in
            let sum = try variadic(i, c, .add, { $0 + $1 }, { $0 &+ $1 })
            let n = Float(i.values.compactMap { $0 }.count)
            return [try mapFloats(sum, c) { $0 / n }]
        } },
        "Where": { _ in { i, c in
            let cond = try i.required(0), x = try i.required(1), y = try i.required(2)
            guard cond.elementType == .bool else { throw OpError("condition must be bool, got \(cond.elementType.name)") }
            guard x.elementType == y.elementType else { throw OpError("X and Y differ in type: \(x.elementType.name) vs \(y.elementType.name)") }
            let shape = try broadcastShapes(try broadcastShapes(cond.shape, x.shape), y.shape)
            let cb = try broadcastTo(cond, shape, c), xb = try broadcastTo(x, shape, c), yb = try broadcastTo(y, shape, c)
            let out = try c.alloc(x.elementType, shape)
            let size = x.elementType.runtimeSize
            let cp = cb.pointer(UInt8.self)
            for k in 0..<out.count {
                let src = cp[k] != 0 ? xb.storage.raw : yb.storage.raw
                (out.storage.raw + k * size).copyMemory(from: src + k * size, byteCount: size)
            }
            return [out]
        } },
    ]

    /// A PRelu slope of shape [C] (or [C,1,..]) applied to X = [N, C, ...]: reshaped so numpy
    /// broadcasting lines it up with the channel axis, as onnxruntime does for these exports.
    static func unidirectionalSlope(_ s: MBTensor, _ x: [Int]) -> MBTensor {
        if s.rank == 1 && x.count > 2 && s.shape[0] == x[1] && s.shape[0] != x.last! {
            return s.reshaped([s.shape[0]] + Array(repeating: 1, count: x.count - 2))
        }
        return s
    }

    /// A binary operator over inputs 0 and 1: floats through the shared SIMD broadcasting
    /// driver (writing over a dying input when it may), integers through `g`.
    static func arith(_ i: Inputs, _ c: ExecutionContext, _ op: Elementwise.BinaryOp,
                      _ f: (Float, Float) -> Float, _ g: (Int64, Int64) -> Int64) throws -> MBTensor {
        guard let a = i[0], let b = i[1] else { throw OpError("needs two inputs") }
        if a.elementType == .float && b.elementType == .float {
            return try FloatElementwise.binary(op, a, b, reusing: [0, 1], of: i, c)
        }
        return try arith(a, b, c, f, g)
    }

    static func arith(_ a: MBTensor?, _ b: MBTensor?, _ c: ExecutionContext,
                      _ f: (Float, Float) -> Float, _ g: (Int64, Int64) -> Int64) throws -> MBTensor {
        guard let a, let b else { throw OpError("needs two inputs") }
        guard a.elementType == b.elementType else { throw OpError("inputs differ in type: \(a.elementType.name) and \(b.elementType.name)") }
        switch a.elementType {
        case .float: return try broadcastMap(a, b, .float, c, f)
        case .int64: return try broadcastMap(a, b, .int64, c, g)
        case .int32: return try broadcastMap(a, b, .int32, c) { (x: Int32, y: Int32) -> Int32 in Int32(truncatingIfNeeded: g(Int64(x), Int64(y))) }
        default: throw OpError("element type \(a.elementType.name) is not supported")
        }
    }

    static func compare(_ a: MBTensor?, _ b: MBTensor?, _ c: ExecutionContext,
                        _ f: (Float, Float) -> Bool, _ g: (Int64, Int64) -> Bool) throws -> MBTensor {
        guard let a, let b else { throw OpError("needs two inputs") }
        guard a.elementType == b.elementType else { throw OpError("inputs differ in type: \(a.elementType.name) and \(b.elementType.name)") }
        switch a.elementType {
        case .float: return try broadcastMap(a, b, .bool, c) { (x: Float, y: Float) -> UInt8 in f(x, y) ? 1 : 0 }
        case .int64: return try broadcastMap(a, b, .bool, c) { (x: Int64, y: Int64) -> UInt8 in g(x, y) ? 1 : 0 }
        case .int32: return try broadcastMap(a, b, .bool, c) { (x: Int32, y: Int32) -> UInt8 in g(Int64(x), Int64(y)) ? 1 : 0 }
        case .bool: return try broadcastMap(a, b, .bool, c) { (x: UInt8, y: UInt8) -> UInt8 in g(Int64(x), Int64(y)) ? 1 : 0 }
        default: throw OpError("element type \(a.elementType.name) is not supported")
        }
    }

    static func logic(_ a: MBTensor?, _ b: MBTensor?, _ c: ExecutionContext, _ f: (UInt8, UInt8) -> UInt8) throws -> MBTensor {
        guard let a, let b, a.elementType == .bool, b.elementType == .bool else { throw OpError("needs two bool inputs") }
        return try broadcastMap(a, b, .bool, c) { (x: UInt8, y: UInt8) -> UInt8 in f(x != 0 ? 1 : 0, y != 0 ? 1 : 0) }
    }

    static func variadic(_ i: Inputs, _ c: ExecutionContext, _ op: Elementwise.BinaryOp,
                         _ f: (Float, Float) -> Float, _ g: (Int64, Int64) -> Int64) throws -> MBTensor {
        let xs = i.values.compactMap { $0 }
        guard var acc = xs.first else { throw OpError("needs at least one input") }
        if xs.count == 1 { return acc }
        if xs.allSatisfy({ $0.elementType == .float }) {
            if xs.count == 2 && i.count == 2 { return try FloatElementwise.binary(op, xs[0], xs[1], reusing: [0, 1], of: i, c) }
            // Later sums accumulate into the first result (this node's own buffer).
            var owned = false
            for x in xs.dropFirst() {
                acc = try FloatElementwise.binary(op, acc, x, reusing: owned ? [0] : [], of: Inputs([acc, x], reusable: [owned, false]), c)
                owned = true
            }
            return acc
        }
        for x in xs.dropFirst() { acc = try arith(acc, x, c, f, g) }
        return acc
    }
}

/// `t` materialized at `shape` (numpy broadcasting); `t` itself when it already has it.
func broadcastTo(_ t: MBTensor, _ shape: [Int], _ c: ExecutionContext) throws -> MBTensor {
    if t.shape == shape { return t }
    let out = try c.alloc(t.elementType, shape)
    stridedCopy(t.storage.raw, offset: 0, strides: broadcastStrides(t.shape, to: shape), shape: shape,
                elementSize: t.elementType.runtimeSize, to: out.storage.raw)
    return out
}

/// The remainder with the sign of the divisor (Python's and numpy's `%` on floats): fmod,
/// moved by one divisor when the signs differ, so -3 mod inf is inf and 0 mod -2 is -0.
func floorMod(_ a: Float, _ b: Float) -> Float {
    var m = fmodf(a, b)
    if b == 0 || m.isNaN { return m }
    if m != 0 {
        if (b < 0) != (m < 0) { m += b }
    } else {
        m = b < 0 ? -0.0 : 0
    }
    return m
}
