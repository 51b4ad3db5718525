import Foundation
@testable import MBConvert
import MBCore
import MBRuntime
import TestSupport
import Testing

/// Calibration and sensitivity probes within a memory budget smaller than the model: the float
/// and binarized models run in segments (`ModelRunner`), and the file is the one the whole-model
/// run writes, byte for byte.
@Suite struct SegmentedCalibrationTests {
    let root = SharedFixtures.repositoryRoot
    var model: String { root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path }

    /// Seeded calibration inputs for tiny_cnn.
    func calibration(_ dir: URL) throws -> String {
        var rng = SeededGenerator(seed: 23)
        let shape = [8, 3, 32, 32]
        let path = dir.appendingPathComponent("calib.npy").path
        try NPY.write(NPYArray(floats: (0..<shape.reduce(1, *)).map { _ in Float(rng.nextNormal()) }, shape: shape), to: path)
        return path
    }

    /// The smallest budget every node's weights fit for both runners, and the segments the
    /// binarized graph falls into at that budget.
    func smallestBudget(_ policy: String) throws -> (budget: Int, segments: Int) {
        let prepared = try Conversion.prepare(model: model, policyBytes: Array(try Data(contentsOf: URL(fileURLWithPath: policy))),
                                              policyFile: policy, strict: false)
        let runners = ModelRunner.forConversion(prepared, budget: 1, threads: 1)
        var budget = 0
        var binarizedNeed: ((IRTensor) -> Int)?
        for runner in [runners.float, runners.binarized] {
            guard case .segments(_, let need, _) = runner.mode else { Issue.record("not segmented at a budget of 1 byte"); return (0, 0) }
            let index = Dictionary(prepared.graph.constants.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            for node in prepared.graph.nodes {
                budget = max(budget, Set(ModelRunner.reads(of: node)).compactMap { index[$0] }.reduce(0) { $0 + need($1) })
            }
            binarizedNeed = need
        }
        let segments = try ModelRunner.segments(of: prepared.graph, budget: budget, need: binarizedNeed!).count
        return (budget, segments)
    }

    func convert(_ policy: String, calibrate: String, maxMemory: Int?, to out: String) throws -> (ConversionReport, Data) {
        var options = Conversion.Options(force: true)
        options.calibrate = calibrate
        options.maxMemory = maxMemory
        options.threads = 2
        let report = try Conversion.run(model: model, policy: policy, output: out, options: options)
        return (report, try Data(contentsOf: URL(fileURLWithPath: out)))
    }

    @Test(arguments: ["alexnet-paper.txt", "with-calibration/sensitivity-2.5.txt"])
    func segmentedRunsWriteTheWholeRunsFile(policyName: String) throws {
        let dir = try scratchDirectory("segmented")
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = root.appendingPathComponent("Examples/policies/\(policyName)").path
        let calib = try calibration(dir)
        let (budget, segments) = try smallestBudget(policy)
        #expect(segments > 2, "\(policyName): \(segments) segments at \(budget) bytes")
        print("\(policyName): \(segments) segments at \(budget) bytes")
        let (whole, wholeBytes) = try convert(policy, calibrate: calib, maxMemory: nil, to: dir.appendingPathComponent("whole.mbm").path)
        let (parts, partBytes) = try convert(policy, calibrate: calib, maxMemory: budget, to: dir.appendingPathComponent("parts.mbm").path)
        #expect(!(whole.calibration ?? []).isEmpty)
        #expect(parts.calibration?.map(\.node) == whole.calibration?.map(\.node))
        #expect(parts.calibration?.map(\.meanShift) == whole.calibration?.map(\.meanShift))
        #expect(parts.allocation?.map(\.sensitivity) == whole.allocation?.map(\.sensitivity))
        #expect(parts.totals?.calibrationRecordBytes == whole.totals?.calibrationRecordBytes)
        #expect(partBytes == wholeBytes, "\(policyName): the file written in segments at \(budget) bytes differs from the whole run's")
    }

    /// `--calibrate-batch` still runs the models whole: over the budget it says so in the report.
    @Test func streamedCalibrationOverAnExplicitBudgetIsRefused() throws {
        let dir = try scratchDirectory("segmented")
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = root.appendingPathComponent("Examples/policies/alexnet-paper.txt").path
        let prepared = try Conversion.prepare(model: model, policyBytes: Array(try Data(contentsOf: URL(fileURLWithPath: policy))),
                                              policyFile: policy, strict: false)
        var options = Conversion.Options(force: true)
        options.calibrate = try calibration(dir)
        options.calibrationBatch = 4
        options.maxMemory = ModelRunner.heldBytes(prepared) / 2
        let output = dir.appendingPathComponent("m.mbm")
        do {
            _ = try Conversion.run(model: model, policy: policy, output: output.path, options: options)
            Issue.record("--calibrate-batch over --max-memory \(options.maxMemory!) was not refused")
        } catch let error as ConversionError {
            #expect(error.description.hasPrefix("\(model): --calibrate-batch holds every binarized layer") && error.description.contains("--max-memory"),
                    "\(error.description)")
        }
        #expect(!FileManager.default.fileExists(atPath: output.path), "a refused conversion left \(output.path)")
        options.maxMemory = nil
        let roomy = try Conversion.run(model: model, policy: policy, output: output.path, options: options)
        #expect(!roomy.warnings.contains { $0.hasPrefix("--calibrate-batch") })
    }

    @Test func aNodeWhoseWeightsExceedTheBudgetIsNamed() throws {
        let dir = try scratchDirectory("segmented")
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = root.appendingPathComponent("Examples/policies/alexnet-paper.txt").path
        let (budget, _) = try smallestBudget(policy)
        #expect(throws: ConversionError.self) {
            _ = try convert(policy, calibrate: try calibration(dir), maxMemory: budget / 2, to: dir.appendingPathComponent("m.mbm").path)
        }
        do {
            _ = try convert(policy, calibrate: try calibration(dir), maxMemory: budget / 2, to: dir.appendingPathComponent("m.mbm").path)
        } catch {
            #expect("\(error)".hasPrefix("\(model): node ") && "\(error)".contains("more than the memory budget") && "\(error)".contains("--max-memory"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("m.mbm").path))
    }
}
