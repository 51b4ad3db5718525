#if canImport(Glibc)
import Glibc
#endif
import Foundation
import MBCore
import MBFormat
import Testing

/// The reader's resource limits: each refused before anything is sized from the value, with an
/// error naming the file, the place and the limit.
@Suite struct LimitTests {
    func write(_ model: IRModel) -> [UInt8] {
        let path = FormatFixtures.temporaryPath("m.mbm")
        _ = try! MBMWriter().write(model: model, metadata: [], to: path)
        return [UInt8](try! Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func error(_ bytes: [UInt8], _ options: MBMFile.Options = .init()) -> MBMError? {
        do {
            _ = try MBMFile.parse(bytes, name: "t.mbm", options: options)
            return nil
        } catch {
            return error
        }
    }

    /// The file with the first tensor's directory shape replaced (same rank) and CRCs fixed.
    func withFirstShape(_ bytes: [UInt8], _ dims: [Int64]) -> [UInt8] {
        var b = bytes
        func u64(_ o: Int) -> Int { Int(b.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }) }
        func u32(_ o: Int) -> Int { Int(b.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }) }
        func put32(_ v: UInt32, _ o: Int) { withUnsafeBytes(of: v.littleEndian) { b.replaceSubrange(o..<(o + 4), with: $0) } }
        let table = u64(24), count = u32(32)
        for i in 0..<count where u32(table + i * 32) == Int(SectionTag.tensorDirectory.rawValue) {
            let dir = u64(table + i * 32 + 8), length = u64(table + i * 32 + 16)
            // u32 tensor count, u32 name length, name, i32 type, u32 rank, then the dims.
            let nameLength = u32(dir + 4)
            var at = dir + 8 + nameLength + 4
            #expect(u32(at) == dims.count)
            at += 4
            for d in dims {
                withUnsafeBytes(of: d.littleEndian) { b.replaceSubrange(at..<(at + 8), with: $0) }
                at += 8
            }
            put32(CRC32.checksum(Array(b[dir..<(dir + length)])), table + i * 32 + 24)
        }
        put32(CRC32.checksum(Array(b[table..<(table + count * 32)])), 36)
        put32(CRC32.checksum(Array(b[0..<60])), 60)
        return b
    }

    var smallModel: IRModel {
        FormatFixtures.model(constants: [FormatFixtures.dense("w", .float, shape: [4, 25], seed: 1)])
    }

    @Test func tensorDeclaringATrillionElementsIsRefused() {
        let b = withFirstShape(write(smallModel), [1_000_000, 1_000_000])
        let e = error(b)
        #expect(e?.kind == .limitExceeded)
        #expect(e?.description == "t.mbm: tensor 0 'w': shape [1000000, 1000000] declares 1000000000000 elements, more than the limit of 4294967296 (MBMFile.Options.maxTensorElements)")
    }

    @Test func tensorElementLimitIsAnOption() {
        let b = write(smallModel)
        #expect(error(b, .init(maxTensorElements: 100)) == nil)
        #expect(error(b, .init(maxTensorElements: 99))?.description
            == "t.mbm: tensor 0 'w': shape [4, 25] declares 100 elements, more than the limit of 99 (MBMFile.Options.maxTensorElements)")
    }

    @Test func shapeWhoseElementCountOverflowsIsRefused() {
        let e = error(withFirstShape(write(smallModel), [1 << 32, 1 << 32]))
        #expect(e?.kind == .limitExceeded)
        #expect(e?.description == "t.mbm: tensor 0 'w': element count of shape [4294967296, 4294967296] overflows")
    }

    @Test func nodeLimitCountsSubgraphs() {
        // The fixture's main graph has one node; its three bodies (then_branch, gs[0], gs[1]) one each.
        let b = write(FormatFixtures.model(constants: [FormatFixtures.dense("w", .float, shape: [2], seed: 1)], subgraph: true))
        #expect(error(b, .init(maxNodes: 4)) == nil)
        let e = error(b, .init(maxNodes: 3))
        #expect(e?.kind == .limitExceeded)
        #expect(e?.message == "more than 3 nodes in the graph and its subgraphs (MBMFile.Options.maxNodes)")
        #expect(e?.place?.hasPrefix("section GRPH at byte ") == true)
    }

    @Test func defaultNodeLimitIsAMillion() {
        #expect(MBMFile.Options().maxNodes == 1_000_000)
        #expect(MBMFile.Options().maxTensorElements == 1 << 32)
    }

    @Test func deeplyNestedSubgraphsAreRefused() {
        func nested(_ levels: Int) -> IRModel {
            var g = IRGraph(name: "leaf")
            for level in 0..<levels {
                let node = IRNode(name: "if\(level)", opType: "If", inputs: ["c"], outputs: ["y"],
                                  attributes: [IRAttribute(name: "then_branch", value: .graph(g))])
                g = IRGraph(name: "g\(level)", nodes: [node])
            }
            return IRModel(graph: g, opsets: [])
        }
        #expect(error(write(nested(MBMLayout.maxGraphDepth - 1))) == nil)
        let e = error(write(nested(MBMLayout.maxGraphDepth)))
        #expect(e?.kind == .limitExceeded)
        #expect(e?.message == "subgraphs nested deeper than 64 levels (MBMLayout.maxGraphDepth)")
    }
}

/// A writer killed by SIGKILL where O_TMPFILE is not available leaves `<out>.partial-<pid>`;
/// the next write to the same output removes those whose process is gone, and only those.
@Suite struct StalePartialFileTests {
    @Test func partialFilesOfDeadProcessesAreRemoved() throws {
        let out = FormatFixtures.temporaryPath("m.mbm")
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let stale = MBMWriter.partialPath(for: out, pid: dead.processIdentifier)
        let live = MBMWriter.partialPath(for: out, pid: getpid())
        let other = out + ".partial-notapid"
        for p in [stale, live, other] { _ = FileManager.default.createFile(atPath: p, contents: Data("partial".utf8)) }
        _ = try MBMWriter().write(model: FormatFixtures.model(constants: [FormatFixtures.dense("w", .float, shape: [2], seed: 1)]),
                                  metadata: [], to: out)
        #expect(!FileManager.default.fileExists(atPath: stale))
        #expect(FileManager.default.fileExists(atPath: live))
        #expect(FileManager.default.fileExists(atPath: other))
        #expect(try MBMFile.open(path: out).tensors.map(\.name) == ["w", "attr_tensor"])
    }
}
