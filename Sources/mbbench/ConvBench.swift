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
        print("RowGemm available (AVX-512): \(RowGemm.isAvailable); BLAS: \(BLAS.name) (single-threaded); median of \(repeats) runs; bias + Relu")
        BLAS.setThreads(1)
        var rows: [[String]] = []
        let scratch = KernelScratch()
        for (label, g) in Self.shapes {
            var rng = SeededGenerator(seed: 3)
            let x = (0..<(g.inChannels * g.inputSize)).map { _ in Float(rng.nextUnitDouble()) }
            let w = (0..<(g.outChannels * g.inPerGroup * g.kernelSize)).map { _ in Float(rng.nextNormal() * 0.1) }
            let b = (0..<g.outChannels).map { _ in Float(rng.nextNormal() * 0.1) }
            var y = [Float](repeating: 0, count: g.outChannels * g.outputSize)
            let macs = Double(g.outChannels * g.outputSize * g.inPerGroup * g.kernelSize)
            var impls: [(String, Conv.Implementation)] = [("blas", .blas)]
            let d = g.dims3
            if d.kernel == (1, 1, 1) && d.strides == (1, 1, 1) && d.pads == (0, 0, 0) { impls.append(("pointwise", .rowGemm(.pointwise))) }
            if d.strides == (1, 1, 1) && d.kernel.0 == 1 { impls.append(("shifted", .rowGemm(.shifted))) }
            impls.append(("im2col", .rowGemm(.im2col)))
            for threads in [1, 2] {
                var base = 0.0
                for (name, impl) in impls {
                    let t = time {
                        Conv.forward(.fast, g, input: x, weights: w, bias: b, output: &y, activation: .relu, threads: threads, scratch: scratch, implementation: impl)
                    }
                    if name == "blas" { base = t }
                    let chosen = name != "blas" && impl == .rowGemm(Conv.rowGemmPath(g)) ? " *" : ""
                    rows.append([label, String(threads), name + chosen, String(format: "%.3f ms", t), String(format: "%.1f", macs / t / 1e6),
                                 String(format: "%.2fx", base / t)])
                }
            }
        }
        print(table(header: ["layer", "threads", "implementation", "median", "GMAC/s", "speedup vs blas"], rows: rows), terminator: "")
        print("* = the path Conv picks for this shape")
    }

    func time(_ body: () -> Void) -> Double {
        body()
        var t: [Double] = []
        for _ in 0..<repeats {
            let s = DispatchTime.now().uptimeNanoseconds
            body()
            t.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6)
        }
        t.sort()
        return t[t.count / 2]
    }
}
