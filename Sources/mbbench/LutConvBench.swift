import ArgumentParser
import Foundation
import MBConvert
import MBCore
import MBKernels

/// `mbbench lutconv`: binarized Conv weights on float inputs, per layer shape of the weight-heavy
/// development models (ResNet-50, YOLO11): the float convolution on expanded weights against
/// the float-table (`LutConvWeights`) and the int8-table (`LutConvInt8Weights`) convolutions,
/// one thread, thread CPU time, alternating rounds (median of per-round ratios). Also the int8
/// tables' error against the float-table result (relative RMS and worst |Δ| over max |y|).
/// Pointwise shapes also run the int8 dot-product convolution (`DotConvInt8Weights`).
struct LutConvBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lutconv",
        abstract: "Lookup-table convolutions (float and int8 tables) against the float convolution, per layer shape and mask form.")

    @Option var rounds = 5
    @Option(help: "Timed runs per kernel and round (best taken).")
    var repeats = 3
    @Option(help: "Only shapes whose label contains this text.")
    var filter: String?
    @Option(help: "Only weight forms whose name contains this text (1-bit, 80/20 channel, 80/20 per entry, ...).")
    var forms: String?
    @Flag(help: "Skip the float-table kernel (errors then against the float convolution).")
    var int8Only = false
    @Option(help: "More than 1: instead of the table above, how the int8 tables (codes expanded, pixel tables where auto uses them) and the float convolution scale from 1 to this many threads (wall clock, best of the repeats, median over rounds).")
    var threads = 1
    @Option(help: "Time only the int8 tables at this many threads (for perf stat).")
    var onlyThreads = 0

    static let shapes: [(String, ConvGeometry)] = {
        func conv(_ c: Int, _ o: Int, _ s: Int, _ k: Int, stride: Int = 1) -> ConvGeometry {
            let p = (k - 1) / 2
            return ConvGeometry(batch: 1, inChannels: c, outChannels: o, input: [s, s], kernel: [k, k], strides: [stride, stride],
                                dilations: [1, 1], padBegin: [p, p], padEnd: [p, p])
        }
        return [
            ("resnet 1x1 256->64 @56", conv(256, 64, 56, 1)), ("resnet 3x3 64 @56", conv(64, 64, 56, 3)),
            ("resnet 1x1 64->256 @56", conv(64, 256, 56, 1)), ("resnet 3x3 128 @28", conv(128, 128, 28, 3)),
            ("resnet 1x1 512->128 @28", conv(512, 128, 28, 1)), ("resnet 3x3 256 @14", conv(256, 256, 14, 3)),
            ("resnet 1x1 1024->256 @14", conv(1024, 256, 14, 1)), ("resnet 3x3 512 @7", conv(512, 512, 7, 3)),
            ("resnet 1x1 2048->512 @7", conv(2048, 512, 7, 1)),
            // open-nsfw (a ResNet-50 at half width) on small maps.
            ("nsfw 1x1 256->64 @28", conv(256, 64, 28, 1)), ("nsfw 1x1 64->256 @28", conv(64, 256, 28, 1)), ("nsfw 3x3 64 @28", conv(64, 64, 28, 3)),
            ("nsfw 1x1 512->128 @14", conv(512, 128, 14, 1)), ("nsfw 1x1 128->512 @14", conv(128, 512, 14, 1)), ("nsfw 3x3 128 @14", conv(128, 128, 14, 3)),
            ("nsfw 1x1/2 512->1024 @14", conv(512, 1024, 14, 1, stride: 2)), ("nsfw 1x1 1024->256 @7", conv(1024, 256, 7, 1)),
            ("nsfw 1x1 256->1024 @7", conv(256, 1024, 7, 1)), ("nsfw 3x3 256 @7", conv(256, 256, 7, 3)),
            ("yolo 3x3/2 128->256 @80", conv(128, 256, 80, 3, stride: 2)), ("yolo 3x3 64 @80", conv(64, 64, 80, 3)),
            ("yolo 1x1 384->256 @40", conv(384, 256, 40, 1)), ("yolo 3x3 128 @40", conv(128, 128, 40, 3)),
            ("yolo 1x1 768->512 @20", conv(768, 512, 20, 1)),
            // open-nsfw's narrow stages (half-width ResNet-50): where the tables do not pay.
            ("nsfw 1x1 64->32 @56", conv(64, 32, 56, 1)), ("nsfw 1x1 32->128 @56", conv(32, 128, 56, 1)),
            ("nsfw 1x1 128->32 @56", conv(128, 32, 56, 1)), ("nsfw 1x1 64->128 @56", conv(64, 128, 56, 1)),
            ("nsfw 1x1/2 128->64 @56", conv(128, 64, 56, 1, stride: 2)), ("nsfw 1x1 64->256 @28", conv(64, 256, 28, 1)),
            ("nsfw 1x1 256->64 @28", conv(256, 64, 28, 1)), ("nsfw 1x1 512->128 @14", conv(512, 128, 14, 1)),
        ]
    }()

    func cpuNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) * 1e3 + Double(ts.tv_nsec) / 1e6
    }

    func run() throws {
        if threads > 1 || onlyThreads > 0 {
            scaling()
            return
        }
        print("# mbbench lutconv (\(Date()), thread CPU time, one thread, \(rounds) rounds); uptime: \(loadAverage())")
        // (name, levels, one width per row, percent of entries / rows at 1 and 2 bits)
        let forms: [(String, Int, Bool, Int, Int)] = [
            ("1-bit", 1, true, 100, 0), ("80/20 channel", 2, true, 80, 20), ("80/20 per entry", 2, false, 80, 20),
            ("70/20/10 channel", 3, true, 70, 20), ("70/20/10 per entry", 3, false, 70, 20),
        ]
        var rows: [[String]] = []
        for (label, g) in Self.shapes where filter.map({ label.contains($0) }) ?? true {
            let pixels = LutConvInt8Weights.prefersPixelTables(g)
            let K = g.inChannels * g.kernelSize, O = g.outChannels
            for (formName, levels, rowUniform, p1, p2) in forms where self.forms.map({ formName.contains($0) }) ?? true {
                var rng = SeededGenerator(seed: 42)
                let n = O * K
                func width(_ r: Int) -> UInt8 { r < p1 ? 1 : r < p1 + p2 ? 2 : 3 }
                let rowLevel = (0..<O).map { o -> UInt8 in width(o * 37 % 100) }
                let mask = (0..<n).map { j -> UInt8 in rowUniform ? rowLevel[j / K] : width(Int(rng.next() % 100)) }
                var signs = (0..<levels).map { _ in (0..<((n + 63) / 64)).map { _ in rng.next() } }
                for j in 0..<n { for k in Int(mask[j])..<levels { signs[k][j >> 6] &= ~(UInt64(1) << UInt64(j & 63)) } }
                let scales = (0..<levels).map { k in (0..<O).map { _ in Float(rng.nextUnitDouble() + 0.5) / Float(1 << k) } }
                var w = [Float](repeating: 0, count: n)
                for j in 0..<n { for k in 0..<Int(mask[j]) { w[j] += (signs[k][j >> 6] >> UInt64(j & 63)) & 1 == 1 ? scales[k][j / K] : -scales[k][j / K] } }
                let lut = LutConvWeights(rows: O, reduction: K, mask: mask, signBits: signs, scales: scales, perRowScales: true)
                let lut8 = LutConvInt8Weights(rows: O, reduction: K, mask: mask, signBits: signs, scales: scales, perRowScales: true)
                let lut8x = LutConvInt8Weights(rows: O, reduction: K, mask: mask, signBits: signs, scales: scales, perRowScales: true)
                lut8x.expandCodes()
                // Pixel tables (tap-major reduction), codes expanded as auto holds them.
                let tm = LutConvInt8Weights.tapMajor(rows: O, channels: g.inChannels, taps: g.kernelSize, mask: mask, signBits: signs)
                let lut8p = pixels
                    ? LutConvInt8Weights(rows: O, reduction: K, mask: tm.mask, signBits: tm.signBits, scales: scales, perRowScales: true, pixelChannels: g.inChannels)
                    : nil
                lut8p?.expandCodes()
                let dot = g.kernelSize == 1 && g.padBegin.allSatisfy({ $0 == 0 })
                    ? DotConvInt8Weights(rows: O, reduction: K, mask: mask, signBits: signs, scales: scales, perRowScales: true) : nil
                var yp = [Float](repeating: 0, count: O * g.outputSize), yd = yp
                var r8p = [Double](), rd = [Double]()
                let x = (0..<(g.inChannels * g.inputSize)).map { _ in max(0, Float(rng.nextNormal())) }
                var yf = [Float](repeating: 0, count: O * g.outputSize), yl = yf, y8 = yf
                let scratch = KernelScratch(), tables = BitPlaneScratch()
                var tf = [Double](), tl = [Double](), t8 = [Double](), rl = [Double](), r8 = [Double](), r8x = [Double]()
                func best(_ body: () -> Void) -> Double {
                    var t = Double.infinity
                    for _ in 0..<repeats { let s = cpuNow(); body(); t = min(t, cpuNow() - s) }
                    return t
                }
                x.withUnsafeBufferPointer { xp in
                    for _ in 0..<rounds {
                        let a = best { yf.withUnsafeMutableBufferPointer { Conv.forward(.fast, g, input: xp.baseAddress!, weights: w, bias: nil, output: $0.baseAddress!, threads: 1, scratch: scratch) } }
                        let b = int8Only ? a : best { yl.withUnsafeMutableBufferPointer { lut.forward(.fast, g, input: xp.baseAddress!, bias: nil, output: $0.baseAddress!, activation: .none, threads: 1, scratch: tables) } }
                        let c = best { y8.withUnsafeMutableBufferPointer { lut8.forward(.fast, g, input: xp.baseAddress!, bias: nil, output: $0.baseAddress!, activation: .none, threads: 1, scratch: tables) } }
                        let d = best { y8.withUnsafeMutableBufferPointer { lut8x.forward(.fast, g, input: xp.baseAddress!, bias: nil, output: $0.baseAddress!, activation: .none, threads: 1, scratch: tables) } }
                        if let lut8p {
                            let e = best { yp.withUnsafeMutableBufferPointer { lut8p.forward(.fast, g, input: xp.baseAddress!, bias: nil, output: $0.baseAddress!, activation: .none, threads: 1, scratch: tables) } }
                            r8p.append(a / e)
                        }
                        if let dot {
                            let e = best { yd.withUnsafeMutableBufferPointer { dot.forward(.fast, g, input: xp.baseAddress!, bias: nil, output: $0.baseAddress!, activation: .none, threads: 1, scratch: tables) } }
                            rd.append(a / e)
                        }
                        tf.append(a); tl.append(b); t8.append(c); rl.append(a / b); r8.append(a / c); r8x.append(a / d)
                    }
                }
                func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
                if int8Only { yl = yf }
                func error(_ y8: [Float]) -> (Double, Float) {
                    var se = 0.0, sy = 0.0, worst: Float = 0
                    let ymax = yl.map(abs).max() ?? 1
                    for i in yl.indices { let d = Double(y8[i] - yl[i]); se += d * d; sy += Double(yl[i]) * Double(yl[i]); worst = max(worst, abs(y8[i] - yl[i])) }
                    return ((se / max(sy, 1e-30)).squareRoot(), worst / ymax)
                }
                let (rms, worst) = error(y8), (rmsP, worstP) = pixels ? error(yp) : (0, 0), (rmsD, worstD) = dot != nil ? error(yd) : (0, 0)
                rows.append([label, formName, String(format: "%.2f", median(tf)), String(format: "%.2f", median(tl)), String(format: "%.2f", median(t8)),
                             String(format: "%.2fx", median(rl)), String(format: "%.2fx", median(r8)), String(format: "%.2fx", median(r8x)),
                             String(format: "%.2f", Double(lut8.residentBytes * 8) / Double(n)), String(format: "%.2f", Double(lut8x.residentBytes * 8) / Double(n)),
                             String(format: "%.1e", rms), String(format: "%.1e", Double(worst)),
                             pixels ? String(format: "%.2fx", median(r8p)) : "",
                             pixels ? String(format: "%.1e / %.1e", rmsP, Double(worstP)) : "",
                             dot != nil ? String(format: "%.2fx", median(rd)) : "",
                             dot.map { String(format: "%.1f", Double($0.residentBytes * 8) / Double(n)) } ?? "",
                             dot != nil ? String(format: "%.1e / %.1e", rmsD, Double(worstD)) : ""])
            }
        }
        print(table(header: ["shape", "weights", "float ms", "float-table ms", "int8-table ms", "float / float-table", "float / int8-table",
                             "float / int8 expanded", "int8 bits/weight", "expanded bits/weight",
                             "int8 rel. RMS", "int8 max |Δ|/max|y|", "float / int8 pixel tables", "pixel rel. RMS / max |Δ|",
                             "float / int8 dot", "dot bits/weight", "dot rel. RMS / max |Δ|"], rows: rows), terminator: "")
    }

    /// Wall-clock time of `body`: best of `repeats`, in ms.
    func wallBest(_ body: () -> Void) -> Double {
        var t = Double.infinity
        for _ in 0..<repeats {
            let s = DispatchTime.now().uptimeNanoseconds
            body()
            t = min(t, Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6)
        }
        return t
    }

    /// `--threads N`: per shape, the int8 tables (80/20 per entry, codes expanded) and the float
    /// convolution at 1 and N threads, rounds alternating, and each one's scaling.
    func scaling() {
        // The runtime runs the BLAS on one thread (its workers would busy-wait on the other core).
        BLAS.setThreads(1)
        if onlyThreads > 0 { print("only \(onlyThreads)") }
        print("# mbbench lutconv --threads \(threads) (\(Date()), wall clock, best of \(repeats), median of \(rounds) rounds); uptime: \(loadAverage()); \(CoreDistance.note())")
        var rows: [[String]] = []
        for (label, g) in Self.shapes where filter.map({ label.contains($0) }) ?? true {
            var rng = SeededGenerator(seed: 42)
            let K = g.inChannels * g.kernelSize, O = g.outChannels, n = O * K
            let mask = (0..<n).map { _ in UInt8(rng.next() % 100 < 80 ? 1 : 2) }
            var signs = (0..<2).map { _ in (0..<((n + 63) / 64)).map { _ in rng.next() } }
            for j in 0..<n where mask[j] == 1 { signs[1][j >> 6] &= ~(UInt64(1) << UInt64(j & 63)) }
            let scales = (0..<2).map { k in (0..<O).map { _ in Float(rng.nextUnitDouble() + 0.5) / Float(1 << k) } }
            var w = [Float](repeating: 0, count: n)
            for j in 0..<n { for k in 0..<Int(mask[j]) { w[j] += (signs[k][j >> 6] >> UInt64(j & 63)) & 1 == 1 ? scales[k][j / K] : -scales[k][j / K] } }
            let lut8: LutConvInt8Weights
            if LutConvInt8Weights.prefersPixelTables(g) {
                let tm = LutConvInt8Weights.tapMajor(rows: O, channels: g.inChannels, taps: g.kernelSize, mask: mask, signBits: signs)
                lut8 = LutConvInt8Weights(rows: O, reduction: K, mask: tm.mask, signBits: tm.signBits, scales: scales, perRowScales: true, pixelChannels: g.inChannels)
            } else {
                lut8 = LutConvInt8Weights(rows: O, reduction: K, mask: mask, signBits: signs, scales: scales, perRowScales: true)
            }
            lut8.expandCodes()
            let x = (0..<(g.inChannels * g.inputSize)).map { _ in max(0, Float(rng.nextNormal())) }
            var y = [Float](repeating: 0, count: O * g.outputSize)
            let scratch = KernelScratch(), tables = BitPlaneScratch()
            var f1 = [Double](), fN = [Double](), t1 = [Double](), tN = [Double]()
            if onlyThreads > 0 {
                x.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer { yp in
                        for _ in 0..<rounds { t1.append(wallBest { lut8.forward(.fast, g, input: xp.baseAddress!, bias: nil, output: yp.baseAddress!, activation: .relu, threads: onlyThreads, scratch: tables) }) }
                    }
                }
                print(label, t1.sorted()[t1.count / 2])
                continue
            }
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    for _ in 0..<rounds {
                        for (t, into) in [(1, 0), (threads, 1)] {
                            let a = wallBest { Conv.forward(.fast, g, input: xp.baseAddress!, weights: w, bias: nil, output: yp.baseAddress!, threads: t, scratch: scratch) }
                            let b = wallBest { lut8.forward(.fast, g, input: xp.baseAddress!, bias: nil, output: yp.baseAddress!, activation: .relu, threads: t, scratch: tables) }
                            if into == 0 { f1.append(a); t1.append(b) } else { fN.append(a); tN.append(b) }
                        }
                    }
                }
            }
            func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
            let (a1, aN, b1, bN) = (median(f1), median(fN), median(t1), median(tN))
            rows.append([label, String(format: "%.3f", a1), String(format: "%.3f", aN), String(format: "%.2fx", a1 / aN),
                         String(format: "%.3f", b1), String(format: "%.3f", bN), String(format: "%.2fx", b1 / bN), String(format: "%.2fx", aN / bN)])
        }
        print(table(header: ["shape", "float 1 ms", "float \(threads) ms", "float scaling", "int8 1 ms", "int8 \(threads) ms", "int8 scaling",
                             "float / int8 at \(threads)"], rows: rows), terminator: "")
    }

    func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
    }
}
