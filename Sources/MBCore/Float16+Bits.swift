extension Float {
    /// The value of an IEEE binary16 bit pattern, computed without relying on a native Float16
    /// type (absent on some platforms). Exact for every pattern, NaN payloads included.
    public init(float16Bits bits: UInt16) {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = Int(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x03FF)
        if exponent == 0x1F {
            self = Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        } else if exponent == 0 {
            // Zero or subnormal: mantissa * 2^-24.
            let magnitude = Float(mantissa) * 0x1p-24
            self = sign != 0 ? -magnitude : magnitude
        } else {
            self = Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
        }
    }
}

extension Float {
    /// The IEEE binary16 pattern nearest to this value (ties to even; too large → ±infinity; NaN
    /// stays a quiet NaN), computed without a native Float16 type.
    public var float16Bits: UInt16 {
        let bits = bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let exponent = Int((bits >> 23) & 0xFF)
        let mantissa = bits & 0x7F_FFFF
        if exponent == 0xFF { return sign | 0x7C00 | (mantissa != 0 ? 0x0200 | UInt16(truncatingIfNeeded: mantissa >> 13) : 0) }
        let halfExponent = exponent - 127 + 15
        if halfExponent >= 0x1F { return sign | 0x7C00 }
        if halfExponent <= 0 {
            // A binary16 subnormal (or zero): the 24-bit significand shifted so one unit is 2^-24.
            guard halfExponent >= -10 else { return sign }
            let significand = mantissa | 0x80_0000
            let shift = UInt32(14 - halfExponent)
            return sign | UInt16(truncatingIfNeeded: Self.roundShifted(significand, by: shift))
        }
        // A carry out of the mantissa bumps the exponent, up to infinity, as it should.
        let shifted = Self.roundShifted(mantissa, by: 13) + (UInt32(halfExponent) << 10)
        return sign | UInt16(truncatingIfNeeded: shifted)
    }

    /// This value rounded to binary16 precision and range (what a float16 tensor would hold).
    public var roundedToFloat16: Float { Float(float16Bits: float16Bits) }

    /// `value >> shift`, rounded to nearest with ties to even.
    private static func roundShifted(_ value: UInt32, by shift: UInt32) -> UInt32 {
        let kept = value >> shift
        let rest = value & ((1 << shift) - 1), half = UInt32(1) << (shift - 1)
        return rest > half || (rest == half && kept & 1 == 1) ? kept + 1 : kept
    }
}

extension Float {
    /// This value rounded to bfloat16 (the upper 16 bits of a float, ties to even; NaN stays NaN).
    public var roundedToBFloat16: Float {
        guard !isNaN else { return self }
        let bits = bitPattern
        let rounded = (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000
        return Float(bitPattern: rounded)
    }
}
