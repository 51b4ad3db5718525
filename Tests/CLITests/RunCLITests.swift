import Foundation
import MBCore
import TestSupport
import Testing

@Suite struct RunCLITests {
    /// The example CNN: outputs written as .npy match the reference onnxruntime output.
    @Test func runWritesOutputsMatchingTheReference() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbconvert-run-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["run", "Examples/models/tiny_cnn.onnx", "--input", "input=Examples/models/tiny_cnn.input.npy",
                             "--output-dir", dir.path, "--repeat", "2", "--threads", "2"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.hasPrefix("probs: float [2, 10]\n  min "), "\(r)")
        #expect(r.stdout.contains("argmax ["), "\(r)")
        #expect(r.stdout.contains("latency over 2 runs (2 threads): median "), "\(r)")
        let got = try NPY.read(path: dir.appendingPathComponent("probs.npy").path)
        let expected = try NPY.read(path: SharedFixtures.repositoryRoot.appendingPathComponent("Examples/models/tiny_cnn.output.npy").path)
        #expect(got.shape == expected.shape)
        let worst = zip(got.floatValues(), expected.floatValues()).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1e-5, "worst |Δ| \(worst)")
    }

    @Test func missingInputIsOneLineAndExitCode1() throws {
        let r = try CLI.run(["run", "Examples/models/tiny_cnn.onnx"])
        #expect(r.status == 1)
        #expect(r.stderr == "mbconvert: error: no value for input 'input' (float [N, 3, 32, 32]); pass --input NAME=file.npy\n", "\(r)")
    }

    @Test func unknownInputNameIsNamed() throws {
        let r = try CLI.run(["run", "Examples/models/tiny_cnn.onnx", "--input", "nope=x.npy"])
        #expect(r.status == 1)
        #expect(r.stderr == "mbconvert: error: --input nope=x.npy: the model has no input 'nope' (inputs: input)\n", "\(r)")
    }
}
