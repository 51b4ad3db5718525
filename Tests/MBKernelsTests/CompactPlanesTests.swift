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
    /// `planes.gemv` over `rows` against a Double dot product of the expanded `values`, within
    /// `BitPlaneTolerance.relative` of the sum of |w x|.
    func assertGemv(_ planes: CompactPlanes, _ values: [Float], columns: Int, rows range: Range<Int>, x: [Float], isa: Int32, _ what: String) {
        var y = [Float](repeating: .nan, count: range.count)
        planes.gemv(rows: range, x: x, y: &y, isa: isa)
        for r in range {
            var want = 0.0, bound: Float = 0
            for j in 0..<columns { want += Double(values[r * columns + j]) * Double(x[j]); bound += abs(values[r * columns + j] * x[j]) }
            XCTAssertLessThanOrEqual(abs(y[r - range.lowerBound] - Float(want)), BitPlaneTolerance.relative * bound + 1e-30, "\(what) rows \(range): row \(r)")
        }
    }

    func testFusedGemvOnEveryISA() {
        var seed: UInt64 = 3000
        for columns in [1, 17, 64, 65, 200, 513] { for rows in [1, 16, 17, 45] { for levels in [1, 3] {
            seed += 1
            let (s, values) = source(rows: rows, columns: columns, levels: levels, seed: seed, structured: seed % 3 == 0)
            let planes = CompactPlanes(s)
            let x = randomActivations(count: columns, seed: seed + 1)
            for isa in BitPlaneMatrix.availableISAs {
                for range in [0..<rows, (rows / 2)..<rows] where !range.isEmpty {
                    assertGemv(planes, values, columns: columns, rows: range, x: x, isa: isa,
                               "gemv rows=\(rows) columns=\(columns) levels=\(levels) seed=\(seed) isa=\(BitPlaneMatrix.isaName(isa))")
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

    /// A structured mask: width per (row, block of `group` input channels, tap), drawn 70/20/10
    /// over `levels`; its source (`taps` entries per channel) and the expanded rows.
    func groupedSource(rows: Int, channels: Int, taps: Int, group: Int, levels: Int, seed: UInt64,
                       perRow: Bool = true) -> (CompactPlanes.Source, [Float]) {
        var rng = SeededGenerator(seed: seed)
        let columns = channels * taps, n = rows * columns
        let blocks = (0..<(rows * ((channels + group - 1) / group) * taps)).map { _ -> UInt8 in
            let u = rng.nextUnitDouble()
            return UInt8(min(levels, u < 0.7 ? 1 : u < 0.9 ? 2 : 3))
        }
        var mask = [UInt8](repeating: 0, count: n)
        for o in 0..<rows { for c in 0..<channels { for t in 0..<taps {
            mask[o * columns + c * taps + t] = blocks[(o * ((channels + group - 1) / group) + c / group) * taps + t]
        } } }
        var signs = (0..<levels).map { _ in (0..<((n + 63) / 64)).map { _ in rng.next() } }
        for j in 0..<n { for k in Int(mask[j])..<levels { signs[k][j >> 6] &= ~(UInt64(1) << UInt64(j & 63)) } }
        let scales = (0..<levels).map { k in (0..<rows).map { _ in Float(rng.nextUnitDouble() + 0.1) / Float(k + 1) } }
        var values = [Float](repeating: 0, count: n)
        for j in 0..<n {
            for k in 0..<Int(mask[j]) {
                let mu = scales[k][perRow ? j / columns : 0]
                let term = (signs[k][j >> 6] >> UInt64(j & 63)) & 1 == 1 ? mu : -mu
                values[j] = k == 0 ? term : values[j] + term
            }
        }
        var s = CompactPlanes.Source(rows: rows, columns: columns, rowStride: columns, columnStride: 1, mask: mask, signBits: signs,
                                     scales: scales, perRowScales: perRow)
        s.taps = taps
        return (s, values)
    }

    /// The grouped layout (one activity bit per mask block): group:4, 16, 64 and channel
    /// (one group of all channels per tap), partial last groups, 1, 9 and 25 taps, 1-3 levels.
    /// Decoding is bit for bit the expanded values on every instruction set and from any first
    /// row; the fused GEMV is within the dot product's tolerance; the activity bits are one per
    /// block active one level down (none for 1 level).
    func testGroupedLayoutIsExact() {
        var seed: UInt64 = 7000
        // (2 groups of 25 taps: an entry word's blocks span more than 64, the gather's fallback.)
        for taps in [1, 9, 25] { for (group, channels) in [(4, 4 * 19 + 3), (16, 16 * 3 + 5), (64, 64 * 2 + 7), (40, 40), (4, 64), (2, 9)] {
            for levels in [1, 2, 3] { for rows in [1, 17, 33] {
                seed += 1
                let (s, values) = groupedSource(rows: rows, channels: channels, taps: taps, group: group, levels: levels, seed: seed,
                                                perRow: seed % 3 != 0)
                let planes = CompactPlanes(s)
                let columns = channels * taps
                let what = "group=\(group) channels=\(channels) taps=\(taps) levels=\(levels) rows=\(rows) seed=\(seed)"
                if levels > 1 {
                    XCTAssertGreaterThan(planes.groupChannels, 1, what)
                    XCTAssertEqual(planes.groupChannels % group, 0, what)
                }
                for range in [0..<rows, (rows / 3)..<rows, (rows / 2)..<(rows / 2 + 1)] where !range.isEmpty {
                    for (label, isa) in BitPlaneMatrix.availableISAs.map({ (BitPlaneMatrix.isaName($0), Optional($0)) }) + [("reference", nil)] {
                        var out = [Float](repeating: .nan, count: range.count * columns)
                        out.withUnsafeMutableBufferPointer { o in
                            if let isa { planes.decode(rows: range, into: o.baseAddress!, ldo: columns, isa: isa) }
                            else { planes.decode(.reference, rows: range, into: o.baseAddress!, ldo: columns) }
                        }
                        if let bad = (0..<out.count).first(where: { out[$0].bitPattern != values[range.lowerBound * columns + $0].bitPattern }) {
                            XCTFail("\(what) \(label) rows \(range): entry \(bad) got \(out[bad]) expected \(values[range.lowerBound * columns + bad])")
                            return
                        }
                    }
                    let x = randomActivations(count: columns, seed: seed + 1)
                    for isa in BitPlaneMatrix.availableISAs {
                        assertGemv(planes, values, columns: columns, rows: range, x: x, isa: isa, "\(what) gemv \(BitPlaneMatrix.isaName(isa))")
                    }
                }
                // Activity bits: per row and level k between its widths, one per block active at k - 1.
                let blocksPerRow = (channels + planes.groupChannels - 1) / planes.groupChannels * taps
                var actBits = 0
                for o in 0..<rows {
                    let widths = (0..<columns).map { Int(s.mask[o * columns + $0]) }
                    let lo = widths.min()!, hi = widths.max()!
                    for k in max(1, lo)..<max(lo, hi) {
                        actBits += (0..<blocksPerRow).filter { b in widths[(b / taps) * planes.groupChannels * taps + b % taps] >= k }.count
                    }
                }
                let signBits = s.mask.reduce(0) { $0 + Int($1) } - rows * columns
                let expected = (rows * columns + 63) / 64 + 1 + rows + (actBits + 63) / 64 + 1 + (signBits + 63) / 64 + 1
                let starts = 2 * max(1, (levels - 1) * ((rows + 15) / 16)), scaleCount = levels * (s.perRowScales ? rows : 1)
                XCTAssertEqual(planes.residentBytes, 8 * ((rows * columns + 63) / 64 + 1) + rows + 8 * ((actBits + 63) / 64 + 1)
                               + 8 * ((signBits + 63) / 64 + 1) + 8 * starts + 4 * scaleCount, "\(what): resident bytes (\(expected))")
            } }
        } }
    }

    /// Conv and Gemm layers on the grouped layout, 1-3 threads: a Conv equals `Conv.forward` on
    /// the expanded weights bit for bit, a product the float GEMM within its tolerance.
    func testGroupedLayoutLayers() {
        let scratch = KernelScratch(), tiles = BitPlaneScratch()
        // (inC, outC, kernel, group): 3x3 and 1x1, partial last groups.
        for (i, (inC, outC, kernel, group)) in [(37, 20, 3, 4), (70, 24, 3, 16), (150, 18, 1, 64), (96, 40, 1, 96), (21, 9, 3, 4)].enumerated() {
            let g = ConvGeometry(batch: 1, inChannels: inC, outChannels: outC, groups: 1, input: [9, 8], kernel: [kernel, kernel],
                                 strides: [1, 1], padBegin: [kernel / 2, kernel / 2], padEnd: [kernel / 2, kernel / 2])
            let (s, w) = groupedSource(rows: outC, channels: inC, taps: kernel * kernel, group: group, levels: 3, seed: UInt64(7500 + i))
            let planes = CompactPlanes(s)
            XCTAssertGreaterThan(planes.groupChannels, 1)
            let x = randomActivations(count: inC * g.inputSize, seed: UInt64(7600 + i))
            var want = [Float](repeating: 0, count: outC * g.outputSize)
            Conv.forward(.fast, g, input: x, weights: w, bias: nil, output: &want, activation: .relu, threads: 1, scratch: scratch)
            for threads in 1...3 {
                var got = [Float](repeating: .nan, count: want.count)
                planes.convForward(.fast, g, input: x, bias: nil, output: &got, activation: .relu, threads: threads, scratch: scratch, tiles: tiles)
                let bad = (0..<want.count).first { got[$0].bitPattern != want[$0].bitPattern }
                XCTAssertNil(bad, "case \(i) threads \(threads): output \(bad ?? 0)")
            }
            let k = inC * kernel * kernel
            for m in [1, 3, 6] {
                let a = randomActivations(count: m * k, seed: UInt64(7700 + i))
                var ref = [Float](repeating: 0, count: m * outC)
                Gemm.sgemm(.reference, transA: false, transB: true, m: m, n: outC, k: k, alpha: 1, a: a, lda: k, b: w, ldb: k, beta: 0, c: &ref, ldc: outC)
                for threads in 1...3 {
                    var y = [Float](repeating: .nan, count: m * outC)
                    planes.multiply(a: a, m: m, lda: k, y: &y, ldc: outC, threads: threads, tiles: tiles)
                    for r in 0..<m { for j in 0..<outC {
                        var bound: Float = 0
                        for p in 0..<k { bound += abs(a[r * k + p] * w[j * k + p]) }
                        XCTAssertLessThanOrEqual(abs(y[r * outC + j] - ref[r * outC + j]), BitPlaneTolerance.relative * bound + 1e-30,
                                                 "case \(i) m=\(m) threads=\(threads): y[\(r), \(j)]")
                    } }
                }
            }
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
