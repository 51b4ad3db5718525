import MBBinarize
import MBCore
import MBKernels
import Testing

/// `fit: output` (OutputFit): the blocked BLAS version against its plain twin, and the properties
/// the conversion relies on.
@Suite(.serialized) struct OutputFitTests {
    /// Relative tolerance between the fast and reference fits' objectives: the two add the same
    /// terms in different orders (blocked dgemm against plain loops), nothing else differs.
    static let objectiveTolerance = 1e-9
    /// Fraction of entries allowed to take another value: a column's error is the same up to
    /// rounding, so only an entry sitting within rounding of a decision boundary may flip.
    static let flippedEntries = 0.002

    /// A small layer: float inputs X_f (rows × d) and the binarized upstream's X_q = X_f + noise.
    struct Layer {
        var geometry: OutputFit.Geometry
        var weights: [Float]
        var moments: OutputFit.Moments
        var shape: [Int]
        /// The rows behind the moments, per group (rows × columns): X_q and X_f.
        var quantizedRows: [[Double]] = []
        var floatRows: [[Double]] = []

        /// The layer's `Inputs` as the conversion builds them: from Float rows, in blocks of
        /// `block` rows (single-precision block products summed in Double).
        func accumulated(block: Int = 37, singlePrecisionColumns: Int = 2048, variant: KernelVariant = .fast) -> OutputFit.Inputs {
            let n = moments.sampleRows, d = geometry.columns
            var acc = OutputFit.Accumulator(weights: weights, geometry: geometry, expectedRows: n, singlePrecisionColumns: singlePrecisionColumns, variant: variant)
            for g in 0..<geometry.groups {
                let xq = quantizedRows[g].map(Float.init), xf = floatRows[g].map(Float.init)
                for start in stride(from: 0, to: n, by: block) {
                    xq.withUnsafeBufferPointer { q in
                        xf.withUnsafeBufferPointer { f in
                            acc.add(group: g, quantized: q.baseAddress! + start * d, float: f.baseAddress! + start * d, count: min(block, n - start))
                        }
                    }
                }
            }
            return acc.finish()
        }

        /// The same rows kept (or not) whatever their count: the other route on the same data.
        func inputs(keepingRows: Bool) -> OutputFit.Inputs {
            var full = OutputFit.Inputs(moments: moments, weights: weights, geometry: geometry, variant: .reference)
            if keepingRows {
                full.rows = quantizedRows
                full.gram = []
            }
            return full
        }
    }

    static func layer(rows n: Int, outputs o: Int, columns d: Int, groups: Int = 1, noise: Double, seed: UInt64) -> Layer {
        var rng = SeededGenerator(seed: seed)
        let geometry = OutputFit.Geometry(rows: o, columns: d, groups: groups, rowStride: d, columnStride: 1)
        var moments = OutputFit.Moments(groups: groups, columns: d)
        var quantizedRows: [[Double]] = [], floatRows: [[Double]] = []
        for g in 0..<groups {
            // Correlated columns (a running sum), as neighbouring pixels are.
            var xf = [Double](repeating: 0, count: n * d), xq = xf
            for r in 0..<n {
                var run = 0.0
                for c in 0..<d {
                    run = 0.7 * run + rng.nextNormal()
                    // Float values, as activations are: the Accumulator's rows are then exact.
                    xf[r * d + c] = Double(Float(run + 0.1 * Double(g)))
                    xq[r * d + c] = Double(Float(run + noise * rng.nextNormal()))
                }
            }
            quantizedRows.append(xq)
            floatRows.append(xf)
            for (a, b, into) in [(xq, xq, 0), (xq, xf, 1), (xf, xf, 2)] {
                var m = [Double](repeating: 0, count: d * d)
                SymmetricMatrix.accumulateTransposeProduct(.reference, a: a, b: b, rows: n, n: d, m: d, into: &m)
                switch into {
                case 0: moments.quantized[g] = m
                case 1: moments.cross[g] = m
                default: moments.float[g] = m
                }
            }
        }
        moments.sampleRows = n
        let weights = (0..<(o * d)).map { _ in Float(rng.nextNormal() * 0.1) }
        return Layer(geometry: geometry, weights: weights, moments: moments, shape: [o, d], quantizedRows: quantizedRows, floatRows: floatRows)
    }

    static func start(_ layer: Layer, _ target: [Float], _ config: BinarizationConfig) throws -> PackedTensor {
        try Binarizer.binarize(FloatTensor(name: "w", shape: layer.shape, values: target), config)
    }

    // d = 150 > blockSize, so the fast version's trailing BLAS update runs.
    @Test(arguments: [(tenths([7, 2, 1]), ScaleMode.tensor, 1), (try! BitDistribution.homogeneous(2), .channel(axis: 0), 1),
                      (try! BitDistribution.homogeneous(3), .channel(axis: 0), 2), (tenths([5, 5, 0]), .tensor, 2)])
    func fastMatchesReference(mix: BitDistribution, scale: ScaleMode, groups: Int) throws {
        let layer = Self.layer(rows: 400, outputs: 8, columns: 150, groups: groups, noise: 0.3, seed: 21)
        let fastSystem = try OutputFit.system(layer.moments, geometry: layer.geometry, variant: .fast)
        let refSystem = try OutputFit.system(layer.moments, geometry: layer.geometry, variant: .reference)
        #expect(fastSystem.damping == refSystem.damping)
        for g in 0..<groups {
            let worst = zip(fastSystem.inverseFactor[g], refSystem.inverseFactor[g]).map { abs($0 - $1) }.max()!
            let size = refSystem.inverseFactor[g].map(abs).max()!
            #expect(worst <= 1e-9 * size, "group \(g): inverse factors differ by \(worst) (largest entry \(size))")
        }
        let fastTarget = OutputFit.target(weights: layer.weights, moments: layer.moments, system: fastSystem, geometry: layer.geometry, variant: .fast)
        let refTarget = OutputFit.target(weights: layer.weights, moments: layer.moments, system: refSystem, geometry: layer.geometry, variant: .reference)
        let targetDiff = zip(fastTarget, refTarget).map { abs(Double($0) - Double($1)) }.max()!
        #expect(targetDiff <= 1e-5, "targets differ by \(targetDiff)")

        // Same start for both, so only the fit itself is compared.
        let start = try Self.start(layer, refTarget, BinarizationConfig(distribution: mix, scale: scale))
        let fast = try OutputFit.fit(start: start, target: refTarget, system: refSystem, geometry: layer.geometry, variant: .fast)
        let ref = try OutputFit.fit(start: start, target: refTarget, system: refSystem, geometry: layer.geometry, variant: .reference)
        #expect(fast.packed.mask == start.mask && ref.packed.mask == start.mask, "the mask moved")
        #expect(throws: Never.self) { try fast.packed.validate() }
        let rel = abs(fast.objectiveAfter - ref.objectiveAfter) / ref.objectiveAfter
        let a = fast.packed.dequantized(), b = ref.packed.dequantized()
        let flipped = zip(a, b).filter { abs($0 - $1) > 1e-4 * max(abs($0), abs($1), 1e-3) }.count
        #expect(rel <= Self.objectiveTolerance || Double(flipped) <= Self.flippedEntries * Double(a.count),
                "\(mix) \(scale) groups \(groups): objectives \(fast.objectiveAfter) vs \(ref.objectiveAfter), \(flipped) of \(a.count) entries differ")
        #expect(fast.objectiveAfter <= fast.objectiveBefore && ref.objectiveAfter <= ref.objectiveBefore)
        print("output fit \(mix) \(scale) groups \(groups): objective \(ref.objectiveBefore) -> \(ref.objectiveAfter) (fast \(fast.objectiveAfter), \(flipped) entries differ), rounds \(ref.rounds)/\(fast.rounds)")
    }

    /// On the calibration rows the layer's output error falls well below the weight-space
    /// binarization's (upstream noise included), and scales stay non-negative.
    @Test func lowersTheOutputError() throws {
        let layer = Self.layer(rows: 600, outputs: 16, columns: 48, noise: 0.4, seed: 5)
        let system = try OutputFit.system(layer.moments, geometry: layer.geometry)
        let target = OutputFit.target(weights: layer.weights, moments: layer.moments, system: system, geometry: layer.geometry)
        let config = BinarizationConfig(distribution: try .homogeneous(2), scale: .channel(axis: 0))
        let weightFit = try Binarizer.binarize(FloatTensor(name: "w", shape: layer.shape, values: layer.weights), config)
        let start = try Self.start(layer, target, config)
        let fit = try OutputFit.fit(start: start, target: target, system: system, geometry: layer.geometry)
        let before = OutputFit.relativeOutputError(weights: layer.weights, fitted: weightFit.dequantized(), moments: layer.moments, geometry: layer.geometry)
        let after = OutputFit.relativeOutputError(weights: layer.weights, fitted: fit.packed.dequantized(), moments: layer.moments, geometry: layer.geometry)
        #expect(after < 0.75 * before, "relative output error \(before) -> \(after)")
        #expect(fit.packed.levels.allSatisfy { $0.scales.allSatisfy { $0 >= 0 && $0.isFinite } })
        print("output fit 2-bit channel: relative output error \(before) (weight fit) -> \(after) (output fit)")
    }

    /// Without upstream error (X_q = X_f) the target is the float weight itself.
    @Test func targetIsTheWeightWithoutUpstreamError() throws {
        let layer = Self.layer(rows: 300, outputs: 4, columns: 20, noise: 0, seed: 9)
        let system = try OutputFit.system(layer.moments, geometry: layer.geometry)
        let target = OutputFit.target(weights: layer.weights, moments: layer.moments, system: system, geometry: layer.geometry)
        let worst = zip(target, layer.weights).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-5, "w' differs from w by \(worst)")
    }

    /// Fewer rows than columns (a layer after global pooling): damped, finite, never NaN; all-zero
    /// inputs are refused.
    @Test func fewRowsAreDampedAndZeroInputsRefused() throws {
        let layer = Self.layer(rows: 10, outputs: 6, columns: 64, noise: 0.2, seed: 3)
        let system = try OutputFit.system(layer.moments, geometry: layer.geometry)
        let target = OutputFit.target(weights: layer.weights, moments: layer.moments, system: system, geometry: layer.geometry)
        #expect(target.allSatisfy { $0.isFinite })
        let fit = try OutputFit.fit(start: try Self.start(layer, target, BinarizationConfig(distribution: try .homogeneous(2))),
                                    target: target, system: system, geometry: layer.geometry)
        #expect(fit.packed.dequantized().allSatisfy { $0.isFinite })
        var zero = layer.moments
        zero.quantized = zero.quantized.map { $0.map { _ in 0 } }
        #expect(throws: OutputFit.Failure.self) { try OutputFit.system(zero, geometry: layer.geometry) }
        var nan = layer.moments
        nan.quantized[0][0] = .nan
        #expect(throws: OutputFit.Failure.self) { try OutputFit.system(nan, geometry: layer.geometry) }
    }
    /// Relative tolerance of the accumulated inputs against the Double moments: X_qᵀX_q of wide
    /// layers is summed in single precision per block (about 1e-7 per product, sums of up to
    /// `block` terms); everything else is Double.
    static let accumulationTolerance = 1e-5

    /// The Accumulator (Float blocks, what the conversion runs) keeps what the full Double moments
    /// give: X_qᵀX_q or the rows themselves, X_qᵀX_f·w and Σ‖X_f·w‖².
    @Test(arguments: [(400, 150, 1), (40, 150, 1), (300, 30, 2), (12, 30, 2)])
    func accumulatorMatchesTheMoments(rows: Int, columns: Int, groups: Int) throws {
        let layer = Self.layer(rows: rows, outputs: 8, columns: columns, groups: groups, noise: 0.3, seed: 31)
        let reference = OutputFit.Inputs(moments: layer.moments, weights: layer.weights, geometry: layer.geometry, variant: .reference)
        for (variant, single) in [(KernelVariant.fast, 0), (.fast, 2048), (.reference, 2048)] {
            let kept = layer.accumulated(singlePrecisionColumns: single, variant: variant)
            #expect(kept.sampleRows == rows)
            #expect(kept.keepsRows == (rows < columns), "\(rows) rows, \(columns) columns")
            func close(_ a: [Double], _ b: [Double], _ what: String) {
                let scale = b.map(abs).max() ?? 0
                let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
                #expect(a.count == b.count && worst <= Self.accumulationTolerance * scale, "\(variant) single from \(single) \(what): differs by \(worst) (largest entry \(scale))")
            }
            for g in 0..<groups {
                if kept.keepsRows { close(kept.rows[g], layer.quantizedRows[g], "rows of group \(g)") } else { close(kept.gram[g], reference.gram[g], "X_qᵀX_q of group \(g)") }
                close(kept.crossTarget[g], reference.crossTarget[g], "X_qᵀX_f·w of group \(g)")
            }
            #expect(abs(kept.floatEnergy - reference.floatEnergy) <= Self.accumulationTolerance * reference.floatEnergy)
        }
    }

    /// With fewer rows than columns the fit keeps X_q instead of X_qᵀX_q (Woodbury target, GPTQ
    /// through g_c): the same system as the dense route up to rounding, so the same target, signs,
    /// scales and output error.
    @Test(arguments: [(try! BitDistribution.homogeneous(2), ScaleMode.channel(axis: 0), 1), (tenths([7, 2, 1]), .tensor, 2),
                      (try! BitDistribution.homogeneous(3), .channel(axis: 0), 1)])
    func keptRowsMatchTheDenseRoute(mix: BitDistribution, scale: ScaleMode, groups: Int) throws {
        let layer = Self.layer(rows: 24, outputs: 8, columns: 150, groups: groups, noise: 0.3, seed: 41)
        let dense = layer.inputs(keepingRows: false), kept = layer.inputs(keepingRows: true)
        for variant in [KernelVariant.fast, .reference] {
            let denseSystem = try OutputFit.system(dense, geometry: layer.geometry, variant: .reference)
            let rowSystem = try OutputFit.system(kept, geometry: layer.geometry, variant: variant)
            #expect(zip(denseSystem.damping, rowSystem.damping).allSatisfy { abs($0 - $1) <= 1e-12 * $0 }, "λ \(denseSystem.damping) vs \(rowSystem.damping)")
            let denseTarget = OutputFit.target(weights: layer.weights, inputs: dense, system: denseSystem, geometry: layer.geometry, variant: .reference)
            let rowTarget = OutputFit.target(weights: layer.weights, inputs: kept, system: rowSystem, geometry: layer.geometry, variant: variant)
            let largest = denseTarget.map { abs(Double($0)) }.max()!
            let targetDiff = zip(denseTarget, rowTarget).map { abs(Double($0) - Double($1)) }.max()!
            #expect(targetDiff <= 1e-5 * largest, "\(variant): targets differ by \(targetDiff) (largest \(largest))")
            let start = try Self.start(layer, denseTarget, BinarizationConfig(distribution: mix, scale: scale))
            let a = try OutputFit.fit(start: start, target: denseTarget, system: denseSystem, geometry: layer.geometry, variant: .reference)
            let b = try OutputFit.fit(start: start, target: denseTarget, system: rowSystem, geometry: layer.geometry, variant: variant)
            #expect(abs(a.objectiveBefore - b.objectiveBefore) <= 1e-9 * a.objectiveBefore)
            let qa = a.packed.dequantized(), qb = b.packed.dequantized()
            let flipped = zip(qa, qb).filter { abs($0 - $1) > 1e-4 * max(abs($0), abs($1), 1e-3) }.count
            let rel = abs(a.objectiveAfter - b.objectiveAfter) / a.objectiveAfter
            #expect(rel <= Self.objectiveTolerance || Double(flipped) <= Self.flippedEntries * Double(qa.count),
                    "\(variant) \(mix) \(scale): objectives \(a.objectiveAfter) vs \(b.objectiveAfter), \(flipped) of \(qa.count) entries differ")
            let ea = OutputFit.relativeOutputError(fitted: qa, inputs: dense, geometry: layer.geometry)
            let eb = OutputFit.relativeOutputError(fitted: qa, inputs: kept, geometry: layer.geometry)
            #expect(abs(ea - eb) <= 1e-9 * max(ea, 1e-12), "output error \(ea) (dense) vs \(eb) (rows)")
            print("output fit rows route \(variant) \(mix) \(scale): objective \(a.objectiveAfter) (dense) vs \(b.objectiveAfter) (rows), \(flipped) entries differ")
        }
    }

    /// The whole path the conversion runs (Float blocks, fast kernels, either route) against the
    /// plain reference on Double moments: targets within 1e-5 relative, output errors within 1e-6
    /// (below 2,048 columns everything is Double; only summation order differs).
    /// Output channels fitted on several threads give the one-thread result bit for bit, on
    /// both routes (second moments: 400 rows; rows kept: 40 rows for 150 columns).
    @Test(arguments: [400, 40])
    func threadsGiveTheSameFit(rows: Int) throws {
        let layer = Self.layer(rows: rows, outputs: 300, columns: 150, noise: 0.3, seed: 25)
        let inputs = layer.accumulated()
        let system = try OutputFit.system(inputs, geometry: layer.geometry)
        let target = OutputFit.target(weights: layer.weights, inputs: inputs, system: system, geometry: layer.geometry)
        let start = try Self.start(layer, target, BinarizationConfig(distribution: try .homogeneous(2), scale: .channel(axis: 0)))
        let one = try OutputFit.fit(start: start, target: target, system: system, geometry: layer.geometry)
        for threads in [2, 3] {
            let many = try OutputFit.fit(start: start, target: target, system: system, geometry: layer.geometry, threads: threads)
            #expect(many.packed == one.packed && many.objectiveAfter == one.objectiveAfter && many.rounds == one.rounds,
                    "\(rows) rows, \(threads) threads: objective \(many.objectiveAfter) against \(one.objectiveAfter)")
        }
    }

    /// Rows accumulated in two parts and merged: the same second moments and products up to the
    /// order of the sums (relative 1e-12), the same rows in order when they are kept.
    @Test(arguments: [400, 40])
    func mergedPartsMatchOneAccumulator(rows: Int) throws {
        let layer = Self.layer(rows: rows, outputs: 6, columns: 150, noise: 0.3, seed: 26)
        let whole = layer.accumulated(block: 50)
        let d = layer.geometry.columns
        let xq = layer.quantizedRows[0].map(Float.init), xf = layer.floatRows[0].map(Float.init)
        func part(_ range: Range<Int>) -> OutputFit.Accumulator {
            var acc = OutputFit.Accumulator(weights: layer.weights, geometry: layer.geometry, expectedRows: rows)
            for start in stride(from: range.lowerBound, to: range.upperBound, by: 50) {
                xq.withUnsafeBufferPointer { q in
                    xf.withUnsafeBufferPointer { f in
                        acc.add(group: 0, quantized: q.baseAddress! + start * d, float: f.baseAddress! + start * d, count: min(50, range.upperBound - start))
                    }
                }
            }
            return acc
        }
        var merged = part(0..<(rows / 2))
        merged.merge(part((rows / 2)..<rows))
        let inputs = merged.finish()
        #expect(inputs.sampleRows == whole.sampleRows && inputs.keepsRows == whole.keepsRows)
        func close(_ a: [Double], _ b: [Double], _ what: String) {
            let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0, size = b.map(abs).max() ?? 0
            #expect(a.count == b.count && worst <= 1e-12 * size, "\(rows) rows, \(what): differs by \(worst) (largest \(size))")
        }
        if whole.keepsRows { #expect(inputs.rows == whole.rows) } else { close(inputs.gram[0], whole.gram[0], "X_qᵀX_q") }
        close(inputs.crossTarget[0], whole.crossTarget[0], "X_qᵀX_f·w")
        #expect(abs(inputs.floatEnergy - whole.floatEnergy) <= 1e-12 * whole.floatEnergy)
    }

    @Test(arguments: [400, 40])
    func conversionPathMatchesThePlainReference(rows: Int) throws {
        let layer = Self.layer(rows: rows, outputs: 12, columns: 150, noise: 0.3, seed: 51)
        let config = BinarizationConfig(distribution: try .homogeneous(2), scale: .channel(axis: 0))
        let refSystem = try OutputFit.system(layer.moments, geometry: layer.geometry, variant: .reference)
        let refTarget = OutputFit.target(weights: layer.weights, moments: layer.moments, system: refSystem, geometry: layer.geometry, variant: .reference)
        let ref = try OutputFit.fit(start: try Self.start(layer, refTarget, config), target: refTarget, system: refSystem, geometry: layer.geometry, variant: .reference)
        let inputs = layer.accumulated()
        let system = try OutputFit.system(inputs, geometry: layer.geometry)
        let target = OutputFit.target(weights: layer.weights, inputs: inputs, system: system, geometry: layer.geometry)
        let fast = try OutputFit.fit(start: try Self.start(layer, target, config), target: target, system: system, geometry: layer.geometry)
        let largest = refTarget.map { abs(Double($0)) }.max()!
        let targetDiff = zip(refTarget, target).map { abs(Double($0) - Double($1)) }.max()!
        #expect(targetDiff <= 1e-5 * largest, "\(rows) rows: targets differ by \(targetDiff) (largest \(largest))")
        let refError = OutputFit.relativeOutputError(weights: layer.weights, fitted: ref.packed.dequantized(), moments: layer.moments, geometry: layer.geometry)
        let fastError = OutputFit.relativeOutputError(weights: layer.weights, fitted: fast.packed.dequantized(), moments: layer.moments, geometry: layer.geometry)
        #expect(abs(fastError - refError) <= 1e-6, "\(rows) rows: relative output error \(fastError) (conversion path) vs \(refError) (reference)")
        print("output fit conversion path, \(rows) rows: relative output error \(fastError) vs reference \(refError)")
    }
}
