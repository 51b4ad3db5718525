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
func randomSource(rows: Int, taps: Int, channels: Int, levels: Int, seed: UInt64, structured: Bool = false, layout: BitPlaneMatrix.WeightKind = .conv) -> BitPlaneMatrix.Source {
    var rng = SeededGenerator(seed: seed)
    let n = rows * taps * channels
    var mask = [UInt8](repeating: 1, count: n)
    let groupLevel = (0..<(rows * taps * ((channels + 63) / 64))).map { _ in UInt8(1 + Int(rng.next() % UInt64(levels))) }
    for j in 0..<n { mask[j] = structured ? 0 : UInt8(1 + Int(rng.next() % UInt64(levels))) }
    var signs = [[UInt64]](repeating: [UInt64](repeating: 0, count: (n + 63) / 64), count: levels)
    for k in 0..<levels { for w in signs[k].indices { signs[k][w] = rng.next() } }
    let scales = (0..<levels).map { k in (0..<rows).map { _ in Float(rng.nextUnitDouble() + 0.1) / Float(k + 1) } }
    let (rowStride, tapStride, channelStride): (Int, Int, Int)
    switch layout {
    case .conv: (rowStride, tapStride, channelStride) = (channels * taps, 1, taps)
    case .matrix(let t): (rowStride, tapStride, channelStride) = t ? (channels, 0, 1) : (1, 0, rows)
    }
    if structured {
        for o in 0..<rows { for t in 0..<taps { for c in 0..<channels {
            mask[o * rowStride + t * tapStride + c * channelStride] = groupLevel[(o * taps + t) * ((channels + 63) / 64) + c / 64]
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
    /// boundaries, row counts around the 8-row block, 1 to 3 levels, per-entry and structured masks.
    func testGemvMatchesReferenceOnEveryISA() {
        var seed: UInt64 = 100
        for k in Self.reductionLengths { for rows in [1, 7, 8, 9, 17] { for levels in [1, 3] { for structured in [false, true] {
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
            for isa in BitPlaneMatrix.availableISAs {
                let sums = m.levelSums(x: x, isa: isa, scratch: BitPlaneScratch())
                for i in sums.indices where m.rowOrder[i % (m.blocks * 8)] >= 0 {
                    XCTAssertLessThanOrEqual(abs(sums[i] - refSums[i]), BitPlaneTolerance.relative * scale,
                                             "\(what) isa=\(BitPlaneMatrix.isaName(isa)): level sum \(i) got \(sums[i]) expected \(refSums[i])")
                }
            }
        } } } }
    }
}
