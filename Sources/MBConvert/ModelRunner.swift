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
    /// What each value the graphs compute holds per calibration entry, learned by a probe on
    /// the first segmented run and shared by the runners of one conversion; nil: activations
    /// are not charged (whole runs).
    var sizes: ValueSizes?

    /// How a node too large for the budget is refused: the file named first, what the model runs
    /// on, and the option that makes a run's values smaller (nil: none).
    struct Refusal {
        var model: String? = nil
        var inputs = "the calibration inputs"
        var smallerBatchOption: String? = "--calibrate-batch"
    }
    var refusal = Refusal()

    /// Segments run so far (for tests and the report).
    private(set) var segmentsRun = 0

    /// Runs `graph` (its outputs already listing every value wanted) on `feeds`; returns every
    /// output of `graph` by name. `reserve`: bytes the caller holds meanwhile (charged against
    /// the budget of segmented runs).
    mutating func run(_ graph: IRGraph, feeds: [String: MBTensor], transforms: [String: (MBTensor) -> MBTensor] = [:],
                      reserve: Int = 0) throws -> [String: MBTensor] {
        switch mode {
        case .whole:
            segmentsRun += 1
            return try MBModel(ir: IRModel(graph: graph, opsets: opsets), options: Calibration.modelOptions)
                .makeSession(.init(threads: threads)).run(feeds, transforming: transforms)
        case .segments(let budget, let need, let constant):
            return try runSegments(graph, feeds: feeds, transforms: transforms, budget: budget, reserve: reserve, need: need, constant: constant)
        }
    }

    /// Node ranges, in order, whose weights (distinct constants' `need`) and values fit `budget`
    /// together. A segment's values are those that cross into it (produced before it or fed,
    /// read in it or later, or wanted by the caller: held while it runs) and those its own nodes
    /// make (every one: the runtime's pool keeps buffers by size), by `valueBytes`; `reserve`
    /// more is held by the caller. A node that does not fit alone is an error naming it.
    ///
    /// A value in `transformed` is replaced the moment it is made (`run(_:transforming:)`): the
    /// transform's new array and the tensor made of it are held beside it for a moment.
    static func segments(of graph: IRGraph, budget: Int, need: (IRTensor) -> Int, valueBytes: (String) -> Int = { _ in 0 },
                         wanted: Set<String> = [], reserve: Int = 0, transformed: Set<String> = []) throws -> [Range<Int>] {
        let constantAt = Dictionary(graph.constants.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
        let n = graph.nodes.count
        // Each value's producer (-1: fed) and last reader (n: wanted), by node index.
        var producer: [String: Int] = [:]
        var lastReader: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() {
            for name in reads(of: node) where constantAt[name] == nil {
                if producer[name] == nil { producer[name] = -1 }
                lastReader[name] = max(lastReader[name] ?? i, i)
            }
            for o in node.outputs where !o.isEmpty {
                producer[o] = i
                if wanted.contains(o) { lastReader[o] = n }
            }
        }
        for name in wanted where producer[name] == nil { producer[name] = -1; lastReader[name] = n }
        // crossing[a]: bytes of the values made before node a (or fed) and read at a or later.
        var crossing = [Int](repeating: 0, count: n + 1)
        for (name, made) in producer {
            guard let last = lastReader[name], last > made else { continue }
            let bytes = valueBytes(name)
            if bytes > 0 {
                crossing[made + 1] += bytes
                if last < n { crossing[last + 1] -= bytes }
            }
        }
        for a in 1...n where n > 0 { crossing[a] += crossing[a - 1] }
        func madeBytes(_ i: Int) -> Int {
            graph.nodes[i].outputs.reduce(0) { $0 + ($1.isEmpty || (lastReader[$1] ?? -1) <= i ? 0 : valueBytes($1)) }
        }
        func transient(_ i: Int) -> Int {
            graph.nodes[i].outputs.reduce(0) { $0 + (transformed.contains($1) ? 2 * valueBytes($1) : 0) }
        }

        var ranges: [Range<Int>] = []
        var start = 0
        var held = Set<Int>()
        var weights = 0
        var inner = 0, innerPeak = 0
        for (i, node) in graph.nodes.enumerated() {
            let own = Set(reads(of: node).compactMap { constantAt[$0] })
            let ownBytes = own.reduce(0) { $0 + need(graph.constants[$1]) }
            let alone = ownBytes + crossing[i] + madeBytes(i) + transient(i) + reserve
            if alone > budget {
                throw NodeTooLarge(node: node.name, weights: ownBytes, values: alone - ownBytes, budget: budget)
            }
            let added = own.subtracting(held).reduce(0) { $0 + need(graph.constants[$1]) }
            if i > start, weights + added + crossing[start] + max(innerPeak, inner + madeBytes(i) + transient(i)) + reserve > budget {
                ranges.append(start..<i)
                start = i
                held = []
                weights = 0
                inner = 0
                innerPeak = 0
            }
            weights += own.subtracting(held).reduce(0) { $0 + need(graph.constants[$1]) }
            held.formUnion(own)
            innerPeak = max(innerPeak, inner + madeBytes(i) + transient(i))
            inner += madeBytes(i)
            // A value made here and last read in this segment is not subtracted: the session's
            // buffer pool keeps a freed buffer for a later value of the same byte size only, so
            // a segment's values are charged in full (measured: a batch of 64 through AlexNet's
            // first layers peaked at the sum of its values, not at the largest live set).
        }
        if start < n || ranges.isEmpty { ranges.append(start..<n) }
        return ranges
    }

    /// A node whose own weights and the values held while it runs do not fit the budget (what
    /// `segments(of:)` throws; a runner turns it into `tooLarge` with its `refusal`).
    struct NodeTooLarge: Error {
        let node: String
        let weights: Int
        let values: Int
        let budget: Int
    }

    /// The error for a node whose own weights (and the values held while it runs) need more
    /// than the budget.
    static func tooLarge(node: String, need: Int, values: Int = 0, budget: Int, refusal: Refusal = Refusal()) -> ConversionError {
        let what = values > 0
            ? "\(MemoryBudget.describe(need)) for its weights and \(MemoryBudget.describe(values)) for the values held while it runs"
            : "\(MemoryBudget.describe(need)) for its weights"
        let smaller = values > 0 ? refusal.smallerBatchOption.map { " (or a smaller \($0))" } ?? "" : ""
        return ConversionError((refusal.model.map { "\($0): " } ?? "") + "node '\(node)' needs \(what) on \(refusal.inputs), more than the memory budget of \(MemoryBudget.describe(budget)); pass --max-memory \(MemoryBudget.describe(need + values)) or more" + smaller)
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
        _ whole: IRGraph, feeds: [String: MBTensor], transforms: [String: (MBTensor) -> MBTensor], budget: Int, reserve: Int,
        need: @escaping (IRTensor) -> Int, constant: @escaping @Sendable (IRTensor) throws -> IRTensor
    ) throws -> [String: MBTensor] {
        let graph = Self.live(whole)
        let wanted = graph.outputs.map(\.name)
        if let sizes, !sizes.probed {
            sizes.probed = true
            try probe(graph, feeds: feeds, budget: budget, need: need, constant: constant)
        }
        // Values by the probe's bytes per entry times the entries fed (feeds: as they are).
        let entries = feeds.values.first?.shape.first ?? 1
        let perEntry = sizes?.perEntry ?? [:]
        let valueBytes: (String) -> Int = { name in
            if let t = feeds[name] { return Self.bytes(t) }
            return (perEntry[name] ?? 0) * entries
        }
        // The feeds are charged throughout: the caller holds them until the run returns.
        let ranges: [Range<Int>]
        do {
            ranges = try Self.segments(of: graph, budget: budget, need: need, valueBytes: valueBytes, wanted: Set(wanted).union(feeds.keys),
                                       reserve: reserve, transformed: Set(transforms.keys))
        } catch let tooLarge as NodeTooLarge {
            throw Self.tooLarge(node: tooLarge.node, need: tooLarge.weights, values: tooLarge.values, budget: tooLarge.budget, refusal: refusal)
        }
        return try run(graph, ranges: ranges, feeds: feeds, transforms: transforms, constant: constant, exposeAll: false)
    }

    /// Runs `graph`'s `ranges` in turn. With `exposeAll`, every value a segment makes is one of
    /// its outputs and is recorded in `sizes` (then dropped unless a later segment reads it).
    private mutating func run(
        _ graph: IRGraph, ranges: [Range<Int>], feeds: [String: MBTensor], transforms: [String: (MBTensor) -> MBTensor],
        constant: @escaping @Sendable (IRTensor) throws -> IRTensor, exposeAll: Bool
    ) throws -> [String: MBTensor] {
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
            var outputs = nodes.flatMap(\.outputs).filter { !$0.isEmpty && (exposeAll || (lastReader[$0] ?? -1) > s) }
            seen = []
            outputs = outputs.filter { seen.insert($0).inserted }
            guard !outputs.isEmpty else { continue }  // nothing it makes is wanted (dropped by the caller's pruning)
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
            if exposeAll, let sizes { for (name, t) in out { sizes.perEntry[name] = Self.bytes(t) } }
            for (name, t) in out where (lastReader[name] ?? -1) > s { values[name] = t }
            // Activations no later segment reads go now.
            for name in Array(values.keys) where (lastReader[name] ?? -1) <= s { values[name] = nil }
        }
        var result: [String: MBTensor] = [:]
        for name in wanted { result[name] = values[name] }
        return result
    }

    /// Learns the bytes per entry of every value `graph` computes: the graph run in segments
    /// (by weights alone) on the first entry of `feeds`, every value exposed, each recorded and
    /// dropped as soon as no later segment reads it. Feeds that cannot be cut to one entry (no
    /// batch axis, or a fixed one) leave the sizes unknown, and values are not charged.
    private mutating func probe(_ graph: IRGraph, feeds: [String: MBTensor], budget: Int, need: (IRTensor) -> Int,
                                constant: @escaping @Sendable (IRTensor) throws -> IRTensor) throws {
        guard let sizes, let one = Self.firstEntry(of: feeds) else { return }
        let ranges: [Range<Int>]
        do { ranges = try Self.segments(of: graph, budget: budget, need: need) } catch let tooLarge as NodeTooLarge {
            throw Self.tooLarge(node: tooLarge.node, need: tooLarge.weights, values: tooLarge.values, budget: tooLarge.budget, refusal: refusal)
        }
        let before = segmentsRun
        do {
            _ = try run(graph, ranges: ranges, feeds: one, transforms: [:], constant: constant, exposeAll: true)
        } catch {
            // The model refuses one entry (a fixed batch dimension): values go uncharged. (A
            // weight that cannot be converted fails the real run next, with its own error.)
            sizes.perEntry = [:]
        }
        sizes.probeSegments += segmentsRun - before
        segmentsRun = before
    }

    /// The first entry (along axis 0) of every feed, or nil when one has no axis 0 or is not
    /// float or int64.
    static func firstEntry(of feeds: [String: MBTensor]) -> [String: MBTensor]? {
        var one: [String: MBTensor] = [:]
        for (name, t) in feeds {
            guard let rows = t.shape.first, rows >= 1 else { return nil }
            let shape = [1] + t.shape.dropFirst()
            let per = t.count / rows
            switch t.elementType {
            case .float: one[name] = MBTensor(shape: shape, floats: t.withFloats { Array($0.prefix(per)) })
            case .int64: one[name] = MBTensor(shape: shape, int64s: Array(t.int64s.prefix(per)))
            default: return nil
            }
        }
        return one
    }

    /// Bytes a tensor's elements hold.
    static func bytes(_ t: MBTensor) -> Int { t.withBytes { $0.count } }

    /// `graph` without the nodes none of its outputs need (as the runtime drops them), so a
    /// segment never converts weights only they read. Graphs with subgraphs are kept whole.
    static func live(_ graph: IRGraph) -> IRGraph {
        let hasSubgraphs = graph.nodes.contains { n in
            n.attributes.contains { if case .graph = $0.value { return true }; if case .graphs = $0.value { return true }; return false }
        }
        guard !hasSubgraphs else { return graph }
        var producer: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() { for o in n.outputs where !o.isEmpty { producer[o] = i } }
        var keep = Set<Int>()
        var stack = graph.outputs.compactMap { producer[$0.name] }
        while let i = stack.popLast() {
            guard keep.insert(i).inserted else { continue }
            stack += graph.nodes[i].inputs.compactMap { producer[$0] }
        }
        guard keep.count < graph.nodes.count else { return graph }
        var g = graph
        g.nodes = graph.nodes.indices.filter { keep.contains($0) }.map { graph.nodes[$0] }
        return g
    }
}

extension ModelRunner {
    /// What the values of a calibration's runs hold at most when the models run whole on
    /// `entries` entries: the float run (the graph's outputs and the layer outputs `watched`
    /// kept) and the binarized one (the float run's outputs held beside it), by `sizes`
    /// (probed on the float graph whole, on one entry, if not yet). Nil when the probe cannot
    /// run on one entry.
    static func wholeValueBytes(_ prepared: Conversion.Prepared, watched: [String], feeds: [String: MBTensor], entries: Int,
                                sizes: ValueSizes, threads: Int) throws -> Int? {
        var graph = prepared.graph
        if !sizes.probed {
            sizes.probed = true
            guard let one = firstEntry(of: feeds) else { return nil }
            graph.outputs = graph.nodes.flatMap(\.outputs).filter { !$0.isEmpty }.map { IRValueInfo(name: $0, elementType: nil, shape: nil) }
            var seen = Set<String>()
            graph.outputs = graph.outputs.filter { seen.insert($0.name).inserted }
            guard let out = try? MBModel(ir: IRModel(graph: graph, opsets: prepared.opsets), options: Calibration.modelOptions)
                .makeSession(.init(threads: threads)).run(one) else { return nil }
            sizes.perEntry = out.mapValues(bytes)
        }
        guard !sizes.perEntry.isEmpty else { return nil }
        let perEntry = sizes.perEntry
        let valueBytes: (String) -> Int = { name in
            if let t = feeds[name] { return bytes(t) / max(t.shape.first ?? 1, 1) * entries }
            return (perEntry[name] ?? 0) * entries
        }
        let wanted = Set(prepared.graph.outputs.map(\.name) + watched)
        let kept = wanted.reduce(0) { $0 + valueBytes($1) }
        // The smallest budget `segments` keeps in one range when weights are free: the values' peak.
        var low = 0, high = 1 << 62
        while low < high {
            let mid = low + (high - low) / 2
            if let r = try? segments(of: live(prepared.graph), budget: mid, need: { _ in 0 }, valueBytes: valueBytes, wanted: wanted, reserve: kept),
               r.count == 1 {
                high = mid
            } else {
                low = mid + 1
            }
        }
        return low
    }
}

/// Bytes per calibration entry of the values a model computes (by name), learned by
/// `ModelRunner`'s probe and shared by a conversion's float and binarized runners (the binarized
/// graph computes the same values under the same names).
final class ValueSizes: @unchecked Sendable {
    var perEntry: [String: Int] = [:]
    var probed = false
    /// Segments the probe ran (not counted as runs).
    var probeSegments = 0
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
    /// converts each planned weight the first time a segment needs it and keeps it in `spill`
    /// (on disk; read back by later segments and by the writer, so each is converted once).
    /// Without a spill (the sensitivity probes, which run the float model only) a planned
    /// weight is converted each time a segment needs it.
    ///
    /// `values`: what the runs' values hold at most when whole (`wholeValueBytes`), counted
    /// with the weights in that choice.
    static func forConversion(_ prepared: Conversion.Prepared, budget: Int, threads: Int, spill: ConvertedSpill? = nil,
                              sizes: ValueSizes = ValueSizes(), values: Int = 0) -> (float: ModelRunner, binarized: ModelRunner) {
        var planOf: [String: ConversionPlan] = [:]
        for p in prepared.plans { planOf[p.tensor.name] = p }
        if heldBytes(prepared) + values <= budget {
            let whole = ModelRunner(mode: .whole, opsets: prepared.opsets, threads: threads)
            return (whole, whole)
        }
        let plans = planOf
        let policy = prepared.policy
        let float = ModelRunner(mode: .segments(budget: budget, need: { runBytes($0) }, constant: { $0 }), opsets: prepared.opsets, threads: threads,
                                sizes: sizes)
        // A planned weight needs its conversion's working memory while it is converted, then its
        // converted form beside the runtime's expansion (`runBytes` of a binarized tensor): the
        // larger of the two, as a segment converts its weights before it is loaded.
        let binarized = ModelRunner(mode: .segments(budget: budget, need: { t in
            guard let plan = plans[t.name] else { return runBytes(t) }
            return max(MemoryBudget.workingBytes(plan, t), 10 * t.elementCount)
        }, constant: { t in
            guard let plan = plans[t.name] else { return t }
            if let spill, let stored = try spill.outcome(named: t.name) { return stored.tensor }
            let outcome = try Conversion.convert(plan, constant: t, policy: policy)
            try spill?.store(outcome)
            return outcome.tensor
        }), opsets: prepared.opsets, threads: threads, sizes: sizes)
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

    /// Makes freed memory go back to the system at once (glibc): blocks from 128 KiB are mapped
    /// on their own and unmapped when freed, and free memory at the heap's top is trimmed from
    /// 128 KiB. glibc's default raises the mapping threshold to the largest block freed (up to
    /// 32 MiB), so a segmented run's activations and weight copies, allocated and freed segment
    /// after segment, stayed in the heap: AlexNet calibrated in batches of 8 at 400M peaked at
    /// 621 MiB, and at 389 MiB with these settings (700M, one batch of 64: 787 -> 701 MiB), for
    /// about 4 s more system time (page faults of fresh mappings). Process-wide; set only when a
    /// calibration runs in segments.
    static func returnFreedMemoryToTheSystem() {
        #if canImport(Glibc)
        // <malloc.h> is not part of the Glibc module: mallopt is looked up by name.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(nil, "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        let trimThreshold: Int32 = -1, mmapThreshold: Int32 = -3  // M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
        _ = mallopt(mmapThreshold, 128 << 10)
        _ = mallopt(trimThreshold, 128 << 10)
        #endif
    }

    /// Whether the runs go in segments.
    var isSegmented: Bool {
        if case .segments = mode { return true }
        return false
    }
}
