import MBCore
import MBONNX

/// What `mbconvert inspect model.onnx` reports: one value, rendered as text or JSON.
public struct ModelSummary: Codable, Sendable {
    public struct Opset: Codable, Sendable {
        public var domain: String
        public var version: Int64?
    }

    public struct Value: Codable, Sendable {
        public var name: String
        /// "float32", "int64", ... or a description of non-tensor types.
        public var type: String
        /// Dimensions as text: a number, a symbolic name, or "?" for unknown; nil when the rank is unknown.
        public var shape: [String]?
    }

    public struct OpCount: Codable, Sendable {
        public var op: String
        public var count: Int
    }

    public struct Weight: Codable, Sendable {
        public enum Location: String, Codable, Sendable {
            case initializer
            case constantNode = "constant-node"
            case external
        }
        public var name: String
        public var shape: [Int64]
        public var type: String
        public var location: Location
        /// The external file, for external weights.
        public var file: String?
        /// Size of the elements in raw form (nil for strings and unknown types).
        public var bytes: Int?
        /// Where in the model: "graph", or the subgraph it lives in.
        public var graph: String
    }

    public struct Totals: Codable, Sendable {
        public var nodes: Int
        public var subgraphNodes: Int
        public var initializers: Int
        public var initializerBytes: Int
        public var constantNodeTensors: Int
        public var constantNodeBytes: Int
        public var externalTensors: Int
        public var externalBytes: Int
        public var weightBytes: Int
    }

    public var file: String
    public var fileBytes: Int
    public var irVersion: Int64?
    public var opsets: [Opset]
    public var producerName: String?
    public var producerVersion: String?
    public var domain: String?
    public var modelVersion: Int64?
    public var graphName: String?
    public var inputs: [Value]
    public var outputs: [Value]
    /// Op types of the main graph, most frequent first.
    public var operators: [OpCount]
    /// Op types inside subgraphs (If/Loop/Scan bodies).
    public var subgraphOperators: [OpCount]
    public var weights: [Weight]
    public var totals: Totals
}

extension ModelSummary {
    public init(model: ONNXModel, file: String, fileBytes: Int) {
        let graph = model.graph ?? ONNXGraph()
        self.file = file
        self.fileBytes = fileBytes
        irVersion = model.irVersion
        opsets = model.opsetImports.map { Opset(domain: OperatorDomain.isDefault($0.domain) ? OperatorDomain.onnx : $0.domain!, version: $0.version) }
        producerName = model.producerName
        producerVersion = model.producerVersion
        domain = model.domain
        modelVersion = model.modelVersion
        graphName = graph.name

        // Graph inputs that are initializers (IR < 4 style) are weights, not inputs.
        let initializerNames = Set(graph.initializers.compactMap(\.name))
        inputs = graph.inputs.filter { !initializerNames.contains($0.name ?? "") }.map(Self.value)
        outputs = graph.outputs.map(Self.value)

        var main: [String: Int] = [:]
        var sub: [String: Int] = [:]
        var subgraphNodes = 0
        graph.forEachNode { node, depth in
            let op = Self.opName(node)
            if depth == 0 { main[op, default: 0] += 1 } else { sub[op, default: 0] += 1; subgraphNodes += 1 }
        }
        operators = Self.sorted(main)
        subgraphOperators = Self.sorted(sub)

        var weights: [Weight] = []
        Self.collectWeights(graph, place: "graph", into: &weights)
        self.weights = weights

        func sum(_ filter: (Weight) -> Bool) -> (Int, Int) {
            let picked = weights.filter(filter)
            return (picked.count, picked.reduce(0) { $0 + ($1.bytes ?? 0) })
        }
        let (ni, bi) = sum { $0.location == .initializer }
        let (nc, bc) = sum { $0.location == .constantNode }
        let (ne, be) = sum { $0.location == .external }
        totals = Totals(nodes: graph.nodes.count, subgraphNodes: subgraphNodes,
                        initializers: ni, initializerBytes: bi, constantNodeTensors: nc, constantNodeBytes: bc,
                        externalTensors: ne, externalBytes: be, weightBytes: bi + bc + be)
    }

    static func opName(_ node: ONNXNode) -> String {
        let domain = node.domain ?? ""
        let op = node.opType ?? "?"
        return OperatorDomain.isDefault(domain) ? op : "\(domain).\(op)"
    }

    static func sorted(_ counts: [String: Int]) -> [OpCount] {
        counts.map { OpCount(op: $0.key, count: $0.value) }.sorted { ($0.count, $1.op) > ($1.count, $0.op) }
    }

    static func value(_ info: ONNXValueInfo) -> Value {
        Value(name: info.name ?? "", type: typeName(info.type), shape: shapeText(info.type))
    }

    static func typeName(_ type: ONNXTypeProto?) -> String {
        guard let type else { return "unknown" }
        switch type.value {
        case .tensor(let e, _): return e.map(elementName) ?? "tensor"
        case .sparseTensor(let e, _): return "sparse " + (e.map(elementName) ?? "tensor")
        case .sequence(let e): return "sequence<\(typeName(e))>"
        case .optional(let e): return "optional<\(typeName(e))>"
        case .map(let k, let v): return "map<\(k.map(elementName) ?? "?"), \(typeName(v))>"
        case .opaque(let d, let n): return "opaque \(d ?? "").\(n ?? "")"
        case .notSet: return "unknown"
        }
    }

    /// numpy-style names ("float32") for tensor element types.
    public static func elementName(_ raw: Int32) -> String {
        switch ElementType(rawValue: raw) {
        case .float: return "float32"
        case .double: return "float64"
        case .some(let t): return t.name
        case nil: return ElementType.describe(rawValue: raw)
        }
    }

    static func shapeText(_ type: ONNXTypeProto?) -> [String]? {
        guard let type else { return nil }
        let shape: ONNXShape?
        switch type.value {
        case .tensor(_, let s), .sparseTensor(_, let s): shape = s
        default: shape = nil
        }
        return shape?.dims.map { d in
            switch d.value {
            case .fixed(let v): return String(v)
            case .symbolic(let s): return s
            case .unknown: return "?"
            }
        }
    }

    static func collectWeights(_ graph: ONNXGraph, place: String, into weights: inout [Weight]) {
        for t in graph.initializers {
            weights.append(weight(t, name: t.name ?? "", location: t.isExternal ? .external : .initializer, graph: place))
        }
        for (i, node) in graph.nodes.enumerated() {
            if node.opType == "Constant", OperatorDomain.isDefault(node.domain) {
                let name = node.outputs.first ?? node.name ?? "#\(i)"
                if let t = node.attribute("value")?.t {
                    weights.append(weight(t, name: name, location: t.isExternal ? .external : .constantNode, graph: place))
                } else if let a = node.attributes.first {
                    // value_float(s) / value_int(s): small literal constants.
                    let (type, count): (ElementType?, Int?) = {
                        switch a.name {
                        case "value_float": return (.float, 1)
                        case "value_floats": return (.float, a.floats.count)
                        case "value_int": return (.int64, 1)
                        case "value_ints": return (.int64, a.ints.count)
                        default: return (nil, nil)
                        }
                    }()
                    if let type, let count {
                        let shape: [Int64] = a.name!.hasSuffix("s") ? [Int64(count)] : []
                        weights.append(Weight(name: name, shape: shape, type: elementName(type.rawValue), location: .constantNode,
                                              file: nil, bytes: type.rawByteCount(elements: count), graph: place))
                    }
                }
            }
            for a in node.attributes {
                let sub = "\(place) > \(node.name ?? "#\(i)").\(a.name ?? "")"
                if let g = a.g { collectWeights(g, place: sub, into: &weights) }
                for (k, g) in a.graphs.enumerated() { collectWeights(g, place: "\(sub)[\(k)]", into: &weights) }
            }
        }
    }

    static func weight(_ t: ONNXTensor, name: String, location: Weight.Location, graph: String) -> Weight {
        Weight(name: name, shape: t.dims, type: elementName(t.dataType ?? 0), location: location,
               file: t.external?.location, bytes: t.logicalByteCount, graph: graph)
    }
}
