import CFloatKernels

/// Transposes of 4-byte elements: `dst[n][c][r] = src[n][r][c]` for `batch` matrices of `rows` x
/// `cols`, what a Transpose of two (groups of) axes comes down to, e.g. an image's NHWC -> NCHW
/// ([H * W, C] -> [C, H * W]) at a model's input.
///
/// Why not the general strided copy: it walks the output with a stride-C read per element
/// through a loop generic over the element size, 0.6 ns per element (the 224x224x3 input of a
/// ResNet-50 took 0.09 ms at one and at two threads). Here blocks of 16 rows x 16 columns are
/// read while they are in L1 and written as whole 64-byte lines, an image's 2-4 channels are
/// deinterleaved 16 pixels at a time in registers (`fk_transpose_few_columns`, AVX-512), and
/// bands of rows go to threads.
public enum Transpose {
    /// Rows per block (16 four-byte elements: one 64-byte line of an output row).
    static let block = 16
    /// Elements below which one thread does the whole copy (a job hand-off costs more).
    static let parallelGrain = 1 << 15

    /// The transposes, bands of source rows (multiples of 16, so each output line is written by
    /// one thread) on up to `threads` threads. Same result as `reference`.
    public static func matrices(_ src: UnsafePointer<UInt32>, _ dst: UnsafeMutablePointer<UInt32>, batch: Int, rows: Int, cols: Int, threads: Int) {
        guard batch > 0, rows > 0, cols > 0 else { return }
        let units = (rows + block - 1) / block
        let perMatrix = threads > 1 && batch * rows * cols >= parallelGrain ? min(units, threads) : 1
        let s = UncheckedSendable(src), d = UncheckedSendable(dst)
        // Two to four columns (an image's channels): 16 rows per register permute (AVX-512).
        let fast = (2...4).contains(cols) && fk_has_avx512() != 0
        Parallel.forEach(batch * perMatrix, threads: threads) { job in
            let n = job / perMatrix, part = job % perMatrix
            let r0 = min(rows, units * part / perMatrix * block), r1 = min(rows, units * (part + 1) / perMatrix * block)
            if fast {
                fk_transpose_few_columns(s.value + n * rows * cols, d.value + n * rows * cols, rows, cols, r0, r1)
            } else {
                band(s.value + n * rows * cols, d.value + n * rows * cols, rows: rows, cols: cols, r0: r0, r1: r1)
            }
        }
    }

    /// Source rows [r0, r1) of one matrix: per 16-row block, every column's 16 values (the
    /// block's rows stay in L1 across its columns), so each output line is written whole.
    @inline(__always)
    static func band(_ s: UnsafePointer<UInt32>, _ d: UnsafeMutablePointer<UInt32>, rows: Int, cols: Int, r0: Int, r1: Int) {
        var rb = r0
        while rb < r1 {
            let re = min(rb + block, r1)
            for c in 0..<cols {
                let out = d + c * rows
                var p = s + rb * cols + c
                for r in rb..<re {
                    out[r] = p.pointee
                    p += cols
                }
            }
            rb = re
        }
    }

    /// Plain loops, the reference twin.
    public static func reference(_ src: UnsafePointer<UInt32>, _ dst: UnsafeMutablePointer<UInt32>, batch: Int, rows: Int, cols: Int) {
        for n in 0..<batch {
            for r in 0..<rows {
                for c in 0..<cols { dst[(n * cols + c) * rows + r] = src[(n * rows + r) * cols + c] }
            }
        }
    }
}
