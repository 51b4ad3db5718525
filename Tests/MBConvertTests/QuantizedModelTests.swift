import Foundation
@testable import MBConvert
import MBCore
import MBFormat
import MBRuntime
import TestSupport
import Testing

/// Models quantized by onnxruntime's own tools (Scripts/fixtures/quantized_models.py, written at
/// test time): the runtime against onnxruntime's outputs, and QDQ models as conversion input (the
/// folded DequantizeLinear output is the weight a policy binarizes; the node disappears; a weight
/// no rule names stays quantized as it was; `verify` passes).
@Suite(.serialized) struct QuantizedModelTests {
    /// The tests run with Python + onnx + onnxruntime + onnx_ir (Scripts/requirements.txt), which
    /// CI=true requires; the classifier's also with ../shared.
    static let pythonRuns = Prerequisites.pythonRuns("onnx", "onnxruntime", "onnx_ir", "numpy")
    static let sharedRuns = Prerequisites.pythonRuns("onnx", "onnxruntime", "onnx_ir", "numpy", andShared: true)

    /// The fixtures, made once per test process.
    static let fixtures: Result<URL, Error> = Result {
        let python = try Prerequisites.requirePython("the onnxruntime-quantized fixtures", "onnx", "onnxruntime", "onnx_ir", "numpy")
        let dir = fixturesDirectory
        // Removed when the test process exits, so repeated runs leave nothing in the temporary folder.
        atexit { try? FileManager.default.removeItem(at: QuantizedModelTests.fixturesDirectory) }
        var arguments = [python, "Scripts/fixtures/quantized_models.py", dir.path]
        if let shared = SharedFixtures.models { arguments.append(shared.path) }
        let r = try CLI.runSystem("/usr/bin/env", arguments, in: SharedFixtures.repositoryRoot)
        guard r.status == 0 else { throw ConversionError("quantized_models.py failed: \(r)") }
        return dir
    }

    static let fixturesDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("mbconvert-quantized-\(getpid())")

    static func fixture(_ name: String) throws -> URL {
        let model = try fixtures.get().appendingPathComponent(name + ".onnx")
        guard FileManager.default.fileExists(atPath: model.path) else { throw ConversionError("\(name).onnx was not made (it needs ../shared/models)") }
        return model
    }

    static func sibling(_ model: URL, _ suffix: String) -> String {
        model.deletingPathExtension().path + suffix
    }

    static func run(_ model: MBModel, _ input: String) throws -> [Float] {
        let x = try NPY.read(path: input)
        let feed = MBTensor(shape: x.shape, floats: x.floatValues())
        let out = try model.makeSession().run([model.inputs[0].name: feed])
        return try #require(out[model.outputs[0].name]).floats
    }

    static func policy(_ text: String) throws -> String {
        let dir = try fixtures.get()
        let path = dir.appendingPathComponent("policy-\(UUID().uuidString).txt").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `mbconvert verify` of the conversion on the fixture's input passes.
    static func expectVerified(_ model: URL, _ mbm: String) throws {
        var options = Verify.Options()
        options.inputsDirectory = sibling(model, ".input.npy")
        let verified = try Verify.run(onnx: model.path, mbm: mbm, options: options)
        #expect(verified.passed, "\(verified.failures)")
    }

    static func operators(_ mbm: String) throws -> [String: Int] {
        let file = try MBMFile.open(path: mbm, options: .init(verifyChecksums: true))
        return file.model.graph.nodes.reduce(into: [:]) { $0[$1.opType, default: 0] += 1 }
    }

    /// MatMulNBits (4-bit, blocked, packed zero points) and the blocked int4 QDQ MLP: exact (both
    /// compute the same float products as onnxruntime's unfused graph; bar 1e-6 relative).
    @Test(.enabled(if: pythonRuns, "needs Python with onnxruntime and onnx_ir"), arguments: ["mlp_matmulnbits", "mlp_qdq_int4_blocked"])
    func runtimeMatchesOnnxruntime(_ name: String) throws {
        let model = try Self.fixture(name)
        let ours = try Self.run(try MBModel(ir: ModelLoading.loadONNXAsIR(path: model.path)), Self.sibling(model, ".input.npy"))
        let ort = try NPY.read(path: Self.sibling(model, ".ort.npy")).floatValues()
        let scale = ort.map { abs($0) }.max() ?? 1
        #expect(ours.count == ort.count)
        let worst = zip(ours, ort).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1e-6 * scale, "\(name): max abs difference \(worst) (ours \(ours.prefix(6)), onnxruntime \(ort.prefix(6)))")
    }

    /// The QDQ MLP's int4 blocked weights binarized: no DequantizeLinear is left, the report names
    /// the folded tensors, verify passes; kept as float32 the conversion computes exactly what the
    /// runtime computes from the QDQ graph.
    @Test(.enabled(if: pythonRuns, "needs Python with onnxruntime and onnx_ir")) func int4BlockedQDQConverts() throws {
        let model = try Self.fixture("mlp_qdq_int4_blocked")
        let dir = model.deletingLastPathComponent()
        let binarized = dir.appendingPathComponent("mlp_qdq_bin.mbm").path
        let report = try Conversion.run(model: model.path, policy: try Self.policy("version: 1\nrules:\n  - match: {op: [MatMul]}\n    bits: 2\n    scale: tensor\n"),
                                        output: binarized, options: .init(force: true))
        #expect(report.layers.count == 2, "\(report.layers.map(\.name))")
        #expect(report.layers.allSatisfy { $0.encoding == "binarized" && $0.sourceElementType == "float" })
        #expect(try Self.operators(binarized)["DequantizeLinear"] == nil)
        try Self.expectVerified(model, binarized)

        let kept = dir.appendingPathComponent("mlp_qdq_keep.mbm").path
        _ = try Conversion.run(model: model.path, policy: try Self.policy("version: 1\nrules:\n  - match: {op: [MatMul]}\n    keep: float32\n"),
                               output: kept, options: .init(force: true))
        #expect(try Self.operators(kept)["DequantizeLinear"] == nil)
        let original = try Self.run(try MBModel(ir: ModelLoading.loadONNXAsIR(path: model.path)), Self.sibling(model, ".input.npy"))
        let folded = try Self.run(try MBModel(contentsOfFile: kept), Self.sibling(model, ".input.npy"))
        #expect(original.map(\.bitPattern) == folded.map(\.bitPattern))
    }

    /// The raw bytes of each dense constant, by name.
    static func denseBytes(_ graph: IRGraph) -> [String: [UInt8]] {
        graph.constants.reduce(into: [:]) { out, c in
            if case .dense(let bytes) = c.storage { out[c.name] = bytes.withBytes { Array($0) } }
        }
    }

    /// The MatMulNBits MLP converted with no rule naming its weights: the contrib node and its
    /// packed B, scales and zero points reach the .mbm byte for byte, `verify` passes, and the
    /// converted model's output equals onnxruntime's (same bar as the runtime test: 1e-6 relative).
    @Test(.enabled(if: pythonRuns, "needs Python with onnxruntime and onnx_ir")) func matMulNBitsKeptConverts() throws {
        let model = try Self.fixture("mlp_matmulnbits")
        let mbm = model.deletingLastPathComponent().appendingPathComponent("mlp_matmulnbits_kept.mbm").path
        _ = try Conversion.run(model: model.path, policy: try Self.policy("version: 1\nrules:\n  - match: {op: [Conv]}\n    bits: 2\n"),
                               output: mbm, options: .init(force: true))
        let source = try ModelLoading.loadONNXAsIR(path: model.path).graph
        let sourceNodes = source.nodes.filter { $0.opType == "MatMulNBits" }
        #expect(!sourceNodes.isEmpty)
        let file = try MBMFile.open(path: mbm, options: .init(verifyChecksums: true))
        let stored = file.model.graph.nodes.filter { $0.opType == "MatMulNBits" }
        #expect(stored.map(\.inputs) == sourceNodes.map(\.inputs))
        #expect(stored.map(\.domain) == sourceNodes.map(\.domain))
        let before = Self.denseBytes(source), after = Self.denseBytes(file.model.graph)
        for node in sourceNodes {
            for name in node.inputs.dropFirst() where !name.isEmpty {
                #expect(after[name] != nil && after[name] == before[name], "\(name): packed operand changed or missing")
            }
        }
        try Self.expectVerified(model, mbm)
        let ours = try Self.run(try MBModel(contentsOfFile: mbm), Self.sibling(model, ".input.npy"))
        let ort = try NPY.read(path: Self.sibling(model, ".ort.npy")).floatValues()
        let scale = ort.map { abs($0) }.max() ?? 1
        let worst = zip(ours, ort).map { abs($0 - $1) }.max() ?? .infinity
        #expect(ours.count == ort.count && worst <= 1e-6 * scale, "max abs difference \(worst) against onnxruntime")
    }

    /// onnxruntime's quantize_static QDQ model of the shared text-direction classifier (int8
    /// weights per channel): binarizing its Conv/Gemm weights removes exactly their 54
    /// DequantizeLinear nodes (the int32 bias and activation ones stay), verify passes; with no
    /// rule naming them every weight stays int8 behind its DequantizeLinear.
    @Test(.enabled(if: sharedRuns, "needs ../shared and Python with onnxruntime and onnx_ir")) func int8PerChannelQDQConverts() throws {
        let model = try Self.fixture("cls_qdq_int8")
        let dir = model.deletingLastPathComponent()
        let before = try ModelLoading.loadONNXAsIR(path: model.path).graph.nodes.filter { $0.opType == "DequantizeLinear" }.count
        let binarized = dir.appendingPathComponent("cls_qdq_bin.mbm").path
        let policy = SharedFixtures.repositoryRoot.appendingPathComponent("Examples/policies/alexnet-paper.txt").path
        let report = try Conversion.run(model: model.path, policy: policy, output: binarized, options: .init(force: true))
        let weights = report.layers.filter { $0.encoding == "binarized" }
        #expect(weights.count == 54)
        #expect(try Self.operators(binarized)["DequantizeLinear"] == before - 54)
        try Self.expectVerified(model, binarized)

        let untouched = dir.appendingPathComponent("cls_qdq_none.mbm").path
        _ = try Conversion.run(model: model.path, policy: try Self.policy("version: 1\nrules:\n  - match: {op: [MatMul]}\n    bits: 2\n"),
                               output: untouched, options: .init(force: true))
        #expect(try Self.operators(untouched)["DequantizeLinear"] == before)
        let file = try MBMFile.open(path: untouched, options: .init(verifyChecksums: true))
        #expect(file.model.graph.constants.filter { $0.elementType == .int8 && $0.shape.count >= 2 }.count == 54)
    }
}
