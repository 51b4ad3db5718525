import Foundation
import MBCore
import MBRuntime

/// How calibration and the sensitivity probes run a model on their inputs: the whole graph as
/// one `MBModel` (`.whole`), or, when its weights do not fit the memory budget, in segments
/// (`.segments`): runs of consecutive nodes whose weights fit, each loaded, run and dropped
/// before the next. The values that cross from one segment to a later one are held between them
/// (activations for the inputs given, not weights), so the weights held at once are one segment's.
///
/// A segment is compiled as it is in the whole graph: every value it makes that a later node
/// (or the caller) reads is one of its outputs, so no fusion joins it to a node it does not
/// have, and a transform replaces a value the moment it is computed, as in `run(_:transforming:)`.
/// The only difference is that a crossing value is an input of the later segment instead of a
/// computed value, which the runtime treats alike unless it was computed from constants alone.
struct ModelRunner {
    enum Mode {
        case whole
        /// `budget` bytes for one segment's weights, counted by `need`; `constant` gives the
        /// tensor a segment runs with (a planned weight binarized on demand, say).
        case segments(budget: Int, need: @Sendable (IRTensor) -> Int, constant: @Sendable (IRTensor) throws -> IRTensor)
    }

    var mode: Mode
    var opsets: [IROpset]
    var threads: Int

    /// Segments run so far (for tests and the report).
    private(set) var segmentsRun = 0

    /// Runs `graph` (its outputs already listing every value wanted) on `feeds`; returns every
    /// output of `graph` by name.
    mutating func run(_ graph: IRGraph, feeds: [String: MBTensor], transforms: [String: (MBTensor) -> MBTensor] = [:]) throws -> [String: MBTensor] {
        switch mode {
        case .whole:
            segmentsRun += 1
            return try MBModel(ir: IRModel(graph: graph, opsets: opsets), options: Calibration.modelOptions)
                .makeSession(.init(threads: threads)).run(feeds, transforming: transforms)
        case .segments(let budget, let need, let constant):
            return try runSegments(graph, feeds: feeds, transforms: transforms, budget: budget, need: need, constant: constant)
        }
    }

    /// Node ranges, in order, whose distinct constants' `need` sums to at most `budget` (a node
    /// whose own weights are more gets a segment of its own, and an error).
    static func segments(of graph: IRGraph, budget: Int, need: (IRTensor) -> Int) throws -> [Range<Int>] {
        let constantAt = Dictionary(graph.constants.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
        var ranges: [Range<Int>] = []
        var start = 0
        var held = Set<Int>()
        var bytes = 0
        for (i, node) in graph.nodes.enumerated() {
            let own = Set(reads(of: node).compactMap { constantAt[$0] })
            let ownBytes = own.reduce(0) { $0 + need(graph.constants[$1]) }
            if ownBytes > budget {
                throw tooLarge(node: node.name, need: ownBytes, budget: budget)
            }
            let added = own.subtracting(held).reduce(0) { $0 + need(graph.constants[$1]) }
            if i > start, bytes + added > budget {
                ranges.append(start..<i)
                start = i
                held = []
                bytes = 0
            }
            bytes += own.subtracting(held).reduce(0) { $0 + need(graph.constants[$1]) }
            held.formUnion(own)
        }
        if start < graph.nodes.count || ranges.isEmpty { ranges.append(start..<graph.nodes.count) }
        return ranges
    }

    /// The error for a node whose own weights need more than the budget.
    static func tooLarge(node: String, need: Int, budget: Int, model: String? = nil) -> ConversionError {
        ConversionError((model.map { "\($0): " } ?? "") + "node '\(node)' needs \(MemoryBudget.describe(need)) for its weights to run on the calibration inputs, more than the memory budget of \(MemoryBudget.describe(budget)); pass --max-memory \(MemoryBudget.describe(need)) or more")
    }

    /// The node whose own weights need the most, and how much (nil for whole runs): what the
    /// budget must hold at least.
    func largestNode(of graph: IRGraph) -> (node: String, bytes: Int)? {
        guard case .segments(_, let need, _) = mode else { return nil }
        let index = Dictionary(graph.constants.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        return graph.nodes.map { n in (node: n.name, bytes: Set(Self.reads(of: n)).compactMap { index[$0] }.reduce(0) { $0 + need($1) }) }
            .max { $0.bytes < $1.bytes }
    }

    /// Every value a node reads, its subgraphs' reads from the enclosing scope included.
    static func reads(of node: IRNode) -> [String] {
        var names = node.inputs.filter { !$0.isEmpty }
        func walk(_ g: IRGraph) {
            var local = Set(g.inputs.map(\.name))
            local.formUnion(g.constants.map(\.name))
            for n in g.nodes {
                names += n.inputs.filter { !$0.isEmpty && !local.contains($0) }
                for a in n.attributes {
                    if case .graph(let s) = a.value { walk(s) }
                    if case .graphs(let ss) = a.value { ss.forEach(walk) }
                }
                local.formUnion(n.outputs)
            }
        }
        for a in node.attributes {
            if case .graph(let s) = a.value { walk(s) }
            if case .graphs(let ss) = a.value { ss.forEach(walk) }
        }
        return names
    }

    private mutating func runSegments(
        _ graph: IRGraph, feeds: [String: MBTensor], transforms: [String: (MBTensor) -> MBTensor], budget: Int,
        need: (IRTensor) -> Int, constant: @escaping @Sendable (IRTensor) throws -> IRTensor
    ) throws -> [String: MBTensor] {
        let ranges = try Self.segments(of: graph, budget: budget, need: need)
        let constantAt = Dictionary(graph.constants.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
        let wanted = graph.outputs.map(\.name)
        // The last segment that reads each value (graph outputs: past the end).
        var lastReader: [String: Int] = [:]
        let segmentOf = ranges.enumerated().flatMap { s, r in r.map { (node: $0, segment: s) } }
        for (i, s) in segmentOf { for name in Self.reads(of: graph.nodes[i]) { lastReader[name] = max(lastReader[name] ?? -1, s) } }
        for name in wanted { lastReader[name] = ranges.count }

        var values = feeds
        for (s, range) in ranges.enumerated() {
            let nodes = Array(graph.nodes[range])
            var produced = Set<String>()
            var inputs: [String] = []
            var constants: [Int] = []
            for n in nodes {
                for name in Self.reads(of: n) where !produced.contains(name) {
                    if let c = constantAt[name] { constants.append(c) } else if values[name] != nil { inputs.append(name) }
                }
                produced.formUnion(n.outputs.filter { !$0.isEmpty })
            }
            var seen = Set<String>()
            inputs = inputs.filter { seen.insert($0).inserted }
            let outputs = nodes.flatMap(\.outputs).filter { !$0.isEmpty && (lastReader[$0] ?? -1) > s }
            var segment = IRGraph(name: graph.name)
            segment.inputs = inputs.map { IRValueInfo(name: $0, elementType: nil, shape: nil) }
            segment.nodes = nodes
            // The segment's weights, converted on `threads` workers (their needs are in the budget together).
            let indices = Array(Set(constants)).sorted()
            let slots = ResultSlots<IRTensor>(count: indices.count)
            let workers = max(1, min(threads, indices.count))
            let all = graph.constants
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                for k in stride(from: w, to: indices.count, by: workers) { slots.set(k, Result { try constant(all[indices[k]]) }) }
            }
            segment.constants = try indices.indices.map { try slots.get($0) }
            let declared = Dictionary(graph.outputs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            segment.outputs = outputs.map { declared[$0] ?? IRValueInfo(name: $0, elementType: .float, shape: nil) }
            let ownTransforms = transforms.filter { produced.contains($0.key) }
            let out = try MBModel(ir: IRModel(graph: segment, opsets: opsets), options: Calibration.modelOptions)
                .makeSession(.init(threads: threads)).run(values.filter { inputs.contains($0.key) }, transforming: ownTransforms)
            segmentsRun += 1
            // The runtime reads aligned float weights in place from the model's map: their pages
            // go back once the segment is done, or the whole model would end up resident.
            for c in indices { if case .dense(let bytes) = graph.constants[c].storage { bytes.releaseResidentPages() } }
            for (name, t) in out { values[name] = t }
            // Activations no later segment reads go now.
            for name in Array(values.keys) where (lastReader[name] ?? -1) <= s { values[name] = nil }
        }
        var result: [String: MBTensor] = [:]
        for name in wanted { result[name] = values[name] }
        return result
    }
}

extension ModelRunner {
    /// Weight bytes a model run holds for constant `t`: the source bytes it reads and the
    /// runtime's float copy; for a binarized or quantized tensor, its packed form (up to 2 bytes
    /// per element) and its expansion, which the runtime makes as an array and copies into its
    /// own storage at load (8 bytes per element for a moment).
    static func runBytes(_ t: IRTensor) -> Int {
        let n = t.elementCount
        switch t.storage {
        case .dense(let bytes): return bytes.count + max(4 * n, bytes.count)
        case .strings(let list): return 2 * list.reduce(0) { $0 + $1.count }
        case .binarized, .quantized: return 10 * n
        }
    }

    /// The runners of a calibrated conversion and of the sensitivity probes, within `budget`.
    /// Whole models when the float model's weights, the binarized model's and every binarized
    /// tensor held between them fit (the conversion then binarizes every layer once and holds
    /// them); else segments: the float one reads the weights as they are, the binarized one
    /// converts each planned weight as its segment needs it (each is binarized again when the
    /// file is written).
    static func forConversion(_ prepared: Conversion.Prepared, budget: Int, threads: Int) -> (float: ModelRunner, binarized: ModelRunner) {
        var planOf: [String: ConversionPlan] = [:]
        for p in prepared.plans { planOf[p.tensor.name] = p }
        if heldBytes(prepared) <= budget {
            let whole = ModelRunner(mode: .whole, opsets: prepared.opsets, threads: threads)
            return (whole, whole)
        }
        let plans = planOf
        let policy = prepared.policy
        let float = ModelRunner(mode: .segments(budget: budget, need: { runBytes($0) }, constant: { $0 }), opsets: prepared.opsets, threads: threads)
        // A planned weight needs its conversion's working memory while it is converted, then its
        // converted form beside the runtime's expansion (`runBytes` of a binarized tensor): the
        // larger of the two, as a segment converts its weights before it is loaded.
        let binarized = ModelRunner(mode: .segments(budget: budget, need: { t in
            guard let plan = plans[t.name] else { return runBytes(t) }
            return max(MemoryBudget.workingBytes(plan, t), 10 * t.elementCount)
        }, constant: { t in
            guard let plan = plans[t.name] else { return t }
            return try Conversion.convert(plan, constant: t, policy: policy).tensor
        }), opsets: prepared.opsets, threads: threads)
        return (float, binarized)
    }

    /// What running the float and the binarized model whole holds, by the count of `runBytes`,
    /// with every binarized tensor (about 2 bytes per element) held between them.
    static func heldBytes(_ prepared: Conversion.Prepared) -> Int {
        let planned = Set(prepared.plans.map(\.tensor.name))
        return prepared.graph.constants.reduce(0) { total, t in
            total + runBytes(t) + (planned.contains(t.name) ? 2 * t.elementCount : 0)
        }
    }

    /// Whether the runs go in segments.
    var isSegmented: Bool {
        if case .segments = mode { return true }
        return false
    }
}
