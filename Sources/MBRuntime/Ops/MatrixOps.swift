import MBCore
import MBKernels

/// Gemm and MatMul through MBKernels' GEMM (BLAS).
enum MatrixOps {
    static let table: [String: OpTable.Compile] = [
        "Gemm": { n in
            let alpha = try n.float("alpha", default: 1), beta = try n.float("beta", default: 1)
            let transA = try n.int("transA", default: 0) != 0, transB = try n.int("transB", default: 0) != 0
            let binarized = try BinarizedInput.spec(n)
            let after = n.plan?.activation ?? .none
            let residualIndex = n.plan?.residual == true ? n.inputCount - 1 : nil
            if !transA, let packed = n.packedInput(1), let pm = try? PackedMatrix(packed, transposed: transB, activations: binarized, n, input: 1) {
                if pm.choice == nil { n.claimPacked(1, bytes: pm.residentBytes) }
                let bShape = packed.shape
                return { i, c in
                    let a = try i.float(0, "A")
                    guard a.rank == 2, a.shape[1] == pm.k else { throw OpError("A \(a.shape) does not fit B \(bShape)\(transB ? "ᵀ" : "")") }
                    let m = a.shape[0], nn = pm.n
                    let y = try c.alloc(.float, [m, nn])
                    pm.multiply(a: a.pointer(Float.self), m: m, y: y.mutable(Float.self), c)
                    let py = y.mutable(Float.self)
                    if alpha != 1 { for j in 0..<(m * nn) { py[j] *= alpha } }
                    if let cIn = i[2], beta != 0 {
                        guard cIn.elementType == .float else { throw OpError("C must be float") }
                        guard try broadcastShapes(cIn.shape, [m, nn]) == [m, nn] else { throw OpError("C \(cIn.shape) does not broadcast to [\(m), \(nn)]") }
                        let cb = try broadcastTo(cIn, [m, nn], c)
                        withExtendedLifetime(cb) {
                            let pc = cb.pointer(Float.self)
                            for j in 0..<(m * nn) { py[j] += beta * pc[j] }
                        }
                    }
                    return [try FloatElementwise.finish(y, residual: try residualIndex.map { try i.float($0, "residual") }, after, c)]
                }
            }
            // Before opset 7, C had to match [M, N] unless broadcast=1; broadcasting always is a superset.
            return { i, c in
                var a = try i.float(0, "A")
                let b = try i.float(1, "B")
                if let binarized { a = try BinarizedInput.expand(a, binarized, conv: false, c) }
                guard a.rank == 2, b.rank == 2 else { throw OpError("A \(a.shape) and B \(b.shape) must be 2-D") }
                let m = transA ? a.shape[1] : a.shape[0], k = transA ? a.shape[0] : a.shape[1]
                let kb = transB ? b.shape[1] : b.shape[0], nn = transB ? b.shape[0] : b.shape[1]
                guard k == kb else { throw OpError("inner dimensions differ: A \(a.shape)\(transA ? "ᵀ" : "") and B \(b.shape)\(transB ? "ᵀ" : "")") }
                var y = try c.alloc(.float, [m, nn])
                var betaUsed: Float = 0
                if let cIn = i[2], beta != 0 {
                    guard cIn.elementType == .float else { throw OpError("C must be float") }
                    let shape = try broadcastShapes(cIn.shape, [m, nn])
                    guard shape == [m, nn] else { throw OpError("C \(cIn.shape) does not broadcast to [\(m), \(nn)]") }
                    y = try broadcastTo(cIn, [m, nn], c)
                    if y.storage === cIn.storage {
                        let copy = try c.alloc(.float, [m, nn])
                        copy.mutable(Float.self).update(from: cIn.pointer(Float.self), count: m * nn)
                        y = copy
                    }
                    betaUsed = beta
                }
                Gemm.parallel(c.variant, threads: c.threads, transA: transA, transB: transB, m: m, n: nn, k: k, alpha: alpha,
                           a: a.pointer(Float.self), lda: a.shape[1], b: b.pointer(Float.self), ldb: b.shape[1],
                           beta: betaUsed, c: y.mutable(Float.self), ldc: nn)
                return [try FloatElementwise.finish(y, residual: try residualIndex.map { try i.float($0, "residual") }, after, c)]
            }
        },
        "MatMul": { n in
            let binarized = try BinarizedInput.spec(n)
            // Fused by the optimizer: a residual added (third input) and an activation applied.
            let after = n.plan?.activation ?? .none
            let residualIndex = n.plan?.residual == true ? n.inputCount - 1 : nil
            @Sendable func finish(_ y: MBTensor, _ i: Inputs, _ c: ExecutionContext) throws -> MBTensor {
                guard residualIndex != nil || after != .none else { return y }
                return try FloatElementwise.finish(y, residual: try residualIndex.map { try i.float($0, "residual") }, after, c)
            }
            if let packed = n.packedInput(1), packed.shape.count == 2,
               let pm = try? PackedMatrix(packed, transposed: false, activations: binarized, n, input: 1) {
                if pm.choice == nil { n.claimPacked(1, bytes: pm.residentBytes) }
                let bShape = packed.shape
                return { i, c in
                    let a = try i.float(0, "A")
                    guard a.rank >= 1, a.shape.last == pm.k else { throw OpError("inner dimensions differ: \(a.shape) × \(bShape)") }
                    let m = a.count / pm.k
                    let y = try c.alloc(.float, Array(a.shape.dropLast()) + [pm.n])
                    pm.multiply(a: a.pointer(Float.self), m: m, y: y.mutable(Float.self), c)
                    return [try finish(y, i, c)]
                }
            }
            return { i, c in
                var a = try i.float(0, "A")
                if let binarized { a = try BinarizedInput.expand(a, binarized, conv: false, c) }
                return [try finish(try matmul(a, try i.float(1, "B"), c), i, c)]
            }
        },
    ]

    /// numpy.matmul: 1-D operands promoted and the added dimension removed afterwards; batch
    /// dimensions broadcast.
    static func matmul(_ a0: MBTensor, _ b0: MBTensor, _ c: ExecutionContext) throws -> MBTensor {
        guard a0.rank >= 1, b0.rank >= 1 else { throw OpError("MatMul needs operands of rank >= 1, got \(a0.shape) and \(b0.shape)") }
        let a = a0.rank == 1 ? a0.reshaped([1, a0.shape[0]]) : a0
        let b = b0.rank == 1 ? b0.reshaped([b0.shape[0], 1]) : b0
        let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1]
        let kb = b.shape[b.rank - 2], n = b.shape[b.rank - 1]
        guard k == kb else { throw OpError("inner dimensions differ: \(a0.shape) × \(b0.shape)") }
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let batch = try broadcastShapes(batchA, batchB)
        var outShape = batch + [m, n]
        let y = try c.alloc(.float, outShape)
        let pa = a.pointer(Float.self), pb = b.pointer(Float.self), py = y.mutable(Float.self)
        let count = batch.reduce(1, *)
        if batchB.reduce(1, *) == 1 && batchA == batch {
            // One GEMM: every batch of A times the same B.
            Gemm.parallel(c.variant, threads: c.threads, transA: false, transB: false, m: count * m, n: n, k: k, alpha: 1,
                       a: pa, lda: k, b: pb, ldb: n, beta: 0, c: py, ldc: n)
        } else {
            let sa = broadcastStrides(batchA, to: batch), sb = broadcastStrides(batchB, to: batch)
            for idx in 0..<count {
                let (oa, ob) = batchOffsets(idx, batch: batch, sa, sb)
                Gemm.parallel(c.variant, threads: c.threads, transA: false, transB: false, m: m, n: n, k: k, alpha: 1,
                           a: pa + oa * m * k, lda: k, b: pb + ob * k * n, ldb: n, beta: 0, c: py + idx * m * n, ldc: n)
            }
        }
        if a0.rank == 1 { outShape.remove(at: outShape.count - 2) }
        if b0.rank == 1 { outShape.removeLast() }
        return y.reshaped(outShape)
    }
}
