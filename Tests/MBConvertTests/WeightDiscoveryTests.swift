import Foundation
import MBConvert
import MBCore
import MBONNX
import TestSupport
import Testing

/// Which tensors are weights, where they live, and their facts, on the bundled example and on
/// every shared model (skipped loudly without ../shared).
@Suite struct WeightDiscoveryTests {
    static func discover(_ path: String) throws -> WeightDiscovery {
        try WeightDiscovery(onnx: try ONNXReader().load(path: path), file: path)
    }

    static func sharedModel(_ name: String) throws -> String {
        try Prerequisites.requireFile(try Prerequisites.requireModels("WeightDiscovery on \(name)").appendingPathComponent(name).path)
    }

    @Test func tinyCNN() throws {
        let d = try Self.discover(SharedFixtures.repositoryRoot.appendingPathComponent("Examples/models/tiny_cnn.onnx").path)
        let w = d.weights
        #expect(w.map(\.name) == ["conv1.weight", "conv2.weight", "dw3.weight", "pw4.weight", "conv5.weight", "fc.weight"])
        #expect(w.map(\.shape) == [[32, 3, 3, 3], [64, 32, 3, 3], [64, 1, 3, 3], [128, 64, 1, 1], [64, 128, 3, 3], [10, 64]])
        #expect(w.map(\.isFirst) == [true, false, false, false, false, false])
        #expect(w.map(\.isLast) == [false, false, false, false, false, true])
        #expect(w.map(\.isDepthwise) == [false, false, true, false, false, false])
        #expect(w.map(\.source) == Array(repeating: .initializer, count: 6))
        // Conv outputs along axis 0; Gemm with transB = 1 ([N, K]) along axis 0 too.
        #expect(w.map(\.outputAxis) == [0, 0, 0, 0, 0, 0])
        #expect(w.map(\.channelCount) == [32, 64, 64, 128, 64, 10])
        let others = d.tensors.filter { !$0.isWeight }.map(\.name)
        #expect(others.contains("fc.bias") && others.contains("bn1.scale"))
        #expect(!others.contains { $0.hasSuffix(".weight") })
        let subject = w[2].subject
        #expect(subject.tensorName == "dw3.weight" && subject.isDepthwise && subject.elementCount == 576)
        #expect(subject.consumers.map(\.opType) == ["Conv"])
    }

    /// PaddleOCR's classifier keeps every weight in Constant nodes: 53 Conv weights and the
    /// MatMul's right operand.
    @Test(.enabled(if: Prerequisites.sharedRuns, "needs ../shared")) func paddleOCRClassifier() throws {
        let path = try Self.sharedModel("ch_ppocr_mobile_v2.0_cls_infer.onnx")
        let w = try Self.discover(path).weights
        #expect(w.count == 54)
        #expect(w.filter { $0.subject.consumers.contains { $0.opType == "Conv" } }.count == 53)
        let matmul = try #require(w.last)
        #expect(matmul.name == "fc_0.w_0")
        #expect(matmul.subject.consumers.map(\.opType) == ["MatMul"])
        #expect(matmul.outputAxis == 1)
        #expect(w.allSatisfy { $0.source == .constantNode })
        #expect(w.first?.name == "conv1_weights" && w.first?.isFirst == true)
        #expect(w.filter(\.isFirst).count == 1 && w.filter(\.isLast).map(\.name) == ["fc_0.w_0"])
        #expect(w.filter(\.isDepthwise).count > 0)
        #expect(w.filter(\.isDepthwise).allSatisfy { $0.shape[1] == 1 })
    }

    /// light_bvlc_alexnet makes every weight with ConstantOfShape: 5 conv and 3 fc weights,
    /// all found through folding, with values that fold to the model's fill value.
    @Test(.enabled(if: Prerequisites.sharedRuns, "needs ../shared")) func lightAlexNetFoldsConstantOfShape() throws {
        let path = try Self.sharedModel("light_bvlc_alexnet.onnx")
        let d = try Self.discover(path)
        let w = d.weights
        #expect(w.map(\.name) == ["conv1_w_0", "conv2_w_0", "conv3_w_0", "conv4_w_0", "conv5_w_0", "fc6_w_0", "fc7_w_0", "fc8_w_0"])
        #expect(w.allSatisfy { $0.source == .folded(op: "ConstantOfShape") })
        #expect(w.map(\.shape) == [[96, 3, 11, 11], [256, 48, 5, 5], [384, 256, 3, 3], [384, 192, 3, 3], [256, 192, 3, 3],
                                  [4096, 9216], [4096, 4096], [1000, 4096]])
        #expect(w.filter { $0.subject.consumers.contains { $0.opType == "Gemm" } }.count == 3)
        #expect(w.first?.isFirst == true && w.last?.isLast == true)
        // Biases are folded too, and reachable by name, but are not weights.
        #expect(d.tensors.filter { !$0.isWeight }.map(\.name).contains("conv1_b_0"))
        let conv1 = try d.materialize("conv1_w_0")
        #expect(conv1.shape == [96, 3, 11, 11])
        #expect(conv1.withFloats { Array($0) } == Array(repeating: Float(0.02), count: 96 * 3 * 11 * 11))
        let (count, read) = try d.elementReader("fc6_w_0")
        #expect(count == 4096 * 9216 && read(count - 1) == 0.02)
    }

    /// Every shared model: discovery succeeds, weight names are unique, and every weight is a
    /// float tensor read by a weighted op.
    @Test(.enabled(if: Prerequisites.sharedRuns, "needs ../shared")) func everySharedModel() throws {
        let models = try Prerequisites.requireModels("WeightDiscovery on every shared model")
        let expected: [String: Int] = [
            "ch_ppocr_mobile_v2.0_cls_infer.onnx": 54, "light_bvlc_alexnet.onnx": 8, "light_resnet50.onnx": 54,
            "light_squeezenet.onnx": 26, "silero_vad_16k_op15.onnx": 6, "squeezenet_random.onnx": 26,
        ]
        let files = try FileManager.default.contentsOfDirectory(atPath: models.path).filter { $0.hasSuffix(".onnx") }.sorted()
        #expect(Set(files) == Set(expected.keys), "new shared models need an expected weight count here")
        for f in files {
            let w = try Self.discover(models.appendingPathComponent(f).path).weights
            #expect(w.count == expected[f], "\(f)")
            #expect(Set(w.map(\.name)).count == w.count, "\(f)")
            #expect(w.allSatisfy { t in t.subject.consumers.contains { ["Conv", "ConvTranspose", "Gemm", "MatMul"].contains($0.opType) } }, "\(f)")
            #expect(w.filter(\.isFirst).count >= 1 && w.filter(\.isLast).count >= 1, "\(f)")
        }
    }

    /// Hand-made graphs: a weight shared by two nodes is one tensor; Gemm/MatMul pick whichever
    /// operand is constant; ConvTranspose outputs along axis 1.
    @Test func sharedAndLeftOperandWeights() throws {
        func float(_ name: String, _ shape: [Int]) -> IRTensor {
            IRTensor(name: name, elementType: .float, shape: shape,
                     storage: .dense(ByteSlice(copying: [UInt8](repeating: 0, count: shape.reduce(1, *) * 4))))
        }
        let graph = IRGraph(nodes: [
            IRNode(name: "a", opType: "MatMul", inputs: ["x", "W"], outputs: ["y1"]),
            IRNode(name: "b", opType: "MatMul", inputs: ["y1", "W"], outputs: ["y2"]),
            IRNode(name: "c", opType: "Gemm", inputs: ["A", "y2"], outputs: ["y3"], attributes: [.init(name: "transA", value: .int(1))]),
            IRNode(name: "d", opType: "ConvTranspose", inputs: ["y3", "T"], outputs: ["y4"]),
            IRNode(name: "e", opType: "Add", inputs: ["y4", "bias"], outputs: ["y5"]),
        ], constants: [float("W", [8, 8]), float("A", [8, 4]), float("T", [4, 2, 3, 3]), float("bias", [2])])
        let d = try WeightDiscovery(graph: graph)
        #expect(d.weights.map(\.name) == ["W", "A", "T"])
        #expect(d.weights[0].subject.consumers.map(\.name) == ["a", "b"])
        #expect(d.weights.map(\.isFirst) == [true, false, false])
        #expect(d.weights.map(\.isLast) == [false, false, true])
        #expect(d.weights.map(\.outputAxis) == [1, 1, 1])
        #expect(d.tensors.filter { !$0.isWeight }.map(\.name) == ["bias"])
    }
}
