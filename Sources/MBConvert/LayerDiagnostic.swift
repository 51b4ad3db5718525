import Foundation
import MBCore
import MBFormat
import MBRuntime

/// `verify --per-layer`: which layer broke it. Every weight the file stores differently from the
/// float model (binarized, or kept at a lower precision) is put alone into the float model, and
/// then every prefix of those layers in graph order, each run on the evaluation inputs and
/// compared with the float model: output SQNR, cosine and top-1 agreement. The stored tensors
/// are swapped into the float graph as they are (nothing is binarized again), with the
/// calibration corrections the file records for the swapped layers and their binarized
/// activations. Costs two model runs per layer.
public enum LayerDiagnostic {
    /// One configuration against the float model, the worst over the model's float outputs.
    public struct Metrics: Codable, Sendable, Equatable {
        public var sqnrDB: Double
        public var cosine: Double
        /// Top-1 agreement of the [batch, classes] outputs (nil when there are none).
        public var top1Agreement: Double?
    }

    public struct Row: Codable, Sendable {
        public var tensor: String
        /// 1-based place in graph order (of its first reader).
        public var position: Int
        /// "binarized", "float16", ...
        public var storedAs: String
        /// Stored bits per weight (binarized: the mask's average; kept: the element type's width).
        public var averageBits: Double?
        /// Only this layer converted.
        public var alone: Metrics
        /// This layer and every converted layer before it in graph order.
        public var prefix: Metrics
        /// SQNR the prefix loses by adding this layer (nil for the first).
        public var prefixDropDB: Double?
    }

    /// The rows, worst first (lowest SQNR alone; ties by graph order).
    static func run(prepared: Conversion.Prepared, stored: IRModel, corrections: [Calibration.StoredCorrection],
                    feeds: [String: MBTensor], threads: Int) throws -> [Row] {
        let graph = prepared.graph
        let storedConstants = Dictionary(stored.graph.constants.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        // The converted weights, in the order their first reader runs.
        var layers: [(name: String, position: Int, tensor: IRTensor, outputs: Set<String>)] = []
        for plan in prepared.plans {
            let name = plan.tensor.name
            guard let index = prepared.constantIndex[name], let s = storedConstants[name],
                  ModelComparison.tensor(graph.constants[index], s) != nil || isBinarized(s) else { continue }
            let readers = graph.nodes.indices.filter { graph.nodes[$0].inputs.contains(name) }
            let outputs = Set(readers.filter { WeightedOp(rawValue: graph.nodes[$0].opType) != nil }.compactMap { graph.nodes[$0].outputs.first })
            layers.append((name, readers.first ?? graph.nodes.count, s, outputs))
        }
        layers.sort { ($0.position, $0.name) < ($1.position, $1.name) }
        guard !layers.isEmpty else { return [] }

        let outputNames = graph.outputs.map(\.name)
        let reference = try MBModel(ir: IRModel(graph: graph, opsets: prepared.opsets)).makeSession(.init(threads: threads)).run(feeds)
        func measure(_ chosen: ArraySlice<(name: String, position: Int, tensor: IRTensor, outputs: Set<String>)>) throws -> Metrics {
            var g = graph
            for l in chosen { g.constants[prepared.constantIndex[l.name]!] = l.tensor }
            let names = Set(chosen.map(\.name)), outputs = chosen.reduce(into: Set<String>()) { $0.formUnion($1.outputs) }
            g = ActivationAttributes.apply(prepared.plans.filter { names.contains($0.tensor.name) }, to: g)
            g = Calibration.apply(corrections.filter { outputs.contains($0.output) }, to: g)
            let out = try MBModel(ir: IRModel(graph: g, opsets: prepared.opsets)).makeSession(.init(threads: threads)).run(feeds)
            var m = Metrics(sqnrDB: .infinity, cosine: 1, top1Agreement: nil)
            for name in outputNames {
                guard let x = reference[name], let y = out[name], x.elementType == .float, y.elementType == .float else { continue }
                let c = Verify.compare(name, x, y)
                m.sqnrDB = min(m.sqnrDB, c.sqnrDB)
                m.cosine = min(m.cosine, c.cosine)
                if let t = c.top1Agreement { m.top1Agreement = min(m.top1Agreement ?? 1, t) }
            }
            return m
        }
        var rows: [Row] = []
        var previous: Metrics?
        for (k, l) in layers.enumerated() {
            let alone = try measure(layers[k...k])
            let prefix = k == 0 ? alone : try measure(layers[...k])
            rows.append(Row(tensor: l.name, position: k + 1, storedAs: storageName(l.tensor), averageBits: bits(l.tensor),
                            alone: alone, prefix: prefix, prefixDropDB: previous.map { $0.sqnrDB - prefix.sqnrDB }))
            previous = prefix
        }
        return sorted(rows)
    }

    /// Worst first: lowest SQNR alone, then lowest top-1 agreement, then graph order.
    public static func sorted(_ rows: [Row]) -> [Row] {
        rows.sorted { a, b in
            if a.alone.sqnrDB != b.alone.sqnrDB { return a.alone.sqnrDB < b.alone.sqnrDB }
            if a.alone.top1Agreement != b.alone.top1Agreement { return (a.alone.top1Agreement ?? 1) < (b.alone.top1Agreement ?? 1) }
            return a.position < b.position
        }
    }

    static func isBinarized(_ t: IRTensor) -> Bool {
        if case .binarized = t.storage { return true }
        return false
    }

    static func storageName(_ t: IRTensor) -> String {
        isBinarized(t) ? "binarized" : t.elementType.name
    }

    static func bits(_ t: IRTensor) -> Double? {
        if case .binarized(let p) = t.storage {
            return p.mask.isEmpty ? nil : Double(p.mask.reduce(0) { $0 + Int($1) }) / Double(p.mask.count)
        }
        return Double(t.elementType.traits.bitsPerElement)
    }
}

extension LayerDiagnostic {
    /// The diagnostic as a text table, worst first.
    public static func renderText(_ rows: [Row]) -> String {
        func f(_ m: Metrics) -> [String] {
            [m.sqnrDB.isFinite ? String(format: "%.2f", m.sqnrDB) : "inf", String(format: "%.5f", m.cosine),
             m.top1Agreement.map { String(format: "%.1f%%", 100 * $0) } ?? "-"]
        }
        var out = "per layer (each converted layer alone in the float model, and every layer up to it in graph order; worst alone first):\n"
        out += table(header: ["layer", "#", "stored as", "bits", "alone SQNR dB", "cosine", "top-1", "prefix SQNR dB", "cosine", "top-1", "prefix drop dB"],
                     rows: rows.map { r in
                         [r.tensor, "\(r.position)", r.storedAs, r.averageBits.map { String(format: "%.2f", $0) } ?? "-"]
                             + f(r.alone) + f(r.prefix) + [r.prefixDropDB.map { $0.isFinite ? String(format: "%.2f", $0) : "inf" } ?? "-"]
                     }, rightAligned: Set(1...10).subtracting([2]))
        return out
    }
}
