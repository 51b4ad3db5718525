/// ONNX's 8-, 4- and 2-bit element types: plain reference conversions to and from Float, with the
/// rounding and saturation rules of ONNX's Cast (round to nearest, ties to even; `saturate`).
///
/// Every value of these types is exactly a Float, so the runtime holds them as Float (the small
/// float formats) or Int32 (the small integers) and rounds through these functions where a model
/// produces such a value (Cast, CastLike).
public enum LowPrecision {
    /// A small floating-point format: its field widths, bias and which codes are special.
    public struct FloatFormat: Sendable, Equatable {
        public let exponentBits: Int
        public let mantissaBits: Int
        public let bias: Int
        /// How the format spells the values outside the finite range.
        public enum Specials: Sendable, Equatable {
            /// No infinity; exponent and mantissa all ones is NaN (float8e4m3fn).
            case finiteNaNAllOnes
            /// No infinity, no negative zero; the code 0x80 (sign alone) is NaN (the `fnuz` types).
            case finiteNaNNegativeZero
            /// IEEE-like: all-ones exponent is infinity (mantissa 0) or NaN (float8e5m2).
            case ieee
            /// Neither infinity nor NaN (float4e2m1).
            case finiteOnly
        }
        public let specials: Specials

        var totalBits: Int { 1 + exponentBits + mantissaBits }
        var signBit: UInt8 { UInt8(1) << (exponentBits + mantissaBits) }
        var mantissaMask: Int { (1 << mantissaBits) - 1 }
        var exponentMask: Int { (1 << exponentBits) - 1 }

        /// The largest finite value.
        public var maxFinite: Float {
            var topExponent = exponentMask
            var topMantissa = mantissaMask
            switch specials {
            case .ieee: topExponent -= 1
            case .finiteNaNAllOnes: topMantissa -= 1
            case .finiteNaNNegativeZero, .finiteOnly: break
            }
            return Float(sign: .plus, exponent: topExponent - bias, significand: 1 + Float(topMantissa) / Float(1 << mantissaBits))
        }

        /// The code of the largest finite value with the given sign bit.
        func maxCode(_ sign: UInt8) -> UInt8 {
            switch specials {
            case .ieee: return sign | UInt8(((exponentMask - 1) << mantissaBits) | mantissaMask)
            case .finiteNaNAllOnes: return sign | UInt8((exponentMask << mantissaBits) | (mantissaMask - 1))
            case .finiteNaNNegativeZero, .finiteOnly: return sign | UInt8((exponentMask << mantissaBits) | mantissaMask)
            }
        }

        /// What a NaN becomes.
        func nanCode(_ sign: UInt8) -> UInt8 {
            switch specials {
            case .finiteNaNAllOnes: return sign | UInt8((exponentMask << mantissaBits) | mantissaMask)
            case .finiteNaNNegativeZero: return 0x80
            case .ieee: return sign | UInt8((exponentMask << mantissaBits) | (1 << (mantissaBits - 1)))
            // No NaN: onnx's reference (ml_dtypes) gives a zero of the opposite sign (+NaN → −0).
            case .finiteOnly: return sign ^ signBit
            }
        }

        /// What a value beyond the finite range becomes without saturation.
        func overflowCode(_ sign: UInt8) -> UInt8 {
            switch specials {
            case .ieee: return sign | UInt8(exponentMask << mantissaBits)
            case .finiteNaNAllOnes, .finiteNaNNegativeZero: return nanCode(sign)
            case .finiteOnly: return maxCode(sign)
            }
        }

        public static let float8e4m3fn = FloatFormat(exponentBits: 4, mantissaBits: 3, bias: 7, specials: .finiteNaNAllOnes)
        public static let float8e4m3fnuz = FloatFormat(exponentBits: 4, mantissaBits: 3, bias: 8, specials: .finiteNaNNegativeZero)
        public static let float8e5m2 = FloatFormat(exponentBits: 5, mantissaBits: 2, bias: 15, specials: .ieee)
        public static let float8e5m2fnuz = FloatFormat(exponentBits: 5, mantissaBits: 2, bias: 16, specials: .finiteNaNNegativeZero)
        public static let float4e2m1 = FloatFormat(exponentBits: 2, mantissaBits: 1, bias: 1, specials: .finiteOnly)

        /// The value of a code (the low `1 + exponentBits + mantissaBits` bits).
        public func decode(_ code: UInt8) -> Float {
            let sign = code & signBit != 0
            let e = Int(code >> mantissaBits) & exponentMask, m = Int(code) & mantissaMask
            switch specials {
            case .finiteNaNAllOnes where e == exponentMask && m == mantissaMask: return .nan
            case .finiteNaNNegativeZero where sign && e == 0 && m == 0: return .nan
            case .ieee where e == exponentMask: return m == 0 ? (sign ? -.infinity : .infinity) : .nan
            default: break
            }
            let magnitude = e == 0
                ? Float(m) * Float(sign: .plus, exponent: 1 - bias - mantissaBits, significand: 1)
                : Float(sign: .plus, exponent: e - bias, significand: 1 + Float(m) / Float(1 << mantissaBits))
            return sign ? -magnitude : magnitude
        }

        /// The code nearest `x` (ties to even). With `saturate`, values beyond the finite range
        /// (infinities included) become the largest finite value of their sign; without it they
        /// become infinity where the format has one, else NaN (float4e2m1 always saturates).
        public func encode(_ x: Float, saturate: Bool) -> UInt8 {
            let sign: UInt8 = x.sign == .minus ? signBit : 0
            if x.isNaN { return nanCode(sign) }
            if x.isInfinite { return saturate ? maxCode(sign) : overflowCode(sign) }
            let a = x.magnitude
            // The spacing of representable values at a's binade (subnormals share the lowest one).
            let exponent = max(Int(a.exponent), 1 - bias)
            let quantum = Float(sign: .plus, exponent: exponent - mantissaBits, significand: 1)
            // a / quantum and back are exact scalings by powers of two (no Float underflow here).
            let r = (a / quantum).rounded(.toNearestOrEven) * quantum
            if r > maxFinite { return saturate ? maxCode(sign) : overflowCode(sign) }
            if r == 0 { return specials == .finiteNaNNegativeZero ? 0 : sign }
            let re = Int(r.exponent)
            if re < 1 - bias {
                return sign | UInt8(Int(r / Float(sign: .plus, exponent: 1 - bias - mantissaBits, significand: 1)))
            }
            let m = Int(r / Float(sign: .plus, exponent: re - mantissaBits, significand: 1)) - (1 << mantissaBits)
            return sign | UInt8(((re + bias) << mantissaBits) | m)
        }

        /// `x` rounded to the nearest value of this format (as Cast to it and back to float gives).
        public func rounded(_ x: Float, saturate: Bool) -> Float { decode(encode(x, saturate: saturate)) }
    }

    /// float8e8m0: an exponent alone (2^(code − 127)); 0xFF is NaN; no sign, no zero.
    public enum E8M0 {
        /// How Cast to float8e8m0 rounds (its `round_mode` attribute).
        public enum RoundMode: String, Sendable, CaseIterable { case up, down, nearest }

        public static func decode(_ code: UInt8) -> Float {
            code == 0xFF ? .nan : Float(sign: .plus, exponent: Int(code) - 127, significand: 1)
        }

        /// As onnx's reference: the float32 exponent field, rounded up by the mantissa per mode; NaN
        /// and infinity become NaN; with `saturate` a value above 2^127 stays 2^127, without it NaN.
        /// The sign is ignored.
        public static func encode(_ x: Float, saturate: Bool, mode: RoundMode) -> UInt8 {
            let bits = x.bitPattern
            let e = Int((bits >> 23) & 0xFF), fraction = bits & 0x7F_FFFF
            if e == 0xFF { return 0xFF }
            var up: Bool
            switch mode {
            case .down: up = false
            case .up: up = fraction != 0
            case .nearest:
                let guardBit = fraction & 0x40_0000 != 0, roundBit = fraction & 0x20_0000 != 0, sticky = fraction & 0x1F_FFFF != 0
                up = guardBit && (roundBit || sticky || e > 0)
            }
            if up, e == 0xFE, saturate { up = false }
            return UInt8(e + (up ? 1 : 0))
        }
    }

    /// The small integer types: their range, for wrapping a wider integer to them.
    public struct IntFormat: Sendable, Equatable {
        public let bits: Int
        public let signed: Bool

        public static let int4 = IntFormat(bits: 4, signed: true)
        public static let uint4 = IntFormat(bits: 4, signed: false)
        public static let int2 = IntFormat(bits: 2, signed: true)
        public static let uint2 = IntFormat(bits: 2, signed: false)

        public var min: Int64 { signed ? -(1 << (bits - 1)) : 0 }
        public var max: Int64 { signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1 }

        /// The low `bits` bits of `v`, sign-extended for signed types (as a C cast wraps).
        public func wrapped(_ v: Int64) -> Int64 {
            let low = v & ((1 << bits) - 1)
            return signed && low >= (1 << (bits - 1)) ? low - (1 << bits) : low
        }
    }

    /// The float format of a small float element type, nil for other types.
    public static func floatFormat(_ type: ElementType) -> FloatFormat? {
        switch type {
        case .float8e4m3fn: return .float8e4m3fn
        case .float8e4m3fnuz: return .float8e4m3fnuz
        case .float8e5m2: return .float8e5m2
        case .float8e5m2fnuz: return .float8e5m2fnuz
        case .float4e2m1: return .float4e2m1
        default: return nil
        }
    }

    /// The integer format of a sub-byte integer element type, nil for other types.
    public static func intFormat(_ type: ElementType) -> IntFormat? {
        switch type {
        case .int4: return .int4
        case .uint4: return .uint4
        case .int2: return .int2
        case .uint2: return .uint2
        default: return nil
        }
    }

    /// The `count` codes of a packed sub-byte tensor (ONNX `raw_data` layout: element 0 in the
    /// lowest bits of byte 0). `bytes` must hold exactly `type.rawByteCount(elements: count)`
    /// bytes; the caller checks this and names the tensor.
    public static func unpackCodes(_ bytes: UnsafeRawBufferPointer, bits: Int, count: Int) -> [UInt8] {
        precondition(bits == 1 || bits == 2 || bits == 4 || bits == 8, "unpackCodes: \(bits) bits per element")
        let perByte = 8 / bits, mask = UInt8((1 << bits) - 1)
        return (0..<count).map { i in (bytes[i / perByte] >> ((i % perByte) * bits)) & mask }
    }

    /// Codes packed as ONNX's `raw_data` (the inverse of `unpackCodes`; unused high bits are 0).
    public static func packCodes(_ codes: [UInt8], bits: Int) -> [UInt8] {
        precondition(bits == 1 || bits == 2 || bits == 4 || bits == 8, "packCodes: \(bits) bits per element")
        let perByte = 8 / bits, mask = UInt8((1 << bits) - 1)
        var out = [UInt8](repeating: 0, count: (codes.count + perByte - 1) / perByte)
        for (i, c) in codes.enumerated() { out[i / perByte] |= (c & mask) << ((i % perByte) * bits) }
        return out
    }
}
