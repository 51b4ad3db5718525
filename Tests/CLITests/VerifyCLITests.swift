import Foundation
import TestSupport
import Testing

@Suite struct VerifyCLITests {
    let input = "input=Examples/models/tiny_cnn.input.npy"

    @Test func bundledConversionVerifies() throws {
        let r = try CLI.run(["verify", "Examples/models/tiny_cnn.onnx", "Examples/models/tiny_cnn.mbm", "--input", input])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("weights: 6 of 6 identical to the binarization recomputed from Examples/models/tiny_cnn.onnx"), "\(r)")
        #expect(r.stdout.contains("1.0000 (2 rows)"), "\(r)")
        #expect(r.stdout.hasSuffix("verify: passed\n"), "\(r)")
    }

    @Test func missedBarsAndForeignSourcesFail() throws {
        let strict = try CLI.run(["verify", "Examples/models/tiny_cnn.onnx", "Examples/models/tiny_cnn.mbm", "--input", input, "--min-cosine", "0.99999"])
        #expect(strict.status == 1, "\(strict)")
        #expect(strict.stdout.contains("output 'probs': cosine 0.98"), "\(strict)")
        #expect(strict.stdout.contains("< --min-cosine 0.999990"), "\(strict)")

        // A different source model: the recorded SHA-256 does not match.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("verify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var bytes = try Data(contentsOf: SharedFixtures.repositoryRoot.appendingPathComponent("Examples/models/tiny_cnn.onnx"))
        bytes.append(contentsOf: [0x3A, 0x00])  // field 7 again, empty: a different file that still parses
        let other = dir.appendingPathComponent("other.onnx")
        try bytes.write(to: other)
        let foreign = try CLI.run(["verify", other.path, "Examples/models/tiny_cnn.mbm", "--input", input])
        #expect(foreign.status == 1, "\(foreign)")
        #expect(foreign.stdout.contains("was converted from a model with SHA-256 d0663e53"), "\(foreign)")
    }

    @Test func randomInputsNeedConcreteShapes() throws {
        let r = try CLI.run(["verify", "Examples/models/tiny_cnn.onnx", "Examples/models/tiny_cnn.mbm", "--random", "3", "--json"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("\"top1Agreement\""), "\(r)")
        #expect(r.stdout.contains("\"rows\" : 3"), "\(r)")
    }
}
