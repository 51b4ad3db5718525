import MBCore
import MBKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ReduceMean/Sum/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp (axes as attribute, or as input
/// from opset 13 for ReduceSum and 18 for the others) and ArgMax/ArgMin, over float, int64, int32
/// and bool data (accumulated in Double; integer results truncated back to the input's type).
/// int64-held data (int64, uint32, and uint64 by its declared type) is reduced exactly in
/// integers instead, except L2/LogSum/LogSumExp: sums, products and squares wrap in 64 bits,
/// Max/Min/ArgMax/ArgMin compare exactly (uint64 as unsigned), Mean divides the exact 128-bit
/// sum and truncates.
enum ReduceOps {
    enum Kind { case mean, sum, max, min, prod, l1, l2, sumSquare, logSum, logSumExp }

    /// Element k of `x` as a Double (for the types `MBTensor` holds).
    static func reader(_ x: MBTensor) throws -> (Int) -> Double {
        switch x.elementType {
        case .float: let p = x.pointer(Float.self); return { Double(p[$0]) }
        case .int64: let p = x.pointer(Int64.self); return { Double(p[$0]) }
        case .int32: let p = x.pointer(Int32.self); return { Double(p[$0]) }
        case .bool: let p = x.pointer(UInt8.self); return { p[$0] != 0 ? 1 : 0 }
        default: throw OpError("input 0 (data): element type \(x.elementType.name) is not supported")
        }
    }

    /// Stores `v` as element k of a freshly allocated `y` of the input's type.
    static func store(_ v: Double, _ k: Int, _ y: MBTensor) {
        switch y.elementType {
        case .int64: y.mutable(Int64.self)[k] = v.isFinite ? Int64(max(min(v, 9.2e18), -9.2e18)) : (v > 0 ? .max : .min)
        case .int32: y.mutable(Int32.self)[k] = v.isFinite ? Int32(max(min(v, 2147483647), -2147483648)) : (v > 0 ? .max : .min)
        case .bool: y.mutable(UInt8.self)[k] = (v.isInfinite ? v > 0 : v != 0) ? 1 : 0  // empty max is false, empty min true
        default: y.mutable(Float.self)[k] = Float(v)
        }
    }

    /// Element k of an int64-held tensor as a key whose signed order is the values' order: the
    /// value itself, or for uint64 its bits with the sign bit flipped (0 → Int64.min, 2^64-1 → Int64.max).
    static func orderKeys(_ x: MBTensor, unsigned: Bool) -> (Int) -> Int64 {
        let p = x.pointer(Int64.self)
        return unsigned ? { p[$0] ^ Int64.min } : { p[$0] }
    }

    /// Whether input `i` is declared uint64 (held as int64 bit patterns).
    static func isUnsigned(_ n: NodeContext, input i: Int = 0) -> Bool { n.declaredElementType(ofInput: i) == .uint64 }

    /// The exact integer reduction of int64-held `x` into `y` (same type); `outIndex(k)` is element
    /// k's output position.
    static func reduceInt64(_ x: MBTensor, _ kind: Kind, unsigned: Bool, outCount: Int, reduceCount: Int,
                            outIndex: (Int) -> Int, into y: MBTensor) {
        let p = x.pointer(Int64.self), dst = y.mutable(Int64.self)
        switch kind {
        case .max, .min:
            let key = orderKeys(x, unsigned: unsigned)
            let isMax = kind == .max
            var acc = [Int64](repeating: isMax ? .min : .max, count: outCount)
            for k in 0..<x.count {
                let o = outIndex(k), v = key(k)
                if isMax ? v > acc[o] : v < acc[o] { acc[o] = v }
            }
            for k in 0..<outCount { dst[k] = unsigned ? acc[k] ^ Int64.min : acc[k] }
        case .mean:
            // Exact: a 128-bit sum of at most 2^63 values of 64 bits cannot overflow.
            if unsigned {
                var acc = [UInt128](repeating: 0, count: outCount)
                for k in 0..<x.count { acc[outIndex(k)] += UInt128(UInt64(bitPattern: p[k])) }
                for k in 0..<outCount { dst[k] = reduceCount == 0 ? 0 : Int64(truncatingIfNeeded: acc[k] / UInt128(reduceCount)) }
            } else {
                var acc = [Int128](repeating: 0, count: outCount)
                for k in 0..<x.count { acc[outIndex(k)] += Int128(p[k]) }
                for k in 0..<outCount { dst[k] = reduceCount == 0 ? 0 : Int64(truncatingIfNeeded: acc[k] / Int128(reduceCount)) }
            }
        default:
            // Two's complement: the same bits for signed and unsigned, wrapping in 64 bits.
            var acc = [Int64](repeating: kind == .prod ? 1 : 0, count: outCount)
            for k in 0..<x.count {
                let o = outIndex(k), v = p[k]
                switch kind {
                case .prod: acc[o] &*= v
                case .l1: acc[o] &+= unsigned || v >= 0 ? v : 0 &- v
                case .sumSquare: acc[o] &+= v &* v
                default: acc[o] &+= v
                }
            }
            for k in 0..<outCount { dst[k] = acc[k] }
        }
    }

    /// Calls `body(k, o)` for every element k of a `shape` tensor in order, with o its position in
    /// the output whose strides over `shape` are `outStrides` (0 along reduced axes).
    static func walk(_ shape: [Int], _ outStrides: [Int], _ body: (Int, Int) -> Void) {
        var index = Array(repeating: 0, count: shape.count)
        var o = 0
        for k in 0..<shape.reduce(1, *) {
            body(k, o)
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                o += outStrides[d]
                if index[d] < shape[d] { break }
                o -= outStrides[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
    }

    /// The float kernel for `kind`, where there is one.
    static func kernelKind(_ kind: Kind) -> Reduce.Kind? {
        switch kind {
        case .mean: .mean
        case .sum: .sum
        case .max: .max
        case .min: .min
        default: nil
        }
    }

    static func compile(_ n: NodeContext, _ kind: Kind) throws -> OpRun {
        let unsigned = isUnsigned(n)
        let exactKinds: Set<Kind> = [.mean, .sum, .max, .min, .prod, .l1, .sumSquare]
        let axesFromInput = n.opset >= (kind == .sum ? 13 : 18)
        let attrAxes = axesFromInput ? nil : try n.ints("axes")
        let keepDims = try n.int("keepdims", default: 1) != 0
        let noopWhenEmpty = try n.int("noop_with_empty_axes", default: 0) != 0
        return { i, c in
            let x = try i.required(0, "data")
            let read = try reader(x)
            var axes = axesFromInput ? (i[1].map(intValues) ?? []) : (attrAxes ?? [])
            if axes.isEmpty {
                if noopWhenEmpty { return [x] }
                axes = Array(0..<x.rank)
            }
            let set = Set(try axes.map { try normalizeAxis($0, rank: x.rank) })
            let outKeep = x.shape.enumerated().map { set.contains($0.offset) ? 1 : $0.element }
            let outCount = outKeep.reduce(1, *)
            let reduceCount = x.count / max(outCount, 1)
            var acc = [Double](repeating: kind == .max ? -.infinity : (kind == .min ? .infinity : (kind == .prod ? 1 : 0)), count: outCount)
            // Walk the input once; each element's output position drops the reduced coordinates.
            let outStrides = broadcastStrides(outKeep, to: x.shape)
            let shape = keepDims ? outKeep : x.shape.enumerated().filter { !set.contains($0.offset) }.map(\.element)
            if x.elementType == .int64 && exactKinds.contains(kind) {
                let y = try c.alloc(x.elementType, shape)
                var positions = [Int](repeating: 0, count: x.count)
                walk(x.shape, outStrides) { k, o in positions[k] = o }
                reduceInt64(x, kind, unsigned: unsigned, outCount: outCount, reduceCount: reduceCount, outIndex: { positions[$0] }, into: y)
                return [y]
            }
            if x.elementType == .float, x.count > 0, let fast = kernelKind(kind), let lo = set.min(), let hi = set.max(), hi - lo + 1 == set.count {
                // The reduced axes are one contiguous run: [outer, length, inner] in one pass.
                let y = try c.alloc(.float, shape)
                Reduce.forward(c.variant, fast, outer: x.shape[..<lo].reduce(1, *), length: x.shape[lo...hi].reduce(1, *),
                               inner: x.shape[(hi + 1)...].reduce(1, *), input: x.pointer(Float.self), output: y.mutable(Float.self),
                               threads: c.threads)
                return [y]
            }
            walk(x.shape, outStrides) { k, o in
                let v = read(k)
                switch kind {
                case .mean, .sum, .logSum: acc[o] += v
                case .max: if v > acc[o] || v.isNaN { acc[o] = v }
                case .min: if v < acc[o] || v.isNaN { acc[o] = v }
                case .prod: acc[o] *= v
                case .l1: acc[o] += abs(v)
                case .l2, .sumSquare: acc[o] += v * v
                case .logSumExp: acc[o] += exp(v)
                }
            }
            let y = try c.alloc(x.elementType, shape)
            for k in 0..<outCount {
                switch kind {
                case .mean: store(acc[k] / Double(reduceCount), k, y)
                case .l2: store(acc[k].squareRoot(), k, y)
                case .logSum, .logSumExp: store(log(acc[k]), k, y)
                default: store(acc[k], k, y)
                }
            }
            return [y]
        }
    }

    static func compileArg(_ n: NodeContext, max isMax: Bool) throws -> OpRun {
        let axisAttr = try n.int("axis", default: 0)
        let keepDims = try n.int("keepdims", default: 1) != 0
        let selectLast = try n.int("select_last_index", default: 0) != 0
        let unsigned = isUnsigned(n)
        return { i, c in
            let x = try i.required(0, "data")
            if x.elementType == .int64 {
                let key = orderKeys(x, unsigned: unsigned)
                return [try argIndices(x, axisAttr: axisAttr, keepDims: keepDims, c) { bv, v in
                    isMax ? (key(v) > key(bv) || (selectLast && key(v) == key(bv))) : (key(v) < key(bv) || (selectLast && key(v) == key(bv)))
                }]
            }
            let read = try reader(x)
            return [try argIndices(x, axisAttr: axisAttr, keepDims: keepDims, c) { bv, v in
                isMax ? (read(v) > read(bv) || (selectLast && read(v) == read(bv))) : (read(v) < read(bv) || (selectLast && read(v) == read(bv)))
            }]
        }
    }

    /// ArgMax/ArgMin's walk: per position, the index along the axis of the element `better` (best
    /// so far, candidate; flat element indices) keeps choosing.
    static func argIndices(_ x: MBTensor, axisAttr: Int, keepDims: Bool, _ c: ExecutionContext,
                           better: (Int, Int) -> Bool) throws -> MBTensor {
        let axis = try normalizeAxis(axisAttr, rank: x.rank)
        let outer = x.shape[..<axis].reduce(1, *), len = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
        var shape = x.shape
        if keepDims { shape[axis] = 1 } else { shape.remove(at: axis) }
        let y = try c.alloc(.int64, shape)
        guard len > 0 || y.count == 0 else { throw OpError("cannot take the arg of an empty axis \(axisAttr) (shape \(x.shape))") }
        let dst = y.mutable(Int64.self)
        for o in 0..<outer {
            for q in 0..<inner {
                var best = 0
                var bv = o * len * inner + q
                for k in 1..<max(len, 1) {
                    let v = (o * len + k) * inner + q
                    if better(bv, v) { best = k; bv = v }
                }
                dst[o * inner + q] = Int64(best)
            }
        }
        return y
    }

    static let table: [String: OpTable.Compile] = [
        "ReduceMean": { try compile($0, .mean) },
        "ReduceSum": { try compile($0, .sum) },
        "ReduceMax": { try compile($0, .max) },
        "ReduceMin": { try compile($0, .min) },
        "ReduceProd": { try compile($0, .prod) },
        "ReduceL1": { try compile($0, .l1) },
        "ReduceL2": { try compile($0, .l2) },
        "ReduceLogSum": { try compile($0, .logSum) },
        "ReduceLogSumExp": { try compile($0, .logSumExp) },
        "ReduceSumSquare": { try compile($0, .sumSquare) },
        "ArgMax": { try compileArg($0, max: true) },
        "ArgMin": { try compileArg($0, max: false) },
    ]
}
