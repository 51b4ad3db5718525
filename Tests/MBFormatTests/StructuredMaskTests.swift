import Foundation
import MBCore
import MBFormat
import TestSupport
import Testing

/// Mask coding 2: a structured mask (one width per group of entries along the reduction axis)
/// is stored one symbol per block, and reads back exactly, eagerly and lazily.
@Suite struct StructuredMaskTests {
    /// A weight layout as the converter's structured masks see it (see `MaskGroups.weight`).
    struct Layout: CustomStringConvertible {
        var name: String
        var shape: [Int]
        var rows: Int, taps: Int, channels: Int, rowStride: Int, tapStride: Int, channelStride: Int
        var description: String { "\(name) \(shape)" }

        static func conv(_ o: Int, _ c: Int, _ kh: Int, _ kw: Int) -> Layout {
            Layout(name: "Conv", shape: [o, c, kh, kw], rows: o, taps: kh * kw, channels: c, rowStride: c * kh * kw, tapStride: 1, channelStride: kh * kw)
        }
        /// MatMul / Gemm weight [K, N]: N outputs, reduction along axis 0.
        static func kn(_ k: Int, _ n: Int) -> Layout {
            Layout(name: "MatMul", shape: [k, n], rows: n, taps: 1, channels: k, rowStride: 1, tapStride: 0, channelStride: n)
        }
        /// Gemm with transB: [N, K].
        static func nk(_ n: Int, _ k: Int) -> Layout {
            Layout(name: "Gemm transB", shape: [n, k], rows: n, taps: 1, channels: k, rowStride: k, tapStride: 0, channelStride: 1)
        }
    }

    /// A mask with one random width (1...levels) per group of `granularity`.
    static func mask(_ l: Layout, _ granularity: MaskGranularity, levels: Int, seed: UInt64) -> [UInt8] {
        let groups = MaskGroups.weight(rows: l.rows, taps: l.taps, channels: l.channels, rowStride: l.rowStride, tapStride: l.tapStride,
                                       channelStride: l.channelStride, granularity: granularity)!
        var rng = SeededGenerator(seed: seed)
        let widths = (0..<groups.count).map { _ in UInt8(1 + Int(rng.next() % UInt64(levels))) }
        return groups.ids.map { widths[Int($0)] }
    }

    static func write(_ tensors: [(String, PackedTensor)]) throws -> String {
        let constants = tensors.map { IRTensor(name: $0.0, elementType: .float, shape: $0.1.shape, storage: .binarized($0.1)) }
        let path = FormatFixtures.temporaryPath("structured.mbm")
        _ = try MBMWriter().write(model: FormatFixtures.model(constants: constants), metadata: [], to: path)
        return path
    }

    static let cases: [(Layout, MaskGranularity)] = [
        (.conv(8, 16, 3, 3), .group(1)), (.conv(8, 16, 3, 3), .group(3)), (.conv(8, 16, 3, 3), .group(16)), (.conv(8, 16, 3, 3), .channel),
        (.conv(32, 1, 3, 3), .channel), (.conv(6, 1, 3, 3), .group(4)), (.conv(12, 5, 3, 3), .group(2)), (.conv(24, 20, 1, 1), .group(4)),
        (.kn(40, 6), .group(16)), (.kn(40, 6), .group(3)), (.kn(40, 6), .channel), (.nk(6, 40), .group(16)), (.nk(6, 40), .channel),
    ]

    @Test(arguments: cases.indices)
    func structuredMasksRoundTripExactly(_ i: Int) throws {
        let (layout, granularity) = Self.cases[i]
        let mask = Self.mask(layout, granularity, levels: 3, seed: UInt64(100 + i))
        let packed = FormatFixtures.binarized(shape: layout.shape, levels: 3, channelAxis: 0, uniform: false, seed: UInt64(i), mask: mask)
        let path = try Self.write([("w", packed)])
        let whole = try MBMFile.open(path: path)
        let lazy = try MBMFile.openLazily(path: path)
        guard case .binarized(let read) = whole.tensors[0].payload, case .binarized(let lazyRead) = try lazy.tensor(0).payload else {
            Issue.record("not binarized"); return
        }
        #expect(read.mask == mask, "\(layout) \(granularity)")
        // The second reader, written from the format description alone, agrees.
        let spec = SpecReader(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
        #expect(spec.mask(spec.tensor("w")!) == mask.map(Int.init), "\(layout) \(granularity)")
        #expect(read == packed, "\(layout) \(granularity)")
        #expect(lazyRead == read, "\(layout) \(granularity)")
        // Block coding is used exactly when the groups hold more than one entry.
        let perEntry = layout.channels == 1 && granularity != .channel || granularity == .group(1)
        #expect((whole.tensors[0].maskBlocks == nil) == perEntry, "\(layout) \(granularity): blocks \(String(describing: whole.tensors[0].maskBlocks))")
    }

    /// The block sizes found are the groups (or coarser), and the stream is about 1/16 of the
    /// per-entry one for group:16; exact byte counts for this seeded case.
    @Test func group16CostsASixteenth() throws {
        let layout = Layout.conv(64, 64, 3, 3)
        let structured = Self.mask(layout, .group(16), levels: 3, seed: 7)
        var rng = SeededGenerator(seed: 8)
        let perEntry = (0..<structured.count).map { _ in UInt8(1 + Int(rng.next() % 3)) }
        let a = FormatFixtures.binarized(shape: layout.shape, levels: 3, channelAxis: 0, uniform: false, seed: 1, mask: structured)
        let b = FormatFixtures.binarized(shape: layout.shape, levels: 3, channelAxis: 0, uniform: false, seed: 1, mask: perEntry)
        let file = try MBMFile.open(path: try Self.write([("g16", a), ("element", b)]))
        #expect(file.tensors[0].maskBlocks == [1, 16, 1, 1])
        #expect(file.tensors[1].maskBlocks == nil)
        let (g16, element) = (file.tensors[0].maskBytes, file.tensors[1].maskBytes)
        // 36864 entries, 2304 groups, three widths about equally likely: log2(3) bits each.
        #expect(g16 == 460 && element == 7307, "group:16 \(g16) bytes, per entry \(element) bytes")
        #expect(abs(Double(element) / Double(g16) - 16) < 0.2)
    }

    /// Coarsest blocks: the gcd of where the width changes, the whole axis where it never does.
    @Test func coarsestBlocks() {
        func blocks(_ mask: [UInt8], _ shape: [Int]) -> [Int] { mask.withUnsafeBufferPointer { MaskBlocks.coarsest(mask: $0, shape: shape).sizes } }
        #expect(blocks([1, 1, 2, 2, 2, 2, 1, 1], [8]) == [2])
        #expect(blocks([1, 1, 1, 2, 2, 2, 1, 1], [8]) == [3])  // last block shorter
        #expect(blocks([1, 1, 1, 1], [2, 2]) == [2, 2])
        #expect(blocks([1, 2, 1, 2], [2, 2]) == [2, 1])
        #expect(blocks([1, 2, 2, 1], [2, 2]) == [1, 1])
        #expect(blocks([], [0, 3]) == [1, 3])
        let b = try! MaskBlocks(shape: [2, 5], sizes: [1, 2])
        #expect(b.count == 6)
        #expect(b.expand([1, 2, 3, 4, 5, 6]) == [1, 1, 2, 2, 3, 4, 4, 5, 5, 6])
        #expect(b.reduce([1, 1, 2, 2, 3, 4, 4, 5, 5, 6]) == [1, 2, 3, 4, 5, 6])
    }

    /// A damaged block descriptor or stream is a one-line error naming the tensor.
    @Test func damagedBlockDescriptorsAndStreamsAreErrors() throws {
        let layout = Layout.conv(4, 8, 3, 3)
        let packed = FormatFixtures.binarized(shape: layout.shape, levels: 3, channelAxis: 0, uniform: false, seed: 3,
                                              mask: Self.mask(layout, .group(4), levels: 3, seed: 4))
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try Self.write([("w", packed)]))))
        let file = try MBMFile.parse(bytes)
        #expect(file.tensors[0].maskBlocks == [1, 4, 1, 1])
        // The block sizes end the descriptor: find them (u32 1, 4, 1, 1) in the directory.
        let pattern: [UInt8] = [1, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]
        let at = (0...(bytes.count - pattern.count)).first { Array(bytes[$0..<($0 + pattern.count)]) == pattern }!
        func error(_ edit: (inout [UInt8]) -> Void) -> String {
            var b = bytes
            edit(&b)
            do {
                _ = try MBMFile.parse(b, name: "t.mbm", options: .init(verifyChecksums: false))
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        for (size, expected) in [(0, "mask block size 0 along dimension 1"), (9, "mask block size 9 along dimension 1"),
                                 (Int(UInt32.max), "mask block size 4294967295 along dimension 1")] {
            let e = error { b in withUnsafeBytes(of: UInt32(size).littleEndian) { b.replaceSubrange((at + 4)..<(at + 8), with: $0) } }
            #expect(e.contains("'w'") && e.contains(expected) && !e.contains("\n"), "\(e)")
        }
        // A block size that reads a different number of symbols: the stream does not end cleanly.
        let e = error { b in b[at + 4] = 2 }
        #expect(e.contains("'w'") && e.contains("mask"), "\(e)")
        // A damaged stream.
        let data = file.sections.first { $0.tag == .data }!
        let maskStart = data.offset + file.tensors[0].storedBytes - file.tensors[0].maskBytes
        let e2 = error { b in b[maskStart + 5] ^= 0x5A }
        #expect(e2.contains("'w'"), "\(e2)")
    }
}
