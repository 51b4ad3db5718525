import CBitPlanes
import MBCore

/// Binarized weights held at about their stored size (`bp_compact` in CBitPlanes.h), decoded a
/// tile of rows at a time into floats for the float kernels (`CompactPlanes+Layers.swift`).
///
/// Rows are the outputs (a Conv's output channels, a Gemm/MatMul's columns), each `columns`
/// entries long in the float weight's order (a Conv's `[inC/groups, k...]`). Held: level 1's
/// signs as one flat bitset (1 bit per weight); per row one byte of widths (how many levels every
/// entry has, how many some entry has); for a higher level, one bit per entry of the parent
/// level's active set saying whether it is active here (nothing for rows where every entry or
/// none is), and one sign bit per active entry; bit offsets per block of 16 rows; the scales.
/// For the paper's per-entry 70/20/10 split that is 1 + 1 + 0.3 activity bits + 1.4 sign bits =
/// 2.7 bits per weight, against 2.56 for the file's rANS-coded mask and signs; a channel mask
/// (every row one width) stores no activity bits at all. A structured mask (constant on blocks of
/// `groupChannels` consecutive input channels at one tap: `granularity: group:N`) holds its
/// activity bits one per block instead of one per entry (the grouped layout, CBitPlanes.h); the
/// decoders derive each row's per-entry activity from them as they go.
public final class CompactPlanes: @unchecked Sendable {
    public let rows: Int
    public let columns: Int
    public let levels: Int
    /// Grouped layout: input channels per mask block (>= 2); 1: per-entry activity bits.
    public let groupChannels: Int
    /// Taps per input channel in a row (a Conv's kernel size; 1 for a matrix).
    public let taps: Int
    let signs0: Owned<UInt64>
    let widths: Owned<UInt8>
    let acts: Owned<UInt64>
    let signs: Owned<UInt64>
    let actStart: Owned<Int64>
    let signStart: Owned<Int64>
    let scales: Owned<Float>
    let perRowScales: Bool

    /// The C view; the pointers live as long as `self`.
    var c: bp_compact {
        bp_compact(rows: Int32(rows), columns: Int32(columns), levels: Int32(levels), scaleStride: perRowScales ? 1 : 0,
                   groupChannels: Int32(groupChannels), taps: Int32(groupChannels > 1 ? taps : 1), signs0: signs0.pointer, widths: widths.pointer, acts: acts.pointer, signs: signs.pointer,
                   actStart: actStart.pointer, signStart: signStart.pointer, scales: scales.pointer)
    }

    /// Bytes held: what packed mode keeps resident for this weight.
    public var residentBytes: Int {
        signs0.bytes + widths.bytes + acts.bytes + signs.bytes + actStart.bytes + signStart.bytes + scales.bytes
    }

    /// Where the weights come from: entry (row, column) is flat entry `offset + row * rowStride +
    /// column * columnStride` of `mask` (bit widths, 1...levels) and of the per-level flat sign
    /// bitsets `signBits` (`PackedTensor.flatSignBits`); `scales[level][row]`, or one per level
    /// when `perRowScales` is false (`scales[level][0]`). A row's columns are `columns / taps`
    /// input channels of `taps` entries each (column c * taps + t); `taps` only decides which
    /// mask blocks the grouped layout can find.
    public struct Source {
        public var rows: Int
        public var columns: Int
        public var taps = 1
        public var rowStride: Int
        public var columnStride: Int
        public var offset: Int
        public var mask: [UInt8]
        public var signBits: [[UInt64]]
        public var scales: [[Float]]
        public var perRowScales: Bool

        public init(rows: Int, columns: Int, rowStride: Int, columnStride: Int, offset: Int = 0, mask: [UInt8], signBits: [[UInt64]],
                    scales: [[Float]], perRowScales: Bool) {
            self.rows = rows
            self.columns = columns
            self.rowStride = rowStride
            self.columnStride = columnStride
            self.offset = offset
            self.mask = mask
            self.signBits = signBits
            self.scales = scales
            self.perRowScales = perRowScales
        }
    }

    /// Appends bits to a stream of words, least significant first.
    struct BitWriter {
        var words: [UInt64] = []
        var count = 0
        mutating func append(_ bit: Bool) {
            if count & 63 == 0 { words.append(0) }
            if bit { words[count >> 6] |= UInt64(1) << UInt64(count & 63) }
            count += 1
        }
        /// Appends the first `n` bits of `other`.
        mutating func append(_ other: BitWriter) {
            let n = other.count
            guard n > 0 else { return }
            let shift = count & 63
            if shift == 0 {
                words += other.words
            } else {
                for w in other.words {
                    words[words.count - 1] |= w << UInt64(shift)
                    words.append(w >> UInt64(64 - shift))
                }
            }
            count += n
            words.removeLast(words.count - (count + 63) / 64)
        }
        /// The words with the zero word the decoder may read past the end.
        var padded: [UInt64] { words + [0] }
    }

    /// The largest g such that the mask is constant on every block of g consecutive input
    /// channels (the last block of a row may be shorter) at one tap of one row: the greatest
    /// common divisor of the channels where some row's width changes from the channel before.
    static func groupChannels(_ s: Source, taps T: Int) -> Int {
        let C = s.columns / T
        guard C > 1 else { return 1 }
        var g = 0
        for o in 0..<s.rows {
            let row = s.offset + o * s.rowStride
            for c in 1..<C where g == 0 || c % g != 0 {
                for t in 0..<T where s.mask[row + (c * T + t) * s.columnStride] != s.mask[row + ((c - 1) * T + t) * s.columnStride] {
                    g = Self.gcd(g, c)
                    break
                }
                if g == 1 { return 1 }
            }
        }
        return g == 0 ? C : g
    }

    static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    public init(_ s: Source) {
        precondition(s.rows * s.columns < Int(Int32.max) * 64, "too many entries for the compact layout")
        rows = s.rows
        columns = s.columns
        levels = max(1, s.signBits.count)
        perRowScales = s.perRowScales
        let L = levels, K = s.columns
        let T = s.taps >= 1 && K % s.taps == 0 ? s.taps : 1
        taps = T
        let g = levels > 1 ? Self.groupChannels(s, taps: T) : 1
        groupChannels = g
        // Grouped layout: blocks of a row in order (block of channels, tap), each its first entry.
        let blockFirst: [Int] = g > 1 ? (0..<((K / T + g - 1) / g)).flatMap { b in (0..<T).map { t in b * g * T + t } } : []
        let blocks = (s.rows + Int(BP_COMPACT_BLOCK) - 1) / Int(BP_COMPACT_BLOCK)
        var signs0 = BitWriter(), acts = BitWriter(), signs = BitWriter()
        var widths = [UInt8](repeating: 0, count: s.rows)
        // One stream per level, concatenated after the loop (offsets shifted then).
        var levelActs = [BitWriter](repeating: BitWriter(), count: L), levelSigns = levelActs
        var actStart = [Int64](repeating: 0, count: max(1, (L - 1) * blocks)), signStart = actStart
        func bit(_ k: Int, _ j: Int) -> Bool { (s.signBits[k][j >> 6] >> UInt64(j & 63)) & 1 == 1 }
        var m = [Int](repeating: 0, count: K)
        for o in 0..<s.rows {
            if o % Int(BP_COMPACT_BLOCK) == 0 {
                for k in 1..<max(1, L) {
                    actStart[(k - 1) * blocks + o / Int(BP_COMPACT_BLOCK)] = Int64(levelActs[k].count)
                    signStart[(k - 1) * blocks + o / Int(BP_COMPACT_BLOCK)] = Int64(levelSigns[k].count)
                }
            }
            var lo = L, hi = 1
            for c in 0..<K {
                let j = s.offset + o * s.rowStride + c * s.columnStride
                m[c] = Int(s.mask[j])
                lo = min(lo, m[c]); hi = max(hi, m[c])
                signs0.append(bit(0, j))
            }
            if K == 0 { lo = 1 }
            widths[o] = UInt8(lo) | UInt8(hi) << 4
            for k in 1..<max(1, hi) {
                if g > 1, k >= lo {
                    for c in blockFirst where m[c] >= k { levelActs[k].append(m[c] > k) }
                }
                for c in 0..<K where m[c] >= k {
                    let j = s.offset + o * s.rowStride + c * s.columnStride
                    if g == 1, k >= lo { levelActs[k].append(m[c] > k) }
                    if m[c] > k { levelSigns[k].append(bit(k, j)) }
                }
            }
        }
        // Concatenate the levels' streams: offsets of level k shift by the bits before it.
        for k in 1..<max(1, L) {
            for b in 0..<blocks {
                actStart[(k - 1) * blocks + b] += Int64(acts.count)
                signStart[(k - 1) * blocks + b] += Int64(signs.count)
            }
            acts.append(levelActs[k])
            signs.append(levelSigns[k])
        }
        var scales: [Float] = []
        for k in 0..<L {
            if s.perRowScales { scales += (0..<s.rows).map { k < s.scales.count ? s.scales[k][$0] : 0 } } else { scales.append(k < s.scales.count ? s.scales[k][0] : 0) }
        }
        self.signs0 = Owned(signs0.padded)
        self.widths = Owned(widths)
        self.acts = Owned(acts.padded)
        self.signs = Owned(signs.padded)
        self.actStart = Owned(actStart)
        self.signStart = Owned(signStart)
        self.scales = Owned(scales)
    }

    /// Rows `range` decoded into `out` (row `r` at `out + (r - range.lowerBound) * ldo`).
    /// `isa` caps the instruction set (tests); AVX-512 with BMI2, else portable.
    public func decode(_ variant: KernelVariant = .fast, rows range: Range<Int>, into out: UnsafeMutablePointer<Float>, ldo: Int,
                       isa: Int32 = bp_isa()) {
        guard !range.isEmpty else { return }
        if variant == .reference {
            decodeReference(rows: range, into: out, ldo: ldo)
            return
        }
        var w = c
        // Grouped layout: one row's block activity per level, derived per call (a few words).
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: max(1, Int(bp_compact_block_words(&w)))) { blocks in
            bp_compact_decode(isa, &w, Int32(range.lowerBound), Int32(range.count), out, Int64(ldo), blocks.baseAddress!)
        }
        withExtendedLifetime(self) {}
    }

    /// The plain twin of `decode`: one entry at a time, the streams walked from the start.
    func decodeReference(rows range: Range<Int>, into out: UnsafeMutablePointer<Float>, ldo: Int) {
        func bit(_ p: UnsafeMutablePointer<UInt64>, _ i: Int) -> Bool { (p[i >> 6] >> UInt64(i & 63)) & 1 == 1 }
        var ca = 0, cs = 0
        // Level streams are concatenated: walk level by level, keeping every row's activity.
        var activity = [[Bool]](repeating: [Bool](repeating: true, count: columns), count: rows)
        // Grouped layout: the activity of each row's blocks (block b = channels b / taps of width
        // groupChannels at tap b % taps), nested the same way.
        let T = taps, blocksPerRow = groupChannels > 1 ? (columns / T + groupChannels - 1) / groupChannels * T : 0
        var blockActivity = [[Bool]](repeating: [Bool](repeating: true, count: blocksPerRow), count: rows)
        func block(_ j: Int) -> Int { (j / T) / groupChannels * T + j % T }
        var values = [[Float]](repeating: [Float](repeating: 0, count: columns), count: rows)
        for o in 0..<rows {
            let mu = perRowScales ? scales.pointer[o] : scales.pointer[0]
            for j in 0..<columns { values[o][j] = bit(signs0.pointer, o * columns + j) ? mu : -mu }
        }
        for k in 1..<max(1, levels) {
            for o in 0..<rows {
                let full = Int(widths.pointer[o] & 15), any = Int(widths.pointer[o] >> 4)
                let mu = scales.pointer[k * (perRowScales ? rows : 1) + (perRowScales ? o : 0)]
                if groupChannels > 1, k >= full, k < any {
                    for b in 0..<blocksPerRow where blockActivity[o][b] {
                        blockActivity[o][b] = bit(acts.pointer, ca)
                        ca += 1
                    }
                }
                for j in 0..<columns {
                    guard k < any, activity[o][j] else { activity[o][j] = false; continue }
                    if k >= full {
                        if groupChannels > 1 {
                            activity[o][j] = blockActivity[o][block(j)]
                        } else {
                            activity[o][j] = bit(acts.pointer, ca)
                            ca += 1
                        }
                    }
                    guard activity[o][j] else { continue }
                    values[o][j] += bit(signs.pointer, cs) ? mu : -mu
                    cs += 1
                }
            }
        }
        for o in range { for j in 0..<columns { out[(o - range.lowerBound) * ldo + j] = values[o][j] } }
    }
}

extension CompactPlanes {
    /// `packed` (a Conv weight `[O, C, k...]`, or a Gemm/MatMul B: `[N, K]` when `transposed`,
    /// else `[K, N]`) as rows of outputs. Scales must be per tensor or per output row; anything
    /// else throws (the caller expands the weight instead).
    public convenience init(packed: PackedTensor, kind: BitPlaneMatrix.WeightKind) throws(BitPlaneMatrix.Unsupported) {
        let (rows, columns, rowStride, columnStride, perRow) = try BitPlaneMatrix.checkSupported(packed: packed, kind: kind)
        var source = Source(rows: rows, columns: columns, rowStride: rowStride, columnStride: columnStride, mask: packed.mask,
                            signBits: packed.flatSignBits(packed.layout), scales: packed.levels.map(\.scales), perRowScales: perRow)
        // A Conv row is [inC/groups, k...]: a mask group is channels at one tap.
        if kind == .conv { source.taps = packed.shape[2...].reduce(1, *) }
        self.init(source)
    }
}

extension BitPlaneMatrix {
    /// `packed` as rows of outputs (rows, columns, strides of a row and a column, scales per row),
    /// or why it cannot be: scales must be per tensor or per output row.
    public static func checkSupported(packed: PackedTensor, kind: WeightKind) throws(Unsupported)
        -> (rows: Int, columns: Int, rowStride: Int, columnStride: Int, perRowScales: Bool) {
        let shape = packed.shape
        let rows: Int, columns: Int, rowStride: Int, columnStride: Int, outputAxis: Int
        switch kind {
        case .conv:
            guard shape.count >= 3 else { throw .init(description: "conv weight \(shape) has fewer than 3 dimensions") }
            rows = shape[0]; columns = shape[1...].reduce(1, *); rowStride = columns; columnStride = 1; outputAxis = 0
        case .matrix(let transposed):
            guard shape.count == 2 else { throw .init(description: "matrix weight \(shape) is not 2-D") }
            if transposed {
                rows = shape[0]; columns = shape[1]; rowStride = columns; columnStride = 1; outputAxis = 0
            } else {
                rows = shape[1]; columns = shape[0]; rowStride = 1; columnStride = rows; outputAxis = 1
            }
        }
        guard packed.levels.count <= PackedTensor.maxLevels else { throw .init(description: "\(packed.levels.count) levels") }
        let perRow: Bool
        switch packed.scale {
        case .tensor: perRow = false
        case .channel(let axis):
            guard axis == outputAxis else { throw .init(description: "scales along axis \(axis), not the output axis \(outputAxis)") }
            perRow = true
        }
        return (rows, columns, rowStride, columnStride, perRow)
    }
}
