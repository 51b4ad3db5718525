import MBCore
import MBKernels

/// The integer operators of quantized ONNX models: ConvInteger, MatMulInteger, QLinearConv and
/// QLinearMatMul. 8-bit values are held widened to int32 (TensorConversion); products are summed
/// in int32 as the spec's accumulators are (wrapping, never trapping), so results are exact. The
/// QLinear forms then requantize: `acc * (scale_a * scale_b / scale_y) + zero_y` in double,
/// rounded half to even and saturated to the output type (the multiplier is computed in the
/// scales' own precision, as onnx's reference does: float32, or float16 when the model says so).
enum IntegerOps {
    /// A zero point or scale per tensor (one value) or one per index along an axis.
    struct PerIndex<T: Sendable>: Sendable {
        var values: [T]
        func callAsFunction(_ i: Int) -> T { values.count == 1 ? values[0] : values[i] }

        /// `t` has one value, or `count` values (1-D, or `count` along one axis with ones elsewhere).
        init(_ t: MBTensor?, _ what: String, count: Int, along: String, default d: T, read: (MBTensor) -> [T]) throws {
            guard let t else { values = [d]; return }
            let nonUnit = t.shape.filter { $0 != 1 }
            guard t.count == 1 || (t.count == count && nonUnit.count <= 1) else {
                throw OpError("\(what) has shape \(t.shape): it must be a scalar or have \(count) values (one per \(along))")
            }
            values = read(t)
        }
    }

    static func int32Values(_ t: MBTensor) -> [Int32] { Array(t.buffer(Int32.self)) }
    static func floatValues(_ t: MBTensor) -> [Float] { Array(t.buffer(Float.self)) }

    /// An 8-bit (or other narrow integer) input, held as int32.
    static func integer(_ i: Inputs, _ k: Int, _ what: String) throws -> MBTensor {
        let t = try i.required(k, what)
        guard t.elementType == .int32 else {
            throw OpError("input \(k) (\(what)) must be an 8-bit integer tensor, got \(t.elementType.name)", kind: .unsupportedOperator)
        }
        return t
    }

    /// The zero point's declared type must be its data's (uint8 with uint8, int8 with int8).
    static func checkZeroPointType(_ n: NodeContext, zero: Int, data: Int, _ zeroName: String, _ dataName: String) throws {
        if let z = n.declaredElementType(ofInput: zero), let d = n.declaredElementType(ofInput: data), z != d {
            throw n.bad("\(zeroName) is \(z.name) but \(dataName) is \(d.name): a zero point has its data's type")
        }
    }

    /// The saturation range of a quantized output of type `type` (uint8 when unknown).
    static func outputRange(_ type: ElementType?) throws -> ClosedRange<Double> {
        let r = try QuantizeOps.range(of: type ?? .uint8)
        return Double(r.lowerBound)...Double(r.upperBound)
    }

    /// Rounds a scale computation step to the precision the scales are declared in.
    static func scaleRounding(_ type: ElementType?) -> @Sendable (Float) -> Float {
        switch type {
        case .float16?: return { $0.roundedToFloat16 }
        case .bfloat16?: return { $0.roundedToBFloat16 }
        default: return { $0 }
        }
    }

    /// `acc * multiplier + zero`, rounded half to even, saturated.
    @inline(__always)
    static func requantize(_ acc: Int32, _ multiplier: Float, _ zero: Int32, _ range: ClosedRange<Double>) -> Int32 {
        let r = (Double(acc) * Double(multiplier) + Double(zero)).rounded(.toNearestOrEven)
        guard !r.isNaN else { return Int32(range.lowerBound) }
        return Int32(min(max(r, range.lowerBound), range.upperBound))
    }

    // MARK: Convolution

    /// Integer convolution: `y[n, oc, ...] = bias[oc] + Σ (x - xZero) * (w - wZero[oc])` over the
    /// window (padding contributes 0, i.e. pads x with its zero point). One group at a time: the
    /// window values are gathered into columns (im2col), then each output row accumulates
    /// weight × column rows, the inner loop running along the output positions.
    static func conv(_ g: ConvGeometry, x: UnsafePointer<Int32>, xZero: Int32, w: UnsafePointer<Int32>, wZero: PerIndex<Int32>,
                     bias: UnsafePointer<Int32>?, y: UnsafeMutablePointer<Int32>) {
        let d = g.dims3
        let (kd, kh, kw) = d.kernel, (od, oh, ow) = d.output, (id, ih, iw) = d.input
        let positions = od * oh * ow, window = kd * kh * kw, rows = g.inPerGroup * window
        let inSize = id * ih * iw
        var columns = [Int32](repeating: 0, count: rows * positions)
        var weightRow = [Int32](repeating: 0, count: rows)
        for n in 0..<g.batch {
            for grp in 0..<g.groups {
                columns.withUnsafeMutableBufferPointer { col in
                    for icg in 0..<g.inPerGroup {
                        let plane = x + (n * g.inChannels + grp * g.inPerGroup + icg) * inSize
                        for z in 0..<kd { for u in 0..<kh { for v in 0..<kw {
                            let r = ((icg * kd + z) * kh + u) * kw + v
                            var p = r * positions
                            for oz in 0..<od { for oy in 0..<oh { for ox in 0..<ow {
                                let iz = oz * d.strides.0 - d.pads.0 + z * d.dilations.0
                                let iy = oy * d.strides.1 - d.pads.1 + u * d.dilations.1
                                let ix = ox * d.strides.2 - d.pads.2 + v * d.dilations.2
                                let inside = iz >= 0 && iz < id && iy >= 0 && iy < ih && ix >= 0 && ix < iw
                                col[p] = inside ? plane[(iz * ih + iy) * iw + ix] &- xZero : 0
                                p += 1
                            } } }
                        } } }
                    }
                }
                for ocg in 0..<g.outPerGroup {
                    let oc = grp * g.outPerGroup + ocg
                    let zero = wZero(oc)
                    for r in 0..<rows { weightRow[r] = w[oc * rows + r] &- zero }
                    let out = y + (n * g.outChannels + oc) * positions
                    let b = bias?[oc] ?? 0
                    for p in 0..<positions { out[p] = b }
                    columns.withUnsafeBufferPointer { col in
                        for r in 0..<rows where weightRow[r] != 0 {
                            let wv = weightRow[r], src = col.baseAddress! + r * positions
                            for p in 0..<positions { out[p] = out[p] &+ wv &* src[p] }
                        }
                    }
                }
            }
        }
    }

    /// The checked geometry and int32 accumulators of a ConvInteger or QLinearConv node.
    static func convolve(_ a: ConvOps.Attributes, x: MBTensor, xZero: MBTensor?, w: MBTensor, wZero: MBTensor?, bias: MBTensor?,
                         _ c: ExecutionContext) throws -> (MBTensor, ConvGeometry) {
        try ConvOps.Attributes.checkDimensions(("X", x), ("W", w))
        let g = try a.geometry(x: x, w: w.shape, bias: bias)
        let xz = try PerIndex<Int32>(xZero, "x_zero_point", count: 1, along: "tensor", default: 0, read: int32Values)
        let wz = try PerIndex<Int32>(wZero, "w_zero_point", count: g.outChannels, along: "output channel", default: 0, read: int32Values)
        let y = try c.alloc(.int32, [g.batch, g.outChannels] + g.output)
        conv(g, x: x.pointer(Int32.self), xZero: xz(0), w: w.pointer(Int32.self), wZero: wz, bias: bias?.pointer(Int32.self), y: y.mutable(Int32.self))
        return (y, g)
    }

    // MARK: Matrix product

    /// `(a - aZero[row]) × (b - bZero[column])` in int32 with numpy.matmul's batch broadcasting
    /// (1-D operands promoted and the added dimension removed).
    static func matmul(_ a0: MBTensor, _ b0: MBTensor, aZero: MBTensor?, bZero: MBTensor?, _ c: ExecutionContext) throws -> MBTensor {
        guard a0.rank >= 1, b0.rank >= 1 else { throw OpError("operands must have rank >= 1, got \(a0.shape) and \(b0.shape)") }
        let a = a0.rank == 1 ? a0.reshaped([1, a0.shape[0]]) : a0
        let b = b0.rank == 1 ? b0.reshaped([b0.shape[0], 1]) : b0
        let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1], kb = b.shape[b.rank - 2], n = b.shape[b.rank - 1]
        guard k == kb else { throw OpError("inner dimensions differ: \(a0.shape) × \(b0.shape)") }
        let az = try PerIndex<Int32>(aZero, "a_zero_point", count: m, along: "row of A", default: 0, read: int32Values)
        let bz = try PerIndex<Int32>(bZero, "b_zero_point", count: n, along: "column of B", default: 0, read: int32Values)
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let batch = try broadcastShapes(batchA, batchB)
        var outShape = batch + [m, n]
        let y = try c.alloc(.int32, outShape)
        let sa = broadcastStrides(batchA, to: batch), sb = broadcastStrides(batchB, to: batch)
        let pa = a.pointer(Int32.self), pb = b.pointer(Int32.self), py = y.mutable(Int32.self)
        var shifted = [Int32](repeating: 0, count: k * n)
        for idx in 0..<batch.reduce(1, *) {
            let (oa, ob) = batchOffsets(idx, batch: batch, sa, sb)
            let bm = pb + ob * k * n, am = pa + oa * m * k, ym = py + idx * m * n
            for kk in 0..<k { for j in 0..<n { shifted[kk * n + j] = bm[kk * n + j] &- bz(j) } }
            shifted.withUnsafeBufferPointer { sbuf in
                for i in 0..<m {
                    let row = ym + i * n
                    for j in 0..<n { row[j] = 0 }
                    for kk in 0..<k {
                        let av = am[i * k + kk] &- az(i)
                        if av == 0 { continue }
                        let src = sbuf.baseAddress! + kk * n
                        for j in 0..<n { row[j] = row[j] &+ av &* src[j] }
                    }
                }
            }
        }
        if a0.rank == 1 { outShape.remove(at: outShape.count - 2) }
        if b0.rank == 1 { outShape.removeLast() }
        return y.reshaped(outShape)
    }

    static let table: [String: OpTable.Compile] = [
        "ConvInteger": { n in
            let a = try ConvOps.Attributes(n)
            try checkZeroPointType(n, zero: 2, data: 0, "x_zero_point", "x")
            try checkZeroPointType(n, zero: 3, data: 1, "w_zero_point", "w")
            return { i, c in
                let (y, _) = try convolve(a, x: try integer(i, 0, "x"), xZero: try i[2].map { _ in try integer(i, 2, "x_zero_point") },
                                          w: try integer(i, 1, "w"), wZero: try i[3].map { _ in try integer(i, 3, "w_zero_point") }, bias: nil, c)
                return [y]
            }
        },
        "MatMulInteger": { n in
            try checkZeroPointType(n, zero: 2, data: 0, "a_zero_point", "A")
            try checkZeroPointType(n, zero: 3, data: 1, "b_zero_point", "B")
            return { i, c in
                [try matmul(try integer(i, 0, "A"), try integer(i, 1, "B"),
                            aZero: try i[2].map { _ in try integer(i, 2, "a_zero_point") },
                            bZero: try i[3].map { _ in try integer(i, 3, "b_zero_point") }, c)]
            }
        },
        "QLinearConv": { n in
            let a = try ConvOps.Attributes(n)
            try checkZeroPointType(n, zero: 2, data: 0, "x_zero_point", "x")
            try checkZeroPointType(n, zero: 5, data: 3, "w_zero_point", "w")
            let range = try outputRange(n.declaredElementType(ofInput: 7) ?? n.declaredElementType(ofInput: 0))
            let round = scaleRounding(n.declaredElementType(ofInput: 1))
            return { i, c in
                let bias = try i[8].map { _ in try integer(i, 8, "B") }
                let (acc, g) = try convolve(a, x: try integer(i, 0, "x"), xZero: try integer(i, 2, "x_zero_point"),
                                            w: try integer(i, 3, "w"), wZero: try integer(i, 5, "w_zero_point"), bias: bias, c)
                let xs = try PerIndex<Float>(try i.float(1, "x_scale"), "x_scale", count: 1, along: "tensor", default: 1, read: floatValues)
                let ws = try PerIndex<Float>(try i.float(4, "w_scale"), "w_scale", count: g.outChannels, along: "output channel", default: 1, read: floatValues)
                let ys = try PerIndex<Float>(try i.float(6, "y_scale"), "y_scale", count: 1, along: "tensor", default: 1, read: floatValues)
                let yz = try PerIndex<Int32>(try i[7].map { _ in try integer(i, 7, "y_zero_point") }, "y_zero_point", count: 1, along: "tensor", default: 0, read: int32Values)
                let multipliers = (0..<g.outChannels).map { oc in round(round(xs(0) * ws(oc)) / ys(0)) }
                let positions = g.outputSize, p = acc.mutable(Int32.self)
                for row in 0..<(g.batch * g.outChannels) {
                    let mult = multipliers[row % g.outChannels]
                    for q in (row * positions)..<((row + 1) * positions) { p[q] = requantize(p[q], mult, yz(0), range) }
                }
                return [acc]
            }
        },
        "QLinearMatMul": { n in
            try checkZeroPointType(n, zero: 2, data: 0, "a_zero_point", "a")
            try checkZeroPointType(n, zero: 5, data: 3, "b_zero_point", "b")
            let range = try outputRange(n.declaredElementType(ofInput: 7) ?? n.declaredElementType(ofInput: 0))
            let round = scaleRounding(n.declaredElementType(ofInput: 1))
            return { i, c in
                let a = try integer(i, 0, "a"), b = try integer(i, 3, "b")
                let acc = try matmul(a, b, aZero: try integer(i, 2, "a_zero_point"), bZero: try integer(i, 5, "b_zero_point"), c)
                let m = a.rank == 1 ? 1 : a.shape[a.rank - 2], cols = b.rank == 1 ? 1 : b.shape[b.rank - 1]
                let as_ = try PerIndex<Float>(try i.float(1, "a_scale"), "a_scale", count: m, along: "row of a", default: 1, read: floatValues)
                let bs = try PerIndex<Float>(try i.float(4, "b_scale"), "b_scale", count: cols, along: "column of b", default: 1, read: floatValues)
                let ys = try PerIndex<Float>(try i.float(6, "y_scale"), "y_scale", count: 1, along: "tensor", default: 1, read: floatValues)
                let yz = try PerIndex<Int32>(try integer(i, 7, "y_zero_point"), "y_zero_point", count: 1, along: "tensor", default: 0, read: int32Values)
                let p = acc.mutable(Int32.self)
                for q in 0..<acc.count {
                    let row = (q / cols) % m, col = q % cols
                    p[q] = requantize(p[q], round(round(as_(row) * bs(col)) / ys(0)), yz(0), range)
                }
                return [acc]
            }
        },
    ]
}
