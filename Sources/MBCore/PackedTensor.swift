/// The binarized form of one tensor, shared by the converter's writer and the runtime: the
/// mask (one bit width per entry), and per level the scale of each group and the sign bits of
/// that level's ACTIVE entries only.
///
/// Sign bits of a level are one stream over the groups in order (no padding between groups),
/// packed into `UInt64` words least-significant bit first; bit `i` is the sign of the `i`-th
/// entry, in group-major order, whose bit width reaches the level. A set bit means +1. Bits
/// past the end of the stream are zero.
///
/// Dequantization is `T_hat = sum over k <= M of s_k * mu_k`, added in Float from level 1 up;
/// `dequantized()` is the one definition, `dequantizedReference()` its plain twin.
public struct PackedTensor: Sendable, Equatable {
    public var shape: [Int]
    public var scale: ScaleMode
    /// Bit width of each entry, flat order, each in 1...levels.count.
    public var mask: [UInt8]
    /// Level k (1-based) is `levels[k - 1]`.
    public var levels: [PackedLevel]
    /// The scales are stored as IEEE binary16 (every scale is exactly a float16 value); false:
    /// float32, the paper's and the default.
    public var halfScales: Bool

    public init(shape: [Int], scale: ScaleMode, mask: [UInt8], levels: [PackedLevel], halfScales: Bool = false) {
        self.shape = shape
        self.scale = scale
        self.mask = mask
        self.levels = levels
        self.halfScales = halfScales
    }

    /// The same tensor with every scale rounded to the nearest float16 (stored as such), or nil
    /// when a scale would overflow float16 or a non-zero scale would round to zero.
    public func withHalfScales() -> PackedTensor? {
        var out = self
        for k in out.levels.indices {
            for g in out.levels[k].scales.indices {
                let s = out.levels[k].scales[g]
                let h = Float(float16Bits: s.float16Bits)
                guard h.isFinite, (h == 0) == (s == 0) else { return nil }
                out.levels[k].scales[g] = h
            }
        }
        out.halfScales = true
        return out
    }

    public var count: Int { mask.count }
    public var groupCount: Int { levels.first?.scales.count ?? 1 }

    /// The group layout; valid tensors (see `validate()`) always have one.
    public var layout: GroupLayout {
        try! GroupLayout(shape: shape, scale: scale)
    }

    /// The largest number of levels a packed tensor has.
    public static let maxLevels = 8

    /// Checks that every part fits the others: mask values, per-group active counts, word
    /// counts, zero padding, finite scales. Everything a reader of this form may rely on.
    public func validate() throws(PackedTensorError) {
        let layout: GroupLayout
        do throws(PackedTensorError) {
            layout = try GroupLayout(shape: shape, scale: scale)
        } catch {
            throw PackedTensorError("shape \(shape) with \(scale) scales: \(error)")
        }
        guard layout.count == mask.count else {
            throw PackedTensorError("shape \(shape) holds \(layout.count) entries but the mask has \(mask.count)")
        }
        guard !levels.isEmpty, levels.count <= Self.maxLevels else {
            throw PackedTensorError("\(levels.count) levels; expected 1...\(Self.maxLevels)")
        }
        // Entries of each width per group (one flat table, filled in group-major order, so the
        // first bad entry reported is the same), then level k's count is those of width > k.
        let widths = levels.count
        var histogram = [Int](repeating: 0, count: layout.groupCount * (widths + 1))
        var bad: (entry: Int, width: Int)?
        mask.withUnsafeBufferPointer { m in
            histogram.withUnsafeMutableBufferPointer { h in
                let identity = layout.isIdentity
                for p in 0..<layout.count {
                    let i = identity ? p : layout.flatIndex(ofGroupMajor: p)
                    let w = Int(m[i])
                    guard w >= 1, w <= widths else { bad = (i, w); return }
                    let g = layout.groupSize == 0 ? 0 : p / layout.groupSize
                    h[g * (widths + 1) + w] += 1
                }
            }
        }
        if let bad { throw PackedTensorError("mask entry \(bad.entry) is \(bad.width); expected 1...\(levels.count)") }
        var counts = [[Int]](repeating: [Int](repeating: 0, count: layout.groupCount), count: widths)
        for g in 0..<layout.groupCount {
            var reaching = 0
            for w in stride(from: widths, through: 1, by: -1) {
                reaching += histogram[g * (widths + 1) + w]
                counts[w - 1][g] = reaching
            }
        }
        for (k, level) in levels.enumerated() {
            guard level.scales.count == layout.groupCount, level.activeCounts.count == layout.groupCount else {
                throw PackedTensorError("level \(k + 1) has \(level.scales.count) scales and \(level.activeCounts.count) counts for \(layout.groupCount) groups")
            }
            guard level.activeCounts == counts[k] else {
                throw PackedTensorError("level \(k + 1) active counts \(level.activeCounts) disagree with the mask (\(counts[k]))")
            }
            if let bad = level.scales.firstIndex(where: { !$0.isFinite }) {
                throw PackedTensorError("level \(k + 1) scale of group \(bad) is \(level.scales[bad])")
            }
            if halfScales, let bad = level.scales.firstIndex(where: { Float(float16Bits: $0.float16Bits) != $0 }) {
                throw PackedTensorError("level \(k + 1) scale of group \(bad) is \(level.scales[bad]), not a float16 value")
            }
            let bits = counts[k].reduce(0, +)
            guard level.signs.count == (bits + 63) / 64 else {
                throw PackedTensorError("level \(k + 1) has \(level.signs.count) sign words for \(bits) bits")
            }
            if bits % 64 != 0, level.signs[bits / 64] >> UInt64(bits % 64) != 0 {
                throw PackedTensorError("level \(k + 1) has non-zero padding bits after bit \(bits)")
            }
        }
    }
}

/// One level of a packed tensor.
public struct PackedLevel: Sendable, Equatable {
    /// mu_k of each group; 0 (and meaningless) where the group has no active entry.
    public var scales: [Float]
    /// How many entries of each group reach this level.
    public var activeCounts: [Int]
    /// The sign stream (see `PackedTensor`).
    public var signs: [UInt64]

    public init(scales: [Float], activeCounts: [Int], signs: [UInt64]) {
        self.scales = scales
        self.activeCounts = activeCounts
        self.signs = signs
    }

    /// Number of sign bits in the stream.
    public var bitCount: Int { activeCounts.reduce(0, +) }

    /// Sign `i` of the stream as +1 or -1.
    @inlinable
    public func sign(_ i: Int) -> Float { (signs[i >> 6] >> UInt64(i & 63)) & 1 == 1 ? 1 : -1 }
}

/// Packs booleans into words LSB-first (plain version, for tests and small data).
public func packBits(_ bits: [Bool]) -> [UInt64] {
    var words = [UInt64](repeating: 0, count: (bits.count + 63) / 64)
    for (i, b) in bits.enumerated() where b { words[i / 64] |= 1 << UInt64(i % 64) }
    return words
}

/// The first `count` bits of `words`, LSB-first.
public func unpackBits(_ words: [UInt64], count: Int) -> [Bool] {
    (0..<count).map { (words[$0 / 64] >> UInt64($0 % 64)) & 1 == 1 }
}
