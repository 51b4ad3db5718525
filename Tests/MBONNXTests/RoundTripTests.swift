import Foundation
import MBONNX
import TestSupport
import Testing

/// Import then export must reproduce real ONNX files byte for byte.
@Suite struct RoundTripTests {
    static var sharedModelFiles: [String] {
        guard let models = SharedFixtures.models, let backend = SharedFixtures.onnxBackend else { return [] }
        var files: [String] = []
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: models.path)) ?? [] where name.hasSuffix(".onnx") {
            files.append(models.appendingPathComponent(name).path)
        }
        if let e = fm.enumerator(atPath: backend.path) {
            for case let rel as String in e where rel.hasSuffix("model.onnx") {
                files.append(backend.appendingPathComponent(rel).path)
            }
        }
        return files.sorted()
    }

    @Test(.enabled(if: Prerequisites.sharedRuns, "needs ../shared")) func everySharedModelRoundTripsByteForByte() throws {
        _ = try Prerequisites.requireModels("round trip of shared ONNX models")
        _ = try Prerequisites.requireBackend("round trip of shared ONNX models")
        let files = Self.sharedModelFiles
        #expect(!files.isEmpty, "no ONNX files in ../shared")
        var failures: [String] = []
        for file in files {
            let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
            do {
                let model = try ONNXReader().load(path: file)
                let again = try ONNXWriter().encode(model)
                if again != original {
                    let firstDiff = zip(again, original).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(again.count, original.count)
                    failures.append("\(file): \(again.count) bytes written vs \(original.count) read, first difference at byte \(firstDiff)")
                }
            } catch {
                failures.append("\(error)")
            }
        }
        #expect(failures.isEmpty, Comment(rawValue: "\(failures.count) of \(files.count) files:\n" + failures.joined(separator: "\n")))
        #expect(files.count > 100)
    }
}
