import MBBinarize
import MBCore
import Testing

/// The fast binarizer (radix select, unsafe buffers) against the reference (full sort, arrays):
/// masks, scales and sign bits must be identical, for every method, on sizes that cross the
/// selection's digit-width thresholds, with and without ties, tensor and channel scales.
@Suite struct ReferenceEquivalenceTests {
    static let distributions: [BitDistribution] = [
        tenths([7, 2, 1]), tenths([9, 0, 1]), tenths([5, 5]), tenths([4, 3, 3]),
        try! BitDistribution(bits: [2, 3, 4], fractions: [0.6, 0.3, 0.1]),
        try! BitDistribution(bits: [1, 2, 5, 8], fractions: [0.4, 0.3, 0.2, 0.1]),
        try! .homogeneous(3),
    ]

    @Test(arguments: [0, 1, 2, 7, 8, 9, 63, 64, 65, 1000, 5000])
    func fastEqualsReference(size: Int) throws {
        for (d, distribution) in Self.distributions.enumerated() {
            for method in MaskMethod.allCases {
                for tied in [false, true] {
                    let seed = UInt64(size * 100 + d * 10 + (tied ? 1 : 0))
                    let t = tied ? tiedTensor(size, seed: seed) : normalTensor(size, seed: seed)
                    let config = BinarizationConfig(distribution: distribution, method: method, seed: seed)
                    let fast = try Binarizer.binarize(t, config)
                    let reference = try Binarizer.binarizeReference(t, config)
                    #expect(sameBits(fast, reference), "size \(size) P \(distribution) \(method) tied \(tied) seed \(seed)")
                    try fast.validate()
                }
            }
        }
    }

    @Test func fastEqualsReferenceOnALargeTiedTensor() throws {
        // 70,000 entries use 16-bit digits; small integers make most keys tie.
        let t = tiedTensor(70_000, seed: 7, levels: 41)
        for method in [MaskMethod.middleOut, .residualMiddleOut, .topDown] {
            let config = BinarizationConfig(distribution: tenths([5, 3, 2]), method: method)
            #expect(sameBits(try Binarizer.binarize(t, config), try Binarizer.binarizeReference(t, config)), "\(method)")
        }
    }

    @Test(arguments: [[6, 5], [3, 4, 5], [2, 1, 3, 7], [1, 9], [4, 1]])
    func channelScalesEqualReference(shape: [Int]) throws {
        let n = shape.reduce(1, *)
        for axis in 0..<shape.count {
            for method in MaskMethod.allCases {
                let t = normalTensor(n, seed: UInt64(n + axis), shape: shape)
                let config = BinarizationConfig(distribution: tenths([6, 2, 2]), method: method, scale: .channel(axis: axis), seed: 3)
                let fast = try Binarizer.binarize(t, config)
                #expect(sameBits(fast, try Binarizer.binarizeReference(t, config)), "shape \(shape) axis \(axis) \(method)")
                #expect(fast.groupCount == shape[axis])
                try fast.validate()
                #expect(sameBits(fast.dequantized(), fast.dequantizedReference()), "shape \(shape) axis \(axis) \(method)")
            }
        }
    }

    @Test func channelScalesAlongAxisZeroAreIndependentSlices() throws {
        // Each row binarized alone as a tensor gives the same scales and mask as the row's group.
        let t = normalTensor(4 * 50, seed: 11, shape: [4, 50])
        let config = BinarizationConfig(distribution: tenths([7, 2, 1]), scale: .channel(axis: 0))
        let packed = try Binarizer.binarize(t, config)
        for row in 0..<4 {
            let slice = FloatTensor(name: "row", values: Array(t.values[(row * 50)..<((row + 1) * 50)]))
            let alone = try Binarizer.binarize(slice, BinarizationConfig(distribution: tenths([7, 2, 1])))
            #expect(Array(packed.mask[(row * 50)..<((row + 1) * 50)]) == alone.mask, "row \(row)")
            #expect(packed.levels.map { $0.scales[row] } == alone.levels.map { $0.scales[0] }, "row \(row)")
        }
    }

    @Test(arguments: [1, 2, 5, 8])
    func givenMasksEqualReference(levels: Int) throws {
        var g = SeededGenerator(seed: UInt64(levels))
        for size in [0, 1, 65, 300] {
            let t = normalTensor(size, seed: UInt64(size))
            let mask = (0..<size).map { _ in UInt8(1 + g.next() % UInt64(levels)) }
            let fast = try Binarizer.binarize(t, mask: mask)
            #expect(sameBits(fast, try Binarizer.binarizeReference(t, mask: mask)), "levels \(levels) size \(size)")
            #expect(fast.mask == mask)
        }
    }

    @Test func dequantizationFastEqualsReference() throws {
        for (i, distribution) in Self.distributions.enumerated() {
            for size in [1, 63, 64, 65, 129, 2000] {
                let t = normalTensor(size, seed: UInt64(i * 1000 + size))
                let packed = try Binarizer.binarize(t, BinarizationConfig(distribution: distribution))
                #expect(sameBits(packed.dequantized(), packed.dequantizedReference()), "P \(distribution) size \(size)")
            }
        }
    }
}
