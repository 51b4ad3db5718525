import MBCore
import MBKernels

/// onnxruntime's contrib `com.microsoft` MatMulNBits, as its weight-only quantizer writes it:
/// `Y = A × dequantize(B)ᵀ (+ bias)` with B the [N, K] weight stored row by row in blocks of
/// `block_size` along K, `bits`-bit codes packed from the lowest bits of each byte up, one float
/// scale per (row, block) and a zero point per (row, block) that is either packed like the codes
/// (each row's blocks padded to whole bytes) or a float of the scales' type; without zero points
/// it is 2^(bits-1). `g_idx`, when given, names each column's block instead of `k / block_size`.
/// The weight is dequantized once (at load when it is a constant) and multiplied in float.
enum MatMulNBitsOp {
    struct Layout: Sendable {
        var k: Int, n: Int, bits: Int, blockSize: Int
        var blocks: Int { (k + blockSize - 1) / blockSize }
        var blobBytes: Int { blockSize * bits / 8 }
        /// Bytes of one row's packed zero points.
        var zeroBytesPerRow: Int { (blocks * bits + 7) / 8 }
    }

    /// The `bits`-bit code at bit offset `index * bits` of `bytes` (least significant first).
    @inline(__always)
    static func code(_ bytes: UnsafePointer<Int32>, _ index: Int, bits: Int) -> Int32 {
        let bit = index * bits
        return (bytes[bit / 8] >> Int32(bit % 8)) & Int32((1 << bits) - 1)
    }

    /// The dequantized weight transposed to [K, N] (the layout MatMul's B has).
    static func dequantize(_ l: Layout, b: MBTensor, scales: MBTensor, zeros: MBTensor?, groupIndex: MBTensor?) throws -> [Float] {
        guard b.elementType == .int32, b.count == l.n * l.blocks * l.blobBytes else {
            throw OpError("B has shape \(b.shape) (\(b.elementType.name)): MatMulNBits with N=\(l.n), K=\(l.k), bits=\(l.bits), block_size=\(l.blockSize) needs \(l.n * l.blocks * l.blobBytes) uint8 values ([N, blocks, blob])")
        }
        guard scales.elementType == .float, scales.count == l.n * l.blocks else {
            throw OpError("scales has shape \(scales.shape): it needs N × blocks = \(l.n * l.blocks) float values")
        }
        let floatZeros = zeros?.elementType == .float
        if let zeros {
            let expected = floatZeros ? l.n * l.blocks : l.n * l.zeroBytesPerRow
            guard zeros.count == expected else {
                throw OpError("zero_points has \(zeros.count) values: \(floatZeros ? "float zero points need one per scale" : "packed uint8 zero points need N × ceil(blocks × bits / 8)") = \(expected)")
            }
        }
        var blockOf = (0..<l.k).map { $0 / l.blockSize }
        if let groupIndex {
            guard groupIndex.count == l.k else { throw OpError("g_idx has \(groupIndex.count) values for K = \(l.k)") }
            blockOf = try castTensorValues(groupIndex).map { g in
                guard g >= 0, g < l.blocks else { throw OpError("g_idx value \(g) is outside 0..<\(l.blocks)") }
                return g
            }
        }
        let defaultZero = Float(1 << (l.bits - 1))
        var w = [Float](repeating: 0, count: l.k * l.n)
        let pb = b.pointer(Int32.self), ps = scales.pointer(Float.self)
        for row in 0..<l.n {
            let codes = pb + row * l.blocks * l.blobBytes
            for kk in 0..<l.k {
                let block = blockOf[kk]
                let zero: Float
                if let zeros {
                    zero = floatZeros ? zeros.pointer(Float.self)[row * l.blocks + block]
                        : Float(code(zeros.pointer(Int32.self) + row * l.zeroBytesPerRow, block, bits: l.bits))
                } else {
                    zero = defaultZero
                }
                // Codes sit in their own block's blob: column kk is element kk % blockSize there.
                let q = code(codes + (kk / l.blockSize) * l.blobBytes, kk % l.blockSize, bits: l.bits)
                w[kk * l.n + row] = (Float(q) - zero) * ps[row * l.blocks + block]
            }
        }
        return w
    }

    static func castTensorValues(_ t: MBTensor) throws -> [Int] {
        switch t.elementType {
        case .int32: return t.buffer(Int32.self).map(Int.init)
        case .int64: return t.buffer(Int64.self).map(Int.init)
        default: throw OpError("g_idx must be an integer tensor, got \(t.elementType.name)")
        }
    }

    static let table: [String: OpTable.Compile] = [
        "MatMulNBits": { n in
            guard let k = try n.int("K"), let nn = try n.int("N") else { throw n.bad("attributes K and N are required") }
            let bits = try n.int("bits", default: 4), blockSize = try n.int("block_size", default: 0)
            guard [2, 4, 8].contains(bits) else { throw n.unsupported("bits=\(bits) (2, 4 and 8 are supported)") }
            guard blockSize >= 16, blockSize & (blockSize - 1) == 0 else { throw n.bad("block_size must be a power of two >= 16, got \(blockSize)") }
            guard k >= 1, nn >= 1, k <= 1 << 24, nn <= 1 << 24 else { throw n.bad("K=\(k) and N=\(nn) must be in 1...\(1 << 24)") }
            let layout = Layout(k: k, n: nn, bits: bits, blockSize: blockSize)
            let constantWeight: MBTensor?
            if let b = n.constantInput(1), let s = n.constantInput(2), n.hasInput(3) == (n.constantInput(3) != nil),
               n.hasInput(4) == (n.constantInput(4) != nil) {
                let w = try dequantize(layout, b: b, scales: s, zeros: n.constantInput(3), groupIndex: n.constantInput(4))
                constantWeight = MBTensor(shape: [k, nn], floats: w)
            } else {
                constantWeight = nil
            }
            return { i, c in
                let a = try i.float(0, "A")
                guard a.rank >= 1, a.shape.last == k else { throw OpError("A \(a.shape) must end in K = \(k)") }
                let w = try constantWeight ?? MBTensor(shape: [k, nn], floats: try dequantize(
                    layout, b: try i.required(1, "B"), scales: try i.float(2, "scales"), zeros: i[3], groupIndex: i[4]))
                let m = a.count / k
                let y = try c.alloc(.float, Array(a.shape.dropLast()) + [nn])
                Gemm.parallel(c.variant, threads: c.threads, transA: false, transB: false, m: m, n: nn, k: k, alpha: 1,
                              a: a.pointer(Float.self), lda: k, b: w.pointer(Float.self), ldb: nn, beta: 0, c: y.mutable(Float.self), ldc: nn)
                if let bias = i[5] {
                    let pb = try i.float(5, "bias")
                    guard bias.count == nn else { throw OpError("bias has \(bias.count) values for N = \(nn)") }
                    let py = y.mutable(Float.self), b = pb.pointer(Float.self)
                    for r in 0..<m { for j in 0..<nn { py[r * nn + j] += b[j] } }
                }
                return [y]
            }
        },
    ]
}
