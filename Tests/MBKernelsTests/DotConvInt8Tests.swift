import MBCore
import MBKernels
import XCTest

/// The int8 dot-product pointwise convolution: AVX-512 VNNI and portable bodies, 1-3 threads
/// and the plain reference (`DotConvInt8Weights.reference`, from the mask and signs, not the
/// kernel's planes) bit for bit alike; against a Double convolution on the expanded weights within
/// the quantization bound: per output, sum over k of |w_k| times half the position's step
/// (scale = max |x| / 127, or / 255 where the position has no negative input), plus
/// `LutConvWeights.tolerance` of sum |w x| for the float epilogue.
final class DotConvInt8Tests: XCTestCase {
    struct Case: CustomStringConvertible {
        var outC: Int, inC: Int, input: [Int], strides: [Int], levels: Int
        var structured = false, rowUniform = false, perRow = true, batch = 1, bias = true, relu = false, residual = false
        /// How inputs are signed: 0 normal (some negative), 1 all >= 0 (post-ReLU), 2 mixed by position.
        var signs = 0
        var description: String {
            "out=\(outC) in=\(inC) input=\(input) strides=\(strides) levels=\(levels) structured=\(structured) rowUniform=\(rowUniform) "
                + "perRow=\(perRow) batch=\(batch) bias=\(bias) relu=\(relu) residual=\(residual) signs=\(signs)"
        }
        var geometry: ConvGeometry {
            ConvGeometry(batch: batch, inChannels: inC, outChannels: outC, input: input, kernel: input.map { _ in 1 }, strides: strides)
        }
    }

    func check(_ t: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let g = t.geometry, K = t.inC
        let s = randomSource(rows: t.outC, taps: 1, channels: K, levels: t.levels, seed: seed, structured: t.structured, rowUniform: t.rowUniform)
        let scales = t.perRow ? s.scales : s.scales.map { [$0[0]] }
        let w = DotConvInt8Weights(rows: t.outC, reduction: K, mask: s.mask, signBits: s.signs, scales: scales, perRowScales: t.perRow)
        let blocks = (t.outC + 3) / 4
        XCTAssertEqual(w.residentBytes, t.levels * blocks * (4 * ((K + 3) / 4 * 4) + 4 * 8 + 1),
                       "\(t): one byte per weight and plane, a scale and a sum per row and plane", file: file, line: line)
        var values = [Float](repeating: 0, count: t.outC * K)
        for j in values.indices {
            for k in 0..<Int(s.mask[j]) {
                let mu = scales[k][t.perRow ? j / K : 0]
                values[j] += (s.signs[k][j >> 6] >> UInt64(j & 63)) & 1 == 1 ? mu : -mu
            }
        }
        var x = randomActivations(count: t.batch * K * g.inputSize, seed: seed + 7)
        for i in x.indices where t.signs == 1 || (t.signs == 2 && (i % g.inputSize) % 3 != 0) { x[i] = abs(x[i]) }
        // One input pixel all zero (scale 0).
        if g.inputSize > 2 { for c in 0..<K { x[c * g.inputSize + 2] = 0 } }
        let bias = t.bias ? randomActivations(count: t.outC, seed: seed + 9) : nil
        let outSize = g.outputSize, count = t.batch * t.outC * outSize
        // A fused Add: added before the ReLU.
        let residual = t.residual ? randomActivations(count: count, seed: seed + 11) : nil
        func run(_ variant: KernelVariant, threads: Int) -> [Float] {
            LutConvTests.outputs(count: count, input: x, bias: bias) { xp, bp, yp, scratch in
                if let residual {
                    residual.withUnsafeBufferPointer { rp in
                        w.forward(variant, g, input: xp, bias: bp, output: yp, activation: t.relu ? .relu : .none, threads: threads, scratch: scratch,
                                  residual: rp.baseAddress!)
                    }
                } else {
                    w.forward(variant, g, input: xp, bias: bp, output: yp, activation: t.relu ? .relu : .none, threads: threads, scratch: scratch)
                }
            }
        }
        let fast = run(.fast, threads: 1)
        for (variant, threads) in [(KernelVariant.reference, 1), (.fast, 2), (.fast, 3), (.reference, 2)] {
            let y = run(variant, threads: threads)
            if let i = y.indices.first(where: { y[$0].bitPattern != fast[$0].bitPattern }) {
                XCTFail("\(t) seed=\(seed): output \(i) fast one thread \(fast[i]), \(variant) \(threads) threads \(y[i])", file: file, line: line)
                return
            }
        }
        let d = g.dims3
        for n in 0..<t.batch {
            let image = Array(x[(n * K * g.inputSize)..<((n + 1) * K * g.inputSize)])
            let imageResidual = residual.map { Array($0[(n * t.outC * outSize)..<((n + 1) * t.outC * outSize)]) }
            var plain = DotConvInt8Weights.reference(rows: t.outC, reduction: K, mask: s.mask, signBits: s.signs, scales: scales, perRowScales: t.perRow,
                                                     g, input: image, bias: bias, residual: imageResidual)
            if t.relu { plain = plain.map { $0 > 0 ? $0 : 0 } }
            for p in 0..<outSize {
                let pixel = p / d.output.2 * d.strides.1 * d.input.2 + p % d.output.2 * d.strides.2
                let column = (0..<K).map { image[$0 * g.inputSize + pixel] }
                let m = column.reduce(Float(0)) { max($0, abs($1)) }
                let step = m / (column.contains { $0 < 0 } ? 127 : 255)
                for o in 0..<t.outC {
                    let i = (n * t.outC + o) * outSize + p
                    guard fast[i].bitPattern == plain[o * outSize + p].bitPattern else {
                        XCTFail("\(t) seed=\(seed): output (\(n), \(o), \(p)) fast \(fast[i]) plain \(plain[o * outSize + p])", file: file, line: line)
                        return
                    }
                    let added = imageResidual?[o * outSize + p] ?? 0
                    var want = Double(bias?[o] ?? 0) + Double(added), bound = abs(bias?[o] ?? 0) + abs(added), weights: Float = 0
                    for k in 0..<K {
                        let wv = values[o * K + k]
                        want += Double(wv) * Double(column[k])
                        bound += abs(wv * column[k])
                        weights += abs(wv)
                    }
                    let expected = Float(t.relu ? max(0, want) : want)
                    let quantization = weights * step / 2 * 1.0001
                    if abs(fast[i] - expected) > quantization + LutConvWeights.tolerance * bound + 1e-30 {
                        XCTFail("\(t) seed=\(seed): output (\(n), \(o), \(p)) got \(fast[i]) expected \(expected) (quantization bound \(quantization))",
                                file: file, line: line)
                        return
                    }
                }
            }
        }
    }

    func testPointwiseSweep() {
        var seed: UInt64 = 27100
        // Reductions below, at and past a quad and a chunk's lanes; rows below and past a block of 8;
        // positions below a vector, odd, and past a chunk of 64.
        for inC in [1, 3, 16, 67] { for outC in [1, 8, 19] { for input in [[1, 5], [3, 11], [9, 9]] { for levels in [1, 2, 3] {
            seed += 1
            check(Case(outC: outC, inC: inC, input: input, strides: [1, 1], levels: levels, structured: seed % 3 == 0, rowUniform: seed % 3 == 1,
                       perRow: seed % 4 != 0, bias: seed % 2 == 0, relu: seed % 5 == 0, residual: seed % 7 < 3, signs: Int(seed % 3)), seed: seed)
        } } } }
    }

    func testStridedBatchedAndOneDimensional() {
        var seed: UInt64 = 27300
        let shapes: [(input: [Int], strides: [Int])] = [([9, 6], [2, 2]), ([7, 13], [2, 1]), ([17], [1]), ([23], [3]), ([12, 12], [2, 2])]
        for (input, strides) in shapes { for levels in [1, 2, 3] {
            seed += 1
            check(Case(outC: 13, inC: 37, input: input, strides: strides, levels: levels, structured: seed % 2 == 0, perRow: seed % 3 != 0,
                       batch: 1 + Int(seed % 2), relu: seed % 2 == 1, residual: seed % 3 == 0, signs: Int(seed % 3)), seed: seed)
        } }
    }

    func testQuantizationRule() {
        // Non-negative inputs use 255 steps, signed ones 127 around the zero point 128.
        let (q, s) = DotConvInt8Weights.quantized([0, 1, 2, 0.5])
        XCTAssertEqual(s, 2 / 255)
        XCTAssertEqual(q, [0, 128, 255, 64])
        let (q2, s2) = DotConvInt8Weights.quantized([-2, 1, 0.01])
        XCTAssertEqual(s2, 2 / 127)
        XCTAssertEqual(q2, [-127, 64, 1])
        XCTAssertEqual(DotConvInt8Weights.quantized([0, 0]).scale, 0)
    }

    func testFits() {
        let w = DotConvInt8Weights(rows: 4, reduction: 3, mask: [UInt8](repeating: 1, count: 12), signBits: [[0]], scales: [[1]], perRowScales: false)
        XCTAssertTrue(w.fits(ConvGeometry(batch: 1, inChannels: 3, outChannels: 4, input: [5, 5], kernel: [1, 1], strides: [2, 2])))
        XCTAssertFalse(w.fits(ConvGeometry(batch: 1, inChannels: 3, outChannels: 4, input: [5, 5], kernel: [3, 3])))
        XCTAssertFalse(w.fits(ConvGeometry(batch: 1, inChannels: 3, outChannels: 4, input: [5, 5], kernel: [1, 1], padBegin: [1, 1], padEnd: [1, 1])))
        XCTAssertFalse(w.fits(ConvGeometry(batch: 1, inChannels: 2, outChannels: 4, input: [5, 5], kernel: [1, 1])))
    }
}
