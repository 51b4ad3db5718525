import Foundation
import MBCore
import MBRuntime

/// Calibration on inputs streamed in batches (`--calibrate-batch N`), with exactly the
/// corrections of one batch.
///
/// A layer's correction depends on its output statistics over EVERY input with the corrections
/// of the layers before it in place, so one pass over the data cannot produce them batch by
/// batch. The layers are grouped by level (the most calibrated layers on any path from the
/// inputs before them): one streamed pass gathers the float statistics of every layer, then one
/// pass per level gathers the binarized statistics of that level's layers, the corrections of
/// earlier levels applied as the one-batch run applies them. Sums run per entry, in input order,
/// in Double (`ChannelSums`), so they are the one-batch sums bit for bit whenever the runtime
/// computes each entry's outputs the same in a batch of 8 as in a batch of 64. Memory: one
/// batch of inputs and of the graph's values; time: about (levels + 1) / 2 runs over the data
/// (a level's pass runs only the part of the graph its layers need).
extension Calibration {
    /// Where a streamed calibration is: `done` of `total` units of work, an entry run through
    /// one layer's worth of graph (the float pass runs every level, level l's pass l + 1 of them),
    /// so the time left scales with what is left.
    public struct Progress: Sendable {
        public var pass: Int
        public var passes: Int
        public var done: Int
        public var total: Int
    }

    ///
    /// With `runners` (segmented `ModelRunner`s, when the models do not fit the memory budget
    /// whole), every batch runs each pass's graph in segments: the weights held at once are one
    /// segment's, the binarized ones read back from the conversion's spill, at the cost of
    /// loading every segment once per batch and pass. The segments compute what the whole graph
    /// does, so the corrections are the same bits.
    static func calibrateStreamed(float: IRGraph, binarized: IRGraph, opsets: [IROpset], layerNodes: Set<String>,
                                  source: CalibrationInputs, declared: [IRValueInfo], batchSize: Int, threads: Int,
                                  runners: (float: ModelRunner, binarized: ModelRunner)? = nil,
                                  progress: (@Sendable (Progress) -> Void)?) throws -> (IRGraph, [LayerCorrection], [StoredCorrection]) {
        let layers = binarized.nodes.enumerated().filter { layerNodes.contains($0.element.name) && !$0.element.outputs.isEmpty }
            .map { Layer(nodeIndex: $0.offset, output: $0.element.outputs[0], axisFromEnd: nil) }
        guard !layers.isEmpty else { return (binarized, [], []) }
        guard source.isBatchable else {
            throw ConversionError("\(source.path): the inputs differ in their number of entries along axis 0; --calibrate-batch splits them into batches along that axis")
        }
        let level = levels(of: layers, in: binarized)
        let levelCount = (level.max() ?? 0) + 1
        let n = source.count
        let batches = stride(from: 0, to: n, by: batchSize).map { $0..<min(n, $0 + batchSize) }
        let passes = levelCount + 1
        let total = n * (levelCount + levelCount * (levelCount + 1) / 2)
        var done = 0
        func read(_ rows: Range<Int>) throws -> [String: MBTensor] {
            let feeds = try source.batch(rows)
            try check(feeds, declared: declared, path: "\(source.path) (entries \(rows.lowerBound)..<\(rows.upperBound))")
            return feeds
        }

        // Pass 0: the float statistics of every layer, and each batch's output shape. In a scope
        // of its own, so the float session's buffers are gone before the level passes start.
        var floatSums = [ChannelSums?](repeating: nil, count: layers.count)
        var floatShapes = [[[Int]]](repeating: [], count: layers.count)
        do {
            var pass = try PassRunner(graph: exposing(float, layers.map(\.output), prune: false), opsets: opsets, threads: threads, runner: runners?.float)
            for rows in batches {
                let out = try pass.run(try read(rows), rows: rows.count)
                for (k, layer) in layers.enumerated() {
                    guard let y = out[layer.output] else { continue }
                    floatShapes[k].append(y.shape)
                    guard y.shape.count >= 2 else { continue }
                    let ax = axis(for: binarized.nodes[layer.nodeIndex], rank: y.shape.count)
                    if floatSums[k] == nil { floatSums[k] = ChannelSums(channels: y.shape[ax]) }
                    if floatSums[k]!.channels == y.shape[ax] { floatSums[k]!.add(y, axis: ax) } else { floatSums[k] = nil }
                }
                done += rows.count * levelCount
                progress?(Progress(pass: 1, passes: passes, done: done, total: total))
            }
        }

        // One pass per level: that level's binarized statistics, earlier corrections applied.
        let found = CorrectionBox()
        var usable = [Bool](repeating: true, count: layers.count)
        for l in 0..<levelCount {
            let members = layers.indices.filter { level[$0] == l }
            let exposed = layers.indices.filter { level[$0] <= l }.map { layers[$0].output }
            var pass = try PassRunner(graph: exposing(binarized, exposed, prune: true), opsets: opsets, threads: threads, runner: runners?.binarized)
            let sums = SumsBox(count: layers.count)
            for (b, rows) in batches.enumerated() {
                var transforms: [String: (MBTensor) -> MBTensor] = [:]
                for k in layers.indices where level[k] <= l {
                    guard floatSums[k] != nil, floatShapes[k].count > b, usable[k] else { continue }
                    let reference = floatShapes[k][b], node = binarized.nodes[layers[k].nodeIndex]
                    if level[k] < l {
                        guard let c = found.get(layers[k].output) else { continue }
                        transforms[layers[k].output] = { y in
                            guard y.shape == reference else { return y }
                            return apply(y, axis: c.axis, scale: c.scale, shift: c.shift)
                        }
                    } else {
                        transforms[layers[k].output] = { y in
                            guard y.shape == reference else { sums.spoil(k); return y }
                            sums.add(k, y, axis: axis(for: node, rank: y.shape.count))
                            return y
                        }
                    }
                }
                _ = try pass.run(try read(rows), rows: rows.count, transforming: transforms)
                done += rows.count * (l + 1)
                progress?(Progress(pass: l + 2, passes: passes, done: done, total: total))
            }
            for k in members {
                guard let f = floatSums[k], let b = sums.get(k), b.count == f.count else { usable[k] = false; continue }
                let fs = f.statistics
                let (scale, shift) = correction(float: fs, binarized: b.statistics)
                let rank = floatShapes[k][0].count
                found.set(layers[k].output, scale: scale, shift: shift, floatStd: fs.variance.map { $0.squareRoot() },
                          rank: rank, axis: axis(for: binarized.nodes[layers[k].nodeIndex], rank: rank))
            }
        }
        return store(found, layers: layers, in: binarized)
    }

    /// Each layer's level: the most layers on any path from the graph's inputs to its input
    /// (0 when none is upstream). Layers of one level never read one another's outputs.
    static func levels(of layers: [Layer], in graph: IRGraph) -> [Int] {
        let layerAt = Dictionary(uniqueKeysWithValues: layers.enumerated().map { ($0.element.nodeIndex, $0.offset) })
        var depth: [String: Int] = [:]
        var level = [Int](repeating: 0, count: layers.count)
        for (i, node) in graph.nodes.enumerated() {
            let d = node.inputs.map { depth[$0] ?? 0 }.max() ?? 0
            if let k = layerAt[i] { level[k] = d }
            for o in node.outputs { depth[o] = d + (layerAt[i] == nil ? 0 : 1) }
        }
        return level
    }

    /// `graph` with `names` among its outputs. With `prune`, the outputs are `names` only, so
    /// the runtime drops what they do not need, and every kept value that a dropped node or the
    /// original outputs read stays an output too, so the kept part is compiled as it is in the
    /// whole graph (a value's readers decide which fusions apply). Graphs with subgraphs are
    /// never pruned (their captured values are not listed as inputs).
    static func exposing(_ graph: IRGraph, _ names: [String], prune: Bool) -> IRGraph {
        var g = graph
        let hasSubgraphs = graph.nodes.contains { n in
            n.attributes.contains { if case .graph = $0.value { return true }; if case .graphs = $0.value { return true }; return false }
        }
        var outputs = prune && !hasSubgraphs ? [] : graph.outputs.map(\.name)
        if prune && !hasSubgraphs {
            var producer: [String: Int] = [:]
            for (i, n) in graph.nodes.enumerated() { for o in n.outputs where !o.isEmpty { producer[o] = i } }
            var live = Set<Int>()
            var stack = names.compactMap { producer[$0] }
            while let i = stack.popLast() {
                guard live.insert(i).inserted else { continue }
                stack += graph.nodes[i].inputs.compactMap { producer[$0] }
            }
            var boundary = Set(graph.outputs.map(\.name))
            for (i, n) in graph.nodes.enumerated() where !live.contains(i) { boundary.formUnion(n.inputs) }
            for i in live.sorted() { outputs += graph.nodes[i].outputs.filter { !$0.isEmpty && boundary.contains($0) } }
        }
        var seen = Set<String>()
        let kept = (outputs + names).filter { seen.insert($0).inserted }
        let declared = Dictionary(graph.outputs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        g.outputs = kept.map { declared[$0] ?? IRValueInfo(name: $0, elementType: .float, shape: nil) }
        return g
    }
}

/// One pass of a streamed calibration over the batches: one model and a session per batch size
/// (`SessionPerBatchSize`), or, with a segmented runner, the graph run in segments per batch.
struct PassRunner {
    let graph: IRGraph
    private var sessions: SessionPerBatchSize?
    private var runner: ModelRunner?

    init(graph: IRGraph, opsets: [IROpset], threads: Int, runner: ModelRunner?) throws {
        self.graph = graph
        if let runner, runner.isSegmented {
            self.runner = runner
        } else {
            sessions = SessionPerBatchSize(model: try MBModel(ir: IRModel(graph: graph, opsets: opsets), options: Calibration.modelOptions), threads: threads)
        }
    }

    mutating func run(_ feeds: [String: MBTensor], rows: Int, transforming transforms: [String: (MBTensor) -> MBTensor] = [:]) throws -> [String: MBTensor] {
        if sessions != nil { return try sessions!.session(for: rows).run(feeds, transforming: transforms) }
        return try runner!.run(graph, feeds: feeds, transforms: transforms)
    }
}

/// One session per batch size, the previous one released first. A session pools its buffers by
/// exact byte size, so the short last batch (1,000 entries in batches of 64 end with 40) run on
/// the full batches' session would allocate a second set of every buffer beside the pooled first
/// set; a fresh session for it holds one set. With the float pass's session released before the
/// level passes (it pooled every layer's output for a full batch), the PaddleOCR classifier's peak
/// in batches of 64 went from 519 to 322 MB on 128 entries and from 622 to 308 MB on 104 (64 + 40).
struct SessionPerBatchSize {
    let model: MBModel
    let threads: Int
    private var current: MBSession?
    private var rows = 0

    init(model: MBModel, threads: Int) {
        self.model = model
        self.threads = threads
    }

    mutating func session(for rows: Int) -> MBSession {
        if let current, rows == self.rows { return current }
        current = nil  // the old pool goes before the new session fills its own
        let fresh = model.makeSession(.init(threads: threads))
        current = fresh
        self.rows = rows
        return fresh
    }
}

/// Per-channel running sums of values and squares, in Double, added one entry (and channel)
/// at a time in input order: the same additions in the same order whatever the batch size.
struct ChannelSums: Sendable {
    let channels: Int
    var sum: [Double]
    var squares: [Double]
    /// Values per channel so far.
    var count = 0

    init(channels: Int) {
        self.channels = channels
        sum = [Double](repeating: 0, count: channels)
        squares = sum
    }

    /// Adds `t`'s values along channel axis `axis` (t.shape[axis] == channels).
    mutating func add(_ t: MBTensor, axis: Int) {
        let shape = t.shape
        let inner = shape[(axis + 1)...].reduce(1, *)
        let outer = shape[..<axis].reduce(1, *)
        let c = channels
        // Read in place (a float tensor's `floats` would copy it: a whole batch's activations).
        func accumulate(_ v: UnsafeBufferPointer<Float>) {
            for o in 0..<outer {
                for ch in 0..<c {
                    let base = (o * c + ch) * inner
                    var s = 0.0, s2 = 0.0
                    for i in 0..<inner {
                        let x = Double(v[base + i])
                        s += x
                        s2 += x * x
                    }
                    sum[ch] += s
                    squares[ch] += s2
                }
            }
        }
        if t.elementType == .float { t.withFloats(accumulate) } else { t.floats.withUnsafeBufferPointer(accumulate) }
        count += outer * inner
    }

    var statistics: (mean: [Double], variance: [Double]) {
        let n = Double(count)
        let mean = sum.map { $0 / max(n, 1) }
        let variance = zip(squares, mean).map { max(0, $0 / max(n, 1) - $1 * $1) }
        return (mean, variance)
    }
}

/// The binarized sums of one level's pass, filled by the run's transforms.
final class SumsBox: @unchecked Sendable {
    private var sums: [ChannelSums?]
    private var spoiled: Set<Int> = []
    private let lock = NSLock()
    init(count: Int) { sums = [ChannelSums?](repeating: nil, count: count) }
    func add(_ k: Int, _ y: MBTensor, axis: Int) {
        lock.lock(); defer { lock.unlock() }
        if sums[k] == nil { sums[k] = ChannelSums(channels: y.shape[axis]) }
        if sums[k]!.channels == y.shape[axis] { sums[k]!.add(y, axis: axis) } else { spoiled.insert(k) }
    }
    func spoil(_ k: Int) { lock.lock(); spoiled.insert(k); lock.unlock() }
    func get(_ k: Int) -> ChannelSums? { lock.lock(); defer { lock.unlock() }; return spoiled.contains(k) ? nil : sums[k] }
}
