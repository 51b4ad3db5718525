import MBCore

/// The GRPH section: opsets and the graph, constants referring to the tensor directory by index
/// (Schemas/mbm-format.md, "Graph").
enum GraphCodec {
    enum AttributeKind: UInt8 {
        case float = 1, int = 2, string = 3, tensor = 4, graph = 5
        case floats = 6, ints = 7, strings = 8, tensors = 9, graphs = 10
        case doubles = 11
        case type = 12
    }

    // MARK: encoding

    /// Encodes `model`; every constant tensor met is appended to `tensors` and referenced by index.
    static func encode(_ model: IRModel, tensors: inout [IRTensor]) -> [UInt8] {
        var w = ByteWriter()
        w.u32(UInt32(model.opsets.count))
        for o in model.opsets {
            w.string(o.domain)
            w.i64(o.version)
        }
        encode(model.graph, into: &w, tensors: &tensors)
        return w.bytes
    }

    static func encode(_ g: IRGraph, into w: inout ByteWriter, tensors: inout [IRTensor]) {
        w.string(g.name)
        for list in [g.inputs, g.outputs] {
            w.u32(UInt32(list.count))
            for v in list { encode(v, into: &w) }
        }
        w.u32(UInt32(g.constants.count))
        for c in g.constants {
            w.u32(UInt32(tensors.count))
            tensors.append(c)
        }
        w.u32(UInt32(g.nodes.count))
        for n in g.nodes {
            w.string(n.name)
            w.string(n.opType)
            w.string(n.domain)
            for list in [n.inputs, n.outputs] {
                w.u32(UInt32(list.count))
                for s in list { w.string(s) }
            }
            w.u32(UInt32(n.attributes.count))
            for a in n.attributes {
                w.string(a.name)
                encode(a.value, into: &w, tensors: &tensors)
            }
        }
    }

    static func encode(_ v: IRValueInfo, into w: inout ByteWriter) {
        w.string(v.name)
        encodeTensorType(v.elementType, v.shape, into: &w)
    }

    /// i32 element type (0 unknown), u8 has_shape, [u32 rank, rank × dim].
    static func encodeTensorType(_ elementType: ElementType?, _ shape: [IRDim]?, into w: inout ByteWriter) {
        w.i32(elementType?.rawValue ?? 0)
        guard let shape else {
            w.u8(0)
            return
        }
        w.u8(1)
        w.u32(UInt32(shape.count))
        for d in shape {
            switch d {
            case .fixed(let x): w.u8(0); w.i64(x)
            case .symbolic(let s): w.u8(1); w.string(s)
            case .unknown: w.u8(2)
            }
        }
    }

    /// u8 tag, then 0 tensor: tensor type | 1 sequence, 2 optional: u8 has_element, [type] | 3 other: str name.
    static func encode(_ t: IRType, into w: inout ByteWriter) {
        switch t {
        case .tensor(let e, let shape): w.u8(0); encodeTensorType(e, shape, into: &w)
        case .sequence(let inner), .optional(let inner):
            if case .sequence = t { w.u8(1) } else { w.u8(2) }
            if let inner { w.u8(1); encode(inner, into: &w) } else { w.u8(0) }
        case .other(let name): w.u8(3); w.string(name)
        }
    }

    static func encode(_ v: IRAttributeValue, into w: inout ByteWriter, tensors: inout [IRTensor]) {
        switch v {
        case .float(let x): w.u8(AttributeKind.float.rawValue); w.f32(x)
        case .int(let x): w.u8(AttributeKind.int.rawValue); w.i64(x)
        case .string(let x): w.u8(AttributeKind.string.rawValue); w.blob(x)
        case .tensor(let t):
            w.u8(AttributeKind.tensor.rawValue)
            w.u32(UInt32(tensors.count))
            tensors.append(t)
        case .graph(let g): w.u8(AttributeKind.graph.rawValue); encode(g, into: &w, tensors: &tensors)
        case .floats(let x): w.u8(AttributeKind.floats.rawValue); w.u32(UInt32(x.count)); for f in x { w.f32(f) }
        case .ints(let x): w.u8(AttributeKind.ints.rawValue); w.u32(UInt32(x.count)); for i in x { w.i64(i) }
        case .strings(let x): w.u8(AttributeKind.strings.rawValue); w.u32(UInt32(x.count)); for s in x { w.blob(s) }
        case .tensors(let x):
            w.u8(AttributeKind.tensors.rawValue)
            w.u32(UInt32(x.count))
            for t in x {
                w.u32(UInt32(tensors.count))
                tensors.append(t)
            }
        case .graphs(let x):
            w.u8(AttributeKind.graphs.rawValue)
            w.u32(UInt32(x.count))
            for g in x { encode(g, into: &w, tensors: &tensors) }
        case .doubles(let x): w.u8(AttributeKind.doubles.rawValue); w.u32(UInt32(x.count)); for d in x { w.f64(d) }
        case .type(let t): w.u8(AttributeKind.type.rawValue); encode(t, into: &w)
        }
    }

    // MARK: decoding

    struct Failure: Error {
        var offset: Int
        var message: String
        var isLimit = false
    }

    /// Nodes decoded so far, against the reader's limit.
    final class NodeBudget {
        let limit: Int
        var used = 0
        init(limit: Int) { self.limit = limit }
    }

    /// Decodes the section; `tensor(i)` resolves directory index i (nil when out of range).
    static func decode(_ bytes: UnsafeRawBufferPointer, maxNodes: Int = .max, tensor: (Int) -> IRTensor?) throws(Failure) -> IRModel {
        var r = ByteReader(bytes)
        let budget = NodeBudget(limit: maxNodes)
        do {
            let n = try r.count("opset count", minimumItemSize: 12)
            var opsets: [IROpset] = []
            for _ in 0..<n { opsets.append(IROpset(domain: try r.string("opset domain"), version: try r.i64("opset version"))) }
            let g = try decodeGraph(&r, depth: 1, budget: budget, tensor: tensor)
            guard r.isAtEnd else { throw Failure(offset: r.position, message: "\(r.remaining) bytes after the graph") }
            return IRModel(graph: g, opsets: opsets)
        } catch let e as ByteReader.Failure {
            throw Failure(offset: e.offset, message: e.message)
        } catch let e as Failure {
            throw e
        } catch {
            throw Failure(offset: r.position, message: "\(error)")
        }
    }

    private static func decodeGraph(_ r: inout ByteReader, depth: Int, budget: NodeBudget, tensor: (Int) -> IRTensor?) throws -> IRGraph {
        guard depth <= MBMLayout.maxGraphDepth else {
            throw Failure(offset: r.position, message: "subgraphs nested deeper than \(MBMLayout.maxGraphDepth) levels (MBMLayout.maxGraphDepth)", isLimit: true)
        }
        var g = IRGraph(name: try r.string("graph name"))
        for which in ["input", "output"] {
            let n = try r.count("\(which) count", minimumItemSize: 9)
            var list: [IRValueInfo] = []
            for _ in 0..<n { list.append(try decodeValueInfo(&r)) }
            if which == "input" { g.inputs = list } else { g.outputs = list }
        }
        let nc = try r.count("constant count", minimumItemSize: 4)
        for _ in 0..<nc { g.constants.append(try tensorRef(&r, tensor)) }
        let countAt = r.position
        let nn = try r.count("node count", minimumItemSize: 24)
        budget.used += nn
        guard budget.used <= budget.limit else {
            throw Failure(offset: countAt, message: "more than \(budget.limit) nodes in the graph and its subgraphs (MBMFile.Options.maxNodes)", isLimit: true)
        }
        for _ in 0..<nn {
            let name = try r.string("node name")
            let op = try r.string("op type")
            let domain = try r.string("domain")
            var ins: [String] = [], outs: [String] = []
            let ni = try r.count("input count", minimumItemSize: 4)
            for _ in 0..<ni { ins.append(try r.string("node input")) }
            let no = try r.count("output count", minimumItemSize: 4)
            for _ in 0..<no { outs.append(try r.string("node output")) }
            let na = try r.count("attribute count", minimumItemSize: 5)
            var attributes: [IRAttribute] = []
            for _ in 0..<na {
                let an = try r.string("attribute name")
                attributes.append(IRAttribute(name: an, value: try decodeAttribute(&r, depth: depth, budget: budget, tensor: tensor)))
            }
            g.nodes.append(IRNode(name: name, opType: op, domain: domain, inputs: ins, outputs: outs, attributes: attributes))
        }
        return g
    }

    private static func tensorRef(_ r: inout ByteReader, _ tensor: (Int) -> IRTensor?) throws -> IRTensor {
        let at = r.position
        let i = Int(try r.u32("tensor index"))
        guard let t = tensor(i) else { throw Failure(offset: at, message: "tensor index \(i) is not in the tensor directory") }
        return t
    }

    private static func decodeValueInfo(_ r: inout ByteReader) throws -> IRValueInfo {
        let name = try r.string("value name")
        let (type, dims) = try decodeTensorType(&r)
        return IRValueInfo(name: name, elementType: type, shape: dims)
    }

    private static func decodeTensorType(_ r: inout ByteReader) throws -> (ElementType?, [IRDim]?) {
        let at = r.position
        let raw = try r.i32("element type")
        let type = raw == 0 ? nil : ElementType(rawValue: raw)
        if raw != 0, type == nil { throw Failure(offset: at, message: "unknown element type \(raw)") }
        let hasShape = try r.u8("shape flag")
        guard hasShape <= 1 else { throw Failure(offset: r.position - 1, message: "shape flag \(hasShape)") }
        guard hasShape == 1 else { return (type, nil) }
        let rank = try r.count("rank", minimumItemSize: 1)
        var dims: [IRDim] = []
        for _ in 0..<rank {
            let kindAt = r.position
            switch try r.u8("dimension kind") {
            case 0: dims.append(.fixed(try r.i64("dimension")))
            case 1: dims.append(.symbolic(try r.string("dimension name")))
            case 2: dims.append(.unknown)
            case let k: throw Failure(offset: kindAt, message: "unknown dimension kind \(k)")
            }
        }
        return (type, dims)
    }

    private static func decodeType(_ r: inout ByteReader, depth: Int) throws -> IRType {
        let at = r.position
        guard depth <= MBMLayout.maxGraphDepth else { throw Failure(offset: at, message: "types nested deeper than \(MBMLayout.maxGraphDepth) levels", isLimit: true) }
        switch try r.u8("type tag") {
        case 0:
            let (e, shape) = try decodeTensorType(&r)
            return .tensor(e, shape: shape)
        case let tag where tag == 1 || tag == 2:
            let flagAt = r.position
            let has = try r.u8("element type flag")
            guard has <= 1 else { throw Failure(offset: flagAt, message: "element type flag \(has)") }
            let inner = has == 1 ? try decodeType(&r, depth: depth + 1) : nil
            return tag == 1 ? .sequence(inner) : .optional(inner)
        case 3: return .other(try r.string("type name"))
        case let k: throw Failure(offset: at, message: "unknown type tag \(k)")
        }
    }

    private static func decodeAttribute(_ r: inout ByteReader, depth: Int, budget: NodeBudget, tensor: (Int) -> IRTensor?) throws -> IRAttributeValue {
        let at = r.position
        let raw = try r.u8("attribute kind")
        guard let kind = AttributeKind(rawValue: raw) else { throw Failure(offset: at, message: "unknown attribute kind \(raw)") }
        switch kind {
        case .float: return .float(try r.f32("float"))
        case .int: return .int(try r.i64("int"))
        case .string: return .string(try r.blob("string"))
        case .tensor: return .tensor(try tensorRef(&r, tensor))
        case .graph: return .graph(try decodeGraph(&r, depth: depth + 1, budget: budget, tensor: tensor))
        case .floats:
            let n = try r.count("float count", minimumItemSize: 4)
            return .floats(try (0..<n).map { _ in try r.f32("float") })
        case .ints:
            let n = try r.count("int count", minimumItemSize: 8)
            return .ints(try (0..<n).map { _ in try r.i64("int") })
        case .strings:
            let n = try r.count("string count", minimumItemSize: 4)
            return .strings(try (0..<n).map { _ in try r.blob("string") })
        case .tensors:
            let n = try r.count("tensor count", minimumItemSize: 4)
            return .tensors(try (0..<n).map { _ in try tensorRef(&r, tensor) })
        case .graphs:
            let n = try r.count("graph count", minimumItemSize: 4)
            return .graphs(try (0..<n).map { _ in try decodeGraph(&r, depth: depth + 1, budget: budget, tensor: tensor) })
        case .doubles:
            let n = try r.count("double count", minimumItemSize: 8)
            return .doubles(try (0..<n).map { _ in try r.f64("double") })
        case .type: return .type(try decodeType(&r, depth: 1))
        }
    }
}
