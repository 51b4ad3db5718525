import Foundation
import MBBinarize
import MBCore
import MBRuntime
import XCTest

/// Each load-time optimizer pass on small graphs built in code: where it fires, the optimized
/// graph computes what the graph as written computes (reference kernels, seeded inputs); where
/// it must not fire (a value still read elsewhere, a graph output, a pattern that differs), it
/// leaves the graph alone. Also the in-place rule and the steady-state allocation count.
final class OptimizerTests: XCTestCase {
    static func constant(_ name: String, _ shape: [Int], _ values: [Float]) -> IRTensor {
        ModelAPITests.floatConstant(name, shape, values)
    }

    static func random(_ name: String, _ shape: [Int], seed: UInt64, scale: Double = 1, offset: Double = 0) -> IRTensor {
        var rng = SeededGenerator(seed: seed)
        return constant(name, shape, (0..<shape.reduce(1, *)).map { _ in Float((rng.nextUnitDouble() * 2 - 1) * scale + offset) })
    }

    static func model(_ nodes: [IRNode], _ constants: [IRTensor], input: [Int] = [1, 4, 5, 5], outputs: [String] = ["y"], opset: Int64 = 13) -> IRModel {
        IRModel(graph: IRGraph(name: "g", inputs: [IRValueInfo(name: "x", elementType: .float, shape: input.map { .fixed(Int64($0)) })],
                               outputs: outputs.map { IRValueInfo(name: $0, elementType: .float, shape: nil) }, nodes: nodes, constants: constants),
                opsets: [IROpset(domain: "", version: opset)])
    }

    /// Runs `ir` optimized and as written (reference kernels), compares every output, and
    /// returns the optimized model.
    @discardableResult
    func check(_ ir: IRModel, input: [Int] = [1, 4, 5, 5], fires pass: String, _ fires: Bool = true, file: StaticString = #filePath, line: UInt = #line) throws -> MBModel {
        let optimized = try MBModel(ir: ir)
        let plain = try MBModel(ir: ir, options: .init(optimize: false))
        var rng = SeededGenerator(seed: 7)
        let x = MBTensor(shape: input, floats: (0..<input.reduce(1, *)).map { _ in Float(rng.nextUnitDouble() * 8 - 4) })
        let got = try optimized.makeSession(.init(threads: 2)).run(["x": x])
        let want = try plain.makeSession(.init(kernels: .reference)).run(["x": x])
        for name in ir.graph.outputs.map(\.name) {
            let a = try XCTUnwrap(got[name], file: file, line: line), b = try XCTUnwrap(want[name], file: file, line: line)
            XCTAssertEqual(a.shape, b.shape, "\(name)", file: file, line: line)
            let scale = max(b.floats.map(abs).max() ?? 0, 0.01)
            let worst = zip(a.floats, b.floats).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst / scale, 1e-5, "\(name): optimized differs from the graph as written by \(worst) (input \(x.floats.prefix(8))...)", file: file, line: line)
        }
        if fires {
            XCTAssertNotNil(optimized.optimizerReport[pass], "\(pass) should fire; report \(optimized.optimizerReport)", file: file, line: line)
        } else {
            XCTAssertNil(optimized.optimizerReport[pass], "\(pass) must not fire; report \(optimized.optimizerReport)", file: file, line: line)
        }
        return optimized
    }

    /// The fused node names a profiled run reports.
    func labels(_ m: MBModel, input: [Int] = [1, 4, 5, 5]) throws -> Set<String> {
        let s = m.makeSession(.init(profile: true))
        _ = try s.run(["x": MBTensor(shape: input, floats: Array(repeating: 0.5, count: input.reduce(1, *)))])
        return Set(try XCTUnwrap(s.lastProfile).byOperator.map(\.opType))
    }

    var convW: IRTensor { Self.random("w", [6, 4, 3, 3], seed: 1, scale: 0.3) }
    var convB: IRTensor { Self.random("b", [6], seed: 2) }
    func bn(_ x: String, _ y: String) -> (IRNode, [IRTensor]) {
        (IRNode(name: "bn", opType: "BatchNormalization", inputs: [x, "s", "beta", "mean", "var"], outputs: [y],
                attributes: [IRAttribute(name: "epsilon", value: .float(1e-3))]),
         [Self.random("s", [6], seed: 3, offset: 1), Self.random("beta", [6], seed: 4), Self.random("mean", [6], seed: 5), Self.random("var", [6], seed: 6, scale: 0.5, offset: 1)])
    }
    func conv(_ out: String = "c", bias: Bool = true) -> IRNode {
        IRNode(name: "conv", opType: "Conv", inputs: bias ? ["x", "w", "b"] : ["x", "w"], outputs: [out],
               attributes: [IRAttribute(name: "pads", value: .ints([1, 1, 1, 1]))])
    }

    func testFoldConstants() throws {
        let shape = IRTensor(name: "shape", elementType: .int64, shape: [4], storage: .dense(ByteSlice(copying: [Int64(1), 4, 1, 1].flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } })))
        let nodes = [
            IRNode(name: "r", opType: "Reshape", inputs: ["v", "shape"], outputs: ["rv"]),
            IRNode(name: "add", opType: "Add", inputs: ["x", "rv"], outputs: ["y"]),
        ]
        try check(Self.model(nodes, [Self.random("v", [4], seed: 9), shape]), fires: "fold-constants")
        // Not on a value computed at run time.
        let notConstant = [IRNode(name: "r", opType: "Reshape", inputs: ["x", "shape"], outputs: ["rv"]), IRNode(name: "n", opType: "Neg", inputs: ["rv"], outputs: ["y"])]
        let s2 = IRTensor(name: "shape", elementType: .int64, shape: [1], storage: .dense(ByteSlice(copying: withUnsafeBytes(of: Int64(-1).littleEndian) { Array($0) })))
        try check(Self.model(notConstant, [s2]), fires: "fold-constants", false)
    }

    func testRemoveNoOps() throws {
        let nodes = [
            IRNode(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["r"]),
            IRNode(name: "id", opType: "Identity", inputs: ["r"], outputs: ["i"]),
            IRNode(name: "drop", opType: "Dropout", inputs: ["i"], outputs: ["d"]),
            IRNode(name: "neg", opType: "Neg", inputs: ["d"], outputs: ["y"]),
        ]
        try check(Self.model(nodes, []), fires: "remove-no-ops")
        // An Identity from a graph input to a graph output stays (nothing to rename).
        try check(Self.model([IRNode(name: "id", opType: "Identity", inputs: ["x"], outputs: ["y"])], []), fires: "remove-no-ops", false)
        // A Dropout whose mask is read is not a no-op.
        let mask = [IRNode(name: "drop", opType: "Dropout", inputs: ["x"], outputs: ["y", "m"]),
                    IRNode(name: "cast", opType: "Cast", inputs: ["m"], outputs: ["mf"], attributes: [IRAttribute(name: "to", value: .int(1))])]
        try check(Self.model(mask, [], outputs: ["y", "mf"]), fires: "remove-no-ops", false)
    }

    func testFoldBatchNormIntoConvConvTransposeGemm() throws {
        let (b, params) = bn("c", "y")
        let m = try check(Self.model([conv(), b], [convW, convB] + params), fires: "fold-batch-norm")
        XCTAssertTrue(try labels(m).contains("Conv+BatchNormalization"))
        // Without a bias.
        try check(Self.model([conv(bias: false), b], [convW] + params), fires: "fold-batch-norm")
        // ConvTranspose, 2 groups: W [Cin=4, Cout/g=3, 2, 2].
        let ct = IRNode(name: "ct", opType: "ConvTranspose", inputs: ["x", "wt"], outputs: ["c"],
                        attributes: [IRAttribute(name: "group", value: .int(2)), IRAttribute(name: "strides", value: .ints([2, 2]))])
        try check(Self.model([ct, b], [Self.random("wt", [4, 3, 2, 2], seed: 8)] + params), fires: "fold-batch-norm")
        // Gemm with transB and a C vector.
        let gemm = IRNode(name: "gemm", opType: "Gemm", inputs: ["x", "wg", "cg"], outputs: ["c"],
                          attributes: [IRAttribute(name: "transB", value: .int(1)), IRAttribute(name: "beta", value: .float(0.5)), IRAttribute(name: "alpha", value: .float(2))])
        try check(Self.model([gemm, b], [Self.random("wg", [6, 10], seed: 10), Self.random("cg", [6], seed: 11)] + params, input: [3, 10]), input: [3, 10], fires: "fold-batch-norm")
    }

    func testFoldBatchNormMustNotFire() throws {
        let (b, params) = bn("c", "y")
        // The Conv output has a second reader.
        let twoReaders = [conv(), b, IRNode(name: "neg", opType: "Neg", inputs: ["c"], outputs: ["z"])]
        try check(Self.model(twoReaders, [convW, convB] + params, outputs: ["y", "z"]), fires: "fold-batch-norm", false)
        // The Conv output is a graph output.
        try check(Self.model([conv(), b], [convW, convB] + params, outputs: ["y", "c"]), fires: "fold-batch-norm", false)
        // BN parameters computed at run time (scale from the input).
        let dynamic = [conv(), IRNode(name: "rs", opType: "ReduceMean", inputs: ["x"], outputs: ["sc"], attributes: [IRAttribute(name: "axes", value: .ints([0, 2, 3])), IRAttribute(name: "keepdims", value: .int(0))]),
                       IRNode(name: "pad", opType: "Concat", inputs: ["sc", "sc2"], outputs: ["s6"], attributes: [IRAttribute(name: "axis", value: .int(0))]),
                       IRNode(name: "bn", opType: "BatchNormalization", inputs: ["c", "s6", "beta", "mean", "var"], outputs: ["y"])]
        try check(Self.model(dynamic, [convW, convB, Self.random("sc2", [2], seed: 12)] + params.dropFirst()), fires: "fold-batch-norm", false)
    }

    /// A binarized weight (as a .mbm holds it) is never rewritten: BN after its Conv is not
    /// folded (it stays a per-channel affine), and in packed mode the Conv still runs from the
    /// stored bit planes.
    func testBatchNormIsNotFoldedIntoBinarizedWeights() throws {
        let w = convW
        let values = try XCTUnwrap(w.floatValues())
        let packed = try Binarizer.binarize(FloatTensor(name: "w", shape: w.shape, values: values), bits: 2)
        let binarized = IRTensor(name: "w", elementType: .float, shape: w.shape, storage: .binarized(packed))
        let (b, params) = bn("c", "n")
        let ir = Self.model([conv(), b, IRNode(name: "relu", opType: "Relu", inputs: ["n"], outputs: ["y"])], [binarized, convB] + params)
        try check(ir, fires: "fold-batch-norm", false)
        let packedModel = try MBModel(ir: ir, options: .init(weights: .packed))
        XCTAssertNil(packedModel.optimizerReport["fold-batch-norm"])
        XCTAssertEqual(packedModel.packedNodes, ["conv"])
    }

    func testRecognizeSiLUAndFuseIntoConv() throws {
        let nodes = [conv(), IRNode(name: "sig", opType: "Sigmoid", inputs: ["c"], outputs: ["s"]), IRNode(name: "mul", opType: "Mul", inputs: ["c", "s"], outputs: ["y"])]
        let m = try check(Self.model(nodes, [convW, convB]), fires: "recognize-activations")
        XCTAssertNotNil(m.optimizerReport["fuse-activation"])
        XCTAssertTrue(try labels(m).contains("Conv+SiLU"), "\(m.optimizerReport)")
        // The sigmoid is also read elsewhere: not rewritten.
        let shared = nodes + [IRNode(name: "n", opType: "Neg", inputs: ["s"], outputs: ["z"])]
        try check(Self.model(shared, [convW, convB], outputs: ["y", "z"]), fires: "recognize-activations", false)
        // z * Sigmoid(c) with z another value is not SiLU.
        let other = [conv(), IRNode(name: "neg", opType: "Neg", inputs: ["c"], outputs: ["z"]), IRNode(name: "sig", opType: "Sigmoid", inputs: ["c"], outputs: ["s"]),
                     IRNode(name: "mul", opType: "Mul", inputs: ["z", "s"], outputs: ["y"])]
        try check(Self.model(other, [convW, convB]), fires: "recognize-activations", false)
    }

    func testRecognizeHardSwishSpellings() throws {
        let three = Self.constant("three", [], [3]), zero = Self.constant("zero", [], [0]), six = Self.constant("six", [], [6]), sixth = Self.constant("sixth", [1], [1.0 / 6])
        let base = [Self.constant("three", [], [3]), zero, six, sixth, convW, convB]
        _ = three
        let clip = [conv(), IRNode(name: "add", opType: "Add", inputs: ["c", "three"], outputs: ["a"]),
                    IRNode(name: "clip", opType: "Clip", inputs: ["a", "zero", "six"], outputs: ["r"])]
        // x * Clip(x + 3, 0, 6) / 6
        let divForm = clip + [IRNode(name: "mul", opType: "Mul", inputs: ["c", "r"], outputs: ["m"]), IRNode(name: "div", opType: "Div", inputs: ["m", "six"], outputs: ["y"])]
        var m = try check(Self.model(divForm, base), fires: "recognize-activations")
        XCTAssertTrue(try labels(m).contains("Conv+HardSwish"), "\(m.optimizerReport)")
        // x * (Clip(x + 3, 0, 6) * 1/6)
        let mulForm = clip + [IRNode(name: "d", opType: "Mul", inputs: ["r", "sixth"], outputs: ["h"]), IRNode(name: "mul", opType: "Mul", inputs: ["h", "c"], outputs: ["y"])]
        m = try check(Self.model(mulForm, base), fires: "recognize-activations")
        XCTAssertTrue(try labels(m).contains("Conv+HardSwish"))
        // x * HardSigmoid(x) with alpha 1/6, beta 0.5.
        let hs = [conv(), IRNode(name: "h", opType: "HardSigmoid", inputs: ["c"], outputs: ["h"],
                                 attributes: [IRAttribute(name: "alpha", value: .float(1.0 / 6)), IRAttribute(name: "beta", value: .float(0.5))]),
                  IRNode(name: "mul", opType: "Mul", inputs: ["c", "h"], outputs: ["y"])]
        try check(Self.model(hs, base), fires: "recognize-activations")
        // Opset 9: Clip bounds as attributes.
        let clip9 = [conv(), IRNode(name: "add", opType: "Add", inputs: ["c", "three"], outputs: ["a"]),
                     IRNode(name: "clip", opType: "Clip", inputs: ["a"], outputs: ["r"], attributes: [IRAttribute(name: "min", value: .float(0)), IRAttribute(name: "max", value: .float(6))]),
                     IRNode(name: "mul", opType: "Mul", inputs: ["c", "r"], outputs: ["m"]), IRNode(name: "div", opType: "Div", inputs: ["m", "six"], outputs: ["y"])]
        try check(Self.model(clip9, base, opset: 9), fires: "recognize-activations")
        // Standalone Clip(x + 3, 0, 6) / 6 is a HardSigmoid.
        try check(Self.model(clip + [IRNode(name: "div", opType: "Div", inputs: ["r", "six"], outputs: ["y"])], base), fires: "recognize-activations")
    }

    func testRecognizeHardSwishMustNotFire() throws {
        let five = Self.constant("five", [], [5]), three = Self.constant("three", [], [3]), zero = Self.constant("zero", [], [0]), six = Self.constant("six", [], [6])
        // Clip(x + 3, 0, 5): another function.
        let wrong = [IRNode(name: "add", opType: "Add", inputs: ["x", "three"], outputs: ["a"]), IRNode(name: "clip", opType: "Clip", inputs: ["a", "zero", "five"], outputs: ["r"]),
                     IRNode(name: "mul", opType: "Mul", inputs: ["x", "r"], outputs: ["m"]), IRNode(name: "div", opType: "Div", inputs: ["m", "six"], outputs: ["y"])]
        try check(Self.model(wrong, [five, three, zero, six]), fires: "recognize-activations", false)
        // The intermediate x + 3 is also a graph output.
        let visible = [IRNode(name: "add", opType: "Add", inputs: ["x", "three"], outputs: ["a"]), IRNode(name: "clip", opType: "Clip", inputs: ["a", "zero", "six"], outputs: ["r"]),
                       IRNode(name: "mul", opType: "Mul", inputs: ["x", "r"], outputs: ["m"]), IRNode(name: "div", opType: "Div", inputs: ["m", "six"], outputs: ["y"])]
        try check(Self.model(visible, [three, zero, six], outputs: ["y", "a"]), fires: "recognize-activations", false)
        // A constant of rank 4 could broadcast the shape up: not a scalar here.
        let big = Self.constant("three", [1, 1, 1, 1], [3])
        try check(Self.model(visible, [big, zero, six], input: [4, 5]), input: [4, 5], fires: "recognize-activations", false)
    }

    func testFuseActivationEachKind() throws {
        let kinds: [(IRNode, String)] = [
            (IRNode(name: "a", opType: "Relu", inputs: ["c"], outputs: ["y"]), "Relu"),
            (IRNode(name: "a", opType: "Clip", inputs: ["c", "zero", "six"], outputs: ["y"]), "Relu6"),
            (IRNode(name: "a", opType: "LeakyRelu", inputs: ["c"], outputs: ["y"], attributes: [IRAttribute(name: "alpha", value: .float(0.2))]), "LeakyRelu"),
            (IRNode(name: "a", opType: "HardSigmoid", inputs: ["c"], outputs: ["y"]), "HardSigmoid"),
            (IRNode(name: "a", opType: "HardSwish", inputs: ["c"], outputs: ["y"]), "HardSwish"),
            (IRNode(name: "a", opType: "Sigmoid", inputs: ["c"], outputs: ["y"]), "Sigmoid"),
            (IRNode(name: "a", opType: "Tanh", inputs: ["c"], outputs: ["y"]), "Tanh"),
        ]
        let consts = [convW, convB, Self.constant("zero", [], [0]), Self.constant("six", [], [6])]
        for (act, name) in kinds {
            let m = try check(Self.model([conv(), act], consts), fires: "fuse-activation")
            XCTAssertTrue(try labels(m).contains("Conv+\(name)"), "\(name): \(m.optimizerReport)")
            // Gemm too.
            let gemm = IRNode(name: "gemm", opType: "Gemm", inputs: ["x", "wg", "cg"], outputs: ["c"], attributes: [IRAttribute(name: "transB", value: .int(1))])
            let g = try check(Self.model([gemm, act], [Self.random("wg", [6, 10], seed: 10), Self.random("cg", [6], seed: 11), consts[2], consts[3]], input: [3, 10]),
                              input: [3, 10], fires: "fuse-activation")
            XCTAssertTrue(try labels(g, input: [3, 10]).contains("Gemm+\(name)"))
        }
        // Must not fire: the Conv output is also read by another node, or is a graph output.
        let relu = IRNode(name: "a", opType: "Relu", inputs: ["c"], outputs: ["y"])
        try check(Self.model([conv(), relu, IRNode(name: "n", opType: "Neg", inputs: ["c"], outputs: ["z"])], consts, outputs: ["y", "z"]), fires: "fuse-activation", false)
        try check(Self.model([conv(), relu], consts, outputs: ["y", "c"]), fires: "fuse-activation", false)
        // Clip with bounds computed at run time.
        let dyn = [conv(), IRNode(name: "mx", opType: "ReduceMax", inputs: ["x"], outputs: ["hi"], attributes: [IRAttribute(name: "keepdims", value: .int(0))]),
                   IRNode(name: "a", opType: "Clip", inputs: ["c", "zero", "hi"], outputs: ["y"])]
        try check(Self.model(dyn, consts), fires: "fuse-activation", false)
    }

    func testFuseConvBias() throws {
        let nodes = [conv(bias: false), IRNode(name: "add", opType: "Add", inputs: ["c", "bb"], outputs: ["r"]), IRNode(name: "relu", opType: "Relu", inputs: ["r"], outputs: ["y"])]
        let m = try check(Self.model(nodes, [convW, Self.random("bb", [1, 6, 1, 1], seed: 13)]), fires: "fuse-conv-bias")
        XCTAssertTrue(try labels(m).contains("Conv+Add+Relu"))
        try check(Self.model(nodes, [convW, Self.random("bb", [6, 1, 1], seed: 13)]), fires: "fuse-conv-bias")
        // Not per channel: [1, 1, 1, 5] adds along the width.
        try check(Self.model(nodes, [convW, Self.random("bb", [1, 1, 1, 5], seed: 13)]), fires: "fuse-conv-bias", false)
        // Rank 5 would broadcast the output up a dimension.
        try check(Self.model(nodes, [convW, Self.random("bb", [1, 1, 6, 1, 1], seed: 13)]), fires: "fuse-conv-bias", false)
    }

    func testFuseResidualAdd() throws {
        let nodes = [IRNode(name: "pre", opType: "Relu", inputs: ["x"], outputs: ["skip"]),
                     IRNode(name: "conv", opType: "Conv", inputs: ["x", "w4", "b4"], outputs: ["c"], attributes: [IRAttribute(name: "pads", value: .ints([1, 1, 1, 1]))]),
                     IRNode(name: "add", opType: "Add", inputs: ["skip", "c"], outputs: ["s"]), IRNode(name: "relu", opType: "Relu", inputs: ["s"], outputs: ["y"])]
        let consts = [Self.random("w4", [4, 4, 3, 3], seed: 14, scale: 0.3), Self.random("b4", [4], seed: 15)]
        let m = try check(Self.model(nodes, consts), fires: "fuse-residual-add")
        XCTAssertTrue(try labels(m).contains("Conv+Add+Relu"), "\(m.optimizerReport)")
        // A residual that broadcasts (a [1, 4, 1, 1] value computed at run time) still computes Add's result.
        let pooled = [IRNode(name: "pre", opType: "GlobalAveragePool", inputs: ["x"], outputs: ["skip"])] + nodes.dropFirst()
        try check(Self.model(Array(pooled), consts), fires: "fuse-residual-add")
        // Must not fire: the Conv output is a graph output; or the residual is computed after the Conv.
        try check(Self.model(nodes, consts, outputs: ["y", "c"]), fires: "fuse-residual-add", false)
        let late = [nodes[1], IRNode(name: "pre", opType: "Sigmoid", inputs: ["x"], outputs: ["skip"]), nodes[2], nodes[3]]
        try check(Self.model(late, consts), fires: "fuse-residual-add", false)
    }

    /// MatMul and Gemm take a residual (computed or a constant bias) and then an activation:
    /// `Relu(MatMul(x, W) + b)`, `Tanh(Gemm(x, W, c) + skip)`, `MatMul(x, W) + skip` on a batch
    /// of rows; not when the product is also read elsewhere.
    func testMatMulAndGemmFuseResidualAndActivation() throws {
        let w = Self.random("w", [7, 5], seed: 21, scale: 0.5), bias = Self.random("bias", [5], seed: 22)
        let biased = [IRNode(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["p"]),
                      IRNode(name: "add", opType: "Add", inputs: ["p", "bias"], outputs: ["s"]),
                      IRNode(name: "relu", opType: "Relu", inputs: ["s"], outputs: ["y"])]
        let m = try check(Self.model(biased, [w, bias], input: [2, 3, 7]), input: [2, 3, 7], fires: "fuse-residual-add")
        XCTAssertTrue(try labels(m, input: [2, 3, 7]).contains("MatMul+Add+Relu"), "\(m.optimizerReport)")
        let wt = Self.random("wt", [5, 7], seed: 23, scale: 0.5), c = Self.random("c", [5], seed: 24)
        let gemm = [IRNode(name: "skip", opType: "Sigmoid", inputs: ["x"], outputs: ["k"]),
                    IRNode(name: "proj", opType: "Gemm", inputs: ["x", "wt", "c"], outputs: ["p"], attributes: [IRAttribute(name: "transB", value: .int(1))]),
                    IRNode(name: "sq", opType: "MatMul", inputs: ["p", "back"], outputs: ["q"]),
                    IRNode(name: "add", opType: "Add", inputs: ["k", "q"], outputs: ["s"]),
                    IRNode(name: "t", opType: "Tanh", inputs: ["s"], outputs: ["y"])]
        let back = Self.random("back", [5, 7], seed: 25, scale: 0.5)
        let g = try check(Self.model(gemm, [wt, c, back], input: [4, 7]), input: [4, 7], fires: "fuse-residual-add")
        XCTAssertTrue(try labels(g, input: [4, 7]).contains("MatMul+Add+Tanh"), "\(g.optimizerReport)")
        let gemmSkip = [gemm[0], IRNode(name: "proj", opType: "Gemm", inputs: ["x", "sq7"], outputs: ["p"]),
                        IRNode(name: "add", opType: "Add", inputs: ["p", "k"], outputs: ["y"])]
        let h = try check(Self.model(gemmSkip, [Self.random("sq7", [7, 7], seed: 26)], input: [4, 7]), input: [4, 7], fires: "fuse-residual-add")
        XCTAssertTrue(try labels(h, input: [4, 7]).contains("Gemm+Add"), "\(h.optimizerReport)")
        // Must not fire: the product is a graph output too.
        try check(Self.model(biased, [w, bias], input: [2, 3, 7], outputs: ["y", "p"]), input: [2, 3, 7], fires: "fuse-residual-add", false)
    }

    func testFuseElementwiseChains() throws {
        let consts = [Self.constant("half", [], [0.5]), Self.constant("two", [1], [2]), Self.constant("three", [], [3])]
        // (2 - Sigmoid(x) * 0.5) / 3, then Tanh: one chain of five steps (a scalar on the left too).
        let nodes = [IRNode(name: "s", opType: "Sigmoid", inputs: ["x"], outputs: ["a"]), IRNode(name: "m", opType: "Mul", inputs: ["a", "half"], outputs: ["b"]),
                     IRNode(name: "sub", opType: "Sub", inputs: ["two", "b"], outputs: ["c"]), IRNode(name: "d", opType: "Div", inputs: ["c", "three"], outputs: ["e"]),
                     IRNode(name: "t", opType: "Tanh", inputs: ["e"], outputs: ["y"])]
        let m = try check(Self.model(nodes, consts, input: [3, 5000]), input: [3, 5000], fires: "fuse-elementwise-chains")
        XCTAssertTrue(try labels(m, input: [3, 5000]).contains("Sigmoid+Mul+Sub+Div+Tanh"))
        // Must not fire: an intermediate read elsewhere splits the chain into pieces of one.
        let split = [nodes[0], IRNode(name: "n", opType: "Neg", inputs: ["a"], outputs: ["z"]), IRNode(name: "m", opType: "Mul", inputs: ["a", "half"], outputs: ["y"])]
        try check(Self.model(split, consts, input: [3, 50], outputs: ["y", "z"]), input: [3, 50], fires: "fuse-elementwise-chains", false)
        // Relu then Neg-free integer-capable steps only: not known to be float, left alone.
        let relus = [IRNode(name: "r1", opType: "Relu", inputs: ["x"], outputs: ["a"]), IRNode(name: "r2", opType: "Relu", inputs: ["a"], outputs: ["y"])]
        try check(Self.model(relus, [], input: [3, 50]), input: [3, 50], fires: "fuse-elementwise-chains", false)
        // A non-scalar constant operand breaks the chain.
        let vector = [nodes[0], IRNode(name: "m", opType: "Mul", inputs: ["a", "vec"], outputs: ["y"])]
        try check(Self.model(vector, [Self.random("vec", [50], seed: 3)], input: [3, 50]), input: [3, 50], fires: "fuse-elementwise-chains", false)
    }

    func testRemoveDeadNodes() throws {
        let nodes = [IRNode(name: "unused", opType: "Sigmoid", inputs: ["x"], outputs: ["u"]), IRNode(name: "u2", opType: "Neg", inputs: ["u"], outputs: ["u3"]),
                     IRNode(name: "neg", opType: "Neg", inputs: ["x"], outputs: ["y"])]
        try check(Self.model(nodes, []), fires: "remove-dead-nodes")
        try check(Self.model(nodes, [], outputs: ["y", "u3"]), fires: "remove-dead-nodes", false)
    }

    /// An elementwise output is written over an input only when that input dies at the node and
    /// no one else holds its buffer: a value read later, a graph input, and a view (Reshape) of a
    /// value read later are never overwritten.
    func testInPlaceRule() throws {
        let shape = IRTensor(name: "flat", elementType: .int64, shape: [1], storage: .dense(ByteSlice(copying: withUnsafeBytes(of: Int64(-1).littleEndian) { Array($0) })))
        let nodes = [
            IRNode(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["a"]),          // x is a graph input: never overwritten
            IRNode(name: "sig", opType: "Sigmoid", inputs: ["a"], outputs: ["b"]),       // a is read later: not overwritten
            IRNode(name: "view", opType: "Reshape", inputs: ["a", "flat"], outputs: ["av"]),
            IRNode(name: "tanh", opType: "Tanh", inputs: ["av"], outputs: ["t"]),        // av dies here but shares a's buffer, read later
            IRNode(name: "neg", opType: "Neg", inputs: ["a"], outputs: ["na"]),
            IRNode(name: "add", opType: "Add", inputs: ["b", "na"], outputs: ["s"]),      // b and na die here: written over one of them
            IRNode(name: "exp", opType: "Exp", inputs: ["s"], outputs: ["y"]),           // s dies here: in place
        ]
        let m = try MBModel(ir: Self.model(nodes, [shape], outputs: ["y", "t"]))
        var rng = SeededGenerator(seed: 3)
        let xs = (0..<100).map { _ in Float(rng.nextUnitDouble() * 6 - 3) }
        let x = MBTensor(shape: [1, 4, 5, 5], floats: xs)
        let session = m.makeSession()
        let out = try session.run(["x": x])
        XCTAssertEqual(x.floats, xs, "the graph input was overwritten")
        let y = try XCTUnwrap(out["y"]).floats, t = try XCTUnwrap(out["t"]).floats
        for k in 0..<100 {
            let a = max(xs[k], 0)
            let want = Foundation.exp(1 / (1 + Foundation.exp(-Double(a))) - Double(a))
            XCTAssertEqual(Double(y[k]), want, accuracy: 1e-5 * max(1, want), "element \(k), x \(xs[k])")
            XCTAssertEqual(Double(t[k]), Foundation.tanh(Double(a)), accuracy: 1e-6, "element \(k), x \(xs[k])")
        }
        XCTAssertGreaterThanOrEqual(session.lastRunReusedBuffers, 2, "Add and Exp should write over their dying inputs")
    }

    /// The second run of a session allocates no tensor buffer (every size comes back from the
    /// pool), and the peak of live activation bytes is reported.
    func testSteadyStateRunAllocatesNothing() throws {
        let (b, params) = bn("c", "n")
        let nodes = [conv(), b, IRNode(name: "relu", opType: "Relu", inputs: ["n"], outputs: ["r"]),
                     IRNode(name: "sig", opType: "Sigmoid", inputs: ["r"], outputs: ["s"]), IRNode(name: "mul", opType: "Mul", inputs: ["r", "s"], outputs: ["y"])]
        let m = try MBModel(ir: Self.model(nodes, [convW, convB] + params))
        let session = m.makeSession(.init(threads: 2))
        let x = MBTensor(shape: [1, 4, 5, 5], floats: (0..<100).map { Float($0) / 50 - 1 })
        do { _ = try session.run(["x": x]) }
        XCTAssertGreaterThan(session.lastRunAllocations, 0)
        XCTAssertGreaterThan(session.lastPeakActivationBytes, 0)
        for _ in 0..<3 {
            _ = try session.run(["x": x])
            XCTAssertEqual(session.lastRunAllocations, 0, "a steady-state run allocated tensor buffers")
        }
        // Outputs kept by the caller are not reused: the next run allocates fresh ones.
        let kept = try session.run(["x": x])
        _ = try session.run(["x": x])
        XCTAssertEqual(session.lastRunAllocations, kept.count)
    }
}
