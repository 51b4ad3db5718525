import MBKernels

/// A list of memory copies (Concat's input blocks) run across threads: large blocks are cut
/// into pieces so two threads share even a two-input channel Concat (SqueezeNet's fire
/// modules copy 0.4-1.5 MB each).
struct ContiguousCopies {
    private var copies: [(to: UnsafeMutableRawPointer, from: UnsafeRawPointer, bytes: Int)] = []
    private var total = 0

    /// Below this many bytes in all, one thread copies (dispatch would cost more).
    static let parallelBytes = 1 << 17

    mutating func append(to: UnsafeMutableRawPointer, from: UnsafeRawPointer, bytes: Int) {
        copies.append((to, from, bytes))
        total += bytes
    }

    func run(threads: Int) {
        guard threads > 1, total >= Self.parallelBytes else {
            for c in copies { c.to.copyMemory(from: c.from, byteCount: c.bytes) }
            return
        }
        // Pieces of about total / (4 * threads) bytes, cut at 64-byte multiples.
        let piece = max(4096, (total / (4 * threads) + 63) / 64 * 64)
        var pieces: [(to: UnsafeMutableRawPointer, from: UnsafeRawPointer, bytes: Int)] = []
        for c in copies {
            var done = 0
            while done < c.bytes {
                let n = min(piece, c.bytes - done)
                pieces.append((c.to + done, c.from + done, n))
                done += n
            }
        }
        let box = UncheckedSendable(pieces)
        Parallel.forEach(pieces.count, threads: threads) { i in
            let p = box.value[i]
            p.to.copyMemory(from: p.from, byteCount: p.bytes)
        }
    }
}
