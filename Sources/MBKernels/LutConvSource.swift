import MBCore

/// What both lookup-table convolution layouts (`LutConvWeights`, `LutConvInt8Weights`) take from a
/// packed Conv weight `[O, C, k...]`: one group, 1 or 2 spatial dimensions, scales per tensor or
/// per output channel.
struct LutConvSource {
    let rows: Int
    /// Input channels x kernel taps.
    let reduction: Int
    let mask: [UInt8]
    let signBits: [[UInt64]]
    let scales: [[Float]]
    let perRowScales: Bool

    init(packed: PackedTensor) throws(BitPlaneMatrix.Unsupported) {
        guard (3...4).contains(packed.shape.count) else {
            throw .init(description: "conv weight \(packed.shape): lookup tables take 1 or 2 spatial dimensions")
        }
        let (rows, columns, _, _, perRow) = try BitPlaneMatrix.checkSupported(packed: packed, kind: .conv)
        guard rows < Int(Int32.max), columns < 1 << 28 else { throw .init(description: "conv weight \(packed.shape) is too large") }
        self.rows = rows
        reduction = columns
        mask = packed.mask
        signBits = packed.flatSignBits(packed.layout)
        scales = packed.levels.map(\.scales)
        perRowScales = perRow
    }

    /// One group of 4 entries of `row` at `level`, as two nibbles: bit j of `active` set when entry
    /// 4·group+j has that level, of `plus` when its sign there is +. Entries past the reduction
    /// count as active: their inputs are 0, so any sign does.
    @inline(__always)
    static func groupBits(mask: UnsafeBufferPointer<UInt8>, signs: [[UInt64]], row: Int, group: Int, level l: Int, reduction columns: Int) -> (active: Int, plus: Int) {
        var active = 0, plus = 0
        for j in 0..<4 {
            let k = 4 * group + j
            guard k < columns else { active |= 1 << j; continue }
            let flat = row * columns + k
            if Int(mask[flat]) > l { active |= 1 << j }
            if l < signs.count, (signs[l][flat >> 6] >> UInt64(flat & 63)) & 1 == 1 { plus |= 1 << j }
        }
        return (active, plus)
    }
}
