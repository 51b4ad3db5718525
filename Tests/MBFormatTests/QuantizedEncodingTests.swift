import Foundation
import MBCore
import MBFormat
import TestSupport
import Testing

/// Encodings 3 (linear: int-n) and 4 (palette: k-means): written, read back equal, and decoded a
/// second time by `SpecReader` from the spec alone, bit for bit; damaged payloads refused.
@Suite struct QuantizedEncodingTests {
    static func fixture(_ scheme: QuantizedTensor.Scheme, shape: [Int], bits: Int, axis: Int?, perGroup: Int, half: Bool, seed: UInt64) -> QuantizedTensor {
        var rng = SeededGenerator(seed: seed)
        let n = shape.reduce(1, *)
        let groups = QuantizedTensor.groupCount(shape: shape, axis: axis, channelsPerGroup: perGroup)
        let codes = (0..<n).map { _ in UInt8(rng.next() % UInt64(1 << bits)) }
        func value() -> Float {
            let v = Float(rng.nextUnitDouble() * 4 - 2)
            return half ? Float(float16Bits: v.float16Bits) : v
        }
        let values = scheme == .linear ? (0..<groups).map { _ in abs(value()) } : (0..<(groups << bits)).map { _ in value() }
        let zeros = scheme == .linear ? (0..<groups).map { _ in UInt8(rng.next() % UInt64(1 << bits)) } : []
        return QuantizedTensor(shape: shape, scheme: scheme, bits: bits, axis: axis, channelsPerGroup: axis == nil ? 1 : perGroup,
                               codes: codes, values: values, zeroPoints: zeros, halfValues: half)
    }

    @Test func everyCaseRoundTripsAndAgreesWithTheSpec() throws {
        var checked = 0, seed: UInt64 = 500
        for scheme in QuantizedTensor.Scheme.allCases {
            for shape in [[7], [5, 3], [4, 3, 3], [3, 5, 2, 7], [65, 3]] {
                for bits in [1, 2, 3, 4, 5, 8] {
                    for axis in [nil, 0, shape.count - 1] as [Int?] {
                        for perGroup in scheme == .linear ? [1] : [1, 2] where axis != nil || perGroup == 1 {
                            for half in [false, true] {
                                seed += 1
                                let q = Self.fixture(scheme, shape: shape, bits: bits, axis: axis, perGroup: perGroup, half: half, seed: seed)
                                let c = "\(scheme) \(shape) \(bits)-bit axis \(axis.map(String.init) ?? "none") per \(perGroup)\(half ? " f16" : "")"
                                try q.validate()
                                let path = FormatFixtures.temporaryPath("q.mbm")
                                let summary = try MBMWriter().write(
                                    model: FormatFixtures.model(constants: [IRTensor(name: "w", elementType: .float, shape: shape, storage: .quantized(q))]),
                                    metadata: [], to: path)
                                // Every stored byte is the table, padding and the code words; nothing else.
                                let groups = q.groupCount
                                let table = scheme == .linear ? groups * ((half ? 2 : 4) + 1) : (groups << bits) * (half ? 2 : 4)
                                let expectedBytes = (table + 7) / 8 * 8 + (q.count * bits + 63) / 64 * 8
                                #expect(summary.tensors.first { $0.name == "w" }?.bytes == expectedBytes, "\(c)")
                                let file = try MBMFile.open(path: path)
                                guard case .quantized(let back)? = file.model.graph.constants.first(where: { $0.name == "w" })?.storage else {
                                    Issue.record("\(c): not read back as quantized"); continue
                                }
                                #expect(back == q, "\(c)")
                                let reader = SpecReader(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
                                let t = try #require(reader.tensor("w"))
                                #expect(t.encoding == (scheme == .linear ? 3 : 4))
                                let spec = reader.dequantizeCodes(t)
                                #expect(spec.map(\.bitPattern) == q.dequantized().map(\.bitPattern), "\(c)")
                                checked += 1
                            }
                        }
                    }
                }
            }
        }
        print("linear/palette encodings: \(checked) tensors round-trip and decode from the spec bit for bit")
    }

    @Test func codesPackLeastSignificantBitFirst() {
        // 3-bit codes 1, 2, 7, 5: bits 001 010 111 101 from the low end.
        let q = QuantizedTensor(shape: [4], scheme: .palette, bits: 3, axis: nil, channelsPerGroup: 1, codes: [1, 2, 7, 5],
                                values: (0..<8).map(Float.init))
        #expect(q.packedCodes == [0b101_111_010_001])
        #expect(QuantizedTensor.unpackCodes(q.packedCodes, count: 4, bits: 3) == [1, 2, 7, 5])
        // A code that straddles a word boundary (bits 63...65).
        let codes = [UInt8](repeating: 0, count: 21) + [5, 3]
        let wide = QuantizedTensor(shape: [23], scheme: .palette, bits: 3, axis: nil, channelsPerGroup: 1, codes: codes, values: (0..<8).map(Float.init))
        #expect(wide.packedCodes == [1 << 63, 0b11_10])
        #expect(QuantizedTensor.unpackCodes(wide.packedCodes, count: 23, bits: 3) == codes)
        #expect(q.dequantized() == [1, 2, 7, 5])
        let linear = QuantizedTensor(shape: [2, 2], scheme: .linear, bits: 2, axis: 0, channelsPerGroup: 1, codes: [0, 3, 1, 2],
                                     values: [0.5, 2], zeroPoints: [1, 0])
        #expect(linear.dequantized() == [-0.5, 1, 2, 4])
    }

    @Test func damagedPayloadsAreRefused() throws {
        let q = QuantizedTensor(shape: [2, 3], scheme: .linear, bits: 2, axis: 0, channelsPerGroup: 1, codes: [0, 1, 2, 3, 0, 1],
                                values: [0.5, 1], zeroPoints: [1, 2])
        let path = FormatFixtures.temporaryPath("bad.mbm")
        _ = try MBMWriter().write(model: FormatFixtures.model(constants: [IRTensor(name: "w", elementType: .float, shape: [2, 3], storage: .quantized(q))]),
                                  metadata: [], to: path)
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let t = try #require(SpecReader(bytes: good).tensor("w"))
        // (byte offset, new value, words expected in the message)
        let damage: [(Int, UInt8, String)] = [
            (t.offset + 8, 4, "zero point"),              // zero point of group 0 beyond 2-bit codes
            (t.offset + 16 + 1, 0x80, "padding"),         // a bit after the last code
            (t.offset + 3, 0x80, "scale"),                // scale 0.5 becomes -0.5 (sign bit)
        ]
        for (at, value, words) in damage {
            var bytes = good
            bytes[at] |= value
            let bad = FormatFixtures.temporaryPath("bad.mbm")
            try Data(bytes).write(to: URL(fileURLWithPath: bad))
            #expect {
                _ = try MBMFile.open(path: bad, options: MBMFile.Options(verifyChecksums: false))
            } throws: { error in
                "\(error)".contains(words)
            }
        }
    }
}
