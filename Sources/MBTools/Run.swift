import Foundation
import MBConvert
import MBCore
import MBRuntime

/// `mbconvert run`: load a model, feed `.npy` inputs, write `.npy` outputs, summarize them and
/// optionally time repeated runs.
public enum RunModel {
    public struct Options: Sendable {
        /// NAME=path pairs (a bare path is accepted when the model has one input).
        public var inputs: [String]
        public var outputDirectory: String?
        public var repeats: Int
        public var threads: Int
        /// Print where the time went, per operator type.
        public var profile = false
        /// With `profile`: how many of the slowest nodes to list; 0 lists every node in graph order.
        public var profileNodes = 10
        /// How binarized weights run (expanded floats or bit planes).
        public var weights: MBModel.Options.Weights = .auto
        /// Run the load-time graph optimizer (off: the graph as written, for comparison).
        public var optimize = true
        /// Lookup tables for binarized Convs (float, or int8: faster, lossy).
        public var convTables: MBModel.Options.ConvTables = .float
        public init(inputs: [String], outputDirectory: String? = nil, repeats: Int = 0, threads: Int = 1) {
            self.inputs = inputs
            self.outputDirectory = outputDirectory
            self.repeats = repeats
            self.threads = threads
        }
    }

    /// Runs and returns the report text.
    public static func run(modelPath: String, options: Options) throws -> String {
        let model = try ModelLoading.load(path: modelPath, weights: options.weights, optimize: options.optimize,
                                           convTables: options.convTables)
        let feeds = try ModelInputs.read(options.inputs, model: model)
        let session = model.makeSession(.init(threads: options.threads, profile: options.profile))
        let outputs = try session.run(feeds)
        var lines: [String] = []
        for info in model.outputs {
            guard let t = outputs[info.name] else { continue }
            lines.append("\(info.name): \(t.elementType.name) \(t.shape)")
            lines.append("  " + summary(t))
            if let dir = options.outputDirectory {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                let path = (dir as NSString).appendingPathComponent(ModelInputs.fileName(for: info.name))
                // uint64 is held as its int64 bit pattern: written back as uint64.
                let array = info.elementType == .uint64 ? (t.npy.reinterpreted(as: .uint64) ?? t.npy) : t.npy
                try NPY.write(array, to: path)
                lines.append("  written to \(path)")
            }
        }
        lines.append(String(format: "activation memory: %.1f MB peak (runtime tensors alive at once)", Double(session.lastPeakActivationBytes) / 1e6))
        if options.repeats > 0 {
            var times: [Double] = []
            var nodeTimes: [[UInt64]] = []
            for _ in 0..<options.repeats {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try session.run(feeds)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                if let p = session.lastProfile { nodeTimes.append(p.nodes.map(\.nanoseconds)) }
            }
            times.sort()
            lines.append("buffers allocated by the last run: \(session.lastRunAllocations); outputs written over a dying input: \(session.lastRunReusedBuffers)"
                         + "; Concat inputs written in place: \(session.lastRunConcatInputsInPlace)")
            if !model.optimizerReport.isEmpty {
                lines.append("optimizer: " + model.optimizerReport.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            }
            if let p = session.lastProfile {
                lines += profileLines(p, runs: nodeTimes, nodes: options.profileNodes)
                lines += weightChoiceLines(model)
            }
            lines.append(String(format: "latency over %d runs (%d thread%@): median %.3f ms, min %.3f ms",
                                options.repeats, options.threads, options.threads == 1 ? "" : "s", times[times.count / 2], times[0]))
            if let m = ProcessMemory.current() {
                lines.append(String(format: "resident memory: %.1f MB now, %.1f MB peak; weights %.1f MB (%@)",
                                    Double(m.residentBytes) / 1e6, Double(m.peakBytes) / 1e6, Double(model.weightBytes) / 1e6,
                                    options.weights.rawValue as NSString))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Time per operator type and the `count` slowest nodes (every node in graph order for 0):
    /// each node's median over the timed runs (`runs`, one time per node and run, in `p`'s node
    /// order), which a busy machine disturbs less than one run's times.
    static func profileLines(_ p: MBProfile, runs: [[UInt64]], nodes count: Int = 10) -> [String] {
        var nodes = p.nodes
        if runs.count > 1, runs.allSatisfy({ $0.count == nodes.count }) {
            for k in nodes.indices { nodes[k].nanoseconds = runs.map { $0[k] }.sorted()[runs.count / 2] }
        }
        var totals: [String: (nanoseconds: UInt64, count: Int)] = [:]
        for n in nodes { totals[n.opType, default: (0, 0)].nanoseconds += n.nanoseconds; totals[n.opType, default: (0, 0)].count += 1 }
        var lines = ["time per operator type (each node's median over \(max(runs.count, 1)) runs):"]
        for (op, t) in totals.sorted(by: { $0.value.nanoseconds > $1.value.nanoseconds }) {
            lines.append(String(format: "  %-20@ %3d nodes %9.3f ms", op as NSString, t.count, Double(t.nanoseconds) / 1e6))
        }
        lines.append(count > 0 ? "slowest nodes:" : "nodes:")
        for n in count > 0 ? Array(nodes.sorted(by: { $0.nanoseconds > $1.nanoseconds }).prefix(count)) : nodes {
            lines.append(String(format: "  %-20@ %9.3f ms  %@", n.opType as NSString, Double(n.nanoseconds) / 1e6, n.name as NSString))
        }
        return lines
    }

    /// Per binarized weight (packed and auto modes): the form it runs in and why.
    static func weightChoiceLines(_ model: MBModel) -> [String] {
        guard !model.weightChoices.isEmpty else { return [] }
        let packed = model.weightChoices.filter(\.packed).count
        var lines = ["binarized weights (\(model.options.weights.rawValue)): \(packed) of \(model.weightChoices.count) packed"]
        for c in model.weightChoices {
            var line = String(format: "  %@: %@, %.3f MB resident", c.node as NSString,
                              c.lookupTables ? (c.decisions.contains(where: \.dotProducts) ? "int8 dot products" : "lookup tables")
                                  : c.packed ? "packed" : "expanded", Double(c.residentBytes) / 1e6)
            line += c.compactBytes > 0 ? String(format: " (packed %.3f MB, expanded %.3f MB)", Double(c.compactBytes) / 1e6, Double(c.expandedBytes) / 1e6)
                : " (Conv without a budget: the packed form, the float kernel after a decode, not built)"
            if c.decodeNanoseconds > 0 { line += String(format: "; decode %.3f ms", c.decodeNanoseconds / 1e6) }
            if let p = c.packedTrialNanoseconds, let e = c.expandedTrialNanoseconds {
                line += String(format: "; batch-1 product packed %.3f ms, expanded %.3f ms", p / 1e6, e / 1e6)
                if let l = c.lookupTableTrialNanoseconds { line += String(format: ", lookup tables %.3f ms", l / 1e6) }
            } else if let e = c.expandedTrialNanoseconds, let l = c.lookupTableTrialNanoseconds {
                line += String(format: "; trial convolution expanded %.3f ms, lookup tables %.3f ms", e / 1e6, l / 1e6)
            }
            if c.decidesAtRun {
                line += c.decisions.isEmpty ? "; decided at its first run (not run yet: both forms resident)" : "; decided at run time per input shape:"
                for d in c.decisions {
                    let lossy = d.dotProducts ? "int8 dot products" : "lookup tables"
                    let form = d.lookupTables ? (d.checked ? lossy : lossy + " (model check pending)")
                        : d.revertedByModelCheck ? "expanded (tables by the layer trial, reverted by the model check)" : "expanded"
                    line += String(format: " %@ %@ (expanded %.3f ms, lookup tables %.3f ms",
                                   d.input.map(String.init).joined(separator: "x") as NSString, form as NSString,
                                   d.expandedNanoseconds / 1e6, d.lookupTableNanoseconds / 1e6)
                    line += d.dotProductNanoseconds.map { String(format: ", int8 dot products %.3f ms)", $0 / 1e6) } ?? ")"
                }
            }
            lines.append(line)
        }
        for m in model.modelChecks {
            lines.append(String(format: "model check (%@, %d thread%@): %d Conv%@ on lookup tables %.3f ms, expanded %.3f ms (best whole runs): %@",
                                m.inputShapes.map { $0.map(String.init).joined(separator: "x") }.joined(separator: ", ") as NSString,
                                m.threads, m.threads == 1 ? "" : "s", m.layers, m.layers == 1 ? "" : "s",
                                m.tablesNanoseconds / 1e6, m.expandedNanoseconds / 1e6,
                                (m.keptTables ? "tables kept" : "tables not 3 % faster: those Convs run expanded") as NSString))
        }
        return lines
    }

    /// min / max / mean, and the argmax of each row for 2-D outputs (classifier scores).
    static func summary(_ t: MBTensor) -> String {
        let v = t.floats
        guard !v.isEmpty else { return "empty" }
        var lo = v[0], hi = v[0], sum: Double = 0
        for x in v { lo = min(lo, x); hi = max(hi, x); sum += Double(x) }
        var s = String(format: "min %.6g  max %.6g  mean %.6g", lo, hi, sum / Double(v.count))
        let rows = t.rank == 2 ? t.shape[0] : 0
        if rows > 0, t.shape[1] > 0 {
            let cols = t.shape[1]
            let arg = (0..<rows).map { r in (0..<cols).max { v[r * cols + $0] < v[r * cols + $1] }! }
            s += "  argmax \(rows == 1 ? "\(arg[0])" : "\(arg)")"
        }
        return s
    }
}
