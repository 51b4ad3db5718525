import Foundation
import MBCore
import MBONNX
import MBTools

/// Importing a large single-tensor model, embedded and as external data, against Python's
/// `onnx.load` on the same files in the same run. Each measurement runs in a fresh child process
/// so that its peak resident memory is its own.
enum ImportBenchmark {
    struct Measurement: Codable, Sendable {
        var seconds: Double
        var peakRSSBytes: Int
        init(seconds: Double, peakRSSBytes: Int) {
            self.seconds = seconds
            self.peakRSSBytes = peakRSSBytes
        }
    }

    /// Writes `<dir>/embedded.onnx` (one float tensor of `floats` elements in raw_data) and
    /// `<dir>/external.onnx` + `external.bin` (the same tensor as external data).
    static func makeModels(in dir: String, floats: Int) throws -> (embedded: String, external: String) {
        var values = [Float](repeating: 0, count: floats)
        var rng = SeededGenerator(seed: 400)
        values.withUnsafeMutableBufferPointer { buf in
            for i in buf.indices { buf[i] = Float(bitPattern: 0x3F80_0000 | UInt32(truncatingIfNeeded: rng.next() >> 41)) - 1.5 }
        }
        let bytes = values.withUnsafeBytes { ByteSlice(storage: ByteStorage(copying: $0)) }
        values = []

        func model(_ tensor: ONNXTensor) -> ONNXModel {
            var m = ONNXModel()
            m.irVersion = 8
            m.opsetImports = [ONNXOperatorSetID(domain: "", version: 13)]
            m.producerName = "mbbench"
            var g = ONNXGraph()
            g.name = "big"
            var n = ONNXNode()
            n.opType = "MatMul"
            n.name = "matmul"
            n.inputs = ["x", "w"]
            n.outputs = ["y"]
            g.nodes = [n]
            g.initializers = [tensor]
            var x = ONNXValueInfo()
            x.name = "x"
            x.type = ONNXTypeProto(value: .tensor(elemType: 1, shape: ONNXShape(dims: [.init(value: .fixed(1)), .init(value: .fixed(Int64(floats / 1000)))])))
            var y = ONNXValueInfo()
            y.name = "y"
            y.type = ONNXTypeProto(value: .tensor(elemType: 1, shape: nil))
            g.inputs = [x]
            g.outputs = [y]
            m.graph = g
            return m
        }
        var t = ONNXTensor()
        t.name = "w"
        t.dims = [Int64(floats / 1000), 1000]
        t.dataType = ElementType.float.rawValue
        t.rawData = bytes
        let embedded = dir + "/embedded.onnx"
        try ONNXWriter().write(model(t), to: embedded)

        let dataPath = dir + "/external.bin"
        _ = FileManager.default.createFile(atPath: dataPath, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dataPath))
        try bytes.withBytes { try handle.write(contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: $0.baseAddress!), count: $0.count, deallocator: .none)) }
        try handle.close()
        t.rawData = nil
        t.dataLocation = 1
        t.externalData = [ONNXStringPair(key: "location", value: "external.bin"), ONNXStringPair(key: "offset", value: "0"),
                          ONNXStringPair(key: "length", value: String(bytes.count))]
        let external = dir + "/external.onnx"
        try ONNXWriter().write(model(t), to: external)
        return (embedded, external)
    }

    /// One import in this process: time of `ONNXReader.load` and the process's peak RSS after it.
    static func measureOnce(path: String) throws -> Measurement {
        let start = DispatchTime.now().uptimeNanoseconds
        let model = try ONNXReader().load(path: path)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        withExtendedLifetime(model) {}
        return Measurement(seconds: seconds, peakRSSBytes: ProcessMemory.peakBytes())
    }

    /// Runs `executable arguments` and decodes the Measurement JSON it prints last.
    static func child(_ executable: String, _ arguments: [String]) throws -> Measurement {
        try ChildProcess.lastLineJSON(Measurement.self, executable, arguments)
    }
}
