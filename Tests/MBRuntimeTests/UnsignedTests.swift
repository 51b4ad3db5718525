import MBCore
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
}
