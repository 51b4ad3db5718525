extension RowGemm {
    /// The definition: every element as a Double sum over the reduction, then bias and the activation.
    public static func reference(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, rows: UnsafePointer<UnsafePointer<Float>?>,
        bias: UnsafePointer<Float>?, activation: Conv.Activation, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        for i in 0..<m {
            for j in 0..<n {
                var sum = Double(bias?[i] ?? 0)
                for p in 0..<k { sum += Double(a[i * lda + p]) * Double(rows[p]![j]) }
                sum = activation.reference(sum)
                c[i * ldc + j] = Float(sum)
            }
        }
    }
}

extension RowGemm {
    /// The definition of the pitched product: `B[p][j] = rows[p][(j / width) · pitch + j % width]`,
    /// every element as a Double sum, then bias and the activation.
    public static func pitchedReference(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, rows: UnsafePointer<UnsafePointer<Float>?>, width: Int, pitch: Int,
        bias: UnsafePointer<Float>?, activation: Conv.Activation, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        for i in 0..<m {
            for j in 0..<n {
                var sum = Double(bias?[i] ?? 0)
                for p in 0..<k { sum += Double(a[i * lda + p]) * Double(rows[p]![j / width * pitch + j % width]) }
                c[i * ldc + j] = Float(activation.reference(sum))
            }
        }
    }
}
