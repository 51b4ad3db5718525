import Foundation
import MBConvert
import MBCore
import Testing

/// The conversion's fold of DequantizeLinear over integer constants: exact values per axis and per
/// block (int8, int4), the scale's type kept (float16 rounds), a QDQ weight discovered as a
/// weight of its Conv, and bad zero points refused naming the node.
@Suite struct DequantizeFoldTests {
    static func tensor(_ name: String, _ type: ElementType, _ shape: [Int], _ bytes: [UInt8]) -> IRTensor {
        IRTensor(name: name, elementType: type, shape: shape, storage: .dense(ByteSlice(copying: bytes)))
    }

    static func graph(_ constants: [IRTensor], attributes: [IRAttribute] = [], consumer: String = "Conv") -> IRGraph {
        let inputs = constants.count == 3 ? ["q", "s", "z"] : ["q", "s"]
        return IRGraph(name: "g", inputs: [IRValueInfo(name: "x", elementType: .float, shape: nil)], outputs: [IRValueInfo(name: "y", elementType: .float, shape: nil)],
                       nodes: [IRNode(name: "dq", opType: "DequantizeLinear", inputs: inputs, outputs: ["w"], attributes: attributes),
                               IRNode(name: "conv", opType: consumer, inputs: ["x", "w"], outputs: ["y"])],
                       constants: constants)
    }

    static func folded(_ g: IRGraph) throws -> IRTensor {
        let out = try ConstantFolding.fold(g)
        #expect(!out.nodes.contains { $0.opType == "DequantizeLinear" })
        return try #require(out.constants.first { $0.name == "w" })
    }

    /// int8 per output channel (axis 0) with zero points: (q - z) * s exactly.
    @Test func int8PerAxis() throws {
        let q = Self.tensor("q", .int8, [2, 1, 1, 2], [UInt8(bitPattern: -3), 5, 127, UInt8(bitPattern: -128)])
        let s = IRTensor(name: "s", shape: [2], floats: [0.5, 0.25], as: .float)!
        let z = Self.tensor("z", .int8, [2], [1, UInt8(bitPattern: -2)])
        let g = Self.graph([q, s, z], attributes: [IRAttribute(name: "axis", value: .int(0))])
        let discovery = try WeightDiscovery(graph: g)
        #expect(discovery.weights.map(\.name) == ["w"])
        #expect(discovery.weights.first?.source == .folded(op: "DequantizeLinear"))
        let w = try Self.folded(g)
        #expect(w.elementType == .float && w.shape == [2, 1, 1, 2])
        #expect(w.floatValues() == [-2, 2, 32.25, -31.5])
    }

    /// int4 blocked along axis 1 (block 2, a partial last block); float16 scales give a float16 weight.
    @Test func int4BlockedWithFloat16Scale() throws {
        // Codes 1, -2, 7, -8, 3 in row 0 and 0, 1, 2, 3, 4 in row 1: two per byte, low nibble first.
        let q = Self.tensor("q", .int4, [2, 5], [0xE1, 0x87, 0x03, 0x21, 0x43])
        let s = IRTensor(name: "s", shape: [2, 3], floats: [1, 0.5, 2, 0.1, 1, 3], as: .float16)!
        let g = Self.graph([q, s], attributes: [IRAttribute(name: "axis", value: .int(1)), IRAttribute(name: "block_size", value: .int(2))], consumer: "MatMul")
        let w = try Self.folded(g)
        #expect(w.elementType == .float16 && w.shape == [2, 5])
        let half: Float = Float(0.1).roundedToFloat16
        #expect(w.floatValues() == [1, -2, 3.5, -4, 6, 0, half, 2, 3, 12])
    }

    @Test func zeroPointOfAnotherTypeIsRefused() throws {
        let q = Self.tensor("q", .int8, [2], [1, 2]), z = Self.tensor("z", .uint8, [], [1])
        let s = IRTensor(name: "s", shape: [], floats: [0.5], as: .float)!
        #expect { try ConstantFolding.fold(Self.graph([q, s, z])) } throws: { error in
            "\(error)".contains("dq") && "\(error)".contains("x_zero_point is uint8 but x is int8")
        }
    }
}
