@testable import MBConvert
import MBCore
import MBFormat
import Testing

/// `verify` compares binarized activations as the spec they decode to: a file written before P
/// was stored as doubles (float32 fractions) still verifies, and a different P does not.
@Suite struct ActivationComparisonTests {
    static let spec = ActivationSpec(distribution: try! BitDistribution(bits: [1, 2, 3], fractions: [0.7, 0.2, 0.1]))

    static func model(_ attributes: [IRAttribute]) -> IRModel {
        let node = IRNode(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: attributes)
        return IRModel(graph: IRGraph(name: "g", nodes: [node]), opsets: [IROpset(domain: "", version: 13)])
    }

    @Test func float32FractionsOfAnOlderFileMatch() {
        let older = [IRAttribute(name: ActivationAttributes.bits, value: .ints([1, 2, 3])),
                     IRAttribute(name: ActivationAttributes.fractions, value: .floats([0.7, 0.2, 0.1])),
                     IRAttribute(name: ActivationAttributes.method, value: .string(Array("middle-out".utf8))),
                     IRAttribute(name: ActivationAttributes.granularity, value: .string(Array("element".utf8)))]
        let d = ModelComparison.differences(expected: Self.model(ActivationAttributes.encode(Self.spec)), stored: Self.model(older))
        #expect(d.isEmpty, "\(d)")
    }

    @Test func anotherDistributionDiffers() throws {
        let other = ActivationSpec(distribution: try BitDistribution(bits: [1, 2, 3], fractions: [0.6, 0.3, 0.1]))
        let d = ModelComparison.differences(expected: Self.model(ActivationAttributes.encode(Self.spec)),
                                            stored: Self.model(ActivationAttributes.encode(other)))
        #expect(d.count == 1 && d[0].contains("binarized activations: stored"), "\(d)")
    }
}
