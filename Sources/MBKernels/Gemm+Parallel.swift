extension Gemm {
    /// `sgemm` split by columns of C across `threads` (each chunk a single-threaded BLAS call),
    /// for callers that run the BLAS itself with one thread. Chunks are at least `minColumns`
    /// wide so small products stay in one call.
    public static func parallel(
        _ variant: KernelVariant = .fast, threads: Int,
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, minColumns: Int = 64
    ) {
        let chunks = variant == .reference ? 1 : max(1, min(threads, n / max(minColumns, 1), m * n * max(k, 1) / (1 << 16)))
        if chunks <= 1 {
            sgemm(variant, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let box = UncheckedSendable((a, b, c))
        Parallel.forEach(chunks, threads: chunks) { t in
            let (a, b, c) = box.value
            // Chunk boundaries rounded to 16 columns (whole cache lines of C).
            let j0 = t == 0 ? 0 : min(n, (n * t / chunks + 15) / 16 * 16)
            let j1 = t == chunks - 1 ? n : min(n, (n * (t + 1) / chunks + 15) / 16 * 16)
            guard j1 > j0 else { return }
            sgemm(variant, transA: transA, transB: transB, m: m, n: j1 - j0, k: k, alpha: alpha, a: a, lda: lda,
                  b: transB ? b + j0 * ldb : b + j0, ldb: ldb, beta: beta, c: c + j0, ldc: ldc)
        }
    }
}
