import ArgumentParser
import Foundation
import MBConvert
import MBCore
import MBKernels

/// Every distinct convolution of SqueezeNet 1.1 (and AlexNet's) through each implementation,
/// at 1 and 2 threads: the BLAS path (im2col + OpenBLAS sgemm split by columns, separate bias
/// and Relu pass) as the baseline, and RowGemm on each path that suits the geometry. Shows
/// which path is best per shape (what `Conv.rowGemmPath` picks) and the GMAC/s reached.
struct ConvBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conv",
        abstract: "Float convolution kernels per layer shape: BLAS (im2col + sgemm) against RowGemm's paths, 1 and 2 threads."
    )

    @Option(help: "Timed runs per measurement (median reported).")
    var repeats = 20

    @Option(help: "Which shapes: squeezenet (SqueezeNet 1.1 and AlexNet), real (layer shapes of YOLO, U-Net, ResNet, MobileNet, audio CNNs; depthwise; ConvTranspose), or all.")
    var set = "squeezenet"

    @Option(help: "Only shapes whose label contains this text.")
    var filter: String?

    @Option(help: ArgumentHelp("Per-layer shapes with onnxruntime's times (Scripts/bench/ort_conv_layers.py output): each layer at one thread on the path Conv picks, against onnxruntime's time for that node.", valueName: "file"))
    var layers: String?

    @Flag(help: "Time one thread by its CPU time (CLOCK_THREAD_CPUTIME_ID), which a loaded machine disturbs less than wall time; measures threads=1 only.")
    var cpuTime = false

    /// Layer shapes of trained networks (YOLO11-seg, a Keras U-Net, ResNet-50, MobileNetV2/V3,
    /// DNSMOS, a speech-embedding CNN): what `Conv` has to be fast on beyond SqueezeNet.
    static let realShapes: [(String, ConvGeometry)] = {
        func conv(_ c: Int, _ o: Int, _ h: Int, _ w: Int, _ k: [Int], stride: Int = 1, pad: [Int]? = nil, dilation: Int = 1, groups: Int = 1) -> ConvGeometry {
            let p = pad ?? k.map { ($0 - 1) / 2 * dilation }
            return ConvGeometry(batch: 1, inChannels: c, outChannels: o, groups: groups, input: [h, w], kernel: k, strides: [stride, stride],
                                dilations: [dilation, dilation], padBegin: p, padEnd: p)
        }
        return [
            ("first 3->32 3x3/2 @640", conv(3, 32, 640, 640, [3, 3], stride: 2)),
            ("first 3->32 3x3/2 @224", conv(3, 32, 224, 224, [3, 3], stride: 2)),
            ("resnet 7x7/2 3->64 @224", conv(3, 64, 224, 224, [7, 7], stride: 2)),
            ("yolo 3x3/2 16->32 @320", conv(16, 32, 320, 320, [3, 3], stride: 2)),
            ("yolo 3x3/2 32->64 @320", conv(32, 64, 320, 320, [3, 3], stride: 2)),
            ("yolo 3x3 16->32 @160", conv(16, 32, 160, 160, [3, 3])),
            ("yolo 3x3 128 @160", conv(128, 128, 160, 160, [3, 3])),
            ("yolo 3x3/2 128 @160", conv(128, 128, 160, 160, [3, 3], stride: 2)),
            ("yolo 3x3 64 @80", conv(64, 64, 80, 80, [3, 3])),
            ("yolo 3x3/2 256 @80", conv(256, 256, 80, 80, [3, 3], stride: 2)),
            ("yolo 3x3 128 @20", conv(128, 128, 20, 20, [3, 3])),
            ("yolo 1x1 96->128 @160", conv(96, 128, 160, 160, [1, 1])),
            ("yolo 1x1 384->256 @40", conv(384, 256, 40, 40, [1, 1])),
            ("yolo 1x1 768->512 @20", conv(768, 512, 20, 20, [1, 1])),
            ("unet 3x3 32 @256", conv(32, 32, 256, 256, [3, 3])),
            ("unet 3x3 160->64 @256", conv(160, 64, 256, 256, [3, 3])),
            ("unet 3x3 128 @64", conv(128, 128, 64, 64, [3, 3])),
            ("resnet 1x1/2 128->256 @56", conv(128, 256, 56, 56, [1, 1], stride: 2)),
            ("resnet 3x3 32 @56", conv(32, 32, 56, 56, [3, 3])),
            ("dnsmos 3x3 1->128 @900x161", conv(1, 128, 900, 161, [3, 3])),
            ("dnsmos 3x3 128->64 @900x161", conv(128, 64, 900, 161, [3, 3])),
            ("embed 1x3 32 @76x32", conv(32, 32, 76, 32, [1, 3])),
            ("embed 3x1 32 @76x32", conv(32, 32, 76, 32, [3, 1])),
            ("dilated 3x3 d2 64 @64", conv(64, 64, 64, 64, [3, 3], dilation: 2)),
            ("grouped 3x3 g4 128 @56", conv(128, 128, 56, 56, [3, 3], groups: 4)),
            ("dw 3x3 32 @112", conv(32, 32, 112, 112, [3, 3], groups: 32)),
            ("dw 3x3/2 96 @112", conv(96, 96, 112, 112, [3, 3], stride: 2, groups: 96)),
            ("dw 3x3 144 @56", conv(144, 144, 56, 56, [3, 3], groups: 144)),
            ("dw 5x5 240 @28", conv(240, 240, 28, 28, [5, 5], groups: 240)),
            ("dw 5x5/2 72 @56", conv(72, 72, 56, 56, [5, 5], stride: 2, groups: 72)),
            ("dw 3x3 x2 32->64 @56", conv(32, 64, 56, 56, [3, 3], groups: 32)),
        ]
    }()

    /// Decoder upsamplings: U-Net (kernel 4), YOLO mask prototypes (kernel 2), CenterFace-like (kernel 3, output padding).
    static let transposeShapes: [(String, ConvTransposeGeometry)] = {
        func ct(_ c: Int, _ o: Int, _ side: Int, k: Int, pad: Int, outputPadding: Int = 0) -> ConvTransposeGeometry {
            let out = 2 * (side - 1) + outputPadding + k - 2 * pad
            return ConvTransposeGeometry(batch: 1, inChannels: c, outChannels: o, input: [side, side], kernel: [k, k], strides: [2, 2],
                                         dilations: [1, 1], padBegin: [pad, pad], output: [out, out])
        }
        return [
            ("convT k4/2 128 @64", ct(128, 128, 64, k: 4, pad: 1)),
            ("convT k4/2 128 @128", ct(128, 128, 128, k: 4, pad: 1)),
            ("convT k2/2 128 @80", ct(128, 128, 80, k: 2, pad: 0)),
            ("convT k3/2 64 @40", ct(64, 64, 40, k: 3, pad: 1, outputPadding: 1)),
            ("convT k4/2 24 @8", ct(24, 24, 8, k: 4, pad: 1)),
        ]
    }()

    static let shapes: [(String, ConvGeometry)] = {
        func conv(_ c: Int, _ o: Int, _ side: Int, _ k: Int, stride: Int = 1, pad: Int = 0) -> ConvGeometry {
            ConvGeometry(batch: 1, inChannels: c, outChannels: o, input: [side, side], kernel: [k, k], strides: [stride, stride],
                         padBegin: [pad, pad], padEnd: [pad, pad])
        }
        return [
            ("sq conv1 3x3/2", conv(3, 64, 224, 3, stride: 2)),
            ("sq squeeze 64->16 @55", conv(64, 16, 55, 1)),
            ("sq expand1x1 16->64 @55", conv(16, 64, 55, 1)),
            ("sq expand3x3 16->64 @55", conv(16, 64, 55, 3, pad: 1)),
            ("sq expand3x3 32->128 @27", conv(32, 128, 27, 3, pad: 1)),
            ("sq expand3x3 48->192 @13", conv(48, 192, 13, 3, pad: 1)),
            ("sq expand3x3 64->256 @13", conv(64, 256, 13, 3, pad: 1)),
            ("sq classifier 512->1000 @13", conv(512, 1000, 13, 1)),
            ("alex conv1 11x11/4", conv(3, 64, 224, 11, stride: 4, pad: 2)),
            ("alex conv2 5x5 64->192 @27", conv(64, 192, 27, 5, pad: 2)),
            ("alex conv3 3x3 192->384 @13", conv(192, 384, 13, 3, pad: 1)),
        ]
    }()

    func run() throws {
        if let layers {
            try runLayers(layers)
            return
        }
        print("RowGemm available (AVX-512): \(RowGemm.isAvailable); BLAS: \(BLAS.name) (single-threaded); median of \(repeats) runs; bias + Relu" +
              (cpuTime ? "; thread CPU time" : "; wall time"))
        BLAS.setThreads(1)
        var rows: [[String]] = []
        let scratch = KernelScratch()
        let chosen = (set == "squeezenet" ? Self.shapes : set == "real" ? Self.realShapes : Self.shapes + Self.realShapes)
            .filter { filter.map($0.0.contains) ?? true }
        for (label, g) in chosen {
            var rng = SeededGenerator(seed: 3)
            let x = (0..<(g.inChannels * g.inputSize)).map { _ in Float(rng.nextUnitDouble()) }
            let w = (0..<(g.outChannels * g.inPerGroup * g.kernelSize)).map { _ in Float(rng.nextNormal() * 0.1) }
            let b = (0..<g.outChannels).map { _ in Float(rng.nextNormal() * 0.1) }
            var y = [Float](repeating: 0, count: g.outChannels * g.outputSize)
            let macs = Double(g.outChannels * g.outputSize * g.inPerGroup * g.kernelSize)
            var impls: [(String, Conv.Implementation)] = [("blas", .blas)]
            let d = g.dims3
            if g.inPerGroup == 1 && g.groups > 1 {
                impls = [("direct", .depthwiseDirect), ("phases", .automatic)]
            } else {
                if Conv.isPointwise(g) { impls.append(("pointwise", .rowGemm(.pointwise))) }
                if d.strides.0 == 1 && d.kernel.0 == 1 { impls.append(("shifted", .rowGemm(.shifted))) }
                impls.append(("im2col", .rowGemm(.im2col)))
                if Conv.isStridedPointwise(g) && RowGemm.isAvailable { impls.append(("gather+pointwise", .automatic)) }
                if !Conv.isPointwise(g) && d.strides.0 == 1 && d.kernel.0 == 1 && d.input.0 == 1 { impls.append(("implicit", .rowGemm(.implicit))) }
                if Conv.channelsAvailable(g) { impls.append(("channels", .channels)) }
            }
            // The weights packed once for the channel kernel, as a compiled model's Conv node keeps them.
            let packed = ConvChannelWeights()
            for threads in cpuTime ? [1] : [1, 2] {
                var base = 0.0
                for (name, impl) in impls {
                    let t = time {
                        Conv.forward(.fast, g, input: x, weights: w, bias: b, output: &y, activation: .relu, threads: threads, scratch: scratch,
                                     implementation: impl, packedWeights: packed)
                    }
                    if name == "blas" || name == "direct" { base = t }
                    let picksChannels = Conv.channelsAvailable(g) && Conv.prefersChannels(g)
                    let chosen = name != "blas" && (picksChannels ? impl == .channels : impl == .rowGemm(Conv.rowGemmPath(g)) || impl == .automatic)
                        ? " *" : ""
                    rows.append([label, String(threads), name + chosen, String(format: "%.3f ms", t), String(format: "%.1f", macs / t / 1e6),
                                 String(format: "%.2fx", base / t)])
                }
            }
        }
        if set != "squeezenet" {
            for (label, g) in Self.transposeShapes where filter.map(label.contains) ?? true {
                var rng = SeededGenerator(seed: 5)
                let d = g.dims3
                let x = (0..<(g.inChannels * d.inputSize)).map { _ in Float(rng.nextUnitDouble()) }
                let w = (0..<(g.inChannels * g.outPerGroup * d.kernelSize)).map { _ in Float(rng.nextNormal() * 0.1) }
                let b = (0..<g.outChannels).map { _ in Float(rng.nextNormal() * 0.1) }
                var y = [Float](repeating: 0, count: g.outChannels * d.outputSize)
                let macs = Double(g.inChannels * d.inputSize * g.outPerGroup * d.kernelSize)
                for threads in cpuTime ? [1] : [1, 2] {
                    var base = 0.0
                    for (name, impl) in [("blas+col2im", ConvTranspose.Implementation.columns), ("phases", .phases)] {
                        let t = time {
                            ConvTranspose.forward(.fast, g, input: x, weights: w, bias: b, output: &y, threads: threads, scratch: scratch, implementation: impl)
                        }
                        if impl == .columns { base = t }
                        let picked = (impl == .phases) == ConvTranspose.suitsPhases(g) ? " *" : ""
                        rows.append([label, String(threads), name + picked, String(format: "%.3f ms", t), String(format: "%.1f", macs / t / 1e6),
                                     String(format: "%.2fx", base / t)])
                    }
                }
            }
        }
        print(table(header: ["layer", "threads", "implementation", "median", "GMAC/s", "speedup vs blas"], rows: rows), terminator: "")
        print("* = the path Conv picks for this shape; depthwise rows: speedup vs the direct loops")
    }

    /// One row per layer of `file`: ours (one thread, bias + Relu, the path `Conv` picks) against
    /// onnxruntime's time for that node, and both rates in GFLOP/s (2 per multiply-add).
    func runLayers(_ file: String) throws {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        print("one thread; ours: median of \(repeats) runs" + (cpuTime ? " (thread CPU time)" : "") + "; onnxruntime: its profiler's median node time")
        BLAS.setThreads(1)
        let scratch = KernelScratch()
        var rows: [[String]] = []
        var oursTotal = 0.0, ortTotal = 0.0
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ").map(String.init)
            let v = f.dropFirst().compactMap { Double($0) }
            guard f.count == 18, v.count == 17 else { continue }
            let i = v.map { Int($0) }
            let g = ConvGeometry(batch: i[0], inChannels: i[1], outChannels: i[4], groups: i[15], input: [i[2], i[3]],
                                 kernel: [i[5], i[6]], strides: [i[7], i[8]], dilations: [i[9], i[10]],
                                 padBegin: [i[11], i[12]], padEnd: [i[13], i[14]])
            if let filter, !f[0].contains(filter) { continue }
            var rng = SeededGenerator(seed: 3)
            let x = (0..<(g.batch * g.inChannels * g.inputSize)).map { _ in Float(rng.nextUnitDouble()) }
            let w = (0..<(g.outChannels * g.inPerGroup * g.kernelSize)).map { _ in Float(rng.nextNormal() * 0.1) }
            let b = (0..<g.outChannels).map { _ in Float(rng.nextNormal() * 0.1) }
            var y = [Float](repeating: 0, count: g.batch * g.outChannels * g.outputSize)
            let flops = 2 * Double(g.batch * g.outChannels * g.outputSize * g.inPerGroup * g.kernelSize)
            // Each layer's weights packed once, as a compiled model's Conv node keeps them.
            let packed = ConvChannelWeights()
            let t = time {
                Conv.forward(.fast, g, input: x, weights: w, bias: b, output: &y, activation: .relu, threads: 1, scratch: scratch,
                             packedWeights: packed)
            }
            // The other candidate: RowGemm's path where the channel kernel is picked, and back.
            let channels = Conv.channelsAvailable(g) && Conv.prefersChannels(g)
            let other: Double? = !Conv.channelsAvailable(g) ? nil : time {
                Conv.forward(.fast, g, input: x, weights: w, bias: b, output: &y, activation: .relu, threads: 1, scratch: scratch,
                             implementation: channels ? .automatic : .channels, packedWeights: channels ? nil : packed)
            }
            let ort = v[16] / 1000
            let path = g.inPerGroup == 1 && g.groups > 1 ? "depthwise" : channels ? "channels" : "\(Conv.rowGemmPath(g))"
            oursTotal += t
            if ort > 0 { ortTotal += ort }
            let shape = "\(g.inChannels)->\(g.outChannels) \(g.kernel[0])x\(g.kernel[1])/\(g.strides[0]) @\(g.input[0])x\(g.input[1])" +
                (g.groups > 1 ? " g\(g.groups)" : "")
            rows.append([f[0], shape, path, String(format: "%.3f", t), ort > 0 ? String(format: "%.3f", ort) : "-",
                         ort > 0 ? String(format: "%.2f", t / ort) : "-", String(format: "%.1f", flops / t / 1e6),
                         ort > 0 ? String(format: "%.1f", flops / ort / 1e6) : "-",
                         other.map { String(format: "%.1f", flops / $0 / 1e6) } ?? "-"])
        }
        rows.append(["total", "", "", String(format: "%.3f", oursTotal), String(format: "%.3f", ortTotal),
                     String(format: "%.2f", oursTotal / ortTotal), "", "", ""])
        print(table(header: ["node", "shape", "path", "ours ms", "ort ms", "ratio", "ours GFLOP/s", "ort GFLOP/s", "other path GFLOP/s"], rows: rows),
              terminator: "")
        print("other path: the channel-vectorised kernel where RowGemm's path is picked, and RowGemm's path where the channel kernel is")
    }

    func time(_ body: () -> Void) -> Double {
        body()
        var t: [Double] = []
        func now() -> Double {
            guard cpuTime else { return Double(DispatchTime.now().uptimeNanoseconds) / 1e6 }
            var ts = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
            return Double(ts.tv_sec) * 1e3 + Double(ts.tv_nsec) / 1e6
        }
        for _ in 0..<repeats {
            let s = now()
            body()
            t.append(now() - s)
        }
        t.sort()
        return t[t.count / 2]
    }
}
