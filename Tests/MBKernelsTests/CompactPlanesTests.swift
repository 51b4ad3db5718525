import MBCore
import MBKernels
import XCTest

/// The compact weight layout: decoding is exact (bit for bit the expanded values on every
/// instruction set and from any first row), and the layers on it equal the float kernels on the
/// expanded weights.
final class CompactPlanesTests: XCTestCase {
    /// A compact source and its expanded rows (`values[row * columns + column]`, levels added in
    /// Float from level 1 up, the definition `PackedTensor.dequantized` follows).
    func source(rows: Int, columns: Int, levels: Int, seed: UInt64, structured: Bool = false, rowUniform: Bool = false,
                perRow: Bool = true, transposed: Bool = true) -> (CompactPlanes.Source, [Float]) {
        let s = randomSource(rows: rows, taps: 1, channels: columns, levels: levels, seed: seed, structured: structured,
                             rowUniform: rowUniform, layout: .matrix(transposed: transposed))
        var values = [Float](repeating: 0, count: rows * columns)
        for o in 0..<rows {
            for c in 0..<columns {
                let j = o * s.rowStride + c * s.channelStride
                var v: Float = 0
                for k in 0..<Int(s.mask[j]) {
                    let mu = s.scales[k][perRow ? o : 0]
                    let term = (s.signs[k][j >> 6] >> UInt64(j & 63)) & 1 == 1 ? mu : -mu
                    v = k == 0 ? term : v + term
                }
                values[o * columns + c] = v
            }
        }
        let c = CompactPlanes.Source(rows: rows, columns: columns, rowStride: s.rowStride, columnStride: s.channelStride, mask: s.mask,
                                     signBits: s.signs, scales: s.scales, perRowScales: perRow)
        return (c, values)
    }

    func testDecodeIsExactOnEveryISAFromAnyRow() {
        var seed: UInt64 = 500
        for columns in [1, 9, 63, 64, 65, 130, 513] { for rows in [1, 15, 16, 17, 40] { for levels in [1, 2, 3] {
            for (structured, rowUniform) in [(false, false), (true, false), (false, true)] {
                seed += 1
                let perRow = seed % 3 != 0, transposed = seed % 2 == 0
                let (s, values) = source(rows: rows, columns: columns, levels: levels, seed: seed, structured: structured,
                                         rowUniform: rowUniform, perRow: perRow, transposed: transposed)
                let planes = CompactPlanes(s)
                let what = "rows=\(rows) columns=\(columns) levels=\(levels) structured=\(structured) rowUniform=\(rowUniform) perRow=\(perRow) seed=\(seed)"
                let ranges = [0..<rows, (rows / 3)..<rows, (rows / 2)..<(rows / 2 + 1), 0..<(rows - rows / 4)]
                for range in ranges where !range.isEmpty {
                    for (label, isa) in BitPlaneMatrix.availableISAs.map({ (BitPlaneMatrix.isaName($0), Optional($0)) }) + [("reference", nil)] {
                        var out = [Float](repeating: .nan, count: range.count * (columns + 3))
                        out.withUnsafeMutableBufferPointer { o in
                            if let isa { planes.decode(rows: range, into: o.baseAddress!, ldo: columns + 3, isa: isa) }
                            else { planes.decode(.reference, rows: range, into: o.baseAddress!, ldo: columns + 3) }
                        }
                        for o in range { for c in 0..<columns {
                            let got = out[(o - range.lowerBound) * (columns + 3) + c], want = values[o * columns + c]
                            if got.bitPattern != want.bitPattern {
                                XCTFail("\(what) \(label) rows \(range): entry (\(o), \(c)) got \(got) expected \(want)")
                                return
                            }
                        } }
                    }
                }
            }
        } } }
    }

    /// The decode fused with a dot product, on every instruction set and from any first row,
    /// against a Double dot product of the expanded rows (within `BitPlaneTolerance.relative` of
    /// the sum of |terms|).
    func testFusedGemvOnEveryISA() {
        var seed: UInt64 = 3000
        for columns in [1, 17, 64, 65, 200, 513] { for rows in [1, 16, 17, 45] { for levels in [1, 3] {
            seed += 1
            let (s, values) = source(rows: rows, columns: columns, levels: levels, seed: seed, structured: seed % 3 == 0)
            let planes = CompactPlanes(s)
            let x = randomActivations(count: columns, seed: seed + 1)
            for isa in BitPlaneMatrix.availableISAs {
                for range in [0..<rows, (rows / 2)..<rows] where !range.isEmpty {
                    var y = [Float](repeating: .nan, count: range.count)
                    planes.gemv(rows: range, x: x, y: &y, isa: isa)
                    for r in range {
                        var want = 0.0, bound: Float = 0
                        for j in 0..<columns { want += Double(values[r * columns + j]) * Double(x[j]); bound += abs(values[r * columns + j] * x[j]) }
                        XCTAssertLessThanOrEqual(abs(y[r - range.lowerBound] - Float(want)), BitPlaneTolerance.relative * bound + 1e-30,
                                                 "gemv rows=\(rows) columns=\(columns) levels=\(levels) seed=\(seed) isa=\(BitPlaneMatrix.isaName(isa)) rows \(range): row \(r)")
                    }
                }
            }
        } } }
    }

    /// Per-entry 70/20/10 masks cost about 2.7 bits per weight (1 + 1 + 0.3 activity + 1.4 signs);
    /// one width per row (half 1, half 2 bits) only the signs, 1.5.
    func testResidentBytesFollowTheEncoding() {
        var rng = SeededGenerator(seed: 9)
        let rows = 64, columns = 1024, n = rows * columns
        let perEntry: [UInt8] = (0..<n).map { _ in let u = rng.nextUnitDouble(); return u < 0.7 ? 1 : u < 0.9 ? 2 : 3 }
        let perRow: [UInt8] = (0..<n).map { UInt8(1 + ($0 / columns) % 2) }
        for (mask, expected) in [(perEntry, 2.7), (perRow, 1.5)] {
            let signs = (0..<3).map { _ in (0..<((n + 63) / 64)).map { _ in rng.next() } }
            let scales = (0..<3).map { _ in [Float](repeating: 1, count: rows) }
            let planes = CompactPlanes(.init(rows: rows, columns: columns, rowStride: columns, columnStride: 1, mask: mask, signBits: signs,
                                             scales: scales, perRowScales: true))
            // Per row: 3 scales, its widths byte, and 2 levels x 2 offsets of 64 bits per 16 rows.
            let perRow = Double(3 * 32 + 8 + 2 * 2 * 64 / 16) / Double(columns)
            let bits = Double(planes.residentBytes * 8) / Double(n)
            XCTAssertEqual(bits, expected + perRow, accuracy: 0.03, "resident bits per weight")
        }
    }

    /// Every Conv form through tiles of output channels equals `Conv.forward` on the expanded weights, bit for bit.
    func testConvEqualsFloatConvOnExpandedWeights() {
        let scratch = KernelScratch(), tiles = BitPlaneScratch()
        // (batch, inC, outC, groups, spatial, kernel, stride, pad), chosen so some tile (1 MiB) splits.
        let cases: [(Int, Int, Int, Int, [Int], [Int], [Int], [Int])] = [
            (1, 24, 40, 1, [9, 7], [1, 1], [1, 1], [0, 0]),        // pointwise
            (2, 16, 20, 1, [8, 8], [3, 3], [2, 2], [1, 1]),        // strided 3x3, batch 2
            (1, 32, 32, 32, [10, 9], [3, 3], [1, 1], [1, 1]),      // depthwise
            (1, 12, 18, 3, [7, 7], [3, 3], [1, 1], [1, 1]),        // grouped
            (2, 640, 900, 1, [3, 3], [1, 1], [1, 1], [0, 0]),      // 576000 weights: row tiles
            (1, 96, 2048, 8, [4, 4], [3, 3], [1, 1], [1, 1]),       // 221184 weights, whole groups... one tile
            (2, 1024, 520, 2, [3, 3], [1, 1], [1, 1], [0, 0]),     // groups of 133120 weights: one group per tile
            (1, 5, 7, 1, [12], [3], [2], [1]),                      // 1-D
        ]
        for (i, (batch, inC, outC, groups, spatial, kernel, stride, pad)) in cases.enumerated() {
            let g = ConvGeometry(batch: batch, inChannels: inC, outChannels: outC, groups: groups, input: spatial, kernel: kernel,
                                 strides: stride, padBegin: pad, padEnd: pad)
            let columns = inC / groups * kernel.reduce(1, *)
            let (s, w) = source(rows: outC, columns: columns, levels: 3, seed: UInt64(700 + i))
            let planes = CompactPlanes(s)
            let x = randomActivations(count: batch * inC * spatial.reduce(1, *), seed: UInt64(800 + i))
            let bias = randomActivations(count: outC, seed: UInt64(900 + i))
            for activation in [Activation.none, .relu, .hardSwish] {
                var want = [Float](repeating: 0, count: batch * outC * g.outputSize), got = want
                Conv.forward(.fast, g, input: x, weights: w, bias: bias, output: &want, activation: activation, threads: 2, scratch: scratch)
                planes.convForward(.fast, g, input: x, bias: bias, output: &got, activation: activation, threads: 2, scratch: scratch, tiles: tiles)
                let bad = (0..<want.count).first { got[$0].bitPattern != want[$0].bitPattern }
                XCTAssertNil(bad, "case \(i) \(g) \(activation): output \(bad ?? 0) got \(bad.map { got[$0] } ?? 0) expected \(bad.map { want[$0] } ?? 0)")
            }
        }
    }

    /// Gemm/MatMul through tiles against the float GEMM on the expanded weights (the BLAS may
    /// block a tile differently from the whole: within `BitPlaneTolerance.relative` of the sum of |terms|).
    func testMultiplyEqualsGemmOnExpandedWeights() {
        let tiles = BitPlaneScratch()
        var seed: UInt64 = 1000
        for (m, n, k) in [(1, 10, 65), (1, 300, 1000), (3, 70, 513), (5, 40, 100), (16, 33, 64), (40, 700, 400), (1, 1, 1)] {
            seed += 1
            let (s, w) = source(rows: n, columns: k, levels: 3, seed: seed, transposed: seed % 2 == 0)
            let planes = CompactPlanes(s)
            let a = randomActivations(count: m * k, seed: seed + 1)
            var want = [Float](repeating: 0, count: m * n), got = [Float](repeating: .nan, count: m * n)
            Gemm.sgemm(.reference, transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: w, ldb: k, beta: 0, c: &want, ldc: n)
            for threads in [1, 2] {
                planes.multiply(a: a, m: m, lda: k, y: &got, ldc: n, threads: threads, tiles: tiles)
                for i in 0..<m { for j in 0..<n {
                    var bound: Float = 0
                    for p in 0..<k { bound += abs(a[i * k + p] * w[j * k + p]) }
                    XCTAssertLessThanOrEqual(abs(got[i * n + j] - want[i * n + j]), BitPlaneTolerance.relative * bound + 1e-30,
                                             "m=\(m) n=\(n) k=\(k) threads=\(threads) seed=\(seed): y[\(i), \(j)]")
                } }
            }
        }
    }
}
