extension RowGemm {
    /// The definition: every element as a Double sum over the reduction, then bias and Relu.
    public static func reference(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, rows: UnsafePointer<UnsafePointer<Float>?>,
        bias: UnsafePointer<Float>?, activation: Conv.Activation, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        for i in 0..<m {
            for j in 0..<n {
                var sum = Double(bias?[i] ?? 0)
                for p in 0..<k { sum += Double(a[i * lda + p]) * Double(rows[p]![j]) }
                if activation == .relu { sum = max(sum, 0) }
                c[i * ldc + j] = Float(sum)
            }
        }
    }
}
