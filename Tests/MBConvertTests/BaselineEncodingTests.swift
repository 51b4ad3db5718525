import Foundation
import MBConvert
import MBCore
import MBFormat
import TestSupport
import Testing

/// `int:` and `palette:` layers mixed with binarized ones in one conversion: the stored values
/// are what `verify` recomputes, what `export-onnx` writes and what the spec decodes; every
/// payload byte is counted; `--calibrate` corrects them like binarized layers.
@Suite struct BaselineEncodingTests {
    let root = SharedFixtures.repositoryRoot
    static let policy = """
        version: 1
        rules:
          - match: {position: first}
            int: {bits: 4, clip: mse}
          - match: {depthwise: true}
            int: 8
            scale_type: float16
          - match: {position: last}
            palette: {bits: 2, channels: 4}
          - match: {kernel: 1x1}
            palette: 3
            scale_type: float16
        default:
          bits: 2
          scale: channel
        """

    func directory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("baselines-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func mixedConversionVerifiesExportsAndCountsEveryByte() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
        let policy = dir.appendingPathComponent("p.txt").path, mbm = dir.appendingPathComponent("m.mbm").path
        try Self.policy.write(toFile: policy, atomically: true, encoding: .utf8)
        let report = try Conversion.run(model: model, policy: policy, output: mbm)
        let encodings = Dictionary(report.layers.map { ($0.name, $0.encoding) }, uniquingKeysWith: { a, _ in a })
        #expect(encodings == ["conv1.weight": "linear", "dw3.weight": "linear", "fc.weight": "palette", "pw4.weight": "palette",
                              "conv2.weight": "binarized", "conv5.weight": "binarized"])

        // verify recomputes every int/palette tensor exactly.
        let check = try Verify.run(onnx: model, mbm: mbm, options: Verify.Options())
        #expect(check.passed, "\(check.failures)")
        #expect(check.weights.allSatisfy { $0.identical }, "\(check.weights.filter { !$0.identical }.map(\.name))")

        // The spec's decoding equals the exported float32 weights, bit for bit.
        let onnx = dir.appendingPathComponent("m.onnx").path
        try ExportONNX.run(mbm: mbm, output: onnx, force: false)
        let exported = try ModelLoading.loadONNXAsIR(path: onnx).graph.constants
        let reader = SpecReader(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: mbm))))
        let quantized = reader.tensors.filter { $0.encoding == 3 || $0.encoding == 4 }
        #expect(quantized.count == 4)
        for t in quantized {
            let values = try #require(exported.first { $0.name == t.name }?.floatValues())
            #expect(reader.dequantizeCodes(t).map(\.bitPattern) == values.map(\.bitPattern), "\(t.name)")
        }

        // Stored bytes: codes plus tables, exactly as predicted (padding to 8 bytes aside).
        let check2 = try PolicyCheck.run(policy: policy, model: model)
        let file = try MBMFile.open(path: mbm)
        for row in check2.rows where row.action == "quantize" {
            let stored = try #require(file.tensors.first { $0.name == row.tensor })
            #expect(stored.storedBytes >= row.bytes && stored.storedBytes - row.bytes < 16, "\(row.tensor): stored \(stored.storedBytes), predicted \(row.bytes)")
            let layer = try #require(report.layers.first { $0.name == row.tensor })
            #expect(layer.storedBytes == stored.storedBytes, "\(row.tensor)")
        }
        // float16 values where asked.
        for case .quantized(let q) in file.model.graph.constants.map(\.storage) where q.bits == 8 || q.bits == 3 {
            #expect(q.halfValues)
        }
        // The runtime runs it and the output stays close at these widths.
        #expect(check.outputs.allSatisfy { $0.cosine > 0.5 }, "\(check.outputs.map(\.cosine))")
    }

    @Test func calibrationCorrectsQuantizedLayers() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
        let policy = dir.appendingPathComponent("p.txt").path, mbm = dir.appendingPathComponent("m.mbm").path
        try "version: 1\ndefault: {int: 2}\n".write(toFile: policy, atomically: true, encoding: .utf8)
        var options = Conversion.Options()
        options.calibrate = root.appendingPathComponent("Examples/models/tiny_cnn.input.npy").path
        let report = try Conversion.run(model: model, policy: policy, output: mbm, options: options)
        #expect((report.calibration ?? []).filter { $0.channels > 0 }.count == 6, "\(report.calibration?.map(\.node) ?? [])")
        let check = try Verify.run(onnx: model, mbm: mbm, options: Verify.Options())
        #expect(check.passed, "\(check.failures)")
        // The record verify needs is reported with its size: 8 bytes per corrected channel plus headers.
        guard case .bytes(let record)? = try MBMFile.open(path: mbm).metadataValue(MetadataKey.calibrationRecord) else {
            Issue.record("no calibration record"); return
        }
        #expect(report.totals?.calibrationRecordBytes == record.count)
        #expect(report.renderText().contains("calibration record (for verify): \(record.count) bytes"))
    }
}
