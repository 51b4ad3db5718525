import MBCore
import MBBinarize
import Testing

/// Cases small enough to work out on paper; the arithmetic is in the comments. All values are
/// multiples of 1/64 so every step is exact in Float and the expectations are exact.
@Suite struct HandCheckedTests {
    @Test func homogeneousTwoBits() throws {
        // T = [1, -1, 3, -3]. mu1 = mean|T| = 2, s1 = [+,-,+,-], E1 = [-1, 1, 1, -1].
        // mu2 = mean|E1| = 1, s2 = [-,+,+,-], E2 = 0: the reconstruction is exact.
        let t = FloatTensor(name: "t", values: [1, -1, 3, -3])
        for packed in [try Binarizer.binarize(t, bits: 2), try Binarizer.binarizeReference(t, BinarizationConfig(distribution: .homogeneous(2)))] {
            #expect(packed.mask == [2, 2, 2, 2])
            #expect(packed.levels.map(\.scales) == [[2], [1]])
            #expect(packed.levels.map(\.signs) == [[0b0101], [0b0110]])  // bit i = entry i, 1 = +1
            #expect(packed.dequantized() == [1, -1, 3, -3])
            #expect(Statistics(original: t.values, packed: packed).normalizedError == 0)
        }
    }

    @Test func heterogeneousWithAGivenMask() throws {
        // T = [0.5, -1.5, 2, -4, 1, 3, -0.25, 6], M = [1, 1, 2, 2, 1, 3, 1, 3].
        // Level 1 on all 8: sum|T| = 18.25, mu1 = 2.28125, s1 = [+,-,+,-,+,+,-,+]
        //   E1 = [-1.78125, 0.78125, -0.28125, -1.71875, -1.28125, 0.71875, 2.03125, 3.71875]
        // Level 2 on {2,3,5,7}: |E1| = 0.28125 + 1.71875 + 0.71875 + 3.71875 = 6.4375, mu2 = 1.609375
        //   s2 = [-,-,+,+], E2 = [1.328125, -0.109375, -0.890625, 2.109375]
        // Level 3 on {5,7}: (0.890625 + 2.109375) / 2 = mu3 = 1.5, s3 = [-,+]
        // T_hat = [2.28125, -2.28125, 0.671875, -3.890625, 2.28125, 2.390625, -2.28125, 5.390625]
        let t = FloatTensor(name: "t", values: [0.5, -1.5, 2, -4, 1, 3, -0.25, 6])
        let mask: [UInt8] = [1, 1, 2, 2, 1, 3, 1, 3]
        let fast = try Binarizer.binarize(t, mask: mask)
        let reference = try Binarizer.binarizeReference(t, mask: mask)
        #expect(sameBits(fast, reference))
        #expect(fast.mask == mask)
        #expect(fast.levels.map(\.scales) == [[2.28125], [1.609375], [1.5]])
        #expect(fast.levels.map(\.activeCounts) == [[8], [4], [2]])
        #expect(fast.levels.map(\.signs) == [[0b1011_0101], [0b1100], [0b10]])
        let expected: [Float] = [2.28125, -2.28125, 0.671875, -3.890625, 2.28125, 2.390625, -2.28125, 5.390625]
        #expect(fast.dequantized() == expected)
        let stats = Statistics(original: t.values, packed: fast)
        #expect(stats.bitCounts == [4, 2, 2])
        #expect(stats.signBits == 4 + 4 + 6)
        #expect(stats.averageBits == 1.75)
        #expect(stats.maskEntropy == 1.5)  // P = (1/2, 1/4, 1/4)
        #expect(stats.scaleCount == 3)
        let storage: Double = (14 + 1.5 * 8 + 96) / 8
        #expect(stats.storageBitsPerWeight == storage)
    }

    @Test func middleOutTakesTheClosestToTheMeanAndBreaksTiesByLowerIndex() throws {
        // |T| = 1...8, mean 4.5; keys | |T| - 4.5 | = [3.5, 2.5, 1.5, 0.5, 0.5, 1.5, 2.5, 3.5].
        // 1-bit gets round(0.375 * 8) = 3 entries: the two 0.5 keys (3, 4), then of the tied 1.5
        // keys (2, 5) the lower index 2. Everything else gets 2 bits (the last width takes the rest).
        let t = FloatTensor(name: "t", values: [1, -2, 3, -4, 5, -6, 7, -8])
        let p = try BitDistribution(bits: [1, 2], fractions: [0.375, 0.625])
        for method in [MaskMethod.middleOut, .residualMiddleOut] {  // identical at the first width
            let fast = try Binarizer.binarize(t, BinarizationConfig(distribution: p, method: method))
            #expect(fast.mask == [2, 2, 1, 1, 1, 2, 2, 2], "\(method)")
            #expect(sameBits(fast, try Binarizer.binarizeReference(t, BinarizationConfig(distribution: p, method: method))))
        }
        // Top-Down gives 1 bit to the largest magnitudes (8, 7, 6), Bottom-Up to the smallest (1, 2, 3).
        #expect(try Binarizer.binarize(t, BinarizationConfig(distribution: p, method: .topDown)).mask == [2, 2, 2, 2, 2, 1, 1, 1])
        #expect(try Binarizer.binarize(t, BinarizationConfig(distribution: p, method: .bottomUp)).mask == [1, 1, 1, 2, 2, 2, 2, 2])
    }

    @Test func tiesBetweenEqualValuesGoToTheLowerIndex() throws {
        // Six entries with |T| = 1 (keys all equal); 1-bit gets round(0.5 * 6) = 3: entries 0, 1, 2.
        let t = FloatTensor(name: "t", values: [1, -1, 1, 1, -1, -1])
        let p = try BitDistribution(bits: [1, 3], fractions: [0.5, 0.5])
        for method in [MaskMethod.middleOut, .topDown, .bottomUp] {
            #expect(try Binarizer.binarize(t, BinarizationConfig(distribution: p, method: method)).mask == [1, 1, 1, 3, 3, 3], "\(method)")
        }
    }

    @Test func countsRoundHalfAwayFromZero() throws {
        // N = 4: 0.625 * 4 = 2.5 rounds to 3 (banker's rounding would give 2);
        // 0.125 * 4 = 0.5 rounds to 1 (not 0).
        let t = FloatTensor(name: "t", values: [1, 2, 3, 4])
        let a = try Binarizer.binarize(t, BinarizationConfig(distribution: try BitDistribution(bits: [1, 2], fractions: [0.625, 0.375])))
        #expect(a.mask.filter { $0 == 1 }.count == 3)
        let b = try Binarizer.binarize(t, BinarizationConfig(distribution: try BitDistribution(bits: [1, 2], fractions: [0.125, 0.875])))
        #expect(b.mask.filter { $0 == 1 }.count == 1)
        // Two widths rounding up together cannot overdraw: 0.5 * 3 = 1.5 -> 2, then 2 more
        // would be needed but only 1 entry remains; the last width takes it.
        let c = try Binarizer.binarize(FloatTensor(name: "t", values: [1, 2, 3]),
                                       BinarizationConfig(distribution: try BitDistribution(bits: [1, 2, 3], fractions: [0.5, 0.5, 0])))
        #expect(c.mask.sorted() == [1, 1, 2])
    }

    @Test func aZeroFractionWidthGetsNoEntries() throws {
        // 9/0/1 on 10 values: 9 entries 1-bit, none 2-bit, 1 entry 3-bit. Level 2 still exists
        // and is active on the 3-bit entry.
        let t = FloatTensor(name: "t", values: (1...10).map { Float($0) })
        let packed = try Binarizer.binarize(t, BinarizationConfig(distribution: tenths([9, 0, 1])))
        #expect(packed.mask.filter { $0 == 2 }.isEmpty)
        #expect(packed.levels.map(\.activeCounts) == [[10], [1], [1]])
        // 9/1/0: the last width in use is 2 bits, so there are two levels.
        let p910 = try Binarizer.binarize(t, BinarizationConfig(distribution: tenths([9, 1, 0])))
        #expect(p910.levels.count == 2 && p910.mask.filter { $0 == 2 }.count == 1)
    }

    @Test func emptyLevelsHaveNoScaleAndNoSigns() throws {
        // Channel scales on [3, 1]: each channel has one entry; round(0.7 * 1) = 1 gives it
        // 1 bit, so levels 2 and 3 are empty in every channel.
        let t = try FloatTensor(name: "t", shape: [3, 1], values: [0.5, -1, 2])
        let packed = try Binarizer.binarize(t, BinarizationConfig(distribution: tenths([7, 2, 1]), scale: .channel(axis: 0)))
        #expect(packed.mask == [1, 1, 1])
        #expect(packed.levels.map(\.activeCounts) == [[1, 1, 1], [0, 0, 0], [0, 0, 0]])
        #expect(packed.levels[1].signs.isEmpty && packed.levels[1].scales == [0, 0, 0])
        #expect(packed.dequantized() == [0.5, -1, 2])
        #expect(Statistics(original: t.values, packed: packed).scaleCount == 3)
        // An empty tensor has empty levels too.
        let empty = try Binarizer.binarize(FloatTensor(name: "e", values: []), bits: 2)
        #expect(empty.levels.map(\.activeCounts) == [[0], [0]] && empty.dequantized().isEmpty)
        try empty.validate()
    }

    @Test func allZeroTensorsReconstructExactly() throws {
        // mu_k = 0 at every level, sign(0) = +1: every sign bit is set, T_hat = 0, error 0.
        let t = FloatTensor(name: "zeros", values: [Float](repeating: 0, count: 70))
        for method in MaskMethod.allCases {
            let packed = try Binarizer.binarize(t, BinarizationConfig(distribution: tenths([7, 2, 1]), method: method))
            #expect(packed.levels.allSatisfy { $0.scales == [0] })
            #expect(packed.levels[0].signs == [UInt64.max, (1 << 6) - 1])
            #expect(sameBits(packed.dequantized(), [Float](repeating: 0, count: 70)))
            let stats = Statistics(original: t.values, packed: packed)
            #expect(stats.normalizedError == 0 && stats.maxAbsError == 0 && stats.sqnrDB == .infinity)
        }
    }

    @Test(arguments: [(Float.nan, "NaN"), (.infinity, "+Inf"), (-.infinity, "-Inf")])
    func nonFiniteValuesNameTheTensorAndElement(value: Float, word: String) throws {
        var values = [Float](repeating: 0.5, count: 40)
        values[17] = value
        values[30] = value
        let t = try FloatTensor(name: "conv1.weight", shape: [4, 10], values: values)
        let expected = "tensor 'conv1.weight': element 17 is \(word)"
        for method in MaskMethod.allCases {
            let config = BinarizationConfig(distribution: tenths([7, 2, 1]), method: method)
            #expect(performing: { _ = try Binarizer.binarize(t, config) }, throws: { "\($0)" == expected })
            #expect(performing: { _ = try Binarizer.binarizeReference(t, config) }, throws: { "\($0)" == expected })
        }
        // With channel scales along axis 1 the groups are columns; the message still gives the
        // flat index of an offending element.
        let channel = BinarizationConfig(distribution: try .homogeneous(1), scale: .channel(axis: 1))
        #expect(performing: { _ = try Binarizer.binarize(t, channel) }, throws: { "\($0)".hasPrefix("tensor 'conv1.weight': element ") })
    }

    @Test func badSettingsAreRefused() throws {
        #expect(throws: BitDistribution.Invalid("bit width 9 is outside 1...8")) { _ = try BitDistribution.homogeneous(9) }
        #expect(throws: BinarizeError.invalidConfiguration("bit width 9 is outside 1...8")) { _ = try Binarizer.binarize(FloatTensor(name: "w", values: [1]), bits: 9) }
        #expect(throws: BitDistribution.Invalid("fractions must sum to 1, got 0.9 for [0.5, 0.4]")) {
            _ = try BitDistribution(bits: [1, 2], fractions: [0.5, 0.4])
        }
        #expect(throws: BitDistribution.Invalid("bit widths must be strictly ascending, got [2, 1]")) {
            _ = try BitDistribution(bits: [2, 1], fractions: [0.5, 0.5])
        }
        let t = try FloatTensor(name: "w", shape: [2, 2], values: [1, 2, 3, 4])
        #expect(throws: BinarizeError.invalidConfiguration("channel axis 2 is outside the 2 dimensions of tensor 'w' [2, 2]")) {
            _ = try Binarizer.binarize(t, bits: 1, scale: .channel(axis: 2))
        }
        #expect(throws: BinarizeError.invalidMask(tensor: "w", reason: "entry 1 is 0; bit widths are 1...8")) {
            _ = try Binarizer.binarize(t, mask: [1, 0, 1, 1])
        }
    }
}
