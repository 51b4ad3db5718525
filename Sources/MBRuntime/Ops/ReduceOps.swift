import MBCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ReduceMean/Sum/Max/Min/Prod/L2/SumSquare (axes as attribute, or as input from opset 13
/// for ReduceSum and 18 for the others) and ArgMax/ArgMin.
enum ReduceOps {
    enum Kind { case mean, sum, max, min, prod, l2, sumSquare }

    static func compile(_ n: NodeContext, _ kind: Kind) throws -> OpRun {
        let axesFromInput = n.opset >= (kind == .sum ? 13 : 18)
        let attrAxes = axesFromInput ? nil : try n.ints("axes")
        let keepDims = try n.int("keepdims", default: 1) != 0
        let noopWhenEmpty = try n.int("noop_with_empty_axes", default: 0) != 0
        return { i, c in
            let x = try i.float(0, "data")
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
            let src = x.pointer(Float.self)
            var index = Array(repeating: 0, count: x.rank)
            var o = 0
            for k in 0..<x.count {
                let v = Double(src[k])
                switch kind {
                case .mean, .sum: acc[o] += v
                case .max: if v > acc[o] || v.isNaN { acc[o] = v }
                case .min: if v < acc[o] || v.isNaN { acc[o] = v }
                case .prod: acc[o] *= v
                case .l2, .sumSquare: acc[o] += v * v
                }
                var d = x.rank - 1
                while d >= 0 {
                    index[d] += 1
                    o += outStrides[d]
                    if index[d] < x.shape[d] { break }
                    o -= outStrides[d] * x.shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
            let shape = keepDims ? outKeep : x.shape.enumerated().filter { !set.contains($0.offset) }.map(\.element)
            let y = try c.alloc(.float, shape)
            let p = y.mutable(Float.self)
            for k in 0..<outCount {
                switch kind {
                case .mean: p[k] = Float(acc[k] / Double(reduceCount))
                case .l2: p[k] = Float(acc[k].squareRoot())
                default: p[k] = Float(acc[k])
                }
            }
            return [y]
        }
    }

    static func compileArg(_ n: NodeContext, max isMax: Bool) throws -> OpRun {
        let axisAttr = try n.int("axis", default: 0)
        let keepDims = try n.int("keepdims", default: 1) != 0
        let selectLast = try n.int("select_last_index", default: 0) != 0
        return { i, c in
            let x = try i.float(0, "data")
            let axis = try normalizeAxis(axisAttr, rank: x.rank)
            let outer = x.shape[..<axis].reduce(1, *), len = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
            var shape = x.shape
            if keepDims { shape[axis] = 1 } else { shape.remove(at: axis) }
            let y = try c.alloc(.int64, shape)
            let src = x.pointer(Float.self), dst = y.mutable(Int64.self)
            for o in 0..<outer {
                for q in 0..<inner {
                    var best = 0
                    var bv = src[o * len * inner + q]
                    for k in 1..<max(len, 1) {
                        let v = src[(o * len + k) * inner + q]
                        let better = isMax ? (v > bv || (selectLast && v == bv)) : (v < bv || (selectLast && v == bv))
                        if better { best = k; bv = v }
                    }
                    dst[o * inner + q] = Int64(best)
                }
            }
            return [y]
        }
    }

    static let table: [String: OpTable.Compile] = [
        "ReduceMean": { try compile($0, .mean) },
        "ReduceSum": { try compile($0, .sum) },
        "ReduceMax": { try compile($0, .max) },
        "ReduceMin": { try compile($0, .min) },
        "ReduceProd": { try compile($0, .prod) },
        "ReduceL2": { try compile($0, .l2) },
        "ReduceSumSquare": { try compile($0, .sumSquare) },
        "ArgMax": { try compileArg($0, max: true) },
        "ArgMin": { try compileArg($0, max: false) },
    ]
}
