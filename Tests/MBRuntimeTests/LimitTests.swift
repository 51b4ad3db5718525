import MBCore
import MBRuntime
import Testing

/// Tensors the runtime would allocate from hostile values (shape inputs, repeats, scales) are
/// refused before allocation with an error naming the node, the shape and the option.
@Suite struct RuntimeLimitTests {
    static func int64Constant(_ name: String, _ values: [Int64]) -> IRTensor {
        IRTensor(name: name, elementType: .int64, shape: [values.count],
                 storage: .dense(ByteSlice(copying: values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } })))
    }

    static func floatConstant(_ name: String, _ values: [Float], shape: [Int]? = nil) -> IRTensor {
        ModelAPITests.floatConstant(name, shape ?? [values.count], values)
    }

    /// y = op(x, ...) with x a float input of `shape` and the other inputs constants.
    static func model(_ node: IRNode, x shape: [IRDim], constants: [IRTensor] = [], opset: Int64 = 13) -> IRModel {
        IRModel(graph: IRGraph(name: "g", inputs: [IRValueInfo(name: "x", elementType: .float, shape: shape)],
                               outputs: [IRValueInfo(name: "y", elementType: .float, shape: nil)], nodes: [node], constants: constants),
                opsets: [IROpset(domain: "", version: opset)])
    }

    func runError(_ ir: IRModel, _ inputs: [String: MBTensor], session: MBSession.Options = .init()) -> MBRuntimeError? {
        do {
            _ = try MBModel(ir: ir).makeSession(session).run(inputs)
            return nil
        } catch {
            return error
        }
    }

    let x4 = MBTensor(shape: [1, 1, 2, 2], floats: [1, 2, 3, 4])

    @Test func expandToATrillionElementsIsRefused() {
        let ir = Self.model(IRNode(name: "e", opType: "Expand", inputs: ["x", "s"], outputs: ["y"]), x: [.fixed(1)],
                            constants: [Self.int64Constant("s", [1_000_000, 1_000_000])])
        let e = runError(ir, ["x": MBTensor(shape: [1], floats: [1])])
        #expect(e?.kind == .limitExceeded)
        #expect(e?.description == "node 'e' (Expand): output shape [1000000, 1000000] of float needs 4000000000000 bytes, more than the limit of 4294967296 (MBSession.Options.maxTensorBytes)")
    }

    @Test func constantOfShapeFromAnInputIsRefusedAtRunTime() {
        let ir = IRModel(graph: IRGraph(name: "g", inputs: [IRValueInfo(name: "s", elementType: .int64, shape: [.fixed(2)])],
                                        outputs: [IRValueInfo(name: "y", elementType: .float, shape: nil)],
                                        nodes: [IRNode(name: "c", opType: "ConstantOfShape", inputs: ["s"], outputs: ["y"])]),
                         opsets: [IROpset(domain: "", version: 13)])
        let session = MBSession.Options(maxTensorBytes: 1 << 20)
        #expect(runError(ir, ["s": MBTensor(shape: [2], int64s: [512, 512])], session: session) == nil)
        let e = runError(ir, ["s": MBTensor(shape: [2], int64s: [1_000_000, 1_000_000])], session: session)
        #expect(e?.kind == .limitExceeded)
        #expect(e?.description == "node 'c' (ConstantOfShape): output shape [1000000, 1000000] of float needs 4000000000000 bytes, more than the limit of 1048576 (MBSession.Options.maxTensorBytes)")
    }

    @Test func reshapeToAnOverflowingShapeIsAnError() {
        let ir = Self.model(IRNode(name: "r", opType: "Reshape", inputs: ["x", "s"], outputs: ["y"]), x: [.fixed(1), .fixed(1), .fixed(2), .fixed(2)],
                            constants: [Self.int64Constant("s", [1 << 62, 4, 4])])
        #expect(runError(ir, ["x": x4])?.description == "node 'r' (Reshape): cannot reshape [1, 1, 2, 2] (4 elements) to [4611686018427387904, 4, 4]")
        let inferred = Self.model(IRNode(name: "r", opType: "Reshape", inputs: ["x", "s"], outputs: ["y"]), x: [.fixed(1), .fixed(1), .fixed(2), .fixed(2)],
                                  constants: [Self.int64Constant("s", [1 << 62, 4, -1])])
        #expect(runError(inferred, ["x": x4])?.description == "node 'r' (Reshape): cannot reshape [1, 1, 2, 2] to [4611686018427387904, 4, -1]")
    }

    @Test func resizeWithHugeScalesIsRefused() {
        func resize(_ scales: [Float]) -> IRModel {
            Self.model(IRNode(name: "up", opType: "Resize", inputs: ["x", "", "scales"], outputs: ["y"]),
                       x: [.fixed(1), .fixed(1), .fixed(2), .fixed(2)], constants: [Self.floatConstant("scales", scales)])
        }
        let big = runError(resize([1, 1, 1e6, 1e6]), ["x": x4])
        #expect(big?.kind == .limitExceeded)
        #expect(big?.description == "node 'up' (Resize): output shape [1, 1, 2000000, 2000000] of float needs 16000000000000 bytes, more than the limit of 4294967296 (MBSession.Options.maxTensorBytes)")
        let absurd = runError(resize([1, 1, 1e30, 1]), ["x": x4])
        #expect(absurd?.kind == .limitExceeded)
        #expect(absurd?.description == "node 'up' (Resize): scales [1.0, 1.0, 1e+30, 1.0] of shape [1, 1, 2, 2]: more elements than a 64-bit count can hold")
        #expect(runError(resize([1, 1, .infinity, 1]), ["x": x4])?.description
            == "node 'up' (Resize): scales [1.0, 1.0, inf, 1.0] must be finite and positive")
    }

    /// Sizes that come from inputs are checked before the values they size are built.
    @Test func hugeWindowAndDFTLengthsAreRefused() {
        let window = Self.model(IRNode(name: "w", opType: "HannWindow", inputs: ["n"], outputs: ["y"]), x: [.fixed(1)],
                                constants: [Self.int64Constant("n", [1_000_000_000_000_000])], opset: 17)
        let w = runError(window, ["x": MBTensor(shape: [1], floats: [0])])
        #expect(w?.kind == .limitExceeded)
        #expect(w?.description == "node 'w' (HannWindow): output shape [1000000000000000] of float needs 4000000000000000 bytes, more than the limit of 4294967296 (MBSession.Options.maxTensorBytes)")
        let dft = Self.model(IRNode(name: "f", opType: "DFT", inputs: ["x", "len"], outputs: ["y"]), x: [.fixed(1), .fixed(4), .fixed(1)],
                             constants: [Self.int64Constant("len", [1_000_000_000_000])], opset: 17)
        let d = runError(dft, ["x": MBTensor(shape: [1, 4, 1], floats: [1, 1, 1, 1])])
        #expect(d?.kind == .limitExceeded)
        #expect(d?.description == "node 'f' (DFT): output shape [1000000000000, 2] of double needs 16000000000000 bytes, more than the limit of 4294967296 (MBSession.Options.maxTensorBytes)")
    }

    @Test func tileWithOverflowingRepeatsIsRefused() {
        let ir = Self.model(IRNode(name: "t", opType: "Tile", inputs: ["x", "r"], outputs: ["y"]), x: [.fixed(1), .fixed(1), .fixed(2), .fixed(2)],
                            constants: [Self.int64Constant("r", [1, 1, 1 << 62, 4])])
        let e = runError(ir, ["x": x4])
        #expect(e?.kind == .limitExceeded)
        #expect(e?.description == "node 't' (Tile): repeats [1, 1, 4611686018427387904, 4] of shape [1, 1, 2, 2]: more elements than a 64-bit count can hold")
    }

    @Test func rangeOfAlmostEveryInt64IsRefused() {
        let ir = IRModel(graph: IRGraph(name: "g", inputs: [IRValueInfo(name: "limit", elementType: .int64, shape: [])],
                                        outputs: [IRValueInfo(name: "y", elementType: .int64, shape: nil)],
                                        nodes: [IRNode(name: "range", opType: "Range", inputs: ["start", "limit", "delta"], outputs: ["y"])],
                                        constants: [Self.int64Constant("start", [Int64.min]).scalar, Self.int64Constant("delta", [1]).scalar]),
                         opsets: [IROpset(domain: "", version: 13)])
        let huge = runError(ir, ["limit": MBTensor(Int64.max)])
        #expect(huge?.kind == .limitExceeded)
        #expect(huge?.description == "node 'range' (Range): Range from -9223372036854775808 to 9223372036854775807 by 1 has more elements than a 64-bit count can hold")
        let large = runError(ir, ["limit": MBTensor(Int64.min + 1 << 40)])
        #expect(large?.description == "node 'range' (Range): output shape [1099511627776] of int64 needs 8796093022208 bytes, more than the limit of 4294967296 (MBSession.Options.maxTensorBytes)")
        #expect(runError(ir, ["limit": MBTensor(Int64.min + 3)]) == nil)
    }

    @Test func constantOverTheLoadLimitIsNamedWhenUsed() {
        let ir = Self.model(IRNode(name: "add", opType: "Add", inputs: ["x", "w"], outputs: ["y"]), x: [.fixed(1000)],
                            constants: [Self.floatConstant("w", [Float](repeating: 1, count: 1000))])
        #expect(throws: Never.self) { try MBModel(ir: ir, options: .init(maxTensorBytes: 4000)) }
        #expect {
            try MBModel(ir: ir, options: .init(maxTensorBytes: 3999))
        } throws: { error in
            let e = error as? MBRuntimeError
            return e?.kind == .limitExceeded
                && e?.description == "node 'add' (Add): constant 'w': shape [1000] needs 4000 bytes at run time, more than the limit of 3999 (MBModel.Options.maxTensorBytes)"
        }
    }

    @Test func foldOverTheLoadLimitIsLeftForRunTime() throws {
        // ConstantOfShape of constant [512, 512]: 1 MiB of float, folded at load unless the
        // model's limit is lower; then it runs (and is checked) at run time.
        let ir = Self.model(IRNode(name: "c", opType: "ConstantOfShape", inputs: ["s"], outputs: ["y"]), x: [.fixed(1)],
                            constants: [Self.int64Constant("s", [512, 512])])
        #expect(try MBModel(ir: ir).foldedNodeCount == 1)
        let model = try MBModel(ir: ir, options: .init(maxTensorBytes: 1 << 19))
        #expect(model.foldedNodeCount == 0)
        #expect(try model.makeSession().run(["x": MBTensor(shape: [1], floats: [0])])["y"]?.shape == [512, 512])
        #expect {
            try model.makeSession(.init(maxTensorBytes: 1 << 19)).run(["x": MBTensor(shape: [1], floats: [0])])
        } throws: { error in
            "\(error)" == "node 'c' (ConstantOfShape): output shape [512, 512] of float needs 1048576 bytes, more than the limit of 524288 (MBSession.Options.maxTensorBytes)"
        }
    }

    @Test func deeplyNestedSubgraphsAreRefusedAtLoad() {
        func nested(_ levels: Int) -> IRModel {
            let leaf = IRGraph(name: "leaf", outputs: [IRValueInfo(name: "x", elementType: .float, shape: nil)])
            var g = leaf
            for level in 0..<levels {
                let node = IRNode(name: "if\(level)", opType: "If", inputs: ["c"], outputs: ["y\(level)"],
                                  attributes: [IRAttribute(name: "then_branch", value: .graph(g)), IRAttribute(name: "else_branch", value: .graph(leaf))])
                g = IRGraph(name: "g\(level)", outputs: [IRValueInfo(name: "y\(level)", elementType: .float, shape: nil)], nodes: [node])
            }
            g.inputs = [IRValueInfo(name: "c", elementType: .bool, shape: []), IRValueInfo(name: "x", elementType: .float, shape: nil)]
            return IRModel(graph: g, opsets: [IROpset(domain: "", version: 13)])
        }
        // The main graph is level 1: four Ifs put the innermost branch at level 5.
        #expect(throws: Never.self) { try MBModel(ir: nested(3), options: .init(maxGraphDepth: 4)) }
        #expect(throws: Never.self) { try MBModel(ir: nested(63)) }
        #expect {
            try MBModel(ir: nested(4), options: .init(maxGraphDepth: 4))
        } throws: { error in
            let e = error as? MBRuntimeError
            return e?.kind == .limitExceeded
                && e?.description == "node 'if0' then_branch: subgraphs nested deeper than 4 levels (MBModel.Options.maxGraphDepth)"
        }
    }
}

extension RuntimeLimitTests {
    @Test func absurdWindowAttributesAreRefusedAtLoad() {
        func conv(_ attributes: [IRAttribute]) -> IRModel {
            Self.model(IRNode(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: attributes),
                       x: [.fixed(1), .fixed(1), .fixed(2), .fixed(2)],
                       constants: [Self.floatConstant("w", [1], shape: [1, 1, 1, 1])])
        }
        func loadError(_ ir: IRModel) -> String? {
            do { _ = try MBModel(ir: ir); return nil } catch { return error.description }
        }
        #expect(loadError(conv([])) == nil)
        #expect(loadError(conv([IRAttribute(name: "group", value: .int(1 << 40))]))
            == "node 'conv' (Conv): group must be in 1...16777216, got 1099511627776")
        #expect(loadError(conv([IRAttribute(name: "strides", value: .ints([0, 1]))]))
            == "node 'conv' (Conv): strides [0, 1]: 0 is outside 1...16777216")
        #expect(loadError(conv([IRAttribute(name: "dilations", value: .ints([1, 1 << 50]))]))
            == "node 'conv' (Conv): dilations [1, 1125899906842624]: 1125899906842624 is outside 1...16777216")
    }
}

extension IRTensor {
    /// The same one-element tensor as a scalar (shape []).
    var scalar: IRTensor { IRTensor(name: name, elementType: elementType, shape: [], storage: storage) }
}
