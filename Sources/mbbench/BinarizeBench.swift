import ArgumentParser
import Foundation
import MBConvert

/// Mask + binarization throughput: 1.4-bit 7/2/1 Middle-Out on a 10M-value normal
/// tensor with tensor scales, and on a 4096 x 9216 tensor with channel scales; single thread;
/// beside Scripts/bench/binarize_numpy.py (HBB.md in numpy) on the same data in the same run.
struct BinarizeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "binarize",
        abstract: "Mask + binarization throughput (Middle-Out 7/2/1), ours against numpy on the same tensors."
    )

    @Option(help: "Values in the tensor-scale case.")
    var count = 10_000_000

    @Option(help: "Shape of the channel-scale case, ROWSxCOLS.")
    var channelShape = "4096x9216"

    @Option(help: "Timed runs per case (the fastest is reported).")
    var repeats = 5

    @Option(help: "Timed runs of the numpy baseline per case.")
    var numpyRepeats = 2

    @Option(help: "Python interpreter for the baseline (default: $MBCONVERT_PYTHON, else the checkout's .venv/bin/python, else python3).")
    var python: String?

    @Flag(help: "Skip the numpy baseline.")
    var noNumpy = false

    func run() throws {
        let python = self.python ?? BenchPaths.defaultPython
        let mix = try BitDistribution.tenths([7, 2, 1])
        let dims = channelShape.split(separator: "x").compactMap { Int($0) }
        guard dims.count == 2, dims.allSatisfy({ $0 > 0 }) else { throw ValidationError("--channel-shape must look like 4096x9216") }
        let hasNumpy = !noNumpy && BenchPaths.pythonHas(python, modules: ["numpy"])
        if !noNumpy && !hasNumpy { print("numpy not available (\(python) -c 'import numpy' failed): reporting mbconvert alone") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbbench-binarize-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        var rows: [[String]] = []
        for (label, shape, scale) in [("tensor scales, \(count) values", [count], ScaleMode.tensor),
                                      ("channel scales, \(dims[0])x\(dims[1])", dims, ScaleMode.channel(axis: 0))] {
            let n = shape.reduce(1, *)
            var g = SeededGenerator(seed: 0)
            var values = [Float](repeating: 0, count: n)
            for i in 0..<n { values[i] = Float(g.nextNormal()) }
            let tensor = try FloatTensor(name: "bench", shape: shape, values: values)
            values = []
            let config = BinarizationConfig(distribution: mix, method: .middleOut, scale: scale)
            var best = Double.infinity
            var packed: PackedTensor? = nil
            for _ in 0..<repeats {
                let start = DispatchTime.now().uptimeNanoseconds
                packed = try Binarizer.binarize(tensor, config)
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            let stats = Statistics(original: tensor.values, packed: packed!)
            var row = [label, String(format: "%.1f ms", best * 1e3), String(format: "%.1f M/s", Double(n) / best / 1e6),
                       String(format: "%.6f", stats.normalizedError)]
            if hasNumpy {
                let file = dir.appendingPathComponent("t.npy").path
                try NPY.write(NPYArray(floats: tensor.values, shape: shape), to: file)
                var args = [python, BenchPaths.script("binarize_numpy.py"), file, "--mix", "0.7,0.2,0.1@1,2,3", "--repeats", String(numpyRepeats)]
                if case .channel = scale { args.append("--channel") }
                let result = try Self.runJSON("/usr/bin/env", args)
                let seconds = result["seconds"] as? Double ?? .nan
                row += [String(format: "%.1f ms", seconds * 1e3), String(format: "%.1f M/s", Double(n) / seconds / 1e6),
                        String(format: "%.6f", result["normalized_error"] as? Double ?? .nan),
                        String(format: "%.1fx", seconds / best)]
            }
            rows.append(row)
        }
        var header = ["case (7/2/1 middle-out, 1 thread)", "mbconvert", "values/s", "norm. error"]
        if hasNumpy { header += ["numpy", "values/s", "norm. error", "speedup"] }
        print("fastest of \(repeats) runs (numpy: of \(numpyRepeats)); mask + binarization to the packed form")
        print(table(header: header, rows: rows), terminator: "")
        print("targets: >= 100 M values/s and >= 5x numpy with tensor scales")
    }

    static func runJSON(_ path: String, _ arguments: [String]) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: ChildProcess.output(path, arguments)) as? [String: Any] else {
            throw ValidationError("\(arguments.joined(separator: " ")) printed no JSON object")
        }
        return object
    }
}
