import Foundation

/// A second reader of `.mbm` files, written from `Schemas/mbm-format.md` alone and sharing no
/// code with MBFormat or MBCore's `PackedTensor`: the section table, the tensor directory, the
/// binarized payload (scales, sign streams, rANS mask) and dequantization by the spec's formula.
/// Tests use it to know where each tensor's bytes lie (tampering) and as the independent
/// dequantization reference. It trusts its input (test files only) and stops at the first
/// inconsistency with a precondition failure.
public struct SpecReader {
    public struct Section { public var tag: String; public var offset: Int; public var length: Int; public var crcAt: Int }

    public struct Tensor {
        public var name: String
        public var elementType: Int32
        public var shape: [Int]
        /// 0 raw, 1 strings, 2 binarized, 3 linear, 4 palette.
        public var encoding: UInt8
        /// Absolute file offset and length of the payload.
        public var offset: Int
        public var length: Int
        // Binarized only.
        public var levels = 0
        public var channelAxis = -1
        public var groups = 1
        public var maskLength = 0
        public var maskCoding: UInt8 = 0
        /// 0 float32 scales, 1 float16 scales (the descriptor's fourth byte).
        public var scaleType: UInt8 = 0
        public var frequencies: [Int] = []
        public var bitCounts: [Int] = []
        /// Mask coding 2: the block size along each dimension.
        public var blockSizes: [Int] = []
        // Linear and palette only: bits per code, value type (0 float32, 1 float16), group axis
        // (-1: one group), channels per group; `groups` above is the group count.
        public var codeBits = 0
        public var valueType: UInt8 = 0
        public var channelsPerGroup = 1

        public var count: Int { shape.reduce(1, *) }
        /// Bytes per stored scale: 4 (float32) or 2 (float16).
        public var scaleSize: Int { scaleType == 1 ? 2 : 4 }
        /// Absolute ranges of the binarized payload's parts (spec order: scales, padding, signs, mask).
        public var scalesRange: Range<Int> { offset..<(offset + scaleSize * levels * groups) }
        public var signsRange: Range<Int> {
            let start = offset + (scaleSize * levels * groups + 7) / 8 * 8
            return start..<(start + bitCounts.reduce(0) { $0 + ($1 + 63) / 64 * 8 })
        }
        public var maskRange: Range<Int> { (offset + length - maskLength)..<(offset + length) }
    }

    public var bytes: [UInt8]
    public var sections: [Section] = []
    public var tensors: [Tensor] = []

    public init(bytes: [UInt8]) {
        self.bytes = bytes
        precondition(Array(bytes[0..<8]) == [0x89, 0x4D, 0x42, 0x4D, 0x0D, 0x0A, 0x1A, 0x0A], "not an .mbm file")
        let table = Int(u64(24)), count = Int(u32(32))
        for i in 0..<count {
            let e = table + 32 * i
            let tag = String(decoding: bytes[e..<(e + 4)], as: UTF8.self)
            sections.append(Section(tag: tag, offset: Int(u64(e + 8)), length: Int(u64(e + 16)), crcAt: e + 24))
        }
        let data = section("DATA").offset
        var p = section("TDIR").offset
        let n = Int(u32(p)); p += 4
        for _ in 0..<n {
            let nameLength = Int(u32(p)); p += 4
            let name = String(decoding: bytes[p..<(p + nameLength)], as: UTF8.self); p += nameLength
            let type = Int32(bitPattern: u32(p)); p += 4
            let rank = Int(u32(p)); p += 4
            var shape: [Int] = []
            for _ in 0..<rank { shape.append(Int(u64(p))); p += 8 }
            let encoding = bytes[p]; p += 4
            let offset = data + Int(u64(p)); p += 8
            let length = Int(u64(p)); p += 8
            var t = Tensor(name: name, elementType: type, shape: shape, encoding: encoding, offset: offset, length: length)
            if encoding == 2 {
                t.levels = Int(bytes[p]); t.maskCoding = bytes[p + 2]; t.scaleType = bytes[p + 3]; p += 4
                precondition(t.scaleType <= 1, "\(name): scale type \(t.scaleType)")
                t.channelAxis = Int(Int32(bitPattern: u32(p))); p += 4
                t.groups = Int(u32(p)); p += 4
                t.maskLength = Int(u64(p)); p += 8
                if t.maskCoding == 1 || t.maskCoding == 2 { for _ in 0..<t.levels { t.frequencies.append(Int(u16(p))); p += 2 } }
                for _ in 0..<t.levels { t.bitCounts.append(Int(u64(p))); p += 8 }
                if t.maskCoding == 2 { for _ in shape { t.blockSizes.append(Int(u32(p))); p += 4 } }
            }
            if encoding == 3 || encoding == 4 {
                t.codeBits = Int(bytes[p]); t.valueType = bytes[p + 1]; p += 4
                precondition((1...8).contains(t.codeBits) && t.valueType <= 1, "\(name): bits \(t.codeBits), value type \(t.valueType)")
                t.channelAxis = Int(Int32(bitPattern: u32(p))); p += 4
                t.channelsPerGroup = Int(u32(p)); p += 4
                t.groups = Int(u32(p)); p += 4
            }
            tensors.append(t)
        }
    }

    /// Linear (3) and palette (4) tensors by the spec: per group a scale and zero point, or 2^n
    /// values; codes `bits` wide, least-significant bit first, in flat order after the table
    /// padded to 8 bytes. Value = s·(c − z) or palette[g][c].
    public func dequantizeCodes(_ t: Tensor) -> [Float] {
        precondition(t.encoding == 3 || t.encoding == 4)
        let size = t.valueType == 1 ? 2 : 4
        func value(_ i: Int) -> Float { t.valueType == 1 ? Self.binary16(u16(t.offset + size * i)) : f32(t.offset + size * i) }
        let tableValues = t.encoding == 3 ? t.groups : t.groups << t.codeBits
        let zeroAt = t.offset + size * tableValues
        var codesAt = zeroAt + (t.encoding == 3 ? t.groups : 0)
        codesAt = t.offset + (codesAt - t.offset + 7) / 8 * 8
        precondition(t.length == codesAt - t.offset + (t.count * t.codeBits + 63) / 64 * 8, "\(t.name): payload length")
        var out: [Float] = []
        for j in 0..<t.count {
            var code = 0
            for b in 0..<t.codeBits {
                let bit = j * t.codeBits + b
                code |= Int(bytes[codesAt + bit / 8] >> UInt8(bit % 8) & 1) << b
            }
            var g = 0
            if t.channelAxis >= 0 {
                let inner = t.shape[(t.channelAxis + 1)...].reduce(1, *)
                g = (j / inner) % t.shape[t.channelAxis] / t.channelsPerGroup
            }
            if t.encoding == 3 {
                out.append(value(g) * Float(code - Int(bytes[zeroAt + g])))
            } else {
                out.append(value(g << t.codeBits + code))
            }
        }
        return out
    }

    public func section(_ tag: String) -> Section { sections.first { $0.tag == tag }! }
    public func tensor(_ name: String) -> Tensor? { tensors.first { $0.name == name } }

    func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
    func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * $1) } }
    func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * $1) } }
    func f32(_ at: Int) -> Float { Float(bitPattern: u32(at)) }

    /// The mask M_j (1...K) of every entry in flat order: all K for uniform coding, else the
    /// spec's static rANS decoder.
    /// Coding 2: one symbol per block (row-major over the block grid), each entry taking its
    /// block's width.
    public func mask(_ t: Tensor) -> [Int] {
        guard t.maskCoding == 1 || t.maskCoding == 2 else { return [Int](repeating: t.levels, count: t.count) }
        let grid = zip(t.shape, t.blockSizes).map { ($0 + $1 - 1) / $1 }
        let symbols = t.maskCoding == 1 ? t.count : grid.reduce(1, *)
        var cumulative = [0]
        for f in t.frequencies { cumulative.append(cumulative.last! + f) }
        var at = t.maskRange.lowerBound
        var x = UInt64(bytes[at]) << 24 | UInt64(bytes[at + 1]) << 16 | UInt64(bytes[at + 2]) << 8 | UInt64(bytes[at + 3])
        at += 4
        var out: [Int] = []
        out.reserveCapacity(t.count)
        for _ in 0..<symbols {
            let slot = Int(x % 32768)
            let s = (0..<t.levels).first { cumulative[$0] <= slot && slot < cumulative[$0 + 1] }!
            x = UInt64(t.frequencies[s]) * (x >> 15) + UInt64(slot - cumulative[s])
            while x < (1 << 23) { x = (x << 8) | UInt64(bytes[at]); at += 1 }
            out.append(s + 1)
        }
        precondition(x == 1 << 23 && at == t.maskRange.upperBound, "\(t.name): damaged mask stream")
        guard t.maskCoding == 2 else { return out }
        return (0..<t.count).map { j in
            // Entry j's multi-index, last dimension fastest, and its block's row-major number.
            var rest = j, block = 0, gridStride = 1
            for d in t.shape.indices.reversed() {
                let i = rest % t.shape[d]
                rest /= t.shape[d]
                block += i / t.blockSizes[d] * gridStride
                gridStride *= grid[d]
            }
            return out[block]
        }
    }

    /// The spec's value of every entry, flat order: sum over k <= M_j of s_kj * mu_k(group),
    /// added in float32 from level 1 up.
    public func dequantize(_ t: Tensor) -> [Float] {
        precondition(t.encoding == 2)
        let m = mask(t)
        // Group-major order: group g lists the flat indices whose channel-axis coordinate is g.
        let order: [Int]
        var groupOf = [Int](repeating: 0, count: t.count)
        if t.channelAxis < 0 {
            order = Array(0..<t.count)
        } else {
            let inner = t.shape[(t.channelAxis + 1)...].reduce(1, *)
            var byGroup = [[Int]](repeating: [], count: t.groups)
            for j in 0..<t.count {
                let g = (j / inner) % t.shape[t.channelAxis]
                groupOf[j] = g
                byGroup[g].append(j)
            }
            order = byGroup.flatMap { $0 }
        }
        var values = [Float](repeating: 0, count: t.count)
        var signWord = t.signsRange.lowerBound
        for k in 1...t.levels {
            var bit = 0
            for j in order where m[j] >= k {
                let word = u64(signWord + (bit / 64) * 8)
                let s: Float = (word >> UInt64(bit % 64)) & 1 == 1 ? 1 : -1
                values[j] += s * scale(t, level: k, group: groupOf[j])
                bit += 1
            }
            precondition(bit == t.bitCounts[k - 1], "\(t.name): level \(k) has \(bit) active entries, the directory says \(t.bitCounts[k - 1])")
            signWord += (bit + 63) / 64 * 8
        }
        return values
    }

    /// Level k's (1-based) scale of group g, widened to float32 when stored as float16.
    func scale(_ t: Tensor, level k: Int, group g: Int) -> Float {
        let at = t.scalesRange.lowerBound + t.scaleSize * ((k - 1) * t.groups + g)
        return t.scaleType == 1 ? Self.binary16(u16(at)) : f32(at)
    }

    /// IEEE 754 binary16 to Float, from the bit layout (1 sign, 5 exponent, 10 fraction bits):
    /// subnormals scale the fraction by 2^-24; exponent 31 is Inf or NaN.
    static func binary16(_ h: UInt16) -> Float {
        let sign: Float = h & 0x8000 != 0 ? -1 : 1
        let exponent = Int(h >> 10) & 0x1F, fraction = Int(h & 0x3FF)
        if exponent == 0 { return sign * Float(fraction) * 0x1p-24 }
        if exponent == 31 { return fraction == 0 ? sign * .infinity : .nan }
        return sign * (1 + Float(fraction) / 1024) * Float(sign: .plus, exponent: exponent - 15, significand: 1)
    }

    /// The raw float32 elements of a raw-encoded tensor.
    public func floats(_ t: Tensor) -> [Float] {
        precondition(t.encoding == 0 && t.elementType == 1)
        return (0..<t.count).map { f32(t.offset + 4 * $0) }
    }
}
