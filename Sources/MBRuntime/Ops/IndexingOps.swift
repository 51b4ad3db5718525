import MBCore

/// Operators that pick, place or count elements by index: GatherElements, GatherND,
/// ScatterElements, ScatterND, OneHot, NonZero, Compress, Trilu, CumSum, CumProd, TopK, EyeLike,
/// ReverseSequence, CenterCropPad, Unique.
/// Moves are byte copies, so they work for every element type the runtime holds; reductions and
/// arithmetic read and write through Double (exact for int32, and for int64 up to 2^53).
enum IndexingOps {
    /// `index` (possibly negative) checked against an axis of length `dim`.
    static func resolve(_ index: Int, _ dim: Int, _ what: String) throws -> Int {
        let k = index < 0 ? index + dim : index
        guard k >= 0 && k < dim else { throw OpError("\(what) index \(index) is out of range for a dimension of \(dim)") }
        return k
    }

    enum Reduction: String { case none, add, mul, max, min }

    static func reduction(_ n: NodeContext) throws -> Reduction {
        let name = try n.string("reduction", default: "none")
        guard let r = Reduction(rawValue: name) else { throw n.bad("reduction '\(name)' is not none, add, mul, max or min") }
        return r
    }

    /// Writes `updates[u]` into `out[o]` (a copy of the data) under the reduction.
    static func scatterElement(_ out: MBTensor, _ o: Int, _ updates: MBTensor, _ u: Int, _ r: Reduction,
                               read: (Int) -> Double, readUpdate: (Int) -> Double) {
        let size = out.elementType.runtimeSize
        guard r != .none else {
            (out.storage.raw + o * size).copyMemory(from: updates.storage.raw + u * size, byteCount: size)
            return
        }
        let a = read(o), b = readUpdate(u)
        let v: Double
        switch r {
        case .add: v = a + b
        case .mul: v = a * b
        case .max: v = Swift.max(a, b)
        case .min: v = Swift.min(a, b)
        case .none: v = b
        }
        ReduceOps.store(v, o, out)
    }

    /// GatherElements/ScatterElements: the data element that position `k` of `indices` names (its
    /// own coordinates, with `index` along `axis`), checked against the data's shape.
    static func elementOffset(_ k: Int, indices: MBTensor, index: Int, axis: Int, data: MBTensor, strides: [Int], _ op: String) throws -> Int {
        var coords = coordinates(k, indices.shape)
        coords[axis] = try resolve(index, data.shape[axis], op)
        var offset = 0
        for d in 0..<data.rank {
            guard coords[d] < data.shape[d] else { throw OpError("indices \(indices.shape) exceed data \(data.shape) on axis \(d)") }
            offset += coords[d] * strides[d]
        }
        return offset
    }

    static func copy(_ x: MBTensor, _ c: ExecutionContext) throws -> MBTensor {
        let out = try c.alloc(x.elementType, x.shape)
        out.storage.raw.copyMemory(from: x.storage.raw, byteCount: x.count * x.elementType.runtimeSize)
        return out
    }

    /// Row-major coordinates of flat index `k` in `shape`.
    static func coordinates(_ k: Int, _ shape: [Int]) -> [Int] {
        var rest = k
        var coords = Array(repeating: 0, count: shape.count)
        for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] > 0 {
            coords[d] = rest % shape[d]
            rest /= shape[d]
        }
        return coords
    }

    static let table: [String: OpTable.Compile] = [
        "GatherElements": { n in
            let axisAttr = try n.int("axis", default: 0)
            return { i, c in
                let x = try i.required(0), idx = try i.required(1, "indices")
                let axis = try normalizeAxis(axisAttr, rank: x.rank)
                guard idx.rank == x.rank else { throw OpError("indices \(idx.shape) must have the rank of data \(x.shape)") }
                let indices = intValues(idx)
                let out = try c.alloc(x.elementType, idx.shape)
                let size = x.elementType.runtimeSize
                let xs = contiguousStrides(x.shape)
                for k in 0..<idx.count {
                    let offset = try elementOffset(k, indices: idx, index: indices[k], axis: axis, data: x, strides: xs, "GatherElements")
                    (out.storage.raw + k * size).copyMemory(from: x.storage.raw + offset * size, byteCount: size)
                }
                return [out]
            }
        },
        "ScatterElements": scatterElements,
        // Scatter (opsets 9-10) is ScatterElements without reductions.
        "Scatter": scatterElements,
        "GatherND": { n in
            let batchDims = try n.int("batch_dims", default: 0)
            return { i, c in
                let x = try i.required(0), idx = try i.required(1, "indices")
                guard idx.rank >= 1, batchDims >= 0, batchDims < min(x.rank, idx.rank) || (batchDims == 0 && x.rank >= 1) else {
                    throw OpError("batch_dims \(batchDims) does not fit data \(x.shape) and indices \(idx.shape)")
                }
                let k = idx.shape[idx.rank - 1]
                guard x.shape[..<batchDims] == idx.shape[..<batchDims], batchDims + k <= x.rank else {
                    throw OpError("indices \(idx.shape) do not fit data \(x.shape) with batch_dims \(batchDims)")
                }
                let shape = Array(idx.shape.dropLast()) + Array(x.shape[(batchDims + k)...])
                let out = try c.alloc(x.elementType, shape)
                let size = x.elementType.runtimeSize
                let slice = x.shape[(batchDims + k)...].reduce(1, *) * size
                let batches = x.shape[..<batchDims].reduce(1, *)
                let perBatch = idx.shape[batchDims..<(idx.rank - 1)].reduce(1, *)
                let batchStride = x.shape[batchDims...].reduce(1, *) * size
                let xs = contiguousStrides(Array(x.shape[batchDims...]))
                let indices = intValues(idx)
                var dst = out.storage.raw
                for b in 0..<batches {
                    for m in 0..<perBatch {
                        var offset = b * batchStride
                        for d in 0..<k {
                            let v = try resolve(indices[(b * perBatch + m) * k + d], x.shape[batchDims + d], "GatherND")
                            offset += v * xs[d] * size
                        }
                        dst.copyMemory(from: x.storage.raw + offset, byteCount: slice)
                        dst += slice
                    }
                }
                return [out]
            }
        },
        "ScatterND": { n in
            let r = try reduction(n)
            return { i, c in
                let x = try i.required(0), idx = try i.required(1, "indices"), upd = try i.required(2, "updates")
                guard idx.rank >= 1 else { throw OpError("indices must have rank >= 1") }
                let k = idx.shape[idx.rank - 1]
                guard k <= x.rank, upd.elementType == x.elementType,
                      upd.shape == Array(idx.shape.dropLast()) + Array(x.shape[k...]) else {
                    throw OpError("updates \(upd.description) do not fit data \(x.description) and indices \(idx.shape)")
                }
                let out = try copy(x, c)
                let slice = x.shape[k...].reduce(1, *)
                let xs = contiguousStrides(x.shape)
                let indices = intValues(idx)
                let read = try ReduceOps.reader(out), readUpdate = try ReduceOps.reader(upd)
                for m in 0..<idx.shape.dropLast().reduce(1, *) {
                    var offset = 0
                    for d in 0..<k { offset += try resolve(indices[m * k + d], x.shape[d], "ScatterND") * xs[d] }
                    for e in 0..<slice { scatterElement(out, offset + e, upd, m * slice + e, r, read: read, readUpdate: readUpdate) }
                }
                return [out]
            }
        },
        "OneHot": { n in
            let axisAttr = try n.int("axis", default: -1)
            return { i, c in
                let idx = try i.required(0, "indices"), depthT = try i.required(1, "depth"), values = try i.required(2, "values")
                guard depthT.count == 1, values.count == 2 else { throw OpError("depth must be one value and values two, got \(depthT.count) and \(values.count)") }
                let depth = clampedInt(depthT.floats[0].rounded(.towardZero))
                guard depth >= 0 else { throw OpError("depth \(depth) is negative") }
                let axis = try normalizeAxis(axisAttr, rank: idx.rank + 1)
                let shape = Array(idx.shape[..<axis]) + [depth] + Array(idx.shape[axis...])
                let out = try c.alloc(values.elementType, shape)
                let size = values.elementType.runtimeSize
                let off = values.storage.raw, on = values.storage.raw + size
                for k in 0..<out.count { (out.storage.raw + k * size).copyMemory(from: off, byteCount: size) }
                let outer = idx.shape[..<axis].reduce(1, *), inner = idx.shape[axis...].reduce(1, *)
                let positions = idx.floats
                for o in 0..<outer {
                    for q in 0..<inner {
                        var v = clampedInt(positions[o * inner + q].rounded(.towardZero))
                        if v < 0 { v += depth }
                        guard v >= 0 && v < depth else { continue }  // out of range: all off
                        (out.storage.raw + ((o * depth + v) * inner + q) * size).copyMemory(from: on, byteCount: size)
                    }
                }
                return [out]
            }
        },
        "NonZero": { _ in { i, c in
            let x = try i.required(0)
            let read = try ReduceOps.reader(x)
            var hits: [Int] = []
            for k in 0..<x.count where read(k) != 0 { hits.append(k) }
            let out = try c.alloc(.int64, [x.rank, hits.count])
            let d = out.mutable(Int64.self)
            for (j, k) in hits.enumerated() {
                let coords = coordinates(k, x.shape)
                for a in 0..<x.rank { d[a * hits.count + j] = Int64(coords[a]) }
            }
            return [out]
        } },
        "Compress": { n in
            let axisAttr = try n.int("axis")
            return { i, c in
                let x = try i.required(0), cond = try i.required(1, "condition")
                let keep = cond.bools
                let flat = axisAttr == nil
                let axis = flat ? 0 : try normalizeAxis(axisAttr!, rank: x.rank)
                let dims = flat ? [x.count] : x.shape
                guard keep.count <= dims[axis] else { throw OpError("condition has \(keep.count) values for an axis of \(dims[axis])") }
                let chosen = keep.indices.filter { keep[$0] }
                var shape = dims
                shape[axis] = chosen.count
                let out = try c.alloc(x.elementType, shape)
                let size = x.elementType.runtimeSize
                let outer = dims[..<axis].reduce(1, *), inner = dims[(axis + 1)...].reduce(1, *) * size
                var dst = out.storage.raw
                for o in 0..<outer {
                    for k in chosen {
                        dst.copyMemory(from: x.storage.raw + (o * dims[axis] + k) * inner, byteCount: inner)
                        dst += inner
                    }
                }
                return [out]
            }
        },
        "Trilu": { n in
            let upper = try n.int("upper", default: 1) != 0
            return { i, c in
                let x = try i.required(0)
                guard x.rank >= 2 else { throw OpError("input \(x.shape) must have rank >= 2") }
                let k = try i[1].map { try IndexingOps.scalarInt($0, "k") } ?? 0
                let out = try copy(x, c)
                let rows = x.shape[x.rank - 2], cols = x.shape[x.rank - 1], size = x.elementType.runtimeSize
                let matrices = x.count / max(rows * cols, 1)
                for m in 0..<matrices {
                    for r in 0..<rows {
                        for col in 0..<cols where upper ? col - r < k : col - r > k {
                            (out.storage.raw + ((m * rows + r) * cols + col) * size).initializeMemory(as: UInt8.self, repeating: 0, count: size)
                        }
                    }
                }
                return [out]
            }
        },
        "CumSum": { try cumulative($0, product: false) },
        "CumProd": { try cumulative($0, product: true) },
        "ReverseSequence": { n in
            let batchAxis = try n.int("batch_axis", default: 1), timeAxis = try n.int("time_axis", default: 0)
            guard Set([batchAxis, timeAxis]) == [0, 1] else { throw n.bad("batch_axis \(batchAxis) and time_axis \(timeAxis) must be 0 and 1") }
            return { i, c in
                let x = try i.required(0), lengths = intValues(try i.required(1, "sequence_lens"))
                guard x.rank >= 2, lengths.count == x.shape[batchAxis] else { throw OpError("sequence_lens has \(lengths.count) values for input \(x.shape)") }
                let out = try copy(x, c)
                let size = x.elementType.runtimeSize, inner = x.shape[2...].reduce(1, *) * size
                let strides = contiguousStrides(Array(x.shape[0..<2])).map { $0 * inner }
                for (b, length) in lengths.enumerated() {
                    guard length >= 0 && length <= x.shape[timeAxis] else { throw OpError("sequence length \(length) is outside 0...\(x.shape[timeAxis])") }
                    for t in 0..<length {
                        var from = [0, 0], to = [0, 0]
                        from[batchAxis] = b; from[timeAxis] = t
                        to[batchAxis] = b; to[timeAxis] = length - 1 - t
                        (out.storage.raw + to[0] * strides[0] + to[1] * strides[1])
                            .copyMemory(from: x.storage.raw + from[0] * strides[0] + from[1] * strides[1], byteCount: inner)
                    }
                }
                return [out]
            }
        },
        "CenterCropPad": { n in
            let axesAttr = try n.ints("axes")
            return { i, c in
                let x = try i.required(0), wanted = intValues(try i.required(1, "shape"))
                let axes = try (axesAttr ?? Array(0..<x.rank)).map { try normalizeAxis($0, rank: x.rank) }
                guard wanted.count == axes.count, wanted.allSatisfy({ $0 >= 0 }) else { throw OpError("shape \(wanted) must give one size per axis \(axes)") }
                var shape = x.shape
                // Per axis: where the kept input range starts in the input and in the output
                // (crops take the centre, the extra element on the right side; pads add zeros).
                var inStart = Array(repeating: 0, count: x.rank), outStart = inStart, kept = x.shape
                for (k, d) in axes.enumerated() {
                    let from = x.shape[d], to = wanted[k]
                    shape[d] = to
                    if to <= from { inStart[d] = (from - to) / 2; kept[d] = to } else { outStart[d] = (to - from) / 2 }
                }
                let out = try c.alloc(x.elementType, shape)
                let size = x.elementType.runtimeSize
                out.storage.raw.initializeMemory(as: UInt8.self, repeating: 0, count: out.count * size)
                let inStrides = contiguousStrides(x.shape), outStrides = contiguousStrides(shape)
                for k in 0..<kept.reduce(1, *) {
                    let coords = coordinates(k, kept)
                    var src = 0, dst = 0
                    for d in 0..<x.rank { src += (coords[d] + inStart[d]) * inStrides[d]; dst += (coords[d] + outStart[d]) * outStrides[d] }
                    (out.storage.raw + dst * size).copyMemory(from: x.storage.raw + src * size, byteCount: size)
                }
                return [out]
            }
        },
        "TopK": { n in
            let axisAttr = try n.int("axis", default: -1)
            let largest = try n.int("largest", default: 1) != 0
            let kAttr = n.opset < 10 ? try n.int("k") : nil
            let unsigned = ReduceOps.isUnsigned(n)
            return { i, c in
                let x = try i.required(0)
                // int64-held values compare exactly (uint64 as unsigned), others as Double.
                let key = x.elementType == .int64 ? ReduceOps.orderKeys(x, unsigned: unsigned) : nil
                let read = key == nil ? try ReduceOps.reader(x) : { _ in 0 }
                let k = try kAttr ?? IndexingOps.scalarInt(try i.required(1, "K"), "K")
                let axis = try normalizeAxis(axisAttr, rank: x.rank)
                let len = x.shape[axis]
                guard k >= 0 && k <= len else { throw OpError("K \(k) is outside 0...\(len) for axis \(axisAttr) of \(x.shape)") }
                var shape = x.shape
                shape[axis] = k
                let values = try c.alloc(x.elementType, shape), indices = try c.alloc(.int64, shape)
                let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
                let size = x.elementType.runtimeSize
                let ids = indices.mutable(Int64.self)
                var order = Array(0..<len)
                for o in 0..<outer {
                    for q in 0..<inner {
                        let at = { (j: Int) in (o * len + j) * inner + q }
                        // Ties keep the lower index first (a stable order), as ONNX requires.
                        order = Array(0..<len)
                        if let key {
                            order.sort { a, b in
                                let va = key(at(a)), vb = key(at(b))
                                if va != vb { return largest ? va > vb : va < vb }
                                return a < b
                            }
                        } else {
                            order.sort { a, b in
                                let va = read(at(a)), vb = read(at(b))
                                if va != vb { return largest ? va > vb : va < vb }
                                return a < b
                            }
                        }
                        for j in 0..<k {
                            let to = (o * k + j) * inner + q
                            (values.storage.raw + to * size).copyMemory(from: x.storage.raw + at(order[j]) * size, byteCount: size)
                            ids[to] = Int64(order[j])
                        }
                    }
                }
                return [values, indices]
            }
        },
        "Unique": { n in
            let axisAttr = try n.int("axis"), sorted = try n.int("sorted", default: 1) != 0
            let unsigned = ReduceOps.isUnsigned(n)
            return { i, c in
                let x = try i.required(0)
                // Slices along the axis (single elements without one), compared as rows of values.
                let axis = try axisAttr.map { try normalizeAxis($0, rank: x.rank) }
                let dims = axis == nil ? [x.count] : x.shape
                let a = axis ?? 0
                let outer = dims[..<a].reduce(1, *), len = dims[a], inner = dims[(a + 1)...].reduce(1, *)
                // int64-held values are compared exactly (uint64 as unsigned), others as Double.
                let (groups, groupOf, order) = x.elementType == .int64
                    ? uniqueRows(ReduceOps.orderKeys(x, unsigned: unsigned), outer: outer, len: len, inner: inner, sorted: sorted)
                    : uniqueRows(try ReduceOps.reader(x), outer: outer, len: len, inner: inner, sorted: sorted)
                var rank = [Int](repeating: 0, count: groups.count)
                for (position, g) in order.enumerated() { rank[g] = position }
                var shape = dims
                shape[a] = groups.count
                let y = try c.alloc(x.elementType, shape)
                let size = x.elementType.runtimeSize, block = inner * size
                for o in 0..<outer {
                    for (position, g) in order.enumerated() {
                        (y.storage.raw + (o * groups.count + position) * block).copyMemory(from: x.storage.raw + (o * len + groups[g].first) * block, byteCount: block)
                    }
                }
                return [y,
                        MBTensor(shape: [groups.count], int64s: order.map { Int64(groups[$0].first) }),
                        MBTensor(shape: [len], int64s: groupOf.map { Int64(rank[$0]) }),
                        MBTensor(shape: [groups.count], int64s: order.map { Int64(groups[$0].count) })]
            }
        },
        "EyeLike": { n in
            let dtype = try n.int("dtype")
            // Any shift beyond ±2^31 leaves the matrix empty; bounding it keeps r + shift from overflowing.
            let shift = max(min(try n.int("k", default: 0), Int(Int32.max)), Int(Int32.min))
            let declared = try dtype.map { code -> ElementType in
                guard let t = ElementType(rawValue: Int32(code)) else { throw n.bad("dtype \(code) is not an element type") }
                return try runtimeCastTarget(t, n)
            }
            return { i, c in
                let x = try i.required(0)
                guard x.rank == 2 else { throw OpError("input \(x.shape) must be 2-D") }
                let out = try c.alloc(declared ?? x.elementType, x.shape)
                out.storage.raw.initializeMemory(as: UInt8.self, repeating: 0, count: out.count * out.elementType.runtimeSize)
                for r in 0..<x.shape[0] where r + shift >= 0 && r + shift < x.shape[1] { ReduceOps.store(1, r * x.shape[1] + r + shift, out) }
                return [out]
            }
        },
    ]

    /// Unique's grouping: slices k along the middle axis of (outer, len, inner) compared as rows of
    /// `read`'s keys; each group's first slice and count, each slice's group, and the groups in
    /// output order (first appearance, or ascending rows when `sorted`).
    static func uniqueRows<K: Hashable & Comparable>(_ read: (Int) -> K, outer: Int, len: Int, inner: Int, sorted: Bool)
        -> (groups: [(first: Int, count: Int)], groupOf: [Int], order: [Int]) {
        func row(_ k: Int) -> [K] {
            var r: [K] = []
            r.reserveCapacity(outer * inner)
            for o in 0..<outer { for q in 0..<inner { r.append(read((o * len + k) * inner + q)) } }
            return r
        }
        var firstOf: [[K]: Int] = [:], rows: [[K]] = [], groups: [(first: Int, count: Int)] = [], groupOf = [Int](repeating: 0, count: len)
        for k in 0..<len {
            let r = row(k)
            if let g = firstOf[r] { groups[g].count += 1; groupOf[k] = g; continue }
            firstOf[r] = groups.count
            groupOf[k] = groups.count
            groups.append((k, 1))
            rows.append(r)
        }
        var order = Array(groups.indices)
        if sorted { order.sort { rows[$0].lexicographicallyPrecedes(rows[$1]) } }
        return (groups, groupOf, order)
    }

    static func scatterElements(_ n: NodeContext) throws -> OpRun {
        let axisAttr = try n.int("axis", default: 0)
        let r = try reduction(n)
        return { i, c in
            let x = try i.required(0), idx = try i.required(1, "indices"), upd = try i.required(2, "updates")
            let axis = try normalizeAxis(axisAttr, rank: x.rank)
            guard idx.shape == upd.shape, idx.rank == x.rank, upd.elementType == x.elementType else {
                throw OpError("indices \(idx.shape) and updates \(upd.description) must match and have the rank of data \(x.description)")
            }
            let out = try copy(x, c)
            let indices = intValues(idx)
            let xs = contiguousStrides(x.shape)
            let read = try ReduceOps.reader(out), readUpdate = try ReduceOps.reader(upd)
            for k in 0..<idx.count {
                let offset = try elementOffset(k, indices: idx, index: indices[k], axis: axis, data: x, strides: xs, "ScatterElements")
                scatterElement(out, offset, upd, k, r, read: read, readUpdate: readUpdate)
            }
            return [out]
        }
    }

    /// CumSum and CumProd along the axis given as input 1 (exclusive and reverse attributes).
    static func cumulative(_ n: NodeContext, product: Bool) throws -> OpRun {
        let exclusive = try n.int("exclusive", default: 0) != 0, reverse = try n.int("reverse", default: 0) != 0
        return { i, c in
            let x = try i.required(0)
            let axis = try normalizeAxis(try IndexingOps.scalarInt(try i.required(1, "axis"), "axis"), rank: x.rank)
            let read = try ReduceOps.reader(x)
            let out = try c.alloc(x.elementType, x.shape)
            let outer = x.shape[..<axis].reduce(1, *), len = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
            for o in 0..<outer {
                for q in 0..<inner {
                    var acc: Double = product ? 1 : 0
                    for step in 0..<len {
                        let at = (o * len + (reverse ? len - 1 - step : step)) * inner + q
                        let v = read(at)
                        if exclusive { ReduceOps.store(acc, at, out) }
                        acc = product ? acc * v : acc + v
                        if !exclusive { ReduceOps.store(acc, at, out) }
                    }
                }
            }
            return [out]
        }
    }

    static func scalarInt(_ t: MBTensor, _ what: String) throws -> Int {
        guard t.count == 1 else { throw OpError("\(what) must hold one value, got \(t.description)") }
        return intValues(t)[0]
    }
}
