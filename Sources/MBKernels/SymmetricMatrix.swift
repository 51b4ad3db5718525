#if canImport(Accelerate)
import Accelerate
#elseif canImport(CBLAS)
import CBLAS
#endif

/// Dense Double linear algebra on small symmetric positive definite systems (n up to a few
/// thousand): the second-moment matrices of the output-aware fit. Row-major n×n arrays. The
/// fast variants call the platform BLAS/LAPACK (OpenBLAS's dgemm, dpotrf, dpotri); each has a
/// plain twin used by the tests and wherever no LAPACK is linked.
public enum SymmetricMatrix {
    /// `c` (n×m, row-major) += aᵀ·b, where `a` is rows×n and `b` is rows×m (both row-major):
    /// the accumulation of XᵀY over blocks of rows.
    public static func accumulateTransposeProduct(_ variant: KernelVariant = .fast, a: UnsafePointer<Double>, b: UnsafePointer<Double>,
                                                  rows: Int, n: Int, m: Int, into c: UnsafeMutablePointer<Double>) {
        guard rows > 0, n > 0, m > 0 else { return }
        #if canImport(Accelerate) || canImport(CBLAS)
        if variant == .fast {
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, .init(n), .init(m), .init(rows), 1, a, .init(n), b, .init(m), 1, c, .init(m))
            return
        }
        #endif
        for r in 0..<rows {
            for i in 0..<n {
                let x = a[r * n + i]
                if x == 0 { continue }
                for j in 0..<m { c[i * m + j] += x * b[r * m + j] }
            }
        }
    }

    /// c (rows×m) = a (rows×n) · b (n×m), all row-major.
    public static func multiply(_ variant: KernelVariant = .fast, _ a: [Double], _ b: [Double], rows: Int, n: Int, m: Int) -> [Double] {
        var c = [Double](repeating: 0, count: rows * m)
        guard rows > 0, n > 0, m > 0 else { return c }
        #if canImport(Accelerate) || canImport(CBLAS)
        if variant == .fast {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, .init(rows), .init(m), .init(n), 1, a, .init(n), b, .init(m), 0, &c, .init(m))
            return c
        }
        #endif
        for r in 0..<rows {
            for i in 0..<n {
                let x = a[r * n + i]
                if x == 0 { continue }
                for j in 0..<m { c[r * m + j] += x * b[i * m + j] }
            }
        }
        return c
    }

    /// c (rows×m) = a (rows×n) · bᵀ, where `b` is m×n (all row-major).
    public static func multiplyTransposed(_ variant: KernelVariant = .fast, _ a: [Double], _ b: [Double], rows: Int, n: Int, m: Int) -> [Double] {
        var c = [Double](repeating: 0, count: rows * m)
        guard rows > 0, n > 0, m > 0 else { return c }
        #if canImport(Accelerate) || canImport(CBLAS)
        if variant == .fast {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, .init(rows), .init(m), .init(n), 1, a, .init(n), b, .init(n), 0, &c, .init(m))
            return c
        }
        #endif
        for r in 0..<rows {
            for j in 0..<m {
                var s = 0.0
                for i in 0..<n { s += a[r * n + i] * b[j * n + i] }
                c[r * m + j] = s
            }
        }
        return c
    }

    /// `c` (n×n, row-major) += aᵀ·a for a Double `a` (rows×n): dsyrk on one triangle, mirrored.
    public static func accumulateGram(_ variant: KernelVariant = .fast, a: UnsafePointer<Double>, rows: Int, n: Int,
                                      into c: UnsafeMutablePointer<Double>, scratch: inout [Double]) {
        guard rows > 0, n > 0 else { return }
        #if canImport(Accelerate) || canImport(CBLAS)
        if variant == .fast {
            if scratch.count < n * n { scratch = [Double](repeating: 0, count: n * n) }
            scratch.withUnsafeMutableBufferPointer { s in
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, .init(n), .init(rows), 1, a, .init(n), 0, s.baseAddress!, .init(n))
                for i in 0..<n {
                    c[i * n + i] += s[i * n + i]
                    for j in (i + 1)..<max(i + 1, n) {
                        c[i * n + j] += s[i * n + j]
                        c[j * n + i] += s[i * n + j]
                    }
                }
            }
            return
        }
        #endif
        accumulateTransposeProduct(.reference, a: a, b: a, rows: rows, n: n, m: n, into: c)
    }

    /// `c` (n×n, Double, row-major) += aᵀ·a, where `a` is rows×n Float: the Gram matrix of a block
    /// of input rows. The fast variant forms the block's product in single precision (OpenBLAS
    /// ssyrk, one triangle, half a dgemm's work at twice its width) and adds it, mirrored, into
    /// the Double sum, so only the sums within one block are rounded to float.
    public static func accumulateGram(_ variant: KernelVariant = .fast, a: UnsafePointer<Float>, rows: Int, n: Int,
                                      into c: UnsafeMutablePointer<Double>, scratch: inout [Float]) {
        guard rows > 0, n > 0 else { return }
        #if canImport(Accelerate) || canImport(CBLAS)
        if variant == .fast {
            if scratch.count < n * n { scratch = [Float](repeating: 0, count: n * n) }
            scratch.withUnsafeMutableBufferPointer { s in
                cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, .init(n), .init(rows), 1, a, .init(n), 0, s.baseAddress!, .init(n))
                for i in 0..<n {
                    c[i * n + i] += Double(s[i * n + i])
                    for j in (i + 1)..<max(i + 1, n) {
                        let v = Double(s[i * n + j])
                        c[i * n + j] += v
                        c[j * n + i] += v
                    }
                }
            }
            return
        }
        #endif
        accumulateTransposeProduct(.reference, a: a, b: a, rows: rows, n: n, m: n, into: c, scratch: &scratch)
    }

    /// `c` (n×m, Double) += aᵀ·b for Float `a` (rows×n) and `b` (rows×m); like `accumulateGram`,
    /// the block's product is formed in single precision (sgemm) and added in Double.
    public static func accumulateTransposeProduct(_ variant: KernelVariant = .fast, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                                  rows: Int, n: Int, m: Int, into c: UnsafeMutablePointer<Double>, scratch: inout [Float]) {
        guard rows > 0, n > 0, m > 0 else { return }
        #if canImport(Accelerate) || canImport(CBLAS)
        if variant == .fast {
            if scratch.count < n * m { scratch = [Float](repeating: 0, count: n * m) }
            scratch.withUnsafeMutableBufferPointer { s in
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, .init(n), .init(m), .init(rows), 1, a, .init(n), b, .init(m), 0, s.baseAddress!, .init(m))
                for i in 0..<(n * m) { c[i] += Double(s[i]) }
            }
            return
        }
        #endif
        for r in 0..<rows {
            for i in 0..<n {
                let x = Double(a[r * n + i])
                if x == 0 { continue }
                for j in 0..<m { c[i * m + j] += x * Double(b[r * m + j]) }
            }
        }
    }

    /// c (rows×m, Float) = a (rows×n) · bᵀ for Float `a` and `b` (m×n), single precision: a layer's
    /// output channels on a block of its input rows.
    public static func multiplyTransposed(_ variant: KernelVariant = .fast, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                          rows: Int, n: Int, m: Int, into c: UnsafeMutablePointer<Float>) {
        guard rows > 0, m > 0 else { return }
        #if canImport(Accelerate) || canImport(CBLAS)
        if variant == .fast, n > 0 {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, .init(rows), .init(m), .init(n), 1, a, .init(n), b, .init(n), 0, c, .init(m))
            return
        }
        #endif
        for r in 0..<rows {
            for j in 0..<m {
                var s = 0.0
                for i in 0..<n { s += Double(a[r * n + i]) * Double(b[j * n + i]) }
                c[r * m + j] = Float(s)
            }
        }
    }

    /// The upper Cholesky factor U (A = UᵀU, zeros below the diagonal) of the symmetric n×n
    /// matrix `a`, or nil when `a` is not (numerically) positive definite.
    public static func choleskyUpper(_ variant: KernelVariant = .fast, _ a: [Double], n: Int) -> [Double]? {
        #if !canImport(Accelerate) && canImport(CBLAS)
        if variant == .fast {
            // Row-major upper U is column-major lower L = Uᵀ: LAPACK's 'L' factor of the same array.
            var u = a
            var info: Int32 = 0, order = Int32(n)
            "L".withCString { uplo in dpotrf_(uplo, &order, &u, &order, &info) }
            guard info == 0 else { return nil }
            for i in 0..<n { for j in 0..<i { u[i * n + j] = 0 } }
            return u.allSatisfy(\.isFinite) ? u : nil
        }
        #endif
        return choleskyUpperReference(a, n: n)
    }

    /// The inverse of the symmetric positive definite n×n matrix `a`, or nil when it is not.
    public static func inverse(_ variant: KernelVariant = .fast, _ a: [Double], n: Int) -> [Double]? {
        #if !canImport(Accelerate) && canImport(CBLAS)
        if variant == .fast {
            var x = a
            var info: Int32 = 0, order = Int32(n)
            "L".withCString { uplo in dpotrf_(uplo, &order, &x, &order, &info) }
            guard info == 0 else { return nil }
            "L".withCString { uplo in dpotri_(uplo, &order, &x, &order, &info) }
            guard info == 0 else { return nil }
            // dpotri fills one triangle (column-major lower = row-major upper); mirror it.
            for i in 0..<n { for j in 0..<i { x[i * n + j] = x[j * n + i] } }
            return x.allSatisfy(\.isFinite) ? x : nil
        }
        #endif
        return inverseReference(a, n: n)
    }

    /// Plain Cholesky–Banachiewicz, row by row, in Double.
    public static func choleskyUpperReference(_ a: [Double], n: Int) -> [Double]? {
        // Lower factor L (A = LLᵀ) first; U = Lᵀ.
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var s = a[i * n + j]
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    guard s > 0, s.isFinite else { return nil }
                    l[i * n + i] = s.squareRoot()
                } else {
                    l[i * n + j] = s / l[j * n + j]
                }
            }
        }
        var u = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in i..<n { u[i * n + j] = l[j * n + i] } }
        return u
    }

    /// Plain inverse through the Cholesky factor: solves A x = e_j column by column.
    public static func inverseReference(_ a: [Double], n: Int) -> [Double]? {
        guard let u = choleskyUpperReference(a, n: n) else { return nil }
        var inv = [Double](repeating: 0, count: n * n)
        var y = [Double](repeating: 0, count: n)
        for col in 0..<n {
            // Uᵀ y = e_col (forward), then U x = y (backward).
            for i in 0..<n {
                var s = i == col ? 1.0 : 0.0
                for k in 0..<i { s -= u[k * n + i] * y[k] }
                y[i] = s / u[i * n + i]
            }
            for i in stride(from: n - 1, through: 0, by: -1) {
                var s = y[i]
                for k in (i + 1)..<max(i + 1, n) { s -= u[i * n + k] * inv[k * n + col] }
                inv[i * n + col] = s / u[i * n + i]
            }
        }
        return inv
    }
}
