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
///
/// What is kept of the calibration rows (`Inputs`, built by `Accumulator` one block of rows at a
/// time): H's undamped part X_qᵀX_q, or, when the layer sees fewer rows than it has columns (a
/// fully connected layer after pooling), X_q itself; and of X_f only what the fit reads, the
/// products X_qᵀX_f·w per row and Σ‖X_f·w‖², never the d×d cross and float moments. With rows
/// kept, H = λI + X_qᵀX_q is identity plus low rank and nothing d×d is formed: products with H go
/// through X_q, H⁻¹ through the n×n matrix λI + X_qX_qᵀ (Woodbury), and the GPTQ update that the
/// dense route reads off U's row c is, in closed form, x_{c'}ᵀg_c for the later columns c', with
/// g_c = (λI + Σ_{c'' > c} x_{c''}x_{c''}ᵀ)⁻¹x_c (x_c: column c of X_q, an n-vector). Both routes
/// give the same fit up to rounding (`OutputFitTests`).
public enum OutputFit {
    public static let dampingFraction = 0.01
    public static let maxDampingSteps = 6
    public static let maxRounds = 3
    public static let blockSize = 128
    /// Output channels whose working rows (scale refit, objective) are formed at once.
    static let rowChunk = 256

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

    /// What the fit keeps of one layer's calibration rows; see the type's comment.
    public struct Inputs: Sendable {
        /// X_qᵀX_q (columns × columns) per group; empty when `rows` is kept instead.
        public var gram: [[Double]]
        /// X_q (sampleRows × columns) per group, kept instead of `gram` for layers with fewer
        /// rows than columns; empty otherwise.
        public var rows: [[Double]]
        /// Per group, (rows / groups) × columns: row r is X_qᵀX_f·w_r.
        public var crossTarget: [[Double]]
        /// Σ over output channels of ‖X_f·w_r‖².
        public var floatEnergy: Double
        /// Rows accumulated per group.
        public var sampleRows: Int
        public var keepsRows: Bool { !rows.isEmpty }

        public init(gram: [[Double]], rows: [[Double]] = [], crossTarget: [[Double]], floatEnergy: Double, sampleRows: Int) {
            self.gram = gram
            self.rows = rows
            self.crossTarget = crossTarget
            self.floatEnergy = floatEnergy
            self.sampleRows = sampleRows
        }

        /// From the three full moments (the plain reference's form) and the float weights.
        public init(moments m: Moments, weights: [Float], geometry: Geometry, variant: KernelVariant = .fast) {
            let d = geometry.columns, rg = geometry.rowsPerGroup
            var cross: [[Double]] = [], energy = 0.0
            for g in 0..<geometry.groups {
                let w = matrix(weights, geometry, group: g)
                // (C·w_r)ᵀ = w_rᵀ·Cᵀ: the rows of W·Cᵀ.
                cross.append(SymmetricMatrix.multiplyTransposed(variant, w, m.cross[g], rows: rg, n: d, m: d))
                let fw = SymmetricMatrix.multiply(variant, w, m.float[g], rows: rg, n: d, m: d)
                for i in 0..<(rg * d) { energy += fw[i] * w[i] }
            }
            self.init(gram: m.quantized, crossTarget: cross, floatEnergy: energy, sampleRows: m.sampleRows)
        }
    }

    /// Builds a layer's `Inputs` from blocks of its input rows (X_q and X_f, Float, row-major),
    /// so no layer's rows need be held at once. Blocks are multiplied in single precision and
    /// summed in Double (`SymmetricMatrix.accumulateGram`).
    public struct Accumulator {
        public let geometry: Geometry
        /// Whether X_q's rows are kept instead of X_qᵀX_q (fewer rows than columns).
        public let keepsRows: Bool
        let variant: KernelVariant
        var inputs: Inputs
        var weightRows: [[Double]]
        var rowsSeen: [Int]
        var scratch: [Float] = []
        var doubleScratch: [Double] = []
        var quantizedBlock: [Double] = []
        var floatBlock: [Double] = []
        /// Layers at least this wide sum X_qᵀX_q's blocks in single precision (default 2,048).
        public let singlePrecisionColumns: Int

        /// `expectedRows`: rows each group will see (decides which route is kept).
        public init(weights: [Float], geometry: Geometry, expectedRows: Int, singlePrecisionColumns: Int = 2048, variant: KernelVariant = .fast) {
            self.geometry = geometry
            self.singlePrecisionColumns = singlePrecisionColumns
            self.variant = variant
            let d = geometry.columns, rg = geometry.rowsPerGroup
            keepsRows = expectedRows < d
            weightRows = (0..<geometry.groups).map { g in
                matrix(weights, geometry, group: g)
            }
            let groups = geometry.groups
            inputs = Inputs(gram: keepsRows ? [] : Array(repeating: [Double](repeating: 0, count: d * d), count: groups),
                            rows: keepsRows ? Array(repeating: [], count: groups) : [],
                            crossTarget: Array(repeating: [Double](repeating: 0, count: rg * d), count: groups),
                            floatEnergy: 0, sampleRows: 0)
            if keepsRows { for g in 0..<groups { inputs.rows[g].reserveCapacity(expectedRows * d) } }
            rowsSeen = Array(repeating: 0, count: groups)
        }

        /// Bytes the accumulation and the fit hold for one layer (the rows' route decided as in
        /// `init`): the kept moments or rows, the damped system and its factor (or the route's
        /// n-vectors), X_qᵀX_f·w, and about 48 bytes per weight for the fit's working copies.
        public static func workingBytes(geometry: Geometry, expectedRows n: Int) -> Int {
            let d = geometry.columns, groups = geometry.groups
            let weights = geometry.rows * d
            let system = n < d ? groups * (2 * n * d * 8) + 3 * n * n * 8 : groups * (3 * d * d * 8) + d * d * 12
            return system + 48 * weights
        }

        /// Adds `count` rows of group `group`: X_q and X_f, each count × columns. X_qᵀX_q is summed
        /// in single precision per block for layers of at least `singlePrecisionColumns` columns
        /// (their Gram matrix dominates the cost), in Double otherwise; X_qᵀX_f·w always in Double
        /// (H⁻¹ amplifies its rounding by H's condition number).
        public mutating func add(group g: Int, quantized xq: UnsafePointer<Float>, float xf: UnsafePointer<Float>, count: Int) {
            let d = geometry.columns, rg = geometry.rowsPerGroup
            guard count > 0 else { return }
            if quantizedBlock.count < count * d {
                quantizedBlock = [Double](repeating: 0, count: count * d)
                floatBlock = quantizedBlock
            }
            for i in 0..<(count * d) {
                quantizedBlock[i] = Double(xq[i])
                floatBlock[i] = Double(xf[i])
            }
            if keepsRows {
                inputs.rows[g].append(contentsOf: quantizedBlock[0..<(count * d)])
            } else if d >= singlePrecisionColumns {
                inputs.gram[g].withUnsafeMutableBufferPointer {
                    SymmetricMatrix.accumulateGram(variant, a: xq, rows: count, n: d, into: $0.baseAddress!, scratch: &scratch)
                }
            } else {
                inputs.gram[g].withUnsafeMutableBufferPointer { c in
                    quantizedBlock.withUnsafeBufferPointer {
                        SymmetricMatrix.accumulateGram(variant, a: $0.baseAddress!, rows: count, n: d, into: c.baseAddress!, scratch: &doubleScratch)
                    }
                }
            }
            // Y = X_f·Wᵀ (count × rg): the float layer's outputs on these rows; then Yᵀ·X_q (rg × d).
            let rowsF = floatBlock.count == count * d ? floatBlock : Array(floatBlock[0..<(count * d)])
            let y = SymmetricMatrix.multiplyTransposed(variant, rowsF, weightRows[g], rows: count, n: d, m: rg)
            inputs.floatEnergy += y.reduce(0) { $0 + $1 * $1 }
            y.withUnsafeBufferPointer { yp in
                quantizedBlock.withUnsafeBufferPointer { q in
                    inputs.crossTarget[g].withUnsafeMutableBufferPointer {
                        SymmetricMatrix.accumulateTransposeProduct(variant, a: yp.baseAddress!, b: q.baseAddress!, rows: count, n: rg, m: d, into: $0.baseAddress!)
                    }
                }
            }
            rowsSeen[g] += count
        }

        /// Adds what `other` accumulated (its rows after this one's, for the kept-rows route):
        /// blocks of rows accumulated apart, in two halves at once, say, then put together.
        public mutating func merge(_ other: Accumulator) {
            precondition(other.geometry == geometry && other.keepsRows == keepsRows, "accumulators of different layers")
            for g in 0..<geometry.groups {
                if keepsRows {
                    inputs.rows[g].append(contentsOf: other.inputs.rows[g])
                } else {
                    let o = other.inputs.gram[g]
                    inputs.gram[g].withUnsafeMutableBufferPointer { a in for i in 0..<a.count { a[i] += o[i] } }
                }
                let o = other.inputs.crossTarget[g]
                inputs.crossTarget[g].withUnsafeMutableBufferPointer { a in for i in 0..<a.count { a[i] += o[i] } }
                rowsSeen[g] += other.rowsSeen[g]
            }
            inputs.floatEnergy += other.inputs.floatEnergy
        }

        public func finish() -> Inputs {
            var out = inputs
            out.sampleRows = rowsSeen.min() ?? 0
            return out
        }
    }

    /// The damped system of each group.
    public struct System: Sendable {
        /// H = X_qᵀX_q + λI per group (dense route; empty when the rows are kept).
        public var hessian: [[Double]]
        /// Upper Cholesky factor of H⁻¹ per group (dense route).
        public var inverseFactor: [[Double]]
        /// λ per group.
        public var damping: [Double]
        public var warnings: [String]
        /// Rows route, per group: X_q (n × d); g_c as the rows of a d × n matrix; (λI + X_qX_qᵀ)⁻¹.
        public var rows: [[Double]] = []
        var gains: [[Double]] = []
        var rowInverse: [[Double]] = []
        var keepsRows: Bool { !rows.isEmpty }

        /// M·H for M (count × d, row-major) of group g.
        func times(_ g: Int, _ m: [Double], count: Int, d: Int, variant: KernelVariant) -> [Double] {
            guard keepsRows else { return SymmetricMatrix.multiply(variant, m, hessian[g], rows: count, n: d, m: d) }
            let n = rows[g].count / max(d, 1), lambda = damping[g]
            // λM + (M·X_qᵀ)·X_q
            let mx = SymmetricMatrix.multiplyTransposed(variant, m, rows[g], rows: count, n: d, m: n)
            var out = SymmetricMatrix.multiply(variant, mx, rows[g], rows: count, n: n, m: d)
            for i in 0..<(count * d) { out[i] += lambda * m[i] }
            return out
        }
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
        try system(Inputs(gram: m.quantized, crossTarget: [], floatEnergy: 0, sampleRows: m.sampleRows), geometry: geometry,
                   dampingFraction: dampingFraction, variant: variant)
    }

    /// Damps each group's H until it and its inverse factor are positive definite (dense route);
    /// with rows kept, λI + X_qᵀX_q is positive definite for any λ > 0 and only its n×n parts are formed.
    public static func system(_ m: Inputs, geometry: Geometry, dampingFraction: Double = dampingFraction,
                              variant: KernelVariant = .fast) throws(Failure) -> System {
        let d = geometry.columns
        var result = System(hessian: [], inverseFactor: [], damping: [], warnings: [])
        if m.sampleRows < d {
            result.warnings.append("\(m.sampleRows) calibration rows for \(d) input columns: X_qᵀX_q is singular, so the damping (λ = \(formatted(dampingFraction)) × mean diagonal) keeps the unseen directions at the float weights; more calibration inputs fit this layer better")
        }
        for g in 0..<geometry.groups {
            if m.keepsRows {
                let x = m.rows[g], n = x.count / max(d, 1)
                guard x.allSatisfy(\.isFinite) else { throw .degenerate("the inputs of group \(g) are not finite") }
                let meanDiagonal = x.reduce(0.0) { $0 + $1 * $1 } / Double(max(d, 1))
                guard meanDiagonal > 0 else { throw .degenerate("the layer's calibration inputs are all zero (group \(g))") }
                let lambda = dampingFraction * meanDiagonal
                var m0 = SymmetricMatrix.multiplyTransposed(variant, x, x, rows: n, n: d, m: n)
                for i in 0..<n { m0[i * n + i] += lambda }
                guard let m0inv = SymmetricMatrix.inverse(variant, m0, n: n) else {
                    throw .degenerate("group \(g): λI + X_qX_qᵀ is not positive definite")
                }
                result.rows.append(x)
                result.gains.append(gains(x, n: n, d: d, lambda: lambda))
                result.rowInverse.append(m0inv)
                result.damping.append(lambda)
                continue
            }
            let h = m.gram[g]
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

    /// g_c = (λI + Σ_{c' > c} x_{c'}x_{c'}ᵀ)⁻¹·x_c for every column c (rows of a d × n matrix),
    /// from the last column back: the inverse starts at I/λ and takes one Sherman–Morrison
    /// update per column (adding a term, so the denominators are >= 1).
    static func gains(_ x: [Double], n: Int, d: Int, lambda: Double) -> [Double] {
        var inv = [Double](repeating: 0, count: n * n)
        for i in 0..<n { inv[i * n + i] = 1 / lambda }
        var out = [Double](repeating: 0, count: d * n)
        var col = [Double](repeating: 0, count: n), gc = col
        for c in stride(from: d - 1, through: 0, by: -1) {
            for i in 0..<n { col[i] = x[i * d + c] }
            var denominator = 1.0
            for i in 0..<n {
                var s = 0.0
                for j in 0..<n { s += inv[i * n + j] * col[j] }
                gc[i] = s
                denominator += s * col[i]
            }
            for i in 0..<n { out[c * n + i] = gc[i] }
            for i in 0..<n {
                let a = gc[i] / denominator
                if a == 0 { continue }
                for j in 0..<n { inv[i * n + j] -= a * gc[j] }
            }
        }
        return out
    }

    /// w' = H⁻¹·(C + λI)·w for every row (flat tensor order).
    public static func target(weights: [Float], moments: Moments, system: System, geometry: Geometry,
                              variant: KernelVariant = .fast) -> [Float] {
        target(weights: weights, inputs: Inputs(moments: moments, weights: weights, geometry: geometry, variant: variant),
               system: system, geometry: geometry, variant: variant)
    }

    /// w' = H⁻¹·(X_qᵀX_f·w + λw) for every row (flat tensor order): through H⁻¹ = UᵀU (the
    /// reference forms H⁻¹ itself), or, with rows kept, H⁻¹v = (v − X_qᵀ(λI + X_qX_qᵀ)⁻¹X_q·v)/λ.
    public static func target(weights: [Float], inputs: Inputs, system: System, geometry: Geometry,
                              variant: KernelVariant = .fast) -> [Float] {
        let d = geometry.columns, rg = geometry.rowsPerGroup
        var out = weights
        for g in 0..<geometry.groups {
            let w = matrix(weights, geometry, group: g)
            let lambda = system.damping[g]
            var v = inputs.crossTarget[g]
            for i in 0..<(rg * d) { v[i] += lambda * w[i] }
            let t: [Double]
            if system.keepsRows {
                let x = system.rows[g], n = x.count / max(d, 1)
                let p = SymmetricMatrix.multiplyTransposed(variant, v, x, rows: rg, n: d, m: n)
                let q = SymmetricMatrix.multiply(variant, p, system.rowInverse[g], rows: rg, n: n, m: n)
                var r = SymmetricMatrix.multiply(variant, q, x, rows: rg, n: n, m: d)
                for i in 0..<(rg * d) { r[i] = (v[i] - r[i]) / lambda }
                t = r
            } else if variant == .fast {
                // Rows of V·H⁻¹ = (V·Uᵀ)·U.
                let u = system.inverseFactor[g]
                t = SymmetricMatrix.multiply(variant, SymmetricMatrix.multiplyTransposed(variant, v, u, rows: rg, n: d, m: d), u, rows: rg, n: d, m: d)
            } else {
                guard let inv = SymmetricMatrix.inverse(variant, system.hessian[g], n: d) else { continue }
                t = SymmetricMatrix.multiply(variant, v, inv, rows: rg, n: d, m: d)
            }
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
    /// `threads`: output channels are worked on by up to that many threads (each channel's signs
    /// depend only on its own row; sums over channels are taken in channel order afterwards), so
    /// the result is the same for every thread count.
    public static func fit(start: PackedTensor, target: [Float], system: System, geometry: Geometry,
                           maxRounds: Int = maxRounds, variant: KernelVariant = .fast, threads: Int = 1) throws(Failure) -> Result {
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
        var bestObjective = objective(state, target: target, system: system, geometry: geometry, variant: variant, threads: threads)
        let before = bestObjective
        var rounds = 0
        var warnings: [String] = []
        for _ in 0..<maxRounds {
            var next = state
            next.patterns = signs(next, target: target, system: system, geometry: geometry, variant: variant, threads: threads)
            let singular = refitScales(&next, target: target, system: system, geometry: geometry, rowGroup: rowGroup, variant: variant,
                                       threads: threads)
            if start.halfScales {
                // Stored as float16: the next signs and the objective see the scales as stored.
                next.scales = next.scales.map { $0.map { Float(float16Bits: $0.float16Bits) } }
            }
            let value = objective(next, target: target, system: system, geometry: geometry, variant: variant, threads: threads)
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
        relativeOutputError(fitted: fitted, inputs: Inputs(moments: moments, weights: weights, geometry: geometry), geometry: geometry)
    }

    /// The same from a layer's `Inputs`: (Σ‖X_f·w‖² − 2Σ qᵀX_qᵀX_f·w + Σ qᵀX_qᵀX_q·q) / Σ‖X_f·w‖².
    public static func relativeOutputError(fitted: [Float], inputs: Inputs, geometry: Geometry, variant: KernelVariant = .fast) -> Double {
        let d = geometry.columns, rg = geometry.rowsPerGroup
        let den = inputs.floatEnergy
        var num = den
        for g in 0..<geometry.groups {
            let q = matrix(fitted, geometry, group: g)
            let cross = inputs.crossTarget[g]
            for i in 0..<(rg * d) { num -= 2 * q[i] * cross[i] }
            if inputs.keepsRows {
                let x = inputs.rows[g], n = x.count / max(d, 1)
                let xq = SymmetricMatrix.multiplyTransposed(variant, q, x, rows: rg, n: d, m: n)
                num += xq.reduce(0) { $0 + $1 * $1 }
            } else {
                let hq = SymmetricMatrix.multiply(variant, q, inputs.gram[g], rows: rg, n: d, m: d)
                for i in 0..<(rg * d) { num += hq[i] * q[i] }
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

        /// `value`'s result for every scale group, width w and pattern, at
        /// group·(2^(K+1) − 2) + 2^w − 2 + pattern (the same Float sums, done once).
        func valueTable() -> [Float] {
            let K = scales.count, stride = (2 << K) - 2, groups = scales.first?.count ?? 0
            var table = [Float](repeating: 0, count: groups * stride)
            for g in 0..<groups {
                for w in 1...K {
                    for pattern in 0..<(1 << w) {
                        var sum: Float = 0
                        for k in 0..<w {
                            let term = (pattern >> k) & 1 == 1 ? scales[k][g] : -scales[k][g]
                            sum = k == 0 ? term : sum + term
                        }
                        table[g * stride + (1 << w) - 2 + pattern] = sum
                    }
                }
            }
            return table
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

    /// GPTQ over the columns with the current scales: new sign patterns. Rows (output channels)
    /// are independent, so each group's rows are cut into `threads` ranges worked on at once,
    /// each with its own codebook cache.
    static func signs(_ codes: Codes, target: [Float], system: System, geometry: Geometry, variant: KernelVariant, threads: Int = 1) -> [UInt8] {
        let rg = geometry.rowsPerGroup
        var patterns = codes.patterns
        let parts = max(1, min(threads, rg / 16))
        let books = (0..<parts).map { _ in Codebooks(codes) }
        patterns.withUnsafeMutableBufferPointer { out in
            let out = UncheckedSendable(out.baseAddress!)
            for g in 0..<geometry.groups {
                Parallel.forEach(parts, threads: parts) { part in
                    let rows = (rg * part / parts)..<(rg * (part + 1) / parts)
                    if system.keepsRows {
                        rowSigns(codes, group: g, rows: rows, target: target, system: system, geometry: geometry, books: books[part],
                                 into: out.value, variant: variant)
                    } else {
                        denseSigns(codes, group: g, rows: rows, target: target, system: system, geometry: geometry, books: books[part],
                                   into: out.value, variant: variant)
                    }
                }
            }
        }
        return patterns
    }

    /// GPTQ through U (the upper Cholesky factor of H⁻¹) for rows `rows` of group g.
    static func denseSigns(_ codes: Codes, group g: Int, rows: Range<Int>, target: [Float], system: System, geometry: Geometry,
                           books: Codebooks, into patterns: UnsafeMutablePointer<UInt8>, variant: KernelVariant) {
        let d = geometry.columns, rg = geometry.rowsPerGroup, nr = rows.count
        guard nr > 0 else { return }
        var w = matrix(target, geometry, group: g, rows: rows)
        let u = system.inverseFactor[g]
        let block = variant == .fast ? blockSize : d
        var b0 = 0
        while b0 < d {
            let b1 = min(d, b0 + block), width = b1 - b0
            var err = [Double](repeating: 0, count: nr * width)
            for c in b0..<b1 {
                let ucc = u[c * d + c]
                // The reference updates every later column at once; the fast one only those of the block.
                let end = variant == .fast ? b1 : d
                for r in 0..<nr {
                    let flat = geometry.flat(g * rg + rows.lowerBound + r, c)
                    let m = Int(codes.mask[flat])
                    let x = w[r * d + c]
                    let (q, pattern) = books.nearest(Float(x), group: codes.groupOf[flat], width: m)
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
                let delta = SymmetricMatrix.multiply(.fast, err, ub, rows: nr, n: width, m: d - b1)
                for r in 0..<nr { for j in b1..<d { w[r * d + j] -= delta[r * (d - b1) + (j - b1)] } }
            }
            b0 = b1
        }
    }

    /// Codebooks per scale group and width, built on first use, in one flat table (scale group
    /// g's book of width w at g·(2^(K+1) − 2) + 2^w − 2): looked up once per entry, so no
    /// hashing or array copies there.
    final class Codebooks {
        let scales: [[Float]]
        let stride: Int
        var values: [Float]
        var patterns: [UInt8]
        var built: [Bool]
        init(_ codes: Codes) {
            scales = codes.scales
            let K = scales.count, groups = scales.first?.count ?? 0
            stride = (2 << K) - 2
            values = [Float](repeating: 0, count: groups * stride)
            patterns = [UInt8](repeating: 0, count: groups * stride)
            built = [Bool](repeating: false, count: groups * (K + 1))
        }
        /// The nearest value of scale group `group`'s book of `width` to `x`, and its pattern
        /// (ties: the lower value; `AlternatingRefit.nearest`'s rule).
        func nearest(_ x: Float, group: Int, width: Int) -> (Double, Int) {
            let start = group * stride + (1 << width) - 2
            if !built[group * (scales.count + 1) + width] {
                for (i, entry) in AlternatingRefit.codebook(scales: scales.map { $0[group] }, width: width).enumerated() {
                    values[start + i] = entry.value
                    patterns[start + i] = UInt8(entry.pattern)
                }
                built[group * (scales.count + 1) + width] = true
            }
            let i = start + values.withUnsafeBufferPointer { AlternatingRefit.nearestIndex(x, in: $0.baseAddress! + start, count: 1 << width) }
            return (Double(values[i]), Int(patterns[i]))
        }
    }

    /// GPTQ with the rows kept: column c's value is w'_c + x_cᵀ·s, where s = Σ_{c' < c} δ_{c'}g_{c'}
    /// (δ: the rounding error of each earlier column; see the type's comment). The fast variant
    /// takes columns in blocks: the earlier blocks' part of x_cᵀ·s for a whole block in one
    /// product, the block's own part through its g·x table, and s updated once per block.
    static func rowSigns(_ codes: Codes, group g: Int, rows: Range<Int>, target: [Float], system: System, geometry: Geometry, books: Codebooks,
                         into patterns: UnsafeMutablePointer<UInt8>, variant: KernelVariant) {
        let d = geometry.columns, rg = rows.count
        guard rg > 0 else { return }
        let x = system.rows[g], gain = system.gains[g], n = x.count / max(d, 1)
        let w = matrix(target, geometry, group: g, rows: rows)
        var s = [Double](repeating: 0, count: rg * n)
        let block = variant == .fast ? 32 : 1
        var b0 = 0
        while b0 < d {
            let b1 = min(d, b0 + block), width = b1 - b0
            var xb = [Double](repeating: 0, count: n * width)
            for i in 0..<n { for j in 0..<width { xb[i * width + j] = x[i * d + b0 + j] } }
            let gb = Array(gain[(b0 * n)..<(b1 * n)])
            let base = SymmetricMatrix.multiply(variant, s, xb, rows: rg, n: n, m: width)
            let table = SymmetricMatrix.multiply(variant, gb, xb, rows: width, n: n, m: width)
            var delta = [Double](repeating: 0, count: rg * width)
            // Four rows at a time: each row's sum is its own chain of adds in the same order as
            // one row alone (the same bits), four chains in flight instead of one.
            delta.withUnsafeMutableBufferPointer { delta in
            table.withUnsafeBufferPointer { table in
            base.withUnsafeBufferPointer { base in
            w.withUnsafeBufferPointer { w in
                var r = 0
                while r < rg {
                    let lanes = min(4, rg - r)
                    for j in 0..<width {
                        var v = SIMD4<Double>.zero
                        for l in 0..<lanes { v[l] = w[(r + l) * d + b0 + j] + base[(r + l) * width + j] }
                        if lanes == 4 {
                            for i in 0..<j {
                                let row = SIMD4(delta[r * width + i], delta[(r + 1) * width + i], delta[(r + 2) * width + i], delta[(r + 3) * width + i])
                                v += row * SIMD4(repeating: table[i * width + j])
                            }
                        } else {
                            for l in 0..<lanes { for i in 0..<j { v[l] += delta[(r + l) * width + i] * table[i * width + j] } }
                        }
                        for l in 0..<lanes {
                            let flat = geometry.flat(g * geometry.rowsPerGroup + rows.lowerBound + r + l, b0 + j)
                            let (q, pattern) = books.nearest(Float(v[l]), group: codes.groupOf[flat], width: Int(codes.mask[flat]))
                            patterns[flat] = UInt8(pattern)
                            delta[(r + l) * width + j] = v[l] - q
                        }
                    }
                    r += lanes
                }
            }
            }
            }
            }
            let update = SymmetricMatrix.multiply(variant, delta, gb, rows: rg, n: width, m: n)
            for i in 0..<(rg * n) { s[i] += update[i] }
            b0 = b1
        }
    }

    /// Least-squares level scales on (q − w')ᵀH(q − w') per scale group; returns how many
    /// groups kept their scales because their system was singular. A negative solution flips
    /// that level's signs in the group so every stored scale stays >= 0.
    static func refitScales(_ codes: inout Codes, target: [Float], system: System, geometry: Geometry, rowGroup: [Int],
                            variant: KernelVariant, threads: Int = 1) -> Int {
        let d = geometry.columns, rg = geometry.rowsPerGroup, K = codes.scales.count
        let groups = codes.layout.groupCount
        var A = [[Double]](repeating: [Double](repeating: 0, count: K * K), count: groups)
        var rhs = [[Double]](repeating: [Double](repeating: 0, count: K), count: groups)
        let state = codes
        for g in 0..<geometry.groups {
            // Per chunk of rows, each row's bᵀHw' (K values) and bᵀHb (K×K), summed below in row order.
            inChunks(rg, threads: threads) { r0, count -> [Double] in
                let w = matrix(target, geometry, group: g, rows: r0..<(r0 + count))
                // Bᵀ for a chunk of rows: row r·K + k = level k's masked signs of row r; (H·B)ᵀ = Bᵀ·H.
                var bt = [Double](repeating: 0, count: count * K * d)
                for r in 0..<count {
                    for c in 0..<d {
                        let flat = geometry.flat(g * rg + r0 + r, c)
                        let bits = state.patterns[flat]
                        for k in 0..<Int(state.mask[flat]) { bt[(r * K + k) * d + c] = (bits >> UInt8(k)) & 1 == 1 ? 1 : -1 }
                    }
                }
                let hbt = system.times(g, bt, count: count * K, d: d, variant: variant)
                var terms = [Double](repeating: 0, count: count * K * (K + 1))
                for r in 0..<count {
                    for k in 0..<K {
                        let hk = (r * K + k) * d
                        var t = 0.0
                        for c in 0..<d { t += hbt[hk + c] * w[r * d + c] }
                        terms[(r * K + k) * (K + 1)] = t
                        for l in 0..<K {
                            let bl = (r * K + l) * d
                            var s = 0.0
                            for c in 0..<d { s += bt[bl + c] * hbt[hk + c] }
                            terms[(r * K + k) * (K + 1) + 1 + l] = s
                        }
                    }
                }
                return terms
            } reduce: { r0, count, terms in
                for r in 0..<count {
                    let sg = rowGroup[g * rg + r0 + r]
                    for k in 0..<K {
                        rhs[sg][k] += terms[(r * K + k) * (K + 1)]
                        for l in 0..<K { A[sg][l * K + k] += terms[(r * K + k) * (K + 1) + 1 + l] }
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
    static func objective(_ codes: Codes, target: [Float], system: System, geometry: Geometry, variant: KernelVariant,
                          threads: Int = 1) -> Double {
        let d = geometry.columns, rg = geometry.rowsPerGroup
        var total = 0.0
        let values = codes.valueTable(), stride = (2 << codes.scales.count) - 2
        for g in 0..<geometry.groups {
            // Each chunk's products hd·delta, summed below in order (one running sum, as one thread would).
            inChunks(rg, threads: threads) { r0, count -> [Double] in
                var delta = [Double](repeating: 0, count: count * d)
                for r in 0..<count {
                    for c in 0..<d {
                        let flat = geometry.flat(g * rg + r0 + r, c)
                        let width = Int(codes.mask[flat])
                        // codes.value(flat), looked up.
                        let value = width == 0 ? 0 : values[codes.groupOf[flat] * stride + (1 << width) - 2 + Int(codes.patterns[flat])]
                        delta[r * d + c] = Double(value) - Double(target[flat])
                    }
                }
                var hd = system.times(g, delta, count: count, d: d, variant: variant)
                for i in 0..<(count * d) { hd[i] *= delta[i] }
                return hd
            } reduce: { _, count, products in
                for i in 0..<(count * d) { total += products[i] }
            }
        }
        return total
    }

    /// Cuts `rows` into chunks of `rowChunk` rows; runs `work` on up to `threads` chunks at once,
    /// then `reduce` on their results one at a time in chunk order (so sums come out as with one
    /// thread, and at most `threads` results are held).
    static func inChunks(_ rows: Int, threads: Int, _ work: (_ start: Int, _ count: Int) -> [Double],
                         reduce: (_ start: Int, _ count: Int, [Double]) -> Void) {
        let starts = Array(stride(from: 0, to: rows, by: rowChunk))
        let wave = max(1, threads)
        for w0 in stride(from: 0, to: starts.count, by: wave) {
            let w1 = min(starts.count, w0 + wave)
            var results = [[Double]](repeating: [], count: w1 - w0)
            results.withUnsafeMutableBufferPointer { out in
                let out = UncheckedSendable(out.baseAddress!)
                Parallel.forEach(w1 - w0, threads: wave) { i in
                    let start = starts[w0 + i]
                    (out.value + i).pointee = work(start, min(rowChunk, rows - start))
                }
            }
            for i in 0..<(w1 - w0) { reduce(starts[w0 + i], min(rowChunk, rows - starts[w0 + i]), results[i]) }
        }
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
        matrix(flat, geometry, group: g, rows: 0..<geometry.rowsPerGroup)
    }

    /// Rows `rows` of group g as a rows.count × columns Double matrix.
    static func matrix(_ flat: [Float], _ geometry: Geometry, group g: Int, rows: Range<Int>) -> [Double] {
        let d = geometry.columns, base = g * geometry.rowsPerGroup + rows.lowerBound
        var m = [Double](repeating: 0, count: rows.count * d)
        for r in 0..<rows.count { for c in 0..<d { m[r * d + c] = Double(flat[geometry.flat(base + r, c)]) } }
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
