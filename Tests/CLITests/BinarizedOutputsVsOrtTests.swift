import Foundation
import TestSupport
import Testing

/// A binarized model's outputs from our runtime equal onnxruntime's on the export-onnx of the
/// same .mbm within 1e-4 relative (Scripts/crosscheck/outputs_vs_ort.py; needs onnxruntime).
@Suite struct BinarizedOutputsVsOrtTests {
    struct Case: Sendable, CustomStringConvertible {
        var model: String
        var io: [(name: String, file: String)]
        var description: String { model }
    }

    static var cases: [Case] {
        var list = [Case(model: "Examples/models/tiny_cnn.onnx", io: [("input", "Examples/models/tiny_cnn.input.npy")])]
        if let m = SharedFixtures.models ?? (Prerequisites.isCI ? URL(fileURLWithPath: "../shared/models (missing)") : nil) {
            list.append(Case(model: m.appendingPathComponent("ch_ppocr_mobile_v2.0_cls_infer.onnx").path,
                             io: [("x", m.appendingPathComponent("ch_ppocr_mobile_v2.0_cls_infer/input_0.npy").path)]))
            list.append(Case(model: m.appendingPathComponent("squeezenet_random.onnx").path,
                             io: [("data_0", m.appendingPathComponent("squeezenet_random/input_0.npy").path)]))
        }
        return list
    }

    @Test(.enabled(if: Prerequisites.pythonRuns("onnxruntime", "numpy"), "needs Python with onnxruntime, numpy"), arguments: Self.cases)
    func matchesOnnxruntimeOnTheExport(_ c: Case) throws {
        let python = try Prerequisites.requirePython("the onnxruntime cross-check", "onnxruntime", "numpy")
        if !c.model.hasPrefix("Examples/") { _ = try Prerequisites.requireFile(c.model) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vs-ort-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let mbm = dir.appendingPathComponent("m.mbm").path, onnx = dir.appendingPathComponent("m.onnx").path
        let out = dir.appendingPathComponent("out").path
        var r = try CLI.run([c.model, "Examples/policies/alexnet-paper.txt", "-o", mbm, "--quiet"])
        #expect(r.status == 0, "\(r)")
        r = try CLI.run(["export-onnx", mbm, onnx])
        #expect(r.status == 0, "\(r)")
        r = try CLI.run(["run", mbm, "--output-dir", out] + c.io.flatMap { ["--input", "\($0.name)=\($0.file)"] })
        #expect(r.status == 0, "\(r)")
        r = try CLI.runSystem("/usr/bin/env", [python, "Scripts/crosscheck/outputs_vs_ort.py", onnx, out] + c.io.map { "\($0.name)=\($0.file)" },
                              in: SharedFixtures.repositoryRoot)
        #expect(r.status == 0, "\(r)")
        print("binarized \(URL(fileURLWithPath: c.model).lastPathComponent) vs onnxruntime on its export: " + r.stdout.split(separator: "\n").joined(separator: "; "))
    }
}
