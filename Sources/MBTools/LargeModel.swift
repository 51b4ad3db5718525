import Foundation
import MBCore
import MBONNX

/// A seeded model of any size with its weights in ONNX external data, for conversion at scale
/// (models past protobuf's 2 GiB limit keep their weights this way). The graph is a chain of
/// `Gemm` + `Relu` layers of width `width` (x: [1, width]); each layer's weight is
/// width x width float32 and its bias `width` floats. The first `separateFiles` weights get a
/// file each (`location` only); every other tensor goes into one shared file at 4 KiB-aligned
/// offsets (`location`, `offset`, `length`), as onnx's converter writes them. Weights are
/// uniform in +-sqrt(6 / width) (He-uniform), drawn from `SeededGenerator(seed:)` and written in
/// 4 MiB pieces: the generator never holds a whole tensor.
public struct LargeModel: Sendable {
    public var layers: Int
    public var width: Int
    public var separateFiles: Int
    public var seed: UInt64

    public init(layers: Int, width: Int, separateFiles: Int = 2, seed: UInt64 = 21) {
        self.layers = layers
        self.width = width
        self.separateFiles = separateFiles
        self.seed = seed
    }

    /// The layer count that makes about `bytes` of weights at `width`.
    public static func layers(forBytes bytes: Int, width: Int) -> Int {
        max(1, Int((Double(bytes) / Double(4 * width * (width + 1))).rounded()))
    }

    /// Bytes of all weights and biases.
    public var weightBytes: Int { layers * 4 * width * (width + 1) }

    /// Writes `name.onnx` and its data files into `folder`; returns the model's path.
    @discardableResult
    public func write(to folder: String, name: String = "large") throws -> String {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var rng = SeededGenerator(seed: seed)
        let limit = Float((6.0 / Double(width)).squareRoot())
        let shared = "\(name).shared.bin"
        let sharedFile = try DataFile(path: folder + "/" + shared)
        var initializers: [ONNXTensor] = []
        func external(_ tensorName: String, dims: [Int64], location: String, offset: Int?, length: Int) -> ONNXTensor {
            var t = ONNXTensor()
            t.name = tensorName
            t.dims = dims
            t.dataType = ElementType.float.rawValue
            t.dataLocation = 1
            t.externalData = [ONNXStringPair(key: "location", value: location)]
            if let offset {
                t.externalData += [ONNXStringPair(key: "offset", value: "\(offset)"), ONNXStringPair(key: "length", value: "\(length)")]
            }
            return t
        }
        var nodes: [ONNXNode] = []
        var input = "x"
        for l in 0..<layers {
            let weight = "w\(l)", bias = "b\(l)"
            let weightBytes = 4 * width * width
            if l < separateFiles {
                let location = "\(name).\(weight).bin"
                let file = try DataFile(path: folder + "/" + location)
                try file.append(count: width * width, uniform: limit, rng: &rng)
                try file.close()
                initializers.append(external(weight, dims: [Int64(width), Int64(width)], location: location, offset: nil, length: weightBytes))
            } else {
                let offset = try sharedFile.align(4096)
                try sharedFile.append(count: width * width, uniform: limit, rng: &rng)
                initializers.append(external(weight, dims: [Int64(width), Int64(width)], location: shared, offset: offset, length: weightBytes))
            }
            let offset = try sharedFile.align(4096)
            try sharedFile.append(count: width, uniform: 0.01, rng: &rng)
            initializers.append(external(bias, dims: [Int64(width)], location: shared, offset: offset, length: 4 * width))
            var gemm = ONNXNode()
            gemm.name = "gemm\(l)"
            gemm.opType = "Gemm"
            gemm.inputs = [input, weight, bias]
            gemm.outputs = ["g\(l)"]
            var transB = ONNXAttribute()
            transB.name = "transB"
            transB.type = ONNXAttribute.Kind.int.rawValue
            transB.i = 1
            gemm.attributes = [transB]
            var relu = ONNXNode()
            relu.name = "relu\(l)"
            relu.opType = "Relu"
            relu.inputs = ["g\(l)"]
            relu.outputs = l == layers - 1 ? ["y"] : ["h\(l)"]
            nodes += [gemm, relu]
            input = relu.outputs[0]
        }
        try sharedFile.close()
        var graph = ONNXGraph()
        graph.name = name
        graph.nodes = nodes
        graph.initializers = initializers
        func value(_ n: String) -> ONNXValueInfo {
            var v = ONNXValueInfo()
            v.name = n
            v.type = ONNXTypeProto(value: .tensor(elemType: ElementType.float.rawValue,
                                                  shape: ONNXShape(dims: [.init(value: .fixed(1)), .init(value: .fixed(Int64(width)))])))
            return v
        }
        graph.inputs = [value("x")]
        graph.outputs = [value("y")]
        var model = ONNXModel()
        model.irVersion = 8
        model.opsetImports = [ONNXOperatorSetID(domain: "", version: 13)]
        model.producerName = "mbconvert LargeModel"
        model.graph = graph
        let path = folder + "/" + name + ".onnx"
        try ONNXWriter().write(model, to: path)
        return path
    }
}

/// Sequential writes of float32 data through a 4 MiB buffer.
private final class DataFile {
    let path: String
    private let handle: FileHandle
    private(set) var position = 0

    init(path: String) throws {
        self.path = path
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    }

    /// Pads with zeros to a multiple of `alignment`; returns the new position.
    func align(_ alignment: Int) throws -> Int {
        let pad = (alignment - position % alignment) % alignment
        if pad > 0 { try handle.write(contentsOf: Data(count: pad)) }
        position += pad
        return position
    }

    func append(count: Int, uniform limit: Float, rng: inout SeededGenerator) throws {
        let piece = 1 << 20
        var buffer = [Float](repeating: 0, count: min(count, piece))
        var left = count
        while left > 0 {
            let n = min(left, piece)
            for i in stride(from: 0, to: n, by: 2) {
                let r = rng.next()
                // Two floats per draw: the top 24 bits of each half, mapped to [-limit, limit).
                buffer[i] = (Float(UInt32(truncatingIfNeeded: r) >> 8) / 8_388_608 - 1) * limit
                if i + 1 < n { buffer[i + 1] = (Float(UInt32(truncatingIfNeeded: r >> 32) >> 8) / 8_388_608 - 1) * limit }
            }
            try buffer.withUnsafeBytes { try handle.write(contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: $0.baseAddress!), count: 4 * n, deallocator: .none)) }
            position += 4 * n
            left -= n
        }
    }

    func close() throws { try handle.close() }
}
