import MBCore
import MBKernels

extension Binarizer {
    /// Binarization with a structured mask: every entry of a group (`groups`, e.g. from
    /// `MaskGroups.weight(..., granularity: .group(64))`) gets the same bit width, chosen by the
    /// Middle-Out rule applied to groups (a group's key is the mean of its entries' keys
    /// | |T_j| - m |). With channel scales, each output slice receives the distribution P over
    /// its own groups, as element masks do; `wholeTensor` selects over all groups at once
    /// instead (the `channel` granularity, whose groups are the slices themselves). The residual
    /// levels then follow HBB.md section 2 for that mask (`binarize(_:mask:scale:)`).
    public static func binarize(_ tensor: FloatTensor, _ config: BinarizationConfig, groups: MaskGroups, wholeTensor: Bool = false) throws(BinarizeError) -> PackedTensor {
        guard config.method == .middleOut else {
            throw .invalidConfiguration("structured masks are chosen by middle-out, not \(config.method)")
        }
        guard groups.ids.count == tensor.values.count else {
            throw .invalidMask(tensor: tensor.name, reason: "\(groups.ids.count) group ids for \(tensor.values.count) values")
        }
        if let error = firstNonFinite(tensor.values, tensor: tensor.name) { throw error }
        let bits = config.distribution.entries.map(\.bits), fractions = config.distribution.entries.map(\.fraction)
        var mask: [UInt8]
        let layout = try GroupLayout(shape: tensor.shape, scale: config.scale, tensor: tensor.name)
        if wholeTensor || layout.groupCount <= 1 {
            mask = tensor.values.withUnsafeBufferPointer { MiddleOutMask.select($0, bits: bits, fractions: fractions, groups: groups) }
        } else {
            // Per scale slice, in group-major order, with the slice's groups renumbered.
            let values = layout.toGroupMajor(tensor.values), ids = layout.toGroupMajor(groups.ids)
            var groupMajorMask = [UInt8](repeating: 0, count: values.count)
            for s in 0..<layout.groupCount {
                let range = (s * layout.groupSize)..<((s + 1) * layout.groupSize)
                var renumber: [UInt32: UInt32] = [:]
                let local = ids[range].map { id -> UInt32 in
                    if let r = renumber[id] { return r }
                    let r = UInt32(renumber.count)
                    renumber[id] = r
                    return r
                }
                let slice = Array(values[range])
                let m = slice.withUnsafeBufferPointer {
                    MiddleOutMask.select($0, bits: bits, fractions: fractions, groups: MaskGroups(ids: local, count: renumber.count))
                }
                groupMajorMask.replaceSubrange(range, with: m)
            }
            mask = layout.toFlat(groupMajorMask)
        }
        return try binarize(tensor, mask: mask, scale: config.scale)
    }
}
