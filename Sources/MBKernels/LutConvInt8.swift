import CBitPlanes
import MBCore

/// A binarized Conv weight laid out for the int8 lookup-table convolution (`bp_lutconv8_forward`,
/// CBitPlanes): the technique of T-MAC / bitnet.cpp. Lossy: the activations are quantized.
///
/// Per output position and block of 256 reduction entries, the kernel quantizes the 16 signed
/// sums of each group of 4 inputs to int8 (scale: the block's largest sum of |x| over a group
/// / 127); a register then holds 4 groups' tables and one byte permute looks up 16 rows x 4
/// groups, summed exactly in int32. Per plane the kernel reads one nibble per row and group: a
/// level where each row has all or none of its entries active takes one code set (rows without
/// the level get scale 0), a level with per-entry masks two, whose inactive entries cancel.
///
/// Held (the layout's only form in packed mode): rows sorted by how many levels they have, in
/// tiles of 16; per tile only the levels some row of it has. A one-set level is its sign bits
/// (1 bit per weight of the rows that have it); a per-entry level is its activity bits nested
/// in the level below plus one sign bit per active entry (what the file stores), expanded into
/// the kernel's two code sets a tile at a time per run. A structured mask (constant on aligned
/// runs of `runLength` reduction entries in every row: `granularity: group:N` with whole runs of
/// channels) holds one activity bit per run instead of per entry. Plus scales (16 floats per
/// tile and level) and the row order.
public final class LutConvInt8Weights: @unchecked Sendable {
    public let rows: Int
    /// Entries of one row: input channels x kernel taps.
    public let reduction: Int
    /// Code sets per plane (1 or 2).
    public let halves: [Int32]
    /// Two-set planes hold one activity bit per aligned run of this many reduction entries (1, 2,
    /// 4, 8 or 16): the longest such run every row's mask is constant on.
    public let runLength: Int
    let halvesStorage: Owned<Int32>
    /// Output row of each tile slot (-1 past the rows); nil when every row keeps its place.
    let order: Owned<Int32>?
    let tilePlanes: Owned<Int32>
    let tileStart: Owned<Int64>
    let rowActive: Owned<UInt16>
    /// The compact form (nil once `expandCodes` ran).
    private(set) var store: Owned<UInt64>?
    /// Every tile's codes as the kernel reads them (`expandCodes`), tile t from byte `codeStart[t]`.
    private(set) var codes: Owned<UInt8>?
    private(set) var codeStart: Owned<Int64>?
    /// [row tile][plane][16] (pair planes hold the level's scale halved), or one [plane][16] for
    /// every tile (`sharedScales`: tensor scales), or one [plane][16] for every tile whose rows
    /// without a one-set plane's level the kernels zero (`maskScales`: tensor scales where tiles
    /// differ only by which rows have a level, as with channel masks).
    let scales: Owned<Float>
    let sharedScales: Bool
    let maskScales: Bool
    /// Input channels when the reduction is held tap-major (entry t * channels + c) for the
    /// pixel-table kernel (`bp_lutconv8_pixels_forward`: tables built once per input pixel, not
    /// per output position and tap); nil for the channel-major order of the ONNX weight.
    public let pixelChannels: Int?
    static let tile = Int(BP_LUTCONV8_ROWS)
    /// Position bands per thread of a channel-major table Conv split by positions.
    static let bandsPerThread = 4

    /// Whether this CPU has the AVX-512 body (VBMI and VNNI); the portable one runs everywhere.
    public static var fastAvailable: Bool { bp_lutconv8_fast_available() != 0 }

    var quads: Int { (reduction + 15) / 16 }

    var c: bp_lutconv8_weights {
        bp_lutconv8_weights(rows: Int32(rows), reduction: Int32(reduction), quads: Int32(quads), planes: Int32(halves.count),
                            codeSets: Int32(halves.reduce(0, +)), halves: halvesStorage.pointer, order: order?.pointer,
                            tilePlanes: tilePlanes.pointer, tileStart: tileStart.pointer, rowActive: rowActive.pointer,
                            store: store?.pointer, codes: codes?.pointer, codeStart: codeStart?.pointer, indexCodes: codes == nil ? 0 : 1, scales: scales.pointer,
                            scaleTileStride: Int32(sharedScales ? 0 : halves.count), runLength: Int32(runLength), maskScales: maskScales ? 1 : 0)
    }

    /// Bytes held: codes (compact or expanded), scales, row order and per-tile offsets.
    public var residentBytes: Int {
        (store?.bytes ?? 0) + (codes?.bytes ?? 0) + (codeStart?.bytes ?? 0) + scales.bytes + halvesStorage.bytes + (order?.bytes ?? 0)
            + tilePlanes.bytes + tileStart.bytes + rowActive.bytes
    }

    /// Whether the codes are held expanded (`expandCodes`).
    public var codesExpanded: Bool { codes != nil }

    /// Holds every tile's codes as the kernel reads them and drops the compact form: per-entry
    /// levels then take 2 bits per weight instead of about their stored size, and runs skip
    /// the expansion (a few % on wide layers, up to a third where a layer has few positions).
    /// Call before sharing the weights between threads.
    public func expandCodes() {
        guard let store, codes == nil else { return }
        var w = c
        let tiles = (rows + Self.tile - 1) / Self.tile
        var starts = [Int64](repeating: 0, count: tiles)
        var total: Int64 = 0
        for t in 0..<tiles {
            starts[t] = total
            total += bp_lutconv8_tile_code_bytes(&w, Int32(t))
        }
        let expanded = Owned<UInt8>(count: Int(total), repeating: 0)
        // `w` points into `store`: keep it alive until the last tile is expanded.
        withExtendedLifetime(store) {
            for t in 0..<tiles { bp_lutconv8_expand_tile(&w, Int32(t), expanded.pointer + Int(starts[t])) }
        }
        // Held as the permute's indices (entry e's code + 16 (e mod 4), a byte each): the kernels
        // load them instead of unpacking nibbles per quad and tile.
        let indices = Owned<UInt8>(count: 2 * Int(total), repeating: 0)
        for b in 0..<Int(total) {
            let v = expanded.pointer[b]
            indices.pointer[2 * b] = (v & 15) | UInt8(16 * ((2 * b) % 4))
            indices.pointer[2 * b + 1] = (v >> 4) | UInt8(16 * ((2 * b + 1) % 4))
        }
        codeStart = Owned(starts.map { 2 * $0 })
        codes = indices
        self.store = nil
    }

    /// A Conv weight `[O, C, k...]` (one group; 1 or 2 spatial dimensions) with scales per tensor
    /// or per output channel.
    public convenience init(packed: PackedTensor) throws(BitPlaneMatrix.Unsupported) {
        let s = try LutConvSource(packed: packed)
        self.init(rows: s.rows, reduction: s.reduction, mask: s.mask, signBits: s.signBits, scales: s.scales, perRowScales: s.perRowScales)
    }

    /// The layout for `g`: pixel tables (the reduction tap-major) where the kernel has more than
    /// one tap and the input channels are a multiple of 16, else as `init(packed:)`.
    public convenience init(packed: PackedTensor, geometry g: ConvGeometry) throws(BitPlaneMatrix.Unsupported) {
        let s = try LutConvSource(packed: packed)
        guard Self.prefersPixelTables(g), g.inChannels * g.kernelSize == s.reduction else {
            self.init(rows: s.rows, reduction: s.reduction, mask: s.mask, signBits: s.signBits, scales: s.scales, perRowScales: s.perRowScales)
            return
        }
        let (mask, signs) = Self.tapMajor(rows: s.rows, channels: g.inChannels, taps: g.kernelSize, mask: s.mask, signBits: s.signBits)
        self.init(rows: s.rows, reduction: s.reduction, mask: mask, signBits: signs, scales: s.scales, perRowScales: s.perRowScales,
                  pixelChannels: g.inChannels)
    }

    /// Whether pixel tables run `g`: more than one tap, 2 spatial dimensions (or 1), input
    /// channels a multiple of 16 (a pixel's channels are whole quads), kernel height <= 64.
    public static func prefersPixelTables(_ g: ConvGeometry) -> Bool {
        g.kernelSize > 1 && g.groups == 1 && g.rank <= 2 && g.inChannels % 16 == 0 && g.inChannels > 0 && g.dims3.kernel.1 <= 64
    }

    /// A row-major [rows, channels * taps] mask and its levels' sign bits (entry c * taps + t)
    /// reordered tap-major (entry t * channels + c).
    public static func tapMajor(rows: Int, channels: Int, taps: Int, mask: [UInt8], signBits: [[UInt64]]) -> (mask: [UInt8], signBits: [[UInt64]]) {
        let K = channels * taps
        var m = [UInt8](repeating: 0, count: rows * K)
        var s = signBits.map { [UInt64](repeating: 0, count: $0.count) }
        for o in 0..<rows {
            for c in 0..<channels {
                for t in 0..<taps {
                    let from = o * K + c * taps + t, to = o * K + t * channels + c
                    m[to] = mask[from]
                    for l in 0..<signBits.count where (signBits[l][from >> 6] >> UInt64(from & 63)) & 1 == 1 {
                        s[l][to >> 6] |= 1 << UInt64(to & 63)
                    }
                }
            }
        }
        return (m, s)
    }

    /// Rows of `reduction` entries, flat row-major: entry j has bit width `mask[j]` (1...levels)
    /// and at level l the sign bit j of `signBits[l]` (1 = +); `scales[l]` holds a scale per row
    /// (`perRowScales`) or one. `rowScale` multiplies every level's scale of a row (a folded
    /// BatchNormalization).
    public init(rows: Int, reduction columns: Int, mask: [UInt8], signBits signs: [[UInt64]], scales levelScales: [[Float]], perRowScales perRow: Bool,
                rowScale: [Float]? = nil, pixelChannels: Int? = nil) {
        let L = max(1, signs.count)
        self.pixelChannels = pixelChannels
        self.rows = rows
        reduction = columns
        let T = Self.tile, tiles = (rows + T - 1) / T, quads = (columns + 15) / 16
        // A level takes one code set when every row has all or none of its entries active there.
        var halves = [Int32](repeating: 1, count: L)
        // Levels a row has (its widest entry), to sort rows so sparse levels fill few tiles.
        var rowLevels = [Int](repeating: 0, count: rows)
        mask.withUnsafeBufferPointer { mask in
            for o in 0..<rows {
                var widest = 0
                for k in 0..<columns { widest = max(widest, Int(mask[o * columns + k])) }
                rowLevels[o] = min(L, widest)
            }
            for l in 0..<L {
                rowLoop: for o in 0..<rows {
                    let first = Int(mask[o * columns]) > l
                    for k in 1..<max(1, columns) where (Int(mask[o * columns + k]) > l) != first {
                        halves[l] = 2
                        break rowLoop
                    }
                }
            }
        }
        self.halves = halves
        // The longest aligned run (a power of two up to a quad) that every row's mask is constant on.
        runLength = !halves.contains(2) ? 1 : mask.withUnsafeBufferPointer { mask in
            [16, 8, 4, 2].first { n in
                columns % n == 0 && (0..<rows).allSatisfy { o in
                    (0..<columns).allSatisfy { k in k % n == 0 || mask[o * columns + k] == mask[o * columns + k - 1] }
                }
            } ?? 1
        }
        let firsts = UInt64.max / (runLength >= 16 ? 0xFFFF : (UInt64(1) << UInt64(runLength)) - 1)
        let sorted = (0..<rows).sorted { rowLevels[$0] != rowLevels[$1] ? rowLevels[$0] > rowLevels[$1] : $0 < $1 }
        let order = sorted.map(Int32.init) + [Int32](repeating: -1, count: tiles * T - rows)
        var tilePlanes = [Int32](repeating: 0, count: tiles)
        var tileStart = [Int64](repeating: 0, count: tiles)
        var rowActive = [UInt16](repeating: 0, count: tiles * L)
        var scales = [Float](repeating: 0, count: tiles * L * T), unmasked = scales
        var store: [UInt64] = []
        func signBit(_ l: Int, _ flat: Int) -> Bool { l < signs.count && (signs[l][flat >> 6] >> UInt64(flat & 63)) & 1 == 1 }
        mask.withUnsafeBufferPointer { mask in
            for t in 0..<tiles {
                let slots = (0..<T).map { Int(order[t * T + $0]) }
                tilePlanes[t] = Int32(slots.map { $0 >= 0 ? rowLevels[$0] : 0 }.max() ?? 0)
                tileStart[t] = Int64(store.count)
                for (r, o) in slots.enumerated() {
                    // Slots past the rows are never stored: they take slot 0's scales, so tensor
                    // scales give every tile the same vector (held once).
                    let o = o >= 0 ? o : slots[0]
                    for l in 0..<L {
                        var s: Float = l < levelScales.count ? levelScales[l][perRow ? o : 0] : 0
                        if let rowScale { s *= rowScale[o] }
                        let rowHas = columns > 0 && Int(mask[o * columns]) > l
                        scales[(t * L + l) * T + r] = halves[l] == 2 ? 0.5 * s : (rowHas ? s : 0)
                        unmasked[(t * L + l) * T + r] = halves[l] == 2 ? 0.5 * s : s
                    }
                }
                // The kernel's expansion, mirrored: `act` is the activity of the level below.
                var act = [UInt64](repeating: ~0, count: quads * 4)
                for l in 0..<Int(tilePlanes[t]) {
                    // Activity and sign words of this level over the 256-bit layout of quad q.
                    func words(_ q: Int, _ w: Int) -> (active: UInt64, plus: UInt64) {
                        var active: UInt64 = 0, plus: UInt64 = 0
                        for bit in 0..<64 {
                            let o = slots[4 * w + bit / 16], k = 16 * q + bit % 16
                            guard o >= 0 else { continue }
                            if k >= columns {
                                if l == 0 { active |= 1 << UInt64(bit) }
                                continue
                            }
                            if Int(mask[o * columns + k]) > l { active |= 1 << UInt64(bit) }
                            if signBit(l, o * columns + k) { plus |= 1 << UInt64(bit) }
                        }
                        return (active, plus)
                    }
                    if halves[l] == 1 {
                        var ra: UInt16 = 0
                        for (r, o) in slots.enumerated() where o >= 0 && columns > 0 && Int(mask[o * columns]) > l { ra |= 1 << UInt16(r) }
                        rowActive[t * L + l] = ra
                        // A tile where only some rows have the level holds only their codes.
                        var writer = BitStreamWriter()
                        for q in 0..<quads {
                            for w in 0..<4 {
                                var a: UInt64 = 0
                                for r in 0..<4 where (ra >> UInt16(4 * w + r)) & 1 == 1 { a |= 0xFFFF << UInt64(16 * r) }
                                if ra == 0xFFFF { store.append(words(q, w).plus) } else { writer.append(extracting: words(q, w).plus, at: a) }
                                act[q * 4 + w] = a
                            }
                        }
                        if ra != 0xFFFF { store += writer.words }
                    } else {
                        var writer = BitStreamWriter()
                        for q in 0..<quads {
                            for w in 0..<4 {
                                let parent = act[q * 4 + w], (full, plus) = words(q, w)
                                writer.append(extracting: full, at: parent & firsts)
                                let active = full & parent
                                writer.append(extracting: plus, at: active)
                                act[q * 4 + w] = active
                            }
                        }
                        store += writer.words
                    }
                }
            }
        }
        store.append(0)
        let tileScales = L * T
        sharedScales = tiles > 1 && (1..<tiles).allSatisfy { t in
            (0..<tileScales).allSatisfy { scales[t * tileScales + $0].bitPattern == scales[$0].bitPattern }
        }
        if sharedScales { scales.removeSubrange(tileScales...) }
        // Tiles that differ only by the rows without a one-set level: one vector, masked per tile.
        maskScales = !sharedScales && tiles > 1 && (1..<tiles).allSatisfy { t in
            (0..<tileScales).allSatisfy { unmasked[t * tileScales + $0].bitPattern == unmasked[$0].bitPattern }
        }
        if maskScales { scales = Array(unmasked[0..<tileScales]) }
        halvesStorage = Owned(halves)
        self.order = sorted.elementsEqual(0..<rows) ? nil : Owned(order)
        self.tilePlanes = Owned(tilePlanes)
        self.tileStart = Owned(tileStart)
        self.rowActive = Owned(rowActive)
        self.store = Owned(store)
        self.scales = Owned(scales)
    }

    /// Whether `packed` makes weights that fit `g` (without building them).
    public static func accepts(_ packed: PackedTensor, _ g: ConvGeometry) -> Bool {
        guard (3...4).contains(packed.shape.count), g.groups == 1, g.rank <= 2, packed.shape[0] == g.outChannels,
              g.inChannels * g.kernelSize == packed.count / max(1, g.outChannels),
              (try? BitPlaneMatrix.checkSupported(packed: packed, kind: .conv)) != nil else { return false }
        return g.outputSize < Int(Int32.max) && g.inputSize < Int(Int32.max)
    }

    /// Whether the kernel runs `g`: one group, 1 or 2 spatial dimensions, these weights.
    public func fits(_ g: ConvGeometry) -> Bool {
        g.groups == 1 && g.rank <= 2 && g.outChannels == rows && g.inChannels * g.kernelSize == reduction
            && g.outputSize < Int(Int32.max) && g.inputSize < Int(Int32.max)
            && (pixelChannels == nil || (pixelChannels == g.inChannels && Self.prefersPixelTables(g)))
    }

    /// How threads share a (channel-major) table Conv: bands of output positions, or of row tiles
    /// (every thread builds every position's tables and reads only its rows' codes).
    public enum Split: Sendable {
        case positions, rows

        /// As the float convolution splits the same layer (`RowGemm.split`): positions in bands of
        /// multiples of 16 where there are 64 per thread and the weights are not much larger than
        /// the input, else rows. Consecutive layers then leave each feature map's positions on the
        /// core that wrote them, whichever form each layer runs, and a layer on a small map whose
        /// codes outweigh its tables reads each code on one core only.
        static func automatic(rows: Int, positions: Int, threads: Int) -> Split {
            let tiles = (rows + LutConvInt8Weights.tile - 1) / LutConvInt8Weights.tile
            return positions >= 64 * threads && (rows <= 4 * positions || tiles < 2 * threads) ? .positions : .rows
        }
    }

    /// The convolution with `activation` applied: `variant` `.fast` runs the AVX-512 body where
    /// the CPU has it, `.reference` the portable one (bit-identical); `split` overrides how
    /// threads share it (`Split.automatic`; every split gives the same bits).
    public func forward(
        _ variant: KernelVariant = .fast, _ g: ConvGeometry, input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, threads: Int, scratch: BitPlaneScratch, split: Split? = nil
    ) {
        precondition(fits(g), "int8 lookup-table weights \(rows)x\(reduction) do not fit \(g)")
        let geometry = LutConvWeights.cGeometry(g)
        let weights = c
        if pixelChannels != nil {
            forwardPixels(variant, g, geometry, weights, input: input, bias: bias, output: output, activation: activation, threads: threads, scratch: scratch,
                          split: split)
            return
        }
        // A pointwise Conv on small maps of a batch: the images' positions side by side as one
        // map, so tables and 8-position register tiles are filled (each position's sums are the
        // same, so the outputs are bit for bit the per-image ones).
        if g.batch > 1, g.kernelSize == 1, g.outputSize == g.inputSize, g.outputSize < 256 {
            forwardFolded(variant, g, input: input, bias: bias, output: output, activation: activation, threads: threads, scratch: scratch, split: split)
            return
        }
        let perThread = withUnsafePointer(to: weights) { (bp_lutconv8_scratch_bytes($0) + 63) / 64 * 64 }
        let positions = g.outputSize, tiles = (rows + Self.tile - 1) / Self.tile
        let byRows = (split ?? Split.automatic(rows: rows, positions: positions, threads: threads)) == .rows
        // Position bands are cut at multiples of 16 (a 64-byte line of every output row is written
        // by one core), as the float convolution cuts them.
        let step = 16, bands = (positions + step - 1) / step, units = byRows ? tiles : bands
        // Several position bands per thread (no work is repeated): `Parallel.forEach` gives each
        // thread its own share first and lets one whose helper starts late (a busy machine) take
        // the helper's unstarted bands, where one band per thread made it wait for the whole of
        // the helper's half. Row bands are one per thread (`forwardSharedTables`).
        let threadCount = min(max(1, threads), units)
        let parts = byRows || threadCount == 1 ? threadCount : min(Self.bandsPerThread * threadCount, units)
        let buffer = UncheckedSendable(scratch.buffer(.lutConvTables, parts * perThread / 4 + 16, as: Float.self))
        let inSize = g.inChannels * g.inputSize, outSize = rows * positions
        let fast: Int32 = variant == .fast ? 1 : 0
        // ReLU in the kernel's store; other activations in one pass after.
        let relu: Int32 = activation == .relu ? 1 : 0
        if byRows && threadCount > 1 {
            forwardSharedTables(fast, weights, geometry, batch: g.batch, inSize: inSize, input: input, bias: bias, output: output, relu: relu,
                                threads: threadCount, scratch: scratch, perThread: perThread, tablesPerThread: buffer.value)
        } else {
            for n in 0..<g.batch {
                let x = UncheckedSendable(input + n * inSize), y = UncheckedSendable(output + n * outSize)
                Parallel.forEach(parts, threads: threadCount) { t in
                    var w = weights, geo = geometry
                    let scratch = UnsafeMutableRawPointer(buffer.value) + t * perThread
                    let p0 = bands * t / parts * step, p1 = min(positions, bands * (t + 1) / parts * step)
                    guard p1 > p0 else { return }
                    bp_lutconv8_forward(fast, &w, &geo, x.value, bias, y.value, Int32(p0), Int32(p1), relu, scratch)
                }
            }
        }
        if activation != .none && activation != .relu { activation.apply(to: output, count: g.batch * outSize) }
    }
}

extension LutConvInt8Weights {
    /// `forward` split by row tiles: per block of positions the threads first build its tables
    /// into one shared buffer, each a part (16-position chunks), then each runs its row tiles
    /// over the whole block. Two jobs per block instead of one, but no thread builds a table
    /// another one builds too: where each thread built every position's tables, those builds
    /// (a quarter of a 1x1 layer's time on a 7x7 map) did not get faster with threads.
    fileprivate func forwardSharedTables(
        _ fast: Int32, _ weights: bp_lutconv8_weights, _ geometry: bp_lutconv_geometry, batch: Int, inSize: Int, input: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, relu: Int32, threads: Int, scratch: BitPlaneScratch, perThread: Int,
        tablesPerThread: UnsafeMutablePointer<Float>
    ) {
        var w0 = weights
        let tableBytes = (bp_lutconv8_table_bytes(&w0) + 63) / 64 * 64
        let shared = UncheckedSendable(UnsafeMutableRawPointer(scratch.buffer(.lutConvSharedTables, tableBytes / 4 + 16, as: Float.self)))
        let own = UncheckedSendable(UnsafeMutableRawPointer(tablesPerThread))
        let positions = Int(geometry.outHeight * geometry.outWidth), block = Int(bp_lutconv8_block_positions(&w0))
        let tiles = (rows + Self.tile - 1) / Self.tile, outSize = rows * positions
        for n in 0..<batch {
            let x = UncheckedSendable(input + n * inSize), y = UncheckedSendable(output + n * outSize)
            for b0 in stride(from: 0, to: positions, by: block) {
                let b1 = min(b0 + block, positions), chunks = (b1 - b0 + 15) / 16
                let parts = min(threads, chunks)
                Parallel.forEach(parts, threads: parts) { t in
                    var w = weights, geo = geometry
                    let p0 = b0 + 16 * (chunks * t / parts), p1 = min(b1, b0 + 16 * (chunks * (t + 1) / parts))
                    bp_lutconv8_build_tables(fast, &w, &geo, x.value, Int32(b0), Int32(p0), Int32(p1), shared.value, own.value + t * perThread)
                }
                Parallel.forEach(threads, threads: threads) { t in
                    var w = weights, geo = geometry
                    bp_lutconv8_tiles_from_tables(fast, &w, &geo, bias, y.value, Int32(b0), Int32(b1), Int32(tiles * t / threads), Int32(tiles * (t + 1) / threads),
                                                  relu, shared.value, own.value + t * perThread)
                }
            }
        }
    }

    /// `forward` of a pointwise Conv with the batch's positions folded into one map.
    fileprivate func forwardFolded(
        _ variant: KernelVariant, _ g: ConvGeometry, input: UnsafePointer<Float>, bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
        activation: Activation, threads: Int, scratch: BitPlaneScratch, split: Split?
    ) {
        let N = g.batch, P = g.outputSize, C = g.inChannels
        // The folded copies live in the session's scratch (their own slots): no allocation per run.
        let x = scratch.buffer(.foldedInput, C * N * P, as: Float.self), y = scratch.buffer(.foldedOutput, rows * N * P, as: Float.self)
        for n in 0..<N { for c in 0..<C { (x + (c * N + n) * P).update(from: input + (n * C + c) * P, count: P) } }
        let folded = ConvGeometry(batch: 1, inChannels: C, outChannels: rows, input: [1, N * P], kernel: [1, 1], strides: [1, 1], dilations: [1, 1],
                                  padBegin: [0, 0], padEnd: [0, 0])
        forward(variant, folded, input: x, bias: bias, output: y, activation: activation, threads: threads, scratch: scratch, split: split)
        for o in 0..<rows { for n in 0..<N { (output + (n * rows + o) * P).update(from: y + (o * N + n) * P, count: P) } }
    }

    /// `forward` on pixel tables: threads take bands of output rows.
    fileprivate func forwardPixels(
        _ variant: KernelVariant, _ g: ConvGeometry, _ geometry: bp_lutconv_geometry, _ weights: bp_lutconv8_weights, input: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: Activation, threads: Int, scratch: BitPlaneScratch, split: Split?
    ) {
        var w = weights, geo = geometry
        precondition(bp_lutconv8_pixels_fit(&w, &geo) != 0, "pixel tables do not fit \(g)")
        let perThread = (bp_lutconv8_pixels_scratch_bytes(&w, &geo) + 63) / 64 * 64
        let outRows = Int(geometry.outHeight), tiles = (rows + Self.tile - 1) / Self.tile
        let byRows = (split ?? Split.automatic(rows: rows, positions: g.outputSize, threads: threads)) == .rows
        // Bands of output rows: two per thread where each is still 8 rows or more (each band
        // builds its halo of input rows again), for the reason above; row-tile bands one per thread.
        let threadCount = min(max(1, threads), byRows ? tiles : outRows)
        let parts = byRows || threadCount == 1 || outRows < 16 * threadCount ? threadCount : 2 * threadCount
        let buffer = UncheckedSendable(scratch.buffer(.lutConvTables, parts * perThread / 4 + 16, as: Float.self))
        let inSize = g.inChannels * g.inputSize, outSize = rows * g.outputSize
        let fast: Int32 = variant == .fast ? 1 : 0
        let relu: Int32 = activation == .relu ? 1 : 0
        for n in 0..<g.batch {
            let x = UncheckedSendable(input + n * inSize), y = UncheckedSendable(output + n * outSize)
            Parallel.forEach(parts, threads: threadCount) { t in
                var w = weights, geo = geometry
                let scratch = UnsafeMutableRawPointer(buffer.value) + t * perThread
                if byRows {
                    bp_lutconv8_pixels_forward_tiles(fast, &w, &geo, x.value, bias, y.value, 0, Int32(outRows), Int32(tiles * t / parts),
                                                     Int32(tiles * (t + 1) / parts), relu, scratch)
                    return
                }
                let r0 = outRows * t / parts, r1 = outRows * (t + 1) / parts
                guard r1 > r0 else { return }
                bp_lutconv8_pixels_forward(fast, &w, &geo, x.value, bias, y.value, Int32(r0), Int32(r1), relu, scratch)
            }
        }
        if activation != .none && activation != .relu { activation.apply(to: output, count: g.batch * outSize) }
    }
}

/// An LSB-first bit stream in 64-bit words, as the int8 kernel reads it (`pdep` deposits).
struct BitStreamWriter {
    private(set) var words: [UInt64] = []
    private var used = 64

    /// The bits of `value` at the set bits of `positions`, low first (what `pext` extracts).
    mutating func append(extracting value: UInt64, at positions: UInt64) {
        var m = positions
        while m != 0 {
            let low = m & (0 &- m)
            if used == 64 {
                words.append(0)
                used = 0
            }
            if value & low != 0 { words[words.count - 1] |= 1 << UInt64(used) }
            used += 1
            m &= m - 1
        }
    }
}
