extension HBB {
    /// Appends bits to a word buffer, least-significant bit first. The buffer must hold enough
    /// words; `finish()` stores the last partial word (its unused bits stay zero).
    @frozen public struct BitWriter {
        public let words: UnsafeMutablePointer<UInt64>
        public var wordIndex = 0
        @usableFromInline var current: UInt64 = 0
        @usableFromInline var fill: UInt64 = 0

        @inlinable public init(words: UnsafeMutablePointer<UInt64>) { self.words = words }

        /// Appends the low `count` bits of `word` (bits above `count` must be zero).
        @inlinable @inline(__always)
        public mutating func append(word: UInt64, count: Int) {
            guard count > 0 else { return }
            current |= word &<< fill
            let total = fill &+ UInt64(count)
            if total >= 64 {
                words[wordIndex] = current
                wordIndex &+= 1
                current = fill == 0 ? 0 : word &>> (64 &- fill)
                fill = total &- 64
            } else {
                fill = total
            }
        }

        /// Number of words holding bits after `finish()`.
        @inlinable public mutating func finish() -> Int {
            if fill > 0 {
                words[wordIndex] = current
                wordIndex += 1
                current = 0
                fill = 0
            }
            return wordIndex
        }
    }

    // MARK: - One level of residual binarization

    /// Applies level `level` with scale `mu` to the active entries: s = sign(E) (sign(0) = +1),
    /// E -= mu * s, and the signs appended to the level's stream, 64 at a time. Branch-free (the
    /// signs of real data are coin flips to a branch predictor), and for a dense level the loop
    /// vectorizes.
    /// `source` holds E_{k-1} and may be `residual` (updated in place); at level 1 it is T, which
    /// saves copying T before the first level.
    @inlinable @inline(__always)
    public static func applySigns<A: ActiveEntries>(
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
    @inlinable @inline(__always)
    public static func keepActive<A: ActiveEntries>(_ active: A, mask: UnsafePointer<UInt8>, level: UInt8, next: UnsafeMutablePointer<UInt32>) -> Int {
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
    @inlinable @inline(__always)
    public static func applyLevel<A: ActiveEntries>(
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
}
