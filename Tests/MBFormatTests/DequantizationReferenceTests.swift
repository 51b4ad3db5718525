import Foundation
import MBCore
import MBFormat
import TestSupport
import Testing

/// `PackedTensor.dequantized()` is what both the runtime and `export-onnx` read weights
/// through, so comparing those two cannot catch a dequantization bug. Here every written
/// binarized tensor is decoded a second time by `SpecReader` (TestSupport: written from
/// Schemas/mbm-format.md alone, its own rANS decoder, group-major order and sign streams) and
/// its values must equal `dequantized()` bit for bit: shapes with tails, channel axes 0, 1 and
/// last, tensor scales, uniform and rANS masks, 1 to 8 levels, float32 and float16 scales.
@Suite struct DequantizationReferenceTests {
    struct Case: Sendable, CustomStringConvertible {
        var shape: [Int], levels: Int, axis: Int?, uniform: Bool, halfScales = false
        var description: String {
            "\(shape) K=\(levels) axis \(axis.map(String.init) ?? "tensor") \(uniform ? "uniform" : "rANS")\(halfScales ? " float16 scales" : "")"
        }
    }

    static let cases: [Case] = {
        var out: [Case] = []
        for shape in [[7], [5, 3], [4, 3, 3], [3, 5, 2, 7], [65, 3]] {
            for levels in [1, 2, 3, 8] {
                for axis in [nil, 0, 1, shape.count - 1] as [Int?] where axis.map({ $0 < shape.count }) ?? true {
                    for uniform in [true, false] {
                        for half in [false, true] {
                            out.append(Case(shape: shape, levels: levels, axis: axis, uniform: uniform, halfScales: half))
                        }
                    }
                }
            }
        }
        return out
    }()

    @Test func everyCaseAgrees() throws {
        var checked = 0
        for (i, c) in Self.cases.enumerated() {
            var packed = FormatFixtures.binarized(shape: c.shape, levels: c.levels, channelAxis: c.axis, uniform: c.uniform, seed: UInt64(100 + i / 2))
            if c.halfScales { packed = try #require(packed.withHalfScales(), "\(c): a scale does not fit float16") }
            let path = FormatFixtures.temporaryPath("deq.mbm")
            _ = try MBMWriter().write(model: FormatFixtures.model(constants: [IRTensor(name: "w", elementType: .float, shape: c.shape, storage: .binarized(packed))]),
                                      metadata: [], to: path)
            let reader = SpecReader(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
            let t = try #require(reader.tensor("w"))
            let spec = reader.dequantize(t)
            let ours = packed.dequantized()
            let first = zip(spec, ours).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
            #expect(spec.count == ours.count && first == nil,
                    "\(c): element \(first?.offset ?? -1): spec \(first?.element.0 ?? .nan), dequantized() \(first?.element.1 ?? .nan)")
            // And what the reader gives back dequantizes the same.
            let stored = try MBMFile.open(path: path).model.graph.constants.first { $0.name == "w" }
            if case .binarized(let q)? = stored?.storage { #expect(q.dequantized().map(\.bitPattern) == spec.map(\.bitPattern), "\(c)") } else { Issue.record("\(c): not read back as binarized") }
            checked += 1
        }
        print("dequantization reference: \(checked) written tensors decoded from the spec, all equal to dequantized() bit for bit")
    }
}
