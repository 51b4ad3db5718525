import Foundation
import MBConvert
import MBFormat
import TestSupport
import Testing

/// `verify`'s whole-model check has no false alarms: the conversion of tiny_cnn with every
/// example policy (binarized activations and calibration too) equals its recomputation in every
/// node, attribute and constant. (TamperingTests shows the check fails when a byte changes.)
@Suite struct VerifyEveryPolicyTests {
    static let root = SharedFixtures.repositoryRoot
    static let tiny = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
    static let input = root.appendingPathComponent("Examples/models/tiny_cnn.input.npy").path

    struct Case: Sendable, CustomStringConvertible {
        var policy: String
        var calibrate: Bool
        var description: String { policy + (calibrate ? " --calibrate" : "") }
    }

    static let cases: [Case] = {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Examples/policies").path)) ?? [])
            .filter { $0.hasSuffix(".txt") }.sorted()
        return names.map { Case(policy: $0, calibrate: false) }
            + ["alexnet-paper.txt", "with-calibration/sensitivity-2.5.txt", "activations"].map { Case(policy: $0, calibrate: true) }
    }()

    @Test func thereAreExamplePolicies() { #expect(Self.cases.count >= 10) }

    @Test(arguments: cases)
    func conversionEqualsItsRecomputation(_ c: Case) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("verify-all-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var policy = Self.root.appendingPathComponent("Examples/policies/\(c.policy)").path
        if c.policy == "activations" {
            policy = dir.appendingPathComponent("activations.txt").path
            try """
                version: 1
                rules:
                  - match: {position: first}
                    keep: float32
                default:
                  mix: {1: 0.7, 2: 0.2, 3: 0.1}
                  activations: {mix: {1: 0.7, 2: 0.2, 3: 0.1}, method: middle-out, granularity: group:64}
                """.write(toFile: policy, atomically: true, encoding: .utf8)
        }
        var options = Conversion.Options()
        options.threads = 2
        if c.calibrate { options.calibrate = Self.input }
        let out = dir.appendingPathComponent("m.mbm").path
        _ = try Conversion.run(model: Self.tiny, policy: policy, output: out, options: options)
        var v = Verify.Options()
        v.inputs = ["input=\(Self.input)"]
        let report = try Verify.run(onnx: Self.tiny, mbm: out, options: v)
        #expect(report.modelDifferences.isEmpty, "\(c): \(report.modelDifferences)")
        #expect(report.passed, "\(c): \(report.failures)")
        #expect(report.nodesChecked >= 19 && report.constantsChecked >= 27, "\(c): \(report.nodesChecked) nodes, \(report.constantsChecked) constants")
        if c.calibrate { #expect(try MBMFile.open(path: out).metadataValue(MetadataKey.calibrationRecord) != nil, "\(c): no recorded corrections") }
    }
}
