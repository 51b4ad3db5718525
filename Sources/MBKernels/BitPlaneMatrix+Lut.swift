import CBitPlanes

/// The lookup-table layout of a Gemm-shaped matrix for the AVX-512 / NEON float GEMV (`bp_lut_gemv`,
/// see CBitPlanes.h): rows in groups of 16 (two blocks), per (group, level) the words some row
/// of the group has active, each stored per half word as 16 32-bit lanes (one per row) of sign
/// bits (full lists) or of sign & act then ~sign & act (partial lists): a lane's 8 nibbles index
/// 8 tables. Built from the block lists on first use.
final class LutLayout: @unchecked Sendable {
    let groups: Int
    let listStart: Owned<Int32>
    let listFull: Owned<UInt8>
    let listCodes: Owned<Int64>
    let entryWord: Owned<Int32>
    let codes: Owned<UInt8>
    let rowsStored: Int
    let levels: Int

    var c: bp_lut_weights {
        bp_lut_weights(groups: Int32(groups), levels: Int32(levels), rowsStored: Int32(rowsStored), listStart: listStart.pointer,
                       listFull: listFull.pointer, listCodes: listCodes.pointer, entryWord: entryWord.pointer, codes: codes.pointer)
    }

    var bytes: Int { listStart.bytes + listFull.bytes + listCodes.bytes + entryWord.bytes + codes.bytes }

    init(_ m: BitPlaneMatrix) {
        precondition(m.taps == 1, "the LUT layout is for Gemm-shaped matrices")
        let words = m.wordsPerRow, L = m.levels
        groups = (m.blocks + 1) / 2
        rowsStored = m.blocks * 8
        levels = L
        let valid = (0..<words).map { m.validMask.pointer[$0] }
        var listStart: [Int32] = [0], listFull: [UInt8] = [], listCodes: [Int64] = [], entryWord: [Int32] = []
        var codes: [UInt8] = []
        // One (group, level) at a time: dense [word][16 rows] activity and signs from the block lists.
        var act = [UInt64](repeating: 0, count: words * 16), sgn = act
        for g in 0..<groups {
            for k in 0..<L {
                for i in act.indices { act[i] = 0; sgn[i] = 0 }
                var real = [Bool](repeating: false, count: 16)
                for half in 0..<2 {
                    let b = 2 * g + half
                    for r in 0..<8 { real[8 * half + r] = b < m.blocks && m.rowOrder[8 * b + r] >= 0 }
                    guard b < m.blocks else { continue }
                    let list = b * L + k
                    let e0 = Int(m.listStart.pointer[list]), e1 = Int(m.listStart.pointer[list + 1])
                    let full = m.listFull.pointer[list] == 1
                    for e in e0..<e1 {
                        let w = Int(m.entryWord.pointer[e])
                        for r in 0..<8 {
                            act[w * 16 + 8 * half + r] = full ? valid[w] : m.entryActs.pointer[8 * (Int(m.listActs.pointer[list]) + e - e0) + r]
                            sgn[w * 16 + 8 * half + r] = m.entrySigns.pointer[8 * e + r]
                        }
                    }
                }
                // Padding rows: active everywhere with sign 0 (their sums are never read), so
                // they never make a list partial.
                for r in 0..<16 where !real[r] { for w in 0..<words { act[w * 16 + r] = valid[w]; sgn[w * 16 + r] = 0 } }
                var stored: [Int] = []
                var full = true
                for w in 0..<words {
                    var any: UInt64 = 0
                    for r in 0..<16 where real[r] { any |= act[w * 16 + r] }
                    guard any != 0 else { continue }
                    stored.append(w)
                    for r in 0..<16 where act[w * 16 + r] != valid[w] { full = false }
                }
                listCodes.append(Int64(codes.count))
                listFull.append(full ? 1 : 0)
                for w in stored {
                    entryWord.append(Int32(w))
                    // Per half word, 16 little-endian 32-bit lanes (one per row): 8 nibbles each.
                    func lanes(_ bits: (Int) -> UInt64, _ half: Int) {
                        for r in 0..<16 {
                            let lane = UInt32(truncatingIfNeeded: bits(r) >> UInt64(32 * half))
                            for byte in 0..<4 { codes.append(UInt8(truncatingIfNeeded: lane >> UInt32(8 * byte))) }
                        }
                    }
                    for half in 0..<2 {
                        if full {
                            lanes({ sgn[w * 16 + $0] }, half)
                        } else {
                            lanes({ sgn[w * 16 + $0] & act[w * 16 + $0] }, half)
                            lanes({ ~sgn[w * 16 + $0] & act[w * 16 + $0] }, half)
                        }
                    }
                }
                listStart.append(Int32(entryWord.count))
            }
        }
        self.listStart = Owned(listStart)
        self.listFull = Owned(listFull)
        self.listCodes = Owned(listCodes)
        self.entryWord = Owned(entryWord)
        self.codes = Owned(codes)
    }
}

extension BitPlaneMatrix {
    /// Whether this CPU runs the lookup-table GEMV (AVX-512 or NEON).
    public static var lutAvailable: Bool { usesLut(isa: bp_isa()) }

    /// Whether the float GEMV at `isa` takes the lookup-table kernel.
    static func usesLut(isa: Int32) -> Bool { bp_lut_available(isa) != 0 }

    /// The LUT layout, built once (first GEMV) and kept: packed mode's Gemm weights then hold
    /// both layouts (`residentBytes` counts it).
    var lut: LutLayout {
        lutCache.withLock { cached in
            if let l = cached { return l }
            let l = LutLayout(self)
            cached = l
            return l
        }
    }

    /// Level sums (unscaled, `levels * blocks * 8`) through the LUT kernel, rows split across `threads`.
    func lutLevelSums(x padded: UnsafePointer<Float>, into sums: UnsafeMutablePointer<Float>, threads: Int, scratch: BitPlaneScratch) {
        let layout = lut
        let words = Int32(wordsPerRow)
        let tables = scratch.buffer(.gemvTables, Int(bp_lut_scratch_floats(words)), as: Float.self)
        bp_lut_prepare(padded, words, tables)
        let chunks = max(1, min(threads, layout.groups / 8))
        let box = UncheckedSendable((layout.c, tables, sums))
        Parallel.forEach(chunks, threads: chunks) { t in
            var (w, tables, sums) = box.value
            let g0 = layout.groups * t / chunks, g1 = layout.groups * (t + 1) / chunks
            bp_lut_gemv(&w, words, tables, sums, Int32(g0), Int32(g1 - g0))
        }
        withExtendedLifetime(layout) {}
    }
}
