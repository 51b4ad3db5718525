import MBCore
@testable import MBKernels
import XCTest

/// The AVX-512 row-pointer GEMM and the convolution paths built on it, against their plain
/// references (`RowGemm+Reference.swift`, `Conv+Reference.swift`). On a CPU without AVX-512 the
/// fast variant falls back to the reference, and these tests still check the plumbing.
final class RowGemmTests: XCTestCase {
    /// Shapes around the register block (6 rows × 64 columns, 16-lane masks), the cache blocks
    /// (reduction blocks of at most 128, column blocks of 1024), B packing (24 rows and more)
    /// and the thread split.
    static let shapes: [(m: Int, n: Int, k: Int)] = [
        (1, 1, 1), (1, 17, 3), (5, 15, 9), (6, 16, 16), (7, 63, 27), (13, 64, 128), (12, 65, 129),
        (16, 169, 300), (64, 1100, 20), (3, 2049, 5), (31, 33, 0), (100, 40, 257), (24, 70, 129), (30, 2100, 300),
        (15, 100, 40), (31, 97, 131), (32, 2017, 33),
    ]

    func testFastMatchesReference() {
        for (index, s) in Self.shapes.enumerated() {
            let lda = s.k + 3, ldb = s.n + 5, ldc = s.n + 2
            let a = randomFloats(s.m * lda, seed: UInt64(900 + index))
            let b = randomFloats(max(s.k, 1) * ldb, seed: UInt64(1000 + index))
            let bias = randomFloats(s.m, seed: UInt64(1100 + index))
            // Rows in reverse order, to show the kernel follows the pointers and not a stride.
            b.withUnsafeBufferPointer { bp in
                let rows = (0..<max(s.k, 1)).map { p in UnsafePointer<Float>?(bp.baseAddress! + (max(s.k, 1) - 1 - p) * ldb) }
                for withBias in [false, true] { for activation in [Conv.Activation.none, .relu, .silu, .leakyRelu(alpha: 0.1), .hardSwish] { for threads in [1, 2, 3] {
                    var fast = [Float](repeating: .nan, count: s.m * ldc), ref = fast
                    bias.withUnsafeBufferPointer { biasp in
                        RowGemm.forward(.fast, m: s.m, n: s.n, k: s.k, a: a, lda: lda, rows: rows, bias: withBias ? biasp.baseAddress : nil,
                                        activation: activation, c: &fast, ldc: ldc, threads: threads)
                        RowGemm.forward(.reference, m: s.m, n: s.n, k: s.k, a: a, lda: lda, rows: rows, bias: withBias ? biasp.baseAddress : nil,
                                        activation: activation, c: &ref, ldc: ldc)
                    }
                    let what = "rowgemm m=\(s.m) n=\(s.n) k=\(s.k) bias=\(withBias) \(activation) threads=\(threads)"
                    let inside = { (c: [Float]) in (0..<s.m).flatMap { i in c[(i * ldc)..<(i * ldc + s.n)] } }
                    assertClose(inside(fast), inside(ref), terms: s.k + 1, what)
                    // Columns past n in each row of C stay untouched (NaN).
                    for i in 0..<s.m { for j in s.n..<ldc where !fast[i * ldc + j].isNaN { XCTFail("\(what): wrote C[\(i), \(j)] past n"); return } }
                } } }
            }
        }
    }

    /// The pitched product (`fk_gemm_rows_pitched`, what the shifted path runs on AVX-512)
    /// against its reference: widths 1 to 70 (segments per 64-column strip from 1 to 64, and
    /// rows longer than a strip), pitches 1 to 9 past the width, row blocks under and over the
    /// packing bound, reductions over one 128-row block, outputs over one 1024-column block,
    /// thread splits (strips starting mid-row). Rows are read with 15 floats of slack after the
    /// last element used, as the contract asks, and the slack is NaN: nothing past it reaches C.
    func testPitchedMatchesReference() throws {
        try XCTSkipUnless(RowGemm.pitchedAvailable, "the pitched product is AVX-512 only")
        let shapes: [(m: Int, rowsOut: Int, width: Int, pitch: Int, k: Int)] = [
            (1, 3, 1, 2, 1), (5, 7, 7, 9, 9), (6, 13, 13, 15, 27), (13, 4, 56, 58, 16), (24, 3, 70, 72, 129),
            (30, 40, 30, 31, 20), (7, 9, 17, 26, 300), (32, 20, 64, 66, 18), (40, 150, 7, 9, 8),
        ]
        for (index, s) in shapes.enumerated() {
            let n = s.rowsOut * s.width, lda = s.k + 1, ldc = n + 3
            let span = (s.rowsOut - 1) * s.pitch + s.width
            let stride = span + 15
            var b = randomFloats(s.k * stride, seed: UInt64(3000 + index))
            // Between a row's last element used and the next row's start: NaN (never used).
            for p in 0..<s.k { for j in 0..<s.rowsOut { for t in s.width..<s.pitch where j * s.pitch + t < span { b[p * stride + j * s.pitch + t] = .nan } } }
            let a = randomFloats(s.m * lda, seed: UInt64(3100 + index))
            let bias = randomFloats(s.m, seed: UInt64(3200 + index))
            b.withUnsafeBufferPointer { bp in
                let rows = (0..<s.k).map { p in UnsafePointer<Float>?(bp.baseAddress! + (s.k - 1 - p) * stride) }
                for threads in [1, 2, 3] {
                    var fast = [Float](repeating: .nan, count: s.m * ldc), ref = fast
                    RowGemm.forward(m: s.m, n: n, k: s.k, a: a, lda: lda, rows: rows, width: s.width, pitch: s.pitch, bias: bias,
                                    activation: .relu, c: &fast, ldc: ldc, threads: threads)
                    RowGemm.pitchedReference(m: s.m, n: n, k: s.k, a: a, lda: lda, rows: rows, width: s.width, pitch: s.pitch, bias: bias,
                                             activation: .relu, c: &ref, ldc: ldc)
                    let what = "pitched m=\(s.m) rows=\(s.rowsOut) width=\(s.width) pitch=\(s.pitch) k=\(s.k) threads=\(threads)"
                    let inside = { (c: [Float]) in (0..<s.m).flatMap { i in c[(i * ldc)..<(i * ldc + n)] } }
                    assertClose(inside(fast), inside(ref), terms: s.k + 1, what)
                    for i in 0..<s.m { for j in n..<ldc where !fast[i * ldc + j].isNaN { XCTFail("\(what): wrote C[\(i), \(j)] past n"); return } }
                }
            }
        }
    }

    /// Every way `RowGemm.split` cuts a product gives exactly the one-thread result (each element
    /// is summed in the same order whoever computes it): bands of columns at multiples of 16,
    /// bands of rows when there are too few columns or the weights dominate, one part when the
    /// product is too small for either.
    func testThreadSplitsEqualOneThread() {
        let shapes: [(m: Int, n: Int, k: Int)] = [
            (64, 1100, 20), (48, 130, 700), (7, 300, 40), (200, 90, 240), (700, 150, 50), (96, 56, 216),
        ]
        for (index, s) in shapes.enumerated() {
            let a = randomFloats(s.m * s.k, seed: UInt64(1700 + index))
            let b = randomFloats(s.k * s.n, seed: UInt64(1800 + index))
            b.withUnsafeBufferPointer { bp in
                let rows = (0..<s.k).map { p in UnsafePointer<Float>?(bp.baseAddress! + p * s.n) }
                var one = [Float](repeating: .nan, count: s.m * s.n)
                RowGemm.forward(.fast, m: s.m, n: s.n, k: s.k, a: a, lda: s.k, rows: rows, bias: nil, activation: .relu, c: &one, ldc: s.n, threads: 1)
                for threads in [2, 3] {
                    var split = [Float](repeating: .nan, count: s.m * s.n)
                    RowGemm.forward(.fast, m: s.m, n: s.n, k: s.k, a: a, lda: s.k, rows: rows, bias: nil, activation: .relu, c: &split, ldc: s.n,
                                    threads: threads)
                    XCTAssertEqual(split, one, "rowgemm m=\(s.m) n=\(s.n) k=\(s.k) threads=\(threads) differs from one thread")
                }
            }
        }
    }

    /// Every path a convolution can take to RowGemm, forced, on geometries it accepts:
    /// odd sizes, more than 6 output channels not a multiple of 6, groups, batch 2, dilations,
    /// asymmetric pads, 1-D, 1×k and k×1 kernels, reductions over 128 and outputs over 1024.
    func testConvPathsMatchReference() {
        let geometries: [ConvGeometry] = [
            ConvGeometry(batch: 1, inChannels: 16, outChannels: 70, input: [13, 13], kernel: [3, 3], padBegin: [1, 1], padEnd: [1, 1]),
            ConvGeometry(batch: 2, inChannels: 6, outChannels: 10, groups: 2, input: [9, 11], kernel: [3, 3], dilations: [2, 1], padBegin: [2, 0], padEnd: [1, 2]),
            ConvGeometry(batch: 1, inChannels: 5, outChannels: 7, input: [31], kernel: [5], padBegin: [2], padEnd: [3]),
            ConvGeometry(batch: 1, inChannels: 4, outChannels: 9, input: [7, 20], kernel: [1, 3], padBegin: [0, 1], padEnd: [0, 1]),
            ConvGeometry(batch: 1, inChannels: 4, outChannels: 9, input: [20, 7], kernel: [3, 1], padBegin: [1, 0], padEnd: [1, 0]),
            ConvGeometry(batch: 1, inChannels: 40, outChannels: 13, input: [40, 40], kernel: [3, 3], padBegin: [1, 1], padEnd: [1, 1]),
            ConvGeometry(batch: 2, inChannels: 33, outChannels: 17, groups: 1, input: [5, 7], kernel: [1, 1]),
            ConvGeometry(batch: 1, inChannels: 3, outChannels: 8, input: [15, 14], kernel: [3, 3], strides: [2, 2]),
            // Strided and dilated layers on the phase-split (shifted) path.
            ConvGeometry(batch: 2, inChannels: 5, outChannels: 13, input: [17, 18], kernel: [3, 3], strides: [2, 2], padBegin: [1, 1], padEnd: [1, 1]),
            ConvGeometry(batch: 1, inChannels: 3, outChannels: 16, input: [23, 21], kernel: [7, 7], strides: [2, 2], padBegin: [3, 3], padEnd: [3, 3]),
            ConvGeometry(batch: 1, inChannels: 9, outChannels: 7, input: [11, 12], kernel: [1, 1], strides: [2, 2]),
            ConvGeometry(batch: 1, inChannels: 4, outChannels: 6, input: [19, 16], kernel: [3, 3], strides: [2, 1], dilations: [2, 2], padBegin: [2, 2], padEnd: [1, 2]),
            ConvGeometry(batch: 1, inChannels: 3, outChannels: 5, input: [29], kernel: [4], strides: [3], padBegin: [1], padEnd: [2]),
            ConvGeometry(batch: 1, inChannels: 2, outChannels: 70, input: [16, 17], kernel: [5, 5], strides: [3, 3], padBegin: [2, 1], padEnd: [0, 2]),
            ConvGeometry(batch: 1, inChannels: 8, outChannels: 8, groups: 4, input: [10, 10], kernel: [3, 3], strides: [2, 2], padBegin: [1, 1], padEnd: [1, 1]),
            // Batches split by image across 2 and 3 threads (pointwise and implicit paths).
            ConvGeometry(batch: 6, inChannels: 5, outChannels: 9, input: [6, 7], kernel: [3, 3], padBegin: [1, 1], padEnd: [1, 1]),
            ConvGeometry(batch: 7, inChannels: 12, outChannels: 8, input: [3, 5], kernel: [1, 1]),
        ]
        let scratch = KernelScratch()
        for (index, g) in geometries.enumerated() {
            XCTAssertNil(g.problem, "\(g)")
            let x = randomFloats(g.batch * g.inChannels * g.inputSize, seed: UInt64(1200 + index))
            let w = randomFloats(g.outChannels * g.inPerGroup * g.kernelSize, seed: UInt64(1300 + index))
            let b = randomFloats(g.outChannels, seed: UInt64(1400 + index))
            let count = g.batch * g.outChannels * g.outputSize
            var ref = [Float](repeating: .nan, count: count)
            Conv.forward(.reference, g, input: x, weights: w, bias: b, output: &ref, activation: .relu)
            let d = g.dims3
            var paths: [Conv.RowGemmPath] = [.im2col]
            if Conv.isPointwise(g) { paths.append(.pointwise) }
            if d.strides.0 == 1 && d.kernel.0 == 1 && d.input.0 == 1 { paths += [.shifted, .implicit] }
            for path in paths { for threads in [1, 2, 3] {
                var fast = [Float](repeating: .nan, count: count)
                b.withUnsafeBufferPointer { bp in
                    Conv.rowGemm(g, input: x, weights: w, bias: bp.baseAddress, output: &fast, activation: .relu, threads: threads, scratch: scratch, path: path)
                }
                assertClose(fast, ref, terms: g.inPerGroup * g.kernelSize, "conv #\(index) \(g) path \(path) threads=\(threads)")
            } }
            // Activations other than Relu, applied per output channel after each path's GEMM.
            for path in paths {
                var sig = [Float](repeating: .nan, count: count), sigRef = sig
                Conv.forward(.reference, g, input: x, weights: w, bias: b, output: &sigRef, activation: .silu)
                b.withUnsafeBufferPointer { bp in
                    Conv.rowGemm(g, input: x, weights: w, bias: bp.baseAddress, output: &sig, activation: .silu, threads: 2, scratch: scratch, path: path)
                }
                assertClose(sig, sigRef, terms: g.inPerGroup * g.kernelSize, "conv #\(index) \(g) path \(path) silu")
            }
        }
    }

    /// The implicit-im2col path (`fk_gemm_conv2d`) and the shifted one (pitched on AVX-512)
    /// against the reference convolution, on what their packing gathers: output rows shorter and longer than a 64-column strip (segments crossing
    /// rows), widths that are not a multiple of 16, padding on every side (masked loads before
    /// and after a row), strides 1, 2 (permute) and 3 and 4 (scalar gathers), dilations,
    /// reductions split mid-channel (15·9 rows: blocks of 68), outputs over one 1024-column
    /// block, output rows entirely in the padding, 1-D, groups, threads.
    func testImplicitAndShiftedPathsMatchReference() {
        var geometries: [ConvGeometry] = []
        for (side, stride, pad) in [(7, 1, 1), (13, 1, 1), (16, 1, 0), (17, 2, 1), (35, 2, 1), (70, 1, 1), (41, 2, 0), (23, 3, 2), (19, 4, 3)] {
            geometries.append(ConvGeometry(batch: 1, inChannels: 3, outChannels: 8, input: [side, side + 3], kernel: [3, 3], strides: [stride, stride],
                                           padBegin: [pad, pad], padEnd: [pad, pad]))
        }
        geometries += [
            ConvGeometry(batch: 1, inChannels: 15, outChannels: 30, input: [40, 33], kernel: [3, 3], padBegin: [1, 1], padEnd: [1, 1]),
            ConvGeometry(batch: 2, inChannels: 15, outChannels: 26, input: [21, 30], kernel: [3, 3], strides: [2, 2], padBegin: [1, 1], padEnd: [1, 1]),
            ConvGeometry(batch: 1, inChannels: 4, outChannels: 12, input: [12, 50], kernel: [3, 5], strides: [1, 2], dilations: [2, 3], padBegin: [2, 6], padEnd: [2, 5]),
            ConvGeometry(batch: 1, inChannels: 2, outChannels: 7, input: [6, 6], kernel: [7, 7], strides: [2, 2], padBegin: [3, 3], padEnd: [3, 3]),
            ConvGeometry(batch: 1, inChannels: 2, outChannels: 5, input: [4, 9], kernel: [3, 3], padBegin: [4, 0], padEnd: [4, 0]),
            ConvGeometry(batch: 1, inChannels: 6, outChannels: 9, input: [301], kernel: [5], strides: [2], padBegin: [2], padEnd: [1]),
            ConvGeometry(batch: 1, inChannels: 8, outChannels: 12, groups: 4, input: [10, 19], kernel: [3, 3], padBegin: [1, 1], padEnd: [1, 1]),
            ConvGeometry(batch: 1, inChannels: 1, outChannels: 40, input: [90, 17], kernel: [3, 3], padBegin: [1, 1], padEnd: [1, 1]),
        ]
        let scratch = KernelScratch()
        for (index, g) in geometries.enumerated() {
            XCTAssertNil(g.problem, "\(g)")
            let x = randomFloats(g.batch * g.inChannels * g.inputSize, seed: UInt64(2200 + index))
            let w = randomFloats(g.outChannels * g.inPerGroup * g.kernelSize, seed: UInt64(2300 + index))
            let b = randomFloats(g.outChannels, seed: UInt64(2400 + index))
            let count = g.batch * g.outChannels * g.outputSize
            for activation in [Conv.Activation.none, .relu, .hardSwish] {
                var ref = [Float](repeating: .nan, count: count)
                Conv.forward(.reference, g, input: x, weights: w, bias: b, output: &ref, activation: activation)
                for threads in [1, 2] { for path in [Conv.RowGemmPath.implicit, .shifted] {
                    var fast = [Float](repeating: .nan, count: count)
                    b.withUnsafeBufferPointer { bp in
                        Conv.rowGemm(g, input: x, weights: w, bias: bp.baseAddress, output: &fast, activation: activation, threads: threads,
                                     scratch: scratch, path: path)
                    }
                    assertClose(fast, ref, terms: g.inPerGroup * g.kernelSize, "\(path) #\(index) \(g) \(activation) threads=\(threads)")
                } }
            }
        }
    }

    func testPathChoice() {
        // On AVX-512: shifted (pitched, no wasted columns) everywhere except stride 2 on 8 or
        // more channels with at most 9 taps, which reads the input in place (implicit).
        let layer = { (c: Int, o: Int, side: Int, stride: Int) in
            ConvGeometry(batch: 1, inChannels: c, outChannels: o, input: [side, side], kernel: [3, 3], strides: [stride, stride], padBegin: [1, 1], padEnd: [1, 1])
        }
        XCTAssertEqual(Conv.rowGemmPath(layer(64, 256, 13, 1), implicitAvailable: true), .shifted)
        XCTAssertEqual(Conv.rowGemmPath(layer(128, 128, 20, 1), implicitAvailable: true), .shifted)
        XCTAssertEqual(Conv.rowGemmPath(layer(16, 64, 55, 1), implicitAvailable: true), .shifted)
        XCTAssertEqual(Conv.rowGemmPath(layer(128, 128, 160, 2), implicitAvailable: true), .implicit)
        XCTAssertEqual(Conv.rowGemmPath(layer(3, 32, 224, 2), implicitAvailable: true), .shifted)
        XCTAssertEqual(Conv.rowGemmPath(layer(1, 128, 161, 1), implicitAvailable: true), .shifted)
        XCTAssertEqual(Conv.rowGemmPath(layer(3, 64, 224, 4), implicitAvailable: true), .shifted)
        let first7 = ConvGeometry(batch: 1, inChannels: 3, outChannels: 64, input: [224, 224], kernel: [7, 7], strides: [2, 2], padBegin: [3, 3], padEnd: [3, 3])
        XCTAssertEqual(Conv.rowGemmPath(first7, implicitAvailable: true), .shifted)
        let downsample = ConvGeometry(batch: 1, inChannels: 128, outChannels: 256, input: [56, 56], kernel: [1, 1], strides: [2, 2])
        XCTAssertEqual(Conv.rowGemmPath(downsample, implicitAvailable: true), .implicit)
        XCTAssertEqual(Conv.rowGemmPath(layer(64, 64, 13, 1), implicitAvailable: false), .shifted)
        XCTAssertEqual(Conv.rowGemmPath(ConvGeometry(batch: 1, inChannels: 8, outChannels: 8, input: [9, 9], kernel: [1, 1]), implicitAvailable: true), .pointwise)
        // Below: the rule between the two copies (no AVX-512).
        let sq = { (side: Int, k: Int) in
            ConvGeometry(batch: 1, inChannels: 16, outChannels: 64, input: [side, side], kernel: [k, k], padBegin: [k / 2, k / 2], padEnd: [k / 2, k / 2])
        }
        XCTAssertEqual(Conv.rowGemmPath(sq(55, 1), implicitAvailable: false), .pointwise)
        XCTAssertEqual(Conv.rowGemmPath(sq(55, 3), implicitAvailable: false), .shifted)   // 57 padded columns for 55
        XCTAssertEqual(Conv.rowGemmPath(sq(27, 3), implicitAvailable: false), .shifted)   // 29 for 27
        XCTAssertEqual(Conv.rowGemmPath(sq(13, 3), implicitAvailable: false), .shifted)   // 15 for 13, but only 64 channels
        let wide13 = ConvGeometry(batch: 1, inChannels: 64, outChannels: 256, input: [13, 13], kernel: [3, 3], padBegin: [1, 1], padEnd: [1, 1])
        XCTAssertEqual(Conv.rowGemmPath(wide13, implicitAvailable: false), .im2col)       // 256 * 2 > 30 * 13
        // Stride 2: 112 padded columns over the stride for 111 outputs.
        XCTAssertEqual(Conv.rowGemmPath(ConvGeometry(batch: 1, inChannels: 3, outChannels: 64, input: [224, 224], kernel: [3, 3], strides: [2, 2]), implicitAvailable: false), .shifted)
        // 9 reduction rows for 128 outputs at stride 1: im2col's matrix is smaller than the compaction.
        XCTAssertEqual(Conv.rowGemmPath(ConvGeometry(batch: 1, inChannels: 1, outChannels: 128, input: [900, 161], kernel: [3, 3], padBegin: [1, 1], padEnd: [1, 1]), implicitAvailable: false), .im2col)
        XCTAssertEqual(Conv.rowGemmPath(ConvGeometry(batch: 1, inChannels: 2, outChannels: 2, input: [5, 6, 7], kernel: [1, 3, 3], padBegin: [0, 1, 1], padEnd: [0, 1, 1]), implicitAvailable: false), .im2col)
    }
}

final class MaxPoolValidTests: XCTestCase {
    /// The AVX-512 max pool (no padding, windows inside the input) equals the reference exactly
    /// (a max is exact): strides 1, 2 (permute path) and 3 (lane path), rows wider than 16 and
    /// 32 lanes, odd sizes, non-square windows; split into bands of output rows on 2 and 3 threads.
    func testFastEqualsReferenceExactly() {
        let cases: [(input: [Int], kernel: [Int], strides: [Int])] = [
            ([111, 111], [3, 3], [2, 2]), ([55, 55], [3, 3], [2, 2]), ([27, 27], [3, 3], [2, 2]), ([13, 13], [3, 3], [2, 2]),
            ([9, 40], [2, 3], [1, 1]), ([10, 70], [3, 2], [3, 3]), ([5, 5], [5, 5], [1, 1]), ([7, 33], [1, 1], [2, 2]), ([4, 17], [2, 2], [2, 2]),
        ]
        for (index, c) in cases.enumerated() {
            let output = (0..<2).map { (c.input[$0] - c.kernel[$0]) / c.strides[$0] + 1 }
            let g = PoolGeometry(planes: 3, input: c.input, kernel: c.kernel, strides: c.strides, dilations: [1, 1],
                                 padBegin: [0, 0], padEnd: [0, 0], output: output)
            let x = randomFloats(g.planes * c.input.reduce(1, *), seed: UInt64(1500 + index))
            for threads in [1, 2, 3] {
                var fast = [Float](repeating: .nan, count: g.planes * output.reduce(1, *)), ref = fast
                let took = Pool.maxPool2DValid(g, input: x, output: &fast, threads: threads)
                XCTAssertEqual(took, RowGemm.isAvailable, "pool #\(index) \(g): fast path taken only with AVX-512")
                if !took { Pool.forward(.fast, .max, g, input: x, output: &fast, threads: threads) }
                Pool.forward(.reference, .max, g, input: x, output: &ref)
                XCTAssertEqual(fast, ref, "pool #\(index) \(g) threads=\(threads)")
            }
        }
    }

    /// Padded and ceil-mode max pools through the -inf-bordered copy equal the reference exactly:
    /// YOLO's SPPF 5×5 stride 1 pad 2, ResNet's 3×3 stride 2 pad 1 on odd sizes, asymmetric pads,
    /// a ceil-mode overhang with no padding.
    func testPaddedEqualsReferenceExactly() {
        let cases: [(input: [Int], kernel: [Int], strides: [Int], pb: [Int], pe: [Int], output: [Int])] = [
            ([20, 20], [5, 5], [1, 1], [2, 2], [2, 2], [20, 20]), ([113, 111], [3, 3], [2, 2], [1, 1], [1, 1], [57, 56]),
            ([9, 40], [2, 3], [1, 2], [1, 0], [0, 2], [9, 21]), ([6, 6], [3, 3], [2, 2], [0, 0], [0, 0], [3, 3]),
            ([7, 33], [3, 3], [1, 1], [1, 1], [1, 1], [7, 33]),
        ]
        for (index, c) in cases.enumerated() {
            let g = PoolGeometry(planes: 5, input: c.input, kernel: c.kernel, strides: c.strides, dilations: [1, 1],
                                 padBegin: c.pb, padEnd: c.pe, output: c.output)
            let x = randomFloats(g.planes * c.input.reduce(1, *), seed: UInt64(1600 + index))
            for threads in [1, 2, 3] {
                var fast = [Float](repeating: .nan, count: g.planes * c.output.reduce(1, *)), ref = fast
                let took = Pool.maxPool2DPadded(g, input: x, output: &fast, threads: threads)
                XCTAssertEqual(took, RowGemm.isAvailable, "pool #\(index) \(g): fast path taken only with AVX-512")
                if !took { Pool.forward(.fast, .max, g, input: x, output: &fast, threads: threads) }
                Pool.forward(.reference, .max, g, input: x, output: &ref)
                XCTAssertEqual(fast, ref, "padded pool #\(index) \(g) threads=\(threads)")
            }
        }
    }

    func testRefusesPaddedAndOverhangingWindows() {
        var out = [Float](repeating: 0, count: 16)
        let x = [Float](repeating: 1, count: 64)
        let padded = PoolGeometry(planes: 1, input: [7, 7], kernel: [3, 3], strides: [2, 2], dilations: [1, 1], padBegin: [1, 1], padEnd: [1, 1], output: [4, 4])
        let ceil = PoolGeometry(planes: 1, input: [6, 6], kernel: [3, 3], strides: [2, 2], dilations: [1, 1], padBegin: [0, 0], padEnd: [0, 0], output: [3, 3])
        let dilated = PoolGeometry(planes: 1, input: [7, 7], kernel: [2, 2], strides: [1, 1], dilations: [2, 2], padBegin: [0, 0], padEnd: [0, 0], output: [5, 5])
        for g in [padded, ceil, dilated] { XCTAssertFalse(Pool.maxPool2DValid(g, input: x, output: &out, threads: 1), "\(g)") }
    }
}
