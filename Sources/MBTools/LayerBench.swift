import Foundation
import MBConvert
import MBCore
import MBKernels
import MBRuntime

/// `mbconvert bench model.mbm`: per-layer time of each path for binarized weights (expanded
/// floats, packed bit planes) on the same inputs, with the weights' resident bytes and the
/// outputs' agreement.
public enum LayerBench {
    public struct Options: Sendable {
        public var inputs: [String] = []
        public var repeats = 10
        public var threads = 1
        public var seed: UInt64 = 1
        /// Tables for the packed mode's binarized Convs (`int8`: every Conv that fits runs on them).
        public var convTables: MBModel.Options.ConvTables = .float
        /// The mode timed against the expanded one: packed, or auto (per layer the faster form).
        public var weights: MBModel.Options.Weights = .packed
        public init() {}
    }

    public static func run(modelPath: String, options: Options) throws -> String {
        let expanded = try ModelLoading.load(path: modelPath, weights: .expanded)
        let packed = try ModelLoading.load(path: modelPath, weights: options.weights, convTables: options.convTables)
        let feeds = options.inputs.isEmpty ? try randomInputs(expanded, seed: options.seed) : try ModelInputs.read(options.inputs, model: expanded)
        var lines = ["\(modelPath): \(options.threads) thread(s), median of \(options.repeats) runs (\(options.threads == 1 ? "thread CPU time" : "wall time") per node); bit-plane kernels: \(BitPlaneMatrix.isaName)"]
        var profiles: [[(name: String, opType: String, ms: Double)]] = []
        var totals: [Double] = []
        var outputs: [[String: MBTensor]] = []
        for model in [expanded, packed] {
            var sessionOptions = MBSession.Options(threads: options.threads, profile: true)
            // One thread: every kernel runs on this thread, so its CPU time is the node's cost.
            sessionOptions.profileThreadCPUTime = options.threads == 1
            let session = model.makeSession(sessionOptions)
            var out = try session.run(feeds)
            var runs: [[Double]] = []
            var total: [Double] = []
            for _ in 0..<max(1, options.repeats) {
                let start = DispatchTime.now().uptimeNanoseconds
                out = try session.run(feeds)
                total.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                runs.append(session.lastProfile!.nodes.map { Double($0.nanoseconds) / 1e6 })
            }
            let nodes = session.lastProfile!.nodes
            profiles.append(nodes.indices.map { i in (nodes[i].name, nodes[i].opType, median(runs.map { $0[i] })) })
            totals.append(median(total))
            outputs.append(out)
        }
        let packedSet = Set(packed.packedNodes)
        var rows: [[String]] = []
        for (i, e) in profiles[0].enumerated() {
            let p = i < profiles[1].count && profiles[1][i].name == e.name ? profiles[1][i].ms : .nan
            guard e.ms >= 0.01 || packedSet.contains(e.name) else { continue }
            rows.append([e.name, e.opType, packedSet.contains(e.name) ? "bit planes" : "-", String(format: "%.3f", e.ms),
                         String(format: "%.3f", p), p.isNaN ? "-" : String(format: "%.2fx", e.ms / p)])
        }
        rows.append(["total", "", "", String(format: "%.3f", totals[0]), String(format: "%.3f", totals[1]), String(format: "%.2fx", totals[0] / totals[1])])
        lines.append(table(header: ["node", "op", "\(options.weights) path", "expanded ms", "\(options.weights) ms", "speedup"], rows: rows, rightAligned: [3, 4, 5]))
        lines.append(String(format: "weights resident: expanded %.2f MB, packed %.2f MB", Double(expanded.weightBytes) / 1e6, Double(packed.weightBytes) / 1e6))
        for info in expanded.outputs {
            guard let a = outputs[0][info.name]?.floats, let b = outputs[1][info.name]?.floats else { continue }
            let scale = max(a.map(abs).max() ?? 0, 1e-30)
            let diff = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            lines.append(String(format: "output %@: max |expanded - packed| / max |expanded| = %.2e", info.name as NSString, diff / scale))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }

    /// Seeded uniform [0, 1) inputs for every float input with fixed dimensions.
    static func randomInputs(_ model: MBModel, seed: UInt64) throws -> [String: MBTensor] {
        var rng = SeededGenerator(seed: seed)
        var feeds: [String: MBTensor] = [:]
        for info in model.inputs {
            guard let dims = info.shape else { throw ConversionError("input '\(info.name)' has no shape; pass --input NAME=file.npy") }
            let shape = try dims.map { d -> Int in
                guard case .fixed(let n) = d else { throw ConversionError("input '\(info.name)' has symbolic dimension \(d); pass --input NAME=file.npy") }
                return Int(n)
            }
            feeds[info.name] = MBTensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in Float(rng.nextUnitDouble()) })
        }
        return feeds
    }
}
