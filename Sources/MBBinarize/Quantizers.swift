import MBCore

/// The standard weight quantizers, as baselines beside binarization (not in the paper): what a
/// user would otherwise reach for, so the comparison at equal storage runs in one program.
/// Both are deterministic; both give a `QuantizedTensor` whose `dequantized()` is the stored value.
public enum LinearQuantizer {
    /// The clipping factors `clip: mse` tries: the range [lo, hi] shrunk to α·[lo, hi] for
    /// α = 1, 0.99, ..., 0.21 (80 candidates); the first with the least squared error wins.
    public static let clipFactors: [Float] = (0..<80).map { 1 - Float($0) / 100 }

    /// Affine n-bit codes per group (channel): range [min(w, 0), max(w, 0)] (times α with
    /// `mse`), scale s = (hi − lo) / (2^n − 1), zero point z = round(−lo / s) in 0...2^n − 1,
    /// code c = clamp(round(w / s) + z, 0, 2^n − 1) (round half to even, ONNX QuantizeLinear).
    /// With `half`, s is rounded to float16 before z and the codes are chosen (float32 is kept
    /// for the whole tensor when a scale does not fit float16).
    public static func quantize(_ t: FloatTensor, axis: Int?, bits: Int, mse: Bool, half: Bool) throws(BinarizeError) -> QuantizedTensor {
        guard QuantizedTensor.bitRange.contains(bits) else {
            throw .invalidTensor(tensor: t.name, reason: "int bits must be 1...8, got \(bits)")
        }
        try checkFinite(t)
        let groupOf = QuantizedTensor.groupIndices(shape: t.shape, axis: axis, channelsPerGroup: 1)
        let groups = QuantizedTensor.groupCount(shape: t.shape, axis: axis, channelsPerGroup: 1)
        let members = indicesByGroup(groupOf, groups: groups)
        if half, let q = quantize(t, axis: axis, bits: bits, mse: mse, members: members, half: true) { return q }
        return quantize(t, axis: axis, bits: bits, mse: mse, members: members, half: false)!
    }

    static func quantize(_ t: FloatTensor, axis: Int?, bits: Int, mse: Bool, members: [[Int]], half: Bool) -> QuantizedTensor? {
        let qmax = (1 << bits) - 1
        var codes = [UInt8](repeating: 0, count: t.values.count)
        var scales: [Float] = [], zeros: [UInt8] = []
        for group in members {
            let w = group.map { t.values[$0] }
            let lo = min(w.min() ?? 0, 0), hi = max(w.max() ?? 0, 0)
            var best: (error: Double, s: Float, z: Int, codes: [UInt8])?
            for alpha in mse ? clipFactors : [1] {
                var s = (alpha * hi - alpha * lo) / Float(qmax)
                if half {
                    let h = Float(float16Bits: s.float16Bits)
                    guard h.isFinite, (h == 0) == (s == 0) else { return nil }
                    s = h
                }
                let z = s > 0 ? min(max(Int((-(alpha * lo) / s).rounded(.toNearestOrEven)), 0), qmax) : 0
                var error = 0.0
                let c: [UInt8] = w.map { v in
                    let code = s > 0 ? min(max(Int((v / s).rounded(.toNearestOrEven)) + z, 0), qmax) : 0
                    let d = Double(v) - Double(s * Float(code - z))
                    error += d * d
                    return UInt8(code)
                }
                if best == nil || error < best!.error { best = (error, s, z, c) }
            }
            for (i, j) in group.enumerated() { codes[j] = best!.codes[i] }
            scales.append(best!.s)
            zeros.append(UInt8(best!.z))
        }
        return QuantizedTensor(shape: t.shape, scheme: .linear, bits: bits, axis: axis, channelsPerGroup: 1, codes: codes,
                               values: scales, zeroPoints: zeros, halfValues: half)
    }
}

public enum PaletteQuantizer {
    /// Most Lloyd iterations per group (they stop earlier when no entry changes cluster).
    public static let maxIterations = 100

    /// A k-means palette of 2^n values per group of `channelsPerGroup` consecutive channels
    /// along `axis` (the whole tensor when `axis` is nil). One-dimensional k-means: centroids
    /// start at the quantiles (k + 1/2)/K of the sorted values, then Lloyd iterations (each
    /// value to the nearest centroid, ties to the lower; each centroid the mean of its values,
    /// an empty cluster keeps its centroid). A group with at most 2^n distinct values gets them
    /// exactly (the rest of its palette repeats the largest). The palette is sorted ascending
    /// (rounded to float16 with `half`), and each entry's code is its nearest palette value
    /// (ties: the lower index).
    public static func quantize(_ t: FloatTensor, axis: Int?, channelsPerGroup: Int, bits: Int, half: Bool) throws(BinarizeError) -> QuantizedTensor {
        guard QuantizedTensor.bitRange.contains(bits) else {
            throw .invalidTensor(tensor: t.name, reason: "palette bits must be 1...8, got \(bits)")
        }
        guard axis == nil || channelsPerGroup >= 1 else {
            throw .invalidTensor(tensor: t.name, reason: "a palette needs at least 1 channel per group, got \(channelsPerGroup)")
        }
        try checkFinite(t)
        let perGroup = axis == nil ? 1 : channelsPerGroup
        let groupOf = QuantizedTensor.groupIndices(shape: t.shape, axis: axis, channelsPerGroup: perGroup)
        let members = indicesByGroup(groupOf, groups: QuantizedTensor.groupCount(shape: t.shape, axis: axis, channelsPerGroup: perGroup))
        let k = 1 << bits
        var palettes: [[Float]] = members.map { group in palette(group.map { t.values[$0] }, size: k) }
        var halfValues = false
        if half {
            let rounded = palettes.map { $0.map { Float(float16Bits: $0.float16Bits) } }
            let fits = zip(palettes.joined(), rounded.joined()).allSatisfy { $1.isFinite && ($1 == 0) == ($0 == 0) }
            if fits {
                palettes = rounded
                halfValues = true
            }
        }
        var codes = [UInt8](repeating: 0, count: t.values.count)
        for (g, group) in members.enumerated() {
            for j in group { codes[j] = UInt8(nearest(t.values[j], in: palettes[g])) }
        }
        return QuantizedTensor(shape: t.shape, scheme: .palette, bits: bits, axis: axis, channelsPerGroup: perGroup, codes: codes,
                               values: Array(palettes.joined()), halfValues: halfValues)
    }

    /// The sorted k-means palette of `values` with `size` entries.
    static func palette(_ values: [Float], size k: Int) -> [Float] {
        let sorted = values.sorted()
        guard let last = sorted.last else { return [Float](repeating: 0, count: k) }
        var distinct: [Float] = []
        for v in sorted where distinct.last != v {
            distinct.append(v)
            if distinct.count > k { break }
        }
        if distinct.count <= k { return distinct + [Float](repeating: last, count: k - distinct.count) }
        let n = sorted.count
        var prefix = [Double](repeating: 0, count: n + 1)
        for i in 0..<n { prefix[i + 1] = prefix[i] + Double(sorted[i]) }
        var centroids = (0..<k).map { Double(sorted[min(n - 1, Int((Double($0) + 0.5) / Double(k) * Double(n)))]) }
        var ends = [Int](repeating: -1, count: k)
        for _ in 0..<maxIterations {
            // Cluster c holds sorted[start..<end]: the values up to the midpoint to the next centroid.
            var newEnds = [Int](repeating: n, count: k)
            for c in 0..<(k - 1) {
                let mid = (centroids[c] + centroids[c + 1]) / 2
                newEnds[c] = upperBound(sorted, mid)
                if c > 0 { newEnds[c] = max(newEnds[c], newEnds[c - 1]) }
            }
            if newEnds == ends { break }
            ends = newEnds
            var start = 0
            for c in 0..<k {
                if ends[c] > start { centroids[c] = (prefix[ends[c]] - prefix[start]) / Double(ends[c] - start) }
                start = ends[c]
            }
        }
        return centroids.map { Float($0) }.sorted()
    }

    /// The first index whose value exceeds `x` (values ≤ x go to the lower cluster).
    static func upperBound(_ sorted: [Float], _ x: Double) -> Int {
        var lo = 0, hi = sorted.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if Double(sorted[mid]) <= x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Index of the palette value nearest to v (ties: the lower index); `palette` is sorted.
    static func nearest(_ v: Float, in palette: [Float]) -> Int {
        var lo = 0, hi = palette.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if palette[mid] < v { lo = mid + 1 } else { hi = mid }
        }
        // palette[lo] is the first value ≥ v; the nearest is it or the one before.
        if lo == palette.count { return palette.count - 1 }
        if lo == 0 { return 0 }
        let below = lo - 1
        // The lowest index holding the value below (a palette may repeat values).
        var first = below
        while first > 0, palette[first - 1] == palette[below] { first -= 1 }
        return Double(v) - Double(palette[below]) <= Double(palette[lo]) - Double(v) ? first : lo
    }
}

/// Flat indices of each group, in flat order.
func indicesByGroup(_ groupOf: [Int], groups: Int) -> [[Int]] {
    var out = [[Int]](repeating: [], count: groups)
    for (j, g) in groupOf.enumerated() { out[g].append(j) }
    return out
}

func checkFinite(_ t: FloatTensor) throws(BinarizeError) {
    if let bad = t.values.firstIndex(where: { !$0.isFinite }) {
        throw .invalidTensor(tensor: t.name, reason: "value \(bad) is \(t.values[bad]); weights must be finite")
    }
}
