import MBCore
import MBBinarize
import Testing

/// Exact mode: binarize, dequantize, and feed the result back in; the same levels, signs and
/// mask must come out, with zero error.
@Suite struct ExactModeTests {
    /// Value sets that determine their decomposition: the same mask and signs must come back.
    static let unique: [(String, BitDistribution, MaskMethod)] = [
        ("1-bit", try! .homogeneous(1), .middleOut), ("2-bit", try! .homogeneous(2), .middleOut),
        ("3-bit", try! .homogeneous(3), .middleOut), ("4-bit", try! .homogeneous(4), .middleOut),
        ("7/2/1", tenths([7, 2, 1]), .middleOut), ("4/3/3", tenths([4, 3, 3]), .middleOut),
        ("6/2/2 random", tenths([6, 2, 2]), .random),
    ]

    /// Value sets with several exact decompositions of as many levels (few distinct values):
    /// exact mode returns one of them, and the error is still zero.
    static let ambiguous: [(String, BitDistribution, MaskMethod)] = [
        ("9/0/1", tenths([9, 0, 1]), .middleOut), ("5/3/2 top-down", tenths([5, 3, 2]), .topDown),
        ("0.6,0.3,0.1@2,3,4", try! BitDistribution(bits: [2, 3, 4], fractions: [0.6, 0.3, 0.1]), .middleOut),
    ]

    static func roundTrip(_ distribution: BitDistribution, _ method: MaskMethod, seed: UInt64) throws -> (PackedTensor, FloatTensor, ExactMode.Outcome) {
        let t = normalTensor(5000, seed: seed)
        let original = try Binarizer.binarize(t, BinarizationConfig(distribution: distribution, method: method, seed: 5))
        let binarized = try FloatTensor(name: "w", shape: t.shape, values: original.dequantized())
        return (original, binarized, ExactMode.detect(binarized))
    }

    @Test(arguments: 0..<unique.count, [40] as [UInt64])
    func roundTripRecoversLevelsSignsAndMask(config: Int, seed: UInt64) throws {
        let (label, distribution, method) = Self.unique[config]
        let (original, binarized, outcome) = try Self.roundTrip(distribution, method, seed: seed)
        guard let recovered = outcome.packed else {
            Issue.record("\(label) seed \(seed): not detected: \(outcome)")
            return
        }
        let sameMask = recovered.mask == original.mask
        let sameSigns = recovered.unpackedSigns() == original.unpackedSigns()
        #expect(recovered.scale == .tensor, "\(label) seed \(seed)")
        #expect(sameMask, "\(label) seed \(seed): mask")
        #expect(sameSigns, "\(label) seed \(seed): signs")
        // Several Float scales can round to the same values; the recovered ones are within
        // two ulps of the originals (HBB residual scales of normal data).
        for (a, b) in zip(recovered.levels, original.levels) {
            let close = zip(a.scales, b.scales).allSatisfy { abs($0 - $1) <= 2 * $1.ulp }
            #expect(close, "\(label) seed \(seed): scales \(a.scales) vs \(b.scales)")
        }
        let error = Statistics(original: binarized.values, packed: recovered).normalizedError
        #expect(error == 0, "\(label) seed \(seed)")
    }

    @Test(arguments: 0..<ambiguous.count)
    func ambiguousValueSetsStillConvertExactly(config: Int) throws {
        let (label, distribution, method) = Self.ambiguous[config]
        let (_, binarized, outcome) = try Self.roundTrip(distribution, method, seed: 40)
        let recovered = try #require(outcome.packed, "\(label): \(outcome)")
        let exact = recovered.dequantized() == binarized.values
        #expect(exact, "\(label)")
    }

    @Test func channelBinarizedTensorsQualifyWithChannelScales() throws {
        let t = normalTensor(4 * 300, seed: 3, shape: [4, 300])
        let original = try Binarizer.binarize(t, BinarizationConfig(distribution: tenths([7, 2, 1]), scale: .channel(axis: 0)))
        let binarized = try FloatTensor(name: "conv", shape: t.shape, values: original.dequantized())
        let recovered = try #require(ExactMode.detect(binarized).packed)
        #expect(recovered.scale == .channel(axis: 0))
        let sameMask = recovered.mask == original.mask
        let sameSigns = recovered.unpackedSigns() == original.unpackedSigns()
        let exact = recovered.dequantized() == binarized.values
        #expect(sameMask && sameSigns && exact)
    }

    @Test func ordinaryWeightsDoNotQualify() {
        // Too many distinct values per tensor and per channel: rejected at once.
        guard case .notExact(let reason) = ExactMode.detect(normalTensor(4 * 600, seed: 9, shape: [4, 600])) else {
            Issue.record("a normal tensor was taken for a binarized one")
            return
        }
        #expect(reason == "tensor scales: more than 510 distinct values; channel scales: channel 0: more than 510 distinct values")
        // Few enough values to search, but no structure: no decomposition.
        guard case .notExact(let small) = ExactMode.decode(normalTensor(24, seed: 10), scale: .tensor) else {
            Issue.record("24 normal values were taken for a binarized tensor")
            return
        }
        #expect(small.hasPrefix("24 distinct values: "), "\(small)")
    }

    @Test func zerosAndConstantsAreOneLevel() throws {
        let zeros = try #require(ExactMode.detect(FloatTensor(name: "z", values: [0, -0, 0])).packed)
        #expect(zeros.levels.count == 1 && zeros.levels[0].scales == [0] && zeros.mask == [1, 1, 1])
        let constant = try #require(ExactMode.detect(FloatTensor(name: "c", values: [-0.75, -0.75])).packed)
        #expect(constant.levels[0].scales == [0.75] && constant.dequantized() == [-0.75, -0.75])
        // Two values +-mu: one level, signs from the values.
        let pm = try #require(ExactMode.detect(FloatTensor(name: "pm", values: [0.5, -0.5, -0.5, 0.5])).packed)
        #expect(pm.levels.count == 1 && pm.levels[0].signs == [0b1001])
    }
}
