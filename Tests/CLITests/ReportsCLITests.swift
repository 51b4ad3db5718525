import Foundation
import MBCore
import TestSupport
import Testing

/// `--calibrate-batch` (progress lines on a pipe, nothing with --quiet) and `--report` from the
/// command line.
@Suite struct ReportsCLITests {
    @Test func streamedCalibrationPrintsProgressLinesAndWritesTheReport() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reports-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SeededGenerator(seed: 4)
        let calib = dir.appendingPathComponent("calib.npy").path
        try NPY.write(NPYArray(floats: (0..<(12 * 3 * 32 * 32)).map { _ in Float(rng.nextNormal()) }, shape: [12, 3, 32, 32]), to: calib)
        let base = ["Examples/models/tiny_cnn.onnx", "Examples/policies/post-training.txt", "--calibrate", calib, "--calibrate-batch", "4", "--force"]
        let r = try CLI.run(base + ["-o", dir.appendingPathComponent("a.mbm").path, "--report", dir.appendingPathComponent("r.html").path])
        #expect(r.status == 0, "\(r)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count >= 2 && lines.allSatisfy { $0.hasPrefix("calibrating: ") } && !r.stderr.contains("\r"), "\(r)")
        #expect(lines.last?.hasPrefix("calibrating: 100 %") == true && r.stderr.contains("ETA"), "\(r)")
        let html = try String(contentsOfFile: dir.appendingPathComponent("r.html").path, encoding: .utf8)
        #expect(html.contains("<h2>Layers</h2>") && html.contains("calibration mean |a−1|"))

        let quiet = try CLI.run(base + ["-o", dir.appendingPathComponent("b.mbm").path, "--quiet"])
        #expect(quiet.status == 0 && quiet.stderr.isEmpty && quiet.stdout.isEmpty, "\(quiet)")

        let alone = try CLI.run(["Examples/models/tiny_cnn.onnx", "Examples/policies/post-training.txt", "--calibrate-batch", "4"])
        #expect(alone.status == 64 && alone.stderr.contains("--calibrate-batch needs --calibrate PATH"), "\(alone)")
    }
}
