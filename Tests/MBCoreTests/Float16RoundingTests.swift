import MBCore
import Testing

@Suite struct Float16RoundingTests {
    #if !(os(macOS) && arch(x86_64))  // Float16 is missing only there
    /// Our binary16 rounding equals the native conversion on every float near the binary16 range
    /// boundaries, on every tie, and on a seeded sample of all bit patterns.
    @Test func float16BitsEqualNativeConversion() {
        var patterns: [UInt32] = [0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F7F_FFFF, 0x0000_0001]
        // Every binary16 value and the floats half an ulp around it (ties), both signs.
        for h in 0..<UInt32(0x7C00) {
            let f = Float(float16Bits: UInt16(h)).bitPattern
            for d: Int64 in [-1, 0, 1, 0x1000, -0x1000, 0xFFF, 0x1001] {
                let p = UInt32(truncatingIfNeeded: Int64(f) + d)
                patterns += [p, p | 0x8000_0000]
            }
        }
        var rng = SeededGenerator(seed: 0xF16)
        for _ in 0..<200_000 { patterns.append(UInt32.random(in: .min ... .max, using: &rng)) }
        var failures = 0
        for p in patterns {
            let x = Float(bitPattern: p)
            let native = Float16(x).bitPattern, ours = x.float16Bits
            let same = x.isNaN ? (ours & 0x7C00 == 0x7C00 && ours & 0x3FF != 0) : ours == native
            if !same && failures < 10 {
                failures += 1
                Issue.record("float bits 0x\(String(p, radix: 16)) (\(x)): ours 0x\(String(ours, radix: 16)), Float16 gives 0x\(String(native, radix: 16))")
            }
        }
    }
    #endif

    @Test func roundedToFloat16HandlesRangeEnds() {
        #expect(Float(65504).roundedToFloat16 == 65504)
        #expect(Float(65520).roundedToFloat16 == .infinity)  // the tie above the largest half rounds to even: infinity
        #expect(Float(65519).roundedToFloat16 == 65504)
        #expect(Float(-1e9).roundedToFloat16 == -.infinity)
        #expect(Float(0x1p-25).roundedToFloat16 == 0)  // a tie between 0 and the smallest subnormal
        #expect(Float(0x1.8p-25).roundedToFloat16 == 0x1p-24)
        #expect(Float(1.0009765625).roundedToFloat16 == 1.0009765625)
        #expect(Float(1.00048828125).roundedToFloat16 == 1)  // tie to even
    }

    @Test func roundedToBFloat16KeepsTheUpperHalfTiesToEven() {
        #expect(Float(1).roundedToBFloat16 == 1)
        #expect(Float(bitPattern: 0x3F80_8000).roundedToBFloat16 == Float(bitPattern: 0x3F80_0000))  // tie, even stays
        #expect(Float(bitPattern: 0x3F81_8000).roundedToBFloat16 == Float(bitPattern: 0x3F82_0000))  // tie, odd rounds up
        #expect(Float(bitPattern: 0x3F80_8001).roundedToBFloat16 == Float(bitPattern: 0x3F81_0000))
        #expect(Float.greatestFiniteMagnitude.roundedToBFloat16 == .infinity)
        #expect(Float.nan.roundedToBFloat16.isNaN)
        #expect(Float(-2.5).roundedToBFloat16 == -2.5)
    }
}
