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
}
