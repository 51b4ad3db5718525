import CFloatKernels

/// GEMM for convolutions on NCHW activations: `C[i, j] = act(bias[i] + Σ_p A[i, p] · B_p[j])`,
/// where A is row-major `m × k` (weights `[outC, inC·taps]`) and each row `B_p` of the
/// `k × n` operand is given by a pointer. A 1×1 convolution passes its input planes, a
/// stride-1 k×k one the shifted rows of a zero-padded copy, so neither builds an im2col matrix
/// nor packs it. Bias and Relu are applied as C is stored (no second pass).
///
/// The fast variant is an AVX-512 kernel (`CFloatKernels`, 6 rows × 64 columns of C in
/// registers, nothing packed); it exists only where `isAvailable` (cpuid). Threads split the
/// dimension with more units: column strips of 64, or row blocks of 6.
public enum RowGemm {
    /// Whether this CPU runs the fast variant (AVX-512 F, or NEON on aarch64; not capped by
    /// `MBCONVERT_ISA`).
    public static var isAvailable: Bool { fk_has_avx512() != 0 || fk_has_neon() != 0 }

    /// Products under this many multiply-adds stay on one thread (dispatch costs more).
    static let minParallelWork = 1 << 16

    public static func forward(
        _ variant: KernelVariant = .fast, m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int, rows: UnsafePointer<UnsafePointer<Float>?>,
        bias: UnsafePointer<Float>?, activation: Conv.Activation,
        c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = 1
    ) {
        guard m > 0, n > 0 else { return }
        if variant == .reference || !isAvailable {
            reference(m: m, n: n, k: k, a: a, lda: lda, rows: rows, bias: bias, activation: activation, c: c, ldc: ldc)
            return
        }
        let relu: Int32 = activation == .relu ? 1 : 0
        let strips = (n + 63) / 64, blocks = (m + 5) / 6
        // Up to 4 parts per thread, claimed dynamically (`Parallel.forEach`), so a thread that
        // starts late does not leave the others waiting for its half.
        let parts = m * n * max(k, 1) < minParallelWork || threads <= 1 ? 1 : min(4 * threads, max(strips, blocks))
        if parts <= 1 {
            fk_gemm_rows(0, m, 0, n, k, a, lda, rows, bias, relu, c, ldc)
            return
        }
        let box = UncheckedSendable((a, rows, bias, c))
        let byColumns = strips >= blocks
        Parallel.forEach(parts, threads: threads) { t in
            let (a, rows, bias, c) = box.value
            if byColumns {
                let j0 = min(n, strips * t / parts * 64), j1 = min(n, strips * (t + 1) / parts * 64)
                fk_gemm_rows(0, m, j0, j1, k, a, lda, rows, bias, relu, c, ldc)
            } else {
                let i0 = min(m, blocks * t / parts * 6), i1 = min(m, blocks * (t + 1) / parts * 6)
                fk_gemm_rows(i0, i1, 0, n, k, a, lda, rows, bias, relu, c, ldc)
            }
        }
    }
}
