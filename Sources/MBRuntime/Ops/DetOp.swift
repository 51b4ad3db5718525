import MBCore

/// Det: the determinant of each trailing [M, M] matrix, by LU decomposition with partial
/// pivoting in double.
enum DetOp {
    static func determinant(_ a: inout [Double], _ m: Int) -> Double {
        var det = 1.0
        for col in 0..<m {
            var pivot = col
            for r in (col + 1)..<max(col + 1, m) where abs(a[r * m + col]) > abs(a[pivot * m + col]) { pivot = r }
            if a[pivot * m + col] == 0 { return 0 }
            if pivot != col {
                for k in 0..<m { a.swapAt(col * m + k, pivot * m + k) }
                det = -det
            }
            let p = a[col * m + col]
            det *= p
            for r in (col + 1)..<max(col + 1, m) {
                let f = a[r * m + col] / p
                if f != 0 { for k in col..<m { a[r * m + k] -= f * a[col * m + k] } }
            }
        }
        return det
    }

    static let table: [String: OpTable.Compile] = [
        "Det": { _ in { i, c in
            let x = try i.float(0, "X")
            guard x.rank >= 2, x.shape[x.rank - 1] == x.shape[x.rank - 2] else { throw OpError("X \(x.shape) must end in a square [M, M]") }
            let m = x.shape[x.rank - 1], count = x.count / max(1, m * m)
            let y = try c.alloc(.float, Array(x.shape.dropLast(2)))
            let px = x.pointer(Float.self), py = y.mutable(Float.self)
            var a = [Double](repeating: 0, count: m * m)
            for b in 0..<count {
                for k in 0..<(m * m) { a[k] = Double(px[b * m * m + k]) }
                py[b] = Float(determinant(&a, m))
            }
            return [y]
        } },
    ]
}
