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
