/// A mask that is constant on axis-aligned blocks: dimension k of the tensor is cut into runs
/// of `sizes[k]` consecutive indices (the last run shorter when `sizes[k]` does not divide it),
/// and every entry of a block has the same bit width. Structured masks (`granularity: group:N`
/// or `channel`) are such masks: a Conv weight [O, C, kh, kw] with group:N has blocks
/// [1, N, 1, 1], with channel granularity [1, C, kh, kw]; a Gemm weight [K, N] with group:N has
/// [N, 1]. Storing one width per block instead of one per entry is what makes them cheap.
///
/// Blocks are numbered row-major over the block grid (⌈shape[k] / sizes[k]⌉ blocks along
/// dimension k), which is also the flat order of each block's first entry.
public struct MaskBlocks: Sendable, Equatable {
    public let shape: [Int]
    public let sizes: [Int]

    /// Fails when `sizes` does not have one size in 1...max(shape[k], 1) per dimension.
    public init(shape: [Int], sizes: [Int]) throws(PackedTensorError) {
        guard sizes.count == shape.count else {
            throw PackedTensorError("\(sizes.count) mask block sizes for the \(shape.count) dimensions of shape \(shape)")
        }
        for (k, (b, n)) in zip(sizes, shape).enumerated() where b < 1 || b > max(n, 1) {
            throw PackedTensorError("mask block size \(b) along dimension \(k) of shape \(shape); expected 1...\(max(n, 1))")
        }
        self.shape = shape
        self.sizes = sizes
    }

    /// The coarsest blocks `mask` (flat order, one entry per element of `shape`) is constant
    /// on: along each dimension, the greatest common divisor of the indices where the width
    /// changes from the previous index (the whole dimension when it never changes). Every
    /// block size that keeps the mask constant divides it, so no coarser blocking exists.
    public static func coarsest(mask: UnsafeBufferPointer<UInt8>, shape: [Int]) -> MaskBlocks {
        var sizes: [Int] = []
        var inner = mask.count
        for n in shape {
            inner = n == 0 ? 0 : inner / n
            var g = 0
            if inner > 0, n > 1 {
                let outer = mask.count / (n * inner)
                scan: for o in 0..<outer {
                    for i in 1..<n where g == 0 || i % g != 0 {
                        let row = (o * n + i) * inner
                        for r in 0..<inner where mask[row + r] != mask[row - inner + r] {
                            g = gcd(g, i)
                            break
                        }
                        if g == 1 { break scan }
                    }
                }
            }
            sizes.append(g == 0 ? max(n, 1) : g)
        }
        return try! MaskBlocks(shape: shape, sizes: sizes)
    }

    /// Blocks along each dimension.
    public var grid: [Int] { zip(shape, sizes).map { n, b in (n + b - 1) / b } }
    /// The number of blocks (one stored width each).
    public var count: Int { grid.reduce(1, *) }
    /// Every block is one entry: nothing to gain over a per-entry mask.
    public var isElementwise: Bool { sizes.allSatisfy { $0 == 1 } }

    /// Calls `body(j, b)` for every entry j (flat order) with its block b.
    @inline(__always)
    func forEachEntry(_ body: (Int, Int) -> Void) {
        let total = shape.reduce(1, *)
        guard total > 0 else { return }
        let grid = self.grid, rank = shape.count
        var gridStride = [Int](repeating: 1, count: rank)
        for k in stride(from: rank - 2, through: 0, by: -1) { gridStride[k] = gridStride[k + 1] * grid[k + 1] }
        // A running multi-index and its block, updated as the odometer turns.
        var index = [Int](repeating: 0, count: rank)
        var b = 0
        for j in 0..<total {
            body(j, b)
            var k = rank - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < shape[k] {
                    if index[k] % sizes[k] == 0 { b += gridStride[k] }
                    break
                }
                b -= (index[k] - 1) / sizes[k] * gridStride[k]
                index[k] = 0
                k -= 1
            }
        }
    }

    /// One value per block, block order.
    public func reduce(_ mask: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        mask.withUnsafeBufferPointer { m in
            out.withUnsafeMutableBufferPointer { o in forEachEntry { j, b in o[b] = m[j] } }
        }
        // Every entry of a block wrote it; the value left is the block's last entry, the same
        // as its first for a mask constant on the blocks (the only masks this is used on).
        return out
    }

    /// The flat mask with every entry of block b set to `values[b]`.
    public func expand(_ values: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: shape.reduce(1, *))
        values.withUnsafeBufferPointer { v in
            out.withUnsafeMutableBufferPointer { o in forEachEntry { j, b in o[j] = v[b] } }
        }
        return out
    }
}

private func gcd(_ a: Int, _ b: Int) -> Int {
    var (a, b) = (a, b)
    while b != 0 { (a, b) = (b, a % b) }
    return a
}
