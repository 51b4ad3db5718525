import Foundation
import MBCore
import MBFormat

/// Small IR models covering every encoding and element type, built in code.
enum FormatFixtures {
    static func temporaryPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbm-tests-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    static func dense(_ name: String, _ type: ElementType, shape: [Int], seed: UInt64) -> IRTensor {
        var rng = SeededGenerator(seed: seed)
        let n = shape.reduce(1, *)
        let bytes = (0..<(type.rawByteCount(elements: n) ?? 0)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        return IRTensor(name: name, elementType: type, shape: shape, storage: .dense(ByteSlice(copying: bytes)))
    }

    /// A valid packed tensor for `shape`: random mask over 1...levels (or every entry at
    /// `levels`), random signs, positive scales.
    /// `mask`, when given, replaces the random one.
    static func binarized(shape: [Int], levels: Int, channelAxis: Int?, uniform: Bool, seed: UInt64, mask given: [UInt8]? = nil) -> PackedTensor {
        var rng = SeededGenerator(seed: seed)
        let n = shape.reduce(1, *)
        let mask: [UInt8] = given ?? (0..<n).map { _ in uniform ? UInt8(levels) : UInt8(1 + Int(rng.next() % UInt64(levels))) }
        let scale: ScaleMode = channelAxis.map { .channel(axis: $0) } ?? .tensor
        let layout = try! GroupLayout(shape: shape, scale: scale)
        var packedLevels: [PackedLevel] = []
        for k in 1...levels {
            var counts = [Int](repeating: 0, count: layout.groupCount)
            for p in 0..<n where Int(mask[layout.flatIndex(ofGroupMajor: p)]) >= k {
                counts[layout.groupSize == 0 ? 0 : p / layout.groupSize] += 1
            }
            let bits = counts.reduce(0, +)
            var words = [UInt64](repeating: 0, count: (bits + 63) / 64)
            for i in 0..<bits where rng.next() & 1 == 1 { words[i / 64] |= 1 << UInt64(i % 64) }
            let scales = (0..<layout.groupCount).map { g in counts[g] == 0 ? 0 : Float(rng.nextUnitDouble()) / Float(k) }
            packedLevels.append(PackedLevel(scales: scales, activeCounts: counts, signs: words))
        }
        return PackedTensor(shape: shape, scale: scale, mask: mask, levels: packedLevels)
    }

    static func model(constants: [IRTensor], subgraph: Bool = false) -> IRModel {
        var g = IRGraph(name: "fixture")
        g.inputs = [IRValueInfo(name: "x", elementType: .float, shape: [.symbolic("N"), .fixed(4), .unknown])]
        g.outputs = [IRValueInfo(name: "y", elementType: .float, shape: nil)]
        g.constants = constants
        var attributes: [IRAttribute] = [
            IRAttribute(name: "f", value: .float(0.5)), IRAttribute(name: "i", value: .int(-3)),
            IRAttribute(name: "s", value: .string(Array("same_upper".utf8))), IRAttribute(name: "fs", value: .floats([1, 2.5])),
            IRAttribute(name: "is", value: .ints([1, -1, 1 << 40])), IRAttribute(name: "ss", value: .strings([[1, 2], []])),
            IRAttribute(name: "t", value: .tensor(dense("attr_tensor", .int64, shape: [2], seed: 9))),
        ]
        if subgraph {
            var body = IRGraph(name: "then")
            body.outputs = [IRValueInfo(name: "z", elementType: .float, shape: [.fixed(1)])]
            body.constants = [dense("inner", .float, shape: [1], seed: 10)]
            body.nodes = [IRNode(name: "id", opType: "Identity", inputs: ["inner"], outputs: ["z"])]
            attributes.append(IRAttribute(name: "then_branch", value: .graph(body)))
            attributes.append(IRAttribute(name: "gs", value: .graphs([body, body])))
        }
        g.nodes = [IRNode(name: "n0", opType: "Conv", domain: "", inputs: ["x", constants.first?.name ?? "", ""], outputs: ["y"], attributes: attributes)]
        return IRModel(graph: g, opsets: [IROpset(domain: "", version: 13), IROpset(domain: "com.example", version: 1)])
    }
}
