import MBCore

/// Pad: modes constant, reflect, edge, wrap; pads (and the constant value) as attributes before
/// opset 11 and as inputs from 11 (with optional axes from 18). Negative pads crop.
enum PadOp {
    static func compile(_ n: NodeContext) throws -> OpRun {
        let mode = try n.string("mode", default: "constant")
        guard ["constant", "reflect", "edge", "wrap"].contains(mode) else { throw n.unsupported("mode '\(mode)' is not supported (constant, reflect, edge, wrap)") }
        let legacy = n.opset < 11
        let attrPads = legacy ? try n.ints(n.opset < 2 ? "paddings" : "pads") : nil
        let attrValue = try n.float("value", default: 0)
        if legacy && attrPads == nil { throw n.bad("attribute 'pads' is required") }
        return { i, c in
            let x = try i.required(0)
            let r = x.rank
            var pads = legacy ? attrPads! : intValues(try i.required(1, "pads"))
            if !legacy, let axesT = i[3] {
                let axes = try intValues(axesT).map { try normalizeAxis($0, rank: r) }
                guard pads.count == 2 * axes.count else { throw OpError("pads has \(pads.count) values for \(axes.count) axes") }
                var full = Array(repeating: 0, count: 2 * r)
                for (k, a) in axes.enumerated() { full[a] = pads[k]; full[a + r] = pads[k + axes.count] }
                pads = full
            }
            guard pads.count == 2 * r else { throw OpError("pads has \(pads.count) values for rank \(r)") }
            let value: Float = legacy ? attrValue : try (i[2].map(floatScalar) ?? 0)
            var shape: [Int] = []
            for d in 0..<r {
                let (a, o1) = x.shape[d].addingReportingOverflow(pads[d])
                let (b, o2) = a.addingReportingOverflow(pads[d + r])
                guard !o1, !o2 else { throw OpError("pads \(pads) of shape \(x.shape): more elements than a 64-bit count can hold", kind: .limitExceeded) }
                shape.append(b)
            }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw OpError("pads \(pads) crop \(x.shape) below zero") }
            if mode == "reflect" { for d in 0..<r where shape[d] > 0 && x.shape[d] < 2 && (pads[d] > 0 || pads[d + r] > 0) { throw OpError("reflect padding needs at least 2 elements along axis \(d)") } }
            let out = try c.alloc(x.elementType, shape)
            let size = x.elementType.runtimeSize
            let n = out.count
            if n == 0 { return [out] }
            let inStrides = contiguousStrides(x.shape)
            // The constant as bytes of the tensor's type.
            var fillBytes = [UInt8](repeating: 0, count: size)
            switch x.elementType {
            case .float: withUnsafeBytes(of: value) { fillBytes = Array($0) }
            case .int64: withUnsafeBytes(of: Int64(clampedInt(value))) { fillBytes = Array($0) }
            case .int32: withUnsafeBytes(of: Int32(truncatingIfNeeded: clampedInt(value))) { fillBytes = Array($0) }
            default: fillBytes = [value != 0 ? 1 : 0]
            }
            func source(_ o: Int, _ d: Int) -> Int? {
                let k = o - pads[d], len = x.shape[d]
                if k >= 0 && k < len { return k }
                switch mode {
                case "edge": return len == 0 ? nil : min(max(k, 0), len - 1)
                case "wrap":
                    guard len > 0 else { return nil }
                    let m = k % len
                    return m < 0 ? m + len : m
                case "reflect":
                    let period = 2 * (len - 1)
                    var m = k % period
                    if m < 0 { m += period }
                    return m < len ? m : period - m
                default: return nil
                }
            }
            // Per axis: output index → input index (or nil for the constant).
            let maps = (0..<r).map { d in (0..<shape[d]).map { source($0, d) } }
            var index = Array(repeating: 0, count: r)
            var dst = out.storage.raw
            for _ in 0..<n {
                var off = 0
                var inside = true
                for d in 0..<r {
                    guard let s = maps[d][index[d]] else { inside = false; break }
                    off += s * inStrides[d]
                }
                if inside { dst.copyMemory(from: x.storage.raw + off * size, byteCount: size) } else { fillBytes.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: size) } }
                dst += size
                var d = r - 1
                while d >= 0 {
                    index[d] += 1
                    if index[d] < shape[d] { break }
                    index[d] = 0
                    d -= 1
                }
            }
            return [out]
        }
    }
}
