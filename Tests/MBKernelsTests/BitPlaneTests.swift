import MBCore
import MBKernels
import XCTest

/// Bit-plane kernels against their plain twins. Integer parts (popcount sums) must match
/// exactly; float results within `BitPlaneTolerance`.
enum BitPlaneTolerance {
    /// Float sums of ±x over a row in a different order than the Double reference:
    /// |fast - reference| <= relative * (sum of |terms|), terms = K entries times levels.
    static let relative: Float = 1e-5
}

/// A random packed tensor made the way the converter does it would need MBBinarize; kernels
/// only need a valid mask, signs and scales, so tests draw them directly (seeded).
func randomSource(rows: Int, taps: Int, channels: Int, levels: Int, seed: UInt64, structured: Bool = false, rowUniform: Bool = false,
                  layout: BitPlaneMatrix.WeightKind = .conv, group: Int = 64) -> BitPlaneMatrix.Source {
    var rng = SeededGenerator(seed: seed)
    let n = rows * taps * channels
    var mask = [UInt8](repeating: 1, count: n)
    let groups = (channels + group - 1) / group
    let groupLevel = (0..<(rows * taps * groups)).map { _ in UInt8(1 + Int(rng.next() % UInt64(levels))) }
    for j in 0..<n { mask[j] = structured ? 0 : UInt8(1 + Int(rng.next() % UInt64(levels))) }
    var signs = [[UInt64]](repeating: [UInt64](repeating: 0, count: (n + 63) / 64), count: levels)
    for k in 0..<levels { for w in signs[k].indices { signs[k][w] = rng.next() } }
    let scales = (0..<levels).map { k in (0..<rows).map { _ in Float(rng.nextUnitDouble() + 0.1) / Float(k + 1) } }
    let (rowStride, tapStride, channelStride): (Int, Int, Int)
    switch layout {
    case .conv: (rowStride, tapStride, channelStride) = (channels * taps, 1, taps)
    case .matrix(let t): (rowStride, tapStride, channelStride) = t ? (channels, 0, 1) : (1, 0, rows)
    }
    if structured || rowUniform {
        for o in 0..<rows { for t in 0..<taps { for c in 0..<channels {
            mask[o * rowStride + t * tapStride + c * channelStride] = groupLevel[rowUniform ? o * taps * groups : (o * taps + t) * groups + c / group]
        } } }
    }
    // Signs beyond an entry's width are meaningless; clear them so comparisons are exact.
    for j in 0..<n { for k in Int(mask[j])..<levels { signs[k][j >> 6] &= ~(UInt64(1) << UInt64(j & 63)) } }
    return BitPlaneMatrix.Source(rows: rows, taps: taps, tapChannels: channels, rowStride: rowStride, tapStride: tapStride,
                                 channelStride: channelStride, mask: mask, signs: signs, scales: scales)
}

func randomActivations(count: Int, seed: UInt64) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    return (0..<count).map { _ in Float(rng.nextNormal()) }
}

final class BitPlaneGemvTests: XCTestCase {
    static let reductionLengths = [1, 63, 64, 65, 511, 512, 513]

    /// Every instruction set's GEMV against the reference, over reduction lengths around word
    /// boundaries, row counts around the 8-row block and the 4-group LUT runs (65), 1 to 3 levels, per-entry and structured masks.
    func testGemvMatchesReferenceOnEveryISA() {
        var seed: UInt64 = 100
        for k in Self.reductionLengths { for rows in [1, 7, 8, 9, 17, 33, 65] { for levels in [1, 2, 3] { for structured in [false, true] {
            seed += 1
            let m = BitPlaneMatrix(randomSource(rows: rows, taps: 1, channels: k, levels: levels, seed: seed, structured: structured,
                                                layout: .matrix(transposed: seed % 2 == 0)))
            let x = randomActivations(count: k, seed: seed + 7)
            var ref = [Float](repeating: 0, count: rows)
            m.gemvReference(x: x, bias: nil, y: &ref)
            let scale = x.map(abs).reduce(0, +) * Float(levels) * 2
            let refSums = m.levelSumsReference(x: x)
            var fast = [Float](repeating: .nan, count: rows)
            m.gemv(x: x, bias: nil, y: &fast, scratch: BitPlaneScratch())
            let what = "gemv rows=\(rows) k=\(k) levels=\(levels) structured=\(structured) seed=\(seed)"
            for o in 0..<rows {
                XCTAssertLessThanOrEqual(abs(fast[o] - ref[o]), BitPlaneTolerance.relative * scale, "\(what): row \(o) got \(fast[o]) expected \(ref[o])")
            }
            // Both AVX-512 kernels (lookup tables, masked adds); the others ignore `lut`.
            for isa in BitPlaneMatrix.availableISAs { for lut in [true, false] {
                let sums = m.levelSums(x: x, isa: isa, lut: lut, scratch: BitPlaneScratch())
                for i in sums.indices where m.rowOrder[i % (m.blocks * 8)] >= 0 {
                    XCTAssertLessThanOrEqual(abs(sums[i] - refSums[i]), BitPlaneTolerance.relative * scale,
                                             "\(what) isa=\(BitPlaneMatrix.isaName(isa)) lut=\(lut): level sum \(i) got \(sums[i]) expected \(refSums[i]) x=\(x)")
                }
            } }
        } } } }
    }
}

final class BitPlaneBinaryTests: XCTestCase {
    /// Activation planes for `units` units of `channels` channels from random values and a
    /// random mask (per entry or per 64-channel group of a unit), binarized by the runtime.
    func planes(units: Int, channels: Int, levels: Int, seed: UInt64, grouped: Bool, scratch: BitPlaneScratch) -> (ActivationPlanes, BinarizedValues) {
        let x = randomActivations(count: units * channels, seed: seed)
        let fractions: [Double] = levels == 1 ? [1] : levels == 2 ? [0.6, 0.4] : [0.7, 0.2, 0.1]
        let groups = grouped ? MaskGroups.weight(rows: 1, taps: units, channels: channels, rowStride: 0, tapStride: channels, channelStride: 1, granularity: .group(64)) : nil
        let xb = x.withUnsafeBufferPointer { ActivationBinarizer.binarize($0, bits: Array(1...levels), fractions: fractions, groups: groups) }
        return (ActivationPlanes(xb, units: units, unitChannels: channels, base: 0, unitStride: channels, channelStride: 1, scratch: scratch), xb)
    }

    /// X and M of every instruction set equal the reference exactly, over reduction lengths
    /// around word boundaries, patches with padding taps, 1 to 3 levels on each side, per-entry
    /// and structured masks.
    func testCountsMatchReferenceExactlyOnEveryISA() {
        var seed: UInt64 = 500
        for channels in BitPlaneGemvTests.reductionLengths { for (rows, taps) in [(8, 1), (9, 3), (3, 2)] {
            for (lw, lx) in [(1, 1), (2, 2), (3, 3), (3, 1)] { for (structured, rowUniform) in [(false, false), (true, false), (false, true)] {
                seed += 1
                // Row-uniform widths (channel masks) take the kernel's dense path, the others the list path.
                let m = BitPlaneMatrix(randomSource(rows: rows, taps: taps, channels: channels, levels: lw, seed: seed, structured: structured, rowUniform: rowUniform))
                let scratch = BitPlaneScratch()
                let units = 4
                let (acts, _) = planes(units: units, channels: channels, levels: lx, seed: seed + 1, grouped: structured, scratch: scratch)
                let positions = 3
                var rng = SeededGenerator(seed: seed + 2)
                let patches = (0..<(positions * taps)).map { _ in Int32(Int(rng.next() % UInt64(units + 1)) - 1) }  // -1 = padding
                let ref = m.binaryCountsReference(acts: acts, patches: patches, positions: positions)
                for isa in BitPlaneMatrix.availableISAs {
                    let fast = m.binaryCounts(acts: acts, patches: patches, positions: positions, isa: isa)
                    let what = "counts rows=\(rows) taps=\(taps) channels=\(channels) levels \(lw)x\(lx) structured=\(structured) rowUniform=\(rowUniform) seed=\(seed) isa=\(BitPlaneMatrix.isaName(isa)) patches=\(patches)"
                    if fast.X != ref.X || fast.M != ref.M {
                        let i = zip(fast.X, ref.X).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                            ?? zip(fast.M, ref.M).enumerated().first { $0.element.0 != $0.element.1 }!.offset
                        XCTFail("\(what): first difference at \(i): X \(fast.X[i]) vs \(ref.X[i]), M \(fast.M[i]) vs \(ref.M[i])")
                    }
                }
            } }
        } }
    }

    /// Homogeneous 3-level weights (every block dense) and 2-level activations with padding:
    /// the dense path's counts equal the reference on every instruction set.
    func testDensePathCountsMatchReference() {
        for channels in [1, 64, 65, 300] {
            var src = randomSource(rows: 16, taps: 4, channels: channels, levels: 3, seed: UInt64(channels) + 900)
            src.mask = [UInt8](repeating: 3, count: src.mask.count)
            var rng = SeededGenerator(seed: 77)
            for k in 0..<3 { for w in src.signs[k].indices { src.signs[k][w] = rng.next() } }
            let n = src.mask.count
            if n % 64 != 0 { for k in 0..<3 { src.signs[k][n / 64] &= (UInt64(1) << UInt64(n % 64)) - 1 } }
            let m = BitPlaneMatrix(src)
            let scratch = BitPlaneScratch()
            let (acts, _) = planes(units: 5, channels: channels, levels: 2, seed: 4, grouped: false, scratch: scratch)
            let patches: [Int32] = [0, 1, -1, 4, 3, -1, 2, 2]
            let ref = m.binaryCountsReference(acts: acts, patches: patches, positions: 2)
            for isa in BitPlaneMatrix.availableISAs {
                let fast = m.binaryCounts(acts: acts, patches: patches, positions: 2, isa: isa)
                XCTAssertTrue(fast.X == ref.X && fast.M == ref.M, "dense counts channels=\(channels) isa=\(BitPlaneMatrix.isaName(isa))")
            }
        }
    }

    /// Rows of one width per row (channel masks), sorted into blocks of one width: runs of 4 such
    /// blocks take the register-blocked path; counts equal the reference on every instruction
    /// set, with padding taps, 1 to 3 levels per side, element and group activation masks.
    func testRegisterBlockedRunsMatchReference() {
        var seed: UInt64 = 1300
        for channels in BitPlaneGemvTests.reductionLengths { for (rows, taps) in [(32, 1), (45, 3)] {
            for (lw, lx) in [(1, 1), (2, 2), (3, 3), (1, 3), (3, 1)] { for grouped in [false, true] {
                seed += 1
                let m = BitPlaneMatrix(randomSource(rows: rows, taps: taps, channels: channels, levels: lw, seed: seed, rowUniform: true))
                let scratch = BitPlaneScratch()
                let units = 4
                let (acts, _) = planes(units: units, channels: channels, levels: lx, seed: seed + 1, grouped: grouped, scratch: scratch)
                let positions = 3
                var rng = SeededGenerator(seed: seed + 2)
                let patches = (0..<(positions * taps)).map { _ in Int32(Int(rng.next() % UInt64(units + 1)) - 1) }
                let ref = m.binaryCountsReference(acts: acts, patches: patches, positions: positions)
                for isa in BitPlaneMatrix.availableISAs {
                    let fast = m.binaryCounts(acts: acts, patches: patches, positions: positions, isa: isa)
                    if fast.X != ref.X || fast.M != ref.M {
                        let i = zip(fast.X, ref.X).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                            ?? zip(fast.M, ref.M).enumerated().first { $0.element.0 != $0.element.1 }!.offset
                        XCTFail("runs rows=\(rows) taps=\(taps) channels=\(channels) levels \(lw)x\(lx) grouped=\(grouped) seed=\(seed) isa=\(BitPlaneMatrix.isaName(isa)) patches=\(patches): first difference at \(i): X \(fast.X[i]) vs \(ref.X[i]), M \(fast.M[i]) vs \(ref.M[i])")
                    }
                }
                // The float path too: blocks mixing widths run every level, their rows without a
                // level must add nothing (scale 0).
                var y = [Float](repeating: .nan, count: positions * rows), yRef = y
                m.binaryForward(acts: acts, patches: patches, positions: positions, bias: nil, relu: false, y: &y, strideRow: 1, stridePos: rows)
                m.binaryForward(.reference, acts: acts, patches: patches, positions: positions, bias: nil, relu: false, y: &yRef, strideRow: 1, stridePos: rows)
                let scale = Float(taps * channels * lw * lx) * 2
                for i in y.indices {
                    XCTAssertLessThanOrEqual(abs(y[i] - yRef[i]), BitPlaneTolerance.relative * scale,
                                             "runs float rows=\(rows) taps=\(taps) channels=\(channels) levels \(lw)x\(lx) seed=\(seed): output \(i) got \(y[i]) expected \(yRef[i])")
                }
            } }
        } }
    }

    /// The float epilogue (scales, bias, Relu) against the Double reference, and against the
    /// plain float product of the dequantized operands.
    func testBinaryForwardMatchesReferenceAndDequantizedProduct() {
        for (channels, levels) in [(65, 3), (512, 2), (1, 1)] {
            let rows = 11
            let src = randomSource(rows: rows, taps: 1, channels: channels, levels: levels, seed: UInt64(channels), layout: .matrix(transposed: true))
            let m = BitPlaneMatrix(src)
            let scratch = BitPlaneScratch()
            let (acts, xb) = planes(units: 2, channels: channels, levels: levels, seed: 9, grouped: false, scratch: scratch)
            let patches: [Int32] = [0, 1]
            let bias = (0..<rows).map { Float($0) * 0.01 }
            var fast = [Float](repeating: .nan, count: 2 * rows), ref = fast
            m.binaryForward(acts: acts, patches: patches, positions: 2, bias: bias, relu: false, y: &fast, strideRow: 1, stridePos: rows)
            m.binaryForward(.reference, acts: acts, patches: patches, positions: 2, bias: bias, relu: false, y: &ref, strideRow: 1, stridePos: rows)
            var xhat = [Float](repeating: 0, count: 2 * channels)
            xb.dequantized(into: &xhat)
            let w = m.decodeReference(rowStride: channels, tapStride: 0, channelStride: 1)
            var decoded = [Float](repeating: .nan, count: rows * channels)
            m.decode(into: &decoded, rowStride: channels, tapStride: 0, channelStride: 1)
            XCTAssertEqual(decoded, w, "decode vs decodeReference channels=\(channels)")
            for p in 0..<2 { for o in 0..<rows {
                var dot = 0.0, mag = 0.0
                for j in 0..<channels { dot += Double(w[o * channels + j]) * Double(xhat[p * channels + j]); mag += abs(Double(w[o * channels + j]) * Double(xhat[p * channels + j])) }
                let tol = Double(BitPlaneTolerance.relative) * max(mag, 1)
                let what = "binaryForward channels=\(channels) levels=\(levels) position \(p) row \(o)"
                XCTAssertEqual(Double(fast[p * rows + o]), Double(ref[p * rows + o]), accuracy: tol, what)
                XCTAssertEqual(Double(fast[p * rows + o]), dot + Double(bias[o]), accuracy: tol, what + " vs dequantized product")
            } }
        }
    }

    /// A direct binary convolution (patches over pixel units, padding, stride, groups) equals
    /// the float convolution of the dequantized operands.
    func testBinaryConvEqualsFloatConvOfDequantizedOperands() throws {
        for (c, o, groups, stride) in [(70, 16, 1, 1), (64, 8, 2, 2)] {
            let g = ConvGeometry(batch: 2, inChannels: c, outChannels: o, groups: groups, input: [5, 6], kernel: [3, 3],
                                 strides: [stride, stride], padBegin: [1, 1], padEnd: [1, 0])
            var rng = SeededGenerator(seed: UInt64(c))
            let wValues = (0..<(o * (c / groups) * 9)).map { _ in Float(rng.nextNormal()) }
            let mask = (0..<wValues.count).map { _ in UInt8(1 + Int(rng.next() % 3)) }
            let packed = wValues.withUnsafeBufferPointer { ActivationBinarizer.residual($0, mask: mask) }
            // A PackedTensor-free source: the binarized weights as flat bitsets and tensor scales.
            let source = BitPlaneMatrix.Source(rows: o, taps: 9, tapChannels: c / groups, rowStride: (c / groups) * 9, tapStride: 1, channelStride: 9,
                                               mask: mask, signs: (0..<packed.levels).map { Array(packed.signs[($0 * packed.wordsPerLevel)..<(($0 + 1) * packed.wordsPerLevel)]) },
                                               scales: packed.scales.map { s in [Float](repeating: s, count: o) })
            let mats = (0..<groups).map { grp -> BitPlaneMatrix in
                var s = source
                s.rows = o / groups
                s.offset = grp * (o / groups) * s.rowStride
                s.scales = s.scales.map { Array($0.prefix(o / groups)) }
                return BitPlaneMatrix(s)
            }
            var wHat = [Float](repeating: 0, count: wValues.count)
            packed.dequantized(into: &wHat)
            let layer = BinaryConvLayer(weights: mats, activations: ActivationSpec(distribution: try .tenths([7, 2, 1])))
            let x = randomActivations(count: 2 * c * 30, seed: 3).map { max(0, $0) }
            var fast = [Float](repeating: .nan, count: 2 * o * g.outputSize), expanded = fast
            layer.forward(g, input: x, bias: nil, output: &fast, relu: true, threads: 2, scratch: BitPlaneScratch())
            layer.forwardExpanded(g, input: x, weights: wHat, bias: nil, output: &expanded, relu: true, scratch: KernelScratch())
            assertClose(fast, expanded, terms: c * 9 * 3, "binary conv c=\(c) o=\(o) groups=\(groups) stride=\(stride)")
        }
    }
}
