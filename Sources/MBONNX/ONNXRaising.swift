import MBCore

/// IR → ONNX, for `mbconvert export-onnx`: every constant becomes an initializer (binarized
/// weights as their exact dequantized float values), so any ONNX tool can run or show what the
/// `.mbm` holds.
public enum ONNXRaising {
    /// `widening` names float16 constants to write as float32 (weights the policy stored as
    /// float16 that the graph uses as float32).
    public static func raise(_ model: IRModel, producerVersion: String, widening: Set<String> = []) -> ONNXModel {
        var out = ONNXModel()
        out.irVersion = 8
        out.producerName = "mbconvert"
        out.producerVersion = producerVersion
        out.opsetImports = model.opsets.map { ONNXOperatorSetID(domain: $0.domain, version: $0.version) }
        out.graph = raise(model.graph, widening: widening)
        return out
    }

    static func raise(_ g: IRGraph, widening: Set<String> = []) -> ONNXGraph {
        var out = ONNXGraph()
        out.name = g.name
        out.inputs = g.inputs.map(valueInfo)
        out.outputs = g.outputs.map(valueInfo)
        out.initializers = g.constants.map { c in
            guard widening.contains(c.name), c.elementType == .float16, let values = c.floatValues() else { return tensor(c) }
            return tensor(IRTensor(name: c.name, elementType: .float, shape: c.shape,
                                   storage: .dense(values.withUnsafeBytes { ByteSlice(storage: ByteStorage(copying: $0)) })))
        }
        out.nodes = g.nodes.map { n in
            var node = ONNXNode()
            node.name = n.name
            node.opType = n.opType
            if !n.domain.isEmpty { node.domain = n.domain }
            node.inputs = n.inputs
            node.outputs = n.outputs
            // mbconvert's own attributes (mb.activations.*) are not ONNX: ONNX has no operator for
            // inputs binarized at run time, so the export runs those layers on float inputs.
            node.attributes = n.attributes.filter { !$0.name.hasPrefix("mb.") }.map { attribute($0.name, $0.value) }
            return node
        }
        return out
    }

    static func valueInfo(_ v: IRValueInfo) -> ONNXValueInfo {
        var out = ONNXValueInfo()
        out.name = v.name
        if let t = v.nonTensorType {
            out.type = typeProto(t)
            return out
        }
        // A value whose type the source did not give (often a subgraph's outputs) gets none:
        // element type 0 would be invalid ONNX.
        if v.elementType != nil || v.shape != nil {
            out.type = typeProto(.tensor(v.elementType, shape: v.shape))
        }
        return out
    }

    static func typeProto(_ t: IRType) -> ONNXTypeProto {
        switch t {
        case .tensor(let e, let dims):
            let shape = dims.map { dims in
                ONNXShape(dims: dims.map { d -> ONNXShape.Dimension in
                    switch d {
                    case .fixed(let x): return .init(value: .fixed(x))
                    case .symbolic(let s): return .init(value: .symbolic(s))
                    case .unknown: return .init(value: .unknown)
                    }
                })
            }
            return ONNXTypeProto(value: .tensor(elemType: e?.rawValue, shape: shape))
        case .sequence(let inner): return ONNXTypeProto(value: .sequence(elemType: inner.map(typeProto)))
        case .optional(let inner): return ONNXTypeProto(value: .optional(elemType: inner.map(typeProto)))
        case .other: return ONNXTypeProto()
        }
    }

    static func tensor(_ t: IRTensor) -> ONNXTensor {
        var out = ONNXTensor()
        out.name = t.name
        out.dims = t.shape.map(Int64.init)
        switch t.storage {
        case .dense(let bytes):
            out.dataType = t.elementType.rawValue
            out.rawData = bytes
        case .strings(let list):
            out.dataType = t.elementType.rawValue
            out.stringData = list
        case .binarized(let packed):
            // The exact stored values, as float32 whatever the source type was.
            out.dataType = ElementType.float.rawValue
            let values = packed.dequantized()
            out.rawData = values.withUnsafeBytes { ByteSlice(storage: ByteStorage(copying: $0)) }
        case .quantized(let q):
            // int-n and palette weights likewise: their exact stored values as float32.
            out.dataType = ElementType.float.rawValue
            let values = q.dequantized()
            out.rawData = values.withUnsafeBytes { ByteSlice(storage: ByteStorage(copying: $0)) }
        }
        return out
    }

    static func attribute(_ name: String, _ v: IRAttributeValue) -> ONNXAttribute {
        var a = ONNXAttribute()
        a.name = name
        switch v {
        case .float(let x): a.type = ONNXAttribute.Kind.float.rawValue; a.f = x
        case .int(let x): a.type = ONNXAttribute.Kind.int.rawValue; a.i = x
        case .string(let x): a.type = ONNXAttribute.Kind.string.rawValue; a.s = x
        case .tensor(let t): a.type = ONNXAttribute.Kind.tensor.rawValue; a.t = tensor(t)
        case .graph(let g): a.type = ONNXAttribute.Kind.graph.rawValue; a.g = raise(g)
        case .floats(let x): a.type = ONNXAttribute.Kind.floats.rawValue; a.floats = x
        case .ints(let x): a.type = ONNXAttribute.Kind.ints.rawValue; a.ints = x
        case .strings(let x): a.type = ONNXAttribute.Kind.strings.rawValue; a.strings = x
        case .tensors(let x): a.type = ONNXAttribute.Kind.tensors.rawValue; a.tensors = x.map(tensor)
        case .graphs(let x): a.type = ONNXAttribute.Kind.graphs.rawValue; a.graphs = x.map { raise($0) }
        // ONNX has no list of doubles; only mbconvert's own attributes use it, and those are dropped above.
        case .doubles(let x): a.type = ONNXAttribute.Kind.floats.rawValue; a.floats = x.map { Float($0) }
        case .type(let t): a.type = ONNXAttribute.Kind.typeProto.rawValue; a.tp = typeProto(t)
        }
        return a
    }
}
