import Foundation
import MBConvert
import MBCore
import MBFormat
import MBRuntime
import TestSupport
import Testing

/// --calibrate: corrections in graph order, stored in the file, never worse on the calibration set.
@Suite struct CalibrationTests {
    let root = SharedFixtures.repositoryRoot

    /// Seeded calibration inputs for tiny_cnn: 32 images.
    func calibrationSet(in dir: URL, seed: UInt64) throws -> (path: String, tensor: MBTensor) {
        var rng = SeededGenerator(seed: seed)
        let shape = [32, 3, 32, 32]
        let values = (0..<shape.reduce(1, *)).map { _ in Float(rng.nextNormal()) }
        let path = dir.appendingPathComponent("calib-\(seed).npy").path
        try NPY.write(NPYArray(floats: values, shape: shape), to: path)
        return (path, MBTensor(shape: shape, floats: values))
    }

    func cosine(_ model: MBModel, _ float: MBModel, _ x: MBTensor) throws -> Verify.OutputCheck {
        let a = try float.makeSession().run(["input": x])["probs"]!
        let b = try model.makeSession().run(["input": x])["probs"]!
        return Verify.compare("probs", a, b)
    }

    @Test(arguments: ["alexnet-paper.txt", "homogeneous-2bit.txt", "post-training.txt"])
    func calibrationNeverMakesTheCalibrationSetWorse(policy: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("calib-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
        let policyPath = root.appendingPathComponent("Examples/policies/\(policy)").path
        let (calibPath, calib) = try calibrationSet(in: dir, seed: 11)
        let plain = dir.appendingPathComponent("plain.mbm"), calibrated = dir.appendingPathComponent("cal.mbm")
        _ = try Conversion.run(model: model, policy: policyPath, output: plain.path)
        var options = Conversion.Options()
        options.calibrate = calibPath
        let report = try Conversion.run(model: model, policy: policyPath, output: calibrated.path, options: options)
        let corrections = try #require(report.calibration)
        #expect(corrections.count == report.layers.filter { $0.encoding == "binarized" }.count, "\(corrections.map(\.node))")
        // Every binarized conv of tiny_cnn feeds a BatchNormalization; the Gemm ('fc') has none.
        for c in corrections {
            #expect(c.storedAs.hasPrefix("folded into BatchNormalization") == (c.node != "fc"), "\(c.node): \(c.storedAs)")
        }

        let float = try ModelLoading.load(path: model)
        let before = try cosine(MBModel(contentsOf: plain), float, calib)
        let after = try cosine(MBModel(contentsOf: calibrated), float, calib)
        #expect(after.cosine >= before.cosine - 1e-6, "\(policy): cosine on the calibration set \(before.cosine) -> \(after.cosine)")
        #expect(after.sqnrDB >= before.sqnrDB - 1e-6, "\(policy): SQNR \(before.sqnrDB) -> \(after.sqnrDB)")
        print("calibration \(policy): calibration-set cosine \(before.cosine) -> \(after.cosine), SQNR \(before.sqnrDB) -> \(after.sqnrDB) dB")
    }

    /// After calibration each corrected layer output has the float model's channel statistics
    /// on the calibration set (checked through the Mul/Add or BatchNormalization it was folded into:
    /// here the Gemm, whose output is corrected by inserted nodes).
    @Test func correctedLayerMatchesFloatStatistics() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("calib-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (calibPath, calib) = try calibrationSet(in: dir, seed: 5)
        let out = dir.appendingPathComponent("cal.mbm")
        var options = Conversion.Options()
        options.calibrate = calibPath
        _ = try Conversion.run(model: root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path,
                               policy: root.appendingPathComponent("Examples/policies/alexnet-paper.txt").path, output: out.path, options: options)
        let file = try MBMFile.open(path: out.path)
        #expect(file.model.graph.nodes.contains { $0.name == "fc.calibration.mul" })
        // Expose the Gemm's corrected output (logits) and compare its per-class statistics.
        var g = file.model.graph
        g.outputs.append(IRValueInfo(name: "logits", elementType: .float, shape: nil))
        let binarized = try MBModel(ir: IRModel(graph: g, opsets: file.model.opsets)).makeSession().run(["input": calib])["logits"]!
        let floatIR = try ModelLoading.loadONNXAsIR(path: root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path)
        var fg = floatIR.graph
        fg.outputs.append(IRValueInfo(name: "logits", elementType: .float, shape: nil))
        let float = try MBModel(ir: IRModel(graph: fg, opsets: floatIR.opsets)).makeSession().run(["input": calib])["logits"]!
        func stats(_ t: MBTensor) -> [(Double, Double)] {
            let v = t.floats, rows = t.shape[0], cols = t.shape[1]
            return (0..<cols).map { c in
                let xs = (0..<rows).map { Double(v[$0 * cols + c]) }
                let m = xs.reduce(0, +) / Double(rows)
                return (m, (xs.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(rows)).squareRoot())
            }
        }
        for (c, (f, b)) in zip(stats(float), stats(binarized)).enumerated() {
            #expect(abs(f.0 - b.0) <= 1e-4 * max(1, abs(f.0)) + 1e-5, "class \(c): mean \(f.0) vs \(b.0)")
            #expect(abs(f.1 - b.1) <= 1e-3 * max(f.1, 1e-6), "class \(c): std \(f.1) vs \(b.1)")
        }
    }
}
