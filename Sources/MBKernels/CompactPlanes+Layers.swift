import CBitPlanes
import MBCore

/// Layers on compact weights: each decodes a tile of rows (at most `tileFloats` floats, in the
/// caller's `BitPlaneScratch`, reused by every layer) and hands it to the float kernel, so a
/// layer computes exactly what the float kernel computes on the expanded weights, and no layer
/// holds more than one tile of floats.
extension CompactPlanes {
    /// Largest decoded tile of a Conv or a batched Gemm, in floats (1 MiB: L2-sized).
    public static let tileFloats = 1 << 18

    /// Rows `range` decoded into `out` (row stride `columns`), split across `threads` in 16-row
    /// blocks when the tile is large enough to pay for the dispatch.
    func decodeTile(_ variant: KernelVariant, rows range: Range<Int>, into out: UnsafeMutablePointer<Float>, threads: Int) {
        let K = columns
        let blocks = (range.count + 15) / 16
        let parts = range.count * K < 1 << 15 ? 1 : min(threads, blocks)
        guard parts > 1 else {
            decode(variant, rows: range, into: out, ldo: K)
            return
        }
        let box = UncheckedSendable(out)
        Parallel.forEach(parts, threads: parts) { t in
            let r0 = range.lowerBound + 16 * (blocks * t / parts), r1 = min(range.upperBound, range.lowerBound + 16 * (blocks * (t + 1) / parts))
            guard r1 > r0 else { return }
            self.decode(variant, rows: r0..<r1, into: box.value + (r0 - range.lowerBound) * K, ldo: K)
        }
    }

    /// A Conv whose weights `[outC, inC/groups, k...]` are these rows: `Conv.forward` per tile of
    /// output channels (whole groups, or a row range of one group), with its epilogue.
    public func convForward(
        _ variant: KernelVariant = .fast, _ g: ConvGeometry, input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, threads: Int, scratch: KernelScratch, tiles: BitPlaneScratch
    ) {
        precondition(rows == g.outChannels && columns == g.inPerGroup * g.kernelSize, "weights \(rows)x\(columns) do not fit \(g)")
        let K = columns, perGroup = g.outPerGroup
        let inSize = g.inputSize, outSize = g.outputSize
        // Whole groups per tile when a group fits, else row ranges of one group (rounded to the
        // float GEMM's 6-row blocks).
        let groupsPerTile = max(1, min(g.groups, Self.tileFloats / max(1, perGroup * K)))
        let rowsPerTile = perGroup * K <= Self.tileFloats ? perGroup : max(6, Self.tileFloats / max(1, K) / 6 * 6)
        let tile = tiles.buffer(.decodedWeights, min(rows * K, max(groupsPerTile * perGroup, rowsPerTile) * K), as: Float.self)
        if rows * K <= Self.tileFloats {
            decodeTile(variant, rows: 0..<rows, into: tile, threads: threads)
            Conv.forward(variant, g, input: input, weights: tile, bias: bias, output: output, activation: activation, threads: threads, scratch: scratch)
            return
        }
        for n in 0..<g.batch {
            var grp = 0
            while grp < g.groups {
                if rowsPerTile < perGroup {
                    // Row ranges of group `grp`, a one-group convolution each.
                    var sub = g
                    sub.batch = 1; sub.groups = 1; sub.inChannels = g.inPerGroup
                    let x = input + (n * g.inChannels + grp * g.inPerGroup) * inSize
                    for r0 in stride(from: 0, to: perGroup, by: rowsPerTile) {
                        let r1 = min(perGroup, r0 + rowsPerTile), first = grp * perGroup + r0
                        sub.outChannels = r1 - r0
                        decodeTile(variant, rows: first..<(first + r1 - r0), into: tile, threads: threads)
                        Conv.forward(variant, sub, input: x, weights: tile, bias: bias.map { $0 + first },
                                     output: output + (n * g.outChannels + first) * outSize, activation: activation, threads: threads, scratch: scratch)
                    }
                    grp += 1
                } else {
                    let count = min(groupsPerTile, g.groups - grp), first = grp * perGroup
                    var sub = g
                    sub.batch = 1; sub.groups = count; sub.inChannels = count * g.inPerGroup; sub.outChannels = count * perGroup
                    decodeTile(variant, rows: first..<(first + count * perGroup), into: tile, threads: threads)
                    Conv.forward(variant, sub, input: input + (n * g.inChannels + grp * g.inPerGroup) * inSize, weights: tile,
                                 bias: bias.map { $0 + first }, output: output + (n * g.outChannels + first) * outSize,
                                 activation: activation, threads: threads, scratch: scratch)
                    grp += count
                }
            }
        }
    }

    /// `y[i, r] = sum_j a[i, j] W[r, j]` for the `m` rows of `a` (`[m, columns]`, row stride
    /// `lda`) into `y` (`[m, rows]`, row stride `ldc`). Few rows: threads take row
    /// ranges of W and run the decode fused with the dot products (`bp_compact_gemv`, once per row
    /// of `a`: up to 4); more rows:
    /// L2-sized tiles one after another, each product split across threads.
    public func multiply(
        _ variant: KernelVariant = .fast, a: UnsafePointer<Float>, m: Int, lda: Int, y: UnsafeMutablePointer<Float>, ldc: Int,
        threads: Int, tiles: BitPlaneScratch
    ) {
        let K = columns
        guard m > 0, rows > 0 else { return }
        if K == 0 {
            for i in 0..<m { (y + i * ldc).update(repeating: 0, count: rows) }
            return
        }
        if m > 4 || variant == .reference {
            let tileRows = max(16, Self.tileFloats / K)
            let tile = tiles.buffer(.decodedWeights, min(rows, tileRows) * K, as: Float.self)
            for r0 in stride(from: 0, to: rows, by: tileRows) {
                let r1 = min(rows, r0 + tileRows)
                decodeTile(variant, rows: r0..<r1, into: tile, threads: threads)
                Gemm.parallel(variant, threads: threads, transA: false, transB: true, m: m, n: r1 - r0, k: K, alpha: 1, a: a, lda: lda,
                              b: tile, ldb: K, beta: 0, c: y + r0, ldc: ldc)
            }
            return
        }
        // Up to 4 rows: the decode fused with the dot products (nothing stored), rows split across
        // threads in 16-row blocks (the decoder's entry points).
        var cw = c
        let slot = Int(bp_compact_gemv_scratch_floats(&cw))
        let blocks = (rows + 15) / 16
        let parts = max(1, min(threads, blocks, rows * K / (1 << 15)))
        let buffers = tiles.buffer(.decodedWeights, parts * slot, as: Float.self)
        let box = UncheckedSendable((a, y, buffers, cw))
        Parallel.forEach(parts, threads: parts) { t in
            var (a, y, buffers, cw) = box.value
            let r0 = min(rows, 16 * (blocks * t / parts)), r1 = min(rows, 16 * (blocks * (t + 1) / parts))
            guard r1 > r0 else { return }
            for i in 0..<m {
                bp_compact_gemv(bp_isa(), &cw, Int32(r0), Int32(r1 - r0), a + i * lda, y + i * ldc + r0, buffers + t * slot)
            }
        }
        withExtendedLifetime(self) {}
    }

    /// `y[r - range.lowerBound] = row r . x` for the rows `range` through the fused decode and dot
    /// product at `isa` (tests: every instruction set).
    public func gemv(rows range: Range<Int>, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, isa: Int32 = bp_isa()) {
        var cw = c
        var scratch = [Float](repeating: 0, count: Int(bp_compact_gemv_scratch_floats(&cw)))
        bp_compact_gemv(isa, &cw, Int32(range.lowerBound), Int32(range.count), x, y, &scratch)
        withExtendedLifetime(self) {}
    }
}
