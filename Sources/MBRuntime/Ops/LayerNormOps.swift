import MBCore

/// Normalizations over trailing axes or groups: LayerNormalization, RMSNormalization,
/// GroupNormalization, LpNormalization, MeanVarianceNormalization, and Hardmax. Statistics are
/// accumulated in Double over each normalized block.
enum LayerNormOps {
    /// `values` (broadcast from the right to `shape`) as one float per element of `shape`.
    static func broadcastParameter(_ t: MBTensor, to shape: [Int], _ what: String, _ c: ExecutionContext) throws -> [Float] {
        guard t.rank <= shape.count, zip(t.shape.reversed(), shape.reversed()).allSatisfy({ $0 == $1 || $0 == 1 }) else {
            throw OpError("\(what) \(t.shape) does not broadcast to the normalized shape \(shape)")
        }
        let full = try broadcastTo(try castTensor(t, to: .float, c), shape, c)
        return Array(full.buffer(Float.self))
    }

    static func layerNorm(_ n: NodeContext, rms: Bool) throws -> OpRun {
        let axisAttr = try n.int("axis", default: -1)
        let epsilon = Double(try n.float("epsilon", default: 1e-5))
        return { i, c in
            let x = try i.float(0, "X")
            let axis = try normalizeAxis(axisAttr, rank: x.rank)
            let normalized = Array(x.shape[axis...])
            let blocks = x.shape[..<axis].reduce(1, *), len = normalized.reduce(1, *)
            let scale = try broadcastParameter(try i.required(1, "Scale"), to: normalized, "Scale", c)
            let bias = rms ? nil : try i[2].map { try broadcastParameter($0, to: normalized, "B", c) }
            let y = try c.alloc(.float, x.shape)
            let statShape = Array(x.shape[..<axis]) + Array(repeating: 1, count: x.rank - axis)
            let mean = try c.alloc(.float, statShape), invStd = try c.alloc(.float, statShape)
            let src = x.pointer(Float.self), dst = y.mutable(Float.self)
            for b in 0..<blocks {
                let row = src + b * len, out = dst + b * len
                var m = 0.0
                if !rms { for k in 0..<len { m += Double(row[k]) }; m /= Double(max(len, 1)) }
                var v = 0.0
                for k in 0..<len { let d = Double(row[k]) - m; v += d * d }
                v /= Double(max(len, 1))
                let inv = 1 / (v + epsilon).squareRoot()
                for k in 0..<len {
                    var r = Float((Double(row[k]) - m) * inv) * scale[k]
                    if let bias { r += bias[k] }
                    out[k] = r
                }
                mean.mutable(Float.self)[b] = Float(m)
                invStd.mutable(Float.self)[b] = Float(inv)
            }
            // RMSNormalization has one output; LayerNormalization's Mean and InvStdDev are optional.
            return rms ? [y] : [y, mean, invStd]
        }
    }

    static let table: [String: OpTable.Compile] = [
        "LayerNormalization": { try layerNorm($0, rms: false) },
        "RMSNormalization": { try layerNorm($0, rms: true) },
        "GroupNormalization": { n in
            let epsilon = Double(try n.float("epsilon", default: 1e-5))
            guard let groups = try n.int("num_groups"), groups > 0 else { throw n.bad("attribute 'num_groups' (> 0) is required") }
            return { i, c in
                let x = try i.float(0, "X")
                guard x.rank >= 2, x.shape[1] % groups == 0 else { throw OpError("X \(x.shape) has channels that \(groups) groups do not divide") }
                let channels = x.shape[1], perGroup = channels / groups
                let spatial = x.shape[2...].reduce(1, *)
                // Opset 18 gives scale and bias per group; opset 21 per channel.
                let scale = try i.float(1, "scale").floats, bias = try i.float(2, "bias").floats
                guard scale.count == bias.count, scale.count == channels || scale.count == groups else {
                    throw OpError("scale and bias have \(scale.count) and \(bias.count) values for \(channels) channels in \(groups) groups")
                }
                let y = try c.alloc(.float, x.shape)
                let src = x.pointer(Float.self), dst = y.mutable(Float.self)
                let len = perGroup * spatial
                for b in 0..<(x.shape[0] * groups) {
                    let row = src + b * len
                    var m = 0.0
                    for k in 0..<len { m += Double(row[k]) }
                    m /= Double(max(len, 1))
                    var v = 0.0
                    for k in 0..<len { let d = Double(row[k]) - m; v += d * d }
                    let inv = 1 / (v / Double(max(len, 1)) + epsilon).squareRoot()
                    let g = b % groups
                    for k in 0..<len {
                        let p = scale.count == channels ? g * perGroup + k / spatial : g
                        dst[b * len + k] = Float((Double(row[k]) - m) * inv) * scale[p] + bias[p]
                    }
                }
                return [y]
            }
        },
        "LpNormalization": { n in
            let axisAttr = try n.int("axis", default: -1), p = try n.int("p", default: 2)
            guard p == 1 || p == 2 else { throw n.bad("p \(p) is not 1 or 2") }
            return { i, c in
                let x = try i.float(0, "input")
                let axis = try normalizeAxis(axisAttr, rank: x.rank)
                let outer = x.shape[..<axis].reduce(1, *), len = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *)
                let y = try c.alloc(.float, x.shape)
                let src = x.pointer(Float.self), dst = y.mutable(Float.self)
                for o in 0..<outer {
                    for q in 0..<inner {
                        var norm = 0.0
                        for k in 0..<len { let v = Double(src[(o * len + k) * inner + q]); norm += p == 1 ? abs(v) : v * v }
                        if p == 2 { norm = norm.squareRoot() }
                        for k in 0..<len {
                            let at = (o * len + k) * inner + q
                            dst[at] = norm == 0 ? 0 : Float(Double(src[at]) / norm)
                        }
                    }
                }
                return [y]
            }
        },
        "MeanVarianceNormalization": { n in
            let axesAttr = try n.ints("axes") ?? [0, 2, 3]
            return { i, c in
                let x = try i.float(0, "X")
                let axes = Set(try axesAttr.map { try normalizeAxis($0, rank: x.rank) })
                // ONNX's function body: (X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9).
                let keep = x.shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
                let groups = keep.reduce(1, *), perGroup = x.count / max(groups, 1)
                var sum = [Double](repeating: 0, count: groups), squares = sum
                let strides = broadcastStrides(keep, to: x.shape)
                let src = x.pointer(Float.self)
                func group(_ k: Int) -> Int {
                    var rest = k, g = 0
                    for d in stride(from: x.rank - 1, through: 0, by: -1) { g += (rest % x.shape[d]) * strides[d]; rest /= x.shape[d] }
                    return g
                }
                for k in 0..<x.count { let v = Double(src[k]), g = group(k); sum[g] += v; squares[g] += v * v }
                let y = try c.alloc(.float, x.shape)
                let dst = y.mutable(Float.self)
                for k in 0..<x.count {
                    let g = group(k)
                    let mean = sum[g] / Double(perGroup)
                    let std = max(squares[g] / Double(perGroup) - mean * mean, 0).squareRoot()
                    dst[k] = Float((Double(src[k]) - mean) / (std + 1e-9))
                }
                return [y]
            }
        },
        "Hardmax": { n in
            // Before opset 13 the input is seen as 2-D, [prod(shape[..<axis]), prod(shape[axis...])].
            let legacy = n.opset < 13
            let axisAttr = try n.int("axis", default: legacy ? 1 : -1)
            return { i, c in
                let x = try i.float(0, "input")
                let (outer, len, inner) = try NormalizationOps.softmaxView(x, axis: axisAttr, legacy: legacy)
                let y = try c.alloc(.float, x.shape)
                let src = x.pointer(Float.self), dst = y.mutable(Float.self)
                dst.update(repeating: 0, count: x.count)
                for o in 0..<outer {
                    for q in 0..<inner where len > 0 {
                        var best = 0
                        for k in 1..<len where src[(o * len + k) * inner + q] > src[(o * len + best) * inner + q] { best = k }
                        dst[(o * len + best) * inner + q] = 1
                    }
                }
                return [y]
            }
        },
        "DepthToSpace": { n in
            guard let block = try n.int("blocksize"), block > 0 else { throw n.bad("attribute 'blocksize' (> 0) is required") }
            let mode = try n.string("mode", default: "DCR")
            guard mode == "DCR" || mode == "CRD" else { throw n.bad("mode '\(mode)' is not DCR or CRD") }
            return { i, c in
                let x = try i.required(0)
                guard x.rank == 4, x.shape[1] % (block * block) == 0 else { throw OpError("input \(x.shape) must be NCHW with channels divisible by \(block * block)") }
                let (b, ch, h, w) = (x.shape[0], x.shape[1] / (block * block), x.shape[2], x.shape[3])
                // View the input as 6-D and read it in the output's order.
                let view = mode == "DCR" ? [b, block, block, ch, h, w] : [b, ch, block, block, h, w]
                let perm = mode == "DCR" ? [0, 3, 4, 1, 5, 2] : [0, 1, 4, 2, 5, 3]
                return [try permuted(x, view: view, perm: perm, shape: [b, ch, h * block, w * block], c)]
            }
        },
        "SpaceToDepth": { n in
            guard let block = try n.int("blocksize"), block > 0 else { throw n.bad("attribute 'blocksize' (> 0) is required") }
            let mode = try n.string("mode", default: "DCR")
            guard mode == "DCR" || mode == "CRD" else { throw n.bad("mode '\(mode)' is not DCR or CRD") }
            // DCR puts the block offset before the channel; CRD after it.
            let perm = mode == "DCR" ? [0, 3, 5, 1, 2, 4] : [0, 1, 3, 5, 2, 4]
            return { i, c in
                let x = try i.required(0)
                guard x.rank == 4, x.shape[2] % block == 0, x.shape[3] % block == 0 else {
                    throw OpError("input \(x.shape) must be NCHW with height and width divisible by \(block)")
                }
                let (b, ch, h, w) = (x.shape[0], x.shape[1], x.shape[2] / block, x.shape[3] / block)
                return [try permuted(x, view: [b, ch, h, block, w, block], perm: perm, shape: [b, ch * block * block, h, w], c)]
            }
        },
    ]

    /// `x` seen as `view`, transposed by `perm`, as a tensor of `shape`.
    static func permuted(_ x: MBTensor, view: [Int], perm: [Int], shape: [Int], _ c: ExecutionContext) throws -> MBTensor {
        let st = contiguousStrides(view)
        let out = try c.alloc(x.elementType, shape)
        stridedCopy(x.storage.raw, offset: 0, strides: perm.map { st[$0] }, shape: perm.map { view[$0] }, elementSize: x.elementType.runtimeSize,
                    to: out.storage.raw)
        return out
    }
}
