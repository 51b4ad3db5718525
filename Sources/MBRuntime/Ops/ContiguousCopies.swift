import MBKernels

/// A list of memory copies (Concat's input blocks) run across threads: large blocks are cut
/// into pieces so two threads share even a two-input channel Concat (SqueezeNet's fire
/// modules copy 0.4-1.5 MB each).
struct ContiguousCopies {
    private var copies: [(to: UnsafeMutableRawPointer, from: UnsafeRawPointer, bytes: Int)] = []
    private var total = 0
    /// Bytes of one plane (a Concat's inner block, a feature map) when every copy is a whole
    /// number of planes.
    private let plane: Int

    /// Below this many bytes in all, one thread copies (dispatch would cost more).
    static let parallelBytes = 1 << 17
    /// Planes at least this large are split among the threads plane by plane.
    static let minSplitPlane = 1 << 10

    /// `plane`: the bytes of the unit every copy is a whole number of (1 when there is none).
    init(plane: Int = 1) { self.plane = max(plane, 1) }

    mutating func append(to: UnsafeMutableRawPointer, from: UnsafeRawPointer, bytes: Int) {
        copies.append((to, from, bytes))
        total += bytes
    }

    func run(threads: Int) {
        guard threads > 1, total >= Self.parallelBytes else {
            for c in copies { c.to.copyMemory(from: c.from, byteCount: c.bytes) }
            return
        }
        let box = UncheckedSendable(copies)
        let parts = 4 * threads
        if plane >= Self.minSplitPlane && copies.allSatisfy({ $0.bytes % plane == 0 }) {
            // Part q copies the q-th slice of every plane (cut at 64-byte multiples), so a thread
            // copies the same part of each feature map that it wrote in the layer before when that
            // layer split its output by position (see `WorkerPool.Job` in MBKernels).
            let plane = self.plane
            Parallel.forEach(parts, threads: threads) { q in
                let lo = q == 0 ? 0 : plane * q / parts / 64 * 64
                let hi = q == parts - 1 ? plane : plane * (q + 1) / parts / 64 * 64
                guard hi > lo else { return }
                for c in box.value {
                    for start in stride(from: 0, to: c.bytes, by: plane) {
                        (c.to + start + lo).copyMemory(from: c.from + start + lo, byteCount: hi - lo)
                    }
                }
            }
            return
        }
        // Pieces of about total / (4 * threads) bytes, cut at 64-byte multiples.
        let piece = max(4096, (total / parts + 63) / 64 * 64)
        var pieces: [(to: UnsafeMutableRawPointer, from: UnsafeRawPointer, bytes: Int)] = []
        for c in copies {
            var done = 0
            while done < c.bytes {
                let n = min(piece, c.bytes - done)
                pieces.append((c.to + done, c.from + done, n))
                done += n
            }
        }
        let pieceBox = UncheckedSendable(pieces)
        Parallel.forEach(pieces.count, threads: threads) { i in
            let p = pieceBox.value[i]
            p.to.copyMemory(from: p.from, byteCount: p.bytes)
        }
    }
}
