import Foundation
import MBCore
import MBImage
import MBRuntime

/// Post-training correction of binarized layers' output statistics (`--calibrate`).
///
/// Binarizing a layer shifts and scales its output channels, and the layers after it were
/// trained on the float statistics (their BatchNormalization means and variances). On
/// unlabeled calibration inputs, every binarized layer's output is corrected, in graph order,
/// so that each output channel has the float model's mean and variance: y' = a·y + b with
/// a = σ_float / σ_binarized and b = μ_float − a·μ_binarized. Upstream corrections are in place
/// before downstream statistics are measured (one run of the binarized model, each layer
/// corrected the moment it is computed). The correction is folded into the BatchNormalization
/// that reads the layer when there is one (scale' = a·scale, mean' = (mean − b) / a), and is
/// otherwise stored with the layer as per-channel Mul and Add nodes the runtime executes.
public enum Calibration {
    public struct LayerCorrection: Codable, Sendable {
        public var node: String
        public var output: String
        public var channels: Int
        /// "folded into BatchNormalization 'bn1'" or "Mul/Add after the layer".
        public var storedAs: String
        /// Mean |a − 1| and mean |b| / σ_float over the channels.
        public var meanScaleChange: Double
        public var meanShift: Double
    }

    /// One applied correction as the `.mbm` records it (metadata key `calibration`), in the order
    /// the conversion stored them, so `verify` can recompute every calibrated tensor and node
    /// from the ONNX values: a and b as float32 bit patterns (exact through JSON).
    public struct StoredCorrection: Codable, Sendable, Equatable {
        public var output: String
        public var rank: Int
        public var axis: Int
        public var scaleBits: [UInt32]
        public var shiftBits: [UInt32]

        init(output: String, _ e: CorrectionBox.Entry) {
            self.output = output
            rank = e.rank
            axis = e.axis
            scaleBits = e.scale.map(\.bitPattern)
            shiftBits = e.shift.map(\.bitPattern)
        }

        /// What makes a recorded correction unusable (it comes from a file, so nothing about it
        /// is trusted before `apply` folds it into a graph), or nil.
        var problem: String? {
            if scaleBits.isEmpty { return "no channels" }
            if scaleBits.count != shiftBits.count { return "\(scaleBits.count) scales but \(shiftBits.count) shifts" }
            if rank < 1 || rank > 64 { return "rank \(rank) outside 1...64" }
            if axis < 0 || axis >= rank { return "axis \(axis) outside 0..<\(rank)" }
            if output.isEmpty { return "no output name" }
            return nil
        }

        var entry: CorrectionBox.Entry {
            CorrectionBox.Entry(scale: scaleBits.map(Float.init(bitPattern:)), shift: shiftBits.map(Float.init(bitPattern:)),
                                floatStd: [], rank: rank, axis: axis)
        }
    }

    /// The recorded corrections applied to `graph` (the binarized graph before calibration), as
    /// the conversion applied them.
    static func apply(_ recorded: [StoredCorrection], to graph: IRGraph) -> IRGraph {
        var g = graph
        for c in recorded { _ = fold(c.entry, output: c.output, into: &g) }
        return g
    }

    /// How calibration (and the per-layer diagnostic) loads the models it runs: binarized
    /// weights expanded to exactly their stored values. The runtime's default (`.auto`) picks a
    /// kernel per weight by timing it at load, and the picks can compute in a different order,
    /// so the corrections, and the file, would depend on the machine's load at that moment.
    static let modelOptions = MBModel.Options(weights: .expanded)

    struct Layer {
        var nodeIndex: Int
        var output: String
        /// Channel axis of the output: 1 for Conv/ConvTranspose/Gemm, the last for MatMul.
        var axisFromEnd: Int?
    }

    /// Per-channel mean and variance of `t` along `axis`.
    static func channelStatistics(_ t: MBTensor, axis: Int) -> (mean: [Double], variance: [Double]) {
        var sums = ChannelSums(channels: t.shape[axis])
        sums.add(t, axis: axis)
        return sums.statistics
    }

    static func axis(for node: IRNode, rank: Int) -> Int {
        node.opType == "MatMul" ? rank - 1 : 1
    }

    /// Corrects `binarized` (a graph whose binarized layers are `layerNodes`, by node name) so
    /// its layer outputs match `float`'s statistics on `inputs`. Returns the corrected graph and
    /// what each layer's correction was.
    static func calibrate(float: IRGraph, binarized: IRGraph, opsets: [IROpset], layerNodes: Set<String>,
                          inputs: [String: MBTensor], threads: Int) throws -> (IRGraph, [LayerCorrection], [StoredCorrection]) {
        var floatRunner = ModelRunner(mode: .whole, opsets: opsets, threads: threads)
        var binarizedRunner = floatRunner
        return try calibrate(float: float, binarized: binarized, layerNodes: layerNodes, inputs: inputs,
                             floatRunner: &floatRunner, binarizedRunner: &binarizedRunner)
    }

    /// `calibrate` with the float and the binarized model run by the given runners (in segments
    /// within a memory budget, the binarized weights converted as each segment needs them).
    static func calibrate(float: IRGraph, binarized: IRGraph, layerNodes: Set<String>, inputs: [String: MBTensor],
                          floatRunner: inout ModelRunner, binarizedRunner: inout ModelRunner) throws
        -> (IRGraph, [LayerCorrection], [StoredCorrection]) {
        let layers = binarized.nodes.enumerated().filter { layerNodes.contains($0.element.name) && !$0.element.outputs.isEmpty }
            .map { Layer(nodeIndex: $0.offset, output: $0.element.outputs[0], axisFromEnd: nil) }
        guard !layers.isEmpty else { return (binarized, [], []) }
        let watched = layers.map(\.output)

        // Float statistics: one run with every layer output exposed.
        var floatGraph = float
        floatGraph.outputs += watched.filter { w in !float.outputs.contains { $0.name == w } }
            .map { IRValueInfo(name: $0, elementType: .float, shape: nil) }
        let floatOut = try floatRunner.run(floatGraph, feeds: inputs)

        // Binarized run, each layer corrected as soon as it is computed.
        var binGraph = binarized
        binGraph.outputs += watched.filter { w in !binarized.outputs.contains { $0.name == w } }
            .map { IRValueInfo(name: $0, elementType: .float, shape: nil) }
        let found = CorrectionBox()
        var transforms: [String: (MBTensor) -> MBTensor] = [:]
        for layer in layers {
            guard let reference = floatOut[layer.output] else { continue }
            let node = binarized.nodes[layer.nodeIndex]
            transforms[layer.output] = { y in
                guard y.shape == reference.shape, y.shape.count >= 2 else { return y }
                let ax = axis(for: node, rank: y.shape.count)
                let f = channelStatistics(reference, axis: ax)
                let (scale, shift) = correction(float: f, binarized: channelStatistics(y, axis: ax))
                found.set(layer.output, scale: scale, shift: shift, floatStd: f.variance.map { $0.squareRoot() }, rank: y.shape.count, axis: ax)
                return apply(y, axis: ax, scale: scale, shift: shift)
            }
        }
        // The float outputs are held meanwhile (the corrections are measured against them).
        let held = Set(floatOut.keys).subtracting(inputs.keys).reduce(0) { $0 + ModelRunner.bytes(floatOut[$1]!) }
        _ = try binarizedRunner.run(binGraph, feeds: inputs, transforms: transforms, reserve: held)

        return store(found, layers: layers, in: binarized)
    }

    /// Folds the corrections `found` holds into `binarized`, layer by layer in graph order, and
    /// reports each (a layer without one is listed as not corrected).
    static func store(_ found: CorrectionBox, layers: [Layer], in binarized: IRGraph)
        -> (IRGraph, [LayerCorrection], [StoredCorrection]) {
        var graph = binarized
        var reports: [LayerCorrection] = []
        var stored: [StoredCorrection] = []
        for layer in layers {
            let node = binarized.nodes[layer.nodeIndex]
            guard let c = found.get(layer.output) else {
                // Never silently: a layer the run could not correct is listed as such.
                reports.append(LayerCorrection(node: node.name, output: layer.output, channels: 0,
                                               storedAs: "not corrected (its output is not a rank >= 2 tensor shaped like the float model's)",
                                               meanScaleChange: 0, meanShift: 0))
                continue
            }
            let storedAs = fold(c, output: layer.output, into: &graph)
            stored.append(StoredCorrection(output: layer.output, c))
            reports.append(report(c, node: node.name, output: layer.output, storedAs: storedAs))
        }
        return (graph, reports, stored)
    }

    /// How one correction is reported: mean |a − 1| and mean |b| / σ_float over the channels.
    static func report(_ c: CorrectionBox.Entry, node: String, output: String, storedAs: String) -> LayerCorrection {
        let scaleChange = c.scale.reduce(0.0) { $0 + abs(Double($1) - 1) } / Double(max(c.scale.count, 1))
        let shift = zip(c.shift, c.floatStd).reduce(0.0) { $0 + abs(Double($1.0)) / max($1.1, 1e-12) } / Double(max(c.shift.count, 1))
        return LayerCorrection(node: node, output: output, channels: c.scale.count, storedAs: storedAs,
                               meanScaleChange: scaleChange, meanShift: shift)
    }

    /// Per channel, a = σ_float / σ_binarized and b = μ_float − a·μ_binarized (a = 1 where either
    /// variance vanishes: a constant channel is only shifted).
    static func correction(float f: (mean: [Double], variance: [Double]), binarized b: (mean: [Double], variance: [Double]))
        -> (scale: [Float], shift: [Float]) {
        var scale = [Float](), shift = [Float]()
        for c in 0..<f.mean.count {
            let a = b.variance[c] > 1e-12 && f.variance[c] > 0 ? (f.variance[c] / b.variance[c]).squareRoot() : 1
            scale.append(Float(a))
            shift.append(Float(f.mean[c] - a * b.mean[c]))
        }
        return (scale, shift)
    }

    /// y·a + b along `axis`.
    static func apply(_ y: MBTensor, axis: Int, scale: [Float], shift: [Float]) -> MBTensor {
        let shape = y.shape
        let c = shape[axis], inner = shape[(axis + 1)...].reduce(1, *), outer = shape[..<axis].reduce(1, *)
        // One new array, read from `y` in place (`floats` would copy it first).
        let v = [Float](unsafeUninitializedCapacity: y.count) { out, count in
            func fill(_ x: UnsafeBufferPointer<Float>) {
                for o in 0..<outer {
                    for ch in 0..<c {
                        let base = (o * c + ch) * inner
                        let a = scale[ch], b = shift[ch]
                        for i in 0..<inner { out[base + i] = x[base + i] * a + b }
                    }
                }
            }
            if y.elementType == .float { y.withFloats(fill) } else { y.floats.withUnsafeBufferPointer(fill) }
            count = y.count
        }
        return MBTensor(shape: shape, floats: v)
    }

    /// Folds a correction into the BatchNormalization reading `output` when it is the only
    /// reader, else inserts Mul and Add nodes after the layer. Returns how it was stored.
    static func fold(_ c: CorrectionBox.Entry, output: String, into graph: inout IRGraph) -> String {
        let readers = graph.nodes.indices.filter { graph.nodes[$0].inputs.contains(output) }
        let isGraphOutput = graph.outputs.contains { $0.name == output }
        if readers.count == 1, !isGraphOutput, graph.nodes[readers[0]].opType == "BatchNormalization",
           graph.nodes[readers[0]].inputs.first == output, graph.nodes[readers[0]].inputs.count >= 5,
           let scale = constant(graph.nodes[readers[0]].inputs[1], in: graph), let mean = constant(graph.nodes[readers[0]].inputs[3], in: graph),
           scale.count == c.scale.count, mean.count == c.scale.count, c.scale.allSatisfy({ $0 > 0 }) {
            let bn = graph.nodes[readers[0]]
            let newScale = zip(scale, c.scale).map { $0 * $1 }
            let newMean = (0..<mean.count).map { (mean[$0] - c.shift[$0]) / c.scale[$0] }
            let scaleName = "\(bn.inputs[1]).calibrated.\(bn.name)", meanName = "\(bn.inputs[3]).calibrated.\(bn.name)"
            graph.constants.append(floatTensor(scaleName, [newScale.count], newScale))
            graph.constants.append(floatTensor(meanName, [newMean.count], newMean))
            graph.nodes[readers[0]].inputs[1] = scaleName
            graph.nodes[readers[0]].inputs[3] = meanName
            return "folded into BatchNormalization '\(bn.name)'"
        }
        // Per-channel Mul and Add right after the layer.
        guard let producer = graph.nodes.firstIndex(where: { $0.outputs.contains(output) }) else { return "not stored (no producer)" }
        let raw = "\(output).uncalibrated", scaled = "\(output).calibration.scaled"
        let shape = c.axis == c.rank - 1 ? [c.scale.count] : [c.scale.count] + [Int](repeating: 1, count: c.rank - c.axis - 1)
        graph.nodes[producer].outputs = graph.nodes[producer].outputs.map { $0 == output ? raw : $0 }
        graph.constants.append(floatTensor("\(output).calibration.scale", shape, c.scale))
        graph.constants.append(floatTensor("\(output).calibration.shift", shape, c.shift))
        let name = graph.nodes[producer].name
        graph.nodes.insert(contentsOf: [
            IRNode(name: "\(name).calibration.mul", opType: "Mul", inputs: [raw, "\(output).calibration.scale"], outputs: [scaled]),
            IRNode(name: "\(name).calibration.add", opType: "Add", inputs: [scaled, "\(output).calibration.shift"], outputs: [output]),
        ], at: producer + 1)
        return "Mul/Add after the layer"
    }

    static func constant(_ name: String, in graph: IRGraph) -> [Float]? {
        graph.constants.first { $0.name == name }?.floatValues()
    }

    static func floatTensor(_ name: String, _ shape: [Int], _ values: [Float]) -> IRTensor {
        IRTensor(name: name, elementType: .float, shape: shape,
                 storage: .dense(values.withUnsafeBytes { ByteSlice(storage: ByteStorage(copying: $0)) }))
    }

    /// The calibration inputs as one batch per model input (see `CalibrationInputs` for the
    /// accepted layouts).
    public static func loadInputs(_ path: String, model: MBModel, images: ImagePreprocessing = ImagePreprocessing()) throws -> [String: MBTensor] {
        try CalibrationInputs.open(path, model: model, images: images).all()
    }
}

extension Calibration {
    /// Refuses calibration inputs the model cannot take or that would poison the statistics:
    /// a missing input, a float model input given another element type, a rank or fixed
    /// dimension that differs from the model's declaration, an empty batch, NaN or Inf. One line
    /// naming the path, the input and the problem.
    static func check(_ inputs: [String: MBTensor], model: MBModel, path: String) throws {
        try check(inputs, declared: model.inputs, path: path)
    }

    /// `check` against a model's declared inputs.
    static func check(_ inputs: [String: MBTensor], declared: [IRValueInfo], path: String) throws {
        for info in declared {
            guard let t = inputs[info.name] else { throw ConversionError("\(path): no calibration values for model input '\(info.name)'") }
            if let type = info.elementType, type == .float || type == .float16 || type == .double, t.elementType != .float {
                throw ConversionError("\(path): input '\(info.name)' is \(t.elementType.name); the model takes float (give float32 .npy)")
            }
            if let dims = info.shape {
                guard dims.count == t.shape.count else {
                    throw ConversionError("\(path): input '\(info.name)' has shape \(t.shape); the model takes rank \(dims.count) (\(dims.map(\.description).joined(separator: "x")))")
                }
                for (axis, dim) in dims.enumerated() {
                    if case .fixed(let n) = dim, axis > 0 || n != 1, Int(n) != t.shape[axis] {
                        throw ConversionError("\(path): input '\(info.name)' has shape \(t.shape); the model takes \(dims.map(\.description).joined(separator: "x")) (axis \(axis) differs)")
                    }
                }
            }
            guard let batch = t.shape.first, batch >= 1, t.shape.allSatisfy({ $0 > 0 }) else {
                throw ConversionError("\(path): input '\(info.name)' holds no samples (shape \(t.shape))")
            }
            if t.elementType == .float, let bad = t.floats.firstIndex(where: { !$0.isFinite }) {
                throw ConversionError("\(path): input '\(info.name)' value \(bad) is \(t.floats[bad]) (calibration inputs must be finite)")
            }
        }
    }
}

/// Corrections found during the calibration run, by output name.
final class CorrectionBox: @unchecked Sendable {
    struct Entry {
        var scale: [Float]
        var shift: [Float]
        var floatStd: [Double]
        var rank: Int
        var axis: Int
    }
    private var entries: [String: Entry] = [:]
    private let lock = NSLock()
    func set(_ name: String, scale: [Float], shift: [Float], floatStd: [Double], rank: Int, axis: Int) {
        lock.lock(); entries[name] = Entry(scale: scale, shift: shift, floatStd: floatStd, rank: rank, axis: axis); lock.unlock()
    }
    func get(_ name: String) -> Entry? { lock.lock(); defer { lock.unlock() }; return entries[name] }
}
