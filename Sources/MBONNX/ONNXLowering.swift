import MBCore

/// ONNX → IR: what the converter writes and the runtime runs. Initializers and `Constant` nodes
/// become constants; graph inputs that are initializers (IR < 4 style defaults) are dropped from
/// the inputs; doc strings, value_info and training information are left behind.
public struct ONNXLowering {
    let file: String

    public init(file: String) {
        self.file = file
    }

    public func lower(_ model: ONNXModel) throws(ONNXError) -> IRModel {
        guard let graph = model.graph else { throw ONNXError(.notAModel, file: file, place: "model", "no graph") }
        return IRModel(graph: try lower(graph, place: "graph"), opsets: model.irOpsets)
    }

    func lower(_ g: ONNXGraph, place: String) throws(ONNXError) -> IRGraph {
        var out = IRGraph(name: g.name ?? "")
        var constantNames = Set<String>()
        for t in g.initializers {
            let c = try tensor(t, place: "\(place) initializer '\(t.name ?? "")'")
            constantNames.insert(c.name)
            out.constants.append(c)
        }
        out.inputs = g.inputs.filter { !constantNames.contains($0.name ?? "") }.map(valueInfo)
        out.outputs = g.outputs.map(valueInfo)
        for (i, n) in g.nodes.enumerated() {
            let nodePlace = "\(place) node '\(n.name ?? "#\(i)")' (\(n.opType ?? "?"))"
            let domain = OperatorDomain.normalized(n.domain)
            if n.opType == "Constant", domain.isEmpty, n.outputs.count == 1, let c = try constantNodeValue(n, place: nodePlace) {
                out.constants.append(c)
                continue
            }
            var attributes: [IRAttribute] = []
            for a in n.attributes {
                attributes.append(IRAttribute(name: a.name ?? "", value: try attribute(a, place: "\(nodePlace) attribute '\(a.name ?? "")'")))
            }
            out.nodes.append(IRNode(name: n.name ?? "", opType: n.opType ?? "", domain: domain,
                                    inputs: n.inputs, outputs: n.outputs, attributes: attributes))
        }
        return out
    }

    func valueInfo(_ v: ONNXValueInfo) -> IRValueInfo {
        switch v.type.map(type) {
        case .tensor(let e, let shape)?: return IRValueInfo(name: v.name ?? "", elementType: e, shape: shape)
        case let other?: return IRValueInfo(name: v.name ?? "", elementType: nil, shape: nil, nonTensorType: other)
        case nil: return IRValueInfo(name: v.name ?? "", elementType: nil, shape: nil)
        }
    }

    /// A TypeProto as the IR's type (an unset or unknown element type becomes nil).
    func type(_ t: ONNXTypeProto) -> IRType {
        switch t.value {
        case .tensor(let e, let s):
            let shape = s?.dims.map { d -> IRDim in
                switch d.value {
                case .fixed(let x): return x >= 0 ? .fixed(x) : .unknown
                case .symbolic(let name): return .symbolic(name)
                case .unknown: return .unknown
                }
            }
            return .tensor(e.flatMap(ElementType.init(rawValue:)), shape: shape)
        case .sequence(let inner): return .sequence(inner.map(type))
        case .optional(let inner): return .optional(inner.map(type))
        case .map: return .other("map")
        case .sparseTensor: return .other("sparse tensor")
        case .opaque: return .other("opaque")
        case .notSet: return .tensor(nil, shape: nil)
        }
    }

    /// A `Constant` node's value as a tensor named after its output; nil for forms we keep as
    /// nodes (sparse values).
    func constantNodeValue(_ n: ONNXNode, place: String) throws(ONNXError) -> IRTensor? {
        let name = n.outputs[0]
        guard let a = n.attributes.first else { throw ONNXError(.malformed, file: file, place: place, "Constant has no value attribute") }
        func make(_ type: ElementType, _ shape: [Int], _ bytes: [UInt8]) -> IRTensor {
            IRTensor(name: name, elementType: type, shape: shape, storage: .dense(ByteSlice(copying: bytes)))
        }
        func le<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] { values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } } }
        switch a.name {
        case "value":
            guard var t = a.t else { throw ONNXError(.malformed, file: file, place: place, "'value' holds no tensor") }
            t.name = name
            return try tensor(t, place: place)
        case "value_float": return make(.float, [], le([(a.f ?? 0).bitPattern]))
        case "value_floats": return make(.float, [a.floats.count], le(a.floats.map(\.bitPattern)))
        case "value_int": return make(.int64, [], le([a.i ?? 0]))
        case "value_ints": return make(.int64, [a.ints.count], le(a.ints))
        case "value_string": return IRTensor(name: name, elementType: .string, shape: [], storage: .strings([a.s ?? []]))
        case "value_strings": return IRTensor(name: name, elementType: .string, shape: [a.strings.count], storage: .strings(a.strings))
        default: return nil
        }
    }

    /// One tensor (an initializer, a `Constant` value, backend test data) as an IR tensor.
    public func tensor(_ t: ONNXTensor, place: String) throws(ONNXError) -> IRTensor {
        guard let type = t.elementType else {
            throw ONNXError(.unsupported, file: file, place: place, "element type \(ElementType.describe(rawValue: t.dataType ?? 0)) is not supported")
        }
        guard let count = t.elementCount, let shape = Optional(t.dims.map { Int($0) }) else {
            throw ONNXError(.tensorData, file: file, place: place, "shape \(describeShape(t.dims)) is invalid")
        }
        if let problem = t.dataSizeProblem() { throw ONNXError(.tensorData, file: file, place: place, problem) }
        if type == .string {
            return IRTensor(name: t.name ?? "", elementType: type, shape: shape, storage: .strings(t.stringData))
        }
        guard let bytes = t.rawLittleEndianBytes() else {
            throw ONNXError(.tensorData, file: file, place: place, "has no data for its \(count) elements")
        }
        return IRTensor(name: t.name ?? "", elementType: type, shape: shape, storage: .dense(bytes))
    }

    func attribute(_ a: ONNXAttribute, place: String) throws(ONNXError) -> IRAttributeValue {
        // Older exporters omit `type`; infer it from the field that is set.
        let kind = a.kind ?? inferKind(a)
        switch kind {
        case .float: return .float(a.f ?? 0)
        case .int: return .int(a.i ?? 0)
        case .string: return .string(a.s ?? [])
        case .tensor:
            guard let t = a.t else { throw ONNXError(.malformed, file: file, place: place, "TENSOR attribute holds no tensor") }
            return .tensor(try tensor(t, place: place))
        case .graph:
            guard let g = a.g else { throw ONNXError(.malformed, file: file, place: place, "GRAPH attribute holds no graph") }
            return .graph(try lower(g, place: place))
        case .floats: return .floats(a.floats)
        case .ints: return .ints(a.ints)
        case .strings: return .strings(a.strings)
        case .tensors:
            var list: [IRTensor] = []
            for (i, t) in a.tensors.enumerated() { list.append(try tensor(t, place: "\(place)[\(i)]")) }
            return .tensors(list)
        case .graphs:
            var list: [IRGraph] = []
            for (i, g) in a.graphs.enumerated() { list.append(try lower(g, place: "\(place)[\(i)]")) }
            return .graphs(list)
        case .typeProto:
            guard let t = a.tp else { throw ONNXError(.malformed, file: file, place: place, "TYPE_PROTO attribute holds no type") }
            return .type(type(t))
        default:
            throw ONNXError(.unsupported, file: file, place: place, "attribute type \(a.type.map(String.init) ?? "unset") is not supported")
        }
    }

    func inferKind(_ a: ONNXAttribute) -> ONNXAttribute.Kind {
        if a.f != nil { return .float }
        if a.i != nil { return .int }
        if a.s != nil { return .string }
        if a.t != nil { return .tensor }
        if a.g != nil { return .graph }
        if !a.floats.isEmpty { return .floats }
        if !a.ints.isEmpty { return .ints }
        if !a.strings.isEmpty { return .strings }
        if !a.tensors.isEmpty { return .tensors }
        if !a.graphs.isEmpty { return .graphs }
        return .undefined
    }
}
