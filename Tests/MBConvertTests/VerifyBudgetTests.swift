import Foundation
@testable import MBConvert
import MBCore
import MBFormat
import TestSupport
import Testing

/// `verify` within a memory budget smaller than the model: the stored tensors are decoded one
/// at a time (`MBMFile.openLazily`), and the float and stored models run in segments
/// (`ModelRunner`). The result is the whole run's: every weight and node checked, the same
/// output statistics; a damaged tensor is still found and named.
@Suite struct VerifyBudgetTests {
    static let root = SharedFixtures.repositoryRoot
    static let tiny = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
    static let input = root.appendingPathComponent("Examples/models/tiny_cnn.input.npy").path

    func convert(_ policy: String, calibrate: Bool, into dir: URL) throws -> String {
        var options = Conversion.Options()
        options.threads = 2
        if calibrate { options.calibrate = Self.input }
        let out = dir.appendingPathComponent("m.mbm").path
        _ = try Conversion.run(model: Self.tiny, policy: Self.root.appendingPathComponent("Examples/policies/\(policy)").path, output: out, options: options)
        return out
    }

    func verify(_ mbm: String, maxMemory: Int?) throws -> Verify.Report {
        var v = Verify.Options()
        v.inputs = ["input=\(Self.input)"]
        v.maxMemory = maxMemory
        return try Verify.run(onnx: Self.tiny, mbm: mbm, options: v)
    }

    /// The least budget `verify` takes: each refusal names the size to pass, which is taken
    /// until it runs (the weights' refusal first, then the largest node's).
    func leastBudget(_ mbm: String) throws -> (Int, [String]) {
        var budget = 1 << 10
        var refusals: [String] = []
        for _ in 0..<3 {
            do {
                _ = try verify(mbm, maxMemory: budget)
                return (budget, refusals)
            } catch let e as ConversionError {
                let text = "\(e)"
                refusals.append(text)
                let size = try #require(text.components(separatedBy: "pass --max-memory ").last?.split(separator: " ").first, "\(text)")
                let next = try #require(MemoryBudget.parse(String(size)), "\(text)")
                #expect(next > budget, "\(text)")
                budget = next
            }
        }
        Issue.record("no budget found: \(refusals)")
        return (budget, refusals)
    }

    @Test(arguments: [("alexnet-paper.txt", false), ("alexnet-paper.txt", true), ("post-training.txt", false)])
    func theLeastBudgetChecksEverythingTheWholeRunDoes(policy: String, calibrate: Bool) throws {
        let dir = try scratchDirectory("verify-budget")
        defer { try? FileManager.default.removeItem(at: dir) }
        let mbm = try convert(policy, calibrate: calibrate, into: dir)
        let whole = try verify(mbm, maxMemory: nil)
        #expect(whole.outputSegments == nil)
        let (budget, refusals) = try leastBudget(mbm)
        #expect(!refusals.isEmpty && refusals.allSatisfy { $0.hasPrefix("\(mbm): ") && $0.contains("more than the memory budget of") }, "\(refusals)")
        let tight = try verify(mbm, maxMemory: budget)
        #expect(tight.passed, "\(policy): \(tight.failures)")
        #expect(tight.modelDifferences.isEmpty && tight.nodesChecked == whole.nodesChecked && tight.constantsChecked == whole.constantsChecked)
        #expect(tight.weights.map(\.name) == whole.weights.map(\.name) && tight.weights.allSatisfy(\.identical))
        // The models ran in segments (tiny_cnn's largest conversion needs more than its
        // nodes' weights, so only a few), and the outputs are the whole runs'.
        let segments = try #require(tight.outputSegments, "\(policy): not segmented at \(budget) bytes")
        #expect(tight.renderText().contains("; in \(segments[0]) and \(segments[1]) segments within the memory budget)"))
        expectSameOutputs(tight.outputs, whole.outputs)
    }

    /// The runtime computes each node the same way in a segment as in the whole graph; the
    /// float tolerance is for the packed kernels the whole stored model may choose where a
    /// segment runs expanded weights.
    func expectSameOutputs(_ tight: [Verify.OutputCheck], _ whole: [Verify.OutputCheck]) {
        #expect(tight.count == whole.count && !whole.isEmpty)
        for (a, b) in zip(tight, whole) {
            #expect(a.name == b.name && a.shape == b.shape && a.top1Agreement == b.top1Agreement)
            #expect(abs(a.cosine - b.cosine) < 1e-5 && abs(a.maxAbsError - b.maxAbsError) <= 1e-4 * max(1, b.maxAbsError), "\(a) vs \(b)")
        }
    }

    /// The output check alone at the least budget its nodes take (fc, 720K run): each model in
    /// segments (2 and 3 on tiny_cnn),
    /// the stored tensors of each decoded for it.
    @Test(arguments: ["alexnet-paper.txt", "post-training.txt"])
    func outputsInSegmentsAreTheWholeRunsOutputs(policy: String) throws {
        let dir = try scratchDirectory("verify-budget")
        defer { try? FileManager.default.removeItem(at: dir) }
        let mbm = try convert(policy, calibrate: false, into: dir)
        let file = try MBMFile.openLazily(path: mbm)
        var options = Verify.Options()
        options.inputs = ["input=\(Self.input)"]
        func outputs(_ plan: Verify.OutputPlan) throws -> ([Verify.OutputCheck], [Int]?) {
            let (_, _, a, b, names, segments) = try plan.run(options: options)
            return (names.map { Verify.compare($0, a[$0]!, b[$0]!) }, segments)
        }
        let (whole, none) = try outputs(Verify.OutputPlan(onnx: Self.tiny, mbm: mbm, file: file, budget: 1 << 30, threads: 1))
        #expect(none == nil)
        // A budget below the largest node is refused by name, with the size to pass.
        var budget = 1
        for _ in 0..<2 {
            do {
                _ = try Verify.OutputPlan(onnx: Self.tiny, mbm: mbm, file: file, budget: budget, threads: 1)
                break
            } catch let e as ConversionError {
                let text = "\(e)"
                #expect(text.hasPrefix("\(mbm): node '") && text.contains("for its weights to run on the inputs"), "\(text)")
                budget = try #require(MemoryBudget.parse(String(text.components(separatedBy: "pass --max-memory ").last!.split(separator: " ")[0])))
            }
        }
        let (tight, segments) = try outputs(Verify.OutputPlan(onnx: Self.tiny, mbm: mbm, file: file, budget: budget, threads: 1))
        #expect((segments ?? []).count == 2 && segments!.allSatisfy { $0 >= 2 }, "\(policy): \(String(describing: segments)) at \(budget) bytes")
        expectSameOutputs(tight, whole)
    }

    @Test func aDamagedTensorIsNamedWhenItIsComparedAlone() throws {
        let dir = try scratchDirectory("verify-budget")
        defer { try? FileManager.default.removeItem(at: dir) }
        let mbm = try convert("alexnet-paper.txt", calibrate: false, into: dir)
        let (budget, _) = try leastBudget(mbm)
        // A scale of the first binarized tensor changed in place and every checksum made right
        // again: the file opens, and the lazily decoded tensor differs from its recomputation.
        let lazy = try MBMFile.openLazily(path: mbm)
        let i = try #require(lazy.entries.firstIndex { $0.encoding == .binarized })
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: mbm)))
        let at = lazy.entries[i].payloadOffset
        let scale = bytes.withUnsafeBytes { Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        withUnsafeBytes(of: (scale * 2).bitPattern.littleEndian) { bytes.replaceSubrange(at..<(at + 4), with: $0) }
        TamperingTests.fixCRCs(&bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: mbm))
        let report = try verify(mbm, maxMemory: budget)
        #expect(!report.passed)
        let name = lazy.entries[i].name
        #expect(report.weights.first { $0.name == name }?.identical == false)
        #expect(report.failures.contains { $0.hasPrefix("model: constant '\(name)': level 1 scale of group 0 is ") }, "\(report.failures)")
    }
}
