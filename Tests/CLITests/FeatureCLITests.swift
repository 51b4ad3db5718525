import Foundation
import MBCore
import TestSupport
import Testing

/// Features that had no test: `inspect model.mbm`, `run --weights packed`, `run --profile`,
/// `bench`, the convert `--json` report, `verify --eval` with `--min-top1`.
@Suite struct FeatureCLITests {
    let input = "input=Examples/models/tiny_cnn.input.npy"

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("features-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func inspectOfAnMBMListsItsParts() throws {
        let r = try CLI.run(["inspect", "Examples/models/tiny_cnn.mbm"])
        #expect(r.status == 0, "\(r)")
        for part in ["checksums: verified", "policy.file: alexnet-paper.txt", "source.sha256: d0663e53", "META", "GRPH", "TDIR", "DATA",
                     "tensors: 27", "conv1.weight  [32, 3, 3, 3]    float32  binarized  tensor  1:0.700 2:0.200 3:0.100", "bn1.scale     [32]             float32  raw"] {
            #expect(r.stdout.contains(part), "missing '\(part)':\n\(r.stdout)")
        }
    }

    /// Packed (bit-plane kernels) and expanded (float kernels on the stored values) compute the
    /// same model: outputs within 1e-5 absolute on probabilities (float sums in another order).
    @Test func runWithPackedWeightsMatchesExpanded() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var outputs: [[Float]] = []
        for mode in ["expanded", "packed", "auto"] {
            let out = dir.appendingPathComponent(mode).path
            let r = try CLI.run(["run", "Examples/models/tiny_cnn.mbm", "--input", input, "--weights", mode, "--output-dir", out])
            #expect(r.status == 0, "\(r)")
            outputs.append(try NPY.read(path: out + "/probs.npy").floatValues())
        }
        #expect(outputs[0].count == 20 && outputs[1].count == 20)
        let worst = zip(outputs[0], outputs[1]).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-5, "packed vs expanded: max abs difference \(worst)")
    }

    @Test func runProfilePrintsTimePerOperator() throws {
        let r = try CLI.run(["run", "Examples/models/tiny_cnn.mbm", "--input", input, "--repeat", "2", "--profile"])
        #expect(r.status == 0, "\(r)")
        for op in ["Conv", "BatchNormalization", "Gemm", "binarized weights (auto)", "decided at run time per input shape: 2x"] { #expect(r.stdout.contains(op), "no \(op) in the profile:\n\(r.stdout)") }
    }

    /// With int8 tables, the pointwise Conv's first-run trial also times the int8 dot products
    /// (where the CPU has AVX-512 VNNI) and the profile prints that time.
    @Test func runProfileNamesTheInt8DotProducts() throws {
        let r = try CLI.run(["run", "Examples/models/tiny_cnn.mbm", "--input", input, "--repeat", "2", "--conv-tables", "int8", "--profile"])
        #expect(r.status == 0, "\(r)")
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        if cpu.contains(" avx512_vnni") && cpu.contains(" avx512bw") {
            #expect(r.stdout.contains(", int8 dot products "), "no dot-product trial in the profile:\n\(r.stdout)")
        }
    }

    @Test func benchComparesExpandedAndPacked() throws {
        let r = try CLI.run(["bench", "Examples/models/tiny_cnn.mbm", "--input", input, "--repeats", "2"])
        #expect(r.status == 0, "\(r)")
        for part in ["expanded", "packed", "Conv"] { #expect(r.stdout.contains(part), "no '\(part)' in:\n\(r.stdout)") }
    }

    /// The `--json` report describes the file that was written.
    @Test func convertJSONReportMatchesTheOutput() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("m.mbm").path, json = dir.appendingPathComponent("r.json").path
        let r = try CLI.run(["Examples/models/tiny_cnn.onnx", "Examples/policies/alexnet-paper.txt", "-o", out, "--json", json, "--quiet"])
        #expect(r.status == 0, "\(r)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        let totals = try #require(report["totals"] as? [String: Any])
        let size = try FileManager.default.attributesOfItem(atPath: out)[.size] as? Int
        #expect(totals["mbmBytes"] as? Int == size, "\(totals)")
        #expect(totals["onnxBytes"] as? Int == 417_420, "\(totals)")
        let layers = try #require(report["layers"] as? [[String: Any]])
        #expect(layers.map { $0["name"] as? String } == ["conv1.weight", "conv2.weight", "dw3.weight", "pw4.weight", "conv5.weight", "fc.weight"])
        #expect(layers.allSatisfy { ($0["encoding"] as? String) == "binarized" && (($0["averageBits"] as? Double) ?? 0) > 1.3 })
        // The same file as the bundled example, converted with the same policy.
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == Data(contentsOf: SharedFixtures.repositoryRoot.appendingPathComponent("Examples/models/tiny_cnn.mbm")))
    }

    /// `verify --eval FOLDER` (inputs by name) with the top-1 and cosine bars.
    @Test func verifyEvalFolderWithBars() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: SharedFixtures.repositoryRoot.appendingPathComponent("Examples/models/tiny_cnn.input.npy"),
                                         to: dir.appendingPathComponent("input.npy"))
        let ok = try CLI.run(["verify", "Examples/models/tiny_cnn.onnx", "Examples/models/tiny_cnn.mbm", "--eval", dir.path, "--min-top1", "1", "--min-cosine", "0.98"])
        #expect(ok.status == 0, "\(ok)")
        #expect(ok.stdout.contains("inputs from \(dir.path)"), "\(ok)")
        #expect(ok.stdout.contains("1.0000 (2 rows)  1.0000 (2 rows)"), "\(ok)")
        let strict = try CLI.run(["verify", "Examples/models/tiny_cnn.onnx", "Examples/models/tiny_cnn.mbm", "--eval", dir.path, "--min-cosine", "0.99"])
        #expect(strict.status == 1, "\(strict)")
        #expect(strict.stdout.contains("< --min-cosine 0.990000"), "\(strict)")
    }
}
