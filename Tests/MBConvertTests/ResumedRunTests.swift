@testable import MBConvert
import MBCore
import MBRuntime
import Testing

/// `fit: output`'s graph runs resume from the last fitted layer's input: the graph cut there and
/// fed the held value computes what the whole graph computes.
@Suite struct ResumedRunTests {
    static let opsets = [IROpset(domain: "", version: 11)]

    /// x → Relu → Dropout (value, mask) → Neg → z; with `readMask`, a second reader of the mask.
    static func graph(readMask: Bool) -> IRGraph {
        var nodes = [IRNode(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["r"]),
                     IRNode(name: "drop", opType: "Dropout", inputs: ["r"], outputs: ["y", "mask"]),
                     IRNode(name: "neg", opType: "Neg", inputs: ["y"], outputs: ["z"])]
        if readMask { nodes.append(IRNode(name: "cast", opType: "Cast", inputs: ["mask"], outputs: ["m"], attributes: [IRAttribute(name: "to", value: .int(1))])) }
        return IRGraph(name: "g", inputs: [IRValueInfo(name: "x", elementType: .float, shape: [.fixed(2), .fixed(3)])],
                       outputs: [IRValueInfo(name: "z", elementType: .float, shape: nil)], nodes: nodes)
    }

    @Test func resumedRunMatchesTheWholeRun() throws {
        let x = MBTensor(shape: [2, 3], floats: [-1, 2, -3, 4, 0.5, -0.25])
        let g = Self.graph(readMask: false)
        let whole = try OutputAwareConversion.run(g, exposing: ["y", "z"], opsets: Self.opsets, inputs: ["x": x], threads: 1, transforms: [:])
        let y = try #require(whole["y"])
        let cut = try #require(OutputAwareConversion.resumed(g, at: "y", value: y, inputs: ["x": x]))
        #expect(!cut.graph.nodes.contains { $0.name == "drop" })
        let resumed = try OutputAwareConversion.run(cut.graph, exposing: ["y", "z"], opsets: Self.opsets, inputs: cut.feeds, threads: 1, transforms: [:])
        #expect(resumed["z"]?.floats == whole["z"]?.floats && resumed["y"]?.floats == y.floats)
    }

    /// The producer's other output is read: no cut (the whole graph runs).
    @Test func noCutWhenAnotherOutputIsRead() throws {
        let y = MBTensor(shape: [2, 3], floats: [0, 2, 0, 4, 0.5, 0])
        #expect(OutputAwareConversion.resumed(Self.graph(readMask: true), at: "y", value: y, inputs: [:]) == nil)
        #expect(OutputAwareConversion.resumed(Self.graph(readMask: false), at: "x", value: y, inputs: [:]) == nil)
    }
}
