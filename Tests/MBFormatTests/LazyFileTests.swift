import Foundation
import MBCore
import MBFormat
import Testing

/// `MBMFile.openLazily`: the same tensors as `MBMFile.open`, decoded one at a time, with the
/// same errors for a damaged payload (at decode time instead of at open).
@Suite struct LazyFileTests {
    /// Raw tensors of several types, strings, binarized tensors (tensor and channel scales,
    /// coded and uniform masks) and int-n and palette tensors, in one file with a subgraph.
    static let path: String = {
        var constants: [IRTensor] = [
            FormatFixtures.dense("f32", .float, shape: [3, 5], seed: 1),
            FormatFixtures.dense("f16", .float16, shape: [7], seed: 2),
            FormatFixtures.dense("i64", .int64, shape: [2, 2], seed: 3),
            IRTensor(name: "names", elementType: .string, shape: [2], storage: .strings([Array("a".utf8), []])),
        ]
        for (k, (levels, axis, uniform)) in [(1, nil as Int?, true), (3, 0, false), (2, 1, false), (8, nil, false)].enumerated() {
            let p = FormatFixtures.binarized(shape: [4, 3, 3], levels: levels, channelAxis: axis, uniform: uniform, seed: UInt64(10 + k))
            constants.append(IRTensor(name: "b\(k)", elementType: .float, shape: [4, 3, 3], storage: .binarized(p)))
        }
        for (k, scheme) in QuantizedTensor.Scheme.allCases.enumerated() {
            let q = QuantizedEncodingTests.fixture(scheme, shape: [5, 3], bits: 3, axis: 0, perGroup: 2, half: k == 0, seed: UInt64(20 + k))
            constants.append(IRTensor(name: "q\(k)", elementType: .float, shape: [5, 3], storage: .quantized(q)))
        }
        let path = FormatFixtures.temporaryPath("lazy.mbm")
        _ = try! MBMWriter().write(model: FormatFixtures.model(constants: constants, subgraph: true),
                                   metadata: [MetadataEntry("producer", .string("tests"))], to: path)
        return path
    }()

    func bytes(_ p: StoredPayload) -> [UInt8]? {
        if case .raw(let b) = p { return b.bytes }
        return nil
    }

    @Test func everyTensorDecodesAsOpenDecodesIt() throws {
        let whole = try MBMFile.open(path: Self.path)
        let lazy = try MBMFile.openLazily(path: Self.path)
        #expect(lazy.entries.count == whole.tensors.count)
        #expect(lazy.metadata == whole.metadata)
        #expect(lazy.sections == whole.sections)
        #expect(lazy.model.graph.nodes.map(\.name) == whole.model.graph.nodes.map(\.name))
        var deferred = 0
        for (i, expected) in whole.tensors.enumerated() {
            let e = lazy.entries[i]
            let t = try lazy.tensor(i)
            #expect(t.name == expected.name && e.name == expected.name)
            #expect(t.elementType == expected.elementType && t.shape == expected.shape && e.shape == expected.shape)
            #expect(t.storedBytes == expected.storedBytes && e.storedBytes == expected.storedBytes)
            #expect(t.maskBytes == expected.maskBytes)
            #expect(t.payload.encoding == expected.payload.encoding && e.encoding == expected.payload.encoding)
            switch (t.payload, expected.payload) {
            case (.raw(let a), .raw(let b)): #expect(a.bytes == b.bytes, "\(e.name)")
            case (.strings(let a), .strings(let b)): #expect(a == b, "\(e.name)")
            case (.binarized(let a), .binarized(let b)):
                #expect(a == b, "\(e.name)")
                #expect(e.decodedBytes >= a.mask.count + a.levels.reduce(0) { $0 + 8 * $1.signs.count }, "\(e.name)")
            case (.quantized(let a), .quantized(let b)):
                #expect(a == b, "\(e.name)")
                #expect(e.decodedBytes >= a.codes.count, "\(e.name)")
            default: Issue.record("\(e.name): decoded as \(t.payload.encoding), open gives \(expected.payload.encoding)")
            }
            // The graph holds a stand-in (empty storage) for what waits to be decoded, and
            // `resolve` gives the decoded tensor for it.
            // (Attribute and subgraph tensors are raw here and not top-level constants.)
            guard let shell = lazy.model.graph.constants.first(where: { $0.name == e.name }) else {
                #expect(!e.isDeferred, "\(e.name)")
                continue
            }
            if e.isDeferred {
                deferred += 1
                guard case .dense(let b) = shell.storage else { Issue.record("\(e.name): stand-in is not dense"); continue }
                #expect(b.count == 0)
                let resolved = try lazy.resolve(shell)
                #expect(resolved.storage.isSameKind(as: whole.model.graph.constants.first { $0.name == e.name }!.storage), "\(e.name)")
            } else if case .dense(let b) = shell.storage {
                #expect(b.bytes == bytes(expected.payload), "\(e.name)")
            }
        }
        #expect(deferred == 6)
        // Everything decoded: the file `open` gives.
        let all = try lazy.decodeAll()
        #expect(all.tensors.count == whole.tensors.count)
        #expect(all.model.graph.constants.map(\.name) == whole.model.graph.constants.map(\.name))
    }

    @Test func aDamagedPayloadIsReportedWhenItIsDecodedWithOpensMessage() throws {
        // NaN in the first scale of the first binarized payload, checksums off: the structure
        // is sound, so the file opens lazily; decoding that tensor fails as `open` fails.
        var b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.path)))
        let lazy = try MBMFile.openLazily(path: Self.path)
        let i = try #require(lazy.entries.firstIndex { $0.encoding == .binarized })
        let at = lazy.entries[i].payloadOffset
        withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { b.replaceSubrange(at..<(at + 4), with: $0) }
        let options = MBMFile.Options(verifyChecksums: false)
        var eager: MBMError?
        do { _ = try MBMFile.parse(b, name: "t.mbm", options: options) } catch { eager = error }
        let damaged = try MBMFile.parseLazily(b, name: "t.mbm", options: options)
        var late: MBMError?
        do { _ = try damaged.tensor(i) } catch { late = error }
        #expect(eager != nil && late == eager, "open: \(String(describing: eager)), lazy: \(String(describing: late))")
        #expect(late?.description == "t.mbm: tensor \(i) '\(lazy.entries[i].name)': level 1 scale of group 0 is nan")
        // Other tensors still decode; with checksums on, opening refuses the file by section.
        #expect(throws: Never.self) { _ = try damaged.tensor(0) }
        #expect(throws: MBMError.self) { _ = try MBMFile.parseLazily(b, name: "t.mbm") }
    }
}

extension IRTensor.Storage {
    func isSameKind(as other: IRTensor.Storage) -> Bool {
        switch (self, other) {
        case (.dense, .dense), (.strings, .strings), (.binarized, .binarized), (.quantized, .quantized): return true
        default: return false
        }
    }
}
