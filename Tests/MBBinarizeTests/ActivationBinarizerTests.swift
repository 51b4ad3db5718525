import MBBinarize
import MBCore
import MBKernels
import XCTest

/// The runtime's activation binarizer (MBKernels) is the same algorithm as MBBinarize's
/// Middle-Out with tensor scale: same mask, scales and signs, bit for bit.
final class ActivationBinarizerTests: XCTestCase {
    func testEqualsBinarizerMiddleOutBitForBit() throws {
        var seed: UInt64 = 40
        for n in [1, 7, 64, 65, 1000, 4099] {
            for tenths in [[7, 2, 1], [5, 5], [10], [9, 0, 1], [4, 3, 3]] {
                seed += 1
                var rng = SeededGenerator(seed: seed)
                // ReLU-like data: many exact zeros, so ties on the key are exercised.
                let values = (0..<n).map { _ in Float(max(0, rng.nextNormal())) }
                let dist = try BitDistribution.tenths(tenths)
                let expected = try Binarizer.binarize(FloatTensor(name: "x", shape: [n], values: values), BinarizationConfig(distribution: dist))
                let got = values.withUnsafeBufferPointer {
                    ActivationBinarizer.binarize($0, bits: dist.entries.map(\.bits), fractions: dist.entries.map(\.fraction), groups: nil)
                }
                let what = "n=\(n) mix=\(tenths) seed=\(seed)"
                XCTAssertEqual(got.mask, expected.mask, what)
                let levels = expected.levels.filter { $0.bitCount > 0 }
                XCTAssertEqual(got.scales, levels.map { $0.scales[0] }, what)
                let flat = expected.flatSignBits(expected.layout)
                for k in 0..<got.levels {
                    XCTAssertEqual(Array(got.signs[(k * got.wordsPerLevel)..<((k + 1) * got.wordsPerLevel)]), flat[k], "\(what) level \(k + 1)")
                }
            }
        }
    }

    /// Structured masks: every group gets one width; the realized fractions are the requested
    /// ones over groups; the weights path (Binarizer with groups) and the activation path agree.
    func testGroupMasksShareWidthsAndMatchTheWeightPath() throws {
        let rows = 6, k = 200
        var rng = SeededGenerator(seed: 3)
        let values = (0..<(rows * k)).map { _ in Float(rng.nextNormal()) }
        for granularity in [MaskGranularity.group(64), .group(7), .channel] {
            let groups = MaskGroups.weight(rows: rows, taps: 1, channels: k, rowStride: k, tapStride: 0, channelStride: 1, granularity: granularity)!
            let packed = try Binarizer.binarize(FloatTensor(name: "w", shape: [rows, k], values: values),
                                                BinarizationConfig(distribution: .tenths([7, 2, 1])), groups: groups, wholeTensor: true)
            var width = [UInt8](repeating: 0, count: groups.count)
            for j in 0..<values.count {
                let g = Int(groups.ids[j])
                if width[g] == 0 { width[g] = packed.mask[j] }
                XCTAssertEqual(packed.mask[j], width[g], "\(granularity): entry \(j) of group \(g)")
            }
            let ones = width.filter { $0 == 1 }.count
            XCTAssertEqual(ones, Int((0.7 * Double(groups.count)).rounded(.toNearestOrAwayFromZero)), "\(granularity): 1-bit groups")
            let act = values.withUnsafeBufferPointer { ActivationBinarizer.binarize($0, bits: [1, 2, 3], fractions: [0.7, 0.2, 0.1], groups: groups) }
            XCTAssertEqual(act.mask, packed.mask, "\(granularity): activation path mask")
        }
    }
}
