import MBBinarize
import MBCore
import Testing

/// The binarizer's output, byte for byte, across every option: 64-bit FNV-1a digests of the packed
/// tensors (mask, scales' bit patterns, active counts, sign words) and of their statistics,
/// recorded before the binarizer's working memory was reduced. Any change to what the fast path
/// produces (the paper-exact default or any option) changes a digest. On a mismatch the test
/// prints every case's digest; re-record only for an intended change of the output.
@Suite struct BinarizerDigestTests {
    static let distributions: [BitDistribution] = [
        tenths([7, 2, 1]), tenths([9, 0, 1]), tenths([5, 5]), tenths([4, 3, 3]), tenths([0, 6, 4]),
        try! BitDistribution(bits: [2, 3, 4], fractions: [0.6, 0.3, 0.1]),
        try! BitDistribution(bits: [1, 2, 5, 8], fractions: [0.4, 0.3, 0.2, 0.1]),
        try! .homogeneous(1), try! .homogeneous(2), try! .homogeneous(3),
    ]

    /// 24 x 700 = 16,800 entries: the tensor-scale selection uses 12-bit digits, each channel's 8-bit ones.
    static let shape = [24, 700]

    static func tensors(_ shape: [Int]) -> [FloatTensor] {
        let n = shape.reduce(1, *)
        return [normalTensor(n, seed: 21, shape: shape), tiedTensor(n, seed: 22, shape: shape, levels: 41)]
    }

    static func digest(_ packed: [PackedTensor], statistics: [Statistics]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func add<T: FixedWidthInteger>(_ xs: [T]) {
            for x in xs {
                h = (h ^ UInt64(truncatingIfNeeded: x)) &* 0x100_0000_01b3
            }
            h = (h ^ UInt64(xs.count)) &* 0x100_0000_01b3
        }
        for p in packed {
            add(p.shape.map { Int64($0) })
            add(p.mask)
            for level in p.levels {
                add(level.scales.map(\.bitPattern))
                add(level.activeCounts.map { Int64($0) })
                add(level.signs)
            }
        }
        for s in statistics {
            add([s.normalizedError.bitPattern, s.sqnrDB.bitPattern, s.maxAbsError.bitPattern])
            add(s.bitCounts.map { Int64($0) })
        }
        return String(h, radix: 16)
    }

    static let expected: [String: String] = [
        "bottom-up channel0": "3d7221ec8c1f603d",
        "bottom-up channel1": "ef12f7699b774ccf",
        "bottom-up tensor": "a60614874603df",
        "extras channel0": "b59e044b83f9353c",
        "extras channel1": "830bf152c8231e43",
        "extras tensor": "494e48930fc7e04a",
        "large tensor": "b3e92737bed5244d",
        "middle-out channel0": "90a80cc7b0e95374",
        "middle-out channel1": "bad7ab041de56071",
        "middle-out tensor": "1245fb83f9c4f341",
        "random channel0": "236e3a3c6ea26502",
        "random channel1": "103ca7e182b196cd",
        "random tensor": "7c7be2db4ebeff00",
        "residual-middle-out channel0": "505c5a6318755a76",
        "residual-middle-out channel1": "1f4b398a5702017d",
        "residual-middle-out tensor": "7c8b4fca682ad195",
        "top-down channel0": "2d3fc090e6312d4e",
        "top-down channel1": "d90cd7ad4934578e",
        "top-down tensor": "abb6b504a34c7073",
    ]

    static func scaleName(_ scale: ScaleMode) -> String {
        if case .channel(let axis) = scale { return "channel\(axis)" }
        return "tensor"
    }

    @Test func everyOptionGivesTheRecordedBytes() throws {
        var found: [String: String] = [:]
        let tensors = Self.tensors(Self.shape)
        for method in MaskMethod.allCases {
            for scale in [ScaleMode.tensor, .channel(axis: 0), .channel(axis: 1)] {
                var packed: [PackedTensor] = []
                var stats: [Statistics] = []
                for t in tensors {
                    for distribution in Self.distributions {
                        let p = try Binarizer.binarize(t, BinarizationConfig(distribution: distribution, method: method, scale: scale, seed: 5))
                        packed.append(p)
                        stats.append(Statistics(original: t.values, packed: p))
                    }
                }
                found["\(method.rawValue) \(Self.scaleName(scale))"] = Self.digest(packed, statistics: stats)
            }
        }
        // A given mask, structured masks, and the refits on top of the default.
        for scale in [ScaleMode.tensor, .channel(axis: 0), .channel(axis: 1)] {
            var packed: [PackedTensor] = []
            var stats: [Statistics] = []
            for t in tensors {
                var g = SeededGenerator(seed: 9)
                let mask = (0..<t.values.count).map { _ in UInt8(1 + g.next() % 4) }
                packed.append(try Binarizer.binarize(t, mask: mask, scale: scale))
                let config = BinarizationConfig(distribution: tenths([7, 2, 1]), scale: scale)
                for granularity in [MaskGranularity.group(16), .channel] {
                    let groups = MaskGroups.weight(rows: Self.shape[0], taps: 1, channels: Self.shape[1], rowStride: Self.shape[1], tapStride: 0,
                                                   channelStride: 1, granularity: granularity)!
                    packed.append(try Binarizer.binarize(t, config, groups: groups, wholeTensor: granularity == .channel))
                }
                let plain = try Binarizer.binarize(t, config)
                packed.append(try Refit.refit(plain, original: t).packed)
                packed.append(try AlternatingRefit.refit(plain, original: t).packed)
                stats += packed.suffix(5).map { Statistics(original: t.values, packed: $0) }
            }
            found["extras \(Self.scaleName(scale))"] = Self.digest(packed, statistics: stats)
        }
        // 70,000 entries: the tensor-scale selection's 16-bit digits.
        var large: [PackedTensor] = []
        for t in Self.tensors([70_000]) {
            for method in [MaskMethod.middleOut, .residualMiddleOut, .topDown, .bottomUp] {
                large.append(try Binarizer.binarize(t, BinarizationConfig(distribution: tenths([5, 3, 2]), method: method)))
            }
        }
        found["large tensor"] = Self.digest(large, statistics: [])
        let listing = found.keys.sorted().map { "        \"\($0)\": \"\(found[$0]!)\"," }.joined(separator: "\n")
        #expect(found == Self.expected, "digests found:\n\(listing)")
    }
}
