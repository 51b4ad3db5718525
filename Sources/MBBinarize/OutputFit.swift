import MBCore
import MBKernels

/// Output-aware binarization (policy `fit: output`; not in the paper): the residual sign planes
/// of one layer chosen so the layer's OUTPUT on calibration inputs stays close to the float
/// model's, instead of the weights staying close to the float weights.
///
/// For one output channel w (a row of the weight matrix, d = input columns: im2col columns
/// of a Conv per group, K of a Gemm/MatMul) the target is
///
///     min_q ‖X_f·w − X_q·q‖²
///
/// X_f: the layer's input rows in the float model, X_q: in the model whose upstream layers are
/// already binarized (the asymmetric form of GPTQ/OBQ). The damped objective adds λ‖q − w‖²
/// (it pulls directions the calibration rows do not see towards the float weights, not towards
/// zero: with fewer rows than columns, after global pooling, say, X_qᵀX_q is singular). With
/// H = X_qᵀX_q + λI and C = X_qᵀX_f it equals (q − w')ᵀH(q − w') + const, where
/// w' = H⁻¹·(C + λI)·w is the best float row for the binarized upstream (w' = w when X_q = X_f).
/// The fit therefore
/// 1. takes w' as the target (`target`); the caller binarizes w' with the policy's own method
///    to get the mask and first scales (any bit mix, granularity and refit);
/// 2. keeps the mask and sets the signs column by column: each entry takes the nearest value
///    its width can represent with the current level scales, and its error, divided by the
///    diagonal of the upper Cholesky factor U of H⁻¹, is pushed onto the columns not yet done
///    through U's row (GPTQ; blocks of `blockSize` columns, trailing update by BLAS);
/// 3. refits every scale group's level scales by least squares on the same objective
///    (a K×K system per group: A_kl = b_kᵀHb_l, r_k = b_kᵀHw', b_k = level k's masked signs);
/// 4. repeats 2–3 while the objective falls (at most `maxRounds`), and keeps the best of all
///    rounds and of the weight-space start, so the result is never worse than the start.
///    When `start` stores float16 scales, every refit is rounded to float16 before it is used.
///
/// Damping: λ = `dampingFraction` × mean diag(X_qᵀX_q); when H (or H⁻¹) is not numerically
/// positive definite λ grows tenfold, up to `maxDampingSteps` times, and a warning says so.
/// `fit(…, variant: .reference)` is the plain twin: no blocking, plain loops, plain Cholesky.
public enum OutputFit {
    public static let dampingFraction = 0.01
    public static let maxDampingSteps = 6
    public static let maxRounds = 3
    public static let blockSize = 128

    /// One layer's weight matrix as seen by the fit: `rows` output channels in `groups`
    /// convolution groups, `columns` input columns per group, entry (r, c) at flat index
    /// r·rowStride + c·columnStride of the weight tensor.
    public struct Geometry: Sendable, Equatable {
        public var rows: Int
        public var columns: Int
        public var groups: Int
        public var rowStride: Int
        public var columnStride: Int
        public init(rows: Int, columns: Int, groups: Int = 1, rowStride: Int, columnStride: Int) {
            self.rows = rows
            self.columns = columns
            self.groups = groups
            self.rowStride = rowStride
            self.columnStride = columnStride
        }
        public func flat(_ r: Int, _ c: Int) -> Int { r * rowStride + c * columnStride }
        var rowsPerGroup: Int { rows / groups }
    }

    /// Second moments accumulated over the calibration rows, per convolution group (each
    /// columns × columns, row-major): X_qᵀX_q, X_qᵀX_f and X_fᵀX_f.
    public struct Moments: Sendable {
        public var quantized: [[Double]]
        public var cross: [[Double]]
        public var float: [[Double]]
        /// Rows accumulated per group.
        public var sampleRows: Int
        public init(groups: Int, columns: Int) {
            let zero = [Double](repeating: 0, count: columns * columns)
            quantized = Array(repeating: zero, count: groups)
            cross = quantized
            float = quantized
            sampleRows = 0
        }
    }

    /// The damped system of each group.
    public struct System: Sendable {
        /// H = X_qᵀX_q + λI per group.
        public var hessian: [[Double]]
        /// Upper Cholesky factor of H⁻¹ per group.
        public var inverseFactor: [[Double]]
        /// λ per group.
        public var damping: [Double]
        public var warnings: [String]
    }

    public enum Failure: Error, Sendable, CustomStringConvertible {
        case degenerate(String)
        public var description: String {
            switch self { case .degenerate(let s): s }
        }
    }

    /// Damps each group's X_qᵀX_q until it and its inverse factor are positive definite.
    public static func system(_ m: Moments, geometry: Geometry, dampingFraction: Double = dampingFraction,
                              variant: KernelVariant = .fast) throws(Failure) -> System {
        let d = geometry.columns
        var result = System(hessian: [], inverseFactor: [], damping: [], warnings: [])
        if m.sampleRows < d {
            result.warnings.append("\(m.sampleRows) calibration rows for \(d) input columns: X_qᵀX_q is singular, so the damping (λ = \(formatted(dampingFraction)) × mean diagonal) keeps the unseen directions at the float weights; more calibration inputs fit this layer better")
        }
        for g in 0..<geometry.groups {
            let h = m.quantized[g]
            guard h.allSatisfy(\.isFinite) else { throw .degenerate("the input second moment of group \(g) is not finite") }
            let meanDiagonal = (0..<d).reduce(0.0) { $0 + h[$1 * d + $1] } / Double(max(d, 1))
            guard meanDiagonal > 0 else { throw .degenerate("the layer's calibration inputs are all zero (group \(g))") }
            var lambda = dampingFraction * meanDiagonal
            var step = 0
            while true {
                var hd = h
                for i in 0..<d { hd[i * d + i] += lambda }
                if let inv = SymmetricMatrix.inverse(variant, hd, n: d), let u = SymmetricMatrix.choleskyUpper(variant, inv, n: d) {
                    result.hessian.append(hd)
                    result.inverseFactor.append(u)
                    result.damping.append(lambda)
                    if step > 0 {
                        result.warnings.append("group \(g): X_qᵀX_q is ill-conditioned (\(m.sampleRows) rows for \(d) columns); damped with λ = \(formatted(lambda / meanDiagonal)) × mean diagonal instead of \(formatted(dampingFraction))")
                    }
                    break
                }
                step += 1
                guard step <= maxDampingSteps else {
                    throw .degenerate("group \(g): no damping up to \(formatted(lambda / meanDiagonal)) × mean diagonal makes X_qᵀX_q positive definite")
                }
                lambda *= 10
            }
        }
        return result
    }

    /// w' = H⁻¹·(C + λI)·w for every row (flat tensor order).
    public static func target(weights: [Float], moments: Moments, system: System, geometry: Geometry,
                              variant: KernelVariant = .fast) -> [Float] {
        let d = geometry.columns, rg = geometry.rowsPerGroup
        var out = weights
        for g in 0..<geometry.groups {
            let w = matrix(weights, geometry, group: g)
            // Rows of W·(C + λI)ᵀ are ((C + λI)·w)ᵀ; times H⁻¹ (symmetric) gives w'ᵀ.
            var ct = transposed(moments.cross[g], d)
            for i in 0..<d { ct[i * d + i] += system.damping[g] }
            let wc = SymmetricMatrix.multiply(variant, w, ct, rows: rg, n: d, m: d)
            guard let inv = SymmetricMatrix.inverse(variant, system.hessian[g], n: d) else { continue }
            let t = SymmetricMatrix.multiply(variant, wc, inv, rows: rg, n: d, m: d)
            for r in 0..<rg { for c in 0..<d { out[geometry.flat(g * rg + r, c)] = Float(t[r * d + c]) } }
        }
        return out
    }

    public struct Result: Sendable {
        public var packed: PackedTensor
        /// (q − w')ᵀH(q − w') summed over rows: of the start and of the result.
        public var objectiveBefore: Double
        public var objectiveAfter: Double
        /// Sign-and-refit rounds run (0: the start was kept).
        public var rounds: Int
        public var warnings: [String]
    }

    /// Fits the signs and scales of `start` (a binarization of `target` with the mask and
    /// scale groups to keep) to the layer output; see the type's comment.
    public static func fit(start: PackedTensor, target: [Float], system: System, geometry: Geometry,
                           maxRounds: Int = maxRounds, variant: KernelVariant = .fast) throws(Failure) -> Result {
        let layout = start.layout
        guard geometry.rows % geometry.groups == 0, geometry.rows * geometry.columns == start.count, target.count == start.count else {
            throw .degenerate("weight geometry \(geometry.rows)×\(geometry.columns) does not match the tensor's \(start.count) entries")
        }
        // Every row must lie in one scale group (tensor scales, or channel scales on the output axis).
        let groupOf = groupIndices(layout)
        let rowGroup = (0..<geometry.rows).map { groupOf[geometry.flat($0, 0)] }
        for r in 0..<geometry.rows where (0..<geometry.columns).contains(where: { groupOf[geometry.flat(r, $0)] != rowGroup[r] }) {
            throw .degenerate("output channel \(r) spans several scale groups (channel scales along an input axis)")
        }
        var state = Codes(start)
        var best = state
        var bestObjective = objective(state, target: target, system: system, geometry: geometry, variant: variant)
        let before = bestObjective
        var rounds = 0
        var warnings: [String] = []
        for _ in 0..<maxRounds {
            var next = state
            next.patterns = signs(next, target: target, system: system, geometry: geometry, variant: variant)
            let singular = refitScales(&next, target: target, system: system, geometry: geometry, rowGroup: rowGroup, variant: variant)
            if start.halfScales {
                // Stored as float16: the next signs and the objective see the scales as stored.
                next.scales = next.scales.map { $0.map { Float(float16Bits: $0.float16Bits) } }
            }
            let value = objective(next, target: target, system: system, geometry: geometry, variant: variant)
            guard value.isFinite, value < bestObjective * (1 - 1e-9) else { break }
            if singular > 0 { warnings.append("\(singular) scale groups had singular normal equations and kept their scales") }
            best = next
            bestObjective = value
            state = next
            rounds += 1
        }
        return Result(packed: best.packed(like: start), objectiveBefore: before, objectiveAfter: bestObjective, rounds: rounds, warnings: warnings)
    }

    /// ‖X_f·w − X_q·q‖² / ‖X_f·w‖² summed over rows, from the undamped moments (what the fit
    /// achieved on the calibration rows, in the layer's output).
    public static func relativeOutputError(weights: [Float], fitted: [Float], moments: Moments, geometry: Geometry) -> Double {
        let d = geometry.columns, rg = geometry.rowsPerGroup
        var num = 0.0, den = 0.0
        for g in 0..<geometry.groups {
            let w = matrix(weights, geometry, group: g), q = matrix(fitted, geometry, group: g)
            let fw = SymmetricMatrix.multiply(.fast, w, moments.float[g], rows: rg, n: d, m: d)
            let hq = SymmetricMatrix.multiply(.fast, q, moments.quantized[g], rows: rg, n: d, m: d)
            // C = X_qᵀX_f: qᵀ·C·w = Σ (q·C)·w.
            let qc = SymmetricMatrix.multiply(.fast, q, moments.cross[g], rows: rg, n: d, m: d)
            for i in 0..<(rg * d) {
                den += fw[i] * w[i]
                num += fw[i] * w[i] - 2 * qc[i] * w[i] + hq[i] * q[i]
            }
        }
        return den > 0 ? max(0, num) / den : 0
    }

    // MARK: - The steps

    /// Mask, per-level scales and per-entry sign patterns (bit k set: +1 at level k + 1), flat order.
    struct Codes {
        var mask: [UInt8]
        var scales: [[Float]]  // level × scale group
        var patterns: [UInt8]
        var layout: GroupLayout
        /// Scale group of each flat entry.
        var groupOf: [Int]

        init(_ p: PackedTensor) {
            layout = p.layout
            groupOf = groupIndices(layout)
            mask = p.mask
            scales = p.levels.map(\.scales)
            patterns = [UInt8](repeating: 0, count: p.count)
            var cursor = [Int](repeating: 0, count: p.levels.count)
            for q in 0..<layout.count {
                let flat = layout.flatIndex(ofGroupMajor: q)
                var bits: UInt8 = 0
                for k in 0..<Int(p.mask[flat]) {
                    if p.levels[k].sign(cursor[k]) > 0 { bits |= 1 << UInt8(k) }
                    cursor[k] += 1
                }
                patterns[flat] = bits
            }
        }

        func value(_ flat: Int) -> Float {
            let g = groupOf[flat], bits = patterns[flat]
            var sum: Float = 0
            for k in 0..<Int(mask[flat]) {
                let term = (bits >> UInt8(k)) & 1 == 1 ? scales[k][g] : -scales[k][g]
                sum = k == 0 ? term : sum + term
            }
            return sum
        }

        func packed(like start: PackedTensor) -> PackedTensor {
            var out = start
            var writers = start.levels.map { BitStream(capacity: $0.bitCount) }
            for q in 0..<layout.count {
                let flat = layout.flatIndex(ofGroupMajor: q)
                for k in 0..<Int(mask[flat]) { writers[k].append((patterns[flat] >> UInt8(k)) & 1 == 1) }
            }
            for k in out.levels.indices {
                out.levels[k].signs = writers[k].words
                out.levels[k].scales = scales[k]
            }
            return out
        }
    }

    /// GPTQ over the columns with the current scales: new sign patterns.
    static func signs(_ codes: Codes, target: [Float], system: System, geometry: Geometry, variant: KernelVariant) -> [UInt8] {
        let d = geometry.columns, rg = geometry.rowsPerGroup, K = codes.scales.count
        var patterns = codes.patterns
        // Codebooks per scale group and width, built on first use.
        var books: [Int: [(value: Float, pattern: Int)]] = [:]
        func book(_ group: Int, _ width: Int) -> [(value: Float, pattern: Int)] {
            let key = group * (K + 1) + width
            if let b = books[key] { return b }
            let b = AlternatingRefit.codebook(scales: codes.scales.map { $0[group] }, width: width)
            books[key] = b
            return b
        }
        for g in 0..<geometry.groups {
            var w = matrix(target, geometry, group: g)
            let u = system.inverseFactor[g]
            let block = variant == .fast ? blockSize : d
            var b0 = 0
            while b0 < d {
                let b1 = min(d, b0 + block), width = b1 - b0
                var err = [Double](repeating: 0, count: rg * width)
                for c in b0..<b1 {
                    let ucc = u[c * d + c]
                    // The reference updates every later column at once; the fast one only those of the block.
                    let end = variant == .fast ? b1 : d
                    for r in 0..<rg {
                        let flat = geometry.flat(g * rg + r, c)
                        let m = Int(codes.mask[flat])
                        let x = w[r * d + c]
                        let (q, pattern) = nearest(Float(x), in: book(codes.groupOf[flat], m))
                        patterns[flat] = UInt8(pattern)
                        let e = (x - q) / ucc
                        err[r * width + (c - b0)] = e
                        if c + 1 < end { for c2 in (c + 1)..<end { w[r * d + c2] -= e * u[c * d + c2] } }
                    }
                }
                if variant == .fast, b1 < d {
                    // W[:, b1:] −= Err · U[b0:b1, b1:]
                    var ub = [Double](repeating: 0, count: width * (d - b1))
                    for i in 0..<width { for j in b1..<d { ub[i * (d - b1) + (j - b1)] = u[(b0 + i) * d + j] } }
                    let delta = SymmetricMatrix.multiply(.fast, err, ub, rows: rg, n: width, m: d - b1)
                    for r in 0..<rg { for j in b1..<d { w[r * d + j] -= delta[r * (d - b1) + (j - b1)] } }
                }
                b0 = b1
            }
        }
        return patterns
    }

    /// Least-squares level scales on (q − w')ᵀH(q − w') per scale group; returns how many
    /// groups kept their scales because their system was singular. A negative solution flips
    /// that level's signs in the group so every stored scale stays >= 0.
    static func refitScales(_ codes: inout Codes, target: [Float], system: System, geometry: Geometry, rowGroup: [Int],
                            variant: KernelVariant) -> Int {
        let d = geometry.columns, rg = geometry.rowsPerGroup, K = codes.scales.count
        let groups = codes.layout.groupCount
        var A = [[Double]](repeating: [Double](repeating: 0, count: K * K), count: groups)
        var rhs = [[Double]](repeating: [Double](repeating: 0, count: K), count: groups)
        for g in 0..<geometry.groups {
            // B: d × (rows·K), column r·K + k = level k's masked signs of row r.
            var b = [Double](repeating: 0, count: d * rg * K)
            for r in 0..<rg {
                for c in 0..<d {
                    let flat = geometry.flat(g * rg + r, c)
                    let bits = codes.patterns[flat]
                    for k in 0..<Int(codes.mask[flat]) { b[c * rg * K + r * K + k] = (bits >> UInt8(k)) & 1 == 1 ? 1 : -1 }
                }
            }
            let hb = SymmetricMatrix.multiply(variant, system.hessian[g], b, rows: d, n: d, m: rg * K)
            let w = matrix(target, geometry, group: g)
            for r in 0..<rg {
                let sg = rowGroup[g * rg + r]
                for k in 0..<K {
                    var t = 0.0
                    for c in 0..<d { t += hb[c * rg * K + r * K + k] * w[r * d + c] }
                    rhs[sg][k] += t
                    for l in 0..<K {
                        var s = 0.0
                        for c in 0..<d { s += b[c * rg * K + r * K + k] * hb[c * rg * K + r * K + l] }
                        A[sg][k * K + l] += s
                    }
                }
            }
        }
        var singular = 0
        var active = [[Bool]](repeating: [Bool](repeating: false, count: K), count: groups)
        for flat in 0..<codes.mask.count {
            for k in 0..<Int(codes.mask[flat]) { active[codes.groupOf[flat]][k] = true }
        }
        var flip = [UInt8](repeating: 0, count: groups)
        for g in 0..<groups {
            let present = (0..<K).filter { active[g][$0] }
            guard !present.isEmpty else { continue }
            let a = present.map { k in present.map { l in A[g][k * K + l] } }
            guard let mu = solveLinearSystem(a, present.map { rhs[g][$0] }), mu.allSatisfy(\.isFinite) else {
                singular += 1
                continue
            }
            for (i, k) in present.enumerated() {
                codes.scales[k][g] = Float(abs(mu[i]))
                if mu[i] < 0 { flip[g] |= 1 << UInt8(k) }
            }
        }
        if flip.contains(where: { $0 != 0 }) {
            for flat in 0..<codes.mask.count {
                let m = Int(codes.mask[flat])
                codes.patterns[flat] ^= flip[codes.groupOf[flat]] & UInt8(truncatingIfNeeded: (1 << m) - 1)
            }
        }
        return singular
    }

    /// Σ over rows of (q − w')ᵀH(q − w').
    static func objective(_ codes: Codes, target: [Float], system: System, geometry: Geometry, variant: KernelVariant) -> Double {
        let d = geometry.columns, rg = geometry.rowsPerGroup
        var total = 0.0
        for g in 0..<geometry.groups {
            var delta = [Double](repeating: 0, count: rg * d)
            for r in 0..<rg {
                for c in 0..<d {
                    let flat = geometry.flat(g * rg + r, c)
                    delta[r * d + c] = Double(codes.value(flat)) - Double(target[flat])
                }
            }
            let hd = SymmetricMatrix.multiply(variant, delta, system.hessian[g], rows: rg, n: d, m: d)
            for i in 0..<(rg * d) { total += hd[i] * delta[i] }
        }
        return total
    }

    /// The nearest codebook value to `x` and its pattern (ties: the lower value).
    static func nearest(_ x: Float, in book: [(value: Float, pattern: Int)]) -> (Double, Int) {
        var lo = 0, hi = book.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if book[mid].value < x { lo = mid + 1 } else { hi = mid }
        }
        if lo > 0, abs(Double(x) - Double(book[lo - 1].value)) <= abs(Double(book[lo].value) - Double(x)) { lo -= 1 }
        return (Double(book[lo].value), book[lo].pattern)
    }

    /// Scale group of every flat entry.
    static func groupIndices(_ layout: GroupLayout) -> [Int] {
        var out = [Int](repeating: 0, count: layout.count)
        guard layout.groupCount > 1 else { return out }
        for p in 0..<layout.count { out[layout.flatIndex(ofGroupMajor: p)] = p / layout.groupSize }
        return out
    }

    /// Group g's rows as a rows × columns Double matrix.
    static func matrix(_ flat: [Float], _ geometry: Geometry, group g: Int) -> [Double] {
        let d = geometry.columns, rg = geometry.rowsPerGroup
        var m = [Double](repeating: 0, count: rg * d)
        for r in 0..<rg { for c in 0..<d { m[r * d + c] = Double(flat[geometry.flat(g * rg + r, c)]) } }
        return m
    }

    static func transposed(_ a: [Double], _ n: Int) -> [Double] {
        var t = a
        for i in 0..<n { for j in 0..<n { t[j * n + i] = a[i * n + j] } }
        return t
    }

    static func formatted(_ x: Double) -> String {
        let v = (x * 1e4).rounded() / 1e4
        return "\(v)"
    }
}
