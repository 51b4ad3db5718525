import Foundation
import MBConvert
import MBCore
import MBPolicy
import MBRuntime
import TestSupport
import Testing

/// `target: {average_bits: B, allocate: sensitivity}`: bits spread by each layer's measured
/// effect on the model's output; reported, deterministic, on budget, and verifiable.
@Suite struct SensitivityAllocationTests {
    let root = SharedFixtures.repositoryRoot
    var model: String { root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path }
    /// The spread stops within one 0.1-bit step of one layer of the target (Schemas/policy.md).
    static let budgetSlackBits = 0.1

    func workspace() throws -> URL { try scratchDirectory("sens") }

    func write(_ dir: URL, average: Double, allocate: String) throws -> String {
        let path = dir.appendingPathComponent("policy-\(allocate).txt").path
        try """
            version: 1
            target: {average_bits: \(average), max_bits: 3, allocate: \(allocate)}
            rules:
              - match: {position: first}
                keep: float32
            default:
              scale: channel

            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Seeded calibration inputs for tiny_cnn.
    func calibration(_ dir: URL) throws -> String {
        var rng = SeededGenerator(seed: 19)
        let shape = [16, 3, 32, 32]
        let path = dir.appendingPathComponent("calib.npy").path
        try NPY.write(NPYArray(floats: (0..<shape.reduce(1, *)).map { _ in Float(rng.nextNormal()) }, shape: shape), to: path)
        return path
    }

    @Test func allocationIsReportedOnBudgetDeterministicAndVerifies() throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let average = 2.0
        let policy = try write(dir, average: average, allocate: "sensitivity")
        var options = Conversion.Options(force: true)
        options.calibrate = try calibration(dir)
        let out = dir.appendingPathComponent("m.mbm").path
        let report = try Conversion.run(model: model, policy: policy, output: out, options: options)
        let allocation = try #require(report.allocation)
        let binarized = report.layers.filter { $0.encoding == "binarized" }
        #expect(allocation.count == binarized.count, "\(allocation.map(\.tensor)) vs \(binarized.map(\.name))")
        for a in allocation {
            #expect(a.sensitivity.isFinite && a.sensitivity >= 0 && a.probeOutputError >= 0, "\(a)")
            let row = try #require(binarized.first { $0.name == a.tensor })
            // The report's P is the one the layer was binarized with.
            let requested = try #require(row.requestedMix)
            #expect(a.mix == BitDistribution(requested.map { ($0.bits, $0.fraction) })?.policyText, "\(a.tensor): \(a.mix ?? "-") vs \(requested)")
        }
        // On budget: sign bits over every binarized weight.
        let elements = binarized.reduce(0) { $0 + $1.elements }
        let realized = binarized.reduce(0.0) { $0 + $1.averageBits * Double($1.elements) } / Double(elements)
        let largest = Double(binarized.map(\.elements).max() ?? 0) / Double(elements)
        #expect(abs(realized - average) <= Self.budgetSlackBits * largest + 1e-6, "realized \(realized) bits for a target of \(average)")
        #expect(report.renderText().contains("sensitivity allocation:"))
        let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        #expect(json.contains("\"allocation\""))

        // Deterministic: the same inputs give the same allocation.
        let again = try Conversion.run(model: model, policy: policy, output: out + ".2", options: options)
        #expect(again.allocation?.map(\.mix) == allocation.map(\.mix))
        #expect(again.allocation?.map(\.sensitivity) == allocation.map(\.sensitivity))

        // verify recomputes every weight from the P the file recorded.
        let check = try Verify.run(onnx: model, mbm: out, options: Verify.Options())
        let identical = check.weights.allSatisfy { $0.identical }
        #expect(identical, "\(check.failures)")
        print("sensitivity allocation on tiny_cnn at \(average) bits: " + allocation.map { "\($0.tensor) α=\($0.sensitivity) → \($0.averageBits ?? 0)" }.joined(separator: ", "))
    }

    /// The example that needs calibration inputs parses cleanly and states both extras.
    @Test func calibrationExamplePolicyParses() throws {
        let path = root.appendingPathComponent("Examples/policies/with-calibration/sensitivity-2.5.txt").path
        let p = try Policy(text: String(contentsOfFile: path, encoding: .utf8), file: path)
        #expect(p.target?.allocate == .sensitivity && p.target?.averageBits == 2.5)
        #expect(p.defaultSettings?.refit == .alternating)
    }

    /// The best-found policies fit every weight to its output (and so need calibration inputs).
    @Test(arguments: ["best-2.5.txt", "best-3.0.txt"])
    func bestPoliciesParseAndFitOutputs(name: String) throws {
        let path = root.appendingPathComponent("Examples/policies/with-calibration/\(name)").path
        let p = try Policy(text: String(contentsOfFile: path, encoding: .utf8), file: path)
        #expect(p.defaultSettings?.fit == .output)
        #expect(p.rules.allSatisfy { $0.settings.fit == .output }, "\(name): a rule does not fit its output")
    }

    @Test func sensitivityWithoutCalibrationInputsIsAnErrorAtTheTarget() throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = try write(dir, average: 2.0, allocate: "sensitivity")
        #expect {
            _ = try Conversion.run(model: model, policy: policy, output: dir.appendingPathComponent("m.mbm").path)
        } throws: { error in
            "\(error)" == "\(policy):2:1: target allocate: sensitivity measures each layer on calibration inputs; pass --calibrate PATH"
        }
    }
}
