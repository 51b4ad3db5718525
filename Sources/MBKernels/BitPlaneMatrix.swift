import CBitPlanes
import MBCore
import Synchronization

/// Binarized weights laid out for the bit-plane kernels (CBitPlanes): per output row and bit
/// level, an activity plane and a sign plane over the reduction axis, 64 entries to a word, and
/// the level's scale per row.
///
/// The reduction axis is `taps` kernel positions of `tapChannels` input channels each (a Gemm
/// has one tap); each tap's channels start a new word, so that an activation pixel (all its
/// channels) is a whole number of words. Rows are grouped in blocks of 8 (the kernels' SIMD
/// lanes), sorted by their widest bit width so a block's higher levels are absent when none of
/// its rows reach them. Per (block, level) only the words some row of the block has active are
/// stored ("entries"), which skips the empty words of sparse higher levels; a list whose entries
/// are active on every valid bit of every row ("full") stores no activity words at all.
public final class BitPlaneMatrix: @unchecked Sendable {
    public let rows: Int
    public let taps: Int
    public let tapChannels: Int
    public let levels: Int
    public let wordsPerTap: Int
    public let blocks: Int
    /// Original row of each block row (8 per block); -1 for padding.
    public let rowOrder: [Int32]

    let listStart: Owned<Int32>
    let listFull: Owned<UInt8>
    let listActs: Owned<Int64>
    let entryWord: Owned<Int32>
    let entryTap: Owned<Int32>
    let entrySigns: Owned<UInt64>
    let entryActs: Owned<UInt64>
    let validMask: Owned<UInt64>
    let scales: Owned<Float>
    let rowOrderBuffer: Owned<Int32>
    let blockDense: Owned<UInt8>
    /// The float GEMV's lookup-table layout (AVX-512), built on first use (`BitPlaneMatrix+Lut`).
    let lutCache = Mutex<LutLayout?>(nil)

    /// The C view; the pointers live as long as `self`.
    var c: bp_weights {
        bp_weights(blocks: Int32(blocks), levels: Int32(levels), taps: Int32(taps), wordsPerTap: Int32(wordsPerTap),
                   listStart: listStart.pointer, listFull: listFull.pointer, listActs: listActs.pointer,
                   entryWord: entryWord.pointer, entryTap: entryTap.pointer, entrySigns: entrySigns.pointer, entryActs: entryActs.pointer,
                   validMask: validMask.pointer, scales: scales.pointer, blockDense: blockDense.pointer)
    }

    /// Words of one row: `taps * wordsPerTap`.
    public var wordsPerRow: Int { taps * wordsPerTap }
    /// Reduction length with each tap padded to whole words.
    public var paddedReduction: Int { wordsPerRow * 64 }
    /// Entries over all lists.
    public var entryCount: Int { listStart.count > 0 ? Int(listStart.pointer[listStart.count - 1]) : 0 }

    /// Bytes held (planes, lists, scales): what packed mode keeps resident for this weight.
    public var residentBytes: Int {
        listStart.bytes + listFull.bytes + listActs.bytes + entryWord.bytes + entryTap.bytes + entrySigns.bytes + entryActs.bytes
            + validMask.bytes + scales.bytes + rowOrderBuffer.bytes + blockDense.bytes + rowOrder.count * 4
            + (lutCache.withLock { $0?.bytes } ?? 0)
    }

    /// Where the weights come from: a flat tensor with a bit width per entry and per level a
    /// flat bitset of signs, addressed as `row * rowStride + tap * tapStride + channel * channelStride`.
    public struct Source {
        public var rows: Int
        public var taps: Int
        public var tapChannels: Int
        public var rowStride: Int
        public var tapStride: Int
        public var channelStride: Int
        /// Flat index of (0, 0, 0) (a group of a grouped convolution starts past the others).
        public var offset = 0
        /// Bit width of each flat entry (1...levels).
        public var mask: [UInt8]
        /// Per level, bit j set when entry j's sign at that level is +1 (unused where inactive).
        public var signs: [[UInt64]]
        /// Per level, the scale of each row.
        public var scales: [[Float]]

        public init(rows: Int, taps: Int, tapChannels: Int, rowStride: Int, tapStride: Int, channelStride: Int,
                    mask: [UInt8], signs: [[UInt64]], scales: [[Float]]) {
            self.rows = rows
            self.taps = taps
            self.tapChannels = tapChannels
            self.rowStride = rowStride
            self.tapStride = tapStride
            self.channelStride = channelStride
            self.mask = mask
            self.signs = signs
            self.scales = scales
        }

        public var levels: Int { signs.count }

        @inline(__always) func flat(_ row: Int, _ tap: Int, _ channel: Int) -> Int {
            offset + row * rowStride + tap * tapStride + channel * channelStride
        }
    }

    public init(_ s: Source) {
        rows = s.rows
        taps = s.taps
        tapChannels = s.tapChannels
        levels = max(1, s.levels)
        wordsPerTap = max(1, (s.tapChannels + 63) / 64)
        blocks = (s.rows + 7) / 8
        let words = taps * wordsPerTap
        let valid = (0..<wordsPerTap).map { i -> UInt64 in
            let n = min(64, s.tapChannels - 64 * i)
            return n >= 64 ? ~0 : (UInt64(1) << UInt64(n)) - 1
        }

        // Rows sorted by widest bit width (stable), so blocks tend to be homogeneous.
        var widest = [UInt8](repeating: 1, count: s.rows)
        s.mask.withUnsafeBufferPointer { mask in
            for o in 0..<s.rows {
                var m: UInt8 = 0
                for t in 0..<s.taps { for c in 0..<s.tapChannels { m = max(m, mask[s.flat(o, t, c)]) } }
                widest[o] = m
            }
        }
        let order = (0..<s.rows).sorted { (widest[$0], $0) < (widest[$1], $1) }
        var rowOrder = [Int32](repeating: -1, count: blocks * 8)
        for (i, o) in order.enumerated() { rowOrder[i] = Int32(o) }
        self.rowOrder = rowOrder

        let L = levels
        var listStart: [Int32] = [0]
        var listFull: [UInt8] = []
        var listActs: [Int64] = []
        var entryWord: [Int32] = []
        var entrySigns: [UInt64] = []
        var entryActs: [UInt64] = []
        var scales = [Float](repeating: 0, count: L * blocks * 8)
        // One block at a time: dense [level][word][lane] planes, then compacted into lists.
        var act = [UInt64](repeating: 0, count: L * words * 8)
        var sgn = [UInt64](repeating: 0, count: L * words * 8)
        for b in 0..<blocks {
            for i in act.indices { act[i] = 0; sgn[i] = 0 }
            for r in 0..<8 {
                let o = Int(rowOrder[8 * b + r])
                if o < 0 {
                    // Padding rows: active everywhere with sign 0 and scale 0, so they never
                    // make a list partial and contribute nothing.
                    for k in 0..<L { for w in 0..<words { act[(k * words + w) * 8 + r] = valid[w % wordsPerTap] } }
                    continue
                }
                for k in 0..<L { scales[k * blocks * 8 + 8 * b + r] = s.scales[k][o] }
                for t in 0..<s.taps {
                    for c in 0..<s.tapChannels {
                        let j = s.flat(o, t, c)
                        let m = Int(s.mask[j])
                        let w = t * wordsPerTap + c / 64
                        let bit = UInt64(1) << UInt64(c % 64)
                        for k in 0..<m {
                            act[(k * words + w) * 8 + r] |= bit
                            if (s.signs[k][j >> 6] >> UInt64(j & 63)) & 1 == 1 { sgn[(k * words + w) * 8 + r] |= bit }
                        }
                    }
                }
            }
            // A row with no entry at a level gets scale 0 there: the register-blocked kernel may
            // run a block mixing widths as if every row had the level (their signs are 0).
            for r in 0..<8 where rowOrder[8 * b + r] >= 0 {
                for k in 0..<L where !(0..<words).contains(where: { act[(k * words + $0) * 8 + r] != 0 }) {
                    scales[k * blocks * 8 + 8 * b + r] = 0
                }
            }
            for k in 0..<L {
                var full = true
                var listActWords: [UInt64] = []
                let first = entryWord.count
                for w in 0..<words {
                    let base = (k * words + w) * 8
                    var any: UInt64 = 0
                    for r in 0..<8 where rowOrder[8 * b + r] >= 0 { any |= act[base + r] }
                    guard any != 0 else { continue }
                    entryWord.append(Int32(w))
                    for r in 0..<8 {
                        entrySigns.append(sgn[base + r])
                        listActWords.append(act[base + r])
                        if act[base + r] != valid[w % wordsPerTap] { full = false }
                    }
                }
                listStart.append(Int32(entryWord.count))
                listFull.append(full ? 1 : 0)
                listActs.append(Int64(entryActs.count / 8))
                if !full { entryActs += listActWords }
                _ = first
            }
        }
        self.listStart = Owned(listStart)
        self.listFull = Owned(listFull)
        self.listActs = Owned(listActs)
        let cw = Int32(wordsPerTap)
        self.entryTap = Owned(entryWord.map { $0 / cw })
        self.entryWord = Owned(entryWord)
        self.entrySigns = Owned(entrySigns)
        self.entryActs = Owned(entryActs)
        self.validMask = Owned(valid)
        self.scales = Owned(scales)
        self.rowOrderBuffer = Owned(rowOrder)
        // Dense blocks: levels 1..n list every word (full or not), the rest are empty.
        var dense = [UInt8](repeating: 0, count: blocks)
        for b in 0..<blocks {
            var n = 0, ok = true
            for k in 0..<L {
                let count = Int(listStart[b * L + k + 1] - listStart[b * L + k])
                if count == 0 { break }
                if count != words || n != k { ok = false; break }
                n += 1
            }
            for k in n..<L where listStart[b * L + k + 1] != listStart[b * L + k] { ok = false }
            dense[b] = ok ? UInt8(n) : 0
        }
        self.blockDense = Owned(dense)
    }

    /// The instruction set the fast kernels run with on this CPU.
    public static var isaName: String { String(cString: bp_isa_name(bp_isa())) }

    /// Fraction of (block, level, word) slots stored, per level: how sparse each level is after
    /// empty words are skipped (1 = every word of every block stored).
    public var storedFractionPerLevel: [Double] {
        (0..<levels).map { k in
            var n = 0
            for b in 0..<blocks { n += Int(listStart.pointer[b * levels + k + 1] - listStart.pointer[b * levels + k]) }
            return Double(n) / Double(max(1, blocks * wordsPerRow))
        }
    }

    // MARK: - Plain accessors (references and tests)

    /// Activity and sign of block row `br` at level `k` for word `w`, from the lists.
    func words(blockRow br: Int, level k: Int, word w: Int) -> (act: UInt64, sign: UInt64) {
        let b = br / 8, r = br % 8, list = b * levels + k
        let e0 = Int(listStart.pointer[list])
        var lo = e0, hi = Int(listStart.pointer[list + 1])
        // Entries are in ascending word order.
        while lo < hi {
            let mid = (lo + hi) / 2
            if Int(entryWord.pointer[mid]) < w { lo = mid + 1 } else { hi = mid }
        }
        guard lo < Int(listStart.pointer[list + 1]), Int(entryWord.pointer[lo]) == w else { return (0, 0) }
        let sign = entrySigns.pointer[8 * lo + r]
        if listFull.pointer[list] == 1 { return (validMask.pointer[w % wordsPerTap], sign) }
        return (entryActs.pointer[8 * (Int(listActs.pointer[list]) + lo - e0) + r], sign)
    }

    /// Scale of block row `br` at level `k`.
    func scale(blockRow br: Int, level k: Int) -> Float { scales.pointer[k * blocks * 8 + br] }
}

/// A heap buffer owned by a class (freed with it), so a C struct can hold its pointer for as
/// long as the owner lives.
final class Owned<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    let count: Int

    init(_ values: [T]) {
        count = values.count
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<T>.stride, alignment: 64)
            .bindMemory(to: T.self, capacity: max(1, count))
        values.withUnsafeBufferPointer { if count > 0 { pointer.initialize(from: $0.baseAddress!, count: count) } }
    }

    init(count: Int, repeating v: T) {
        self.count = count
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<T>.stride, alignment: 64)
            .bindMemory(to: T.self, capacity: max(1, count))
        pointer.initialize(repeating: v, count: max(1, count))
    }

    deinit { pointer.deallocate() }

    var bytes: Int { count * MemoryLayout<T>.stride }
}
