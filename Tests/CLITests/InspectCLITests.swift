import Foundation
import TestSupport
import Testing

@Suite struct InspectCLITests {
    static let snapshots = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Snapshots")

    @Test func inspectTextMatchesSnapshot() throws {
        let r = try CLI.run(["inspect", "Examples/models/tiny_cnn.onnx"])
        #expect(r.status == 0, "\(r)")
        let problem = Snapshot.check(r.stdout, against: Self.snapshots.appendingPathComponent("inspect-tiny_cnn.txt"))
        #expect(problem == nil, Comment(rawValue: problem ?? ""))
    }

    @Test func inspectJSONMatchesSnapshot() throws {
        let r = try CLI.run(["inspect", "--json", "Examples/models/tiny_cnn.onnx"])
        #expect(r.status == 0, "\(r)")
        let problem = Snapshot.check(r.stdout, against: Self.snapshots.appendingPathComponent("inspect-tiny_cnn.json"))
        #expect(problem == nil, Comment(rawValue: problem ?? ""))
    }

    @Test func brokenFileIsOneLineAndExitCode1() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbconvert-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("broken.onnx")
        let original = try Data(contentsOf: SharedFixtures.repositoryRoot.appendingPathComponent("Examples/models/tiny_cnn.onnx"))
        try original.prefix(5000).write(to: file)
        let r = try CLI.run(["inspect", file.path])
        #expect(r.status == 1, "\(r)")
        #expect(r.stdout.isEmpty)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(r)")
        #expect(r.stderr.hasPrefix("mbconvert: error: \(file.path): byte "), "\(r)")
        #expect(r.stderr.contains("file truncated?"), "\(r)")
    }

    @Test func missingFileIsOneLine() throws {
        let r = try CLI.run(["inspect", "no/such/model.onnx"])
        #expect(r.status == 1)
        #expect(r.stderr == "mbconvert: error: no/such/model.onnx: no such file\n", "\(r)")
    }

    /// `inspect` agrees with the onnx Python package on every shared model (node counts per op
    /// type, initializers and their bytes, Constant tensors and their bytes).
    @Test(.enabled(if: Prerequisites.pythonRuns("onnx", "numpy", andShared: true), "needs ../shared and Python with onnx, numpy"))
    func inspectAgreesWithTheOnnxPackage() throws {
        let shared = try Prerequisites.requireModels("the onnx cross-check").deletingLastPathComponent()
        let python = try Prerequisites.requirePython("the onnx cross-check", "onnx", "numpy")
        let r = try CLI.runSystem("/usr/bin/env", [
            python, "Scripts/crosscheck/inspect_vs_onnx.py", "--mbconvert", CLI.executable().path,
            shared.appendingPathComponent("models").path, shared.appendingPathComponent("onnx-backend").path,
        ])
        #expect(r.status == 0, "\(r)")
        let summary = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        #expect(summary.hasSuffix(" passed, 0 failed"), "\(summary)")
        print("onnx cross-check: \(summary)")
    }
}
