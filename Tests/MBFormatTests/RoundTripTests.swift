import Foundation
import MBCore
import MBFormat
import Testing

/// Writer → reader is exact for every encoding and element type.
@Suite struct FormatRoundTripTests {
    func writeAndRead(_ model: IRModel, metadata: [MetadataEntry] = []) throws -> (MBMFile, MBMWriter.Summary) {
        let path = FormatFixtures.temporaryPath("m.mbm")
        let summary = try MBMWriter().write(model: model, metadata: metadata, to: path)
        return (try MBMFile.open(path: path), summary)
    }

    func bytes(_ t: IRTensor) -> [UInt8]? {
        if case .dense(let b) = t.storage { return b.bytes }
        return nil
    }

    @Test(arguments: ElementType.allCases.filter { $0 != .string })
    func rawTensorsOfEveryElementType(_ type: ElementType) throws {
        for shape in [[], [0], [1], [3, 5], [2, 3, 7]] as [[Int]] {
            let t = FormatFixtures.dense("w", type, shape: shape, seed: UInt64(type.rawValue))
            let (file, _) = try writeAndRead(FormatFixtures.model(constants: [t]))
            let back = file.model.graph.constants[0]
            #expect(back.elementType == type && back.shape == shape)
            #expect(bytes(back) == bytes(t), "\(type.name) \(shape)")
            // Payloads are 64-byte aligned views of the mapping.
            if case .dense(let b) = back.storage, b.count > 0 {
                #expect(b.withBytes { Int(bitPattern: $0.baseAddress!) % 64 } == 0)
            }
        }
    }

    @Test func stringTensors() throws {
        let t = IRTensor(name: "labels", elementType: .string, shape: [3], storage: .strings([Array("cat".utf8), [], [0, 255]]))
        let (file, _) = try writeAndRead(FormatFixtures.model(constants: [t]))
        guard case .strings(let s) = file.model.graph.constants[0].storage else { Issue.record("not strings"); return }
        #expect(s == [Array("cat".utf8), [], [0, 255]])
    }

    @Test(arguments: [(1, nil as Int?, true), (3, nil, false), (3, 0, false), (2, 1, false), (8, nil, false), (4, 2, true)])
    func binarizedTensors(levels: Int, axis: Int?, uniform: Bool) throws {
        for shape in [[1, 1, 1], [4, 3, 5], [16, 8, 3], [2, 65, 1]] as [[Int]] where axis.map({ $0 < shape.count }) ?? true {
            let payload = FormatFixtures.binarized(shape: shape, levels: levels, channelAxis: axis, uniform: uniform, seed: UInt64(shape.reduce(1, *)))
            let t = IRTensor(name: "w", elementType: .float, shape: shape, storage: .binarized(payload))
            let (file, _) = try writeAndRead(FormatFixtures.model(constants: [t]))
            guard case .binarized(let back) = file.model.graph.constants[0].storage else { Issue.record("not binarized"); return }
            #expect(back == payload, "levels \(levels) axis \(String(describing: axis)) uniform \(uniform) shape \(shape)")
        }
    }

    @Test func graphsAttributesSubgraphsAndMetadata() throws {
        let model = FormatFixtures.model(constants: [FormatFixtures.dense("w", .float, shape: [2, 2], seed: 1)], subgraph: true)
        let metadata = [MetadataEntry("producer", .string("mbconvert test")), MetadataEntry("n", .int(-7)),
                        MetadataEntry("x", .double(0.25)), MetadataEntry("sha", .bytes([1, 2, 3])), MetadataEntry("layers", .json("[]"))]
        let (file, _) = try writeAndRead(model, metadata: metadata)
        #expect(file.metadata == metadata)
        #expect(file.model.opsets == model.opsets)
        let g = file.model.graph
        #expect(g.inputs.map(\.name) == ["x"] && g.inputs[0].shape == [.symbolic("N"), .fixed(4), .unknown])
        #expect(g.outputs[0].shape == nil)
        let n = g.nodes[0]
        #expect(n.inputs == ["x", "w", ""])
        #expect(n.attributes.map(\.name) == ["f", "i", "s", "fs", "is", "ss", "t", "then_branch", "gs"])
        if case .ints(let v)? = n.attribute("is") { #expect(v == [1, -1, 1 << 40]) } else { Issue.record("ints") }
        if case .graph(let body)? = n.attribute("then_branch") {
            #expect(body.nodes[0].opType == "Identity")
            #expect(bytes(body.constants[0]) == bytes(FormatFixtures.dense("inner", .float, shape: [1], seed: 10)))
        } else {
            Issue.record("subgraph")
        }
        if case .graphs(let list)? = n.attribute("gs") { #expect(list.count == 2) } else { Issue.record("graphs") }
    }

    /// The `type` attribute of an `Optional` node (attribute kind 12), nested types and all.
    @Test func typeAttributesRoundTrip() throws {
        var model = FormatFixtures.model(constants: [])
        let types: [IRType] = [.optional(.sequence(.tensor(.float, shape: [.fixed(5), .symbolic("N"), .unknown]))),
                               .optional(.tensor(nil, shape: nil)), .sequence(nil), .other("map")]
        model.graph.nodes[0].attributes = types.enumerated().map { IRAttribute(name: "t\($0.offset)", value: .type($0.element)) }
        let (file, _) = try writeAndRead(model, metadata: [])
        let read = file.model.graph.nodes[0].attributes.map { a -> IRType? in if case .type(let t) = a.value { return t }; return nil }
        #expect(read == types)
    }

    @Test func writingNeverLeavesAPartialFile() throws {
        let path = FormatFixtures.temporaryPath("m.mbm")
        let dir = (path as NSString).deletingLastPathComponent
        var bad = FormatFixtures.binarized(shape: [4], levels: 2, channelAxis: nil, uniform: false, seed: 1)
        bad.levels[1].activeCounts[0] += 1  // disagrees with the mask
        let t = IRTensor(name: "w", elementType: .float, shape: [4], storage: .binarized(bad))
        #expect(throws: MBMError.self) { try MBMWriter().write(model: FormatFixtures.model(constants: [t]), metadata: [], to: path) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }
}
