import Foundation
import MBConvert
import MBCore
import MBFormat
import MBRuntime
import TestSupport
import Testing

/// `--calibrate-batch N`: calibration streamed batch by batch gives the one-batch corrections
/// exactly (the same float32 bits, the same .mbm bytes), from one file or from a folder of files
/// whose boundaries do not line up with the batches.
@Suite struct StreamedCalibrationTests {
    let root = SharedFixtures.repositoryRoot

    func temporaryFolder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("streamed-calib-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Converts with `calibrate` (and `batch`) and returns the stored corrections and the file's bytes.
    func convert(_ model: String, _ policy: String, calibrate: String, batch: Int?, to out: URL)
        throws -> (corrections: [Calibration.LayerCorrection], bytes: Data) {
        var options = Conversion.Options(force: true)
        options.calibrate = calibrate
        options.calibrationBatch = batch
        options.threads = 2
        let report = try Conversion.run(model: model, policy: policy, output: out.path, options: options)
        return (try #require(report.calibration), try Data(contentsOf: out))
    }

    @Test func batchesOf8MatchOneBatchOf64BitForBit() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SeededGenerator(seed: 8)
        let shape = [64, 3, 32, 32]
        let values = (0..<shape.reduce(1, *)).map { _ in Float(rng.nextNormal()) }
        let file = dir.appendingPathComponent("calib.npy").path
        try NPY.write(NPYArray(floats: values, shape: shape), to: file)
        // The same 64 entries as three files of 24, 24 and 16: batches of 10 straddle them.
        let folder = dir.appendingPathComponent("parts")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let per = 3 * 32 * 32
        for (name, rows) in [("a.npy", 0..<24), ("b.npy", 24..<48), ("c.npy", 48..<64)] {
            try NPY.write(NPYArray(floats: Array(values[(rows.lowerBound * per)..<(rows.upperBound * per)]), shape: [rows.count, 3, 32, 32]),
                          to: folder.appendingPathComponent(name).path)
        }
        let model = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
        for policy in ["alexnet-paper.txt", "post-training.txt"] {
            let policyPath = root.appendingPathComponent("Examples/policies/\(policy)").path
            let one = try convert(model, policyPath, calibrate: file, batch: nil, to: dir.appendingPathComponent("one.mbm"))
            let eight = try convert(model, policyPath, calibrate: file, batch: 8, to: dir.appendingPathComponent("eight.mbm"))
            let tens = policy == "post-training.txt"
                ? try convert(model, policyPath, calibrate: folder.path, batch: 10, to: dir.appendingPathComponent("ten.mbm")) : eight
            #expect(!one.corrections.isEmpty)
            for other in [eight, tens] {
                for (a, b) in zip(one.corrections, other.corrections) {
                    #expect(a.node == b.node)
                    if a.node == "fc" {
                        // The Gemm kernel blocks by row count, so the logits of a batch of 8 can differ
                        // from those of 64 in the last float bit: 1e-6 relative on the summaries.
                        #expect(abs(a.meanShift - b.meanShift) <= 1e-6 * max(abs(a.meanShift), 1e-3), "\(policy) fc: \(a.meanShift) vs \(b.meanShift)")
                        #expect(abs(a.meanScaleChange - b.meanScaleChange) <= 1e-6 * max(a.meanScaleChange, 1e-3), "\(policy) fc")
                    } else {
                        #expect(a.meanShift == b.meanShift && a.meanScaleChange == b.meanScaleChange, "\(policy) \(a.node): not bit for bit")
                    }
                }
                #expect(other.corrections.count == one.corrections.count)
            }
            // Without the Gemm's correction (post-training keeps fc float) the files are identical.
            if policy == "post-training.txt" {
                #expect(eight.bytes == one.bytes && tens.bytes == one.bytes, "the streamed .mbm differs from the one-batch one")
            }
        }
    }

    /// The real classifier (BatchNormalization, HardSigmoid, squeeze-excite branches): its first
    /// 24 calibration lines in one batch and in batches of 8 give the same file (24, not all 64,
    /// to keep the debug-build suite fast; the README measures all of them).
    @Test(.enabled(if: Prerequisites.sharedRuns, "needs ../shared")) func paddleOCRClassifierBatchesOf8() throws {
        let models = try Prerequisites.requireModels("streamed calibration of the PaddleOCR classifier")
        let model = try Prerequisites.requireFile(models.appendingPathComponent("ch_ppocr_mobile_v2.0_cls_infer.onnx").path)
        let calib = try Prerequisites.requireFile(models.appendingPathComponent("ch_ppocr_mobile_v2.0_cls_infer/calib_x.npy").path)
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let subset = dir.appendingPathComponent("calib24.npy").path
        try NPY.write(NPY.readRows(path: calib, rows: 0..<24), to: subset)
        let policy = root.appendingPathComponent("Examples/policies/post-training.txt").path
        let one = try convert(model, policy, calibrate: subset, batch: nil, to: dir.appendingPathComponent("one.mbm"))
        let eight = try convert(model, policy, calibrate: subset, batch: 8, to: dir.appendingPathComponent("eight.mbm"))
        #expect(one.corrections.count > 10)
        #expect(eight.bytes == one.bytes, "the streamed .mbm differs from the one-batch one")
    }

    @Test func readsOnlyTheRowsItReturns() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("x.npy").path
        try NPY.write(NPYArray(floats: (0..<30).map(Float.init), shape: [10, 3]), to: path)
        let layout = try NPY.layout(path: path)
        #expect(layout.shape == [10, 3] && layout.rowBytes == 12 && layout.elementType == .float)
        let rows = try NPY.readRows(path: path, rows: 4..<6)
        #expect(rows.shape == [2, 3])
        #expect(rows.floatValues() == [12, 13, 14, 15, 16, 17])
    }

    @Test func fitOutputRefusesBatches() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SeededGenerator(seed: 3)
        let file = dir.appendingPathComponent("calib.npy").path
        try NPY.write(NPYArray(floats: (0..<(16 * 3 * 32 * 32)).map { _ in Float(rng.nextNormal()) }, shape: [16, 3, 32, 32]), to: file)
        let policy = dir.appendingPathComponent("fit.txt").path
        try "version: 1\nrules:\n  - match: {op: Conv}\n    bits: 2\n    fit: output\n".write(toFile: policy, atomically: true, encoding: .utf8)
        #expect {
            _ = try convert(root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path, policy, calibrate: file, batch: 4,
                            to: dir.appendingPathComponent("m.mbm"))
        } throws: { "\($0)".contains("drop --calibrate-batch") }
    }
}
