import MBCore

/// GridSample over any number of spatial axes: X [N, C, D1...Dr] sampled at grid [N, O1...Or, r]
/// (coordinates in [-1, 1], innermost axis first) with nearest, linear or cubic interpolation
/// (opset 16 names bilinear and bicubic too), padding zeros, border or reflection, align_corners.
enum GridSampleOp {
    enum Interpolation { case nearest, linear, cubic }

    struct Settings {
        var interpolation: Interpolation
        var padding: String
        var alignCorners: Bool
    }

    /// Folds `x` back into [low, high] by reflecting at the ends.
    static func reflect(_ x: Double, _ low: Double, _ high: Double) -> Double {
        let range = high - low
        guard range > 0 else { return low }
        if x < low {
            let d = low - x, n = (d / range).rounded(.towardZero), r = d - n * range
            return n.truncatingRemainder(dividingBy: 2) == 0 ? low + r : high - r
        }
        if x > high {
            let d = x - high, n = (d / range).rounded(.towardZero), r = d - n * range
            return n.truncatingRemainder(dividingBy: 2) == 0 ? high - r : low + r
        }
        return x
    }

    /// Cubic convolution weights (a = -0.75) of the 4 taps around a point at fraction `t`.
    static func cubic(_ t: Double) -> [Double] {
        let a = -0.75
        func near(_ x: Double) -> Double { ((a + 2) * x - (a + 3)) * x * x + 1 }
        func far(_ x: Double) -> Double { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        return [far(t + 1), near(t), near(1 - t), far(2 - t)]
    }

    /// The sampling taps along one axis of `length` for normalized coordinate `v`: (index, weight)
    /// with nil for a tap in the zero padding.
    static func taps(_ v: Double, length: Int, _ s: Settings) -> [(Int?, Double)] {
        let len = Double(length)
        var x = s.alignCorners ? (v + 1) / 2 * (len - 1) : ((v + 1) * len - 1) / 2
        let low = s.alignCorners ? 0 : -0.5, high = s.alignCorners ? len - 1 : len - 0.5
        guard x.isFinite else { return [(nil, 1)] }
        if s.interpolation == .nearest { x = x.rounded(.toNearestOrEven) }
        if x < low || x > high {
            if s.padding == "border" { x = min(max(x, 0), len - 1) } else if s.padding == "reflection" { x = reflect(x, low, high) }
        }
        guard x.isFinite, abs(x) < 1e9 else { return [(nil, 1)] }
        /// An integer position through the padding mode.
        func at(_ i: Int) -> Int? {
            switch s.padding {
            case "border": return min(max(i, 0), length - 1)
            case "reflection": return min(max(Int(reflect(Double(i), low, high)), 0), length - 1)
            default: return i >= 0 && i < length ? i : nil
            }
        }
        switch s.interpolation {
        case .nearest: return [(at(Int(x)), 1)]
        case .linear:
            let x0 = x.rounded(.down), t = x - x0
            return [(at(Int(x0)), 1 - t), (at(Int(x0) + 1), t)]
        case .cubic:
            let x0 = x.rounded(.down), w = cubic(x - x0)
            return (0..<4).map { (at(Int(x0) - 1 + $0), w[$0]) }
        }
    }

    static let table: [String: OpTable.Compile] = [
        "GridSample": { n in
            let interpolation: Interpolation
            switch try n.string("mode", default: n.opset >= 20 ? "linear" : "bilinear") {
            case "nearest": interpolation = .nearest
            case "linear", "bilinear": interpolation = .linear
            case "cubic", "bicubic": interpolation = .cubic
            case let other: throw n.bad("mode '\(other)' is not nearest, linear or cubic")
            }
            let padding = try n.string("padding_mode", default: "zeros")
            guard ["zeros", "border", "reflection"].contains(padding) else { throw n.bad("padding_mode '\(padding)' is not zeros, border or reflection") }
            let s = Settings(interpolation: interpolation, padding: padding, alignCorners: try n.int("align_corners", default: 0) != 0)
            return { i, c in
                let x = try i.float(0, "X"), grid = try i.float(1, "grid")
                let r = x.rank - 2
                guard r >= 1, grid.rank == r + 2, grid.shape[0] == x.shape[0], grid.shape[r + 1] == r else {
                    throw OpError("X \(x.shape) and grid \(grid.shape) must be [N, C, D1..Dr] and [N, O1..Or, \(max(r, 0))]")
                }
                let spatial = Array(x.shape[2...]), outSpatial = Array(grid.shape[1...r])
                let y = try c.alloc(.float, Array(x.shape[0..<2]) + outSpatial)
                let src = x.pointer(Float.self), g = grid.pointer(Float.self), dst = y.mutable(Float.self)
                let planeSize = spatial.reduce(1, *), outSize = outSpatial.reduce(1, *), channels = x.shape[1]
                let strides = contiguousStrides(spatial)
                for b in 0..<x.shape[0] {
                    for o in 0..<outSize {
                        // Per spatial axis (outermost first) its taps; the grid lists the innermost axis first.
                        let point = g + (b * outSize + o) * r
                        let axes = (0..<r).map { d in taps(Double(point[r - 1 - d]), length: spatial[d], s) }
                        let counts = axes.map(\.count), corners = counts.reduce(1, *)
                        var offsets: [Int] = [], weights: [Double] = []
                        for k in 0..<corners {
                            var rest = k, offset = 0, weight = 1.0, inside = true
                            for d in stride(from: r - 1, through: 0, by: -1) {
                                let (index, w) = axes[d][rest % counts[d]]
                                rest /= counts[d]
                                guard let index else { inside = false; break }
                                offset += index * strides[d]
                                weight *= w
                            }
                            if inside { offsets.append(offset); weights.append(weight) }
                        }
                        for ch in 0..<channels {
                            let plane = src + (b * channels + ch) * planeSize
                            var v = 0.0
                            for (offset, w) in zip(offsets, weights) { v += w * Double(plane[offset]) }
                            dst[(b * channels + ch) * outSize + o] = Float(v)
                        }
                    }
                }
                return [y]
            }
        },
    ]
}
