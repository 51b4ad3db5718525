import CBitPlanes
import MBCore

/// A binarized Conv weight laid out for the int8 lookup-table convolution (`bp_lutconv8_forward`,
/// CBitPlanes): the technique of T-MAC / bitnet.cpp. Lossy: the activations are quantized.
///
/// Per output position and block of 256 reduction entries, the kernel quantizes the 16 signed
/// sums of each group of 4 inputs to int8 (scale: the block's largest sum of |x| over a group
/// / 127); a register then holds 4 groups' tables and one byte permute looks up 16 rows x 4
/// groups, summed exactly in int32. Per plane the layout holds one nibble per row and group: a
/// level where each row has all or none of its entries active takes one code set (rows without
/// the level get scale 0), a level with per-entry masks two, whose inactive entries cancel.
/// Resident: half a byte per row, group and code set, plus scales (1 bit per weight per level,
/// 2 for per-entry levels).
public final class LutConvInt8Weights: @unchecked Sendable {
    public let rows: Int
    /// Entries of one row: input channels x kernel taps.
    public let reduction: Int
    /// Code sets per plane (1 or 2).
    public let halves: [Int32]
    let halvesStorage: Owned<Int32>
    let codes: Owned<UInt8>
    /// [row tile][plane][16] (pair planes hold the level's scale halved).
    let scales: Owned<Float>
    static let tile = Int(BP_LUTCONV8_ROWS)

    /// Whether this CPU has the AVX-512 body (VBMI and VNNI); the portable one runs everywhere.
    public static var fastAvailable: Bool { bp_lutconv8_fast_available() != 0 }

    var quads: Int { (reduction + 15) / 16 }

    var c: bp_lutconv8_weights {
        bp_lutconv8_weights(rows: Int32(rows), reduction: Int32(reduction), quads: Int32(quads), planes: Int32(halves.count),
                            codeSets: Int32(halves.reduce(0, +)), halves: halvesStorage.pointer, codes: codes.pointer, scales: scales.pointer)
    }

    /// Bytes held: codes, scales and the plane list.
    public var residentBytes: Int { codes.bytes + scales.bytes + halvesStorage.bytes }

    /// A Conv weight `[O, C, k...]` (one group; 1 or 2 spatial dimensions) with scales per tensor
    /// or per output channel.
    public convenience init(packed: PackedTensor) throws(BitPlaneMatrix.Unsupported) {
        let s = try LutConvSource(packed: packed)
        self.init(rows: s.rows, reduction: s.reduction, mask: s.mask, signBits: s.signBits, scales: s.scales, perRowScales: s.perRowScales)
    }

    /// Rows of `reduction` entries, flat row-major: entry j has bit width `mask[j]` (1...levels)
    /// and at level l the sign bit j of `signBits[l]` (1 = +); `scales[l]` holds a scale per row
    /// (`perRowScales`) or one. `rowScale` multiplies every level's scale of a row (a folded
    /// BatchNormalization).
    public init(rows: Int, reduction columns: Int, mask: [UInt8], signBits signs: [[UInt64]], scales levelScales: [[Float]], perRowScales perRow: Bool,
                rowScale: [Float]? = nil) {
        let L = max(1, signs.count)
        self.rows = rows
        reduction = columns
        let T = Self.tile, tiles = (rows + T - 1) / T, quads = (columns + 15) / 16, groups = quads * 4
        // A level takes one code set when every row has all or none of its entries active there.
        var halves = [Int32](repeating: 1, count: L)
        mask.withUnsafeBufferPointer { mask in
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
        let sets = Int(halves.reduce(0, +))
        var codes = [UInt8](repeating: 0, count: tiles * quads * sets * 32)
        var scales = [Float](repeating: 0, count: tiles * L * T)
        mask.withUnsafeBufferPointer { mask in
            for o in 0..<rows {
                let t = o / T, r = o % T
                var planeStart = t * quads * sets * 32
                for l in 0..<L {
                    let pair = halves[l] == 2
                    let rowActive = columns > 0 && Int(mask[o * columns]) > l
                    var s: Float = l < levelScales.count ? levelScales[l][perRow ? o : 0] : 0
                    if let rowScale { s *= rowScale[o] }
                    scales[(t * L + l) * T + r] = pair ? 0.5 * s : (rowActive ? s : 0)
                    for grp in 0..<groups {
                        let (active, plus) = LutConvSource.groupBits(mask: mask, signs: signs, row: o, group: grp, level: l, reduction: columns)
                        let q = grp / 4, e = 4 * r + grp % 4
                        let a = pair ? (plus & active) | (~active & 15) : plus
                        let b = plus & active
                        let at = planeStart + q * (pair ? 64 : 32) + e / 2
                        codes[at] |= UInt8(a & 15) << UInt8((e & 1) * 4)
                        if pair { codes[at + 32] |= UInt8(b & 15) << UInt8((e & 1) * 4) }
                    }
                    planeStart += quads * Int(halves[l]) * 32
                }
            }
        }
        halvesStorage = Owned(halves)
        self.codes = Owned(codes)
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
    }

    /// The convolution with `activation` applied: `variant` `.fast` runs the AVX-512 body where
    /// the CPU has it, `.reference` the portable one (bit-identical).
    public func forward(
        _ variant: KernelVariant = .fast, _ g: ConvGeometry, input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, threads: Int, scratch: BitPlaneScratch
    ) {
        precondition(fits(g), "int8 lookup-table weights \(rows)x\(reduction) do not fit \(g)")
        let geometry = LutConvWeights.cGeometry(g)
        let weights = c
        let perThread = withUnsafePointer(to: weights) { (bp_lutconv8_scratch_bytes($0) + 63) / 64 * 64 }
        let positions = g.outputSize, step = Int(BP_LUTCONV8_POSITIONS)
        let units = (positions + step - 1) / step
        let parts = min(max(1, threads), units)
        let buffer = UncheckedSendable(scratch.buffer(.lutConvTables, parts * perThread / 4 + 16, as: Float.self))
        let inSize = g.inChannels * g.inputSize, outSize = rows * positions
        let fast: Int32 = variant == .fast ? 1 : 0
        // ReLU in the kernel's store; other activations in one pass after.
        let relu: Int32 = activation == .relu ? 1 : 0
        for n in 0..<g.batch {
            let x = UncheckedSendable(input + n * inSize), y = UncheckedSendable(output + n * outSize)
            Parallel.forEach(parts, threads: parts) { t in
                let p0 = min(positions, units * t / parts * step), p1 = min(positions, units * (t + 1) / parts * step)
                guard p1 > p0 else { return }
                var w = weights, geo = geometry
                bp_lutconv8_forward(fast, &w, &geo, x.value, bias, y.value, Int32(p0), Int32(p1), relu,
                                    UnsafeMutableRawPointer(buffer.value) + t * perThread)
            }
        }
        if activation != .none && activation != .relu { activation.apply(to: output, count: g.batch * outSize) }
    }
}
