import CBitPlanes
import MBCore

/// Middle-Out mask selection (HBB.md section 3) for the runtime's binarized activations and for
/// structured (group / channel) weight masks. The element case is the engine's (`HBB`) canonical
/// mean and radix select, as MBBinarize's `Binarizer` runs them (tests compare the two); the
/// grouped case applies the same rule to groups: a group's key is the mean of its entries' keys.
public enum MiddleOutMask {
    /// The mask (flat bit widths) for `values` under distribution (bits ascending, fractions),
    /// Middle-Out over entries (`groups == nil`) or over groups. Zero fractions are ignored; the
    /// last used width takes the rest.
    /// `plain: true` walks index lists entry by entry for groups too (the grouped passes' twin, for tests).
    public static func select(_ values: UnsafeBufferPointer<Float>, bits: [Int], fractions: [Double], groups: MaskGroups?,
                              isa: Int32 = bp_isa(), plain: Bool = false) -> [UInt8] {
        var total: Double?
        return select(values, bits: bits, fractions: fractions, groups: groups, runs: nil, isa: isa, plain: plain, total: &total)
    }

    /// `select`, also returning the canonical sum of every |v| when the grouped passes computed
    /// it (their first mean; the residual's first level needs the same sum).
    static func select(_ values: UnsafeBufferPointer<Float>, bits: [Int], fractions: [Double], groups: MaskGroups?, runs: GroupRuns?,
                       isa: Int32 = bp_isa(), plain: Bool = false, total: inout Double?) -> [UInt8] {
        let n = values.count
        var mask = [UInt8](repeating: 0, count: n)
        let used = zip(bits, fractions).filter { $0.1 > 0 }
        guard n > 0, let last = used.last else { return mask }
        if let groups, !plain {
            total = selectGroupsFast(values, used: used, groups: groups, runs: runs, mask: &mask, isa: isa)
            return mask
        }
        if groups == nil, !plain {
            total = selectEntriesFast(values, used: used, mask: &mask, isa: isa)
            return mask
        }
        let remaining = UnsafeMutablePointer<UInt32>.allocate(capacity: n)
        defer { remaining.deallocate() }
        var remainingCount = n
        for j in 0..<n { remaining[j] = UInt32(j) }
        let v = values.baseAddress!
        let scratch = HBB.SelectionScratch(capacity: groups == nil ? n : 0)
        defer { scratch.deallocate() }
        mask.withUnsafeMutableBufferPointer { mask in
            for (b, p) in used.dropLast() {
                let list = HBB.ListedEntries(list: remaining, count: remainingCount)
                let m = HBB.canonicalAbsSum(list, v) / Double(remainingCount)
                if let groups {
                    selectGroups(v, remaining, remainingCount, mean: m, fraction: p, groups: groups, mark: UInt8(b), mask: mask)
                } else {
                    // The remaining entries are unassigned (mask 0), as selectSmallest requires.
                    let c = min(HBB.roundedCount(p, of: n), remainingCount)
                    HBB.selectSmallest(list, count: c, key: HBB.MiddleOutKey(values: v, mean: m), mask: mask.baseAddress!, mark: UInt8(b),
                                       scratch: scratch)
                }
                var kept = 0
                for i in 0..<remainingCount where mask[Int(remaining[i])] == 0 {
                    remaining[kept] = remaining[i]
                    kept += 1
                }
                remainingCount = kept
            }
            for i in 0..<remainingCount { mask[Int(remaining[i])] = UInt8(last.0) }
        }
        return mask
    }

    /// The per-entry case as whole-tensor passes (CBitPlanes): the remaining entries are those
    /// not yet assigned (mask 0) in index order, as the list `select` keeps; the canonical sum
    /// over them (`bp_active_abs_sum`), the radix select's histogram and marking passes on the
    /// Middle-Out key (`bp_middle_out_histogram`, `bp_middle_out_mark`), then the same narrowing
    /// of the boundary bucket (`HBB.narrowBoundary`): the same entries as `selectSmallest`.
    /// Returns the first round's sum (every entry), if a round ran.
    static func selectEntriesFast(_ values: UnsafeBufferPointer<Float>, used: [(Int, Double)], mask: inout [UInt8], isa: Int32) -> Double? {
        let n = values.count, v = values.baseAddress!
        let scratch = HBB.SelectionScratch(capacity: n)
        defer { scratch.deallocate() }
        var first: Double?
        var remaining = n
        mask.withUnsafeMutableBufferPointer { mask in
            let m = mask.baseAddress!
            for (b, p) in used.dropLast() where remaining > 0 {
                var count: Int64 = 0
                let sum = bp_active_abs_sum(isa, v, m, Int64(n), 2, 0, &count)
                if first == nil { first = sum }
                let mean = sum / Double(remaining)
                let c = min(HBB.roundedCount(p, of: n), remaining)
                if c >= remaining {
                    bp_fill_unassigned(m, Int64(n), UInt8(b))
                } else if c > 0 {
                    let width = HBB.SelectionScratch.digitBits(for: remaining)
                    bp_middle_out_histogram(isa, v, m, Int64(n), mean, Int32(width), scratch.histogram)
                    var below = 0, bucket = 0
                    while below + Int(scratch.histogram[bucket]) < c {
                        below += Int(scratch.histogram[bucket])
                        bucket += 1
                    }
                    let gathered = bp_middle_out_mark(isa, v, m, Int64(n), mean, Int32(width), UInt32(bucket), UInt8(b),
                                                      scratch.candidateIndex, scratch.candidateKey)
                    HBB.narrowBoundary(gathered: Int(gathered), need: c - below, mask: m, mark: UInt8(b), scratch: scratch)
                }
                remaining -= c
            }
            if let last = used.last { bp_fill_unassigned(m, Int64(n), UInt8(last.0)) }
        }
        return first
    }

    /// The grouped case as whole-tensor passes (CBitPlanes): the remaining entries are those not
    /// yet assigned (mask 0), walked in index order like the list `select` keeps, so the mean,
    /// the group keys and the choice are the same as `selectGroups` (tests compare with MBBinarize).
    /// A round's marking pass also sums the next round's remaining |v| (`bp_mark_groups_sum`).
    /// Returns the first round's sum (every entry), if a round ran.
    @discardableResult
    static func selectGroupsFast(_ values: UnsafeBufferPointer<Float>, used: [(Int, Double)], groups: MaskGroups, runs: GroupRuns?,
                                 mask: inout [UInt8], isa: Int32) -> Double? {
        let n = values.count, v = values.baseAddress!
        var sum = [Double](repeating: 0, count: groups.count)
        var size = [Int64](repeating: 0, count: groups.count)
        var chosen = [UInt8](repeating: 0, count: groups.count)
        var keys = [Double](repeating: 0, count: groups.count)
        var first: Double?
        let rounds = Array(used.dropLast())
        groups.ids.withUnsafeBufferPointer { ids in
            mask.withUnsafeMutableBufferPointer { mask in
                var carried: (sum: Double, count: Int64)?
                var filled = false
                for (round, (b, p)) in rounds.enumerated() {
                    var remaining: Int64 = 0
                    let total: Double
                    if let c = carried {
                        (total, remaining) = c
                    } else {
                        // Round 0: nothing is assigned yet, so "every entry" (mode 0, no compaction) is the same sum.
                        total = bp_active_abs_sum(isa, v, mask.baseAddress, Int64(n), round == 0 ? 0 : 2, 0, &remaining)
                    }
                    carried = (total, remaining)  // unchanged if nothing gets marked
                    if round == 0 { first = total }
                    guard remaining > 0 else { break }
                    let m = total / Double(remaining)
                    sum.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
                    // A group leaves whole: its unassigned entries are all of them until it is
                    // chosen, so only round 0 counts them.
                    if round > 0 { for g in 0..<groups.count where chosen[g] != 0 { size[g] = 0 } }
                    size.withUnsafeMutableBufferPointer { size in
                        let counts = round == 0 ? size.baseAddress : nil
                        if let runs {
                            bp_group_keys_runs(isa, v, mask.baseAddress, runs.triples, Int64(runs.count), m, &sum, counts)
                        } else {
                            bp_group_keys(isa, v, mask.baseAddress, Int64(n), ids.baseAddress, m, &sum, counts)
                        }
                    }
                    // The c smallest (key, group), by selection (no sort): the same set as sorting.
                    let c = HBB.roundedCount(p, of: groups.count)
                    guard bp_choose_groups(&sum, size, Int64(groups.count), Int64(c), &chosen, &keys) > 0 else { continue }
                    let last = round + 1 == rounds.count
                    var count: Int64 = 0
                    if let runs {
                        // The last round also fills the rest with the last width.
                        let next = bp_mark_groups_runs(isa, last ? nil : v, mask.baseAddress, runs.triples, Int64(runs.count), chosen, UInt8(b),
                                                       last ? UInt8(used.last!.0) : 0, &count)
                        if !last { carried = (next, count) } else { filled = true }
                    } else if !last {
                        let next = bp_mark_groups_sum(isa, v, mask.baseAddress, Int64(n), ids.baseAddress, chosen, UInt8(b), &count)
                        carried = (next, count)
                    } else {
                        bp_mark_groups(isa, mask.baseAddress, Int64(n), ids.baseAddress, chosen, UInt8(b))
                    }
                }
                if !filled { bp_fill_unassigned(mask.baseAddress, Int64(n), UInt8(used.last!.0)) }
            }
        }
        return first
    }

    /// Groups: every group whose entries all remain is a candidate (a group leaves whole); its
    /// key is the mean over its entries of | |v| - m |, summed in entry order. The
    /// round(p * groups) candidates with the smallest keys (ties: lower group) get `mark`.
    static func selectGroups(_ v: UnsafePointer<Float>, _ list: UnsafePointer<UInt32>, _ n: Int, mean m: Double, fraction p: Double,
                             groups: MaskGroups, mark: UInt8, mask: UnsafeMutableBufferPointer<UInt8>) {
        var sum = [Double](repeating: 0, count: groups.count)
        var size = [Int](repeating: 0, count: groups.count)
        for i in 0..<n {
            let j = Int(list[i]), g = Int(groups.ids[j])
            sum[g] += abs(Double(abs(v[j])) - m)
            size[g] += 1
        }
        var candidates: [(key: Double, group: Int)] = []
        for g in 0..<groups.count where size[g] > 0 { candidates.append((sum[g] / Double(size[g]), g)) }
        let c = min(HBB.roundedCount(p, of: groups.count), candidates.count)
        guard c > 0 else { return }
        candidates.sort { ($0.key, $0.group) < ($1.key, $1.group) }
        var chosen = [Bool](repeating: false, count: groups.count)
        for e in candidates.prefix(c) { chosen[e.group] = true }
        for i in 0..<n where chosen[Int(groups.ids[Int(list[i])])] { mask[Int(list[i])] = mark }
    }
}
