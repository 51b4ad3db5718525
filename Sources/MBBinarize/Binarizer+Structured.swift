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

    /// Groups per width in a domain of `groups` groups, as Middle-Out on groups hands them out
    /// (widths ascending, zero fractions dropped; round(p · groups) each, capped at what remains;
    /// the last width takes the rest). `SaliencyMask` keeps the same counts.
    public static func structuredCounts(groups n: Int, used: [(bits: Int, fraction: Double)]) -> [Int] {
        var remaining = n
        var counts: [Int] = []
        for (i, (_, p)) in used.enumerated() {
            let c = i + 1 == used.count ? remaining : min(HBB.roundedCount(p, of: n), remaining)
            counts.append(c)
            remaining -= c
        }
        return counts
    }

    /// Why `mask` is not a structured mask of `groups` with P's counts (nil when it is): every
    /// group one width, and in each domain (each scale slice of `layout`, or the whole tensor
    /// when `wholeTensor` or one slice) exactly `structuredCounts` groups per width. What any
    /// structured mask chosen for P satisfies, whoever chose it (Middle-Out, saliency).
    public static func structuredMaskProblem(_ mask: [UInt8], layout: GroupLayout, groups: MaskGroups, wholeTensor: Bool,
                                             bits: [Int], fractions: [Double]) -> String? {
        guard mask.count == groups.ids.count, mask.count == layout.count else { return "\(mask.count) mask entries for \(groups.ids.count) group ids" }
        let used = zip(bits, fractions).filter { $0.1 > 0 }.map { (bits: $0.0, fraction: $0.1) }
        var width = [UInt8](repeating: 0, count: groups.count), domain = [Int](repeating: 0, count: groups.count)
        let slices = !wholeTensor && layout.groupCount > 1
        for q in 0..<layout.count {
            let flat = layout.flatIndex(ofGroupMajor: q), g = Int(groups.ids[flat])
            guard g < groups.count else { return "group id \(g) of \(groups.count)" }
            if width[g] == 0 {
                width[g] = mask[flat]
                domain[g] = slices ? q / layout.groupSize : 0
            } else if width[g] != mask[flat] {
                return "group \(g) mixes bit widths \(width[g]) and \(mask[flat])"
            }
        }
        var members: [Int: [Int]] = [:]
        for g in 0..<groups.count { members[domain[g], default: []].append(g) }
        for (d, list) in members.sorted(by: { $0.key < $1.key }) {
            let expected = structuredCounts(groups: list.count, used: used)
            let found = used.map { u in list.filter { Int(width[$0]) == u.bits }.count }
            if found != expected || found.reduce(0, +) != list.count {
                return "\(slices ? "output slice \(d)" : "the tensor") has \(found) groups of widths \(used.map(\.bits)), P gives \(expected)"
            }
        }
        return nil
    }
}
