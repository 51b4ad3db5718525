import MBCore
import MBKernels
import XCTest

/// Named tolerances: fast kernels accumulate in float in a different order than the Double
/// reference, so they agree to a few ulps of the sum's magnitude.
enum KernelTolerance {
    /// |fast - reference| ≤ relative · (Σ|terms| of that output element), bounded here by the
    /// reference's largest magnitude times the reduction length.
    static let relativePerTerm: Float = 2e-6
}

func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    return (0..<n).map { _ in Float(rng.nextUnitDouble() * 2 - 1) }
}

/// Asserts `got` ≈ `expected` within `terms` accumulated terms; the message names the case.
func assertClose(_ got: [Float], _ expected: [Float], terms: Int, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, expected.count, what, file: file, line: line)
    let scale = max(expected.map(abs).max() ?? 0, 1)
    let tol = KernelTolerance.relativePerTerm * Float(max(terms, 1)) * scale
    var worst: Float = 0, at = 0
    for i in 0..<min(got.count, expected.count) where !(abs(got[i] - expected[i]) <= worst) { worst = abs(got[i] - expected[i]); at = i }
    XCTAssertLessThanOrEqual(worst, tol, "\(what): worst |Δ| \(worst) at \(at) (got \(got[at]), expected \(expected[at])), tolerance \(tol)", file: file, line: line)
}

final class GemmTests: XCTestCase {
    func testBLASMatchesReferenceOverShapesAndTransposes() {
        var seed: UInt64 = 1
        for (m, n, k) in [(1, 1, 1), (1, 7, 3), (5, 1, 9), (17, 33, 65), (64, 64, 64), (3, 129, 31), (2, 2, 0)] {
            for transA in [false, true] { for transB in [false, true] { for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (2, -1)] {
                seed += 1
                let a = randomFloats(m * k, seed: seed), b = randomFloats(k * n, seed: seed + 1000), c0 = randomFloats(m * n, seed: seed + 2000)
                var fast = c0, ref = c0
                let lda = transA ? m : k, ldb = transB ? k : n
                Gemm.sgemm(.fast, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: max(lda, 1), b: b, ldb: max(ldb, 1), beta: beta, c: &fast, ldc: n)
                Gemm.sgemm(.reference, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: max(lda, 1), b: b, ldb: max(ldb, 1), beta: beta, c: &ref, ldc: n)
                assertClose(fast, ref, terms: k + 1, "gemm m=\(m) n=\(n) k=\(k) tA=\(transA) tB=\(transB) alpha=\(alpha) beta=\(beta) seed=\(seed)")
            } } }
        }
    }
}

final class ParallelGemmTests: XCTestCase {
    /// Column-split GEMM (2 and 3 threads, chunk edges not multiples of 16) equals the reference.
    func testColumnSplitMatchesReference() {
        for (m, n, k) in [(16, 300, 40), (1, 1000, 130), (5, 129, 200), (64, 3025, 27)] {
            for transB in [false, true] { for threads in [2, 3] {
                let a = randomFloats(m * k, seed: UInt64(m * 7 + k)), b = randomFloats(k * n, seed: UInt64(n * 3 + k))
                var fast = [Float](repeating: .nan, count: m * n), ref = fast
                Gemm.parallel(.fast, threads: threads, transA: false, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: k,
                              b: b, ldb: transB ? k : n, beta: 0, c: &fast, ldc: n)
                Gemm.sgemm(.reference, transA: false, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: k,
                           b: b, ldb: transB ? k : n, beta: 0, c: &ref, ldc: n)
                assertClose(fast, ref, terms: k, "parallel gemm m=\(m) n=\(n) k=\(k) transB=\(transB) threads=\(threads)")
            } }
        }
    }
}

final class ConvTests: XCTestCase {
    /// Geometries covering 1-D/2-D/3-D, groups, depthwise (with multiplier), pointwise,
    /// strides, dilations, asymmetric pads and kernels larger than the input.
    static let geometries: [ConvGeometry] = [
        ConvGeometry(batch: 1, inChannels: 3, outChannels: 4, input: [9, 11], kernel: [3, 3]),
        ConvGeometry(batch: 2, inChannels: 4, outChannels: 6, groups: 2, input: [8, 7], kernel: [3, 2], strides: [2, 1], dilations: [1, 2], padBegin: [1, 0], padEnd: [2, 1]),
        ConvGeometry(batch: 1, inChannels: 8, outChannels: 8, groups: 8, input: [10, 10], kernel: [3, 3], strides: [1, 1], padBegin: [1, 1], padEnd: [1, 1]),
        ConvGeometry(batch: 2, inChannels: 6, outChannels: 12, groups: 6, input: [9, 13], kernel: [5, 3], strides: [2, 3], dilations: [2, 1], padBegin: [2, 1], padEnd: [0, 2]),
        ConvGeometry(batch: 1, inChannels: 16, outChannels: 5, input: [6, 6], kernel: [1, 1]),
        ConvGeometry(batch: 1, inChannels: 3, outChannels: 2, input: [20], kernel: [5], strides: [3], dilations: [2], padBegin: [4], padEnd: [1]),
        ConvGeometry(batch: 1, inChannels: 4, outChannels: 4, groups: 4, input: [17], kernel: [3], padBegin: [1], padEnd: [1]),
        ConvGeometry(batch: 1, inChannels: 2, outChannels: 3, input: [5, 6, 7], kernel: [2, 3, 2], strides: [1, 2, 1], dilations: [2, 1, 1], padBegin: [1, 0, 1], padEnd: [0, 1, 1]),
        ConvGeometry(batch: 1, inChannels: 4, outChannels: 4, groups: 2, input: [4, 5, 3], kernel: [3, 3, 3], padBegin: [1, 1, 1], padEnd: [1, 1, 1]),
        ConvGeometry(batch: 1, inChannels: 1, outChannels: 1, input: [2, 2], kernel: [3, 3], padBegin: [1, 1], padEnd: [1, 1]),
        ConvGeometry(batch: 1, inChannels: 3, outChannels: 8, input: [15, 15], kernel: [7, 7], strides: [2, 2], padBegin: [3, 3], padEnd: [3, 3]),
    ]

    func testFastMatchesReference() {
        for (index, g) in Self.geometries.enumerated() {
            XCTAssertNil(g.problem, "\(g)")
            let x = randomFloats(g.batch * g.inChannels * g.inputSize, seed: UInt64(100 + index))
            let w = randomFloats(g.outChannels * g.inPerGroup * g.kernelSize, seed: UInt64(200 + index))
            let b = randomFloats(g.outChannels, seed: UInt64(300 + index))
            let count = g.batch * g.outChannels * g.outputSize
            for bias in [true, false] { for activation in [Conv.Activation.none, .relu, .sigmoid, .hardSwish, .clip(min: -0.5, max: 0.5), .leakyRelu(alpha: 0.1)] {
                for threads in [1, 2] {
                    var fast = [Float](repeating: .nan, count: count), ref = [Float](repeating: .nan, count: count)
                    b.withUnsafeBufferPointer { bp in
                        Conv.forward(.fast, g, input: x, weights: w, bias: bias ? bp.baseAddress : nil, output: &fast, activation: activation, threads: threads)
                        Conv.forward(.reference, g, input: x, weights: w, bias: bias ? bp.baseAddress : nil, output: &ref, activation: activation)
                    }
                    assertClose(fast, ref, terms: g.inPerGroup * g.kernelSize, "conv #\(index) \(g) bias=\(bias) \(activation) threads=\(threads)")
                    if activation == .relu { XCTAssertTrue(fast.allSatisfy { $0 >= 0 }, "conv #\(index) relu") }
                }
            } }
        }
    }

    /// Depthwise layers (phase-split kernel) against the reference: 3×3 and 5×5 at strides 1
    /// and 2, channel multiplier 2, dilation, asymmetric pads, rows longer than the 64-output
    /// register block with tails, 1-D, 3-D (direct kernel), batch 2, threads 1/2/3.
    func testDepthwiseMatchesReference() {
        func dw(_ n: Int, _ c: Int, mult: Int = 1, _ input: [Int], k: [Int], s: [Int], dil: [Int]? = nil, pb: [Int], pe: [Int]) -> ConvGeometry {
            ConvGeometry(batch: n, inChannels: c, outChannels: c * mult, groups: c, input: input, kernel: k, strides: s, dilations: dil,
                         padBegin: pb, padEnd: pe)
        }
        let cases: [ConvGeometry] = [
            dw(1, 5, [21, 70], k: [3, 3], s: [1, 1], pb: [1, 1], pe: [1, 1]),
            dw(2, 3, [33, 131], k: [3, 3], s: [2, 2], pb: [1, 1], pe: [1, 1]),
            dw(1, 4, [28, 28], k: [5, 5], s: [1, 1], pb: [2, 2], pe: [2, 2]),
            dw(1, 6, [29, 57], k: [5, 5], s: [2, 2], pb: [2, 2], pe: [2, 2]),
            dw(1, 3, mult: 2, [15, 16], k: [3, 3], s: [1, 1], pb: [1, 1], pe: [1, 1]),
            dw(1, 2, [17, 19], k: [3, 3], s: [1, 2], dil: [2, 2], pb: [2, 0], pe: [1, 3]),
            dw(2, 4, [67], k: [3], s: [2], pb: [1], pe: [0]),
            dw(1, 3, [1, 1], k: [3, 3], s: [1, 1], pb: [1, 1], pe: [1, 1]),
            dw(1, 2, mult: 3, [4, 5, 6], k: [3, 3, 3], s: [1, 1, 2], pb: [1, 1, 1], pe: [1, 1, 1]),
        ]
        for (index, g) in cases.enumerated() {
            XCTAssertNil(g.problem, "\(g)")
            let x = randomFloats(g.batch * g.inChannels * g.inputSize, seed: UInt64(700 + index))
            let w = randomFloats(g.outChannels * g.kernelSize, seed: UInt64(800 + index))
            let b = randomFloats(g.outChannels, seed: UInt64(900 + index))
            let count = g.batch * g.outChannels * g.outputSize
            for activation in [Conv.Activation.none, .relu, .silu] {
                var ref = [Float](repeating: .nan, count: count)
                Conv.forward(.reference, g, input: x, weights: w, bias: b, output: &ref, activation: activation)
                for threads in [1, 2, 3] {
                    var fast = [Float](repeating: .nan, count: count)
                    Conv.forward(.fast, g, input: x, weights: w, bias: b, output: &fast, activation: activation, threads: threads)
                    assertClose(fast, ref, terms: g.kernelSize, "depthwise #\(index) \(g) \(activation) threads=\(threads)")
                }
            }
        }
    }

    func testOutputSizeAndProblems() {
        let g = ConvGeometry(batch: 1, inChannels: 3, outChannels: 64, input: [224, 224], kernel: [11, 11], strides: [4, 4], padBegin: [2, 2], padEnd: [2, 2])
        XCTAssertEqual(g.output, [55, 55])
        XCTAssertEqual(ConvGeometry(batch: 1, inChannels: 3, outChannels: 4, groups: 2, input: [4], kernel: [1]).problem,
                       "group 2 does not divide 3 input and 4 output channels")
        XCTAssertNotNil(ConvGeometry(batch: 1, inChannels: 1, outChannels: 1, input: [2], kernel: [3]).problem)
    }
}

final class ConvTransposeTests: XCTestCase {
    /// Both implementations (phases through RowGemm, GEMM + col2im) against the reference:
    /// decoder shapes (kernel 2/3/4 at stride 2, with output padding and cropped outputs),
    /// strides whose phases get no tap (kernel 2, stride 3), dilations, groups, batch 2, 1-D,
    /// 3-D (columns only), more than 6 output channels not a multiple of 6, threads 1/2/3.
    func testFastMatchesReference() {
        func ct(_ n: Int, _ c: Int, _ o: Int, groups: Int = 1, _ input: [Int], k: [Int], s: [Int], dil: [Int]? = nil,
                pb: [Int], pe: [Int], outputPadding: [Int]? = nil) -> ConvTransposeGeometry {
            let dil: [Int] = dil ?? k.map { _ in 1 }
            let op: [Int] = outputPadding ?? k.map { _ in 0 }
            var out: [Int] = []
            for i in 0..<k.count {
                let natural: Int = s[i] * (input[i] - 1) + op[i] + (k[i] - 1) * dil[i] + 1
                out.append(natural - pb[i] - pe[i])
            }
            return ConvTransposeGeometry(batch: n, inChannels: c, outChannels: o, groups: groups, input: input, kernel: k, strides: s,
                                         dilations: dil, padBegin: pb, output: out)
        }
        let cases: [ConvTransposeGeometry] = [
            ConvTransposeGeometry(batch: 1, inChannels: 3, outChannels: 2, input: [4, 5], kernel: [3, 3], strides: [1, 1], dilations: [1, 1], padBegin: [0, 0], output: [6, 7]),
            ConvTransposeGeometry(batch: 2, inChannels: 4, outChannels: 6, groups: 2, input: [3, 4], kernel: [3, 2], strides: [2, 3], dilations: [1, 2], padBegin: [1, 0], output: [6, 11]),
            ConvTransposeGeometry(batch: 1, inChannels: 2, outChannels: 2, input: [7], kernel: [4], strides: [2], dilations: [1], padBegin: [1], output: [14]),
            ConvTransposeGeometry(batch: 1, inChannels: 2, outChannels: 3, input: [2, 3, 2], kernel: [2, 2, 3], strides: [2, 1, 2], dilations: [1, 1, 1], padBegin: [0, 1, 1], output: [4, 3, 4]),
            ct(1, 9, 13, [7, 9], k: [2, 2], s: [2, 2], pb: [0, 0], pe: [0, 0]),
            ct(2, 5, 7, [6, 5], k: [3, 3], s: [2, 2], pb: [1, 1], pe: [1, 1], outputPadding: [1, 1]),
            ct(1, 16, 17, [9, 11], k: [4, 4], s: [2, 2], pb: [1, 1], pe: [1, 1]),
            ct(1, 4, 5, [5, 6], k: [4, 4], s: [2, 2], pb: [3, 0], pe: [0, 2]),
            ct(1, 3, 4, [4, 5], k: [2, 2], s: [3, 3], pb: [0, 0], pe: [0, 0]),
            ct(1, 6, 8, groups: 2, [5, 4], k: [3, 3], s: [2, 2], dil: [2, 1], pb: [1, 2], pe: [2, 1]),
            ct(2, 3, 5, [13], k: [5], s: [2], pb: [2], pe: [1], outputPadding: [1]),
            ct(1, 70, 9, [3, 20], k: [1, 3], s: [1, 2], pb: [0, 1], pe: [0, 1]),
        ]
        for (index, g) in cases.enumerated() {
            XCTAssertNil(g.problem, "\(g)")
            let d = g.dims3
            let x = randomFloats(g.batch * g.inChannels * d.inputSize, seed: UInt64(400 + index))
            let w = randomFloats(g.inChannels * g.outPerGroup * d.kernelSize, seed: UInt64(500 + index))
            let b = randomFloats(g.outChannels, seed: UInt64(600 + index))
            let count = g.batch * g.outChannels * d.outputSize
            var ref = [Float](repeating: .nan, count: count)
            ConvTranspose.forward(.reference, g, input: x, weights: w, bias: b, output: &ref)
            for implementation in [ConvTranspose.Implementation.automatic, .columns] { for threads in [1, 2, 3] {
                var fast = [Float](repeating: .nan, count: count)
                ConvTranspose.forward(.fast, g, input: x, weights: w, bias: b, output: &fast, threads: threads, implementation: implementation)
                assertClose(fast, ref, terms: g.inPerGroup * d.kernelSize, "convtranspose #\(index) \(g) \(implementation) threads=\(threads)")
            } }
            // The phase split itself, also where the automatic choice prefers columns (kernel = stride).
            if RowGemm.isAvailable && d.kernel.0 == 1 && d.input.0 == 1 {
                var fast = [Float](repeating: .nan, count: count)
                ConvTranspose.forward(.fast, g, input: x, weights: w, bias: b, output: &fast, threads: 2, implementation: .phases)
                assertClose(fast, ref, terms: g.inPerGroup * d.kernelSize, "convtranspose #\(index) \(g) phases")
            }
        }
    }
}

final class PoolTests: XCTestCase {
    func testFastMatchesReference() {
        let cases: [PoolGeometry] = [
            PoolGeometry(planes: 3, input: [8, 9], kernel: [2, 2], strides: [2, 2], dilations: [1, 1], padBegin: [0, 0], padEnd: [0, 0], output: [4, 4]),
            PoolGeometry(planes: 2, input: [7, 7], kernel: [3, 3], strides: [2, 2], dilations: [1, 1], padBegin: [1, 1], padEnd: [1, 1], output: [4, 4]),
            // ceil_mode: the last window hangs past the padded input.
            PoolGeometry(planes: 2, input: [6, 6], kernel: [3, 3], strides: [2, 2], dilations: [1, 1], padBegin: [0, 0], padEnd: [0, 0], output: [3, 3]),
            PoolGeometry(planes: 1, input: [9, 10], kernel: [2, 3], strides: [1, 2], dilations: [2, 2], padBegin: [1, 2], padEnd: [0, 1], output: [8, 4]),
            PoolGeometry(planes: 4, input: [11], kernel: [4], strides: [3], dilations: [1], padBegin: [2], padEnd: [1], output: [4]),
            PoolGeometry(planes: 2, input: [4, 5, 6], kernel: [2, 2, 3], strides: [2, 1, 2], dilations: [1, 1, 1], padBegin: [1, 0, 1], padEnd: [1, 0, 1], output: [3, 4, 3]),
            // One window over each whole plane (the global path), with SIMD tails.
            PoolGeometry(planes: 5, input: [7, 7], kernel: [7, 7], strides: [1, 1], dilations: [1, 1], padBegin: [0, 0], padEnd: [0, 0], output: [1, 1]),
            PoolGeometry(planes: 600, input: [13, 3], kernel: [13, 3], strides: [2, 2], dilations: [1, 1], padBegin: [0, 0], padEnd: [0, 0], output: [1, 1]),
        ]
        for (index, g) in cases.enumerated() {
            let d = g.dims3
            let x = randomFloats(g.planes * d.inputSize, seed: UInt64(700 + index))
            for kind in [PoolKind.max, .average(countIncludePad: false), .average(countIncludePad: true)] {
                for threads in [1, 2] {
                    var fast = [Float](repeating: .nan, count: g.planes * d.outputSize), ref = fast
                    Pool.forward(.fast, kind, g, input: x, output: &fast, threads: threads)
                    Pool.forward(.reference, kind, g, input: x, output: &ref)
                    assertClose(fast, ref, terms: d.kernelSize, "pool #\(index) \(g) \(kind) threads=\(threads)")
                }
            }
        }
    }

    func testAverageDivisorsAtBorders() {
        // 1-D, input [1, 2, 3], kernel 2, pad 1 each side: windows [pad,1] [2,3] [3? no: 3,pad]
        let g = PoolGeometry(planes: 1, input: [3], kernel: [2], strides: [2], dilations: [1], padBegin: [1], padEnd: [1], output: [2])
        var out = [Float](repeating: 0, count: 2)
        Pool.forward(.fast, .average(countIncludePad: false), g, input: [1, 2, 3], output: &out)
        XCTAssertEqual(out, [1, 2.5])
        Pool.forward(.fast, .average(countIncludePad: true), g, input: [1, 2, 3], output: &out)
        XCTAssertEqual(out, [0.5, 2.5])
        Pool.forward(.fast, .max, g, input: [1, 2, 3], output: &out)
        XCTAssertEqual(out, [1, 3])
    }
}
