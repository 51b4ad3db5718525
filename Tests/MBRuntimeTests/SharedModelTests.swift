import Foundation
import MBConvert
import MBCore
import MBRuntime
import TestSupport
import XCTest

/// Every model in ../shared/models with reference data (io.json, input_N.npy, output_N.npy
/// computed by onnxruntime) runs from its .onnx and matches within 1e-4 relative.
final class SharedModelTests: XCTestCase {
    struct IOFile: Decodable {
        struct Entry: Decodable { var name: String; var file: String; var shape: [Int]; var dtype: String }
        var inputs: [Entry]
        var outputs: [Entry]
    }

    func testModelsWithReferenceOutputsMatchOnnxruntime() throws {
        let models = try Prerequisites.xcModels("shared model outputs")
        try checkModels(in: models, threads: [1, 2])
    }

    /// The trained models of ../shared/models/real, optimized at load (BN folded, activations
    /// and residual adds fused), from .onnx and from a float .mbm, within 1e-4 of each output's
    /// scale (max |ref|, at least 0.01).
    func testRealModelsMatchOnnxruntimeAfterOptimization() throws {
        let models = try Prerequisites.xcModels("real model outputs")
        let real = models.appendingPathComponent("real")
        do { _ = try Prerequisites.requireFile(real.path) } catch let m as Prerequisites.Missing { throw Prerequisites.skipOrFail(m) }
        try checkModels(in: real, threads: [2])
    }

    func checkModels(in models: URL, threads threadCounts: [Int]) throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: models.path).sorted()
            .filter { FileManager.default.fileExists(atPath: models.appendingPathComponent("\($0)/io.json").path) }
        XCTAssertFalse(folders.isEmpty)
        for name in folders {
            let dir = models.appendingPathComponent(name)
            let io = try JSONDecoder().decode(IOFile.self, from: Data(contentsOf: dir.appendingPathComponent("io.json")))
            let onnxPath = models.appendingPathComponent("\(name).onnx").path
            let ir = try ModelLoading.loadONNXAsIR(path: onnxPath)
            // The same model through an unbinarized .mbm (every weight kept float32).
            let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("shared-mbm-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: tmp) }
            let policy = tmp.appendingPathComponent("float.txt")
            try "version: 1\ndefault:\n  keep: float32\n".write(to: policy, atomically: true, encoding: .utf8)
            let mbm = tmp.appendingPathComponent("\(name).mbm")
            _ = try Conversion.run(model: onnxPath, policy: policy.path, output: mbm.path)
            var feeds: [String: MBTensor] = [:]
            for e in io.inputs { feeds[e.name] = try MBTensor(npy: NPY.read(path: dir.appendingPathComponent(e.file).path)) }
            for (label, model) in [("onnx", try MBModel(ir: ir)), ("float .mbm", try MBModel(contentsOf: mbm))] {
            for threads in threadCounts {
                let outputs = try model.makeSession(.init(threads: threads)).run(feeds)
                for e in io.outputs {
                    let expected = try MBTensor(npy: NPY.read(path: dir.appendingPathComponent(e.file).path))
                    guard let got = outputs[e.name] else { XCTFail("\(name): no output '\(e.name)'"); continue }
                    let d = compare(got, expected)
                    let scaled = d.maxAbs / max(d.refScale, 0.01)
                    print("shared model \(name) (\(label), optimizer \(model.optimizerReport.values.reduce(0, +)) rewrites) output '\(e.name)' \(got.shape) threads=\(threads): worst |Δ| \(d.maxAbs), of scale \(scaled)")
                    XCTAssertNil(d.shapeMismatch, "\(name) '\(e.name)': \(d)")
                    XCTAssertLessThanOrEqual(scaled, Tolerance.sharedModelRelative, "\(name) (\(label)) '\(e.name)' threads=\(threads): \(d)")
                }
            }
            }
        }
    }

    /// The "light" model-zoo graphs (weights from ConstantOfShape, folded at load) run and give
    /// finite outputs of the declared shape.
    func testLightModelZooGraphsRun() throws {
        let models = try Prerequisites.xcModels("light model-zoo graphs")
        for name in ["light_squeezenet", "light_bvlc_alexnet", "light_resnet50"] {
            let path = models.appendingPathComponent("\(name).onnx").path
            _ = try Prerequisites.requireFile(path)
            let model = try MBModel(ir: ModelLoading.loadONNXAsIR(path: path))
            XCTAssertGreaterThan(model.foldedNodeCount, 0, name)
            let input = model.inputs[0]
            let shape = input.shape!.map { d -> Int in if case .fixed(let n) = d { return Int(n) }; return 1 }
            var rng = SeededGenerator(seed: 6)
            let x = MBTensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in Float(rng.nextUnitDouble()) })
            let out = try model.makeSession(.init(threads: 2)).run([input.name: x])
            let y = try XCTUnwrap(out[model.outputs[0].name])
            print("light model \(name): output \(y.shape), folded \(model.foldedNodeCount) nodes")
            XCTAssertTrue(y.floats.allSatisfy(\.isFinite), name)
        }
    }
}
