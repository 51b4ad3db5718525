import Foundation
import MBConvert
import MBCore
import TestSupport
import Testing

/// The weights `export-onnx` writes equal the spec's dequantization of the `.mbm` (decoded by
/// TestSupport's `SpecReader`, which shares no code with `PackedTensor`), bit for bit, on real
/// conversions: tensor scales with rANS masks (alexnet-paper), channel scales and uniform
/// masks (post-training, homogeneous-2bit).
@Suite struct ExportDequantizationTests {
    @Test(arguments: ["alexnet-paper.txt", "post-training.txt", "homogeneous-2bit.txt"])
    func exportedWeightsEqualTheSpecDecoding(policy: String) throws {
        let root = SharedFixtures.repositoryRoot
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("export-deq-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let mbm = dir.appendingPathComponent("m.mbm").path, onnx = dir.appendingPathComponent("m.onnx").path
        _ = try Conversion.run(model: root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path,
                               policy: root.appendingPathComponent("Examples/policies/\(policy)").path, output: mbm)
        try ExportONNX.run(mbm: mbm, output: onnx, force: false)
        let reader = SpecReader(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: mbm))))
        let exported = try ModelLoading.loadONNXAsIR(path: onnx).graph.constants
        let binarized = reader.tensors.filter { $0.encoding == 2 }
        #expect(!binarized.isEmpty)
        for t in binarized {
            let values = try #require(exported.first { $0.name == t.name }?.floatValues(), "\(policy): '\(t.name)' missing from the export")
            let spec = reader.dequantize(t)
            let first = zip(spec, values).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
            #expect(spec.count == values.count && first == nil,
                    "\(policy) '\(t.name)': element \(first?.offset ?? -1): spec \(first?.element.0 ?? .nan), export \(first?.element.1 ?? .nan)")
        }
        print("export vs spec dequantization \(policy): \(binarized.count) binarized tensors equal bit for bit")
    }
}
