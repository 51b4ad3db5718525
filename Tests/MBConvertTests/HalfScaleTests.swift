import Foundation
import MBConvert
import MBCore
import MBFormat
import TestSupport
import Testing

/// `scale_type: float16`: scales stored as binary16, counted in the size, read back exactly.
@Suite struct HalfScaleTests {
    let root = SharedFixtures.repositoryRoot

    @Test(arguments: ["tensor", "channel"])
    func halfScalesRoundTripAndCostHalf(scale: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("half-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
        var reports: [ConversionReport] = []
        for type in ["float32", "float16"] {
            let policy = dir.appendingPathComponent("\(type).txt").path
            try "version: 1\ndefault:\n  mix: {1: 0.7, 2: 0.2, 3: 0.1}\n  scale: \(scale)\n  scale_type: \(type)\n".write(toFile: policy, atomically: true, encoding: .utf8)
            let out = dir.appendingPathComponent("\(type).mbm").path
            reports.append(try Conversion.run(model: model, policy: policy, output: out))
            let check = try Verify.run(onnx: model, mbm: out, options: Verify.Options())
            #expect(check.passed, "\(type): \(check.failures)")
            let file = try MBMFile.open(path: out)
            for layer in reports.last!.layers where layer.encoding == "binarized" {
                let t = try #require(file.model.graph.constants.first { $0.name == layer.name })
                guard case .binarized(let p) = t.storage else { Issue.record("\(layer.name) not binarized"); continue }
                #expect(p.halfScales == (type == "float16"), "\(layer.name): halfScales \(p.halfScales)")
                if p.halfScales {
                    #expect(p.levels.allSatisfy { $0.scales.allSatisfy { Float(float16Bits: $0.float16Bits) == $0 } })
                }
            }
        }
        let (full, half) = (reports[0], reports[1])
        for (a, b) in zip(full.layers, half.layers) where a.encoding == "binarized" {
            // Same mask and signs; only the scale bytes shrink (K·G·2 bytes, before 8-byte padding).
            #expect(b.storedBytes < a.storedBytes || a.storedBytes - b.storedBytes == 0, "\(a.name): \(a.storedBytes) -> \(b.storedBytes)")
            #expect(a.storedBytes - b.storedBytes <= 3 * (a.shape[0]) * 2 + 8, "\(a.name): \(a.storedBytes) -> \(b.storedBytes)")
            #expect(abs((b.normalizedError ?? 0) - (a.normalizedError ?? 0)) <= 1e-3, "\(a.name): error \(a.normalizedError ?? 0) -> \(b.normalizedError ?? 0)")
        }
        print("scale_type float16 (\(scale) scales): \(full.totals!.weightBytes) -> \(half.totals!.weightBytes) weight bytes")
    }
}
