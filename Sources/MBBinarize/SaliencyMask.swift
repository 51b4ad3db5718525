import MBCore
import MBKernels

/// Structured masks chosen by output saliency (policy `method: saliency`, with `fit: output`;
/// not in the paper). Middle-Out on groups ranks a group by the mean of its entries' keys
/// | |T_j| − m |, which says little about what the group's bits are worth (HBB.md section 4: the
/// choice comes out close to Random). The output fit knows the layer's input second moment
/// H = X_qᵀX_q + λI (`OutputFit.System`), so a group's width can be chosen by what fewer bits cost
/// the layer's OUTPUT:
///
/// 1. Candidate values. Per scale group (the tensor, or an output channel) the K = widest used
///    width's homogeneous residual binarization of the target w' gives level scales μ_1…μ_K
///    (μ_l = mean |r_(l−1)| over the scale group's entries, in Double); the candidate error of
///    entry j at width k is its residual after k greedy levels, e_j(k) = r_k (r_0 = w'_j,
///    r_l = r_(l−1) − μ_l·sign(r_(l−1)), sign(0) = +1).
/// 2. Cost. Group G (its entries share one output channel; its columns are G within that row)
///    costs, at width k, the increase of the layer's output error when G's entries take the
///    error e_G(k) and every other column of the row is re-solved to compensate (OBS for a block,
///    as GPTQ's later columns do): c_G(k) = e_G(k)ᵀ·([H⁻¹]_GG)⁻¹·e_G(k). For one entry this is
///    OBQ's e²/[H⁻¹]_jj; for a group that holds the whole row (`granularity: channel`) it is
///    e(k)ᵀ·H·e(k), the exact output error ‖X_q·e‖² + λ‖e‖².
/// 3. Selection, exactly as many groups per width as Middle-Out gives: over the same domains
///    (each output slice with channel scales, else the whole tensor; the whole tensor for
///    `granularity: channel`), width b_i (smallest first) goes to the round(p_i · groups) groups
///    still unassigned with the smallest (c_G(b_i) − c_G(b_(i+1))) / |G| (what taking b_i instead of
///    the next width costs per entry, so a short group is not favoured for the narrow width and
///    the stored bits stay Middle-Out's; ties: the lower group id, i.e. the group whose first
///    entry comes first);
///    the widest used width takes the rest. Zero fractions are dropped as in Middle-Out.
///
/// The fast path shares each block's factor between the groups with the same columns (every
/// output channel has the same column sets) and forms the quadratic forms as matrix products;
/// `variant: .reference` inverts H and every group's block of H⁻¹ with plain loops. The costs
/// agree up to rounding; the masks are tested equal.
public enum SaliencyMask {
    /// The mask (flat bit widths) for `target` (w', flat tensor order). `groups` holds every
    /// mask group within one output channel (`MaskGroups.weight`); `geometry` and `system` are
    /// the output fit's for the same tensor.
    public static func select(target: [Float], layout: GroupLayout, groups: MaskGroups, wholeTensor: Bool, bits: [Int], fractions: [Double],
                              system: OutputFit.System, geometry: OutputFit.Geometry, tensor: String = "",
                              variant: KernelVariant = .fast) throws(BinarizeError) -> [UInt8] {
        let used = zip(bits, fractions).filter { $0.1 > 0 }
        guard target.count == layout.count, groups.ids.count == target.count, geometry.rows * geometry.columns == target.count,
              geometry.rows % max(geometry.groups, 1) == 0 else {
            throw .invalidMask(tensor: tensor, reason: "saliency: \(groups.ids.count) group ids, \(target.count) values, \(geometry.rows)×\(geometry.columns) weights do not match")
        }
        guard let last = used.last else { return [UInt8](repeating: 0, count: target.count) }
        if used.count == 1 { return [UInt8](repeating: UInt8(last.0), count: target.count) }
        let shape = try GroupShape(groups: groups, geometry: geometry, tensor: tensor)
        let slice = OutputFit.groupIndices(layout)
        let scales = candidateScales(target, slice: slice, scaleGroups: max(layout.groupCount, 1), levels: last.0)
        let costs = variant == .fast
            ? try fastCosts(target, shape: shape, scales: scales, slice: slice, widths: used.map(\.0), system: system, geometry: geometry, tensor: tensor)
            : try referenceCosts(target, shape: shape, scales: scales, slice: slice, widths: used.map(\.0), system: system, geometry: geometry, tensor: tensor)
        // Domains: the output slices (channel scales), else the whole tensor.
        let domainOf = (0..<groups.count).map { wholeTensor || layout.groupCount <= 1 ? 0 : slice[shape.firstFlat[$0]] }
        let sizes = (0..<groups.count).map { shape.offsets[$0 + 1] - shape.offsets[$0] }
        let widths = assign(costs: costs, sizes: sizes, domains: domainOf, used: used)
        var mask = [UInt8](repeating: 0, count: target.count)
        for j in 0..<target.count { mask[j] = widths[Int(groups.ids[j])] }
        return mask
    }

    /// Each mask group's output channel, columns (ascending) and first flat entry.
    struct GroupShape {
        var row: [Int]
        var firstFlat: [Int]
        /// Columns of group i: columns[offsets[i]..<offsets[i + 1]].
        var offsets: [Int]
        var columns: [Int]
        var count: Int { row.count }

        init(groups: MaskGroups, geometry: OutputFit.Geometry, tensor: String) throws(BinarizeError) {
            let n = groups.count, d = geometry.columns
            row = [Int](repeating: -1, count: n)
            firstFlat = [Int](repeating: Int.max, count: n)
            var sizes = [Int](repeating: 0, count: n)
            for r in 0..<geometry.rows {
                for c in 0..<d {
                    let flat = geometry.flat(r, c), g = Int(groups.ids[flat])
                    guard g < n else { throw .invalidMask(tensor: tensor, reason: "group id \(g) of \(n) groups") }
                    if row[g] < 0 { row[g] = r } else if row[g] != r {
                        throw .invalidMask(tensor: tensor, reason: "saliency: group \(g) spans output channels \(row[g]) and \(r); a group must lie in one output channel")
                    }
                    firstFlat[g] = min(firstFlat[g], flat)
                    sizes[g] += 1
                }
            }
            offsets = [0]
            offsets.reserveCapacity(n + 1)
            for g in 0..<n { offsets.append(offsets[g] + sizes[g]) }
            columns = [Int](repeating: 0, count: offsets[n])
            var cursor = Array(offsets.dropLast())
            for r in 0..<geometry.rows {
                for c in 0..<d {
                    let g = Int(groups.ids[geometry.flat(r, c)])
                    columns[cursor[g]] = c
                    cursor[g] += 1
                }
            }
        }

        func columns(of g: Int) -> ArraySlice<Int> { columns[offsets[g]..<offsets[g + 1]] }
    }

    /// μ_1…μ_levels per scale group (see the type's comment, step 1).
    static func candidateScales(_ target: [Float], slice: [Int], scaleGroups: Int, levels: Int) -> [[Double]] {
        var scales = [[Double]](repeating: [], count: scaleGroups)
        var sizes = [Double](repeating: 0, count: scaleGroups)
        for s in slice { sizes[s] += 1 }
        for _ in 0..<levels {
            var sums = [Double](repeating: 0, count: scales.count)
            for j in 0..<target.count {
                let s = slice[j]
                sums[s] += abs(residual(Double(target[j]), scales[s], levels: scales[s].count))
            }
            for s in scales.indices { scales[s].append(sums[s] / max(sizes[s], 1)) }
        }
        return scales
    }

    /// The residual of `x` after `levels` greedy levels of `scales`.
    @inline(__always)
    static func residual(_ x: Double, _ scales: [Double], levels: Int) -> Double {
        var r = x
        for l in 0..<levels { r -= r >= 0 ? scales[l] : -scales[l] }
        return r
    }

    /// Fast costs (groups × widths): per (convolution group, column set) one N×N matrix
    /// S = ([H⁻¹]_GG)⁻¹ (or H itself for a whole row), and the quadratic forms of every group
    /// with those columns as one product E·S.
    static func fastCosts(_ target: [Float], shape: GroupShape, scales: [[Double]], slice: [Int], widths: [Int], system: OutputFit.System,
                          geometry: OutputFit.Geometry, tensor: String) throws(BinarizeError) -> [Double] {
        let d = geometry.columns, rg = geometry.rows / max(geometry.groups, 1), u = widths.count
        var costs = [Double](repeating: 0, count: shape.count * u)
        // Sets: groups with the same convolution group, first column and size have the same
        // columns (MaskGroups.weight's groups do; checked).
        var setOf: [Int: Int] = [:]
        var members: [[Int]] = []
        for g in 0..<shape.count {
            let cols = shape.columns(of: g)
            guard let first = cols.first else { continue }
            let key = ((shape.row[g] / rg) * (d + 1) + first) * (d + 1) + cols.count
            if let s = setOf[key] {
                guard shape.columns(of: members[s][0]) == cols else {
                    throw .invalidMask(tensor: tensor, reason: "saliency: groups \(members[s][0]) and \(g) start at the same column but cover different columns")
                }
                members[s].append(g)
            } else {
                setOf[key] = members.count
                members.append([g])
            }
        }
        for list in members {
            let cols = Array(shape.columns(of: list[0])), n = cols.count, cg = shape.row[list[0]] / rg
            let whole = n == d
            var s: [Double] = []
            if !whole {
                guard let inverse = SymmetricMatrix.inverse(.fast, inverseBlock(cols, group: cg, system: system, d: d), n: n) else {
                    throw .invalidMask(tensor: tensor, reason: "saliency: a block of H⁻¹ is not positive definite")
                }
                s = inverse
            } else if !system.keepsRows {
                s = system.hessian[cg]
            }
            for chunk in stride(from: 0, to: list.count, by: OutputFit.rowChunk) {
                let part = list[chunk..<min(list.count, chunk + OutputFit.rowChunk)]
                var e = [Double](repeating: 0, count: part.count * u * n)
                for (i, g) in part.enumerated() {
                    let r = shape.row[g]
                    for (k, c) in cols.enumerated() {
                        let flat = geometry.flat(r, c), sc = scales[slice[flat]]
                        for (w, width) in widths.enumerated() { e[(i * u + w) * n + k] = residual(Double(target[flat]), sc, levels: width) }
                    }
                }
                let es = whole && system.keepsRows ? system.times(cg, e, count: part.count * u, d: d, variant: .fast)
                    : SymmetricMatrix.multiply(.fast, e, s, rows: part.count * u, n: n, m: n)
                for (i, g) in part.enumerated() {
                    for w in 0..<u {
                        var q = 0.0
                        let base = (i * u + w) * n
                        for k in 0..<n { q += es[base + k] * e[base + k] }
                        costs[g * u + w] = q
                    }
                }
            }
        }
        return costs
    }

    /// [H⁻¹]_GG for the columns `cols` of convolution group `cg`: from the factor U of H⁻¹
    /// (H⁻¹ = UᵀU, so the block is U_Gᵀ·U_G), or with rows kept from
    /// H⁻¹ = (I − X_qᵀ(λI + X_qX_qᵀ)⁻¹X_q)/λ.
    static func inverseBlock(_ cols: [Int], group cg: Int, system: OutputFit.System, d: Int) -> [Double] {
        let n = cols.count
        if system.keepsRows {
            let x = system.rows[cg], m = x.count / max(d, 1), lambda = system.damping[cg]
            var xg = [Double](repeating: 0, count: n * m)  // X_Gᵀ (n × m)
            for i in 0..<m { for (k, c) in cols.enumerated() { xg[k * m + i] = x[i * d + c] } }
            let z = SymmetricMatrix.multiply(.fast, xg, system.rowInverse[cg], rows: n, n: m, m: m)
            var b = SymmetricMatrix.multiplyTransposed(.fast, z, xg, rows: n, n: m, m: n)
            for i in 0..<(n * n) { b[i] = -b[i] / lambda }
            for k in 0..<n { b[k * n + k] += 1 / lambda }
            return b
        }
        let uf = system.inverseFactor[cg]
        // U_Gᵀ (n × d): row k is column cols[k] of U, nonzero down to its diagonal.
        var ugt = [Double](repeating: 0, count: n * d)
        for (k, c) in cols.enumerated() { for i in 0...c { ugt[k * d + i] = uf[i * d + c] } }
        return SymmetricMatrix.multiplyTransposed(.fast, ugt, ugt, rows: n, n: d, m: n)
    }

    /// The plain twin of `fastCosts`: H formed densely, inverted, and every group's block of H⁻¹
    /// inverted on its own, all with plain loops.
    static func referenceCosts(_ target: [Float], shape: GroupShape, scales: [[Double]], slice: [Int], widths: [Int], system: OutputFit.System,
                               geometry: OutputFit.Geometry, tensor: String) throws(BinarizeError) -> [Double] {
        let d = geometry.columns, rg = geometry.rows / max(geometry.groups, 1), u = widths.count
        var inverses: [[Double]] = []
        for cg in 0..<geometry.groups {
            var h: [Double]
            if system.keepsRows {
                let x = system.rows[cg], m = x.count / max(d, 1)
                h = [Double](repeating: 0, count: d * d)
                for a in 0..<d {
                    for b in 0..<d {
                        var s = 0.0
                        for i in 0..<m { s += x[i * d + a] * x[i * d + b] }
                        h[a * d + b] = s
                    }
                    h[a * d + a] += system.damping[cg]
                }
            } else {
                h = system.hessian[cg]
            }
            guard let inv = SymmetricMatrix.inverseReference(h, n: d) else {
                throw .invalidMask(tensor: tensor, reason: "saliency: H is not positive definite")
            }
            inverses.append(inv)
        }
        var costs = [Double](repeating: 0, count: shape.count * u)
        for g in 0..<shape.count {
            let cols = Array(shape.columns(of: g)), n = cols.count, r = shape.row[g], hinv = inverses[r / rg]
            guard n > 0 else { continue }
            var block = [Double](repeating: 0, count: n * n)
            for a in 0..<n { for b in 0..<n { block[a * n + b] = hinv[cols[a] * d + cols[b]] } }
            guard let s = SymmetricMatrix.inverseReference(block, n: n) else {
                throw .invalidMask(tensor: tensor, reason: "saliency: a block of H⁻¹ is not positive definite")
            }
            for (w, width) in widths.enumerated() {
                let e = cols.map { c in
                    let flat = geometry.flat(r, c)
                    return residual(Double(target[flat]), scales[slice[flat]], levels: width)
                }
                var q = 0.0
                for a in 0..<n { for b in 0..<n { q += e[a] * s[a * n + b] * e[b] } }
                costs[g * u + w] = q
            }
        }
        return costs
    }

    /// Widths per group (step 3 of the type's comment) from costs (groups × used widths).
    static func assign(costs: [Double], sizes: [Int], domains: [Int], used: [(Int, Double)]) -> [UInt8] {
        let u = used.count, n = domains.count
        var widths = [UInt8](repeating: 0, count: n)
        var byDomain: [Int: [Int]] = [:]
        for g in 0..<n { byDomain[domains[g], default: []].append(g) }
        for (_, members) in byDomain {
            var remaining = members
            let counts = Binarizer.structuredCounts(groups: members.count, used: used.map { (bits: $0.0, fraction: $0.1) })
            for i in 0..<(u - 1) {
                let c = counts[i]
                guard c > 0 else { continue }
                let ranked = remaining.sorted { a, b in
                    // Per entry: groups of different sizes (the last of a run is shorter) then save
                    // bits at the same rate, so the stored average stays Middle-Out's.
                    let ka = (costs[a * u + i] - costs[a * u + i + 1]) / Double(max(sizes[a], 1))
                    let kb = (costs[b * u + i] - costs[b * u + i + 1]) / Double(max(sizes[b], 1))
                    return ka != kb ? ka < kb : a < b
                }
                for g in ranked.prefix(c) { widths[g] = UInt8(used[i].0) }
                remaining = remaining.filter { widths[$0] == 0 }
            }
            for g in remaining { widths[g] = UInt8(used[u - 1].0) }
        }
        return widths
    }
}
