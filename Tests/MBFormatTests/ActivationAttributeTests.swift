import MBCore
import MBFormat
import Testing

/// A layer's input binarization survives encode → write → read → decode exactly, and files that
/// stored the fractions as float32 still read as the decimals their policies wrote.
@Suite struct ActivationAttributeTests {
    /// Fractions float32 cannot hold, and one (1/3) that six decimals cannot either.
    static let specs: [ActivationSpec] = [
        ActivationSpec(distribution: try! BitDistribution(bits: [1, 2, 3], fractions: [0.7, 0.2, 0.1])),
        ActivationSpec(distribution: try! BitDistribution(bits: [1, 2], fractions: [1.0 / 3, 2.0 / 3]), granularity: .group(8)),
        ActivationSpec(distribution: try! BitDistribution(bits: [2], fractions: [1])),
    ]

    @Test(arguments: specs)
    func exactThroughAFile(_ spec: ActivationSpec) throws {
        let node = IRNode(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: ActivationAttributes.encode(spec))
        let graph = IRGraph(name: "g", inputs: [IRValueInfo(name: "x", elementType: .float, shape: nil)],
                            outputs: [IRValueInfo(name: "y", elementType: .float, shape: nil)], nodes: [node],
                            constants: [FormatFixtures.dense("w", .float, shape: [1, 1, 1, 1], seed: 1)])
        let path = FormatFixtures.temporaryPath("activations.mbm")
        _ = try MBMWriter().write(model: IRModel(graph: graph, opsets: [IROpset(domain: "", version: 13)]), metadata: [], to: path)
        let read = try MBMFile.open(path: path).model.graph.nodes[0].attributes
        let decoded = try #require(try ActivationAttributes.decode(read), "\(read)")
        #expect(decoded == spec, "\(decoded) != \(spec)")
        #expect(decoded.fractions.map(\.bitPattern) == spec.fractions.map(\.bitPattern))
    }

    /// The float32 form written before: rounded to 6 decimals on read, as it always was.
    @Test func float32FractionsOfOlderFilesStillRead() throws {
        let attributes = [
            IRAttribute(name: ActivationAttributes.bits, value: .ints([1, 2, 3])),
            IRAttribute(name: ActivationAttributes.fractions, value: .floats([0.7, 0.2, 0.1])),
        ]
        let decoded = try #require(try ActivationAttributes.decode(attributes))
        #expect(decoded.fractions == [0.7, 0.2, 0.1])
        #expect(decoded.granularity == .element)
    }

    @Test func fractionsOfAnotherKindAreRefused() {
        let attributes = [
            IRAttribute(name: ActivationAttributes.bits, value: .ints([1, 2])),
            IRAttribute(name: ActivationAttributes.fractions, value: .ints([1, 1])),
        ]
        #expect(throws: ActivationAttributes.Problem.self) { try ActivationAttributes.decode(attributes) }
    }
}
