#if canImport(Glibc)
import Glibc
#endif
import MBCore
import MBRuntime
import XCTest

/// The public API on small graphs built in code: validation errors name the node, inputs are
/// checked, If branches read outer values, buffers are recycled.
final class ModelAPITests: XCTestCase {
    static func floatConstant(_ name: String, _ shape: [Int], _ values: [Float]) -> IRTensor {
        let bytes = values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
        return IRTensor(name: name, elementType: .float, shape: shape, storage: .dense(ByteSlice(copying: bytes)))
    }

    static func model(_ nodes: [IRNode], constants: [IRTensor] = [], inputs: [IRValueInfo]? = nil, outputs: [String] = ["y"], opset: Int64 = 13) -> IRModel {
        IRModel(graph: IRGraph(name: "g", inputs: inputs ?? [IRValueInfo(name: "x", elementType: .float, shape: [.symbolic("N"), .fixed(1), .fixed(3), .fixed(3)])],
                               outputs: outputs.map { IRValueInfo(name: $0, elementType: .float, shape: nil) }, nodes: nodes, constants: constants),
                opsets: [IROpset(domain: "", version: opset)])
    }

    func testConvReluByHand() throws {
        let w = Self.floatConstant("w", [1, 1, 2, 2], [1, 0, 0, -1])
        let ir = Self.model([
            IRNode(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"]),
            IRNode(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
            IRNode(name: "neg", opType: "Neg", inputs: ["r"], outputs: ["y"]),
        ], constants: [w])
        let model = try MBModel(ir: ir)
        XCTAssertEqual(model.inputs.map(\.name), ["x"])
        XCTAssertEqual(model.inputs[0].shape, [.symbolic("N"), .fixed(1), .fixed(3), .fixed(3)])
        let session = model.makeSession(.init(threads: 2))
        let x = MBTensor(shape: [1, 1, 3, 3], floats: [1, 2, 3, 4, 5, 6, 7, 9, 8])
        let y = try XCTUnwrap(session.run(["x": x])["y"])
        XCTAssertEqual(y.shape, [1, 1, 2, 2])
        // x[i][j] - x[i+1][j+1], then Relu (fused into the Conv), then Neg: 1-5, 2-6, 4-9, 5-8 → all negative → 0
        XCTAssertEqual(y.floats, [0, 0, 0, 0])
        let y2 = try XCTUnwrap(session.run(["x": MBTensor(shape: [2, 1, 3, 3], floats: (0..<18).map { Float(17 - $0) })])["y"])
        XCTAssertEqual(y2.shape, [2, 1, 2, 2])
        XCTAssertEqual(y2.floats, Array(repeating: -4, count: 8))
        XCTAssertGreaterThan(session.pooledBytes, 0, "the intermediate 'r' should go back to the pool")
    }

    func testUnsupportedOperatorIsNamedAtLoad() {
        let ir = Self.model([IRNode(name: "x1", opType: "Foo", inputs: ["x"], outputs: ["y"])])
        XCTAssertThrowsError(try MBModel(ir: ir)) { error in
            XCTAssertEqual("\(error)", "node 'x1' (Foo): operator Foo (domain '') is not supported")
            XCTAssertEqual((error as? MBRuntimeError)?.kind, .unsupportedOperator)
        }
        let custom = Self.model([IRNode(name: "n", opType: "Relu", domain: "com.example", inputs: ["x"], outputs: ["y"])])
        XCTAssertThrowsError(try MBModel(ir: custom)) { XCTAssertEqual("\($0)", "node 'n' (Relu): operator Relu (domain 'com.example') is not supported") }
    }

    func testUndefinedValuesAndBadAttributes() {
        let undefined = Self.model([IRNode(name: "add", opType: "Add", inputs: ["x", "nope"], outputs: ["y"])])
        XCTAssertThrowsError(try MBModel(ir: undefined)) {
            XCTAssertEqual("\($0)", "node 'add' (Add): input 'nope' is not defined by any earlier node, input or constant")
        }
        let badAttr = Self.model([IRNode(name: "lr", opType: "LeakyRelu", inputs: ["x"], outputs: ["y"], attributes: [IRAttribute(name: "alpha", value: .string(Array("a".utf8)))])])
        XCTAssertThrowsError(try MBModel(ir: badAttr)) { XCTAssertEqual("\($0)", "node 'lr' (LeakyRelu): attribute 'alpha' must be a float") }
        let noOutput = Self.model([IRNode(name: "r", opType: "Relu", inputs: ["x"], outputs: ["z"])])
        XCTAssertThrowsError(try MBModel(ir: noOutput)) { XCTAssertEqual("\($0)", "graph output 'y' is not produced by any node, input or constant") }
        let badPad = Self.model([IRNode(name: "p", opType: "Pad", inputs: ["x"], outputs: ["y"], attributes: [IRAttribute(name: "mode", value: .string(Array("mirror".utf8)))])])
        XCTAssertThrowsError(try MBModel(ir: badPad)) { XCTAssertEqual("\($0)", "node 'p' (Pad): mode 'mirror' is not supported (constant, reflect, edge, wrap)") }
    }

    func testUInt8ArraysAreHeldAsInt32() throws {
        let npy = try NPYArray(elementType: .uint8, shape: [2, 2], data: [0, 1, 128, 255])
        let t = try MBTensor(npy: npy)
        XCTAssertEqual(t.elementType, .int32)
        XCTAssertEqual(t.int64s, [0, 1, 128, 255])
    }

    func testInputsAreChecked() throws {
        let model = try MBModel(ir: Self.model([IRNode(name: "r", opType: "Relu", inputs: ["x"], outputs: ["y"])]))
        let s = model.makeSession()
        XCTAssertThrowsError(try s.run([:])) { XCTAssertEqual("\($0)", "input 'x' is missing") }
        XCTAssertThrowsError(try s.run(["x": MBTensor(shape: [1, 1, 3, 4], floats: Array(repeating: 0, count: 12))])) {
            XCTAssertEqual("\($0)", "input 'x': dimension 3 must be 3, got shape [1, 1, 3, 4]")
        }
        XCTAssertThrowsError(try s.run(["x": MBTensor(shape: [1, 1, 3, 3], int64s: Array(repeating: 0, count: 9))])) {
            XCTAssertEqual("\($0)", "input 'x': expected float, got int64")
        }
        XCTAssertThrowsError(try s.run(["x": MBTensor(shape: [1, 1, 3, 3], floats: Array(repeating: 0, count: 9)), "q": MBTensor(Float(1))])) {
            XCTAssertEqual("\($0)", "unknown input 'q'; the model's inputs are 'x'")
        }
    }

    func testRunTimeShapeErrorsNameTheNode() throws {
        let ir = Self.model([IRNode(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"])],
                            constants: [Self.floatConstant("w", [2, 2], [1, 2, 3, 4])])
        let s = try MBModel(ir: ir).makeSession()
        XCTAssertThrowsError(try s.run(["x": MBTensor(shape: [1, 1, 3, 3], floats: Array(repeating: 1, count: 9))])) {
            XCTAssertEqual("\($0)", "node 'mm' (MatMul): inner dimensions differ: [1, 1, 3, 3] × [2, 2]")
        }
    }

    /// If branches see outer values; only the taken branch runs.
    func testIfReadsOuterScope() throws {
        let thenG = IRGraph(name: "then", outputs: [IRValueInfo(name: "t", elementType: .float, shape: nil)],
                            nodes: [IRNode(name: "neg", opType: "Neg", inputs: ["x"], outputs: ["t"])])
        let elseG = IRGraph(name: "else", outputs: [IRValueInfo(name: "e", elementType: .float, shape: nil)],
                            nodes: [IRNode(name: "id", opType: "Identity", inputs: ["x"], outputs: ["e"])])
        let ir = IRModel(graph: IRGraph(
            inputs: [IRValueInfo(name: "x", elementType: .float, shape: nil), IRValueInfo(name: "c", elementType: .bool, shape: [])],
            outputs: [IRValueInfo(name: "y", elementType: .float, shape: nil)],
            nodes: [IRNode(name: "if", opType: "If", inputs: ["c"], outputs: ["y"], attributes: [
                IRAttribute(name: "then_branch", value: .graph(thenG)), IRAttribute(name: "else_branch", value: .graph(elseG)),
            ])]), opsets: [IROpset(domain: "", version: 13)])
        let s = try MBModel(ir: ir).makeSession()
        let x = MBTensor(shape: [3], floats: [1, -2, 3])
        XCTAssertEqual(try s.run(["x": x, "c": MBTensor(shape: [], bools: [true])])["y"]?.floats, [-1, 2, -3])
        XCTAssertEqual(try s.run(["x": x, "c": MBTensor(shape: [], bools: [false])])["y"]?.floats, [1, -2, 3])
    }

    /// Softmax before opset 13 flattens from `axis` on; from 13 it works along `axis` alone.
    func testSoftmaxOpsetSemantics() throws {
        let x = MBTensor(shape: [1, 2, 2], floats: [0, 0, 0, 0])
        let info = [IRValueInfo(name: "x", elementType: .float, shape: nil)]
        let node = IRNode(name: "sm", opType: "Softmax", inputs: ["x"], outputs: ["y"], attributes: [IRAttribute(name: "axis", value: .int(1))])
        let old = try MBModel(ir: Self.model([node], inputs: info, opset: 11)).makeSession().run(["x": x])["y"]!
        let new = try MBModel(ir: Self.model([node], inputs: info, opset: 13)).makeSession().run(["x": x])["y"]!
        XCTAssertEqual(old.floats, [0.25, 0.25, 0.25, 0.25])
        XCTAssertEqual(new.floats, [0.5, 0.5, 0.5, 0.5])
    }

    func testReshapeZeroAndMinusOne() throws {
        let shape = IRTensor(name: "s", elementType: .int64, shape: [3], storage: .dense(ByteSlice(copying: [Int64(0), -1, 3].flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } })))
        let ir = Self.model([IRNode(name: "r", opType: "Reshape", inputs: ["x", "s"], outputs: ["y"])], constants: [shape],
                            inputs: [IRValueInfo(name: "x", elementType: .float, shape: nil)])
        let y = try MBModel(ir: ir).makeSession().run(["x": MBTensor(shape: [2, 3, 2], floats: (0..<12).map(Float.init))])["y"]!
        XCTAssertEqual(y.shape, [2, 2, 3])
        XCTAssertEqual(y.floats, (0..<12).map(Float.init))
    }
}

final class LRNTests: XCTestCase {
    /// LRN against its formula, for the sqrt fast path (beta 0.75) and the powf path.
    func testMatchesFormula() throws {
        let (n, ch, plane) = (2, 7, 5)
        var rng = SeededGenerator(seed: 11)
        let xs = (0..<(n * ch * plane)).map { _ in Float(rng.nextNormal()) }
        for beta in [Float(0.75), 0.5] {
            let node = IRNode(name: "lrn", opType: "LRN", inputs: ["x"], outputs: ["y"], attributes: [
                IRAttribute(name: "size", value: .int(3)), IRAttribute(name: "alpha", value: .float(0.1)),
                IRAttribute(name: "beta", value: .float(beta)), IRAttribute(name: "bias", value: .float(2)),
            ])
            let ir = ModelAPITests.model([node], inputs: [IRValueInfo(name: "x", elementType: .float, shape: nil)])
            let y = try MBModel(ir: ir).makeSession().run(["x": MBTensor(shape: [n, ch, plane, 1], floats: xs)])["y"]!.floats
            for b in 0..<n { for k in 0..<ch { for p in 0..<plane {
                var sum: Float = 0
                for j in max(0, k - 1)...min(ch - 1, k + 1) { let v = xs[(b * ch + j) * plane + p]; sum += v * v }
                let i = (b * ch + k) * plane + p
                let expected = xs[i] / powf(2 + 0.1 / 3 * sum, beta)
                XCTAssertEqual(y[i], expected, accuracy: 1e-6 * max(1, abs(expected)), "beta \(beta) n \(b) c \(k) p \(p)")
            } } }
        }
    }
}
