import MBBinarize
import MBCore
import Testing

/// The sign streams at word boundaries, and `validate()` catching every kind of mismatch.
@Suite struct PackingTests {
    static let lengths = [0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 129]

    @Test(arguments: lengths)
    func packAndUnpackBits(length: Int) {
        var g = SeededGenerator(seed: UInt64(length))
        let bits = (0..<length).map { _ in g.next() & 1 == 1 }
        let words = packBits(bits)
        #expect(words.count == (length + 63) / 64)
        #expect(unpackBits(words, count: length) == bits, "length \(length)")
        if length % 64 != 0 { #expect(words.last! >> UInt64(length % 64) == 0, "padding bits must be zero (length \(length))") }
        // All ones: the padding stays zero.
        let ones = packBits([Bool](repeating: true, count: length))
        if length % 64 != 0 { #expect(ones.last! == (UInt64(1) << UInt64(length % 64)) - 1) }
    }

    @Test(arguments: lengths)
    func binarizedStreamsHaveZeroPaddingAndRoundTrip(length: Int) throws {
        // Positive values only: every sign of level 1 is +1, so a stray bit past the end would show.
        let t = FloatTensor(name: "t", values: (0..<length).map { Float($0 % 7) + 0.5 })
        for config in [BinarizationConfig(distribution: try .homogeneous(2)), BinarizationConfig(distribution: tenths([5, 3, 2]))] {
            let packed = try Binarizer.binarize(t, config)
            try packed.validate()
            for level in packed.levels {
                #expect(level.signs.count == (level.bitCount + 63) / 64, "length \(length)")
                if level.bitCount % 64 != 0 { #expect(level.signs.last! >> UInt64(level.bitCount % 64) == 0, "length \(length)") }
            }
            #expect(packed.levels[0].signs == packBits([Bool](repeating: true, count: length)))
            #expect(sameBits(packed.dequantized(), packed.dequantizedReference()), "length \(length)")
        }
    }

    @Test func onlyActiveEntriesHaveSignBits() throws {
        // 100 entries at 7/2/1: level 1 has 100 bits, level 2 has 30 (the 2- and 3-bit
        // entries), level 3 has 10.
        let packed = try Binarizer.binarize(normalTensor(100, seed: 1), BinarizationConfig(distribution: tenths([7, 2, 1])))
        #expect(packed.levels.map(\.bitCount) == [100, 30, 10])
        #expect(packed.levels.map(\.signs.count) == [2, 1, 1])
    }

    @Test func validateNamesEachInconsistency() throws {
        let good = try Binarizer.binarize(normalTensor(70, seed: 2), BinarizationConfig(distribution: tenths([7, 2, 1])))
        try good.validate()
        func problem(_ edit: (inout PackedTensor) -> Void) -> String {
            var p = good
            edit(&p)
            do { try p.validate(); return "valid" } catch { return "\(error)" }
        }
        #expect(problem { $0.mask[3] = 4 } == "packed tensor: mask entry 3 is 4; expected 1...3")
        #expect(problem { $0.mask.removeLast() } == "packed tensor: shape [70] holds 70 entries but the mask has 69")
        #expect(problem { $0.levels[2].signs[0] |= 1 << 63 } == "packed tensor: level 3 has non-zero padding bits after bit 7")
        #expect(problem { $0.levels[1].signs.append(0) } == "packed tensor: level 2 has 2 sign words for 21 bits")
        #expect(problem { $0.levels[1].activeCounts = [20] } == "packed tensor: level 2 active counts [20] disagree with the mask ([21])")
        #expect(problem { $0.levels[0].scales = [.nan] } == "packed tensor: level 1 scale of group 0 is nan")
        #expect(problem { $0.levels[0].scales = [1, 2] } == "packed tensor: level 1 has 2 scales and 1 counts for 1 groups")
        #expect(problem { $0.levels = [] } == "packed tensor: 0 levels; expected 1...8")
    }
}
