import ArgumentParser
import Foundation
import MBConvert
import MBCore
import MBRuntime

struct RunBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Float inference latency against onnxruntime: squeezenet_random and a 61M-weight AlexNet, 1 and 2 threads."
    )

    @Option(help: "The shared models folder (squeezenet_random.onnx, light_bvlc_alexnet.onnx).")
    var models = "../shared/models"

    @Option(help: "Timed runs per measurement (median and min reported).")
    var repeats = 20

    @Option(help: "Untimed runs first.")
    var warmup = 3

    @Option(help: "Folder for the generated model and input (default: a temporary folder, removed afterwards).")
    var workdir: String?

    @Option(help: "Python interpreter for the baseline (default: $MBCONVERT_PYTHON, else the checkout's .venv/bin/python, else python3).")
    var python: String?

    @Option(help: "Alternate ours and onnxruntime this many times per row; the ratio is the median of the per-round ratios (robust to load that comes and goes on a shared machine).")
    var rounds = 1

    func run() throws {
        let python = self.python ?? BenchPaths.defaultPython
        let dir = workdir ?? FileManager.default.temporaryDirectory.appendingPathComponent("mbbench-run-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if workdir == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let alex = try RunBenchmark.makeAlexNet(from: models + "/light_bvlc_alexnet.onnx", in: dir)
        print("AlexNet-shaped model with \(alex.weights) seeded weights: \(alex.path)")
        // One seeded input in [0, 1) for both models (both take [1, 3, 224, 224]).
        var rng = SeededGenerator(seed: 224)
        let x = (0..<(3 * 224 * 224)).map { _ in Float(rng.nextUnitDouble()) }
        let input = dir + "/input.npy"
        try NPY.write(NPYArray(floats: x, shape: [1, 3, 224, 224]), to: input)
        let hasORT = BenchPaths.pythonHas(python, modules: ["onnxruntime", "numpy"])
        if !hasORT { print("python3 with onnxruntime not found: reporting mbconvert alone") }
        var rows: [[String]] = []
        for (label, path) in [("squeezenet_random", models + "/squeezenet_random.onnx"), ("alexnet 61M", alex.path)] {
            for threads in [1, 2] {
                var ourRuns: [RunBenchmark.Latency] = [], baseRuns: [RunBenchmark.Latency] = [], ratios: [Double] = []
                var diff = 0.0
                for _ in 0..<max(1, rounds) {
                    let (ours, o) = try RunBenchmark.measureOurs(model: path, input: input, threads: threads, warmup: warmup, repeats: repeats)
                    ourRuns.append(ours)
                    guard hasORT else { continue }
                    let outPath = dir + "/ort_out.npy"
                    let base = try RunBenchmark.measureOnnxruntime(python: python, script: BenchPaths.script("ort_run.py"), model: path, input: input,
                                                                  threads: threads, warmup: warmup, repeats: repeats, outputPath: outPath)
                    baseRuns.append(base)
                    ratios.append(ours.medianMs / base.medianMs)
                    let ref = try NPY.read(path: outPath).floatValues()
                    let scale = ref.map(abs).max() ?? 1
                    diff = Double((zip(o.floats, ref).map { abs($0 - $1) }.max() ?? 0) / max(scale, 1e-30))
                }
                func mid(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
                var row = [label, String(threads), String(format: "%.2f ms", mid(ourRuns.map(\.medianMs))), String(format: "%.2f ms", ourRuns.map(\.minMs).min()!)]
                if hasORT {
                    row += [String(format: "%.2f ms", mid(baseRuns.map(\.medianMs))), String(format: "%.2f ms", baseRuns.map(\.minMs).min()!),
                            String(format: "%.2fx", mid(ratios)), String(format: "%.2f-%.2f", ratios.min()!, ratios.max()!), String(format: "%.1e", diff)]
                }
                rows.append(row)
            }
        }
        var header = ["model", "threads", "mbconvert median", "min"]
        if hasORT { header += ["onnxruntime median", "min", "ours / ort", "range", "max |Δ| rel"] }
        print("median and min of \(repeats) runs after \(warmup) warm-up runs, same input, same process order; float32")
        if rounds > 1 { print("\(rounds) alternating rounds per row: medians of the rounds' medians, min over all runs, median (range) of the per-round ratios") }
        print(table(header: header, rows: rows), terminator: "")
        print("target: ours / ort <= 1.5")
    }
}
