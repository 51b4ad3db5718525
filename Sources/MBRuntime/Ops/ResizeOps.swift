import MBCore
import MBKernels

/// Resize (opset 10: X, scales; 11+: X, roi, scales, sizes; 18+: axes, keep_aspect_ratio_policy,
/// antialias) and Upsample (opset 7–9). Separable, as ONNX defines it: each resized axis in turn
/// is resampled with per-output taps (input index, weight) from the mode's coefficients:
/// nearest (round_prefer_floor, round_prefer_ceil, floor, ceil), linear and cubic, both with
/// optional antialiasing when downsampling; every coordinate transformation mode, including
/// tf_crop_and_resize with its extrapolation value; exclude_outside.
enum ResizeOps {
    enum Interpolation: Equatable {
        case nearest(String)
        case linear
        case cubic(a: Double)
    }

    struct Settings {
        var interpolation: Interpolation
        var antialias: Bool
        var coordinates: String
        var excludeOutside: Bool
        var extrapolation: Float
    }

    static let coordinateModes: Set<String> = ["half_pixel", "half_pixel_symmetric", "asymmetric", "align_corners", "pytorch_half_pixel",
                                               "tf_half_pixel_for_nearest", "tf_crop_and_resize"]
    static let nearestModes: Set<String> = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]

    static func compile(_ n: NodeContext, upsample: Bool) throws -> OpRun {
        // Upsample and Resize-10 predate the coordinate and nearest-mode attributes; their
        // behavior is asymmetric coordinates with floor for nearest.
        let legacy = upsample || n.opset < 11
        let interpolation: Interpolation
        switch try n.string("mode", default: "nearest") {
        case "nearest":
            let mode = try n.string("nearest_mode", default: legacy ? "floor" : "round_prefer_floor")
            guard nearestModes.contains(mode) else { throw n.bad("nearest_mode '\(mode)' is not one of \(nearestModes.sorted())") }
            interpolation = .nearest(mode)
        case "linear", "bilinear", "trilinear": interpolation = .linear
        case "cubic", "bicubic": interpolation = .cubic(a: Double(try n.float("cubic_coeff_a", default: -0.75)))
        case let other: throw n.unsupported("mode '\(other)' is not supported (nearest, linear, cubic)")
        }
        let coordinates = try n.string("coordinate_transformation_mode", default: legacy ? "asymmetric" : "half_pixel")
        guard coordinateModes.contains(coordinates) else { throw n.unsupported("coordinate_transformation_mode '\(coordinates)' is not supported") }
        let antialias = try n.int("antialias", default: 0) != 0
        if antialias, case .nearest = interpolation { throw n.bad("antialias needs mode linear or cubic") }
        let settings = Settings(interpolation: interpolation, antialias: antialias, coordinates: coordinates,
                                excludeOutside: try n.int("exclude_outside", default: 0) != 0,
                                extrapolation: try n.float("extrapolation_value", default: 0))
        let axesAttribute = try n.ints("axes")
        let aspectPolicy = try n.string("keep_aspect_ratio_policy", default: "stretch")
        guard ["stretch", "not_larger", "not_smaller"].contains(aspectPolicy) else {
            throw n.bad("keep_aspect_ratio_policy '\(aspectPolicy)' is not stretch, not_larger or not_smaller")
        }
        let attrScales = try n.floats("scales")
        let scalesFromAttribute = upsample && n.opset < 9
        let hasROIInput = !upsample && n.opset >= 11
        let scalesIndex = hasROIInput ? 2 : 1
        return { i, c in
            let x = try i.float(0, "X")
            let r = x.rank
            let axes = try (axesAttribute ?? Array(0..<r)).map { try normalizeAxis($0, rank: r, what: "axes value") }
            guard Set(axes).count == axes.count else { throw OpError("axes \(axesAttribute ?? []) repeat an axis") }
            var scales = [Double](repeating: 1, count: r)
            var out = x.shape
            var roi: [(Double, Double)]?
            if hasROIInput, let t = i[1], t.count > 0 {
                let v = t.floats
                guard v.count == 2 * axes.count else { throw OpError("roi has \(v.count) values, expected \(2 * axes.count)") }
                var full = [(Double, Double)](repeating: (0, 1), count: r)
                for (k, d) in axes.enumerated() { full[d] = (Double(v[k]), Double(v[axes.count + k])) }
                roi = full
            }
            if scalesFromAttribute || (i[scalesIndex]?.count ?? 0) > 0 {
                let given: [Float]
                if scalesFromAttribute {
                    guard let attrScales else { throw OpError("attribute 'scales' is required") }
                    given = attrScales
                } else {
                    given = i[scalesIndex]!.floats
                }
                guard given.count == axes.count else { throw OpError("scales has \(given.count) values for \(axes.count) axes") }
                guard given.allSatisfy({ $0.isFinite && $0 > 0 }) else { throw OpError("scales \(given) must be finite and positive") }
                for (k, d) in axes.enumerated() {
                    scales[d] = Double(given[k])
                    let size = (Double(x.shape[d]) * scales[d]).rounded(.down)
                    guard size < 9.2e18 else { throw OpError("scales \(given) of shape \(x.shape): more elements than a 64-bit count can hold", kind: .limitExceeded) }
                    out[d] = Int(size)
                }
            } else if hasROIInput, let sz = i[3], sz.count > 0 {
                let sizes = intValues(sz)
                guard sizes.count == axes.count else { throw OpError("sizes has \(sizes.count) values for \(axes.count) axes") }
                guard sizes.allSatisfy({ $0 >= 0 }) else { throw OpError("sizes \(sizes) has a negative value") }
                for (k, d) in axes.enumerated() {
                    guard x.shape[d] > 0 else { throw OpError("cannot resize axis \(d) of size 0 (shape \(x.shape)) to \(sizes[k])") }
                    out[d] = sizes[k]
                    scales[d] = Double(sizes[k]) / Double(x.shape[d])
                }
                if aspectPolicy != "stretch" {
                    let chosen = axes.map { scales[$0] }
                    let s = aspectPolicy == "not_larger" ? chosen.min()! : chosen.max()!
                    for d in axes {
                        scales[d] = s
                        out[d] = Int(s * Double(x.shape[d]) + 0.5)
                    }
                }
            } else {
                throw OpError("neither scales nor sizes is given")
            }
            return [try resize(x, out, scales: scales, roi: roi, axes: axes, settings, c)]
        }
    }

    /// The taps of one resized axis: for output index y, `count` (input index, weight) pairs at
    /// y * count, and whether y lies outside the crop (tf_crop_and_resize extrapolation).
    struct AxisTaps {
        var count: Int
        var index: [Int]
        var weight: [Float]
        var extrapolated: [Bool]
    }

    static func coefficients(_ ratio: Double, scale: Double, _ s: Settings) -> [Double] {
        switch s.interpolation {
        case .nearest(let mode):
            if ratio == 1 { return [0, 1] }
            switch mode {
            case "round_prefer_ceil": return ratio < 0.5 ? [1, 0] : [0, 1]
            case "floor": return [1, 0]
            case "ceil": return [0, 1]
            default: return ratio <= 0.5 ? [1, 0] : [0, 1]
            }
        case .linear:
            guard s.antialias else { return [1 - ratio, ratio] }
            // The triangle stretched by 1/scale when downsampling, normalized.
            let sc = min(scale, 1)
            let start = footprintStart(-1 / sc)
            let w = (start..<(2 - start)).map { max(0, min(1, 1 - abs((Double($0) - ratio) * sc))) }
            return normalized(w)
        case .cubic(let a):
            func kernel(_ t: Double) -> Double {
                let x = abs(t), x2 = x * x, x3 = x2 * x
                if x <= 1 { return (a + 2) * x3 - (a + 3) * x2 + 1 }
                if x < 2 { return a * x3 - 5 * a * x2 + 8 * a * x - 4 * a }
                return 0
            }
            guard s.antialias else { return [kernel(ratio + 1), kernel(ratio), kernel(1 - ratio), kernel(2 - ratio)] }
            let sc = min(scale, 1)
            let start = footprintStart(-2 / sc)
            return normalized((start..<(2 - start)).map { kernel(sc * (Double($0) - ratio)) })
        }
    }

    /// The first tap of an antialiasing footprint reaching to `reach` (negative), bounded so that
    /// absurd downscales stay countable (taps() then checks the table against the tensor limit).
    static func footprintStart(_ reach: Double) -> Int { Int(max(reach.rounded(.down), -1e7)) + 1 }

    static func normalized(_ w: [Double]) -> [Double] {
        let sum = w.reduce(0, +)
        return sum == 0 ? w : w.map { $0 / sum }
    }

    /// The input coordinate output index `y` maps to.
    static func sourceCoordinate(_ y: Int, inLength: Int, outLength: Int, scale: Double, roi: (Double, Double)?, _ mode: String) -> Double {
        let yd = Double(y), outWidth = scale * Double(inLength), last = Double(inLength - 1)
        switch mode {
        case "align_corners": return outWidth == 1 ? 0 : yd * last / (outWidth - 1)
        case "asymmetric": return yd / scale
        case "tf_half_pixel_for_nearest": return (yd + 0.5) / scale
        case "pytorch_half_pixel": return outWidth == 1 ? -0.5 : (yd + 0.5) / scale - 0.5
        case "half_pixel_symmetric":
            let offset = Double(inLength) / 2 * (1 - Double(outLength) / outWidth)
            return offset + (yd + 0.5) / scale - 0.5
        case "tf_crop_and_resize":
            let (r0, r1) = roi ?? (0, 1)
            let x = outWidth == 1 ? (r1 - r0) * last / 2 : yd * (r1 - r0) * last / (outWidth - 1)
            return x + r0 * last
        default: return (yd + 0.5) / scale - 0.5
        }
    }

    static func taps(inLength: Int, outLength: Int, scale: Double, roi: (Double, Double)?, _ s: Settings, _ c: ExecutionContext) throws -> AxisTaps {
        let count = coefficients(0.5, scale: scale, s).count  // the same for every ratio
        _ = try c.checkedBytes(.float, [outLength, count, 3])
        var t = AxisTaps(count: count, index: [], weight: [], extrapolated: [])
        t.index.reserveCapacity(outLength * count)
        t.weight.reserveCapacity(outLength * count)
        let limit = Double(inLength) + Double(count) + 2
        for y in 0..<outLength {
            var x = sourceCoordinate(y, inLength: inLength, outLength: outLength, scale: scale, roi: roi, s.coordinates)
            t.extrapolated.append(s.coordinates == "tf_crop_and_resize" && !(x >= 0 && x <= Double(inLength - 1)))
            // Far outside, every tap clamps to the same edge and the weights sum to 1 (or 0
            // with exclude_outside) whatever the ratio: clamping keeps the index arithmetic finite.
            x = x.isNaN ? 0 : min(max(x, -limit), limit)
            let floorX = x.rounded(.down)
            let ratio = x == floorX ? 1 : x - floorX
            var w = coefficients(ratio, scale: scale, s)
            // The taps nearest x, preferring lower indices: floor(x)-n/2+1 ... (floor(x)-n/2 on integers).
            let start = Int(floorX) - count / 2 + (x == floorX ? 0 : 1)
            if s.excludeOutside {
                for k in 0..<count where start + k < 0 || start + k >= inLength { w[k] = 0 }
                let sum = w.reduce(0, +)
                if sum != 0 { w = w.map { $0 / sum } }
            }
            for k in 0..<count {
                t.index.append(min(max(start + k, 0), inLength - 1))
                t.weight.append(Float(w[k]))
            }
        }
        return t
    }

    static func resize(_ x: MBTensor, _ out: [Int], scales: [Double], roi: [(Double, Double)]?, axes: [Int], _ s: Settings,
                       _ c: ExecutionContext) throws -> MBTensor {
        // The output size is checked before the per-axis tap tables.
        _ = try c.checkedBytes(.float, out)
        if !out.contains(0), let d = x.shape.firstIndex(of: 0) {
            throw OpError("cannot resize axis \(d) of size 0 (shape \(x.shape)) to \(out[d])")
        }
        if case .nearest = s.interpolation, c.variant == .fast,
           let y = try nearest(x, out, scales: scales, roi: roi, axes: axes, s, c) {
            return y
        }
        var current = x
        for d in axes {
            let cropped = roi.map { $0[d] != (0, 1) } ?? false
            if out[d] == current.shape[d] && abs(scales[d] - 1) <= 1e-9 && !cropped { continue }
            let taps = try taps(inLength: current.shape[d], outLength: out[d], scale: scales[d], roi: roi?[d], s, c)
            var shape = current.shape
            shape[d] = out[d]
            let next = try c.alloc(.float, shape)
            resample(current, axis: d, taps, extrapolation: s.extrapolation, into: next, threads: c.threads)
            current = next
        }
        return current.shape == out ? current : current.reshaped(out)
    }

    /// Nearest resizing in one pass over the output: per axis the one input index each output
    /// index takes (from the same taps as the separable path, so the choice of index is the
    /// same), the last axis gathered from those indices and every output row whose source row
    /// repeats the previous one's copied from it (a 2× upsample computes a quarter of its
    /// output and copies the rest). nil, doing nothing, when some output takes no single input
    /// (tf_crop_and_resize extrapolation, exclude_outside at a border).
    static func nearest(_ x: MBTensor, _ out: [Int], scales: [Double], roi: [(Double, Double)]?, axes: [Int], _ s: Settings,
                        _ c: ExecutionContext) throws -> MBTensor? {
        let r = x.rank
        guard r >= 1, !out.contains(0) else { return nil }
        var index: [[Int]] = []
        for d in 0..<r {
            let cropped = roi.map { $0[d] != (0, 1) } ?? false
            if !axes.contains(d) || (out[d] == x.shape[d] && abs(scales[d] - 1) <= 1e-9 && !cropped) {
                guard out[d] == x.shape[d] else { return nil }
                index.append(Array(0..<out[d]))
                continue
            }
            let t = try taps(inLength: x.shape[d], outLength: out[d], scale: scales[d], roi: roi?[d], s, c)
            var picks: [Int] = []
            picks.reserveCapacity(out[d])
            for y in 0..<out[d] {
                guard !t.extrapolated[y], let k = (0..<t.count).first(where: { t.weight[y * t.count + $0] != 0 }),
                      t.weight[y * t.count + k] == 1 else { return nil }
                picks.append(t.index[y * t.count + k])
            }
            index.append(picks)
        }
        // Leading axes left as they are: whole blocks, split across threads.
        var lead = 0
        while lead < r - 1 && index[lead] == Array(0..<x.shape[lead]) { lead += 1 }
        let y = try c.alloc(.float, out)
        let inStrides = x.shape.indices.map { x.shape[($0 + 1)...].reduce(1, *) }
        let outStrides = out.indices.map { out[($0 + 1)...].reduce(1, *) }
        let blocks = out[..<lead].reduce(1, *)
        let box = UncheckedSendable((x.pointer(Float.self), y.mutable(Float.self), index))
        Parallel.forEach(blocks, threads: y.count > parallelGrain ? c.threads : 1) { b in
            let (src, dst, index) = box.value
            let inBase = lead == 0 ? 0 : b * inStrides[lead - 1], outBase = lead == 0 ? 0 : b * outStrides[lead - 1]
            func fill(_ d: Int, _ from: UnsafePointer<Float>, _ to: UnsafeMutablePointer<Float>) {
                let picks = index[d]
                if d == r - 1 {
                    for i in 0..<out[d] { to[i] = from[picks[i]] }
                    return
                }
                for i in 0..<out[d] {
                    let row = to + i * outStrides[d]
                    if i > 0 && picks[i] == picks[i - 1] {
                        row.update(from: row - outStrides[d], count: outStrides[d])
                    } else {
                        fill(d + 1, from + picks[i] * inStrides[d], row)
                    }
                }
            }
            fill(lead, src + inBase, dst + outBase)
        }
        return y
    }

    /// `dst[o, y, i] = sum_k w[y, k] * src[o, index[y, k], i]` along `axis`, split over `o`
    /// across `threads`. The last axis (`inner == 1`) sums each output in a register instead of
    /// sweeping rows of one element; both add the taps in the same order, so the results agree.
    static func resample(_ src: MBTensor, axis: Int, _ t: AxisTaps, extrapolation: Float, into dst: MBTensor, threads: Int = 1) {
        let inLength = src.shape[axis], outLength = dst.shape[axis]
        let outer = src.shape[..<axis].reduce(1, *), inner = src.shape[(axis + 1)...].reduce(1, *)
        let box = UncheckedSendable((src.pointer(Float.self), dst.mutable(Float.self)))
        let work = outer * outLength * inner * t.count
        t.weight.withUnsafeBufferPointer { weights in t.index.withUnsafeBufferPointer { indices in
            let tables = UncheckedSendable((weights, indices))
            Parallel.forEach(outer, threads: work > 1 << 16 ? threads : 1) { o in
                let (s, d) = box.value
                let (weight, index) = tables.value
                let from = s + o * inLength * inner
                if inner == 1 {
                    let row = d + o * outLength
                    for y in 0..<outLength {
                        if t.extrapolated[y] { row[y] = extrapolation; continue }
                        var acc: Float = 0
                        for k in 0..<t.count {
                            let w = weight[y * t.count + k]
                            if w != 0 { acc += w * from[index[y * t.count + k]] }
                        }
                        row[y] = acc
                    }
                    return
                }
                for y in 0..<outLength {
                    let row = d + (o * outLength + y) * inner
                    if t.extrapolated[y] {
                        row.update(repeating: extrapolation, count: inner)
                        continue
                    }
                    row.update(repeating: 0, count: inner)
                    // Zero weights are skipped: 0 * inf would poison nearest and edge taps with NaN.
                    for k in 0..<t.count {
                        let w = weight[y * t.count + k]
                        if w == 0 { continue }
                        let column = from + index[y * t.count + k] * inner
                        for i in 0..<inner { row[i] += w * column[i] }
                    }
                }
            }
        } }
    }

    static let table: [String: OpTable.Compile] = [
        "Resize": { try compile($0, upsample: false) },
        "Upsample": { try compile($0, upsample: true) },
    ]
}
