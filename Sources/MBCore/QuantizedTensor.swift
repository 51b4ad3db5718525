/// A weight stored as n-bit codes into a small table of values per group: the standard
/// quantizers mbconvert offers beside binarization (not in the paper), so one program can mix
/// them per layer with binarized layers and compare them at equal storage.
///
/// - `linear`: per group a scale s ≥ 0 and an integer zero point z in 0..<2^n; code c means
///   `s × Float(c − z)` (ONNX's DequantizeLinear for unsigned n-bit codes).
/// - `palette`: per group 2^n values (a k-means codebook); code c means `values[g × 2^n + c]`.
///
/// Groups run along `axis` (the output-channel axis): `channelsPerGroup` consecutive channels
/// share a group; `axis == nil` is one group for the whole tensor. Codes are in flat (C) order.
/// `dequantized()` is the one definition of the stored values.
public struct QuantizedTensor: Sendable, Equatable {
    public enum Scheme: String, Sendable, Equatable, CaseIterable {
        case linear
        case palette
    }

    public var shape: [Int]
    public var scheme: Scheme
    /// Bits per code, 1...8.
    public var bits: Int
    /// The channel axis groups run along; nil: one group.
    public var axis: Int?
    /// Consecutive channels per group (≥ 1; 1 when `axis` is nil).
    public var channelsPerGroup: Int
    /// One code per entry, flat order, each below 2^bits.
    public var codes: [UInt8]
    /// linear: one scale per group; palette: 2^bits values per group, group-major.
    public var values: [Float]
    /// linear: one zero point per group; palette: empty.
    public var zeroPoints: [UInt8]
    /// `values` are stored as IEEE binary16 (each is exactly a float16 value).
    public var halfValues: Bool

    public init(shape: [Int], scheme: Scheme, bits: Int, axis: Int?, channelsPerGroup: Int, codes: [UInt8],
                values: [Float], zeroPoints: [UInt8] = [], halfValues: Bool = false) {
        self.shape = shape
        self.scheme = scheme
        self.bits = bits
        self.axis = axis
        self.channelsPerGroup = channelsPerGroup
        self.codes = codes
        self.values = values
        self.zeroPoints = zeroPoints
        self.halfValues = halfValues
    }

    public static let bitRange = 1...8
    public var count: Int { shape.reduce(1, *) }
    /// Codes per group table: 2^bits.
    public var levels: Int { 1 << bits }

    /// Number of groups for a shape: ⌈channels / channelsPerGroup⌉ along `axis`, else 1.
    public static func groupCount(shape: [Int], axis: Int?, channelsPerGroup: Int) -> Int {
        guard let axis, axis >= 0, axis < shape.count, channelsPerGroup >= 1 else { return 1 }
        return (shape[axis] + channelsPerGroup - 1) / channelsPerGroup
    }

    public var groupCount: Int { Self.groupCount(shape: shape, axis: axis, channelsPerGroup: channelsPerGroup) }

    /// The group of every entry, flat order.
    public static func groupIndices(shape: [Int], axis: Int?, channelsPerGroup: Int) -> [Int] {
        let n = shape.reduce(1, *)
        guard let axis, axis >= 0, axis < shape.count, channelsPerGroup >= 1 else { return [Int](repeating: 0, count: n) }
        let inner = shape[(axis + 1)...].reduce(1, *), channels = shape[axis]
        guard inner > 0, channels > 0 else { return [Int](repeating: 0, count: n) }
        return (0..<n).map { ($0 / inner) % channels / channelsPerGroup }
    }

    /// The value code c stands for in group g.
    @inlinable
    public func value(code c: UInt8, group g: Int) -> Float {
        switch scheme {
        case .linear: return values[g] * Float(Int(c) - Int(zeroPoints[g]))
        case .palette: return values[g * levels + Int(c)]
        }
    }

    /// The stored values in flat order.
    public func dequantized() -> [Float] {
        let groups = Self.groupIndices(shape: shape, axis: axis, channelsPerGroup: channelsPerGroup)
        return codes.indices.map { value(code: codes[$0], group: groups[$0]) }
    }

    /// Codes packed `bits` each, least-significant bit first, into 64-bit words (the file's
    /// code stream; bits past the last code are zero).
    public var packedCodes: [UInt64] {
        var words = [UInt64](repeating: 0, count: (codes.count * bits + 63) / 64)
        for (i, c) in codes.enumerated() {
            let bit = i * bits, w = bit >> 6, o = UInt64(bit & 63)
            words[w] |= UInt64(c) << o
            if Int(o) + bits > 64 { words[w + 1] |= UInt64(c) >> (64 - o) }
        }
        return words
    }

    /// The inverse of `packedCodes`.
    public static func unpackCodes(_ words: [UInt64], count: Int, bits: Int) -> [UInt8] {
        let mask = UInt64((1 << bits) - 1)
        return (0..<count).map { i in
            let bit = i * bits, w = bit >> 6, o = UInt64(bit & 63)
            var v = words[w] >> o
            if Int(o) + bits > 64 { v |= words[w + 1] << (64 - o) }
            return UInt8(v & mask)
        }
    }

    /// The same tensor with every value rounded to the nearest float16, or nil when one would
    /// overflow or a non-zero value would round to zero. Codes are not revisited here; the
    /// quantizers round their tables before choosing codes.
    public func withHalfValues() -> QuantizedTensor? {
        var out = self
        for i in out.values.indices {
            let h = Float(float16Bits: values[i].float16Bits)
            guard h.isFinite, (h == 0) == (values[i] == 0) else { return nil }
            out.values[i] = h
        }
        out.halfValues = true
        return out
    }

    /// Checks every part against the others: bits, axis and group count, codes in range, table
    /// sizes, finite values (scales ≥ 0), float16 exactness.
    public func validate() throws(PackedTensorError) {
        guard Self.bitRange.contains(bits) else { throw PackedTensorError("\(bits)-bit codes; expected 1...8") }
        if let axis {
            guard axis >= 0, axis < shape.count else { throw PackedTensorError("group axis \(axis) outside shape \(shape)") }
            guard channelsPerGroup >= 1 else { throw PackedTensorError("\(channelsPerGroup) channels per group; expected at least 1") }
        }
        guard codes.count == count else { throw PackedTensorError("shape \(shape) holds \(count) entries but there are \(codes.count) codes") }
        if let bad = codes.firstIndex(where: { Int($0) >= levels }) {
            throw PackedTensorError("code \(bad) is \(codes[bad]); \(bits)-bit codes are below \(levels)")
        }
        let g = groupCount
        switch scheme {
        case .linear:
            guard values.count == g, zeroPoints.count == g else {
                throw PackedTensorError("\(values.count) scales and \(zeroPoints.count) zero points for \(g) groups")
            }
            if let bad = zeroPoints.firstIndex(where: { Int($0) >= levels }) {
                throw PackedTensorError("zero point of group \(bad) is \(zeroPoints[bad]); expected below \(levels)")
            }
            if let bad = values.firstIndex(where: { !$0.isFinite || $0 < 0 }) {
                throw PackedTensorError("scale of group \(bad) is \(values[bad]); expected finite and ≥ 0")
            }
        case .palette:
            guard values.count == g * levels, zeroPoints.isEmpty else {
                throw PackedTensorError("\(values.count) palette values for \(g) groups of \(levels)")
            }
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw PackedTensorError("palette value \(bad) is \(values[bad])")
            }
        }
        if halfValues, let bad = values.firstIndex(where: { Float(float16Bits: $0.float16Bits) != $0 }) {
            throw PackedTensorError("value \(bad) is \(values[bad]), not a float16 value")
        }
    }
}
