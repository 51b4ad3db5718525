/// The entries one level works on, in ascending index order (positions within a group).
protocol ActiveEntries {
    var count: Int { get }
    subscript(i: Int) -> Int { get }
}

/// Every entry of the group (level 1, and any level before an entry has left).
struct AllEntries: ActiveEntries {
    let count: Int
    @inline(__always) subscript(i: Int) -> Int { i }
}

/// A compacted, ascending list of entry positions.
struct ListedEntries: ActiveEntries {
    let list: UnsafePointer<UInt32>
    let count: Int
    @inline(__always) subscript(i: Int) -> Int { Int(truncatingIfNeeded: list[i]) }
}

// MARK: - The canonical mean

/// Sum of |values[j]| over the active entries, in Double: the canonical accumulation every
/// mean in MBBinarize uses (HBB.md: "means accumulate in double precision"). Entry number i of
/// the active list goes to lane i % 8; the lanes are combined as
/// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)). Fixing the order makes the fast path and
/// the reference agree bit for bit; eight lanes keep the adds off one dependency chain.
@inline(__always)
func canonicalAbsSum<A: ActiveEntries>(_ active: A, _ values: UnsafePointer<Float>) -> Double {
    var l0 = 0.0, l1 = 0.0, l2 = 0.0, l3 = 0.0, l4 = 0.0, l5 = 0.0, l6 = 0.0, l7 = 0.0
    let n = active.count
    var i = 0
    while i + 8 <= n {
        l0 += Double(abs(values[active[i]]))
        l1 += Double(abs(values[active[i + 1]]))
        l2 += Double(abs(values[active[i + 2]]))
        l3 += Double(abs(values[active[i + 3]]))
        l4 += Double(abs(values[active[i + 4]]))
        l5 += Double(abs(values[active[i + 5]]))
        l6 += Double(abs(values[active[i + 6]]))
        l7 += Double(abs(values[active[i + 7]]))
        i += 8
    }
    if i < n { l0 += Double(abs(values[active[i]])); i += 1 }
    if i < n { l1 += Double(abs(values[active[i]])); i += 1 }
    if i < n { l2 += Double(abs(values[active[i]])); i += 1 }
    if i < n { l3 += Double(abs(values[active[i]])); i += 1 }
    if i < n { l4 += Double(abs(values[active[i]])); i += 1 }
    if i < n { l5 += Double(abs(values[active[i]])); i += 1 }
    if i < n { l6 += Double(abs(values[active[i]])); i += 1 }
    return ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
}

/// The canonical accumulation in its plain form (for the reference implementation and tests).
func canonicalSum(_ xs: [Double]) -> Double {
    var lanes = [Double](repeating: 0, count: 8)
    for (i, x) in xs.enumerated() { lanes[i % 8] += x }
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
}

/// mu = mean |E| as the Float scale that is stored and used for the residual update.
@inline(__always)
func levelScale(sum: Double, count: Int) -> Float { Float(sum / Double(count)) }

// MARK: - One level of residual binarization

/// Applies level `level` with scale `mu` to the active entries: s = sign(E) (sign(0) = +1),
/// E -= mu * s, the sign appended to the level's stream. When `assignAll` is set every active
/// entry gets bit width `level` first (the last width takes the rest). Writes to `next` the
/// entries that stay active for the next level, those whose bit width is unassigned (0) or
/// above `level`, and returns their number. `next` may be the list `active` reads from.
@inline(__always)
func applyLevel<A: ActiveEntries>(
    _ active: A, residual: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt8>,
    level: UInt8, scale mu: Float, assignAll: Bool, signs: inout BitWriter, next: UnsafeMutablePointer<UInt32>
) -> Int {
    var kept = 0
    for i in 0..<active.count {
        let j = active[i]
        if assignAll { mask[j] = level }
        let e = residual[j]
        let positive = e >= 0
        residual[j] = positive ? e - mu : e + mu
        signs.append(positive)
        next[kept] = UInt32(truncatingIfNeeded: j)
        kept &+= (mask[j] &- 1) >= level ? 1 : 0  // 0 (unassigned) wraps to 255
    }
    return kept
}
