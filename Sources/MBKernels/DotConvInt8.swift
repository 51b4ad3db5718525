import CBitPlanes
import MBCore

/// A binarized pointwise (1x1) Conv weight held for the int8 dot-product convolution
/// (`bp_dotconv8_forward`, CBitPlanes): per bit level a plane of int8 weights in {-1, 0, +1}
/// (the level's sign where the entry has the level) with a scale per row, times the inputs
/// quantized to u8 once per position (scale per position, zero point 128 when the position has a
/// negative input). Lossy like the int8 tables, but with no per-position tables: what makes a
/// small-reduction pointwise layer pay, where building the tables costs what the lookups save.
///
/// Held: one byte per weight and plane (rows padded to blocks of 4, the reduction to quads of 4),
/// plus per plane and row a scale and the row's sum (the zero-point correction); blocks of 4 rows
/// without a level skip it. Against the float weight's 4 bytes: 1 byte per weight per plane.
public final class DotConvInt8Weights: @unchecked Sendable {
    public let rows: Int
    /// Input channels (entries of one row).
    public let reduction: Int
    public let planes: Int
    let weights: Owned<Int8>
    let rowSums: Owned<Int32>
    let scales: Owned<Float>
    let blockActive: Owned<UInt8>
    static let rowBlock = Int(BP_DOTCONV8_ROWS)
    /// Position bands per thread (as `LutConvInt8Weights`).
    static let bandsPerThread = 4

    /// Whether this CPU has the AVX-512 VNNI body; the portable one runs everywhere.
    public static var fastAvailable: Bool { bp_dotconv8_fast_available() != 0 }

    var quads: Int { (reduction + 3) / 4 }
    var rowBlocks: Int { (rows + Self.rowBlock - 1) / Self.rowBlock }

    var c: bp_dotconv8_weights {
        bp_dotconv8_weights(rows: Int32(rows), reduction: Int32(reduction), planes: Int32(planes), quads: Int32(quads), rowBlocks: Int32(rowBlocks),
                            weights: weights.pointer, rowSums: rowSums.pointer, scales: scales.pointer, blockActive: blockActive.pointer)
    }

    /// Bytes held: the int8 planes, row sums, scales and block flags.
    public var residentBytes: Int { weights.bytes + rowSums.bytes + scales.bytes + blockActive.bytes }

    /// A pointwise Conv weight `[O, C, 1...]` (one group) with scales per tensor or per output channel.
    public convenience init(packed: PackedTensor) throws(BitPlaneMatrix.Unsupported) {
        let s = try LutConvSource(packed: packed)
        self.init(rows: s.rows, reduction: s.reduction, mask: s.mask, signBits: s.signBits, scales: s.scales, perRowScales: s.perRowScales)
    }

    /// Rows of `reduction` entries, flat row-major: entry j has bit width `mask[j]` (1...levels)
    /// and at level l the sign bit j of `signBits[l]` (1 = +); `scales[l]` holds a scale per row
    /// (`perRowScales`) or one.
    public init(rows: Int, reduction K: Int, mask: [UInt8], signBits signs: [[UInt64]], scales levelScales: [[Float]], perRowScales perRow: Bool) {
        let L = max(1, signs.count), R = Self.rowBlock
        self.rows = rows
        reduction = K
        planes = L
        let blocks = (rows + R - 1) / R, quads = (K + 3) / 4, padded = blocks * R
        var w = [Int8](repeating: 0, count: L * blocks * quads * R * 4)
        var sums = [Int32](repeating: 0, count: L * padded)
        var sc = [Float](repeating: 0, count: L * padded)
        var active = [UInt8](repeating: 0, count: L * blocks)
        for l in 0..<L {
            for o in 0..<rows {
                sc[l * padded + o] = l < levelScales.count ? levelScales[l][perRow ? o : 0] : 0
                let rb = o / R, r = o % R
                for k in 0..<K {
                    let v = Self.planeWeight(mask: mask, signs: signs, level: l, flat: o * K + k)
                    guard v != 0 else { continue }
                    w[(((l * blocks + rb) * quads + k / 4) * R + r) * 4 + k % 4] = v
                    sums[l * padded + o] += Int32(v)
                    active[l * blocks + rb] = 1
                }
            }
        }
        weights = Owned(w)
        rowSums = Owned(sums)
        scales = Owned(sc)
        blockActive = Owned(active)
    }

    /// Entry `flat`'s weight on plane `level`: its sign there (+1 / -1) where it has the level, else 0.
    @inline(__always)
    static func planeWeight(mask: [UInt8], signs: [[UInt64]], level l: Int, flat: Int) -> Int8 {
        guard Int(mask[flat]) > l else { return 0 }
        return l < signs.count && (signs[l][flat >> 6] >> UInt64(flat & 63)) & 1 == 1 ? 1 : -1
    }

    /// Whether `packed` makes weights that fit `g` (without building them).
    public static func accepts(_ packed: PackedTensor, _ g: ConvGeometry) -> Bool {
        guard (3...4).contains(packed.shape.count), packed.shape[0] == g.outChannels, packed.count == g.outChannels * g.inChannels,
              Self.pointwise(g), (try? BitPlaneMatrix.checkSupported(packed: packed, kind: .conv)) != nil else { return false }
        return true
    }

    /// A 1x1 Conv with one group, 1 or 2 spatial dimensions and no padding (any stride).
    static func pointwise(_ g: ConvGeometry) -> Bool {
        g.groups == 1 && g.rank <= 2 && g.kernelSize == 1 && g.padBegin.allSatisfy { $0 == 0 } && g.padEnd.allSatisfy { $0 == 0 }
            && g.outputSize < Int(Int32.max) && g.inputSize < Int(Int32.max)
    }

    /// Whether the kernel runs `g`: a pointwise Conv (`pointwise`) of these weights.
    public func fits(_ g: ConvGeometry) -> Bool {
        Self.pointwise(g) && g.outChannels == rows && g.inChannels == reduction
    }

    /// The convolution with `activation` applied (ReLU in the kernel's store), after adding
    /// `residual` (the output's shape: a fused Add) when given: `variant` `.fast`
    /// runs the AVX-512 VNNI body where the CPU has it, `.reference` the portable one
    /// (bit-identical). Threads take bands of output positions (multiples of 16, as the float
    /// convolution cuts them), each quantizing only its own positions.
    public func forward(
        _ variant: KernelVariant = .fast, _ g: ConvGeometry, input: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, threads: Int, scratch: BitPlaneScratch, residual: UnsafePointer<Float>? = nil
    ) {
        precondition(fits(g), "int8 dot-product weights \(rows)x\(reduction) do not fit \(g)")
        var weights = c
        let perThread = withUnsafePointer(to: &weights) { (bp_dotconv8_scratch_bytes($0) + 63) / 64 * 64 }
        let d = g.dims3, positions = g.outputSize, step = 16, units = (positions + step - 1) / step
        let threadCount = min(max(1, threads), units)
        let parts = threadCount == 1 ? 1 : min(Self.bandsPerThread * threadCount, units)
        // The tables' slot: a Conv runs one form at a time.
        let buffer = UncheckedSendable(scratch.buffer(.lutConvTables, parts * perThread / 4 + 16, as: Float.self))
        let inSize = g.inChannels * g.inputSize, outSize = rows * positions
        let fast: Int32 = variant == .fast ? 1 : 0, relu: Int32 = activation == .relu ? 1 : 0
        for n in 0..<g.batch {
            let x = UncheckedSendable(input + n * inSize), y = UncheckedSendable(output + n * outSize)
            let r = residual.map { UncheckedSendable($0 + n * outSize) }
            Parallel.forEach(parts, threads: threadCount) { t in
                var w = weights
                let scratch = UnsafeMutableRawPointer(buffer.value) + t * perThread
                let p0 = t == 0 ? 0 : positions * t / parts / step * step, p1 = t == parts - 1 ? positions : positions * (t + 1) / parts / step * step
                guard p1 > p0 else { return }
                bp_dotconv8_forward(fast, &w, Int32(g.inChannels), Int32(d.input.1), Int32(d.input.2), Int32(d.strides.1), Int32(d.strides.2),
                                    Int32(d.output.1), Int32(d.output.2), x.value, bias, r?.value, y.value, Int32(p0), Int32(p1), relu, scratch)
            }
        }
        if activation != .none && activation != .relu { activation.apply(to: output, count: g.batch * outSize) }
    }
}
