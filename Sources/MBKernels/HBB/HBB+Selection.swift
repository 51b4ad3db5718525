extension HBB {
    /// A per-entry selection key: smaller keys are chosen first. Keys must be below 2^63.
    public protocol SelectionKey {
        func key(_ j: Int) -> UInt64
        /// A 31-bit summary of a key that never decreases as the key grows (for a Double key, the
        /// bits of its Float rounding): the first histogram pass buckets on its top bits, which
        /// spreads real data over many more buckets than the top bits of a Double would.
        func coarse(_ key: UInt64) -> UInt32
    }

    /// Buffers for `selectSmallest`, sized for the largest group.
    @frozen public struct SelectionScratch {
        public static var maxDigitBits: Int { 16 }
        public let histogram: UnsafeMutablePointer<UInt32>
        public let candidateIndex: UnsafeMutablePointer<UInt32>
        public let candidateKey: UnsafeMutablePointer<UInt64>

        @inlinable public init(capacity: Int) {
            histogram = .allocate(capacity: 1 << Self.maxDigitBits)
            candidateIndex = .allocate(capacity: capacity + 1)
            candidateKey = .allocate(capacity: capacity + 1)
        }

        @inlinable public func deallocate() {
            histogram.deallocate()
            candidateIndex.deallocate()
            candidateKey.deallocate()
        }

        /// Digit width for `n` keys: a histogram small enough that clearing it is cheap next to n.
        @inlinable @inline(__always)
        public static func digitBits(for n: Int) -> Int { n >= 1 << 16 ? 16 : (n >= 1 << 12 ? 12 : 8) }
    }

    /// Sets `mask[j] = mark` for the `c` active entries with the smallest keys, ties broken by the
    /// lower index: exactly what sorting by (key, index) and taking the first `c` would give. The
    /// active entries must be unassigned (mask 0) on entry.
    ///
    /// A radix select, O(n) per call with no sort: one histogram pass over the top digit of the
    /// keys' coarse summaries finds the bucket holding the c-th smallest key; a second pass marks
    /// every entry of a lower bucket and gathers the entries of that bucket (in index order). The
    /// gathered entries are narrowed digit by digit on their exact keys; when all key bits are used
    /// up, the remaining candidates have equal keys and the first ones (lowest indices) are taken.
    @inlinable @inline(__always)
    public static func selectSmallest<A: ActiveEntries, K: SelectionKey>(
        _ active: A, count c: Int, key: K, mask: UnsafeMutablePointer<UInt8>, mark: UInt8, scratch: SelectionScratch
    ) {
        let n = active.count
        guard c > 0 else { return }
        if c >= n {
            for i in 0..<n { mask[active[i]] = mark }
            return
        }
        let histogram = scratch.histogram
        let index = scratch.candidateIndex
        let keys = scratch.candidateKey

        // First pass: the top `width` bits of the coarse summary (bit 31 is always zero).
        let width = SelectionScratch.digitBits(for: n)
        let coarseShift = UInt32(31 - width)
        histogram.update(repeating: 0, count: 1 << width)
        for i in 0..<n {
            histogram[Int(truncatingIfNeeded: key.coarse(key.key(active[i])) &>> coarseShift)] &+= 1
        }
        var below = 0
        var bucket = 0
        while below + Int(histogram[bucket]) < c {
            below += Int(histogram[bucket])
            bucket += 1
        }
        // Mark the lower buckets, gather the boundary bucket (a few percent of the entries, so the
        // branch is predictable). Active entries are unassigned, so the mask store needs no read.
        let boundary = UInt32(bucket)
        var gathered = 0
        for i in 0..<n {
            let j = active[i]
            let k = key.key(j)
            let digit = key.coarse(k) &>> coarseShift
            mask[j] = digit < boundary ? mark : 0
            if digit == boundary {
                index[gathered] = UInt32(truncatingIfNeeded: j)
                keys[gathered] = k
                gathered += 1
            }
        }
        narrowBoundary(gathered: gathered, need: c - below, mask: mask, mark: mark, scratch: scratch)
    }

    /// The radix select's end: of the `gathered` candidates in the scratch (index order, exact
    /// keys) whose coarse digit is the boundary's, marks the `need` smallest (key, index).
    @inlinable
    public static func narrowBoundary(gathered: Int, need: Int, mask: UnsafeMutablePointer<UInt8>, mark: UInt8, scratch: SelectionScratch) {
        let histogram = scratch.histogram
        let index = scratch.candidateIndex
        let keys = scratch.candidateKey
        var gathered = gathered, need = need

        // Candidates that all share one key (ReLU zeros: often most of a tensor) need no digit
        // passes: the lowest indices are taken below.
        if need > 0 && need < gathered {
            let k0 = keys[0]
            var same = true
            for i in 1..<gathered where keys[i] != k0 {
                same = false
                break
            }
            if same { gathered = need }
        }
        // Narrow the boundary bucket on the exact keys, digit by digit from bit 62 down.
        var shift = 63
        while need > 0 && need < gathered && shift > 0 {
            let w = min(shift, SelectionScratch.digitBits(for: gathered))
            let newShift = shift - w
            let digitMask = UInt64(1) << UInt64(w) - 1
            histogram.update(repeating: 0, count: 1 << w)
            for i in 0..<gathered {
                histogram[Int(truncatingIfNeeded: (keys[i] &>> UInt64(newShift)) & digitMask)] &+= 1
            }
            var lower = 0
            var b = 0
            while lower + Int(histogram[b]) < need {
                lower += Int(histogram[b])
                b += 1
            }
            // Every candidate in one bucket: nothing to mark or drop at this digit.
            if Int(histogram[b]) == gathered {
                shift = newShift
                continue
            }
            let target = UInt64(b)
            var kept = 0
            for i in 0..<gathered {
                let k = keys[i]
                let digit = (k &>> UInt64(newShift)) & digitMask
                if digit < target {
                    mask[Int(truncatingIfNeeded: index[i])] = mark
                } else if digit == target {
                    index[kept] = index[i]
                    keys[kept] = k
                    kept += 1
                }
            }
            gathered = kept
            need -= lower
            shift = newShift
        }
        // Either every candidate is needed, or all candidates share one key: lowest indices first.
        for i in 0..<min(need, gathered) { mask[Int(truncatingIfNeeded: index[i])] = mark }
    }
}
