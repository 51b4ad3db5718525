import Foundation
import MBConvert
import MBCore
import TestSupport
import Testing

/// `PolicyCheck` on the bundled example model: decisions, predictions, totals, and the target
/// spread meeting its average.
@Suite struct PolicyCheckTests {
    static let model = SharedFixtures.repositoryRoot.appendingPathComponent("Examples/models/tiny_cnn.onnx").path

    static func check(_ text: String, strict: Bool = false) throws -> PolicyCheckReport {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("policy-\(UUID().uuidString).txt")
        try text.write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }
        return try PolicyCheck.run(policy: url.path, model: model, options: .init(strict: strict))
    }

    @Test func targetIsMetExactlyOverBinarizedWeights() throws {
        for b in [1.1, 1.3, 1.6, 2.2, 2.9] {
            let r = try Self.check("version: 1\ntarget: {average_bits: \(b)}\nrules:\n  - match: {op: Gemm}\n    bits: 2\ndefault: {scale: tensor}\n")
            #expect(r.errorCount == 0, "\(r.diagnostics.map(\.text))")
            let t = try #require(r.totals)
            // Tensor scales and the 0.1-bit ladder on these sizes land on the target within a step
            // of the smallest layer.
            #expect(abs(t.averageBits - b) < 0.01, "target \(b): got \(t.averageBits)")
            #expect(r.rows.first { $0.tensor == "fc.weight" }?.allocation == "bits")
            #expect(r.rows.filter { $0.allocation?.hasPrefix("target") == true }.count == 5)
        }
    }

    @Test func unreachableTargetIsAnErrorAtTheTarget() throws {
        let r = try Self.check("version: 1\ntarget: {average_bits: 1.1}\nrules:\n  - match: {op: Conv}\n    bits: 3\ndefault: {method: middle-out}\n")
        #expect(r.diagnostics.map(\.message) == ["target average_bits 1.1 cannot be met: with every target layer at 1 bit the average is already 2.988"])
        #expect(r.diagnostics.map(\.line) == [2])
    }

    @Test func averageRuleGetsASearchedP() throws {
        let r = try Self.check("version: 1\ndefault: {average: 1.5}\n")
        #expect(r.errorCount == 0)
        for row in r.rows {
            #expect(row.allocation == "average 1.5")
            let p = try #require(row.p)
            #expect(abs(p.reduce(0) { $0 + Double($1.bits) * $1.fraction } - 1.5) < 1e-9, "\(row.tensor)")
        }
    }

    @Test func totalsAddUp() throws {
        let r = try Self.check("version: 1\nrules:\n  - match: {position: first}\n    keep: float16\n  - match: {tensor: 'bn*'}\n    keep: float16\ndefault: {bits: 1}\n")
        let t = try #require(r.totals)
        #expect(t.weights == 6 && t.binarized == 5 && t.kept == 1 + 20 && t.others == 20)
        #expect(t.predictedBytes == r.rows.reduce(0) { $0 + $1.bytes })
        #expect(t.float32Bytes == r.rows.reduce(0) { $0 + $1.elements } * 4)
        #expect(t.averageBits == 1)
        #expect(r.rows.first { $0.tensor == "conv1.weight" }?.bytes == 864 * 2)
    }

    @Test func strictTurnsUnusedRulesIntoErrors() throws {
        let text = "version: 1\nrules:\n  - match: {op: ConvTranspose}\n    bits: 2\ndefault: {bits: 2}\n"
        let lenient = try Self.check(text)
        #expect(lenient.errorCount == 0 && lenient.warningCount == 1)
        let strict = try Self.check(text, strict: true)
        #expect(strict.errorCount == 1)
        #expect(strict.diagnostics.first?.message == "rule 1 matches no tensor in tiny_cnn.onnx")
    }

    /// Structured masks are predicted at H(P) per group, as mask coding 2 stores them: conv2
    /// [64, 32, 3, 3] has 64 · 9 · 2 groups at group:16 and 64 at channel, 1 bit each for 2/3.
    @Test func structuredMasksArePredictedPerGroup() throws {
        var maskBits: [String: Double] = [:]
        for g in ["element", "group:16", "channel"] {
            let r = try Self.check("version: 1\ndefault: {mix: {2: 0.5, 3: 0.5}, scale: tensor, granularity: \(g)}\n")
            maskBits[g] = try #require(r.rows.first { $0.tensor == "conv2.weight" }).predicted.maskBits
        }
        #expect(maskBits == ["element": 18432, "group:16": 1152, "channel": 64], "\(maskBits)")
    }
}
