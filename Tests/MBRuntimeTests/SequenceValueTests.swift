import MBCore
import MBRuntime
import XCTest

/// Sequences and optionals through the session API: graph inputs and outputs of those kinds,
/// the operators that make and read them, and clear errors where a kind does not fit.
final class SequenceValueTests: XCTestCase {
    static func node(_ op: String, _ inputs: [String], _ outs: [String], _ attributes: [IRAttribute] = []) -> IRNode {
        IRNode(name: outs[0], opType: op, inputs: inputs, outputs: outs, attributes: attributes)
    }

    /// seq (a sequence input) with x inserted at the front, its length, its element 1, the
    /// concatenation of the new sequence, an optional of it and whether that has an element.
    static func model() -> IRModel {
        let zero = IRTensor(name: "zero", elementType: .int64, shape: [], storage: .dense(ByteSlice(copying: [UInt8](repeating: 0, count: 8))))
        let one = IRTensor(name: "one", elementType: .int64, shape: [], storage: .dense(ByteSlice(copying: [1, 0, 0, 0, 0, 0, 0, 0])))
        let nodes = [
            node("SequenceInsert", ["seq", "x", "zero"], ["inserted"]),
            node("SequenceLength", ["inserted"], ["length"]),
            node("SequenceAt", ["inserted", "one"], ["second"]),
            node("ConcatFromSequence", ["inserted"], ["joined"], [IRAttribute(name: "axis", value: .int(0))]),
            node("SequenceErase", ["inserted"], ["erased"]),
            node("Optional", ["erased"], ["maybe"]),
            node("OptionalHasElement", ["maybe"], ["has"]),
        ]
        let seqType = IRType.sequence(.tensor(.float, shape: [.unknown]))
        let outputs = ["inserted", "length", "second", "joined", "maybe", "has"].map { name in
            IRValueInfo(name: name, elementType: nil, shape: nil, nonTensorType: name == "inserted" ? seqType : name == "maybe" ? .optional(seqType) : nil)
        }
        return IRModel(graph: IRGraph(name: "g", inputs: [IRValueInfo(name: "seq", elementType: nil, shape: nil, nonTensorType: seqType),
                                                          IRValueInfo(name: "x", elementType: .float, shape: [.unknown])],
                                      outputs: outputs, nodes: nodes, constants: [zero, one]),
                       opsets: [IROpset(domain: "", version: 21)])
    }

    func testSequencesAndOptionalsThroughTheSessionAPI() throws {
        let model = try MBModel(ir: Self.model())
        XCTAssertEqual(model.inputs[0].nonTensorType, .sequence(.tensor(.float, shape: [.unknown])))
        let seq = MBSequence([MBTensor(shape: [2], floats: [1, 2]), MBTensor(shape: [1], floats: [3])])
        let out = try model.makeSession().run(values: ["seq": .sequence(seq), "x": .tensor(MBTensor(shape: [3], floats: [7, 8, 9]))])
        let inserted = try XCTUnwrap(out["inserted"]?.sequence)
        XCTAssertEqual(inserted.tensors.map(\.floats), [[7, 8, 9], [1, 2], [3]])
        XCTAssertEqual(out["length"]?.tensor?.int64s, [3])
        XCTAssertEqual(out["second"]?.tensor?.floats, [1, 2])
        XCTAssertEqual(out["joined"]?.tensor?.floats, [7, 8, 9, 1, 2, 3])
        guard case .optional(.sequence(let kept)?)? = out["maybe"] else { return XCTFail("maybe: \(String(describing: out["maybe"]))") }
        XCTAssertEqual(kept.tensors.map(\.floats), [[7, 8, 9], [1, 2]])
        XCTAssertEqual(out["has"]?.tensor?.bools, [true])
    }

    func testKindsThatDoNotFitAreClearErrors() throws {
        let model = try MBModel(ir: Self.model())
        let x = MBTensor(shape: [1], floats: [1])
        // A tensor where the graph declares a sequence.
        XCTAssertThrowsError(try model.makeSession().run(values: ["seq": .tensor(x), "x": .tensor(x)])) { e in
            XCTAssertTrue("\(e)".contains("input 'seq': expected seq(tensor(float)"), "\(e)")
        }
        // A sequence of the wrong element type.
        let ints = MBSequence([MBTensor(shape: [1], int64s: [1])])
        XCTAssertThrowsError(try model.makeSession().run(values: ["seq": .sequence(ints), "x": .tensor(x)])) { e in
            XCTAssertTrue("\(e)".contains("expected a sequence of float, got one of int64"), "\(e)")
        }
        // The tensor-only API cannot return a sequence output: it says which call can.
        let tensorOnly = try MBModel(ir: {
            var ir = Self.model()
            ir.graph.inputs.removeFirst()
            ir.graph.nodes = [Self.node("SequenceConstruct", ["x", "x"], ["inserted"])]
            ir.graph.outputs = [IRValueInfo(name: "inserted", elementType: nil, shape: nil)]
            return ir
        }())
        XCTAssertThrowsError(try tensorOnly.makeSession().run(["x": x])) { e in
            XCTAssertTrue("\(e)".contains("output 'inserted' is a sequence, not a tensor; run(values:) returns it"), "\(e)")
        }
        XCTAssertEqual(try tensorOnly.makeSession().run(values: ["x": .tensor(x)])["inserted"]?.sequence?.count, 2)
        // An out-of-range position names the sequence's length.
        let at = try MBModel(ir: {
            var ir = Self.model()
            ir.graph.nodes = [Self.node("SequenceAt", ["seq", "one"], ["second"])]
            ir.graph.outputs = [IRValueInfo(name: "second", elementType: nil, shape: nil)]
            return ir
        }())
        XCTAssertThrowsError(try at.makeSession().run(values: ["seq": .sequence(MBSequence([x])), "x": .tensor(x)])) { e in
            XCTAssertTrue("\(e)".contains("position 1 is out of range for a sequence of 1 tensors"), "\(e)")
        }
    }
}
