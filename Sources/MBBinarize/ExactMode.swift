import MBCore
/// Exact mode: a tensor that is ALREADY binarized (a model trained with
/// heterogeneous binarization and exported after the final binarization) holds, per tensor or
/// per channel, at most 2^(K+1) - 2 distinct values of the form sum over k <= b of +-mu_k.
/// `detect` recognizes such a tensor and recovers scales, signs and mask so that dequantization
/// gives back every value exactly: the model converts with zero error.
///
/// How the levels are found, per group, on the distinct values only:
/// - Level by level, candidate scales (half the differences between residual "nodes", and the
///   nodes' magnitudes) are tried on the current residuals. A node finishes if |v| = mu, else
///   takes the sign that points at its sibling v -+ 2 mu (the same path with the other sign at
///   this level), else its own sign; residuals then merge. Candidates are ranked by how few
///   residual nodes they leave, then by how few nodes they leave without a sibling, then by
///   the larger scale. The search backtracks over the eight most frequent candidates per level and
///   deepens one level at a time (1, 2, ... 8 levels), so the decomposition with the fewest
///   levels is found first.
/// - A decomposition counts only if Float scales exist that reproduce every distinct value bit
///   for bit through `PackedTensor.dequantized()`: the scales are fitted by least squares to the
///   decoded paths and then searched in their Float neighbourhood, level by level.
///
/// Dequantized values always match exactly. The levels, signs and mask are the original ones
/// when the value set determines them. It does not always: a homogeneous tensor's values do not
/// depend on the order of the levels (decoded larger scale first, as residual binarization of
/// ordinary weights makes them), and a set with few values can have several decompositions
/// with as many levels (the one the ranking prefers is returned). Several Float scales can also
/// round to the same values; the one nearest the least-squares fit is returned.
public enum ExactMode {
    /// At most this many levels are searched (the format's limit).
    public static let maxLevels = BitDistribution.maxBits

    public enum Outcome: Sendable {
        /// The packed tensor dequantizes to exactly the input values.
        case exact(PackedTensor)
        /// Why the tensor does not qualify.
        case notExact(String)

        public var packed: PackedTensor? {
            if case .exact(let p) = self { return p }
            return nil
        }
    }

    /// Tries tensor scales, then channel scales along `channelAxis` (if given and the tensor
    /// has that axis).
    public static func detect(_ tensor: FloatTensor, channelAxis: Int? = 0) -> Outcome {
        let whole = decode(tensor, scale: .tensor)
        guard case .notExact(let reason) = whole else { return whole }
        guard let axis = channelAxis, axis < tensor.shape.count, tensor.shape.count > 1 else {
            return .notExact(reason)
        }
        let channels = decode(tensor, scale: .channel(axis: axis))
        guard case .notExact(let channelReason) = channels else { return channels }
        return .notExact("tensor scales: \(reason); channel scales: \(channelReason)")
    }

    /// Exact decoding with the given grouping.
    public static func decode(_ tensor: FloatTensor, scale: ScaleMode) -> Outcome {
        if let i = tensor.values.firstIndex(where: { !$0.isFinite }) {
            return .notExact("element \(i) is \(tensor.values[i])")
        }
        let layout: GroupLayout
        do { layout = try GroupLayout(shape: tensor.shape, scale: scale, tensor: tensor.name) } catch { return .notExact("\(error)") }
        let values = layout.toGroupMajor(tensor.values)
        var codes: [GroupCode] = []
        for g in 0..<layout.groupCount {
            let group = values[(g * layout.groupSize)..<((g + 1) * layout.groupSize)]
            switch decodeGroup(group) {
            case .success(let code): codes.append(code)
            case .failure(let failure):
                return .notExact(layout.groupCount > 1 ? "channel \(g): \(failure.reason)" : failure.reason)
            }
        }
        let K = max(1, codes.map(\.scales.count).max() ?? 1)
        var mask = [UInt8](repeating: 0, count: layout.count)
        var signs = [[Bool]](repeating: [], count: K)
        var scales = [[Float]](repeating: [Float](repeating: 0, count: layout.groupCount), count: K)
        var counts = [[Int]](repeating: [Int](repeating: 0, count: layout.groupCount), count: K)
        for (g, code) in codes.enumerated() {
            for (k, mu) in code.scales.enumerated() { scales[k][g] = mu }
            for p in (g * layout.groupSize)..<((g + 1) * layout.groupSize) {
                let path = code.paths[code.index[canonical(values[p])]!]
                mask[p] = UInt8(path.count)
                for (k, s) in path.enumerated() {
                    signs[k].append(s)
                    counts[k][g] += 1
                }
            }
        }
        let levels = (0..<K).map { PackedLevel(scales: scales[$0], activeCounts: counts[$0], signs: packBits(signs[$0])) }
        let packed = PackedTensor(shape: tensor.shape, scale: scale, mask: layout.toFlat(mask), levels: levels)
        // Defensive: the whole point is zero error.
        let back = packed.dequantized()
        if let bad = tensor.values.indices.first(where: { back[$0] != tensor.values[$0] }) {
            return .notExact("internal: element \(bad) dequantizes to \(back[bad]), not \(tensor.values[bad])")
        }
        return .exact(packed)
    }

    // MARK: - One group

    struct GroupCode {
        var scales: [Float]
        /// Distinct value -> index into `paths`.
        var index: [Float: Int]
        /// The signs (true = +1) of each distinct value; its count is the value's bit width.
        var paths: [[Bool]]
    }

    struct Failure: Error {
        let reason: String
    }

    /// -0 and +0 are the same value here.
    static func canonical(_ x: Float) -> Float { x == 0 ? 0 : x }

    static func decodeGroup(_ group: ArraySlice<Float>) -> Result<GroupCode, Failure> {
        let limit = (1 << (maxLevels + 1)) - 2
        var seen = Set<Float>()
        for x in group {
            seen.insert(canonical(x))
            if seen.count > limit {
                return .failure(Failure(reason: "more than \(limit) distinct values"))
            }
        }
        let distinct = seen.sorted()
        let index = Dictionary(uniqueKeysWithValues: distinct.enumerated().map { ($1, $0) })
        if distinct.isEmpty { return .success(GroupCode(scales: [], index: [:], paths: [])) }
        if distinct == [0] { return .success(GroupCode(scales: [0], index: index, paths: [[true]])) }

        let maxAbs = Double(distinct.map(abs).max()!)
        var search = PathSearch(values: distinct, tolerance: maxAbs * 1e-5)
        guard let (scales, paths) = search.run() else {
            let reason: String
            if search.budget <= 0 {
                reason = "no exact decomposition found within the search budget"
            } else if search.inexact > 0 {
                reason = "\(search.inexact) decompositions fit, but no Float scales reproduce the values exactly"
            } else {
                reason = "no decomposition into at most \(maxLevels) levels"
            }
            return .failure(Failure(reason: "\(distinct.count) distinct values: \(reason)"))
        }
        return .success(GroupCode(scales: scales, index: index, paths: paths))
    }

    /// Float dequantization of one path, exactly as `PackedTensor.dequantized()` adds it up.
    static func reconstruct(_ path: [Bool], _ scales: [Float]) -> Float {
        var sum: Float = 0
        for (k, s) in path.enumerated() {
            let term = s ? scales[k] : -scales[k]
            sum = k == 0 ? term : sum + term
        }
        return sum
    }

    /// Least squares on the paths, then a search of the Float neighbourhood of each fitted
    /// scale, level by level: once levels 1...k are fixed, every value of bit width k is fully
    /// determined and must come out exactly, which prunes the search. Candidates nearest the
    /// fit are tried first. The radius of level k covers the rounding noise of the largest
    /// value measured in ulps of mu_k.
    static func exactScales(estimates: [Double], paths: [[Bool]], values: [Float]) -> [Float]? {
        let K = estimates.count
        var G = [[Double]](repeating: [Double](repeating: 0, count: K), count: K)
        var h = [Double](repeating: 0, count: K)
        for (path, v) in zip(paths, values) {
            for k in path.indices {
                let sk: Double = path[k] ? 1 : -1
                h[k] += sk * Double(v)
                for l in path.indices { G[k][l] += sk * (path[l] ? 1 : -1) }
            }
        }
        let fitted = (solveLinearSystem(G, h) ?? estimates).map { Float(abs($0)) }
        let noise = (values.map(abs).max() ?? 0).ulp
        let candidates: [[Float]] = fitted.map { mu in
            let radius = min(64, Int((4 * noise / max(mu.ulp, .leastNonzeroMagnitude)).rounded(.up)) + 2)
            var out = [mu]
            var up = mu, down = mu
            for _ in 0..<radius {
                up = up.nextUp
                down = down.nextDown
                out.append(up)
                if down >= 0 { out.append(down) }
            }
            return out
        }
        let byWidth = (0...K).map { w in paths.indices.filter { paths[$0].count == w } }
        var scales = [Float](repeating: 0, count: K)
        var visits = 0
        func place(_ k: Int) -> Bool {
            if k == K { return true }
            for mu in candidates[k] {
                visits += 1
                if visits > 200_000 { return false }
                scales[k] = mu
                if byWidth[k + 1].allSatisfy({ reconstruct(paths[$0], scales) == values[$0] }) && place(k + 1) { return true }
            }
            return false
        }
        return place(0) ? scales : nil
    }

    /// The level-by-level search described above, on Double residuals of the distinct values.
    struct PathSearch {
        let floats: [Float]
        let values: [Double]
        let tolerance: Double
        /// Recursion steps left; the search gives up when it runs out.
        var budget = 500
        /// Decompositions that fit in Double but not bit-exactly in Float.
        var inexact = 0

        init(values: [Float], tolerance: Double) {
            floats = values
            self.values = values.map(Double.init)
            self.tolerance = tolerance
        }

        /// Iterative deepening: the first exact decomposition found with the fewest levels.
        mutating func run() -> ([Float], [[Bool]])? {
            let n = values.count
            for levels in 1...ExactMode.maxLevels where n <= (1 << (levels + 1)) - 2 {
                if let found = step(residual: values, finished: [Bool](repeating: false, count: n),
                                    paths: [[Bool]](repeating: [], count: n), scales: [], levels: levels) {
                    return found
                }
                if budget <= 0 { return nil }
            }
            return nil
        }

        private mutating func step(residual: [Double], finished: [Bool], paths: [[Bool]], scales: [Double], levels: Int) -> ([Float], [[Bool]])? {
            if finished.allSatisfy({ $0 }) {
                if let exact = ExactMode.exactScales(estimates: scales, paths: paths, values: floats) { return (exact, paths) }
                inexact += 1
                return nil
            }
            let nodes = mergedNodes(residual.indices.filter { !finished[$0] }.map { residual[$0] })
            // A subtree of depth L holds at most 2^(L+1) - 2 nodes.
            let depthLeft = levels - scales.count
            guard depthLeft > 0, nodes.count <= (1 << (depthLeft + 1)) - 2, budget > 0 else { return nil }
            budget -= 1
            for mu in rankedCandidates(nodes) {
                var r = residual
                var done = finished
                var p = paths
                for i in r.indices where !done[i] {
                    let v = r[i]
                    let positive = decide(v, mu, nodes).positive
                    r[i] = positive ? v - mu : v + mu
                    p[i].append(positive)
                    if abs(r[i]) <= tolerance { done[i] = true }
                }
                if let found = step(residual: r, finished: done, paths: p, scales: scales + [mu], levels: levels) { return found }
                if budget <= 0 { return nil }
            }
            return nil
        }

        /// Sorted residuals with those closer than the tolerance merged.
        private func mergedNodes(_ xs: [Double]) -> [Double] {
            var out: [Double] = []
            for x in xs.sorted() where out.last.map({ x - $0 > tolerance }) ?? true { out.append(x) }
            return out
        }

        private func contains(_ sorted: [Double], _ x: Double) -> Bool {
            var lo = 0, hi = sorted.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if sorted[mid] < x - tolerance { lo = mid + 1 } else { hi = mid }
            }
            return lo < sorted.count && abs(sorted[lo] - x) <= tolerance
        }

        /// Candidate scales, best first: the eight most frequent ones, ranked.
        private func rankedCandidates(_ nodes: [Double]) -> [Double] {
            var raw: [Double] = nodes.map(abs).filter { $0 > tolerance }
            for a in 0..<nodes.count {
                for b in (a + 1)..<nodes.count { raw.append((nodes[b] - nodes[a]) / 2) }
            }
            raw.sort()
            // Cluster equal candidates; the cluster size is a cheap first score.
            var clusters: [(mu: Double, count: Int)] = []
            var start = 0
            while start < raw.count {
                var end = start + 1
                while end < raw.count && raw[end] - raw[start] <= tolerance { end += 1 }
                let members = raw[start..<end]
                clusters.append((members.reduce(0, +) / Double(members.count), members.count))
                start = end
            }
            let frequent = clusters.sorted { ($0.count, $0.mu) > ($1.count, $1.mu) }.prefix(8)
            // Score by what one step with this scale leaves: fewer distinct unfinished residuals
            // is better (siblings merge, finished entries drop out); then fewer nodes that
            // neither finish nor have a sibling (a level that splits whole subtrees is what
            // residual binarization makes); then the larger scale.
            let scored = frequent.map { c -> (mu: Double, left: Int, unpaired: Int) in
                var unpaired = 0
                var next: [Double] = []
                for v in nodes {
                    let (positive, finishing, paired) = decide(v, c.mu, nodes)
                    if finishing { continue }
                    if !paired { unpaired += 1 }
                    let r = positive ? v - c.mu : v + c.mu
                    if abs(r) > tolerance { next.append(r) }
                }
                return (c.mu, mergedNodes(next).count, unpaired)
            }
            return scored.sorted { (-$0.left, -$0.unpaired, $0.mu) > (-$1.left, -$1.unpaired, $1.mu) }.map(\.mu)
        }

        /// The sign a node takes for scale `mu`: its own if it finishes (|v| = mu), else the one
        /// pointing at its sibling, else its own.
        private func decide(_ v: Double, _ mu: Double, _ nodes: [Double]) -> (positive: Bool, finishes: Bool, paired: Bool) {
            if abs(abs(v) - mu) <= tolerance { return (v > 0, true, false) }
            if contains(nodes, v - 2 * mu) { return (true, false, true) }
            if contains(nodes, v + 2 * mu) { return (false, false, true) }
            return (v >= 0, false, false)
        }
    }
}
