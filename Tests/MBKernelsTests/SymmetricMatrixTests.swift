import MBCore
import MBKernels
import Testing

/// The output-aware fit's linear algebra (BLAS/LAPACK against plain loops) and its im2col rows
/// (against a direct convolution).
@Suite struct SymmetricMatrixTests {
    /// A seeded SPD matrix XᵀX + 0.1·I from n + 5 random rows.
    static func spd(_ n: Int, seed: UInt64) -> [Double] {
        var rng = SeededGenerator(seed: seed)
        let rows = n + 5
        let x = (0..<(rows * n)).map { _ in rng.nextNormal() }
        var a = [Double](repeating: 0, count: n * n)
        SymmetricMatrix.accumulateTransposeProduct(.reference, a: x, b: x, rows: rows, n: n, m: n, into: &a)
        for i in 0..<n { a[i * n + i] += 0.1 }
        return a
    }

    @Test(arguments: [1, 7, 64, 200])
    func choleskyAndInverseMatchTheReference(n: Int) throws {
        let a = Self.spd(n, seed: UInt64(n))
        let u = try #require(SymmetricMatrix.choleskyUpper(.fast, a, n: n))
        let ur = try #require(SymmetricMatrix.choleskyUpper(.reference, a, n: n))
        let scale = a.map(abs).max()!
        // UᵀU reproduces A; fast and plain factors agree.
        for i in 0..<n {
            for j in 0..<n {
                var s = 0.0
                for k in 0..<n { s += u[k * n + i] * u[k * n + j] }
                #expect(abs(s - a[i * n + j]) <= 1e-10 * scale, "n \(n) (\(i),\(j)): UᵀU \(s) vs A \(a[i * n + j])")
                #expect(abs(u[i * n + j] - ur[i * n + j]) <= 1e-9 * scale.squareRoot(), "n \(n) (\(i),\(j)): \(u[i * n + j]) vs \(ur[i * n + j])")
                if j < i { #expect(u[i * n + j] == 0) }
            }
        }
        let inv = try #require(SymmetricMatrix.inverse(.fast, a, n: n))
        let invRef = try #require(SymmetricMatrix.inverse(.reference, a, n: n))
        let product = SymmetricMatrix.multiply(.fast, a, inv, rows: n, n: n, m: n)
        for i in 0..<n {
            for j in 0..<n {
                #expect(abs(product[i * n + j] - (i == j ? 1 : 0)) <= 1e-8, "n \(n): (A·A⁻¹)[\(i),\(j)] = \(product[i * n + j])")
                #expect(abs(inv[i * n + j] - invRef[i * n + j]) <= 1e-8 * max(1, abs(invRef[i * n + j])))
            }
        }
    }

    @Test func notPositiveDefiniteIsNil() {
        let a: [Double] = [1, 2, 2, 1]  // eigenvalues 3 and -1
        #expect(SymmetricMatrix.choleskyUpper(.fast, a, n: 2) == nil)
        #expect(SymmetricMatrix.choleskyUpper(.reference, a, n: 2) == nil)
        #expect(SymmetricMatrix.inverse(.fast, a, n: 2) == nil)
        #expect(SymmetricMatrix.inverse(.reference, a, n: 2) == nil)
    }

    @Test func productsMatchTheReference() {
        var rng = SeededGenerator(seed: 4)
        let (rows, n, m) = (37, 13, 11)
        let a = (0..<(rows * n)).map { _ in rng.nextNormal() }, b = (0..<(rows * m)).map { _ in rng.nextNormal() }
        var c1 = [Double](repeating: 1, count: n * m), c2 = c1
        SymmetricMatrix.accumulateTransposeProduct(.fast, a: a, b: b, rows: rows, n: n, m: m, into: &c1)
        SymmetricMatrix.accumulateTransposeProduct(.reference, a: a, b: b, rows: rows, n: n, m: m, into: &c2)
        #expect(zip(c1, c2).allSatisfy { abs($0 - $1) <= 1e-12 * 100 })
        let p1 = SymmetricMatrix.multiply(.fast, a, c1, rows: rows, n: n, m: m), p2 = SymmetricMatrix.multiply(.reference, a, c1, rows: rows, n: n, m: m)
        #expect(zip(p1, p2).allSatisfy { abs($0 - $1) <= 1e-10 * 100 })
    }

    /// rows · w equals the convolution output, for strides, dilations, pads and groups.
    @Test(arguments: [
        ConvGeometry(batch: 2, inChannels: 4, outChannels: 6, groups: 2, input: [7, 9], kernel: [3, 2], strides: [2, 1], dilations: [1, 2], padBegin: [1, 0], padEnd: [2, 1]),
        ConvGeometry(batch: 1, inChannels: 3, outChannels: 3, groups: 3, input: [5, 5], kernel: [3, 3], padBegin: [1, 1], padEnd: [1, 1]),
        ConvGeometry(batch: 1, inChannels: 2, outChannels: 4, input: [11], kernel: [4], strides: [3], padBegin: [2], padEnd: [0]),
    ])
    func convRowsReproduceTheConvolution(g: ConvGeometry) throws {
        var rng = SeededGenerator(seed: 8)
        let x = (0..<(g.batch * g.inChannels * g.inputSize)).map { _ in Float(rng.nextNormal()) }
        let taps = g.kernelSize, d = g.inPerGroup * taps
        let w = (0..<(g.outChannels * d)).map { _ in Float(rng.nextNormal()) }
        let d3 = g.dims3
        var rows = [Double](repeating: .nan, count: g.outputSize * d)
        for n in 0..<g.batch {
            for grp in 0..<g.groups {
                x.withUnsafeBufferPointer { ConvRows.extract($0.baseAddress!, geometry: g, sample: n, group: grp, into: &rows) }
                for oc in (grp * g.outPerGroup)..<((grp + 1) * g.outPerGroup) {
                    for p in 0..<g.outputSize {
                        // Direct convolution at output position p.
                        let oy = p / d3.output.2, ox = p % d3.output.2
                        var direct = 0.0
                        for c in 0..<g.inPerGroup {
                            for ky in 0..<d3.kernel.1 {
                                for kx in 0..<d3.kernel.2 {
                                    let iy = oy * d3.strides.1 - d3.pads.1 + ky * d3.dilations.1
                                    let ix = ox * d3.strides.2 - d3.pads.2 + kx * d3.dilations.2
                                    guard iy >= 0, iy < d3.input.1, ix >= 0, ix < d3.input.2 else { continue }
                                    let xi = ((n * g.inChannels + grp * g.inPerGroup + c) * d3.input.1 + iy) * d3.input.2 + ix
                                    direct += Double(x[xi]) * Double(w[oc * d + c * taps + ky * d3.kernel.2 + kx])
                                }
                            }
                        }
                        var viaRows = 0.0
                        for j in 0..<d { viaRows += rows[p * d + j] * Double(w[oc * d + j]) }
                        #expect(abs(viaRows - direct) <= 1e-9, "\(g) sample \(n) channel \(oc) position \(p): \(viaRows) vs \(direct)")
                    }
                }
            }
        }
    }
}
