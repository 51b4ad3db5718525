import MBCore
import MBKernels
import MBRuntime
import XCTest

/// uint64 values at and above 2^63 (held as their int64 bit pattern) compared, divided, taken
/// the maximum of and cast to and from float as unsigned numbers, also after a type-preserving
/// operator (the declared type carried through the graph).
final class UnsignedTests: XCTestCase {
    static func u64(_ values: [UInt64]) -> [Int64] { values.map { Int64(bitPattern: $0) } }

    func testUInt64AboveTwoToThe63() throws {
        let xs: [UInt64] = [(1 << 63) + 5, 3, .max], ys: [UInt64] = [4, 1 << 63, 2]
        let y = IRTensor(name: "y", elementType: .uint64, shape: [3],
                         storage: .dense(ByteSlice(copying: ys.flatMap { withUnsafeBytes(of: $0.littleEndian) { Array($0) } })))
        func node(_ op: String, _ inputs: [String], _ out: String, _ attributes: [IRAttribute] = []) -> IRNode {
            IRNode(name: out, opType: op, inputs: inputs, outputs: [out], attributes: attributes)
        }
        let toFloat = IRAttribute(name: "to", value: .int(Int64(ElementType.float.rawValue)))
        let toU64 = IRAttribute(name: "to", value: .int(Int64(ElementType.uint64.rawValue)))
        let nodes = [
            node("Less", ["x", "y"], "less"), node("Div", ["x", "y"], "div"), node("Max", ["x", "y"], "max"),
            node("Cast", ["x"], "float", [toFloat]), node("Identity", ["x"], "same"), node("Greater", ["same", "y"], "greater"),
            node("Cast", ["float"], "back", [toU64]),
        ]
        let outputs: [(String, ElementType)] = [("less", .bool), ("div", .uint64), ("max", .uint64), ("float", .float), ("greater", .bool), ("back", .uint64)]
        let ir = IRModel(graph: IRGraph(name: "g", inputs: [IRValueInfo(name: "x", elementType: .uint64, shape: [.fixed(3)])],
                                        outputs: outputs.map { IRValueInfo(name: $0.0, elementType: $0.1, shape: nil) }, nodes: nodes, constants: [y]),
                         opsets: [IROpset(domain: "", version: 21)])
        let out = try MBModel(ir: ir).makeSession().run(["x": MBTensor(shape: [3], int64s: Self.u64(xs))])
        XCTAssertEqual(try XCTUnwrap(out["less"]).bools, [false, true, false])
        XCTAssertEqual(try XCTUnwrap(out["greater"]).bools, [true, false, true])
        XCTAssertEqual(try XCTUnwrap(out["div"]).int64s, Self.u64([((1 << 63) + 5) / 4, 0, UInt64.max / 2]))
        XCTAssertEqual(try XCTUnwrap(out["max"]).int64s, Self.u64([(1 << 63) + 5, 1 << 63, .max]))
        XCTAssertEqual(try XCTUnwrap(out["float"]).floats, [0x1p63, 3, 0x1p64])
        // 2^64 as a float is out of uint64's range (undefined in the spec): saturated.
        XCTAssertEqual(try XCTUnwrap(out["back"]).int64s, Self.u64([1 << 63, 3, .max]))
    }

    /// ArgMax/ArgMin, every integer reduction, TopK and Unique on uint64 values on both sides of
    /// 2^63 and on int64 values beyond 2^53 (where a Double would round): exact.
    func testUInt64ReductionsSortsAndArgs() throws {
        let xs: [UInt64] = [3, (1 << 63) + 1, .max, 1 << 63, 0, (1 << 63) + 1]
        let big: [Int64] = [(1 << 53) + 1, (1 << 53), -(1 << 62), (1 << 53) + 1]
        func node(_ op: String, _ inputs: [String], _ outs: [String], _ attributes: [IRAttribute] = []) -> IRNode {
            IRNode(name: outs[0], opType: op, inputs: inputs, outputs: outs, attributes: attributes)
        }
        let keep0 = IRAttribute(name: "keepdims", value: .int(0))
        let k = IRTensor(name: "k", elementType: .int64, shape: [1], storage: .dense(ByteSlice(copying: withUnsafeBytes(of: Int64(3).littleEndian) { Array($0) })))
        var nodes = ["ReduceMax", "ReduceMin", "ReduceSum", "ReduceMean", "ReduceProd", "ReduceL1", "ReduceSumSquare"].map { node($0, ["x"], [$0], [keep0]) }
        nodes += [node("ArgMax", ["x"], ["ArgMax"], [keep0]), node("ArgMin", ["x"], ["ArgMin"], [keep0]),
                  node("TopK", ["x", "k"], ["top", "topIndex"]),
                  node("TopK", ["x", "k"], ["bottom", "bottomIndex"], [IRAttribute(name: "largest", value: .int(0))]),
                  node("Unique", ["x"], ["unique", "uniqueFirst", "uniqueInverse", "uniqueCounts"]),
                  node("ArgMax", ["b"], ["bigArgMax"], [keep0]), node("ReduceSum", ["b"], ["bigSum"], [keep0]),
                  node("ReduceMax", ["b"], ["bigMax"], [keep0]), node("TopK", ["b", "k"], ["bigTop", "bigTopIndex"])]
        let outputs = nodes.flatMap(\.outputs)
        let ir = IRModel(graph: IRGraph(name: "g", inputs: [IRValueInfo(name: "x", elementType: .uint64, shape: [.fixed(6)]),
                                                            IRValueInfo(name: "b", elementType: .int64, shape: [.fixed(4)])],
                                        outputs: outputs.map { IRValueInfo(name: $0, elementType: nil, shape: nil) }, nodes: nodes, constants: [k]),
                         opsets: [IROpset(domain: "", version: 21)])
        for variant in KernelVariant.allCases {
            let out = try MBModel(ir: ir).makeSession(.init(kernels: variant))
                .run(["x": MBTensor(shape: [6], int64s: Self.u64(xs)), "b": MBTensor(shape: [4], int64s: big)])
            func ints(_ name: String) throws -> [Int64] { try XCTUnwrap(out[name], "\(name)").int64s }
            let sum = xs.reduce(UInt64(0), &+)
            XCTAssertEqual(try ints("ReduceMax"), Self.u64([.max]))
            XCTAssertEqual(try ints("ReduceMin"), [0])
            XCTAssertEqual(try ints("ReduceSum"), Self.u64([sum]))
            // The exact 128-bit sum divided by 6, not the wrapped 64-bit one.
            let exact = xs.reduce(UInt128(0)) { $0 + UInt128($1) } / 6
            XCTAssertEqual(try ints("ReduceMean"), Self.u64([UInt64(exact)]))
            XCTAssertEqual(try ints("ReduceProd"), Self.u64([xs.reduce(UInt64(1), &*)]))
            XCTAssertEqual(try ints("ReduceL1"), Self.u64([sum]))
            XCTAssertEqual(try ints("ReduceSumSquare"), Self.u64([xs.reduce(UInt64(0)) { $0 &+ $1 &* $1 }]))
            XCTAssertEqual(try ints("ArgMax"), [2])
            XCTAssertEqual(try ints("ArgMin"), [4])
            XCTAssertEqual(try ints("top"), Self.u64([.max, (1 << 63) + 1, (1 << 63) + 1]))
            XCTAssertEqual(try ints("topIndex"), [2, 1, 5])
            XCTAssertEqual(try ints("bottom"), Self.u64([0, 3, 1 << 63]))
            XCTAssertEqual(try ints("bottomIndex"), [4, 0, 3])
            XCTAssertEqual(try ints("unique"), Self.u64([0, 3, 1 << 63, (1 << 63) + 1, .max]))
            XCTAssertEqual(try ints("uniqueFirst"), [4, 0, 3, 1, 2])
            XCTAssertEqual(try ints("uniqueInverse"), [1, 3, 4, 2, 0, 3])
            XCTAssertEqual(try ints("uniqueCounts"), [1, 1, 1, 2, 1])
            XCTAssertEqual(try ints("bigArgMax"), [0])
            XCTAssertEqual(try ints("bigSum"), [big.reduce(0, &+)])
            XCTAssertEqual(try ints("bigMax"), [(1 << 53) + 1])
            XCTAssertEqual(try ints("bigTop"), [(1 << 53) + 1, (1 << 53) + 1, 1 << 53])
            XCTAssertEqual(try ints("bigTopIndex"), [0, 3, 1])
        }
    }
}
