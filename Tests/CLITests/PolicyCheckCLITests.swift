import Foundation
import TestSupport
import Testing

/// `mbconvert policy check`: snapshots of every example policy against the bundled model and,
/// when ../shared exists, against every shared model (each must check without errors); exit
/// codes and one-line diagnostics for broken files.
@Suite struct PolicyCheckCLITests {
    static let snapshots = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Snapshots/policy")
    static let examples = SharedFixtures.repositoryRoot.appendingPathComponent("Examples/policies")

    static var examplePolicies: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: examples.path)) ?? []).filter { $0.hasSuffix(".txt") }.sorted()
    }

    /// stdout, stderr and the exit status in one golden file; the shared folder's location is
    /// replaced by a fixed name so the files do not depend on where the checkout lives.
    static func golden(_ r: CLIResult, replacing prefix: String? = nil) -> String {
        var text = "\(r.stdout)--- stderr\n\(r.stderr)--- exit \(r.status)\n"
        if let prefix { text = text.replacingOccurrences(of: prefix, with: "$SHARED/models") }
        return text
    }

    static func expectSnapshot(_ text: String, _ name: String) {
        let problem = Snapshot.check(text, against: snapshots.appendingPathComponent(name))
        #expect(problem == nil, Comment(rawValue: problem ?? ""))
    }

    @Test func thereAreExamplePolicies() {
        #expect(Self.examplePolicies.count >= 6, "\(Self.examplePolicies)")
    }

    @Test(arguments: examplePolicies)
    func exampleAgainstTinyCNN(_ policy: String) throws {
        let r = try CLI.run(["policy", "check", "Examples/policies/\(policy)", "Examples/models/tiny_cnn.onnx"])
        #expect(r.status == 0, "\(r)")
        Self.expectSnapshot(Self.golden(r), "\(policy.dropLast(4))-tiny_cnn.txt")
    }

    @Test(arguments: examplePolicies)
    func exampleWithoutModel(_ policy: String) throws {
        let r = try CLI.run(["policy", "check", "Examples/policies/\(policy)"])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r)")
        Self.expectSnapshot(Self.golden(r), "\(policy.dropLast(4)).txt")
    }

    @Test(.enabled(if: Prerequisites.sharedRuns, "needs ../shared"), arguments: examplePolicies)
    func exampleAgainstEverySharedModel(_ policy: String) throws {
        let models = try Prerequisites.requireModels("policy check of \(policy) against the shared models")
        let files = try FileManager.default.contentsOfDirectory(atPath: models.path).filter { $0.hasSuffix(".onnx") }.sorted()
        #expect(files.count >= 6)
        for model in files {
            let r = try CLI.run(["policy", "check", "Examples/policies/\(policy)", models.appendingPathComponent(model).path])
            #expect(r.status == 0, "\(policy) against \(model): \(r)")
            #expect(!r.stderr.contains(": error") && !r.stdout.contains(" error"), "\(policy) against \(model): \(r)")
            Self.expectSnapshot(Self.golden(r, replacing: models.path), "\(policy.dropLast(4))-\(model.dropLast(5)).txt")
        }
    }

    @Test func jsonReport() throws {
        let r = try CLI.run(["policy", "check", "--json", "Examples/policies/first-last-float.txt", "Examples/models/tiny_cnn.onnx"])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r)")
        Self.expectSnapshot(r.stdout, "first-last-float-tiny_cnn.json")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect((json?["rows"] as? [Any])?.count == 6)
    }

    @Test func brokenPolicyListsEveryProblemAndExits1() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbconvert-policy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("policy.txt")
        try "version: 1\nrules:\n  - match: {op: Conv, kernal: 1x1}\n    mix: {1: 0.7, 2: 0.2, 3: 1.2}\ndefault:\n  bits: 9\n  method: middleout\n"
            .write(to: file, atomically: true, encoding: .utf8)
        let model = SharedFixtures.repositoryRoot.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
        let r = try CLI.run(["policy", "check", "policy.txt", model], in: dir)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr == """
            policy.txt:3:23: unknown key 'kernal'; did you mean 'kernel'?
            policy.txt:4:30: fraction for 3-bit must be in [0, 1], got 1.2
            policy.txt:6:9: bitwidth must be from 1 to 8, got 9
            policy.txt:7:11: unknown method 'middleout'; did you mean 'middle-out'?

            """, "\(r)")
        #expect(r.stdout == "policy: policy.txt\n\npolicy.txt: 4 errors\n", "\(r)")
    }

    @Test func strictFailsOnARuleThatMatchesNothing() throws {
        let r = try CLI.run(["policy", "check", "--strict", "Examples/policies/post-training.txt", "Examples/models/tiny_cnn.onnx"])
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.hasPrefix("Examples/policies/post-training.txt:24:5: rule 'small' governs nothing in tiny_cnn.onnx"), "\(r)")
    }

    @Test func missingFilesAreOneLine() throws {
        let r = try CLI.run(["policy", "check", "no/such/policy.txt"])
        #expect(r.status == 1)
        #expect(r.stderr == "mbconvert: error: no/such/policy.txt: no such file\n", "\(r)")
        let m = try CLI.run(["policy", "check", "Examples/policies/homogeneous-2bit.txt", "no/such/model.onnx"])
        #expect(m.status == 1)
        #expect(m.stderr == "mbconvert: error: no/such/model.onnx: no such file\n", "\(m)")
    }

    @Test func binaryGarbageIsACleanError() throws {
        let r = try CLI.run(["policy", "check", "Examples/models/tiny_cnn.onnx"])
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr == "Examples/models/tiny_cnn.onnx:1:1: control character U+0008 is not allowed in a policy file (is this a binary file?)\n", "\(r)")
    }

    @Test func helpListsCheck() throws {
        let r = try CLI.run(["policy", "--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("check") && r.stdout.contains("Validate a policy file"), "\(r)")
    }
}
