import Foundation
import MBCore
import MBONNX

/// Small models built in Swift for tests that must not depend on ../shared or Python.
enum ModelBuilder {
    static func floatTensor(_ name: String, dims: [Int64], values: [Float], raw: Bool = true) -> ONNXTensor {
        var t = ONNXTensor()
        t.name = name
        t.dims = dims
        t.dataType = ElementType.float.rawValue
        if raw {
            t.rawData = ByteSlice(copying: values.withUnsafeBytes { Array($0) })
        } else {
            t.floatData = values
        }
        return t
    }

    /// y = Conv(x, w) with w as an initializer; `w` holds `count` elements.
    static func convModel(weights: [Float], dims: [Int64] = [2, 1, 1, 1], raw: Bool = true) -> ONNXModel {
        var model = ONNXModel()
        model.irVersion = 8
        model.opsetImports = [ONNXOperatorSetID(domain: "", version: 13)]
        model.producerName = "mbconvert-tests"
        var g = ONNXGraph()
        g.name = "tiny"
        var node = ONNXNode()
        node.name = "conv"
        node.opType = "Conv"
        node.inputs = ["x", "w"]
        node.outputs = ["y"]
        g.nodes = [node]
        g.initializers = [floatTensor("w", dims: dims, values: weights, raw: raw)]
        var x = ONNXValueInfo()
        x.name = "x"
        x.type = ONNXTypeProto(value: .tensor(elemType: 1, shape: ONNXShape(dims: [.init(value: .symbolic("N")), .init(value: .fixed(1)), .init(value: .fixed(4)), .init(value: .fixed(4))])))
        var y = ONNXValueInfo()
        y.name = "y"
        y.type = ONNXTypeProto(value: .tensor(elemType: 1, shape: nil))
        g.inputs = [x]
        g.outputs = [y]
        model.graph = g
        return model
    }

    static func temporaryDirectory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("mbconvert-tests-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func write(_ bytes: [UInt8], to url: URL) {
        try! Data(bytes).write(to: url)
    }
}
