import MBCore
import MBONNX
import MBPolicy

/// Finds the tensors a policy decides about: the weight inputs of Conv, ConvTranspose, Gemm and
/// MatMul wherever they live (initializer, Constant node, external data, or computed by a
/// constant subgraph such as ConstantOfShape), plus every other float constant, which a rule
/// can reach by tensor name. The conversion pipeline uses the same list to fold and binarize.
///
/// Only the main graph is searched: nodes inside If/Loop/Scan bodies keep their tensors as they are.
public struct WeightDiscovery: Sendable {
    /// Where a tensor's values come from.
    public enum Source: Sendable, Equatable, CustomStringConvertible {
        case initializer
        case constantNode
        /// ONNX external data (an initializer or Constant whose bytes live in another file).
        case external
        /// Computed from constants by this op (folded at conversion).
        case folded(op: String)

        public var description: String {
            switch self {
            case .initializer: return "initializer"
            case .constantNode: return "constant-node"
            case .external: return "external"
            case .folded(let op): return "folded \(op)"
            }
        }
    }

    /// One tensor: its facts for the policy, and what conversion needs to binarize it.
    public struct Tensor: Sendable {
        public var name: String
        public var elementType: ElementType
        public var shape: [Int]
        public var elementCount: Int
        public var source: Source
        /// Every main-graph node that reads it, in graph order.
        public var consumers: [PolicySubject.Consumer]
        /// A weight input of Conv, ConvTranspose, Gemm or MatMul.
        public var isWeight: Bool
        public var isFirst: Bool
        public var isLast: Bool
        public var isDepthwise: Bool
        /// The output-channel axis ("channel" scales are per slice along it); nil for non-weights.
        public var outputAxis: Int?

        /// Slices along `outputAxis` (1 for non-weights and scalars).
        public var channelCount: Int {
            guard let a = outputAxis, a < shape.count else { return 1 }
            return max(1, shape[a])
        }

        public var subject: PolicySubject {
            PolicySubject(tensorName: name, consumers: consumers, shape: shape.map { Int64($0) }, elementCount: elementCount,
                          isWeight: isWeight, isFirst: isFirst, isLast: isLast, isDepthwise: isDepthwise)
        }
    }

    /// The weights in order of their first weighted use, then the other float constants in
    /// graph order.
    public var tensors: [Tensor]
    /// The graph the tensors were found in (constants not yet folded).
    public var graph: IRGraph
    /// Foldable nodes by output name.
    public var folds: [String: ConstantFolding.Plan]

    public var weights: [Tensor] { tensors.filter(\.isWeight) }
    public var subjects: [PolicySubject] { tensors.map(\.subject) }

    /// Element types a weight can be binarized from.
    static let floatTypes: Set<ElementType> = [.float, .float16, .double, .bfloat16]

    /// Lowers an imported ONNX model and discovers its weights; `file` names it in errors.
    public init(onnx model: ONNXModel, file: String, limits: ConstantFolding.Limits = .init()) throws {
        let ir = try ONNXLowering(file: file).lower(model)
        do {
            try self.init(graph: ir.graph, sources: Self.sources(of: model), limits: limits)
        } catch {
            throw ConversionError("\(file): graph node '\(error.node ?? "?")' (ConstantOfShape): \(error.message)", cause: error)
        }
    }

    /// `sources` says where each constant of `graph` came from (default: initializer).
    public init(graph: IRGraph, sources: [String: Source] = [:], limits: ConstantFolding.Limits = .init()) throws(ConversionError) {
        self.graph = graph
        folds = try ConstantFolding.plans(for: graph, limits: limits)
        var constants: [String: (ElementType, [Int], Source)] = [:]
        for c in graph.constants { constants[c.name] = (c.elementType, c.shape, sources[c.name] ?? .initializer) }
        for (name, p) in folds { constants[name] = (p.elementType, p.shape, .folded(op: p.node.opType)) }

        // Which node reads which tensor.
        var readers: [String: [Int]] = [:]
        for (i, node) in graph.nodes.enumerated() {
            for input in Set(node.inputs) where !input.isEmpty { readers[input, default: []].append(i) }
        }

        // Weighted nodes in graph order, and the weight each reads.
        var weightUses: [(node: Int, tensor: String, axis: Int, depthwise: Bool)] = []
        for (i, node) in graph.nodes.enumerated() {
            guard let (name, axis) = WeightedOp(node)?.weight(of: node, shapeOf: { constants[$0]?.1 }) else { continue }
            guard let (type, shape, _) = constants[name], Self.floatTypes.contains(type) else { continue }
            weightUses.append((i, name, axis, Self.isDepthwise(node, weightShape: shape)))
        }
        let firstNode = weightUses.first?.node
        let lastNode = weightUses.last?.node

        var tensors: [Tensor] = []
        var index: [String: Int] = [:]
        for use in weightUses {
            if let k = index[use.tensor] {
                // A shared weight is one tensor; it is first/last/depthwise if any use is.
                tensors[k].isFirst = tensors[k].isFirst || use.node == firstNode
                tensors[k].isLast = tensors[k].isLast || use.node == lastNode
                tensors[k].isDepthwise = tensors[k].isDepthwise || use.depthwise
                continue
            }
            let (type, shape, source) = constants[use.tensor]!
            index[use.tensor] = tensors.count
            tensors.append(Tensor(name: use.tensor, elementType: type, shape: shape, elementCount: shape.reduce(1, *), source: source,
                                  consumers: Self.consumers(of: use.tensor, readers: readers, graph: graph),
                                  isWeight: true, isFirst: use.node == firstNode, isLast: use.node == lastNode,
                                  isDepthwise: use.depthwise, outputAxis: use.axis))
        }

        // Every other float constant that some node reads (biases, BN parameters, ...).
        var others: [String] = []
        for c in graph.constants where index[c.name] == nil { others.append(c.name) }
        for node in graph.nodes { if let o = node.outputs.first, folds[o] != nil, index[o] == nil { others.append(o) } }
        for name in others where index[name] == nil {
            guard let (type, shape, source) = constants[name], Self.floatTypes.contains(type), readers[name] != nil else { continue }
            index[name] = tensors.count
            tensors.append(Tensor(name: name, elementType: type, shape: shape, elementCount: shape.reduce(1, *), source: source,
                                  consumers: Self.consumers(of: name, readers: readers, graph: graph),
                                  isWeight: false, isFirst: false, isLast: false, isDepthwise: false, outputAxis: nil))
        }
        self.tensors = tensors
    }

    /// Conv with group > 1 and group == input channels, i.e. W has one input channel per group.
    static func isDepthwise(_ node: IRNode, weightShape: [Int]) -> Bool {
        guard node.opType == "Conv", case .int(let g)? = node.attribute("group"), g > 1, weightShape.count >= 2 else { return false }
        return weightShape[1] == 1
    }

    static func consumers(of tensor: String, readers: [String: [Int]], graph: IRGraph) -> [PolicySubject.Consumer] {
        (readers[tensor] ?? []).map { PolicySubject.Consumer(name: graph.nodes[$0].name, opType: graph.nodes[$0].opType) }
    }

    /// Where each initializer and Constant-node tensor of the main graph lives.
    static func sources(of model: ONNXModel) -> [String: Source] {
        guard let g = model.graph else { return [:] }
        var out: [String: Source] = [:]
        for t in g.initializers { out[t.name ?? ""] = t.isExternal ? .external : .initializer }
        for n in g.nodes where n.opType == "Constant" && OperatorDomain.isDefault(n.domain) {
            guard let name = n.outputs.first else { continue }
            out[name] = n.attribute("value")?.t?.isExternal == true ? .external : .constantNode
        }
        return out
    }

    /// Random access to a float tensor's elements without materializing a folded one (a
    /// ConstantOfShape weight is one repeated value), for sampling big weights cheaply.
    public func elementReader(_ name: String) throws -> (count: Int, read: (Int) -> Float) {
        if let p = folds[name], p.node.opType == "ConstantOfShape" {
            let one = ConstantFolding.Plan(node: p.node, outputName: p.outputName, elementType: p.elementType, shape: [1], elementCount: 1)
            let t = try ConstantFolding.evaluate(one) { _ in nil }
            guard let v = t.floatValues()?.first else {
                throw ConversionError(node: name, "\(p.elementType.name) values cannot be read as float")
            }
            return (p.elementCount, { _ in v })
        }
        let t = try materialize(name)
        guard case .dense(let bytes) = t.storage, let reader = FloatReader(type: t.elementType, bytes: bytes, count: t.elementCount) else {
            throw ConversionError(node: name, "\(t.elementType.name) values cannot be read as float")
        }
        return (t.elementCount, reader.read)
    }

    /// The values of `tensor`, folding its constant subgraph when it has one.
    public func materialize(_ name: String) throws -> IRTensor {
        if let c = graph.constants.first(where: { $0.name == name }) { return c }
        guard let p = folds[name] else { throw ConversionError(node: name, "is not a constant") }
        return try ConstantFolding.evaluate(p) { try self.materialize($0) }
    }

    /// A float constant (folded or not) as the binarizer's input, as the pipeline reads it.
    public func floatTensor(_ name: String) throws -> FloatTensor {
        let t = try materialize(name)
        return try FloatTensor(name: name, shape: t.shape, values: try Conversion.floatValues(of: t))
    }
}

/// Reads element i of a dense float tensor (float32, float64, float16, bfloat16) as Float32.
struct FloatReader: @unchecked Sendable {
    let type: ElementType
    let bytes: ByteSlice

    init?(type: ElementType, bytes: ByteSlice, count: Int) {
        let width: Int
        switch type {
        case .float: width = 4
        case .double: width = 8
        case .float16, .bfloat16: width = 2
        default: return nil
        }
        guard bytes.count >= count * width else { return nil }
        self.type = type
        self.bytes = bytes
    }

    func read(_ i: Int) -> Float {
        bytes.withBytes { raw in
            switch type {
            case .float: return Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            case .double: return Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))))
            case .float16: return Float(float16Bits: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
            default: return Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) << 16)
            }
        }
    }
}
