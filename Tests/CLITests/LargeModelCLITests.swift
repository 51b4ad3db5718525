import Foundation
import TestSupport
import Testing

/// Conversion within a memory budget, on a seeded external-data model (`mbbench large-model`,
/// MBTools' `LargeModel`: small here so the suite stays fast, 6 GB for the measurement): the
/// output is the same at any budget, a budget below the largest tensor's need is refused by
/// name, and broken external data or a full disk leave no output behind.
@Suite(.serialized) struct LargeModelCLITests {
    let dir: URL
    let policy: URL
    /// Writes 6 layers of 128x128 (64 KiB weights each; 4 x 128 x 129 bytes a layer with the
    /// bias): two weights in files of their own, the rest in one file at offsets.
    func writeModel() throws -> String {
        let r = try CLI.run(["large-model", "--size", "\(6 * 4 * 128 * 129)", "--width", "128", "--separate-files", "2",
                             "--seed", "7", "--out", dir.path], product: "mbbench")
        #expect(r.status == 0, "\(r)")
        return dir.appendingPathComponent("large.onnx").path
    }

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbconvert-large-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        policy = SharedFixtures.repositoryRoot.appendingPathComponent("Examples/policies/alexnet-paper.txt")
    }

    func files() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    }

    @Test func aSmallBudgetGivesTheSameFileAndItVerifies() throws {
        let onnx = try writeModel()
        let roomy = dir.appendingPathComponent("roomy.mbm").path, tight = dir.appendingPathComponent("tight.mbm").path
        // 128 x 128 binarized at 70/20/10 needs its 64 KiB source (read in one piece) and 6.8
        // bytes per element (float copy 4, mask 1, signs 0.35, residuals of the 30 % past level
        // 1 1.2, selection 0.25): 173 KiB.
        let a = try CLI.run([onnx, policy.path, "-o", roomy, "--quiet"])
        #expect(a.status == 0, "\(a)")
        let b = try CLI.run([onnx, policy.path, "-o", tight, "--quiet", "--max-memory", "173K", "--threads", "2"])
        #expect(b.status == 0, "\(b)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: roomy)) == Data(contentsOf: URL(fileURLWithPath: tight)))
        let v = try CLI.run(["verify", onnx, tight])
        #expect(v.status == 0, "\(v)")
        // verify decodes one stored tensor at a time (19K at most) beside the tensor it converts
        // again (173K), and refuses a budget below both, saying what to pass.
        let x = try CLI.run(["verify", onnx, tight, "--max-memory", "173K"])
        #expect(x.status != 0 && x.stderr.contains("verify converts tensor 'w0' again in 173K and compares it with a stored tensor decoded (up to 19K): more than the memory budget of 173K; pass --max-memory 192K or more"), "\(x)")
        // At that budget it checks every weight and compares the outputs, each model run in
        // segments of nodes whose weights fit (a binarized 128 x 128 weight counts 160K run).
        let w = try CLI.run(["verify", onnx, tight, "--max-memory", "192K"])
        #expect(w.status == 0 && w.stdout.contains("weights: 6 of 6 identical"), "\(w)")
        #expect(w.stdout.contains("; in 6 and 6 segments within the memory budget)"), "\(w)")
        let y = try CLI.run(["verify", onnx, tight])
        #expect(y.status == 0 && y.stdout.contains("outputs (float model vs converted") && !y.stdout.contains("segments"), "\(y)")
        // The same cosine in segments as whole.
        let cosine = { (s: String) in s.split(separator: "\n").first { $0.hasPrefix("  y ") } }
        #expect(cosine(w.stdout) != nil && cosine(w.stdout) == cosine(y.stdout), "\(w)\n\(y)")
        // Kept float32, nothing is decoded and converting is a copy (64K); a node's weights
        // (source and float copy: 129K) are then what the budget must hold, refused by name.
        let keep = dir.appendingPathComponent("keep.txt")
        try "version: 1\ndefault:\n  keep: float32\n".write(to: keep, atomically: true, encoding: .utf8)
        let kept = dir.appendingPathComponent("kept.mbm").path
        #expect(try CLI.run([onnx, keep.path, "-o", kept, "--quiet"]).status == 0)
        let k = try CLI.run(["verify", onnx, kept, "--max-memory", "100K"])
        #expect(k.status != 0 && k.stderr.contains("kept.mbm: node 'gemm0' of the float model needs 129K for its weights to run on the inputs, more than the memory budget of 100K; pass --max-memory 129K or more"), "\(k)")
        // At 129K the weights fit but the inputs verify feeds (1K) do not fit beside them: the
        // run refuses the node, naming the file and what it runs on; 130K passes.
        let kk = try CLI.run(["verify", onnx, kept, "--max-memory", "129K"])
        #expect(kk.status != 0 && kk.stderr.contains("kept.mbm: node 'gemm0' needs 129K for its weights and 1K for the values held while it runs on the inputs verify compares outputs on, more than the memory budget of 129K; pass --max-memory 130K or more\n"), "\(kk)")
        #expect(try CLI.run(["verify", onnx, kept, "--max-memory", "130K"]).status == 0)
    }

    @Test func aBudgetBelowTheLargestTensorNamesItAndTheSizeNeeded() throws {
        let onnx = try writeModel()
        let out = dir.appendingPathComponent("out.mbm").path
        let r = try CLI.run([onnx, policy.path, "-o", out, "--max-memory", "100K"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("tensor 'w0' needs 173K to binarize its 16384 elements, more than the memory budget of 100K; pass --max-memory 173K or more"), "\(r)")
        #expect(r.stderr.contains("--max-memory"), "\(r)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func anExternalFileShorterThanItsOffsetsIsRefusedByName() throws {
        let onnx = try writeModel()
        let shared = dir.appendingPathComponent("large.shared.bin")
        let size = try FileManager.default.attributesOfItem(atPath: shared.path)[.size] as! Int
        let handle = try FileHandle(forWritingTo: shared)
        try handle.truncate(atOffset: UInt64(size - 4096))
        try handle.close()
        let out = dir.appendingPathComponent("out.mbm").path
        let r = try CLI.run([onnx, policy.path, "-o", out])
        #expect(r.status != 0)
        #expect(r.stderr.contains("large.onnx"), "\(r)")
        #expect(r.stderr.contains("large.shared.bin"), "\(r)")
        #expect(r.stderr.contains("past the end of the file"), "\(r)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func aFullDiskMidWriteLeavesNoOutput() throws {
        // The file-size limit (RLIMIT_FSIZE; bash's ulimit -f counts 1 KiB blocks: 128 KiB) stops
        // the scratch data file mid-way, as a full disk would; SIGXFSZ is ignored so write fails.
        let onnx = try writeModel()
        let out = dir.appendingPathComponent("out.mbm").path
        // Kept float32, the data (6 x 64 KiB) outgrows the limit while tensors are appended.
        let keep = dir.appendingPathComponent("keep.txt")
        try "version: 1\ndefault:\n  keep: float32\n".write(to: keep, atomically: true, encoding: .utf8)
        let before = try files()
        let r = try CLI.runSystem("/bin/bash", ["-c", "trap '' XFSZ; ulimit -f 128; exec \"$0\" \"$@\"",
                                                CLI.executable().path, onnx, keep.path, "-o", out])
        #expect(r.status != 0, "\(r)")
        #expect(r.stderr.contains("out.mbm"), "\(r)")
        #expect(r.stderr.contains("File too large"), "\(r)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r)")
        #expect(try files() == before, "nothing new in the folder")
    }
}
