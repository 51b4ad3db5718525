import Foundation
import MBCore
import MBONNX
import Testing

/// Embedded raw_data is used where it lies in the mapped file (no copy), wherever a TensorProto
/// sits: initializers, Constant attributes, subgraphs, sparse initializers, functions; tensors
/// inside opaque messages (training info) keep their own bytes.
@Suite struct RawDataInPlaceTests {
    /// A model with raw_data in every place a decoded tensor can be, plus a training info
    /// message holding a tensor with raw_data (hand-encoded: MBONNX keeps it opaque).
    static func model() -> ONNXModel {
        var model = ModelBuilder.convModel(weights: (0..<64).map { Float($0) - 31.5 }, dims: [4, 4, 2, 2])
        var g = model.graph!
        g.initializers.append(ModelBuilder.floatTensor("b", dims: [4], values: [1, 2, 3, 4]))
        g.initializers.append(ModelBuilder.floatTensor("typed", dims: [2], values: [5, 6], raw: false))
        var empty = ModelBuilder.floatTensor("empty", dims: [0], values: [])
        empty.rawData = .empty
        g.initializers.append(empty)
        var constant = ONNXNode()
        constant.opType = "Constant"
        constant.outputs = ["c"]
        var value = ONNXAttribute()
        value.name = "value"
        value.type = ONNXAttribute.Kind.tensor.rawValue
        value.t = ModelBuilder.floatTensor("c", dims: [3], values: [7, 8, 9])
        constant.attributes = [value]
        var branch = ONNXGraph()
        branch.name = "then"
        branch.initializers = [ModelBuilder.floatTensor("inner", dims: [2, 2], values: [10, 11, 12, 13])]
        var ifNode = ONNXNode()
        ifNode.opType = "If"
        ifNode.inputs = ["cond"]
        ifNode.outputs = ["z"]
        var thenBranch = ONNXAttribute()
        thenBranch.name = "then_branch"
        thenBranch.type = ONNXAttribute.Kind.graph.rawValue
        thenBranch.g = branch
        ifNode.attributes = [thenBranch]
        g.nodes += [constant, ifNode]
        var sparse = ONNXSparseTensor()
        sparse.values = ModelBuilder.floatTensor("sv", dims: [2], values: [14, 15])
        sparse.dims = [8]
        g.sparseInitializers = [sparse]
        model.graph = g
        // TrainingInfoProto { initialization: GraphProto { initializer: TensorProto { dims: 2,
        // data_type: FLOAT, raw_data: [16, 17] } } }
        let raw = [Float(16), 17].withUnsafeBytes { Array($0) }
        let tensor: [UInt8] = [0x08, 2, 0x10, 1, 0x4A, UInt8(raw.count)] + raw
        let graph: [UInt8] = [0x2A, UInt8(tensor.count)] + tensor
        model.trainingInfo = [ONNXOpaqueMessage(encoded: [0x0A, UInt8(graph.count)] + graph)]
        return model
    }

    static func rawTensors(_ model: ONNXModel) -> [(String, ONNXTensor)] {
        var out: [(String, ONNXTensor)] = []
        model.forEachTensor { t, place in if t.rawData != nil { out.append((place, t)) } }
        return out
    }

    @Test func rawDataPointsIntoTheMappedFileAndMatchesACopyingDecode() throws {
        let dir = ModelBuilder.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.onnx")
        let bytes = try ONNXWriter().encode(Self.model())
        ModelBuilder.write(bytes, to: url)

        let mapped = try ONNXReader().load(path: url.path)
        let copied = try bytes.withUnsafeBytes { try ONNXReader().decode($0, file: "memory") }
        let a = Self.rawTensors(mapped), b = Self.rawTensors(copied)
        #expect(a.map(\.0) == b.map(\.0))
        #expect(Set(a.map { $0.1.name ?? "" }) == ["w", "b", "empty", "c", "inner", "sv"], "\(a.map(\.0))")
        for ((place, t), (_, u)) in zip(a, b) {
            #expect(t.rawData!.bytes == u.rawData!.bytes, "\(place)")
            // Non-empty payloads are slices of the model file's mapping; protobuf-c made the others.
            #expect(t.rawData!.isFileMapping == (t.rawData!.count > 0), "\(place)")
            #expect(!u.rawData!.isFileMapping, "\(place)")
        }
        #expect(mapped.graph!.initializers.first { $0.name == "typed" }!.floatData == [5, 6])
        // Opaque messages travel with their real bytes, and the whole file re-encodes unchanged.
        #expect(mapped.trainingInfo == Self.model().trainingInfo)
        #expect(try ONNXWriter().encode(mapped) == bytes)
    }

    @Test func aDuplicatedRawDataFieldKeepsTheLastAsProtobufDoes() throws {
        // TensorProto { dims: 1, data_type: FLOAT, raw_data: 1.0, raw_data: 2.0 } as initializer.
        let one = Float(1).bitPattern, two = Float(2).bitPattern
        func le(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        let tensor: [UInt8] = [0x08, 1, 0x10, 1, 0x4A, 4] + le(one) + [0x4A, 4] + le(two) + [0x42, 1, 0x77]  // name "w"
        let graph: [UInt8] = [0x2A, UInt8(tensor.count)] + tensor
        let model: [UInt8] = [0x08, 8, 0x3A, UInt8(graph.count)] + graph
        let dir = ModelBuilder.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("dup.onnx")
        ModelBuilder.write(model, to: url)
        let loaded = try ONNXReader(options: { var o = ONNXReader.Options(); o.validateTensors = false; return o }()).load(path: url.path)
        #expect(loaded.graph!.initializers[0].rawData!.bytes == le(two))
    }
}
