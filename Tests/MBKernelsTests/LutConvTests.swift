import MBCore
import MBKernels
import XCTest

/// The lookup-table convolution: the AVX-512 and portable bodies bit for bit alike, both within
/// `LutConvWeights.tolerance` of a Double convolution on the expanded weights, over a sweep of
/// shapes with tails (reduction not a multiple of 4 or 64, positions not a multiple of 32,
/// padding, stride, dilation) and every mask form.
final class LutConvTests: XCTestCase {
    struct Case: CustomStringConvertible {
        var outC: Int, inC: Int, kernel: [Int], input: [Int], strides: [Int], pads: [Int], dilations: [Int], levels: Int
        var structured = false, rowUniform = false, perRow = true, batch = 1, bias = true, activation: Activation = .none
        /// Channels per mask group of a structured mask.
        var group = 64
        /// End pads (default: one more than the begin pads, so the padding is exercised).
        var padEnd: [Int]? = nil
        var description: String {
            "out=\(outC) in=\(inC) kernel=\(kernel) input=\(input) strides=\(strides) pads=\(pads) dil=\(dilations) levels=\(levels) "
                + "structured=\(structured) group=\(group) rowUniform=\(rowUniform) perRow=\(perRow) batch=\(batch) bias=\(bias) activation=\(activation)"
        }
        var geometry: ConvGeometry {
            ConvGeometry(batch: batch, inChannels: inC, outChannels: outC, input: input, kernel: kernel, strides: strides,
                         dilations: dilations, padBegin: pads, padEnd: padEnd ?? pads.map { $0 + 1 })
        }
    }

    /// A convolution's outputs (`count` floats, NaN before it runs) for `input` and `bias` (nil:
    /// none), from `forward(input, bias, output, scratch)`: the harness both table layouts share.
    static func outputs(count: Int, input: [Float], bias: [Float]?,
                        _ forward: (UnsafePointer<Float>, UnsafePointer<Float>?, UnsafeMutablePointer<Float>, BitPlaneScratch) -> Void) -> [Float] {
        var y = [Float](repeating: .nan, count: count)
        let scratch = BitPlaneScratch()
        input.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                (bias ?? []).withUnsafeBufferPointer { bp in
                    forward(xp.baseAddress!, bias == nil ? nil : bp.baseAddress!, yp.baseAddress!, scratch)
                }
            }
        }
        return y
    }

    func check(_ t: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let g = t.geometry
        XCTAssertNil(g.problem, "\(t)")
        let taps = g.kernelSize, K = t.inC * taps
        let s = randomSource(rows: t.outC, taps: taps, channels: t.inC, levels: t.levels, seed: seed, structured: t.structured, rowUniform: t.rowUniform)
        let scales = t.perRow ? s.scales : s.scales.map { [$0[0]] }
        let w = LutConvWeights(rows: t.outC, reduction: K, mask: s.mask, signBits: s.signs, scales: scales, perRowScales: t.perRow)
        // Expanded weights, [O, C, taps] flat (the source's conv layout).
        var values = [Float](repeating: 0, count: t.outC * K)
        for j in values.indices {
            let o = j / K
            var v: Float = 0
            for k in 0..<Int(s.mask[j]) {
                let mu = scales[k][t.perRow ? o : 0]
                let term = (s.signs[k][j >> 6] >> UInt64(j & 63)) & 1 == 1 ? mu : -mu
                v = k == 0 ? term : v + term
            }
            values[j] = v
        }
        let x = randomActivations(count: t.batch * t.inC * g.inputSize, seed: seed + 7)
        let bias = t.bias ? randomActivations(count: t.outC, seed: seed + 9) : nil
        let outSize = g.outputSize, count = t.batch * t.outC * outSize
        func run(_ variant: KernelVariant, threads: Int) -> [Float] {
            Self.outputs(count: count, input: x, bias: bias) { xp, bp, yp, scratch in
                w.forward(variant, g, input: xp, bias: bp, output: yp, activation: t.activation, threads: threads, scratch: scratch)
            }
        }
        let fast = run(.fast, threads: 1), reference = run(.reference, threads: 1), two = run(.fast, threads: 2)
        let d = g.dims3
        for n in 0..<t.batch { for o in 0..<t.outC { for p in 0..<outSize {
            let i = (n * t.outC + o) * outSize + p
            guard fast[i].bitPattern == reference[i].bitPattern, fast[i].bitPattern == two[i].bitPattern else {
                XCTFail("\(t) seed=\(seed): output (\(n), \(o), \(p)) fast \(fast[i]) portable \(reference[i]) two threads \(two[i])", file: file, line: line)
                return
            }
            let oh = p / d.output.2, ow = p % d.output.2
            var want = Double(bias?[o] ?? 0), bound = abs(bias?[o] ?? 0)
            for c in 0..<t.inC { for kh in 0..<d.kernel.1 { for kw in 0..<d.kernel.2 {
                let ih = oh * d.strides.1 - d.pads.1 + kh * d.dilations.1, iw = ow * d.strides.2 - d.pads.2 + kw * d.dilations.2
                guard ih >= 0, ih < d.input.1, iw >= 0, iw < d.input.2 else { continue }
                let wv = values[o * K + c * taps + kh * d.kernel.2 + kw], xv = x[(n * t.inC + c) * g.inputSize + ih * d.input.2 + iw]
                want += Double(wv) * Double(xv)
                bound += abs(wv * xv)
            } } }
            let expected = Float(t.activation == .relu ? max(0, want) : want)
            if abs(fast[i] - expected) > LutConvWeights.tolerance * bound + 1e-30 {
                XCTFail("\(t) seed=\(seed): output (\(n), \(o), \(p)) got \(fast[i]) expected \(expected) (bound \(bound))", file: file, line: line)
                return
            }
        } } }
    }

    func testPointwiseSweep() {
        var seed: UInt64 = 9100
        for inC in [1, 3, 4, 63, 64, 65, 130] { for outC in [1, 7, 16] { for positions in [1, 31, 32, 33, 100] { for levels in [1, 3] {
            seed += 1
            check(Case(outC: outC, inC: inC, kernel: [1, 1], input: [1, positions], strides: [1, 1], pads: [0, 0], dilations: [1, 1], levels: levels,
                       structured: seed % 3 == 0, rowUniform: seed % 3 == 1, perRow: seed % 4 != 0, bias: seed % 2 == 0), seed: seed)
        } } } }
    }

    /// Long reductions take several passes (more than `BP_LUTCONV_PASS_CHUNKS` chunks of 64).
    func testLongReductionPasses() {
        check(Case(outC: 9, inC: 611, kernel: [1, 1], input: [5, 7], strides: [1, 1], pads: [0, 0], dilations: [1, 1], levels: 3), seed: 9300)
        check(Case(outC: 5, inC: 70, kernel: [3, 3], input: [6, 6], strides: [1, 1], pads: [1, 1], dilations: [1, 1], levels: 2, rowUniform: true), seed: 9301)
    }

    func testSpatialSweep() {
        var seed: UInt64 = 9200
        let shapes: [(kernel: [Int], input: [Int], strides: [Int], pads: [Int], dilations: [Int])] = [
            ([3, 3], [7, 9], [1, 1], [1, 1], [1, 1]), ([3, 3], [8, 8], [2, 2], [1, 0], [1, 1]), ([1, 1], [9, 6], [2, 2], [0, 0], [1, 1]),
            ([3, 3], [9, 9], [1, 1], [2, 2], [2, 2]), ([1, 5], [4, 11], [1, 2], [0, 2], [1, 1]), ([3], [17], [1], [1], [1]),
            ([5, 5], [6, 6], [1, 1], [2, 2], [1, 1]),
        ]
        for s in shapes { for inC in [1, 5, 16] { for levels in [1, 2, 3] {
            seed += 1
            check(Case(outC: 6, inC: inC, kernel: s.kernel, input: s.input, strides: s.strides, pads: s.pads, dilations: s.dilations, levels: levels,
                       structured: seed % 3 == 0, rowUniform: seed % 3 == 1, batch: seed % 2 == 0 ? 2 : 1, activation: seed % 2 == 1 ? .relu : .none),
                  seed: seed)
        } } }
    }
}
