import Foundation
import MBConvert
import MBCore
import MBONNX
import MBRuntime

/// Float inference latency of our runtime against onnxruntime on the same model files and the
/// same input, in the same invocation.
enum RunBenchmark {
    struct Latency: Codable, Sendable {
        var medianMs: Double
        var minMs: Double
        init(medianMs: Double, minMs: Double) {
            self.medianMs = medianMs
            self.minMs = minMs
        }
    }

    /// Writes an AlexNet-shaped model with real weights: `light_bvlc_alexnet.onnx`'s graph with
    /// each `ConstantOfShape` weight replaced by a seeded initializer (He-normal for weights,
    /// N(0, 0.01²) for biases). Returns the path and the number of weights.
    static func makeAlexNet(from lightModel: String, in dir: String, seed: UInt64 = 61) throws -> (path: String, weights: Int) {
        var model = try ONNXReader().load(path: lightModel)
        guard var graph = model.graph else { throw BenchmarkError("\(lightModel): no graph") }
        let lowering = ONNXLowering(file: lightModel)
        var shapes: [String: [Int]] = [:]
        for t in graph.initializers {
            let ir = try lowering.tensor(t, place: "initializer")
            if ir.elementType == .int64, case .dense(let bytes) = ir.storage {
                shapes[ir.name] = bytes.withBytes { raw in (0..<ir.elementCount).map { Int(raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) } }
            }
        }
        var rng = SeededGenerator(seed: seed)
        var replaced = Set<String>()
        var initializers: [ONNXTensor] = graph.initializers
        var total = 0
        graph.nodes = graph.nodes.filter { n in
            guard n.opType == "ConstantOfShape", let s = shapes[n.inputs[0]] else { return true }
            replaced.insert(n.inputs[0])
            let count = s.reduce(1, *)
            let fanIn = s.dropFirst().reduce(1, *)
            let std = s.count >= 2 ? (2.0 / Double(fanIn)).squareRoot() : 0.01
            var values = [Float](repeating: 0, count: count)
            for i in 0..<count { values[i] = Float(rng.nextNormal() * std) }
            total += count
            var t = ONNXTensor()
            t.name = n.outputs[0]
            t.dims = s.map(Int64.init)
            t.dataType = ElementType.float.rawValue
            t.rawData = values.withUnsafeBytes { ByteSlice(storage: ByteStorage(copying: $0)) }
            initializers.append(t)
            return false
        }
        graph.initializers = initializers.filter { !replaced.contains($0.name ?? "") }
        // IR 7: initializers need not be graph inputs (keeps onnxruntime's constant folding on).
        let constants = Set(graph.initializers.compactMap(\.name)).union(replaced)
        graph.inputs = graph.inputs.filter { !constants.contains($0.name ?? "") }
        model.graph = graph
        model.irVersion = 7
        let path = dir + "/alexnet_random.onnx"
        try ONNXWriter().write(model, to: path)
        return (path, total)
    }

    /// Times `repeats` runs of `model` on `input` after `warmup` runs, in this process.
    static func measureOurs(model path: String, input: String, threads: Int, warmup: Int, repeats: Int) throws -> (Latency, MBTensor) {
        let model = try ModelLoading.load(path: path)
        let x = try MBTensor(npy: NPY.read(path: input))
        let session = model.makeSession(.init(threads: threads))
        let feeds = [model.inputs[0].name: x]
        var out: MBTensor?
        for _ in 0..<warmup { out = try session.run(feeds)[model.outputs[0].name] }
        var times: [Double] = []
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            out = try session.run(feeds)[model.outputs[0].name]
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        times.sort()
        return (Latency(medianMs: times[times.count / 2], minMs: times[0]), out!)
    }

    /// Runs Scripts/bench/ort_run.py; it prints a Latency as JSON and writes its output to `outputPath`.
    static func measureOnnxruntime(python: String, script: String, model: String, input: String, threads: Int,
                                          warmup: Int, repeats: Int, outputPath: String) throws -> Latency {
        try ChildProcess.lastLineJSON(Latency.self, "/usr/bin/env", [python, script, model, input, "--threads", String(threads),
                                                                  "--warmup", String(warmup), "--repeats", String(repeats), "--output", outputPath])
    }
}
