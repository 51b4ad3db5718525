import Foundation
import MBConvert
import MBCore
import MBFormat
import MBONNX
import MBRuntime
import TestSupport
import Testing

/// Features that had no test: `refit` through a conversion, calibration from a folder,
/// `calibrate: false`, converting a model with external data, an oversized constant fold,
/// margin-aware top-1 agreement, verify's NaN check.
@Suite struct FeatureTests {
    static let root = SharedFixtures.repositoryRoot
    static let tiny = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
    static let tinyInput = root.appendingPathComponent("Examples/models/tiny_cnn.input.npy").path

    func temporaryDirectory() throws -> URL { try scratchDirectory("feature") }

    func verify(_ onnx: String, _ mbm: String, inputs: [String] = []) throws -> Verify.Report {
        var o = Verify.Options()
        o.inputs = inputs
        return try Verify.run(onnx: onnx, mbm: mbm, options: o)
    }

    /// `refit: true` and `refit: alternating` never raise a layer's error over plain HBB scales,
    /// and `verify` recomputes the refit weights exactly.
    @Test(arguments: ["true", "alternating"])
    func refitThroughAConversion(mode: String) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plain = try writeText("version: 1\ndefault:\n  mix: {1: 0.7, 2: 0.2, 3: 0.1}\n", "plain.txt", in: dir)
        let refit = try writeText("version: 1\ndefault:\n  mix: {1: 0.7, 2: 0.2, 3: 0.1}\n  refit: \(mode)\n", "refit.txt", in: dir)
        let a = try Conversion.run(model: Self.tiny, policy: plain, output: dir.appendingPathComponent("a.mbm").path)
        let b = try Conversion.run(model: Self.tiny, policy: refit, output: dir.appendingPathComponent("b.mbm").path)
        for (x, y) in zip(a.layers, b.layers) {
            let ex = try #require(x.normalizedError), ey = try #require(y.normalizedError)
            #expect(ey <= ex + 1e-9, "\(x.name): refit \(mode) error \(ey) > plain \(ex)")
        }
        #expect(zip(a.layers, b.layers).contains { ($1.normalizedError ?? 0) < ($0.normalizedError ?? 0) - 1e-4 }, "refit \(mode) improved no layer")
        #expect(b.layers.allSatisfy { $0.method?.contains("refit") ?? false }, "\(b.layers.map { $0.method ?? "-" })")
        let check = try verify(Self.tiny, dir.appendingPathComponent("b.mbm").path, inputs: ["input=\(Self.tinyInput)"])
        #expect(check.passed, "\(check.failures)")
    }

    /// A folder of .npy files for a one-input model is one batch (files in name order): the
    /// conversion equals the one calibrated on that batch as a single file, byte for byte.
    @Test func calibrationFromAFolderEqualsTheSameBatchInOneFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SeededGenerator(seed: 17)
        let rows = 6, row = 3 * 32 * 32
        let values = (0..<(rows * row)).map { _ in Float(rng.nextNormal()) }
        let folder = dir.appendingPathComponent("calib")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try NPY.write(NPYArray(floats: Array(values[0..<(2 * row)]), shape: [2, 3, 32, 32]), to: folder.appendingPathComponent("a.npy").path)
        try NPY.write(NPYArray(floats: Array(values[(2 * row)...]), shape: [4, 3, 32, 32]), to: folder.appendingPathComponent("b.npy").path)
        let single = dir.appendingPathComponent("all.npy").path
        try NPY.write(NPYArray(floats: values, shape: [rows, 3, 32, 32]), to: single)
        let policy = Self.root.appendingPathComponent("Examples/policies/alexnet-paper.txt").path
        var o = Conversion.Options()
        o.calibrate = folder.path
        let fromFolder = try Conversion.run(model: Self.tiny, policy: policy, output: dir.appendingPathComponent("f.mbm").path, options: o)
        o.calibrate = single
        _ = try Conversion.run(model: Self.tiny, policy: policy, output: dir.appendingPathComponent("s.mbm").path, options: o)
        #expect(fromFolder.calibration?.count == 6)
        #expect(try Data(contentsOf: dir.appendingPathComponent("f.mbm")) == Data(contentsOf: dir.appendingPathComponent("s.mbm")))
        let check = try verify(Self.tiny, dir.appendingPathComponent("f.mbm").path, inputs: ["input=\(Self.tinyInput)"])
        #expect(check.passed, "\(check.failures)")
    }

    /// `calibrate: false` on a rule leaves its layers uncorrected; the others are corrected.
    @Test func calibrateFalseLeavesTheRuleUncorrected() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = try writeText("""
            version: 1
            rules:
              - match: {position: first}
                bits: 2
                calibrate: false
            default:
              mix: {1: 0.7, 2: 0.2, 3: 0.1}
            """, "p.txt", in: dir)
        var o = Conversion.Options()
        o.calibrate = Self.tinyInput
        let out = dir.appendingPathComponent("m.mbm").path
        let report = try Conversion.run(model: Self.tiny, policy: policy, output: out, options: o)
        let nodes = try #require(report.calibration).map(\.node)
        #expect(!nodes.contains("conv1") && nodes.count == 5, "\(nodes)")
        let file = try MBMFile.open(path: out)
        #expect(!file.model.graph.constants.contains { $0.name.hasSuffix(".calibrated.bn1") })
        #expect(file.model.graph.constants.contains { $0.name.hasSuffix(".calibrated.bn2") })
        let check = try verify(Self.tiny, out, inputs: ["input=\(Self.tinyInput)"])
        #expect(check.passed, "\(check.failures)")
    }

    /// A model whose weights live in an external data file converts and verifies.
    @Test func externalDataConverts() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fixtures = Self.root.appendingPathComponent("Tests/MBONNXTests/Fixtures")
        for name in ["external_small.onnx", "external_small.weights"] {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        let onnx = dir.appendingPathComponent("external_small.onnx").path, out = dir.appendingPathComponent("m.mbm").path
        let report = try Conversion.run(model: onnx, policy: Self.root.appendingPathComponent("Examples/policies/alexnet-paper.txt").path, output: out)
        #expect(report.layers.map(\.name) == ["conv.w", "fc.w"], "\(report.layers.map(\.name))")
        let check = try verify(onnx, out)
        #expect(check.passed && check.modelDifferences.isEmpty, "\(check.failures)")
    }

    /// A ConstantOfShape whose output would exceed the folding limit is a one-line error naming
    /// the node and the limit, and leaves no output file.
    @Test func oversizedConstantFoldIsAOneLineError() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var model = ONNXModel()
        model.irVersion = 8
        model.opsetImports = [ONNXOperatorSetID(domain: "", version: 13)]
        var g = ONNXGraph()
        g.name = "huge"
        var x = ONNXValueInfo()
        x.name = "x"
        x.type = ONNXTypeProto(value: .tensor(elemType: 1, shape: ONNXShape(dims: [.init(value: .fixed(1)), .init(value: .fixed(8))])))
        g.inputs = [x]
        var shape = ONNXTensor()
        shape.name = "shape"
        shape.dims = [2]
        shape.dataType = ElementType.int64.rawValue
        shape.rawData = [Int64(1 << 20), Int64(1 << 13)].withUnsafeBytes { ByteSlice(storage: ByteStorage(copying: $0)) }
        var w = ONNXTensor()
        w.name = "w"
        w.dims = [8, 4]
        w.dataType = ElementType.float.rawValue
        w.rawData = [Float](repeating: 0.5, count: 32).withUnsafeBytes { ByteSlice(storage: ByteStorage(copying: $0)) }
        g.initializers = [shape, w]
        var fill = ONNXNode()
        fill.name = "fill"
        fill.opType = "ConstantOfShape"
        fill.inputs = ["shape"]
        fill.outputs = ["big"]
        var mm = ONNXNode()
        mm.name = "mm"
        mm.opType = "MatMul"
        mm.inputs = ["x", "w"]
        mm.outputs = ["h"]
        var add = ONNXNode()
        add.name = "add"
        add.opType = "Add"
        add.inputs = ["h", "big"]
        add.outputs = ["y"]
        g.nodes = [fill, mm, add]
        var y = ONNXValueInfo()
        y.name = "y"
        g.outputs = [y]
        model.graph = g
        let onnx = dir.appendingPathComponent("huge.onnx").path, out = dir.appendingPathComponent("huge.mbm").path
        try ONNXWriter().write(model, to: onnx)
        do {
            _ = try Conversion.run(model: onnx, policy: Self.root.appendingPathComponent("Examples/policies/alexnet-paper.txt").path, output: out)
            Issue.record("a 32 GiB constant fold converted")
        } catch {
            let message = "\(error)"
            #expect(message.contains("'fill'") && message.contains("folding limit") && !message.contains("\n"), "\(message)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    /// Top-1 agreement counts every row; the margin-aware agreement leaves out rows whose float
    /// top-2 probabilities are closer than `marginThreshold` (softmax first for logits).
    @Test func marginAwareAgreement() {
        // Probabilities: row 0 is a near tie (0.50 vs 0.49) and flips; row 1 is clear and agrees.
        let p = MBTensor(shape: [2, 3], floats: [0.50, 0.49, 0.01, 0.90, 0.05, 0.05])
        let q = MBTensor(shape: [2, 3], floats: [0.49, 0.50, 0.01, 0.80, 0.15, 0.05])
        let c = Verify.compare("probs", p, q)
        #expect(c.top1Agreement == 0.5 && c.rows == 2)
        #expect(c.marginAgreement == 1.0 && c.marginRows == 1)
        // Logits: softmax of (2, 2.01, -3) is a near tie; (5, 0, 0) is clear and flips.
        let l = MBTensor(shape: [2, 3], floats: [2, 2.01, -3, 5, 0, 0])
        let m = MBTensor(shape: [2, 3], floats: [2.02, 2.01, -3, 0, 5, 0])
        let d = Verify.compare("logits", l, m)
        #expect(d.top1Agreement == 0 && d.marginAgreement == 0 && d.marginRows == 1)
    }

    /// A NaN in the converted model's output where the float model has none fails verify.
    @Test func nonFiniteOutputsFailVerify() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("m.mbm").path
        _ = try Conversion.run(model: Self.tiny, policy: Self.root.appendingPathComponent("Examples/policies/alexnet-paper.txt").path, output: out)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: out)))
        let bias = try #require(SpecReader(bytes: bytes).tensor("fc.bias"))
        for (i, b) in withUnsafeBytes(of: Float.nan.bitPattern.littleEndian, Array.init).enumerated() { bytes[bias.offset + i] = b }
        TamperingTests.fixCRCs(&bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: out))
        let check = try verify(Self.tiny, out, inputs: ["input=\(Self.tinyInput)"])
        #expect(!check.passed)
        #expect(check.failures.contains { $0.hasPrefix("output 'probs': ") && $0.contains("non-finite values") }, "\(check.failures)")
        #expect(check.failures.contains { $0.contains("constant 'fc.bias': element 0 (flat index) is nan") }, "\(check.failures)")
    }
}
