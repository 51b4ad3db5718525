/// A binarized tensor as the file stores it: what MBBinarize's packed form holds, nothing more.
/// Entries are counted in group-major order (groups = slices along `channelAxis`, or one group).
public struct BinarizedPayload: Sendable {
    /// Number of levels K (1...8): the largest bit width.
    public var levels: Int
    /// nil: one scale per level for the tensor; otherwise one per slice along this axis.
    public var channelAxis: Int?
    /// Scales, level-major: `scales[k][g]` is level k+1's scale for group g.
    public var scales: [[Float]]
    /// Per level, its sign stream as little-endian u64 words (LSB first, zero padding).
    public var signWords: [ByteSlice]
    /// Per level, the number of sign bits (entries whose bit width reaches it).
    public var signBitCounts: [Int]
    /// Bit width of every entry in flat order, or nil when every entry has `levels` bits.
    public var mask: [UInt8]?

    public init(levels: Int, channelAxis: Int?, scales: [[Float]], signWords: [ByteSlice], signBitCounts: [Int], mask: [UInt8]?) {
        self.levels = levels
        self.channelAxis = channelAxis
        self.scales = scales
        self.signWords = signWords
        self.signBitCounts = signBitCounts
        self.mask = mask
    }

    public var groupCount: Int { scales.first?.count ?? 1 }
}

