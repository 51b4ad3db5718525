import Foundation
@testable import MBConvert
import MBCore
import MBFormat
import MBRuntime
import TestSupport
import Testing

/// Calibration and sensitivity probes within a memory budget smaller than the model: the float
/// and binarized models run in segments (`ModelRunner`), and the file is the one the whole-model
/// run writes, byte for byte.
@Suite struct SegmentedCalibrationTests {
    let root = SharedFixtures.repositoryRoot
    var model: String { root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path }

    /// Seeded calibration inputs for tiny_cnn: 2 entries, so the values a run holds (about
    /// 140 KB per entry at conv1) stay below the weights and a budget that holds one node and
    /// its values is below the whole model's.
    func calibration(_ dir: URL, entries: Int = 2) throws -> String {
        var rng = SeededGenerator(seed: 23)
        let shape = [entries, 3, 32, 32]
        let path = dir.appendingPathComponent(entries == 2 ? "calib.npy" : "calib\(entries).npy").path
        try NPY.write(NPYArray(floats: (0..<shape.reduce(1, *)).map { _ in Float(rng.nextNormal()) }, shape: shape), to: path)
        return path
    }

    /// The smallest budget every node fits for both runners, its weights and the values held
    /// while it runs (each value's bytes from a whole float run on `calibration`'s entries,
    /// which the runner's one-entry probe must predict exactly), and the segments the binarized
    /// graph falls into at that budget.
    func smallestBudget(_ policy: String, calibration: String) throws -> (budget: Int, segments: Int) {
        let prepared = try Conversion.prepare(model: model, policyBytes: Array(try Data(contentsOf: URL(fileURLWithPath: policy))),
                                              policyFile: policy, strict: false)
        let runners = ModelRunner.forConversion(prepared, budget: 1, threads: 1)
        let inputs = try Calibration.loadInputs(calibration, model: try MBModel(ir: IRModel(graph: prepared.graph, opsets: prepared.opsets)))
        var everything = prepared.graph
        everything.outputs = prepared.graph.nodes.flatMap(\.outputs).filter { !$0.isEmpty }.map { IRValueInfo(name: $0, elementType: nil, shape: nil) }
        var sizes = try MBModel(ir: IRModel(graph: everything, opsets: prepared.opsets)).makeSession().run(inputs).mapValues(ModelRunner.bytes)
        for (name, t) in inputs { sizes[name] = ModelRunner.bytes(t) }
        let layerNodes = Conversion.calibratedNodes(prepared)
        let layers = prepared.graph.nodes.filter { layerNodes.contains($0.name) }.compactMap(\.outputs.first)
        let wanted = Set(prepared.graph.outputs.map(\.name) + layers + inputs.keys)
        let reserve = Set(layers).union(prepared.graph.outputs.map(\.name)).reduce(0) { $0 + sizes[$1]! }
        var fits = 0
        for (runner, held, transformed) in [(runners.float, 0, Set<String>()), (runners.binarized, reserve, Set(layers))] {
            guard case .segments(_, let need, _) = runner.mode else { Issue.record("not segmented at a budget of 1 byte"); return (0, 0) }
            // The smallest budget `segments` accepts (it grows with the budget: one node alone must fit).
            var low = 1, high = 1 << 30
            while low < high {
                let mid = (low + high) / 2
                if (try? ModelRunner.segments(of: prepared.graph, budget: mid, need: need, valueBytes: { sizes[$0] ?? 0 }, wanted: wanted, reserve: held,
                                              transformed: transformed)) != nil {
                    high = mid
                } else {
                    low = mid + 1
                }
            }
            fits = max(fits, low)
        }
        guard case .segments(_, let need, _) = runners.binarized.mode else { return (0, 0) }
        let segments = try ModelRunner.segments(of: prepared.graph, budget: fits, need: need, valueBytes: { sizes[$0] ?? 0 },
                                                wanted: wanted, reserve: reserve, transformed: Set(layers)).count
        return (fits, segments)
    }

    /// What running the calibration's models whole on `entries` entries needs: weights and values.
    func wholeNeed(_ policy: String, calibration: String, entries: Int) throws -> Int {
        let prepared = try Conversion.prepare(model: model, policyBytes: Array(try Data(contentsOf: URL(fileURLWithPath: policy))),
                                              policyFile: policy, strict: false)
        let inputs = try Calibration.loadInputs(calibration, model: try MBModel(ir: IRModel(graph: prepared.graph, opsets: prepared.opsets)))
        let layerNodes = Conversion.calibratedNodes(prepared)
        let watched = prepared.graph.nodes.filter { layerNodes.contains($0.name) }.compactMap(\.outputs.first)
        let values = try #require(try ModelRunner.wholeValueBytes(prepared, watched: watched, feeds: inputs, entries: entries, sizes: ValueSizes(), threads: 1))
        return ModelRunner.heldBytes(prepared) + values
    }

    func convert(_ policy: String, calibrate: String, maxMemory: Int?, to out: String, segmented: Bool = false) throws -> (ConversionReport, Data) {
        var options = Conversion.Options(force: true)
        options.segmentedCalibration = segmented
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
        let (budget, segments) = try smallestBudget(policy, calibration: calib)
        #expect(segments > 2, "\(policyName): \(segments) segments at \(budget) bytes")
        // Where the whole run needs less than a segment (the binarizer's working memory is
        // counted while a segment converts its weights), segments are asked for.
        let forced = budget >= (try wholeNeed(policy, calibration: calib, entries: 2))
        print("\(policyName): \(segments) segments at \(budget) bytes")
        let (whole, wholeBytes) = try convert(policy, calibrate: calib, maxMemory: nil, to: dir.appendingPathComponent("whole.mbm").path)
        let (parts, partBytes) = try convert(policy, calibrate: calib, maxMemory: budget, to: dir.appendingPathComponent("parts.mbm").path,
                                             segmented: forced)
        #expect(!(whole.calibration ?? []).isEmpty)
        #expect(parts.calibration?.map(\.node) == whole.calibration?.map(\.node))
        #expect(parts.calibration?.map(\.meanShift) == whole.calibration?.map(\.meanShift))
        #expect(parts.allocation?.map(\.sensitivity) == whole.allocation?.map(\.sensitivity))
        #expect(parts.totals?.calibrationRecordBytes == whole.totals?.calibrationRecordBytes)
        #expect(partBytes == wholeBytes, "\(policyName): the file written in segments at \(budget) bytes differs from the whole run's")
    }

    /// `--calibrate-batch` within a budget smaller than the model: each batch runs in segments,
    /// and the file is the one the whole-model streamed run writes, byte for byte; the scratch
    /// file of converted weights leaves nothing behind.
    @Test func streamedCalibrationRunsInSegmentsWithinTheBudget() throws {
        let dir = try scratchDirectory("segmented")
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = root.appendingPathComponent("Examples/policies/alexnet-paper.txt").path
        let (budget, segments) = try smallestBudget(policy, calibration: try calibration(dir))
        #expect(segments > 2)
        let calib = try calibration(dir, entries: 5)
        #expect(budget < (try wholeNeed(policy, calibration: calib, entries: 2)), "\(budget) bytes hold the models whole")
        var options = Conversion.Options(force: true)
        options.calibrate = calib
        options.calibrationBatch = 2
        options.threads = 2
        let whole = try Conversion.run(model: model, policy: policy, output: dir.appendingPathComponent("whole.mbm").path, options: options)
        // Batches of 2 (and the last of 1), as the budget was found for.
        options.maxMemory = budget
        let parts = try Conversion.run(model: model, policy: policy, output: dir.appendingPathComponent("parts.mbm").path, options: options)
        #expect(parts.warnings == whole.warnings)
        #expect(!(whole.calibration ?? []).isEmpty)
        #expect(parts.calibration?.map(\.meanShift) == whole.calibration?.map(\.meanShift))
        let a = try Data(contentsOf: dir.appendingPathComponent("whole.mbm")), b = try Data(contentsOf: dir.appendingPathComponent("parts.mbm"))
        #expect(a == b, "--calibrate-batch 2 in segments at \(budget) bytes wrote a different file")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(left == ["calib.npy", "calib5.npy", "parts.mbm", "whole.mbm"], "\(left)")
    }

    /// The segmented path converts each planned weight once: the calibration's binarized runs
    /// store every one in the spill, and what is read back is the tensor converted, bit for bit.
    @Test func eachWeightIsConvertedOnceAndReadBackExactly() throws {
        let dir = try scratchDirectory("segmented")
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = root.appendingPathComponent("Examples/policies/alexnet-paper.txt").path
        let prepared = try Conversion.prepare(model: model, policyBytes: Array(try Data(contentsOf: URL(fileURLWithPath: policy))),
                                              policyFile: policy, strict: false)
        let spill = try ConvertedSpill(besideOutput: dir.appendingPathComponent("m.mbm").path)
        let calib = try calibration(dir)
        var (float, binarized) = ModelRunner.forConversion(prepared, budget: try smallestBudget(policy, calibration: calib).budget, threads: 2,
                                                           spill: spill, values: try wholeNeed(policy, calibration: calib, entries: 2))
        #expect(binarized.isSegmented)
        let inputs = try Calibration.loadInputs(calib, model: try MBModel(ir: IRModel(graph: prepared.graph, opsets: prepared.opsets)))
        let graph = ActivationAttributes.apply(prepared.plans, to: prepared.graph)
        _ = try Calibration.calibrate(float: prepared.graph, binarized: graph, layerNodes: Conversion.calibratedNodes(prepared), inputs: inputs,
                                      floatRunner: &float, binarizedRunner: &binarized)
        let binarizedPlans = prepared.plans.filter { if case .binarize = $0.decision.action { return true }; return false }
        #expect(spill.count == binarizedPlans.count && spill.count > 0)
        for plan in binarizedPlans {
            let fresh = try Conversion.convert(plan, constant: prepared.graph.constants[prepared.constantIndex[plan.tensor.name]!], policy: prepared.policy)
            let back = try #require(try spill.outcome(named: plan.tensor.name))
            guard case .binarized(let p) = fresh.tensor.storage, case .binarized(let q) = back.tensor.storage else {
                Issue.record("\(plan.tensor.name) is not binarized"); continue
            }
            #expect(p == q, "\(plan.tensor.name): read back differs")
            #expect(back.row.storedBytes == fresh.row.storedBytes)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["calib.npy"])
    }

    @Test func aNodeWhoseWeightsExceedTheBudgetIsNamed() throws {
        let dir = try scratchDirectory("segmented")
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = root.appendingPathComponent("Examples/policies/alexnet-paper.txt").path
        let (budget, _) = try smallestBudget(policy, calibration: try calibration(dir))
        #expect(throws: ConversionError.self) {
            _ = try convert(policy, calibrate: try calibration(dir), maxMemory: budget / 2, to: dir.appendingPathComponent("m.mbm").path)
        }
        do {
            _ = try convert(policy, calibrate: try calibration(dir), maxMemory: budget / 2, to: dir.appendingPathComponent("m.mbm").path)
        } catch {
            #expect("\(error)".hasPrefix("\(model): node ") && "\(error)".contains("more than the memory budget") && "\(error)".contains("--max-memory"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("m.mbm").path))
        // Nothing else either: the scratch file of converted weights has no name.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["calib.npy"])
    }
}
