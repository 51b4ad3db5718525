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
