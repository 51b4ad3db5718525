import ArgumentParser
import CBLAS
import Foundation
import MBBinarize
import MBConvert
import MBCore
import MBKernels

/// The bit-plane layer benchmarks, one thread, every ratio measured in this run:
/// a 4096x9216 Gemm at batch 1 with 1.4-bit (7/2/1) weights (element, group:64 and channel
/// masks) against our float path and OpenBLAS sgemv; a 3x3 conv 256->256 at 56x56 with 1.4-bit
/// weights and activations against float and against homogeneous 2-bit/2-bit.
struct BitPlaneBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bitplane",
        abstract: "Bit-plane kernels against float: batch-1 Gemm 4096x9216 and conv 256->256 3x3 at 56x56 (1 thread)."
    )

    @Option(help: "Timed runs per measurement (median and min reported).")
    var repeats = 10

    @Option(help: "Gemm shape OUTxIN.")
    var gemm = "4096x9216"

    @Option(help: "Conv: channels and spatial size, CxHxW (3x3 kernel, pad 1, same channels out).")
    var conv = "256x56x56"

    @Flag(help: "Skip the Gemm case.")
    var noGemm = false

    @Flag(help: "Skip the conv case.")
    var noConv = false

    @Option(help: "Threads for every path (float, OpenBLAS, bit planes).")
    var threads = 1

    @Option(help: "Only the cases whose label contains this text (the float baselines always run).")
    var only: String?

    @Flag(help: "Time with the calling thread's CPU clock instead of the wall clock (1 thread only): on a loaded machine it leaves out the time other processes hold the core.")
    var cpuTime = false

    @Option(help: "Conv: after the table, time float, 2/2 and the 1.4/1.4 channel cases alternately this many rounds and report the median (range) of the per-round ratios, so a slow spell hits every side (1: off).")
    var rounds = 1

    func run() throws {
        // OpenBLAS's own pool otherwise spins on the second core while the bit-plane kernels run.
        BLAS.setThreads(threads)
        if cpuTime && threads != 1 { throw ValidationError("--cpu-time measures one thread") }
        print("bit-plane kernels: \(BitPlaneMatrix.isaName); \(threads) thread(s); median (min) of \(repeats) runs, \(cpuTime ? "thread CPU time" : "wall clock")")
        if !noGemm { try gemmCase() }
        if !noConv { try convCase() }
    }

    func now() -> Double {
        guard cpuTime else { return Double(DispatchTime.now().uptimeNanoseconds) / 1e6 }
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) * 1e3 + Double(ts.tv_nsec) / 1e6
    }

    func time(_ body: () -> Void) -> (median: Double, min: Double) {
        body()  // warm-up
        var t: [Double] = []
        for _ in 0..<repeats {
            let s = now()
            body()
            t.append(now() - s)
        }
        t.sort()
        return (t[t.count / 2], t[0])
    }

    func ms(_ t: (median: Double, min: Double)) -> String { String(format: "%.3f ms (%.3f)", t.median, t.min) }

    func gemmCase() throws {
        let dims = gemm.split(separator: "x").compactMap { Int($0) }
        guard dims.count == 2 else { throw ValidationError("--gemm must look like 4096x9216") }
        let (n, k) = (dims[0], dims[1])
        var rng = SeededGenerator(seed: 7)
        let w = (0..<(n * k)).map { _ in Float(rng.nextNormal() * 0.01) }
        let x = (0..<k).map { _ in Float(max(0, rng.nextNormal())) }
        var y = [Float](repeating: 0, count: n)
        let tensor = try FloatTensor(name: "fc", shape: [n, k], values: w)
        print("\nGemm [1, \(k)] x [\(n), \(k)]^T (transB = 1), batch 1; weights N(0, 0.01^2), x = relu(N(0, 1))")
        let ours = time { Gemm.parallel(threads: threads, transA: false, transB: true, m: 1, n: n, k: k, alpha: 1, a: x, lda: k, b: w, ldb: k, beta: 0, c: &y, ldc: n) }
        let blas = time { cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, w, Int32(k), x, 1, 0, &y, 1) }
        let expected = y
        var rows: [[String]] = [
            ["float (our Gemm path)", "32", "-", ms(ours), "1.00x", "-"],
            ["OpenBLAS sgemv", "32", "-", ms(blas), String(format: "%.2fx", ours.median / blas.median), "-"],
        ]
        let scratch = BitPlaneScratch()
        let cases: [(String, BitDistribution, MaskGranularity)] = [
            ("1-bit", try .homogeneous(1), .element), ("2-bit", try .homogeneous(2), .element),
            ("1.4-bit 7/2/1 element", try .tenths([7, 2, 1]), .element),
            ("1.4-bit 7/2/1 group:64", try .tenths([7, 2, 1]), .group(64)),
            ("1.4-bit 7/2/1 group:512", try .tenths([7, 2, 1]), .group(512)),
            ("1.4-bit 7/2/1 channel", try .tenths([7, 2, 1]), .channel),
        ]
        for (label, dist, granularity) in cases where only.map({ label.contains($0) }) ?? true {
            let config = BinarizationConfig(distribution: dist)
            let packed: PackedTensor
            if let groups = MaskGroups.weight(rows: n, taps: 1, channels: k, rowStride: k, tapStride: 0, channelStride: 1, granularity: granularity) {
                packed = try Binarizer.binarize(tensor, config, groups: groups, wholeTensor: granularity == .channel)
            } else {
                packed = try Binarizer.binarize(tensor, config)
            }
            let stats = Statistics(original: w, packed: packed)
            let m = try BitPlaneMatrix(packed: packed, kind: .matrix(transposed: true))
            if label.hasPrefix("1.4-bit 7/2/1 element") {
                // The previous AVX-512 kernel (masked adds), for what the lookup tables buy.
                let tm = time { _ = m.levelSums(x: x, isa: 2, lut: false, threads: threads, scratch: scratch) }
                rows.append([label + " (masked adds)", "-", "-", ms(tm), String(format: "%.2fx", ours.median / tm.median), "-"])
            }
            let planeBits = Double(m.residentBytes * 8) / Double(n * k)
            let t = time { m.gemv(x: x, bias: nil, y: &y, threads: threads, scratch: scratch) }
            // Same product through float: the dequantized weights times x.
            let deq = packed.dequantized()
            var yf = [Float](repeating: 0, count: n)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, deq, Int32(k), x, 1, 0, &yf, 1)
            let scale = yf.map(abs).max() ?? 1
            let diff = zip(y, yf).map { abs($0 - $1) }.max() ?? 0
            let lutBits = Double(m.residentBytes * 8) / Double(n * k) - planeBits
            rows.append([label, String(format: "%.2f + %.2f", planeBits, lutBits), String(format: "%.3f", stats.normalizedError), ms(t),
                         String(format: "%.2fx", ours.median / t.median), String(format: "%.1e", diff / scale)])
        }
        _ = expected
        print(table(header: ["weights", "bits/weight planes + LUT codes", "weight error", "time", "speedup vs float", "max |Δ| vs deq. float (rel)"], rows: rows), terminator: "")
        print("target: 1.4-bit >= 5x faster than float")
    }

    func convCase() throws {
        let dims = conv.split(separator: "x").compactMap { Int($0) }
        guard dims.count == 3 else { throw ValidationError("--conv must look like 256x56x56") }
        let (c, h, wd) = (dims[0], dims[1], dims[2])
        var rng = SeededGenerator(seed: 56)
        let weights = (0..<(c * c * 9)).map { _ in Float(rng.nextNormal() * (2.0 / Double(c * 9)).squareRoot()) }
        let x = (0..<(c * h * wd)).map { _ in Float(max(0, rng.nextNormal())) }
        let bias = (0..<c).map { _ in Float(rng.nextNormal() * 0.01) }
        let g = ConvGeometry(batch: 1, inChannels: c, outChannels: c, input: [h, wd], kernel: [3, 3], padBegin: [1, 1], padEnd: [1, 1])
        var y = [Float](repeating: 0, count: c * g.outputSize)
        let kscratch = KernelScratch()
        print("\nConv 3x3 \(c)->\(c) at \(h)x\(wd), pad 1, batch 1; weights He-normal, x = relu(N(0, 1))")
        let float = time { Conv.forward(.fast, g, input: x, weights: weights, bias: bias, output: &y, threads: threads, scratch: kscratch) }
        var rows: [[String]] = [["float (im2col + sgemm)", "-", ms(float), "1.00x", "-"]]
        let tensor = try FloatTensor(name: "conv", shape: [c, c, 3, 3], values: weights)
        let scratch = BitPlaneScratch()
        let cases: [(String, BitDistribution, MaskGranularity, [Int], [Double], MaskGranularity)] = [
            ("2-bit / 2-bit", try .homogeneous(2), .element, [2], [1], .element),
            ("1-bit / 1-bit", try .homogeneous(1), .element, [1], [1], .element),
            ("1.4 element / 1.4 element", try .tenths([7, 2, 1]), .element, [1, 2, 3], [0.7, 0.2, 0.1], .element),
            ("1.4 group:64 / 1.4 group:64", try .tenths([7, 2, 1]), .group(64), [1, 2, 3], [0.7, 0.2, 0.1], .group(64)),
            ("1.4 channel / 1.4 group:64", try .tenths([7, 2, 1]), .channel, [1, 2, 3], [0.7, 0.2, 0.1], .group(64)),
            ("1.4 channel / 1.4 group:256", try .tenths([7, 2, 1]), .channel, [1, 2, 3], [0.7, 0.2, 0.1], .group(256)),
        ]
        var twoBit = 0.0
        // The layers the alternating rounds compare, by label.
        var roundLayers: [(String, BinaryConvLayer)] = []
        for (label, dist, wg, abits, afrac, ag) in cases where only.map({ label.contains($0) }) ?? true {
            let config = BinarizationConfig(distribution: dist)
            let packed: PackedTensor
            if let groups = MaskGroups.weight(rows: c, taps: 9, channels: c, rowStride: c * 9, tapStride: 1, channelStride: 9, granularity: wg) {
                packed = try Binarizer.binarize(tensor, config, groups: groups, wholeTensor: wg == .channel)
            } else {
                packed = try Binarizer.binarize(tensor, config)
            }
            let m = try BitPlaneMatrix(packed: packed, kind: .conv)
            let layer = BinaryConvLayer(weights: [m], activations: ActivationSpec(distribution: try BitDistribution(bits: abits, fractions: afrac), granularity: ag))
            let t = time { layer.forward(g, input: x, bias: bias, output: &y, relu: false, threads: threads, scratch: scratch) }
            if label.hasPrefix("2-bit") || label.hasPrefix("1.4 channel") { roundLayers.append((label, layer)) }
            // The parts: run-time binarization (mask + residual levels), packing into planes, popcount kernel.
            let xb = layer.activations.binarizeConvInput(x.withUnsafeBufferPointer { $0 }, batch: 1, channels: c, pixels: h * wd)
            let groupCache = GroupCache()  // as in forward: the mask groups depend only on the shape
            let tb = time { _ = layer.activations.binarizeConvInput(x.withUnsafeBufferPointer { $0 }, batch: 1, channels: c, pixels: h * wd, cache: groupCache) }
            let partScratch = BitPlaneScratch()
            let tp = time { _ = ActivationPlanes(xb, units: h * wd, unitChannels: c, base: 0, unitStride: 1, channelStride: h * wd, scratch: partScratch) }
            let planes = ActivationPlanes(xb, units: h * wd, unitChannels: c, base: 0, unitStride: 1, channelStride: h * wd, scratch: partScratch)
            var patches = [Int32](repeating: 0, count: g.outputSize * 9)
            ConvPatches.build(g, into: &patches)
            let tk = time {
                m.binaryForward(acts: planes, patches: patches, positions: g.outputSize, bias: bias, relu: false, y: &y, strideRow: g.outputSize,
                                stridePos: 1, threads: threads)
            }
            print("  \(label): binarize \(ms(tb)), pack \(ms(tp)), popcount kernel \(ms(tk)); pairs of levels per word \(String(format: "%.2f", pairsPerWord(m, planes)))")
            // Error of the whole layer against float, and the exactness of the bit-plane path
            // against the same binarized operands through float (expanded).
            var yFloat = [Float](repeating: 0, count: y.count), yExpanded = yFloat
            Conv.forward(.fast, g, input: x, weights: weights, bias: bias, output: &yFloat, threads: 1, scratch: kscratch)
            layer.forwardExpanded(g, input: x, weights: packed.dequantized(), bias: bias, output: &yExpanded, relu: false, scratch: kscratch)
            let err = normError(y, yFloat), exact = normError(y, yExpanded)
            if label.hasPrefix("2-bit") { twoBit = t.median }
            rows.append([label, String(format: "%.3f", err), ms(t), String(format: "%.2fx", float.median / t.median),
                         twoBit > 0 ? String(format: "%.2f", t.median / twoBit) : "-", String(format: "%.1e", exact)])
        }
        print(table(header: ["weights / activations", "output error vs float", "time", "speedup vs float", "time / 2-bit/2-bit", "vs expanded (rel)"].dropLast(0), rows: rows.map { $0.count == 5 ? $0 + ["-"] : $0 }), terminator: "")
        print("targets: 1.4/1.4 >= 4x faster than float; 1.4/1.4 <= 0.8x the time of 2/2")
        guard rounds > 1, let two = roundLayers.first(where: { $0.0.hasPrefix("2-bit") })?.1 else { return }
        // Alternating rounds: each round times float, 2/2 and every 1.4/1.4 case back to back.
        var ratios: [String: (float: [Double], twoBit: [Double])] = [:]
        for _ in 0..<rounds {
            let tf = time { Conv.forward(.fast, g, input: x, weights: weights, bias: bias, output: &y, threads: threads, scratch: kscratch) }.median
            let t2 = time { two.forward(g, input: x, bias: bias, output: &y, relu: false, threads: threads, scratch: scratch) }.median
            for (label, layer) in roundLayers where !label.hasPrefix("2-bit") {
                let t = time { layer.forward(g, input: x, bias: bias, output: &y, relu: false, threads: threads, scratch: scratch) }.median
                ratios[label, default: ([], [])].float.append(tf / t)
                ratios[label, default: ([], [])].twoBit.append(t / t2)
            }
        }
        func summary(_ v: [Double], _ format: String) -> String {
            let s = v.sorted()
            return String(format: format, s[s.count / 2]) + " (" + String(format: format, s.first!) + "-" + String(format: format, s.last!) + ")"
        }
        print("\(rounds) alternating rounds (float, 2/2, 1.4/1.4; median of \(repeats) runs each): median (range) of the per-round ratios")
        let roundRows = roundLayers.filter { !$0.0.hasPrefix("2-bit") }.map { label, _ in
            [label, summary(ratios[label]!.float, "%.2fx"), summary(ratios[label]!.twoBit, "%.2f")]
        }
        print(table(header: ["weights / activations", "speedup vs float", "time / 2-bit/2-bit"], rows: roundRows), terminator: "")
    }

    /// Average (weight level, activation level) pairs per (block, activation word): what the
    /// popcount kernel's cost follows (4 for 2/2; the product of the average widths when structured).
    func pairsPerWord(_ m: BitPlaneMatrix, _ a: ActivationPlanes) -> Double {
        let wl = m.storedFractionPerLevel.reduce(0, +)
        var al = 0.0
        for l in 0..<a.levels { for u in 0..<a.units { for i in 0..<a.wordsPerUnit where a.words(unit: u, level: l, word: i).act != 0 { al += 1 } } }
        return wl * al / Double(a.units * a.wordsPerUnit)
    }

    func normError(_ a: [Float], _ b: [Float]) -> Double {
        var n = 0.0, d = 0.0
        for (x, y) in zip(a, b) { n += Double(x - y) * Double(x - y); d += Double(y) * Double(y) }
        return (n / max(d, 1e-30)).squareRoot()
    }
}

/// End to end: the 61M-weight AlexNet-shaped model (light_bvlc_alexnet's graph, seeded weights)
/// float against every Conv/Gemm at 1.4/1.4 (first and last layer float), one thread; each
/// configuration in its own `mbconvert run` process so resident memory is its own.
struct AlexNetBitPlaneBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alexnet-1.4",
        abstract: "AlexNet-shaped model: float vs 1.4/1.4 (expanded and packed), latency and resident memory, 1 thread."
    )

    @Option(help: "The shared models folder (light_bvlc_alexnet.onnx).")
    var models = "../shared/models"

    @Option(help: "Timed runs per configuration.")
    var repeats = 10

    @Option(help: "Folder for the generated models (default: a temporary folder, removed afterwards).")
    var workdir: String?

    func run() throws {
        let dir = workdir ?? FileManager.default.temporaryDirectory.appendingPathComponent("mbbench-alexnet14-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if workdir == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let alex = try RunBenchmark.makeAlexNet(from: models + "/light_bvlc_alexnet.onnx", in: dir)
        var rng = SeededGenerator(seed: 224)
        let input = dir + "/input.npy"
        try NPY.write(NPYArray(floats: (0..<(3 * 224 * 224)).map { _ in Float(rng.nextUnitDouble()) }, shape: [1, 3, 224, 224]), to: input)
        let variants: [(String, String)] = [
            ("1.4/1.4 element (paper)", "granularity: element\n  activations: {mix: {1: 0.7, 2: 0.2, 3: 0.1}}"),
            ("1.4/1.4 channel w / group:64 a", "granularity: channel\n  activations: {mix: {1: 0.7, 2: 0.2, 3: 0.1}, granularity: group:64}"),
        ]
        let mbconvert = Bundle.main.executableURL!.deletingLastPathComponent().appendingPathComponent("mbconvert").path
        var rows: [[String]] = []
        let float = try measure(mbconvert, alex.path, input: input, weights: "expanded")
        rows.append(["float", "-", float.latency, float.memory])
        for (i, (label, settings)) in variants.enumerated() {
            let policy = dir + "/p\(i).txt"
            try "version: 1\nrules:\n  - match: {position: [first, last]}\n    keep: float32\ndefault:\n  mix: {1: 0.7, 2: 0.2, 3: 0.1}\n  \(settings)\n"
                .write(toFile: policy, atomically: true, encoding: .utf8)
            let out = dir + "/a\(i).mbm"
            _ = try Conversion.run(model: alex.path, policy: policy, output: out, options: .init(force: true))
            for mode in ["expanded", "packed"] {
                let r = try measure(mbconvert, out, input: input, weights: mode)
                rows.append([label, mode, r.latency, r.memory])
            }
        }
        print("AlexNet-shaped model, \(alex.weights) weights, 1 thread, \(repeats) runs; bit planes: \(BitPlaneMatrix.isaName)")
        print(table(header: ["model", "weights", "latency (median, min)", "resident memory"], rows: rows), terminator: "")
    }

    func measure(_ mbconvert: String, _ model: String, input: String, weights: String) throws -> (latency: String, memory: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: mbconvert)
        p.arguments = ["run", model, "--input", input, "--repeat", String(repeats), "--threads", "1", "--weights", weights]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw ValidationError("mbconvert run \(model) failed:\n\(text)") }
        let latency = text.split(separator: "\n").first { $0.hasPrefix("latency") }.map { String($0.split(separator: ":").last!).trimmingCharacters(in: .whitespaces) } ?? "?"
        let memory = text.split(separator: "\n").first { $0.hasPrefix("resident memory") }.map { String($0.dropFirst("resident memory: ".count)) } ?? "?"
        return (latency, memory)
    }
}
