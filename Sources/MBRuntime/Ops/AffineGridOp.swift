import MBCore

/// AffineGrid (opset 20): the sampling grid of GridSample for a batch of affine matrices θ
/// ([N, 2, 3] or [N, 3, 4]) over an output of `size` ([N, C, H, W] or [N, C, D, H, W]): each point's
/// normalized coordinates (x, y[, z], 1), from -1 to 1 at the corner pixels' centers with
/// align_corners, else at their outer edges, multiplied by θ (in double, rounded to float).
enum AffineGridOp {
    /// The normalized coordinate of index `i` along a dimension of `n` points.
    static func coordinate(_ i: Int, _ n: Int, alignCorners: Bool) -> Double {
        if alignCorners { return n == 1 ? -1 : -1 + Double(i) * (2 / Double(n - 1)) }
        let step = 2 / Double(n)
        return -1 + step / 2 + Double(i) * step
    }

    static let table: [String: OpTable.Compile] = [
        "AffineGrid": { n in
            let align = try n.int("align_corners", default: 0) != 0
            return { i, c in
                let theta = try i.float(0, "theta"), size = try i.required(1, "size").int64s.map(Int.init)
                guard size.count == 4 || size.count == 5, size.allSatisfy({ $0 >= 1 }) else { throw OpError("size \(size) must be [N, C, H, W] or [N, C, D, H, W] with sizes >= 1") }
                let dims = size.count - 2
                guard theta.shape == [size[0], dims, dims + 1] else { throw OpError("theta \(theta.shape) must be [\(size[0]), \(dims), \(dims + 1)] for size \(size)") }
                let spatial = Array(size[2...])
                let points = spatial.reduce(1, *)
                let y = try c.alloc(.float, [size[0]] + spatial + [dims])
                let pt = theta.pointer(Float.self), py = y.mutable(Float.self)
                var homogeneous = [Double](repeating: 1, count: dims + 1)
                for p in 0..<points {
                    // The last spatial dimension is x, then y, then z.
                    var rest = p
                    for d in stride(from: dims - 1, through: 0, by: -1) {
                        homogeneous[dims - 1 - d] = coordinate(rest % spatial[d], spatial[d], alignCorners: align)
                        rest /= spatial[d]
                    }
                    for b in 0..<size[0] {
                        for r in 0..<dims {
                            var s = 0.0
                            for k in 0...dims { s += Double(pt[(b * dims + r) * (dims + 1) + k]) * homogeneous[k] }
                            py[(b * points + p) * dims + r] = Float(s)
                        }
                    }
                }
                return [y]
            }
        },
    ]
}
