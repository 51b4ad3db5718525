import MBCore
import MBONNX
import Testing

/// Every resource limit of the importer refuses its case before the allocation it guards, with
/// an error naming the file, the place and the limit (and the option that raises it).
@Suite struct LimitTests {
    func decodeError(_ bytes: [UInt8], options: ONNXReader.Options = .init()) -> ONNXError? {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(ONNXError) -> ONNXModel in try ONNXReader(options: options).decode(raw, file: "m.onnx") }
        }
        if case .failure(let e) = result { return e }
        return nil
    }

    @Test func tensorDeclaringATrillionElementsIsRefused() throws {
        let bytes = try ONNXWriter().encode(ModelBuilder.convModel(weights: [], dims: [1_000_000, 1_000_000]))
        let e = decodeError(bytes)
        #expect(e?.kind == .limitExceeded)
        #expect(e?.description == "m.onnx: graph initializer 'w': shape [1000000, 1000000] declares 1000000000000 elements, more than the limit of 4294967296 (ONNXReader.Options.maxTensorElements)")
    }

    @Test func tensorElementLimitIsAnOption() throws {
        let bytes = try ONNXWriter().encode(ModelBuilder.convModel(weights: [1, 2, 3, 4], dims: [4, 1, 1, 1]))
        var options = ONNXReader.Options()
        options.maxTensorElements = 4
        #expect(decodeError(bytes, options: options) == nil)
        options.maxTensorElements = 3
        #expect(decodeError(bytes, options: options)?.description
            == "m.onnx: graph initializer 'w': shape [4, 1, 1, 1] declares 4 elements, more than the limit of 3 (ONNXReader.Options.maxTensorElements)")
    }

    @Test func shapeWhoseElementCountOverflowsIsRefused() throws {
        let bytes = try ONNXWriter().encode(ModelBuilder.convModel(weights: [], dims: [1 << 32, 1 << 32]))
        let e = decodeError(bytes)
        #expect(e?.kind == .limitExceeded)
        #expect(e?.description == "m.onnx: graph initializer 'w': shape [4294967296, 4294967296] has more elements than a 64-bit count can hold")
    }

    @Test func negativeDimensionIsTensorDataError() throws {
        let bytes = try ONNXWriter().encode(ModelBuilder.convModel(weights: [], dims: [2, -1]))
        #expect(decodeError(bytes)?.description == "m.onnx: graph initializer 'w': shape [2, -1] has a negative dimension -1")
    }

    /// If nodes nested `levels` deep through then_branch.
    func nestedIfModel(levels: Int) throws -> [UInt8] {
        var inner = ONNXGraph()
        inner.name = "leaf"
        for level in 0..<levels {
            var branch = ONNXAttribute()
            branch.name = "then_branch"
            branch.type = ONNXAttribute.Kind.graph.rawValue
            branch.g = inner
            var node = ONNXNode()
            node.name = "if\(level)"
            node.opType = "If"
            node.inputs = ["c"]
            node.outputs = ["y\(level)"]
            node.attributes = [branch]
            inner = ONNXGraph()
            inner.name = "g\(level)"
            inner.nodes = [node]
        }
        var model = ONNXModel()
        model.opsetImports = [ONNXOperatorSetID(domain: "", version: 13)]
        model.graph = inner
        return try ONNXWriter().encode(model)
    }

    @Test func deeplyNestedSubgraphsAreRefused() throws {
        // Each subgraph level nests three messages (node, attribute, graph): 80 levels fit in
        // the default 256, 100 do not.
        #expect(decodeError(try nestedIfModel(levels: 80)) == nil)
        let e = decodeError(try nestedIfModel(levels: 100))
        #expect(e?.kind == .limitExceeded)
        #expect(e?.message == "messages nested deeper than 256 levels (ONNXReader.Options.maxNestingDepth)")
        #expect(e?.place?.hasPrefix("byte ") == true)
        #expect(e?.place?.hasSuffix(".node[0].attribute[0].g.node[0].attribute[0].g)") == true, "\(String(describing: e))")
    }

    // MARK: wire-level limits (raw protobuf, so no Swift-side model of that size is ever built)

    func varint(_ v: UInt64) -> [UInt8] {
        var v = v, out: [UInt8] = []
        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        return out + [UInt8(v)]
    }

    func field(_ number: UInt64, _ payload: [UInt8]) -> [UInt8] {
        varint(number << 3 | 2) + varint(UInt64(payload.count)) + payload
    }

    /// ModelProto { graph (7) { node (1) x n } } with empty nodes: two bytes each.
    func modelWithEmptyNodes(_ n: Int) -> [UInt8] {
        var graph: [UInt8] = []
        graph.reserveCapacity(2 * n)
        for _ in 0..<n { graph += [0x0A, 0x00] }
        return field(7, graph)
    }

    @Test func millionsOfNodesAreRefusedBeforeUnpacking() {
        let e = decodeError(modelWithEmptyNodes(1_000_001))
        #expect(e?.kind == .limitExceeded)
        #expect(e?.description == "m.onnx: byte 2000006 (ModelProto.graph.node[1000000]): more than 1000000 nodes in the model (ONNXReader.Options.maxNodes)")
    }

    @Test func nodeLimitIsAnOption() {
        var options = ONNXReader.Options()
        options.maxNodes = 10
        #expect(decodeError(modelWithEmptyNodes(10), options: options) == nil)
        #expect(decodeError(modelWithEmptyNodes(11), options: options)?.description
            == "m.onnx: byte 24 (ModelProto.graph.node[10]): more than 10 nodes in the model (ONNXReader.Options.maxNodes)")
    }

    /// One node with one attribute: `ints` (field 8) packed with `count` zeros, or `floats`
    /// (field 7) as `count` separate fixed32 entries.
    func modelWithAttribute(ints count: Int) -> [UInt8] {
        let attribute = field(1, Array("pads".utf8)) + field(8, [UInt8](repeating: 0, count: count))
        return field(7, field(1, field(5, attribute)))
    }

    func modelWithAttribute(unpackedFloats count: Int) -> [UInt8] {
        var attribute = field(1, Array("scales".utf8))
        for _ in 0..<count { attribute += varint(7 << 3 | 5) + [0, 0, 0x80, 0x3F] }
        return field(7, field(1, field(5, attribute)))
    }

    @Test func absurdAttributeSizesAreRefused() {
        let e = decodeError(modelWithAttribute(ints: (1 << 24) + 1))
        #expect(e?.kind == .limitExceeded)
        #expect(e?.message == "attribute 'ints' holds more than 16777216 values (ONNXReader.Options.maxAttributeValues)")
        #expect(e?.place == "byte 21 (ModelProto.graph.node[0].attribute[0].ints[0])")
    }

    @Test func attributeValueLimitCountsPackedAndSeparateValues() {
        var options = ONNXReader.Options()
        options.maxAttributeValues = 3
        #expect(decodeError(modelWithAttribute(ints: 3), options: options) == nil)
        #expect(decodeError(modelWithAttribute(ints: 4), options: options)?.message
            == "attribute 'ints' holds more than 3 values (ONNXReader.Options.maxAttributeValues)")
        #expect(decodeError(modelWithAttribute(unpackedFloats: 3), options: options) == nil)
        let e = decodeError(modelWithAttribute(unpackedFloats: 4), options: options)
        #expect(e?.message == "attribute 'floats' holds more than 3 values (ONNXReader.Options.maxAttributeValues)")
        #expect(e?.place?.hasSuffix("(ModelProto.graph.node[0].attribute[0].floats[3])") == true, "\(String(describing: e))")
    }
}
