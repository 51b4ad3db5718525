import MBCore
import MBKernels
import XCTest

/// The run-time binarizer's whole-tensor passes (CBitPlanes BitPlanesBinarize.c, every
/// instruction set) against their plain Swift twins, and the C packing of activation planes
/// against a bit-by-bit gather. Everything here is integer or bit-exact: equality, no tolerance.
final class ActivationPassesTests: XCTestCase {
    static let sizes = [1, 7, 63, 64, 65, 511, 512, 513, 4099]
    static let mixes: [[Double]] = [[1], [0.6, 0.4], [0.7, 0.2, 0.1], [0.9, 0, 0.1]]

    /// ReLU-like values (exact zeros exercise sign(0) = +1 and key ties), some negative.
    func values(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<n).map { _ in
            let v = Float(rng.nextNormal())
            return rng.next() % 3 == 0 ? max(0, v) : v
        }
    }

    func testResidualPassesEqualPlainOnEveryISA() {
        var seed: UInt64 = 7000
        for n in Self.sizes { for mix in Self.mixes {
            seed += 1
            let x = values(n, seed: seed)
            var rng = SeededGenerator(seed: seed + 1)
            let mask = (0..<n).map { _ in UInt8(1 + Int(rng.next() % UInt64(mix.count))) }
            let plain = x.withUnsafeBufferPointer { ActivationBinarizer.residualPlain($0, mask: mask) }
            for isa in BitPlaneMatrix.availableISAs {
                let fast = x.withUnsafeBufferPointer { ActivationBinarizer.residual($0, mask: mask, isa: isa) }
                let what = "residual n=\(n) levels=\(mix.count) seed=\(seed) isa=\(BitPlaneMatrix.isaName(isa))"
                XCTAssertEqual(fast.scales.map(\.bitPattern), plain.scales.map(\.bitPattern), "\(what) x=\(n <= 65 ? "\(x)" : "seeded")")
                XCTAssertEqual(fast.signs, plain.signs, what)
            }
        } }
    }

    /// Per-entry Middle-Out as whole-tensor passes equals the list walk (radix select over an
    /// index list) on every instruction set, ties included (ReLU zeros, repeated values), with
    /// tails (sizes not a multiple of 16), and so does the whole binarizer.
    func testEntrySelectionEqualsPlainOnEveryISA() {
        var seed: UInt64 = 7900
        for n in [1, 5, 16, 17, 255, 4099, 70_001] { for mix in Self.mixes where mix.count > 1 { for data in 0..<3 {
            seed += 1
            var x = values(n, seed: seed)
            if data == 1 { x = x.map { max(0, $0) } }
            if data == 2 { x = x.map { ($0 * 4).rounded() / 4 } }
            let bits = Array(1...mix.count)
            let plain = x.withUnsafeBufferPointer { MiddleOutMask.select($0, bits: bits, fractions: mix, groups: nil, plain: true) }
            let plainValues = x.withUnsafeBufferPointer { ActivationBinarizer.residualPlain($0, mask: plain) }
            for isa in BitPlaneMatrix.availableISAs {
                let what = "n=\(n) mix=\(mix) data=\(data) seed=\(seed) isa=\(BitPlaneMatrix.isaName(isa))"
                let fast = x.withUnsafeBufferPointer { MiddleOutMask.select($0, bits: bits, fractions: mix, groups: nil, isa: isa) }
                XCTAssertEqual(fast, plain, "select \(what)")
                let whole = x.withUnsafeBufferPointer { ActivationBinarizer.binarize($0, bits: bits, fractions: mix, groups: nil, isa: isa) }
                XCTAssertEqual(whole.mask, plain, "binarize mask \(what)")
                XCTAssertEqual(whole.scales.map(\.bitPattern), plainValues.scales.map(\.bitPattern), "binarize scales \(what)")
                XCTAssertEqual(whole.signs, plainValues.signs, "binarize signs \(what)")
            }
        } } }
    }

    /// Grouped Middle-Out (channel-major conv inputs, whose groups are consecutive ids along a
    /// channel row, and row-major matrices) equals the list walk on every instruction set, and so
    /// does the whole binarizer (grouped mask, then the residual levels it hands its first sum).
    func testGroupedSelectionEqualsPlainOnEveryISA() {
        var seed: UInt64 = 7500
        for (channels, pixels) in [(1, 5), (63, 9), (64, 16), (65, 3), (130, 33), (256, 49)] {
            for granularity in [MaskGranularity.group(64), .group(7), .channel] { for mix in Self.mixes where mix.count > 1 {
                seed += 1
                let x = values(channels * pixels, seed: seed).map { max(0, $0) }
                let layouts: [(String, MaskGroups?)] = [
                    ("conv", MaskGroups.weight(rows: 1, taps: pixels, channels: channels, rowStride: channels * pixels, tapStride: 1,
                                               channelStride: pixels, granularity: granularity == .channel ? .group(channels) : granularity)),
                    ("matrix", MaskGroups.weight(rows: pixels, taps: 1, channels: channels, rowStride: channels, tapStride: 0, channelStride: 1,
                                                 granularity: granularity)),
                ]
                for (layout, groups) in layouts {
                    let bits = Array(1...mix.count)
                    let plain = x.withUnsafeBufferPointer { MiddleOutMask.select($0, bits: bits, fractions: mix, groups: groups, plain: true) }
                    // The whole binarizer too: the selection hands its first sum to the residual levels.
                    let plainValues = x.withUnsafeBufferPointer { ActivationBinarizer.residualPlain($0, mask: plain) }
                    for isa in BitPlaneMatrix.availableISAs {
                        let what = "\(layout) channels=\(channels) pixels=\(pixels) \(granularity) mix=\(mix) seed=\(seed) isa=\(BitPlaneMatrix.isaName(isa))"
                        let fast = x.withUnsafeBufferPointer { MiddleOutMask.select($0, bits: bits, fractions: mix, groups: groups, isa: isa) }
                        XCTAssertEqual(fast, plain, "select \(what)")
                        // With and without runs of consecutive ids (the conv layout has them when pixels >= 16).
                        let runs = groups.flatMap(GroupRuns.init)
                        if layout == "conv" && pixels >= 16 { XCTAssertNotNil(runs, "runs \(what)") }
                        for r in runs == nil ? [nil] : [nil, runs] {
                            let whole = x.withUnsafeBufferPointer { ActivationBinarizer.binarize($0, bits: bits, fractions: mix, groups: groups, runs: r, isa: isa) }
                            let how = "\(what) runs=\(r != nil)"
                            XCTAssertEqual(whole.mask, plain, "binarize mask \(how)")
                            XCTAssertEqual(whole.scales.map(\.bitPattern), plainValues.scales.map(\.bitPattern), "binarize scales \(how)")
                            XCTAssertEqual(whole.signs, plainValues.signs, "binarize signs \(how)")
                        }
                    }
                }
            } }
        }
    }

    /// Packed planes (activity, signs, states) equal a bit-by-bit gather, for channel-major
    /// (conv) and row-major (matrix) units, with an offset, around word boundaries.
    func testPlanesEqualBitByBitGather() {
        var seed: UInt64 = 7900
        for channels in [1, 63, 64, 65, 130] { for units in [1, 5, 64, 70] { for conv in [true, false] {
            seed += 1
            let n = 2 * channels * units  // two samples; pack the second
            let x = values(n, seed: seed)
            let xb = x.withUnsafeBufferPointer { ActivationBinarizer.binarize($0, bits: [1, 2, 3], fractions: [0.7, 0.2, 0.1], groups: nil) }
            let base = channels * units
            let (unitStride, channelStride) = conv ? (1, units) : (channels, 1)
            let scratch = BitPlaneScratch()  // owns the planes' buffers
            let planes = ActivationPlanes(xb, units: units, unitChannels: channels, base: base, unitStride: unitStride,
                                          channelStride: channelStride, scratch: scratch)
            for l in 0..<planes.levels { for u in 0..<units { for i in 0..<planes.wordsPerUnit {
                var act: UInt64 = 0, sign: UInt64 = 0
                for b in 0..<64 where 64 * i + b < channels {
                    let j = base + u * unitStride + (64 * i + b) * channelStride
                    if Int(xb.mask[j]) > l {
                        act |= 1 << UInt64(b)
                        if xb.sign(level: l, j) { sign |= 1 << UInt64(b) }
                    }
                }
                let got = planes.words(unit: u, level: l, word: i)
                XCTAssertEqual(got.act, act, "act channels=\(channels) units=\(units) conv=\(conv) level=\(l) unit=\(u) word=\(i) seed=\(seed)")
                XCTAssertEqual(got.sign, sign, "sign channels=\(channels) units=\(units) conv=\(conv) level=\(l) unit=\(u) word=\(i) seed=\(seed)")
            } } }
            withExtendedLifetime(scratch) {}
        } } }
    }
}
