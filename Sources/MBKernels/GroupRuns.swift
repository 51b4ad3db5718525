import MBCore

/// Mask groups as runs of consecutive ids: triples (first entry, length, its group) in index
/// order, covering every entry. A channel-major conv input's groups (n channels of one pixel)
/// run along each channel row, so the binarizer's group passes (`bp_group_keys_runs`,
/// `bp_mark_groups_runs`) need no id per entry: 4 bytes an entry fewer in each of 4 passes.
public struct GroupRuns: Sendable {
    public let triples: [Int64]
    public var count: Int { triples.count / 3 }

    /// nil when the runs are short (under 16 entries on average: row-major matrices, whose
    /// groups are consecutive entries of one id); the id-per-entry passes suit those.
    public init?(_ groups: MaskGroups) {
        let ids = groups.ids
        guard !ids.isEmpty else { return nil }
        var triples: [Int64] = []
        var start = 0
        for j in 1...ids.count where j == ids.count || ids[j] != ids[j - 1] &+ 1 {
            triples += [Int64(start), Int64(j - start), Int64(ids[start])]
            start = j
        }
        guard ids.count >= 16 * (triples.count / 3) else { return nil }
        self.triples = triples
    }
}
