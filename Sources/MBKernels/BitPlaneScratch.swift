/// Reusable buffers for the bit-plane kernels (padded inputs, tables, activation planes), owned
/// by the caller like `KernelScratch`: a layer call sizes them once, its loops allocate nothing.
public final class BitPlaneScratch {
    private var buffers: [Int: (pointer: UnsafeMutableRawPointer, bytes: Int)] = [:]

    public init() {}
    deinit { for b in buffers.values { b.pointer.deallocate() } }

    /// At least `count` values of `T` in slot `slot`, valid until the slot is asked for again.
    /// Contents are unspecified.
    public func buffer<T>(_ slot: Slot, _ count: Int, as: T.Type = T.self) -> UnsafeMutablePointer<T> {
        let bytes = max(1, count) * MemoryLayout<T>.stride
        if let b = buffers[slot.rawValue], b.bytes >= bytes { return b.pointer.bindMemory(to: T.self, capacity: count) }
        buffers[slot.rawValue]?.pointer.deallocate()
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        buffers[slot.rawValue] = (p, bytes)
        return p.bindMemory(to: T.self, capacity: count)
    }

    /// Bytes currently held.
    public var bytesHeld: Int { buffers.values.reduce(0) { $0 + $1.bytes } }

    public enum Slot: Int {
        case paddedInput, gemvTables, levelSums, actSigns, actActs, actState, actMask, actResidual, actList, patches,
             actScales, decodedWeights, columns, tileOutput, selection, lutConvTables, lutConvSharedTables, foldedInput, foldedOutput
    }
}
