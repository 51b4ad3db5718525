import MBCore
import Testing

/// The float8/float4/float8e8m0 and 4-/2-bit integer conversions against the codes onnx's
/// reference Cast (onnx 1.23.2 with ml_dtypes 0.7) gives for the same inputs.
@Suite struct LowPrecisionTests {
    /// Inputs covering zeros, NaN, infinities, ties at the top of each range, overflow,
    /// subnormals and ordinary ties (0.3, 0.7: inexact; 2.5, 3.5: exact in every format).
    static let inputs: [Float] = [0, -0.0, .nan, .infinity, -.infinity, 464, 465, 500, 1e6, -1e6, 57344, 59392, 59393, 61440,
                                  1e-3, 0x1p-10, 3 * 0x1p-11, 0x1p-17, 0.3, 5, 7, 0.25, 0.75, 2.5, -2.5, 3.5, 1.5, 0.7, 3]

    /// (format, saturate, codes onnx's reference writes for `inputs`).
    static let expected: [(String, LowPrecision.FloatFormat, Bool, [UInt8])] = [
        ("e4m3fn", .float8e4m3fn, true, [0, 128, 127, 126, 254, 126, 126, 126, 126, 254, 126, 126, 126, 126, 1, 0, 1, 0, 42, 74, 78, 40, 52, 66, 194, 70, 60, 51, 68]),
        ("e4m3fn", .float8e4m3fn, false, [0, 128, 127, 127, 255, 126, 127, 127, 127, 255, 127, 127, 127, 127, 1, 0, 1, 0, 42, 74, 78, 40, 52, 66, 194, 70, 60, 51, 68]),
        ("e4m3fnuz", .float8e4m3fnuz, true, [0, 0, 128, 127, 255, 127, 127, 127, 127, 255, 127, 127, 127, 127, 1, 1, 2, 0, 50, 82, 86, 48, 60, 74, 202, 78, 68, 59, 76]),
        ("e4m3fnuz", .float8e4m3fnuz, false, [0, 0, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 1, 1, 2, 0, 50, 82, 86, 48, 60, 74, 202, 78, 68, 59, 76]),
        ("e5m2", .float8e5m2, true, [0, 128, 126, 123, 251, 95, 95, 96, 123, 251, 123, 123, 123, 123, 20, 20, 22, 0, 53, 69, 71, 52, 58, 65, 193, 67, 62, 58, 66]),
        ("e5m2", .float8e5m2, false, [0, 128, 126, 124, 252, 95, 95, 96, 124, 252, 123, 123, 123, 124, 20, 20, 22, 0, 53, 69, 71, 52, 58, 65, 193, 67, 62, 58, 66]),
        ("e5m2fnuz", .float8e5m2fnuz, true, [0, 0, 128, 127, 255, 99, 99, 100, 127, 255, 127, 127, 127, 127, 24, 24, 26, 1, 57, 73, 75, 56, 62, 69, 197, 71, 66, 62, 70]),
        ("e5m2fnuz", .float8e5m2fnuz, false, [0, 0, 128, 128, 128, 99, 99, 100, 128, 128, 127, 127, 127, 128, 24, 24, 26, 1, 57, 73, 75, 56, 62, 69, 197, 71, 66, 62, 70]),
        ("e2m1", .float4e2m1, true, [0, 8, 8, 7, 15, 7, 7, 7, 7, 15, 7, 7, 7, 7, 0, 0, 0, 0, 1, 6, 7, 0, 2, 4, 12, 6, 3, 1, 5]),
        ("e2m1", .float4e2m1, false, [0, 8, 8, 7, 15, 7, 7, 7, 7, 15, 7, 7, 7, 7, 0, 0, 0, 0, 1, 6, 7, 0, 2, 4, 12, 6, 3, 1, 5]),
    ]

    @Test func floatFormatsRoundAndSaturateAsONNX() {
        for (name, format, saturate, codes) in Self.expected {
            for (x, want) in zip(Self.inputs, codes) {
                let got = format.encode(x, saturate: saturate)
                #expect(got == want, "\(name) saturate=\(saturate): \(x) -> \(got), onnx gives \(want)")
            }
        }
    }

    /// float4e2m1 has no NaN: onnx's reference gives a zero of the NaN's opposite sign.
    @Test func float4NaNIsZeroOfTheOppositeSign() {
        for (bits, code) in [(UInt32(0x7FC0_0000), UInt8(8)), (0xFFC0_0000, 0), (0x7F80_0001, 8), (0xFFFF_FFFF, 0)] {
            #expect(LowPrecision.FloatFormat.float4e2m1.encode(Float(bitPattern: bits), saturate: true) == code, "NaN 0x\(String(bits, radix: 16))")
        }
    }

    @Test func largestFiniteValues() {
        #expect(LowPrecision.FloatFormat.float8e4m3fn.maxFinite == 448)
        #expect(LowPrecision.FloatFormat.float8e4m3fnuz.maxFinite == 240)
        #expect(LowPrecision.FloatFormat.float8e5m2.maxFinite == 57344)
        #expect(LowPrecision.FloatFormat.float8e5m2fnuz.maxFinite == 57344)
        #expect(LowPrecision.FloatFormat.float4e2m1.maxFinite == 6)
    }

    /// Every code decodes to a value that encodes back to the same code (NaNs to the format's
    /// NaN code, which decodes to NaN).
    @Test func everyCodeRoundTrips() {
        let formats: [(LowPrecision.FloatFormat, Int)] = [(.float8e4m3fn, 256), (.float8e4m3fnuz, 256), (.float8e5m2, 256), (.float8e5m2fnuz, 256), (.float4e2m1, 16)]
        for (format, count) in formats {
            for code in 0..<count {
                let v = format.decode(UInt8(code))
                let back = format.encode(v, saturate: false)
                if v.isNaN {
                    #expect(format.decode(back).isNaN, "\(format) code \(code)")
                } else {
                    #expect(back == UInt8(code), "\(format) code \(code) = \(v) encodes to \(back)")
                }
            }
        }
        // The e2m1 values.
        #expect((0..<8).map { LowPrecision.FloatFormat.float4e2m1.decode(UInt8($0)) } == [0, 0.5, 1, 1.5, 2, 3, 4, 6])
    }

    @Test func e8m0RoundsPerModeAsONNX() {
        let x: [Float] = [1.5, 1.49, 1.75, 3, 0.75, 0x1.8p127, 0x1p127, 0x1p-127, 0x1p-128, 0x1p-130, 1e-45, -3, 0]
        let expected: [(LowPrecision.E8M0.RoundMode, Bool, [UInt8])] = [
            (.up, true, [128, 128, 128, 129, 127, 254, 254, 1, 1, 1, 1, 129, 0]),
            (.up, false, [128, 128, 128, 129, 127, 255, 254, 1, 1, 1, 1, 129, 0]),
            (.down, true, [127, 127, 127, 128, 126, 254, 254, 0, 0, 0, 0, 128, 0]),
            (.down, false, [127, 127, 127, 128, 126, 254, 254, 0, 0, 0, 0, 128, 0]),
            (.nearest, true, [128, 127, 128, 129, 127, 254, 254, 0, 0, 0, 0, 129, 0]),
            (.nearest, false, [128, 127, 128, 129, 127, 255, 254, 0, 0, 0, 0, 129, 0]),
        ]
        for (mode, saturate, codes) in expected {
            for (v, want) in zip(x, codes) {
                #expect(LowPrecision.E8M0.encode(v, saturate: saturate, mode: mode) == want, "\(mode) saturate=\(saturate): \(v)")
            }
        }
        for special in [Float.nan, .infinity, -.infinity] { #expect(LowPrecision.E8M0.encode(special, saturate: true, mode: .up) == 0xFF) }
        #expect(LowPrecision.E8M0.decode(127) == 1 && LowPrecision.E8M0.decode(0) == 0x1p-127 && LowPrecision.E8M0.decode(254) == 0x1p127)
        #expect(LowPrecision.E8M0.decode(0xFF).isNaN)
    }

    @Test func smallIntegersWrap() {
        #expect([5, 9, -9, 17, 300, -3].map { LowPrecision.IntFormat.int4.wrapped($0) } == [5, -7, 7, 1, -4, -3])
        #expect([5, 9, -9, 17, 300, -3].map { LowPrecision.IntFormat.uint4.wrapped($0) } == [5, 9, 7, 1, 12, 13])
        #expect([5, 9, -9, 17, 300, -3].map { LowPrecision.IntFormat.int2.wrapped($0) } == [1, 1, -1, 1, 0, 1])
        #expect([5, 9, -9, 17, 300, -3].map { LowPrecision.IntFormat.uint2.wrapped($0) } == [1, 1, 3, 1, 0, 1])
        #expect(LowPrecision.IntFormat.int4.min == -8 && LowPrecision.IntFormat.int4.max == 7)
        #expect(LowPrecision.IntFormat.uint2.min == 0 && LowPrecision.IntFormat.uint2.max == 3)
    }

    /// ONNX's raw_data order: element 0 in the lowest bits of byte 0; a partial last byte's
    /// unused bits are 0.
    @Test func packingIsLowBitsFirst() {
        #expect(LowPrecision.packCodes([0x1, 0x2, 0x3], bits: 4) == [0x21, 0x03])
        #expect(LowPrecision.packCodes([0, 1, 2, 3, 3], bits: 2) == [0b1110_0100, 0b0000_0011])
        ([0x21, 0x03] as [UInt8]).withUnsafeBytes { #expect(LowPrecision.unpackCodes($0, bits: 4, count: 3) == [1, 2, 3]) }
        ([0b1110_0100, 0b0000_0011] as [UInt8]).withUnsafeBytes { #expect(LowPrecision.unpackCodes($0, bits: 2, count: 5) == [0, 1, 2, 3, 3]) }
    }
}
