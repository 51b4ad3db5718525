import MBCore
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
/// E -= mu * s, and the signs appended to the level's stream, 64 at a time. Branch-free (the
/// signs of real data are coin flips to a branch predictor), and for a dense level the loop
/// vectorizes.
/// `source` holds E_{k-1} and may be `residual` (updated in place); at level 1 it is T, which
/// saves copying T before the first level.
@inline(__always)
func applySigns<A: ActiveEntries>(
    _ active: A, source: UnsafePointer<Float>, residual: UnsafeMutablePointer<Float>, scale mu: Float, signs: inout BitWriter
) {
    let n = active.count
    var i = 0
    while i < n {
        let block = min(64, n - i)
        var word: UInt64 = 0
        for b in 0..<block {
            let j = active[i + b]
            let e = source[j]
            let negative: UInt32 = e >= 0 ? 0 : 1
            // e - (+-mu): subtracting -mu is exactly adding mu.
            residual[j] = e - Float(bitPattern: mu.bitPattern ^ (negative << 31))
            word |= UInt64(negative ^ 1) &<< UInt64(b)
        }
        signs.append(word: word, count: block)
        i += block
    }
}

/// Writes to `next` the active entries that stay active after level `level`: those whose bit
/// width is unassigned (0) or above `level`. Returns their number. `next` may be the list
/// `active` reads from.
@inline(__always)
func keepActive<A: ActiveEntries>(_ active: A, mask: UnsafePointer<UInt8>, level: UInt8, next: UnsafeMutablePointer<UInt32>) -> Int {
    var kept = 0
    for i in 0..<active.count {
        let j = active[i]
        next[kept] = UInt32(truncatingIfNeeded: j)
        // Keep when (mask - 1) mod 256 >= level: 0 (unassigned) wraps to 255. Written as
        // arithmetic so that it stays branch-free (about a third of the entries leave).
        let t = UInt32(mask[j] &- 1) &- UInt32(level)
        kept &+= Int(truncatingIfNeeded: (t >> 31) ^ 1)
    }
    return kept
}

/// One level: signs and residual update, then the entries that go on. When `assignAll` is
/// set, every active entry first gets bit width `level` (the last width takes the rest) and
/// none goes on.
@inline(__always)
func applyLevel<A: ActiveEntries>(
    _ active: A, source: UnsafePointer<Float>, residual: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt8>,
    level: UInt8, scale mu: Float, assignAll: Bool, signs: inout BitWriter, next: UnsafeMutablePointer<UInt32>
) -> Int {
    applySigns(active, source: source, residual: residual, scale: mu, signs: &signs)
    if assignAll {
        for i in 0..<active.count { mask[active[i]] = level }
        return 0
    }
    return keepActive(active, mask: mask, level: level, next: next)
}
