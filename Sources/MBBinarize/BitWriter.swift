import MBCore
/// Appends bits to a word buffer, least-significant bit first. The buffer must hold enough
/// words; `finish()` stores the last partial word (its unused bits stay zero).
struct BitWriter {
    let words: UnsafeMutablePointer<UInt64>
    private(set) var wordIndex = 0
    private var current: UInt64 = 0
    private var fill: UInt64 = 0

    init(words: UnsafeMutablePointer<UInt64>) { self.words = words }

    /// Appends the low `count` bits of `word` (bits above `count` must be zero).
    @inline(__always)
    mutating func append(word: UInt64, count: Int) {
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
    mutating func finish() -> Int {
        if fill > 0 {
            words[wordIndex] = current
            wordIndex += 1
            current = 0
            fill = 0
        }
        return wordIndex
    }
}

