import MBCore

/// Resize (opset 10+: X, [roi,] scales, sizes) and Upsample (opset 7-9), modes nearest and
/// linear (N-linear over every resized axis), coordinate modes half_pixel, asymmetric,
/// align_corners, pytorch_half_pixel, tf_half_pixel_for_nearest; nearest modes
/// round_prefer_floor, round_prefer_ceil, floor, ceil.
enum ResizeOps {
    static func compile(_ n: NodeContext, upsample: Bool) throws -> OpRun {
        let mode = try n.string("mode", default: "nearest")
        guard mode == "nearest" || mode == "linear" || mode == "bilinear" else { throw n.unsupported("mode '\(mode)' is not supported (nearest, linear)") }
        let linear = mode != "nearest"
        let coord = try n.string("coordinate_transformation_mode", default: (upsample || n.opset < 11) ? "asymmetric" : "half_pixel")
        guard ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "tf_half_pixel_for_nearest", "half_pixel_symmetric"].contains(coord) else {
            throw n.unsupported("coordinate_transformation_mode '\(coord)' is not supported")
        }
        let nearestMode = try n.string("nearest_mode", default: (upsample || n.opset < 11) ? "floor" : "round_prefer_floor")
        if try n.ints("axes") != nil { throw n.unsupported("the axes attribute is not supported") }
        if try n.string("keep_aspect_ratio_policy", default: "stretch") != "stretch" { throw n.unsupported("keep_aspect_ratio_policy other than stretch") }
        let attrScales = try n.floats("scales")
        let scalesIndex = upsample ? 1 : (n.opset < 11 ? 1 : 2)
        let scalesFromAttribute = upsample && n.opset < 9
        return { i, c in
            let x = try i.float(0, "X")
            let r = x.rank
            var scales: [Float]
            var out: [Int]
            if scalesFromAttribute {
                guard let s = attrScales else { throw OpError("attribute 'scales' is required") }
                scales = s
            } else if let s = i[scalesIndex], s.count > 0 {
                scales = s.floats
            } else if !upsample, let sz = i[3], sz.count > 0 {
                out = intValues(sz)
                guard out.count == r else { throw OpError("sizes has \(out.count) values for rank \(r)") }
                scales = (0..<r).map { Float(out[$0]) / Float(x.shape[$0]) }
                return [try resize(x, out, scales, linear, coord, nearestMode, c)]
            } else {
                throw OpError("neither scales nor sizes is given")
            }
            guard scales.count == r else { throw OpError("scales has \(scales.count) values for rank \(r)") }
            guard scales.allSatisfy({ $0.isFinite && $0 > 0 }) else { throw OpError("scales \(scales) must be finite and positive") }
            out = []
            for d in 0..<r {
                let size = (Float(x.shape[d]) * scales[d]).rounded(.down)
                guard size < 9.2e18 else {
                    throw OpError("scales \(scales) of shape \(x.shape): more elements than a 64-bit count can hold", kind: .limitExceeded)
                }
                out.append(Int(size))
            }
            return [try resize(x, out, scales, linear, coord, nearestMode, c)]
        }
    }

    static func resize(_ x: MBTensor, _ out: [Int], _ scales: [Float], _ linear: Bool, _ coord: String, _ nearestMode: String,
                       _ c: ExecutionContext) throws -> MBTensor {
        let r = x.rank
        // The output size is checked before the per-axis tap tables (as long as the output's axes).
        _ = try c.checkedBytes(.float, out)
        if !out.contains(0), let d = x.shape.firstIndex(of: 0) {
            throw OpError("cannot resize axis \(d) of size 0 (shape \(x.shape)) to \(out[d])")
        }
        // Per axis and output index: up to two (input index, weight) taps.
        var taps: [[(Int, Int, Float)]] = []
        for d in 0..<r {
            let inLen = x.shape[d], outLen = out[d], scale = scales[d]
            var list: [(Int, Int, Float)] = []
            for o in 0..<outLen {
                var pos: Float
                switch coord {
                case "asymmetric": pos = Float(o) / scale
                case "align_corners": pos = outLen > 1 ? Float(o) * Float(inLen - 1) / Float(outLen - 1) : 0
                case "pytorch_half_pixel": pos = outLen > 1 ? (Float(o) + 0.5) / scale - 0.5 : 0
                case "tf_half_pixel_for_nearest": pos = (Float(o) + 0.5) / scale
                default: pos = (Float(o) + 0.5) / scale - 0.5
                }
                // Clamped first: positions outside [-1, inLen] pick the same edge taps.
                pos = pos.isNaN ? 0 : min(max(pos, -1), Float(inLen))
                if linear {
                    let p = min(max(pos, 0), Float(inLen - 1))
                    let lo = Int(p.rounded(.down)), hi = min(lo + 1, inLen - 1)
                    list.append((lo, hi, p - Float(lo)))
                } else {
                    var k: Int
                    switch nearestMode {
                    case "floor": k = Int(pos.rounded(.down))
                    case "ceil": k = Int(pos.rounded(.up))
                    case "round_prefer_ceil": k = Int((pos + 0.5).rounded(.down))
                    default: k = pos == pos.rounded(.down) + 0.5 ? Int(pos.rounded(.down)) : Int(pos.rounded())
                    }
                    k = min(max(k, 0), inLen - 1)
                    list.append((k, k, 0))
                }
            }
            taps.append(list)
        }
        let y = try c.alloc(.float, out)
        let src = x.pointer(Float.self), dst = y.mutable(Float.self)
        let st = contiguousStrides(x.shape)
        let active = (0..<r).filter { d in taps[d].contains { $0.2 != 0 } }
        var index = Array(repeating: 0, count: r)
        for k in 0..<y.count {
            var base = 0
            for d in 0..<r { base += taps[d][index[d]].0 * st[d] }
            var v: Float
            if active.isEmpty {
                v = src[base]
            } else {
                v = 0
                for corner in 0..<(1 << active.count) {
                    var w: Float = 1
                    var off = base
                    for (bit, d) in active.enumerated() {
                        let t = taps[d][index[d]]
                        if corner & (1 << bit) != 0 { w *= t.2; off += (t.1 - t.0) * st[d] } else { w *= 1 - t.2 }
                    }
                    if w != 0 { v += w * src[off] }
                }
            }
            dst[k] = v
            var d = r - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < out[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return y
    }

    static let table: [String: OpTable.Compile] = [
        "Resize": { try compile($0, upsample: false) },
        "Upsample": { try compile($0, upsample: true) },
    ]
}
