import MBCore
import MBKernels
import XCTest

/// The int8 lookup-table convolution: AVX-512 and portable bodies and the plain reference
/// (`LutConvInt8Weights.reference`, built from the mask and signs, not the codes) bit for bit
/// alike, one and two threads alike; against a Double convolution on the expanded weights
/// within the quantization bound: per output, sum over levels of |scale| times, per block of
/// 256 entries, groups x half a table step, plus `LutConvWeights.tolerance` of sum |w x|.
final class LutConvInt8Tests: XCTestCase {
    typealias Case = LutConvTests.Case

    func check(_ t: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let g = t.geometry
        let taps = g.kernelSize, K = t.inC * taps
        let s = randomSource(rows: t.outC, taps: taps, channels: t.inC, levels: t.levels, seed: seed, structured: t.structured, rowUniform: t.rowUniform, group: t.group)
        let scales = t.perRow ? s.scales : s.scales.map { [$0[0]] }
        let rowScale: [Float]? = seed % 2 == 0 ? (0..<t.outC).map { Float($0 % 5) * 0.5 - 1 } : nil
        let w = LutConvInt8Weights(rows: t.outC, reduction: K, mask: s.mask, signBits: s.signs, scales: scales, perRowScales: t.perRow, rowScale: rowScale)
        var values = [Float](repeating: 0, count: t.outC * K)
        for j in values.indices {
            let o = j / K
            var v: Float = 0
            for k in 0..<Int(s.mask[j]) {
                let mu = scales[k][t.perRow ? o : 0] * (rowScale?[o] ?? 1)
                v += (s.signs[k][j >> 6] >> UInt64(j & 63)) & 1 == 1 ? mu : -mu
            }
            values[j] = v
        }
        let x = randomActivations(count: t.batch * t.inC * g.inputSize, seed: seed + 7)
        let bias = t.bias ? randomActivations(count: t.outC, seed: seed + 9) : nil
        let outSize = g.outputSize, count = t.batch * t.outC * outSize
        func run(_ variant: KernelVariant, threads: Int, split: LutConvInt8Weights.Split? = nil) -> [Float] {
            LutConvTests.outputs(count: count, input: x, bias: bias) { xp, bp, yp, scratch in
                w.forward(variant, g, input: xp, bias: bp, output: yp, activation: t.activation, threads: threads, scratch: scratch, split: split)
            }
        }
        let fast = run(.fast, threads: 1), portable = run(.reference, threads: 1), two = run(.fast, threads: 2)
        // Threads split by positions and by row tiles, AVX-512 and portable: the same bits.
        for (threads, split) in [(2, LutConvInt8Weights.Split.rows), (3, .rows), (3, .positions)] {
            for variant in [KernelVariant.fast, .reference] where variant == .fast || threads == 2 {
                let y = run(variant, threads: threads, split: split)
                if let i = y.indices.first(where: { y[$0].bitPattern != fast[$0].bitPattern }) {
                    XCTFail("\(t) seed=\(seed): output \(i) one thread \(fast[i]), \(threads) threads by \(split) (\(variant)) \(y[i])", file: file, line: line)
                    return
                }
            }
        }
        // The same weights with their codes held expanded (auto mode's form): the same bits.
        let compactBytes = w.residentBytes
        w.expandCodes()
        let expanded = run(.fast, threads: 1), expandedPortable = run(.reference, threads: 1)
        if w.halves.contains(2) && t.outC * K >= 1024 {
            XCTAssertLessThan(compactBytes, w.residentBytes, "\(t): compact form not smaller than the expanded codes", file: file, line: line)
        }
        for i in fast.indices where fast[i].bitPattern != expanded[i].bitPattern || fast[i].bitPattern != expandedPortable[i].bitPattern {
            XCTFail("\(t) seed=\(seed): output \(i) compact \(fast[i]) expanded \(expanded[i]) expanded portable \(expandedPortable[i])", file: file, line: line)
            return
        }
        let d = g.dims3
        for n in 0..<t.batch {
            let image = Array(x[(n * t.inC * g.inputSize)..<((n + 1) * t.inC * g.inputSize)])
            var plain = LutConvInt8Weights.reference(rows: t.outC, reduction: K, mask: s.mask, signBits: s.signs, scales: scales, perRowScales: t.perRow,
                                                      halves: w.halves, rowScale: rowScale, g, input: image, bias: bias)
            if t.activation == .relu { plain = plain.map { $0 > 0 ? $0 : 0 } }
            for o in 0..<t.outC { for p in 0..<outSize {
                let i = (n * t.outC + o) * outSize + p
                guard fast[i].bitPattern == portable[i].bitPattern, fast[i].bitPattern == two[i].bitPattern,
                      fast[i].bitPattern == plain[o * outSize + p].bitPattern else {
                    XCTFail("\(t) seed=\(seed): output (\(n), \(o), \(p)) fast \(fast[i]) portable \(portable[i]) two threads \(two[i]) plain \(plain[o * outSize + p])",
                            file: file, line: line)
                    return
                }
                let oh = p / d.output.2, ow = p % d.output.2
                var want = Double(bias?[o] ?? 0), bound = abs(bias?[o] ?? 0)
                var column = [Float](repeating: 0, count: (K + 255) / 256 * 256)
                for c in 0..<t.inC { for kh in 0..<d.kernel.1 { for kw in 0..<d.kernel.2 {
                    let ih = oh * d.strides.1 - d.pads.1 + kh * d.dilations.1, iw = ow * d.strides.2 - d.pads.2 + kw * d.dilations.2
                    guard ih >= 0, ih < d.input.1, iw >= 0, iw < d.input.2 else { continue }
                    let k = c * taps + kh * d.kernel.2 + kw
                    let wv = values[o * K + k], xv = image[c * g.inputSize + ih * d.input.2 + iw]
                    column[k] = xv
                    want += Double(wv) * Double(xv)
                    bound += abs(wv * xv)
                } } }
                // Quantization: each lookup is off by at most half a table step (m / 127 / 2).
                var quantization: Float = 0
                for b in stride(from: 0, to: column.count, by: 256) {
                    var m: Float = 0, groups: Float = 0
                    for grp in stride(from: b, to: b + 256, by: 4) {
                        m = max(m, column[grp..<(grp + 4)].reduce(0) { $0 + abs($1) })
                        if grp < K { groups += 1 }
                    }
                    quantization += groups * m / 254
                }
                let levelScale = (0..<t.levels).reduce(Float(0)) { $0 + abs(scales[$1][t.perRow ? o : 0] * (rowScale?[o] ?? 1)) }
                let expected = Float(t.activation == .relu ? max(0, want) : want)
                if abs(fast[i] - expected) > levelScale * quantization * 1.0001 + LutConvWeights.tolerance * bound + 1e-30 {
                    XCTFail("\(t) seed=\(seed): output (\(n), \(o), \(p)) got \(fast[i]) expected \(expected) (quantization bound \(levelScale * quantization))",
                            file: file, line: line)
                    return
                }
            } }
        }
    }

    func testPointwiseSweep() {
        var seed: UInt64 = 19100
        for inC in [1, 4, 65, 300] { for outC in [1, 17, 33] { for positions in [1, 9, 33] { for levels in [1, 3] {
            seed += 1
            check(Case(outC: outC, inC: inC, kernel: [1, 1], input: [1, positions], strides: [1, 1], pads: [0, 0], dilations: [1, 1], levels: levels,
                       structured: seed % 3 == 0, rowUniform: seed % 3 == 1, perRow: seed % 4 != 0, bias: seed % 2 == 0), seed: seed)
        } } } }
    }

    func testSpatialSweep() {
        var seed: UInt64 = 19200
        let shapes: [(kernel: [Int], input: [Int], strides: [Int], pads: [Int], dilations: [Int])] = [
            ([3, 3], [7, 9], [1, 1], [1, 1], [1, 1]), ([3, 3], [8, 8], [2, 2], [1, 0], [1, 1]), ([1, 1], [9, 6], [2, 2], [0, 0], [1, 1]),
            ([3, 3], [9, 9], [1, 1], [2, 2], [2, 2]), ([1, 5], [4, 11], [1, 2], [0, 2], [1, 1]), ([3], [17], [1], [1], [1]),
        ]
        for s in shapes { for inC in [1, 40] { for levels in [1, 3] {
            seed += 1
            check(Case(outC: 18, inC: inC, kernel: s.kernel, input: s.input, strides: s.strides, pads: s.pads, dilations: s.dilations, levels: levels,
                       structured: seed % 3 == 0, rowUniform: seed % 3 == 1, batch: seed % 2 == 0 ? 2 : 1, activation: seed % 2 == 1 ? .relu : .none),
                  seed: seed)
        } } }
    }

    /// Structured masks (group:4, 16, 64 channels, partial last groups; 2 and 3 levels): two-set
    /// planes hold one activity bit per run of entries. The same bits as the reference and the
    /// expanded codes, 1-3 threads (`check`, `checkPixels`), and fewer bytes than per entry.
    func testGroupedRuns() {
        var seed: UInt64 = 19800
        for group in [4, 16, 64] { for levels in [2, 3] {
            seed += 1
            check(Case(outC: 33, inC: 80, kernel: [1, 1], input: [3, 7], strides: [1, 1], pads: [0, 0], dilations: [1, 1], levels: levels,
                       structured: true, perRow: seed % 2 == 0, group: group), seed: seed)
            checkPixels(Case(outC: 18, inC: 48, kernel: [3, 3], input: [7, 9], strides: [1, 1], pads: [1, 1], dilations: [1, 1], levels: levels,
                             structured: true, perRow: seed % 2 == 1, group: group), seed: seed)
            let rows = 64, K = 80
            let s = randomSource(rows: rows, taps: 1, channels: K, levels: levels, seed: seed, structured: true, group: group)
            let w = LutConvInt8Weights(rows: rows, reduction: K, mask: s.mask, signBits: s.signs, scales: s.scales, perRowScales: true)
            XCTAssertEqual(w.runLength, min(16, group), "group \(group), \(levels) levels")
            // One entry changed breaks every run: the per-entry layout of (almost) the same mask.
            var mask = s.mask, signs = s.signs
            mask[1] = mask[0] == 1 ? 2 : 1
            for k in 0..<levels where k >= Int(mask[1]) { signs[k][0] &= ~UInt64(2) }
            let perEntry = LutConvInt8Weights(rows: rows, reduction: K, mask: mask, signBits: signs, scales: s.scales, perRowScales: true)
            XCTAssertEqual(perEntry.runLength, 1)
            XCTAssertLessThan(w.residentBytes, perEntry.residentBytes, "group \(group), \(levels) levels")
            print("int8 compact, group:\(group), \(levels) levels: \(w.residentBytes) B in runs of \(w.runLength), \(perEntry.residentBytes) B per entry")
        } }
    }

    /// Every thread split gives the one-thread bits on the layers the splits were tuned for:
    /// row tiles with shared tables over several blocks of positions and over a block whose
    /// chunks the threads share unevenly, 16-position bands read in place (a 1x1 map of 14x14,
    /// 13 bands of 16), gathered strided inputs; AVX-512 and portable bodies, compact and
    /// expanded codes.
    func testThreadSplitsOnSmallMaps() {
        let cases: [(Case, expand: Bool)] = [
            (Case(outC: 40, inC: 512, kernel: [1, 1], input: [14, 14], strides: [1, 1], pads: [0, 0], dilations: [1, 1], levels: 2, padEnd: [0, 0]), true),
            (Case(outC: 70, inC: 1024, kernel: [1, 1], input: [7, 7], strides: [1, 1], pads: [0, 0], dilations: [1, 1], levels: 2, padEnd: [0, 0]), true),
            (Case(outC: 50, inC: 48, kernel: [1, 1], input: [14, 14], strides: [2, 2], pads: [0, 0], dilations: [1, 1], levels: 2, activation: .relu,
                  padEnd: [0, 0]), false),
            (Case(outC: 33, inC: 300, kernel: [1, 1], input: [23, 21], strides: [1, 1], pads: [0, 0], dilations: [1, 1], levels: 3, batch: 2,
                  padEnd: [0, 0]), false),
        ]
        var seed: UInt64 = 19700
        for (t, expand) in cases {
            seed += 1
            let g = t.geometry, K = t.inC
            let s = randomSource(rows: t.outC, taps: 1, channels: t.inC, levels: t.levels, seed: seed)
            let w = LutConvInt8Weights(rows: t.outC, reduction: K, mask: s.mask, signBits: s.signs, scales: s.scales, perRowScales: true)
            if expand { w.expandCodes() }
            let x = randomActivations(count: t.batch * t.inC * g.inputSize, seed: seed + 7).map { max(0, $0) }
            let bias = randomActivations(count: t.outC, seed: seed + 9)
            let count = t.batch * t.outC * g.outputSize
            func run(_ variant: KernelVariant, threads: Int, split: LutConvInt8Weights.Split?) -> [Float] {
                LutConvTests.outputs(count: count, input: x, bias: bias) { xp, bp, yp, scratch in
                    w.forward(variant, g, input: xp, bias: bp, output: yp, activation: t.activation, threads: threads, scratch: scratch, split: split)
                }
            }
            let one = run(.fast, threads: 1, split: nil)
            XCTAssertFalse(one.contains { $0.isNaN }, "\(t): an output was not written")
            for threads in [2, 3] { for split in [LutConvInt8Weights.Split.rows, .positions, nil] { for variant in [KernelVariant.fast, .reference] {
                guard variant == .fast || threads == 2 else { continue }
                let y = run(variant, threads: threads, split: split)
                if let i = y.indices.first(where: { y[$0].bitPattern != one[$0].bitPattern }) {
                    XCTFail("\(t) seed=\(seed) expanded=\(expand): output \(i) one thread \(one[i]), \(threads) threads by \(split.map { "\($0)" } ?? "auto") (\(variant)) \(y[i])")
                    return
                }
            } } }
        }
    }

    /// The compact form of a per-entry 80/20 mask holds about its stored bits: 1 sign bit, 1
    /// activity bit and 0.2 level-2 sign bits per weight, plus the scales and row order.
    func testCompactResidentSize() {
        let rows = 64, K = 576, n = rows * K
        var rng = SeededGenerator(seed: 19400)
        let mask = (0..<n).map { _ in UInt8(rng.next() % 5 == 0 ? 2 : 1) }
        var signs = (0..<2).map { _ in (0..<((n + 63) / 64)).map { _ in rng.next() } }
        for j in 0..<n where mask[j] == 1 { signs[1][j >> 6] &= ~(UInt64(1) << UInt64(j & 63)) }
        let scales: [[Float]] = [[Float](repeating: 1, count: rows), [Float](repeating: 0.5, count: rows)]
        let w = LutConvInt8Weights(rows: rows, reduction: K, mask: mask, signBits: signs, scales: scales, perRowScales: true)
        let level2 = mask.filter { $0 == 2 }.count
        let storedBits = 2 * n + level2
        let overhead = rows * 2 * 4 + rows * 4 + 64 * 8
        XCTAssertLessThanOrEqual(w.residentBytes, (storedBits + 7) / 8 + overhead + 4 * 8 * (rows / 16), "compact resident \(w.residentBytes) bytes")
        w.expandCodes()
        XCTAssertGreaterThanOrEqual(w.residentBytes, 3 * n / 8, "expanded codes hold 3 bits per weight")
    }

    /// Pixel tables (tap-major reduction, one table per input pixel and block of 256 channels):
    /// AVX-512 and portable bodies, two threads, compact and expanded codes and the plain
    /// `referencePixels` bit for bit alike; against a Double convolution within the quantization
    /// bound, which is now per pixel: per output, sum over levels of |scale| times, over taps and
    /// channel blocks, groups x half the pixel's table step.
    func checkPixels(_ t: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let g = t.geometry
        XCTAssertTrue(LutConvInt8Weights.prefersPixelTables(g), "\(t)", file: file, line: line)
        let taps = g.kernelSize, K = t.inC * taps, d = g.dims3
        let s = randomSource(rows: t.outC, taps: taps, channels: t.inC, levels: t.levels, seed: seed, structured: t.structured, rowUniform: t.rowUniform, group: t.group)
        let scales = t.perRow ? s.scales : s.scales.map { [$0[0]] }
        let (mask, signs) = LutConvInt8Weights.tapMajor(rows: t.outC, channels: t.inC, taps: taps, mask: s.mask, signBits: s.signs)
        let w = LutConvInt8Weights(rows: t.outC, reduction: K, mask: mask, signBits: signs, scales: scales, perRowScales: t.perRow, pixelChannels: t.inC)
        XCTAssertTrue(w.fits(g), file: file, line: line)
        let x = randomActivations(count: t.batch * t.inC * g.inputSize, seed: seed + 7).map { seed % 2 == 0 ? max(0, $0) : $0 }
        let bias = t.bias ? randomActivations(count: t.outC, seed: seed + 9) : nil
        let outSize = g.outputSize, count = t.batch * t.outC * outSize
        func run(_ variant: KernelVariant, threads: Int, split: LutConvInt8Weights.Split? = nil) -> [Float] {
            LutConvTests.outputs(count: count, input: x, bias: bias) { xp, bp, yp, scratch in
                w.forward(variant, g, input: xp, bias: bp, output: yp, activation: t.activation, threads: threads, scratch: scratch, split: split)
            }
        }
        let fast = run(.fast, threads: 1), portable = run(.reference, threads: 1), two = run(.fast, threads: 3)
        for (threads, split) in [(2, LutConvInt8Weights.Split.rows), (3, .rows), (2, .positions)] {
            for variant in [KernelVariant.fast, .reference] where variant == .fast || threads == 2 {
                let y = run(variant, threads: threads, split: split)
                if let i = y.indices.first(where: { y[$0].bitPattern != fast[$0].bitPattern }) {
                    XCTFail("\(t) seed=\(seed): output \(i) one thread \(fast[i]), \(threads) threads by \(split) (\(variant)) \(y[i])", file: file, line: line)
                    return
                }
            }
        }
        w.expandCodes()
        let expanded = run(.fast, threads: 1)
        for n in 0..<t.batch {
            let image = Array(x[(n * t.inC * g.inputSize)..<((n + 1) * t.inC * g.inputSize)])
            var plain = LutConvInt8Weights.referencePixels(rows: t.outC, channels: t.inC, mask: mask, signBits: signs, scales: scales, perRowScales: t.perRow,
                                                           halves: w.halves, g, input: image, bias: bias)
            if t.activation == .relu { plain = plain.map { $0 > 0 ? $0 : 0 } }
            for o in 0..<t.outC { for p in 0..<outSize {
                let i = (n * t.outC + o) * outSize + p
                guard fast[i].bitPattern == portable[i].bitPattern, fast[i].bitPattern == two[i].bitPattern, fast[i].bitPattern == expanded[i].bitPattern,
                      fast[i].bitPattern == plain[o * outSize + p].bitPattern else {
                    XCTFail("\(t) seed=\(seed): output (\(n), \(o), \(p)) fast \(fast[i]) portable \(portable[i]) three threads \(two[i]) expanded \(expanded[i]) plain \(plain[o * outSize + p])",
                            file: file, line: line)
                    return
                }
                let oh = p / d.output.2, ow = p % d.output.2
                var want = Double(bias?[o] ?? 0), bound = abs(bias?[o] ?? 0), quantization: Float = 0
                for tap in 0..<taps {
                    let ih = oh * d.strides.1 - d.pads.1 + (tap / d.kernel.2) * d.dilations.1, iw = ow * d.strides.2 - d.pads.2 + (tap % d.kernel.2) * d.dilations.2
                    guard ih >= 0, ih < d.input.1, iw >= 0, iw < d.input.2 else { continue }
                    let column = (0..<t.inC).map { image[$0 * g.inputSize + ih * d.input.2 + iw] }
                    for c in 0..<t.inC {
                        var v: Float = 0
                        let j = o * K + c * taps + tap
                        for k in 0..<Int(s.mask[j]) {
                            let mu = scales[k][t.perRow ? o : 0]
                            v += (s.signs[k][j >> 6] >> UInt64(j & 63)) & 1 == 1 ? mu : -mu
                        }
                        want += Double(v) * Double(column[c])
                        bound += abs(v * column[c])
                    }
                    for b in stride(from: 0, to: t.inC, by: 256) {
                        var m: Float = 0
                        for grp in stride(from: b, to: min(t.inC, b + 256), by: 4) { m = max(m, column[grp..<(grp + 4)].reduce(0) { $0 + abs($1) }) }
                        quantization += Float(min(t.inC, b + 256) - b) / 4 * m / 254
                    }
                }
                let levelScale = (0..<t.levels).reduce(Float(0)) { $0 + abs(scales[$1][t.perRow ? o : 0]) }
                let expected = Float(t.activation == .relu ? max(0, want) : want)
                if abs(fast[i] - expected) > levelScale * quantization * 1.0001 + LutConvWeights.tolerance * bound + 1e-30 {
                    XCTFail("\(t) seed=\(seed): output (\(n), \(o), \(p)) got \(fast[i]) expected \(expected) (quantization bound \(levelScale * quantization))",
                            file: file, line: line)
                    return
                }
            } }
        }
    }

    func testPixelTables() {
        var seed: UInt64 = 19500
        let shapes: [(kernel: [Int], input: [Int], strides: [Int], pads: [Int], dilations: [Int])] = [
            ([3, 3], [7, 9], [1, 1], [1, 1], [1, 1]), ([3, 3], [8, 11], [2, 2], [1, 0], [1, 1]), ([3, 3], [9, 9], [1, 1], [2, 2], [2, 2]),
            ([1, 5], [4, 11], [1, 2], [0, 2], [1, 1]), ([3], [17], [1], [1], [1]), ([2, 2], [6, 21], [1, 1], [0, 0], [1, 1]),
        ]
        for s in shapes { for inC in [16, 48] { for levels in [1, 2, 3] where (levels == 2) == (inC == 16) || levels == 3 {
            seed += 1
            checkPixels(Case(outC: seed % 2 == 0 ? 18 : 33, inC: inC, kernel: s.kernel, input: s.input, strides: s.strides, pads: s.pads,
                             dilations: s.dilations, levels: levels, structured: seed % 3 == 0, rowUniform: seed % 3 == 1, perRow: seed % 4 != 1,
                             batch: seed % 2 == 0 ? 2 : 1, bias: seed % 5 != 0, activation: seed % 2 == 1 ? .relu : .none), seed: seed)
        } } }
        // Two blocks of channels per pixel; 17 KiB per input row, so the ring holds 30 rows and
        // the 34 output rows take two bands (rows kept from the first band, slots reused).
        checkPixels(Case(outC: 5, inC: 272, kernel: [3, 3], input: [34, 5], strides: [1, 1], pads: [1, 1], dilations: [1, 1], levels: 2), seed: 19590)
    }

    /// Pointwise on small maps of a batch: the images' positions folded into one map give each
    /// image's outputs bit for bit (the reference runs image by image).
    func testPointwiseBatchFolded() {
        var seed: UInt64 = 19700
        for input in [[1, 1], [2, 2], [3, 5]] { for levels in [1, 2] {
            seed += 1
            check(Case(outC: 21, inC: 40, kernel: [1, 1], input: input, strides: [1, 1], pads: [0, 0], dilations: [1, 1], levels: levels,
                       batch: 3, activation: seed % 2 == 0 ? .relu : .none, padEnd: [0, 0]), seed: seed)
        } }
    }

    /// More positions than one table block (several blocks per thread).
    func testManyPositions() {
        check(Case(outC: 20, inC: 300, kernel: [1, 1], input: [24, 24], strides: [1, 1], pads: [0, 0], dilations: [1, 1], levels: 1, rowUniform: true),
              seed: 19300)
    }
}
