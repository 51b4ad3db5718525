import MBCore
/// The "refit" extra (not in the paper): for the signs and mask that residual
/// binarization chose, the level scales that minimize ||T - T_hat||, per group.
///
/// T_hat_j = sum over k <= M_j of mu_k s_kj is linear in mu, so the best mu solves the normal
/// equations G mu = h with G_kl = sum over j with M_j >= max(k, l) of s_kj s_lj and
/// h_k = sum over j with M_j >= k of s_kj T_j: at most 8 x 8, solved in Double by Gaussian
/// elimination with partial pivoting. A group whose system is singular (e.g. two levels with
/// identical signs) keeps its original scales, and is counted.
public enum Refit {
    public struct Result: Sendable {
        public let packed: PackedTensor
        /// Groups whose normal equations were singular and kept the residual scales.
        public let singularGroups: Int
    }

    public static func refit(_ packed: PackedTensor, original: FloatTensor) throws(BinarizeError) -> Result {
        try packed.validated()
        guard original.values.count == packed.count else {
            throw .invalidTensor(tensor: original.name, reason: "has \(original.values.count) values, the packed tensor \(packed.count)")
        }
        let layout = packed.layout
        let values = layout.toGroupMajor(original.values)
        let mask = layout.toGroupMajor(packed.mask)
        let K = packed.levels.count
        var result = packed
        var singular = 0
        var cursor = [Int](repeating: 0, count: K)
        var signs = [Double](repeating: 0, count: K)
        for g in 0..<layout.groupCount {
            var G = [[Double]](repeating: [Double](repeating: 0, count: K), count: K)
            var h = [Double](repeating: 0, count: K)
            for p in (g * layout.groupSize)..<((g + 1) * layout.groupSize) {
                let m = Int(mask[p])
                for k in 0..<m {
                    signs[k] = Double(packed.levels[k].sign(cursor[k]))
                    cursor[k] += 1
                    h[k] += signs[k] * Double(values[p])
                    for l in 0...k { G[k][l] += signs[k] * signs[l] }
                }
            }
            // Only the levels present in this group take part.
            let present = (0..<K).filter { packed.levels[$0].activeCounts[g] > 0 }
            guard !present.isEmpty else { continue }
            let A = present.map { k in present.map { l in k >= l ? G[k][l] : G[l][k] } }
            guard let mu = solveLinearSystem(A, present.map { h[$0] }) else {
                singular += 1
                continue
            }
            for (i, k) in present.enumerated() { result.levels[k].scales[g] = Float(mu[i]) }
        }
        return Result(packed: result, singularGroups: singular)
    }
}

/// Solves A x = b (A square, small) by Gaussian elimination with partial pivoting in Double.
/// Returns nil when a pivot is negligible next to the largest entry of A (singular system).
func solveLinearSystem(_ A: [[Double]], _ b: [Double]) -> [Double]? {
    let n = b.count
    var a = A
    var x = b
    let scale = A.flatMap { $0 }.map(abs).max() ?? 0
    guard scale > 0 else { return nil }
    for col in 0..<n {
        var pivot = col
        for r in (col + 1)..<max(col + 1, n) where abs(a[r][col]) > abs(a[pivot][col]) { pivot = r }
        guard abs(a[pivot][col]) > 1e-12 * scale else { return nil }
        if pivot != col {
            a.swapAt(pivot, col)
            x.swapAt(pivot, col)
        }
        for r in (col + 1)..<max(col + 1, n) {
            let f = a[r][col] / a[col][col]
            if f == 0 { continue }
            for c in col..<n { a[r][c] -= f * a[col][c] }
            x[r] -= f * x[col]
        }
    }
    for col in stride(from: n - 1, through: 0, by: -1) {
        var s = x[col]
        for c in (col + 1)..<max(col + 1, n) { s -= a[col][c] * x[c] }
        x[col] = s / a[col][col]
    }
    return x
}
