import Foundation
@testable import MBConvert
import MBBinarize
import MBCore
import MBFormat
import MBONNX
import MBRuntime
import TestSupport
import Testing

/// The main job end to end: every example policy on the bundled model and on every shared model.
@Suite struct ConversionTests {
    static let policies: [URL] = {
        let dir = SharedFixtures.repositoryRoot.appendingPathComponent("Examples/policies")
        return ((try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? [])
            .filter { $0.pathExtension == "txt" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }()

    /// The bundled model and every shared model with at most 4M weights: the test suite runs in
    /// a debug build, where binarizing light_bvlc_alexnet's 61M folded weights seven times takes
    /// minutes. Scripts/convert-shared.sh converts every shared model (release build) instead.
    static var models: [URL] {
        var list = [SharedFixtures.repositoryRoot.appendingPathComponent("Examples/models/tiny_cnn.onnx")]
        if let shared = SharedFixtures.models {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: shared.path)) ?? []
            for url in names.filter({ $0.hasSuffix(".onnx") }).sorted().map({ shared.appendingPathComponent($0) }) {
                let weights = (try? WeightDiscovery(onnx: ONNXReader().load(path: url.path), file: url.path))?.weights
                    .reduce(0) { $0 + $1.elementCount } ?? 0
                if weights <= 4_000_000 { list.append(url) } else {
                    print("ConversionTests: \(url.lastPathComponent) has \(weights) weights; converted by Scripts/convert-shared.sh, not in the debug suite")
                }
            }
        } else if Prerequisites.isCI {
            list.append(URL(fileURLWithPath: "../shared/models (missing; CI=true requires it)"))
        } else {
            print(SharedFixtures.skipMessage("converting the shared models"))
        }
        return list
    }

    func temporaryDirectory() -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbconvert-conv-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// One test case per model, so the models convert in parallel.
    /// A failure of a library below the pipeline keeps that error as its cause (the message
    /// stays the library's own line).
    @Test func writerFailureKeepsItsCause() throws {
        let root = SharedFixtures.repositoryRoot
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("mbconvert-no-such-dir-\(getpid())/out.mbm").path
        do {
            _ = try Conversion.run(model: root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path,
                                   policy: root.appendingPathComponent("Examples/policies/homogeneous-2bit.txt").path, output: out)
            Issue.record("writing into a missing folder succeeded")
        } catch let failure as ConversionError {
            let cause = try #require(failure.cause as? MBMError, "\(failure)")
            #expect(failure.description == cause.description)
        }
    }

    @Test(arguments: Self.models)
    func everyExamplePolicyConverts(_ model: URL) throws {
        #expect(Self.policies.count >= 6)
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var failures: [String] = []
        do {
            for policy in Self.policies {
                let out = dir.appendingPathComponent("\(model.deletingPathExtension().lastPathComponent)-\(policy.deletingPathExtension().lastPathComponent).mbm")
                do {
                    let report = try Conversion.run(model: model.path, policy: policy.path, output: out.path)
                    let file = try MBMFile.open(path: out.path)
                    // Every layer the report lists is stored as it says.
                    for layer in report.layers {
                        guard let t = file.tensors.first(where: { $0.name == layer.name }) else {
                            failures.append("\(out.lastPathComponent): \(layer.name) missing"); continue
                        }
                        if layer.encoding == "binarized", case .binarized = t.payload {} else if layer.encoding == "binarized" {
                            failures.append("\(out.lastPathComponent): \(layer.name) not binarized")
                        }
                    }
                    _ = try MBModel(contentsOf: out)
                } catch {
                    failures.append("\(model.lastPathComponent) + \(policy.lastPathComponent): \(error)")
                }
            }
        }
        #expect(failures.isEmpty, Comment(rawValue: failures.joined(separator: "\n")))
    }

    /// The binarized model from the .mbm answers like onnxruntime on the same exported weights
    /// would; here: our runtime on the .mbm equals our runtime on export-onnx's output.
    @Test func exportedONNXHoldsExactlyTheStoredValues() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = SharedFixtures.repositoryRoot
        let mbm = dir.appendingPathComponent("t.mbm")
        _ = try Conversion.run(model: root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path,
                               policy: root.appendingPathComponent("Examples/policies/alexnet-paper.txt").path, output: mbm.path)
        let onnx = dir.appendingPathComponent("t.onnx")
        try ExportONNX.run(mbm: mbm.path, output: onnx.path, force: false)
        let input = try MBTensor(npy: NPY.read(path: root.appendingPathComponent("Examples/models/tiny_cnn.input.npy").path))
        // The graph as written: the same stored values give the same bits (expanded weights:
        // auto mode may run a Conv on lookup tables, which round differently).
        let a = try MBModel(contentsOf: mbm, options: .init(weights: .expanded, optimize: false)).makeSession().run(["input": input])["probs"]!.floats
        let b = try ModelLoading.load(path: onnx.path, optimize: false).makeSession().run(["input": input])["probs"]!.floats
        #expect(a == b)
        // Optimized, the float export may fold BatchNormalization into its weights where the
        // binarized .mbm keeps them as stored: equal up to float rounding.
        let c = try MBModel(contentsOf: mbm).makeSession().run(["input": input])["probs"]!.floats
        let d = try ModelLoading.load(path: onnx.path).makeSession().run(["input": input])["probs"]!.floats
        let scale = max(c.map(abs).max() ?? 0, 0.01)
        #expect(zip(c, d).allSatisfy { abs($0 - $1) <= 1e-5 * scale }, "\(c) vs \(d)")
        #expect(zip(a, c).allSatisfy { abs($0 - $1) <= 1e-5 * scale }, "\(a) vs \(c)")
    }

    /// Exact mode: a model whose weights are already binarized converts with zero error, its
    /// levels, signs and masks recovered (export-onnx output fed back in).
    @Test func alreadyBinarizedWeightsConvertExactly() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = SharedFixtures.repositoryRoot
        let policy = root.appendingPathComponent("Examples/policies/alexnet-paper.txt").path
        let first = dir.appendingPathComponent("a.mbm")
        _ = try Conversion.run(model: root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path, policy: policy, output: first.path)
        let exported = dir.appendingPathComponent("a.onnx")
        try ExportONNX.run(mbm: first.path, output: exported.path, force: false)
        let second = dir.appendingPathComponent("b.mbm")
        let report = try Conversion.run(model: exported.path, policy: policy, output: second.path)
        let binarized = report.layers.filter { $0.encoding == "binarized" }
        #expect(binarized.count == 6)
        // Zero error means an infinite SQNR: the JSON report still encodes.
        #expect(try Inspect.json(report).contains("\"sqnrDB\" : \"inf\""))
        for layer in binarized {
            #expect(layer.method == "exact", "\(layer.name): \(layer.method ?? "-")")
            #expect(layer.normalizedError == 0, "\(layer.name): \(layer.normalizedError ?? -1)")
        }
        // The same packed tensors come back.
        let a = try MBMFile.open(path: first.path), b = try MBMFile.open(path: second.path)
        for layer in binarized {
            let ta = a.model.graph.constants.first { $0.name == layer.name }!
            let tb = b.model.graph.constants.first { $0.name == layer.name }!
            if case .binarized(let pa) = ta.storage, case .binarized(let pb) = tb.storage {
                #expect(pa.mask == pb.mask, "\(layer.name)")
                #expect(pa.dequantized() == pb.dequantized(), "\(layer.name)")
            } else {
                Issue.record("\(layer.name) not binarized in both")
            }
        }
    }

    /// Small groups of ordinary floats (a depthwise 3x3 channel: 9 values, fewer than the 14 a
    /// 3-bit code can hold) are not mistaken for binarized ones: only groups that repeat a value
    /// go to the exact search. Already binarized groups always repeat theirs.
    @Test func smallFloatChannelsAreNotTriedAsExact() throws {
        var rng = SeededGenerator(seed: 9)
        let values = (0..<(16 * 9)).map { _ in Float.random(in: -1...1, using: &rng) }
        let depthwise = try FloatTensor(name: "dw", shape: [16, 1, 3, 3], values: values)
        #expect(!Conversion.mayBeExact(depthwise, maxBits: 3, channelAxis: 0), "values \(values.prefix(9))")
        let binarized = try FloatTensor(name: "b", shape: [16, 1, 3, 3], values: values.map { $0 < 0 ? -0.5 : ($0 < 0.5 ? 0.25 : 0.75) })
        #expect(Conversion.mayBeExact(binarized, maxBits: 3, channelAxis: 0))
    }

    /// Conversion is deterministic, and the committed example .mbm (what Examples/RuntimeApp
    /// loads) is what the current converter writes.
    @Test func bundledExampleMBMIsCurrent() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = SharedFixtures.repositoryRoot
        let out = dir.appendingPathComponent("tiny_cnn.mbm")
        _ = try Conversion.run(model: root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path,
                               policy: root.appendingPathComponent("Examples/policies/alexnet-paper.txt").path, output: out.path)
        let fresh = try Data(contentsOf: out)
        let committed = try Data(contentsOf: root.appendingPathComponent("Examples/models/tiny_cnn.mbm"))
        #expect(fresh == committed, "Examples/models/tiny_cnn.mbm is stale: regenerate with mbconvert Examples/models/tiny_cnn.onnx Examples/policies/alexnet-paper.txt -o Examples/models/tiny_cnn.mbm --force")
    }

    /// Weights a policy keeps as float16 come back as float32 in export-onnx (the graph's
    /// types must agree for ONNX tools), with exactly the stored half-precision values.
    @Test func exportWidensWeightsKeptAsFloat16() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = dir.appendingPathComponent("half.txt")
        try "version: 1\nrules:\n  - match: {op: Conv}\n    keep: float16\ndefault:\n  bits: 2\n".write(to: policy, atomically: true, encoding: .utf8)
        let mbm = dir.appendingPathComponent("h.mbm"), onnx = dir.appendingPathComponent("h.onnx")
        _ = try Conversion.run(model: root().appendingPathComponent("Examples/models/tiny_cnn.onnx").path, policy: policy.path, output: mbm.path)
        let stored = try MBMFile.open(path: mbm.path).model.graph.constants.first { $0.name == "conv2.weight" }!
        #expect(stored.elementType == .float16)
        try ExportONNX.run(mbm: mbm.path, output: onnx.path, force: false)
        let exported = try ONNXReader().load(path: onnx.path).graph!.initializers.first { $0.name == "conv2.weight" }!
        #expect(exported.elementType == .float)
        #expect(try exported.floatValues() == stored.floatValues())
    }

    func root() -> URL { SharedFixtures.repositoryRoot }

    @Test func refusesToOverwriteWithoutForceAndNeverTheInput() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = SharedFixtures.repositoryRoot
        let model = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
        let policy = root.appendingPathComponent("Examples/policies/homogeneous-2bit.txt").path
        let out = dir.appendingPathComponent("t.mbm").path
        _ = try Conversion.run(model: model, policy: policy, output: out)
        #expect(throws: ConversionError.self) { try Conversion.run(model: model, policy: policy, output: out) }
        _ = try Conversion.run(model: model, policy: policy, output: out, options: .init(force: true))
        #expect {
            try Conversion.run(model: model, policy: policy, output: model, options: .init(force: true))
        } throws: { error in
            "\(error)" == "\(model): refusing to overwrite the input file \(model)"
        }
        // Nothing but the output is left in the folder.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["t.mbm"])
    }

    @Test func policyErrorsAreReportedAllAtOnceAndNothingIsWritten() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = dir.appendingPathComponent("bad.txt")
        try "version: 1\nrules:\n  - match: {op: Conv}\n    mix: {1: 0.5, 2: 0.6}\n  - match: {op: Gemm}\n    bits: 9\n".write(to: policy, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("t.mbm").path
        let model = SharedFixtures.repositoryRoot.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
        do {
            _ = try Conversion.run(model: model, policy: policy.path, output: out)
            Issue.record("converted with a bad policy")
        } catch let failure as ConversionError {
            #expect(failure.lines.count == 2, "\(failure)")
            #expect(failure.lines.allSatisfy { $0.hasPrefix(policy.path + ":") }, "\(failure)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
