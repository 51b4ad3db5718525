import CBitPlanes
import MBCore

/// A binarized Conv weight laid out for the lookup-table convolution (`bp_lutconv_forward`,
/// CBitPlanes): float activations, many output positions, no expanded weights.
///
/// The reduction axis (input channel, kernel tap) is cut into groups of 4 entries. For each
/// block of 32 output positions the kernel tabulates the 16 signed sums of each group's 4
/// inputs; a weight row then adds one table entry per group and level instead of 4 multiply-adds
/// per position. Per row and level the layout holds one byte per group: the group's signs where
/// all 4 entries are active at that level ("whole"), a pair whose inactive entries cancel where
/// some are ("half", counted at half the scale), nothing where none is. So a homogeneous or
/// channel mask costs one lookup per group and level a row has, a per-entry mask up to two for
/// the levels above the first. The sums run in a different order from the float GEMM on the
/// expanded weights: equal within float rounding (`tolerance`), not bit for bit.
public final class LutConvWeights: @unchecked Sendable {
    public let rows: Int
    /// Entries of one row: input channels x kernel taps.
    public let reduction: Int
    public let levels: Int
    /// Chunks of 16 groups of 4 entries.
    public let chunks: Int
    let listStart: Owned<Int32>
    let halfStart: Owned<Int32>
    let codes: Owned<UInt8>
    let scales: Owned<Float>

    /// Output positions per kernel block.
    public static let columns = Int(BP_LUTCONV_COLUMNS)

    var c: bp_lutconv_weights {
        bp_lutconv_weights(rows: Int32(rows), reduction: Int32(reduction), levels: Int32(levels), chunks: Int32(chunks),
                           listStart: listStart.pointer, halfStart: halfStart.pointer, codes: codes.pointer, scales: scales.pointer)
    }

    /// Bytes held: codes, list offsets and scales.
    public var residentBytes: Int { listStart.bytes + halfStart.bytes + codes.bytes + scales.bytes }

    /// Lookups per row and 4 entries, averaged (1 per level for homogeneous masks).
    public var lookupsPerGroup: Double { Double(codes.count) / Double(max(1, rows * ((reduction + 3) / 4))) }

    /// A Conv weight `[O, C, k...]` (one group; 1 or 2 spatial dimensions) with scales per tensor
    /// or per output channel.
    public convenience init(packed: PackedTensor) throws(BitPlaneMatrix.Unsupported) {
        let s = try LutConvSource(packed: packed)
        self.init(rows: s.rows, reduction: s.reduction, mask: s.mask, signBits: s.signBits, scales: s.scales, perRowScales: s.perRowScales)
    }

    /// Rows of `reduction` entries, flat row-major: entry j has bit width `mask[j]` (1...levels)
    /// and at level l the sign bit j of `signBits[l]` (1 = +); `scales[l]` holds a scale per row
    /// (`perRowScales`) or one.
    public init(rows: Int, reduction columns: Int, mask: [UInt8], signBits signs: [[UInt64]], scales levelScales: [[Float]], perRowScales perRow: Bool) {
        let L = max(1, signs.count)
        self.rows = rows
        reduction = columns
        levels = L
        let groups = (columns + 3) / 4
        let chunks = (groups + 15) / 16
        self.chunks = chunks
        var scales = [Float](repeating: 0, count: rows * L)
        for o in 0..<rows { for l in 0..<levelScales.count { scales[o * L + l] = levelScales[l][perRow ? o : 0] } }
        var listStart = [Int32](), halfStart = [Int32](), codes = [UInt8]()
        listStart.reserveCapacity(rows * L * chunks + 1)
        halfStart.reserveCapacity(rows * L * chunks)
        var half: [UInt8] = []
        mask.withUnsafeBufferPointer { mask in
            for o in 0..<rows {
                for l in 0..<L {
                    for ch in 0..<chunks {
                        listStart.append(Int32(codes.count))
                        half.removeAll(keepingCapacity: true)
                        for grp in (ch * 16)..<min(groups, ch * 16 + 16) {
                            let (active, plus) = LutConvSource.groupBits(mask: mask, signs: signs, row: o, group: grp, level: l, reduction: columns)
                            let base = UInt8((grp % 16) * 16)
                            if active == 15 {
                                codes.append(base | UInt8(plus & 15))
                            } else if active != 0 {
                                half.append(base | UInt8((plus & active) | (~active & 15)))
                                half.append(base | UInt8(plus & active))
                            }
                        }
                        halfStart.append(Int32(codes.count))
                        codes.append(contentsOf: half)
                    }
                }
            }
        }
        listStart.append(Int32(codes.count))
        self.listStart = Owned(listStart)
        self.halfStart = Owned(halfStart)
        self.codes = Owned(codes)
        self.scales = Owned(scales)
    }

    /// Whether the kernel runs `g`: one group, 1 or 2 spatial dimensions, these weights.
    public func fits(_ g: ConvGeometry) -> Bool {
        g.groups == 1 && g.rank <= 2 && g.outChannels == rows && g.inChannels * g.kernelSize == reduction
            && g.outputSize < Int(Int32.max) && g.inputSize < Int(Int32.max)
    }

    /// Relative tolerance against the float convolution on the expanded weights: per output,
    /// |y - y_expanded| <= tolerance * (|bias| + sum over the reduction of |w| |x|).
    public static let tolerance: Float = 1e-5

    /// One image of `g` as the C kernels take it (a 1-D convolution has height 1).
    static func cGeometry(_ g: ConvGeometry) -> bp_lutconv_geometry {
        let d = g.dims3
        return bp_lutconv_geometry(
            channels: Int32(g.inChannels), height: Int32(d.input.1), width: Int32(d.input.2),
            kernelH: Int32(d.kernel.1), kernelW: Int32(d.kernel.2), strideH: Int32(d.strides.1), strideW: Int32(d.strides.2),
            dilationH: Int32(d.dilations.1), dilationW: Int32(d.dilations.2), padH: Int32(d.pads.1), padW: Int32(d.pads.2),
            outHeight: Int32(d.output.1), outWidth: Int32(d.output.2))
    }

    /// The convolution with `activation` applied: `variant` `.fast` runs the AVX-512 body where
    /// the CPU has it, `.reference` the portable one (bit-identical).
    public func forward(
        _ variant: KernelVariant = .fast, _ g: ConvGeometry, input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, threads: Int, scratch: BitPlaneScratch
    ) {
        precondition(fits(g), "lookup-table weights \(rows)x\(reduction) do not fit \(g)")
        let geometry = Self.cGeometry(g)
        let weights = c
        let isa: Int32 = variant == .fast ? bp_isa() : 0
        let perThread = withUnsafePointer(to: weights) { (bp_lutconv_scratch_floats($0) + 15) / 16 * 16 }
        let positions = g.outputSize, blocks = (positions + Self.columns - 1) / Self.columns
        let parts = min(max(1, threads), blocks)
        let buffer = UncheckedSendable(scratch.buffer(.lutConvTables, parts * perThread, as: Float.self))
        let inSize = g.inChannels * g.inputSize, outSize = rows * positions
        for n in 0..<g.batch {
            let x = UncheckedSendable(input + n * inSize), y = UncheckedSendable(output + n * outSize)
            Parallel.forEach(parts, threads: parts) { t in
                let b0 = blocks * t / parts, b1 = blocks * (t + 1) / parts
                guard b1 > b0 else { return }
                var w = weights, geo = geometry
                bp_lutconv_forward(isa, &w, &geo, x.value, bias, y.value, Int32(b0), Int32(b1), buffer.value + t * perThread)
            }
        }
        if activation != .none { activation.apply(to: output, count: g.batch * outSize) }
    }
}
