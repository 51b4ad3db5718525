import CFloatKernels

/// GEMM for convolutions on NCHW activations: `C[i, j] = act(bias[i] + Σ_p A[i, p] · B_p[j])`,
/// where A is row-major `m × k` (weights `[outC, inC·taps]`) and each row `B_p` of the
/// `k × n` operand is given by a pointer. A 1×1 convolution passes its input planes, a
/// stride-1 k×k one the shifted rows of a zero-padded copy, so neither builds an im2col matrix
/// nor packs it. Bias and the activation are applied as C is finished (Relu in registers, the
/// others over each tile while it is in L1): no second pass over the output.
///
/// The fast variant is an AVX-512 kernel (`CFloatKernels`, 6 rows × 64 columns of C in
/// registers, nothing packed); it exists only where `isAvailable` (cpuid). Threads split the
/// columns where they can (`split`), else row blocks of 6.
public enum RowGemm {
    /// Whether this CPU runs the fast variant (AVX-512 F, or NEON on aarch64; not capped by
    /// `MBCONVERT_ISA`).
    public static var isAvailable: Bool { fk_has_avx512() != 0 || fk_has_neon() != 0 }

    /// Products under this many multiply-adds stay on one thread (dispatch costs more).
    static let minParallelWork = 1 << 16
    /// Products too narrow to split by columns stay on one thread under this many multiply-adds:
    /// split by rows, every thread reads all of B, and the next writes to those cache lines pay
    /// for the sharing (the speech-embedding CNN's 1.2 M multiply-add layers on 48-56 columns
    /// took 3.5x longer split by rows than on one thread).
    static let minRowSplitWork = 1 << 22

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
        let (act, p0, p1) = Elementwise.code(.activation(activation))
        let box = UncheckedSendable((a, rows, bias, c))
        split(m: m, n: n, k: k, threads: threads) { i0, i1, j0, j1 in
            let (a, rows, bias, c) = box.value
            fk_gemm_rows_act(i0, i1, j0, j1, k, a, lda, rows, bias, act, p0, p1, c, ldc)
        }
    }

    /// Whether this CPU runs the pitched product (AVX-512 F, not capped by `MBCONVERT_ISA`).
    public static var pitchedAvailable: Bool { fk_has_avx512() != 0 }

    /// The product with a pitched B: `B[p][j] = rows[p][(j / width) · pitch + j % width]` (a
    /// convolution's output rows of `width` columns read from padded planes `pitch` wide), packed
    /// into compact columns as it is used (`fk_gemm_rows_pitched`). Each row must stay readable 15
    /// floats past the last element used. AVX-512 only (`fk_has_avx512()`); the reference is the
    /// convolution's.
    static func forward(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, rows: UnsafePointer<UnsafePointer<Float>?>, width: Int, pitch: Int,
        bias: UnsafePointer<Float>?, activation: Conv.Activation, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = 1
    ) {
        guard m > 0, n > 0 else { return }
        precondition(pitchedAvailable, "the pitched RowGemm needs AVX-512")
        let (act, p0, p1) = Elementwise.code(.activation(activation))
        let box = UncheckedSendable((a, rows, bias, c))
        split(m: m, n: n, k: k, threads: threads) { i0, i1, j0, j1 in
            let (a, rows, bias, c) = box.value
            fk_gemm_rows_pitched(i0, i1, j0, j1, k, a, lda, rows, width, pitch, bias, act, p0, p1, c, ldc)
        }
    }

    /// The product with B the implicit im2col matrix of one group of a 1-D/2-D convolution
    /// (`fk_gemm_conv2d`: gathered from the input while packing). AVX-512 only (`fk_has_avx512()`);
    /// the reference is the convolution's (`Conv.reference`).
    static func conv2d(
        m: Int, n: Int, source: fk_conv2d_source, a: UnsafePointer<Float>, lda: Int,
        bias: UnsafePointer<Float>?, activation: Conv.Activation, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = 1
    ) {
        guard m > 0, n > 0 else { return }
        precondition(fk_has_avx512() != 0, "RowGemm.conv2d needs AVX-512")
        let (act, p0, p1) = Elementwise.code(.activation(activation))
        let box = UncheckedSendable((a, bias, c, source))
        split(m: m, n: n, k: source.channels * source.kh * source.kw, threads: threads) { i0, i1, j0, j1 in
            let (a, bias, c, source) = box.value
            withUnsafePointer(to: source) { fk_gemm_conv2d(i0, i1, j0, j1, a, lda, $0, bias, act, p0, p1, c, ldc) }
        }
    }

    /// Runs `body(i0, i1, j0, j1)` over parts of the `m × n` product: one part below
    /// `minParallelWork`, else up to 4 parts per thread (`Parallel.forEach`: thread `t` takes
    /// the `t`-th share first, then helps with unstarted parts). Parts are bands of columns (at
    /// least 64 wide, cut at multiples of 16) wherever there are 64 columns per thread and the
    /// weights are not much larger than the input: a thread then reads and writes the same
    /// positions of every feature map in consecutive layers, so no cache line of the activations
    /// is read by two cores (see `WorkerPool`). Otherwise (few columns, or a classifier's
    /// weights dominate) one band of rows per thread (multiples of 6), which every thread reads
    /// all of B for, from `minRowSplitWork` on.
    static func split(m: Int, n: Int, k: Int, threads: Int, _ body: (Int, Int, Int, Int) -> Void) {
        let blocks = (m + 5) / 6
        guard threads > 1, m * n * max(k, 1) >= minParallelWork, blocks > 1 || n >= 64 * threads else {
            body(0, m, 0, n)
            return
        }
        if n >= 64 * threads && (m <= 4 * n || blocks < 2 * threads) {
            // A multiple of the threads, so each thread's own share is the same width.
            let parts = min(4 * threads, n / 64) / threads * threads
            Parallel.forEach(parts, threads: threads) { t in
                body(0, m, t == 0 ? 0 : n * t / parts / 16 * 16, t == parts - 1 ? n : n * (t + 1) / parts / 16 * 16)
            }
        } else if m * n * max(k, 1) >= minRowSplitWork {
            // One band per thread: each band packs all of B for itself (the implicit path always
            // packs), so 4 bands per thread packed it 4 times over (ResNet's 3×3 layers at 7×7 ran
            // no faster on two threads than on one).
            let parts = min(threads, blocks)
            Parallel.forEach(parts, threads: threads) { t in
                body(min(m, blocks * t / parts * 6), min(m, blocks * (t + 1) / parts * 6), 0, n)
            }
        } else {
            body(0, m, 0, n)
        }
    }
}
