import ArgumentParser
import Foundation
import MBConvert
import MBCore
import MBRuntime

struct RunBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Float inference latency and peak memory against onnxruntime: every model of a folder (--models), or squeezenet_random and a 61M-weight AlexNet.",
        discussion: """
        With --models: every `<stem>.onnx` with a `<stem>/input_0.npy` beside it (inputs named by \
        `<stem>/io.json` when present, else given in order), each run by a child process of ours \
        (`mbbench run-once`) and one of onnxruntime (Scripts/bench/ort_run.py), alternating, per \
        thread count. Ratios are ours / onnxruntime (median of the per-round ratios); peak memory \
        is each child's peak resident set (VmHWM), so both include their runtime's libraries.
        """
    )

    @Option(name: .customLong("models"), help: "A models folder or one .onnx file (repeatable). Without it: the squeezenet_random / AlexNet pair from --shared.")
    var modelSources: [String] = []

    @Option(help: "The shared models folder for the default pair (squeezenet_random.onnx, light_bvlc_alexnet.onnx).")
    var shared = "../shared/models"

    @Option(name: .customLong("threads"), help: "Thread counts to measure (repeatable; default 1 and 2).")
    var threadCounts: [Int] = []

    @Flag(help: "Print the table as Markdown, headed by the date and the command (what the README carries).")
    var markdown = false

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
        if !modelSources.isEmpty {
            try FolderRunBench(sources: modelSources, threads: threadCounts.isEmpty ? [1, 2] : threadCounts, repeats: repeats,
                               warmup: warmup, rounds: rounds, python: python, markdown: markdown).run()
            return
        }
        let models = shared
        let dir = workdir ?? FileManager.default.temporaryDirectory.appendingPathComponent("mbbench-run-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if workdir == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let alex = try RunBenchmark.makeAlexNet(from: models + "/light_bvlc_alexnet.onnx", in: dir)
        if !markdown { print("AlexNet-shaped model with \(alex.weights) seeded weights: \(alex.path)") }
        // One seeded input in [0, 1) for both models (both take [1, 3, 224, 224]).
        var rng = SeededGenerator(seed: 224)
        let x = (0..<(3 * 224 * 224)).map { _ in Float(rng.nextUnitDouble()) }
        let input = dir + "/input.npy"
        try NPY.write(NPYArray(floats: x, shape: [1, 3, 224, 224]), to: input)
        let hasORT = BenchPaths.pythonHas(python, modules: ["onnxruntime", "numpy"])
        if !hasORT { print("python3 with onnxruntime not found: reporting mbconvert alone") }
        var rows: [[String]] = []
        for (label, path) in [("squeezenet_random", models + "/squeezenet_random.onnx"), ("alexnet 61M", alex.path)] {
            for threads in threadCounts.isEmpty ? [1, 2] : threadCounts {
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
        var method = "median and min of \(repeats) runs after \(warmup) warm-up runs, same seeded input, same process order; float32"
        if rounds > 1 { method += "; \(rounds) alternating rounds per row: medians of the rounds' medians, min over all runs, median (range) of the per-round ratios" }
        if markdown {
            MarkdownReport.print(method: method, header: header, rows: rows)
            return
        }
        print(method)
        print(table(header: header, rows: rows), terminator: "")
        print("target: ours / ort <= 1.5")
    }
}
