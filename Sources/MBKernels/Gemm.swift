#if canImport(Accelerate)
import Accelerate
#elseif canImport(CBLAS)
import CBLAS
#endif
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Row-major single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C`, where op(A) is
/// m×k and op(B) is k×n. The fast variant calls the platform BLAS (`cblas_sgemm`, or
/// `cblas_sgemv` when m = 1 so a batch-1 fully connected layer streams its weights once).
public enum Gemm {
    public static func sgemm(
        _ variant: KernelVariant = .fast,
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        if variant == .reference || !BLAS.available {
            reference(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        #if canImport(Accelerate) || canImport(CBLAS)
        if m == 1 && k > 0 {
            // One row (a Linear layer on one sample): GEMV reads B once without packing it.
            if beta == 0 { c.update(repeating: 0, count: n) }
            let incA = transA ? lda : 1
            if transB {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, .init(n), .init(k), alpha, b, .init(ldb), a, .init(incA), beta, c, 1)
            } else {
                cblas_sgemv(CblasRowMajor, CblasTrans, .init(k), .init(n), alpha, b, .init(ldb), a, .init(incA), beta, c, 1)
            }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    .init(m), .init(n), .init(k), alpha, a, .init(lda), b, .init(ldb), beta, c, .init(ldc))
        #endif
    }
}

/// The BLAS behind `Gemm` and its thread count.
public enum BLAS {
    #if canImport(Accelerate) || canImport(CBLAS)
    public static let available = true
    #else
    public static let available = false
    #endif

    /// Which BLAS this build calls.
    public static var name: String {
        #if canImport(Accelerate)
        return "Accelerate"
        #elseif canImport(CBLAS)
        return "OpenBLAS"
        #else
        return "none (reference loops)"
        #endif
    }

    /// Sets the BLAS's own thread count (process-wide in OpenBLAS; Accelerate manages its own).
    /// Setting 1 also stops OpenBLAS's worker threads; a later count above 1 starts them again.
    ///
    /// OpenBLAS (pthreads build) starts its workers when the library loads, and each busy-waits
    /// about 2^28 cycles (0.1 s) for work before it sleeps. A process that loads a model and runs
    /// it at once (every CLI command, a benchmark's child) lost a core to them for its first
    /// runs: SqueezeNet at one thread took twice its wall time in CPU time for its first dozen
    /// runs, and at two threads ran 8.2 ms instead of 6.3. The runtime runs the BLAS on one thread
    /// (its kernels split the work themselves), so going to 1 shuts the workers down through
    /// OpenBLAS's own `blas_thread_shutdown_` (looked up at run time: other BLAS builds have no
    /// such symbol). Calls that do not change the count return at once: OpenBLAS's setter
    /// restarts stopped workers, and a shutdown while another thread is inside a threaded BLAS
    /// call would not be safe, so the shutdown happens only when the count drops to 1 (at the
    /// first model load in a process, unless someone asked for more threads in between).
    public static func setThreads(_ n: Int) {
        #if !canImport(Accelerate) && canImport(CBLAS)
        let n = max(1, n)
        guard threadCount.exchange(n, ordering: .acquiringAndReleasing) != n else { return }
        openblas_set_num_threads(Int32(n))
        if n == 1, let symbol = dlsym(nil, "blas_thread_shutdown_") {
            typealias Shutdown = @convention(c) () -> Int32
            _ = unsafeBitCast(symbol, to: Shutdown.self)()
        }
        #endif
    }

    /// The count last set (0: never set in this process).
    private static let threadCount = Atomic<Int>(0)
}
