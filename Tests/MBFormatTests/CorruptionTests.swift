import Foundation
import MBCore
import MBFormat
import Testing

/// One test per way to break a file: each gets a clear error, none crashes the reader.
@Suite struct CorruptionTests {
    /// A small valid file with a binarized and a raw tensor.
    static let valid: [UInt8] = {
        let payload = FormatFixtures.binarized(shape: [4, 3, 3], levels: 3, channelAxis: 0, uniform: false, seed: 42)
        let w = IRTensor(name: "w", elementType: .float, shape: [4, 3, 3], storage: .binarized(payload))
        let path = FormatFixtures.temporaryPath("valid.mbm")
        _ = try! MBMWriter().write(model: FormatFixtures.model(constants: [w, FormatFixtures.dense("b", .float, shape: [4], seed: 2)]),
                                   metadata: [MetadataEntry("producer", .string("tests"))], to: path)
        return [UInt8](try! Data(contentsOf: URL(fileURLWithPath: path)))
    }()

    func error(_ bytes: [UInt8], verify: Bool = true) -> MBMError? {
        do {
            _ = try MBMFile.parse(bytes, name: "t.mbm", options: .init(verifyChecksums: verify))
            return nil
        } catch {
            return error
        }
    }

    func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    func le64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    /// Rewrites header bytes and fixes the header CRC, so only the intended field is wrong.
    func withHeader(_ edit: (inout [UInt8]) -> Void) -> [UInt8] {
        var b = Self.valid
        edit(&b)
        let crc = CRC32.checksum(Array(b[0..<60]))
        b.replaceSubrange(60..<64, with: le32(crc))
        return b
    }

    /// Rewrites a section table entry field, fixing the table and header CRCs.
    func withSectionEntry(_ index: Int, field offset: Int, _ value: [UInt8]) -> [UInt8] {
        let tableOffset = Int(UInt64(littleEndian: Self.valid.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 24, as: UInt64.self) }))
        let count = Int(UInt32(littleEndian: Self.valid.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 32, as: UInt32.self) }))
        return withHeader { b in
            let at = tableOffset + index * 32 + offset
            b.replaceSubrange(at..<(at + value.count), with: value)
            let crc = CRC32.checksum(Array(b[tableOffset..<(tableOffset + count * 32)]))
            b.replaceSubrange(36..<40, with: le32(crc))
        }
    }

    @Test func validFileReads() throws {
        #expect(error(Self.valid) == nil)
    }

    @Test func badMagic() {
        var b = Self.valid
        b[1] = UInt8(ascii: "X")
        #expect(error(b)?.description == "t.mbm: not an .mbm file (bad magic)")
        #expect(error(Array("hello".utf8))?.kind == .notMBM)
        #expect(error([])?.kind == .notMBM)
    }

    @Test func newerMajorVersionIsRefusedWithAHint() {
        let b = withHeader { $0.replaceSubrange(8..<10, with: [2, 0]) }
        #expect(error(b)?.description == "t.mbm: header: format version 2.0 is newer than this reader supports (1.x); update mbconvert")
    }

    @Test func newerMinorVersionIsRead() {
        #expect(error(withHeader { $0.replaceSubrange(10..<12, with: [7, 0]) }) == nil)
    }

    @Test func truncationAtEveryOffsetIsAnError() {
        for cut in 0..<Self.valid.count {
            let e = error(Array(Self.valid[..<cut]))
            #expect(e != nil, "accepted a file cut at \(cut) of \(Self.valid.count) bytes")
        }
        #expect(error(Array(Self.valid.dropLast()))?.description
            == "t.mbm: file is \(Self.valid.count - 1) bytes but its header says \(Self.valid.count) (truncated)")
    }

    @Test func everySingleByteFlipIsCaughtWithChecksums() {
        for i in 0..<Self.valid.count {
            var b = Self.valid
            b[i] ^= 0x40
            // A flip in padding or reserved bytes changes nothing the reader uses; all else must fail.
            if let e = error(b) { #expect(!e.description.isEmpty) } else {
                #expect(Self.isPadding(i), "flip at \(i) went unnoticed")
            }
        }
    }

    /// Offsets the CRCs do not cover: alignment padding between sections and reserved header
    /// bytes (the header CRC does cover them, so only inter-section padding qualifies).
    static func isPadding(_ i: Int) -> Bool {
        let file = try! MBMFile.parse(valid)
        let inSection = file.sections.contains { i >= $0.offset && i < $0.offset + $0.length }
        let tableOffset = Int(UInt64(littleEndian: valid.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 24, as: UInt64.self) }))
        return i >= 64 && i < tableOffset && !inSection
    }

    @Test func checksumMismatchNamesTheSection() {
        let file = try! MBMFile.parse(Self.valid)
        let graph = file.sections.first { $0.tag == .graph }!
        var b = Self.valid
        b[graph.offset + 3] ^= 1
        let e = error(b)
        #expect(e?.kind == .checksum)
        #expect(e?.description.hasPrefix("t.mbm: section GRPH: CRC-32 mismatch") == true, "\(String(describing: e))")
    }

    @Test func sectionOutOfRange() {
        let e = error(withSectionEntry(1, field: 8, le64(1 << 40)))
        #expect(e?.kind == .corrupt)
        #expect(e?.description.contains("section 1 (GRPH): offset 1099511627776 + length") == true, "\(String(describing: e))")
    }

    @Test func sectionLengthOverflow() {
        let e = error(withSectionEntry(0, field: 16, le64(UInt64.max)))
        #expect(e?.kind == .corrupt, "\(String(describing: e))")
    }

    @Test func misalignedSection() {
        let file = try! MBMFile.parse(Self.valid)
        let e = error(withSectionEntry(0, field: 8, le64(UInt64(file.sections[0].offset + 8))))
        #expect(e?.description == "t.mbm: section 0 (META): offset 72 is not a multiple of 64")
    }

    @Test func overlappingSections() {
        let file = try! MBMFile.parse(Self.valid)
        let e = error(withSectionEntry(1, field: 8, le64(UInt64(file.sections[0].offset))))
        #expect(e?.description.contains("overlaps section") == true, "\(String(describing: e))")
    }

    @Test func unknownRequiredSectionIsRefusedAndOptionalIsSkipped() {
        var e = error(withSectionEntry(0, field: 0, le32(0x5A5A_5A5A)))
        #expect(e?.description == "t.mbm: section ZZZZ: is required but this reader does not know it; update mbconvert")
        // The same section marked optional: skipped, but then META is missing.
        let optional = withSectionEntry(0, field: 0, le32(0x5A5A_5A5A))
        let tableOffset = Int(UInt64(littleEndian: optional.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 24, as: UInt64.self) }))
        var b = optional
        b.replaceSubrange((tableOffset + 4)..<(tableOffset + 8), with: le32(0))
        let crc = CRC32.checksum(Array(b[tableOffset..<(tableOffset + 4 * 32)]))
        b.replaceSubrange(36..<40, with: le32(crc))
        b.replaceSubrange(60..<64, with: le32(CRC32.checksum(Array(b[0..<60]))))
        e = error(b)
        #expect(e?.description == "t.mbm: required section META is missing")
    }

    @Test func sectionCountThatOverflows() {
        let e = error(withHeader { $0.replaceSubrange(32..<36, with: le32(UInt32.max)) })
        #expect(e?.kind == .corrupt)
        #expect(e?.description.contains("4294967295 entries") == true, "\(String(describing: e))")
    }

    /// Damage inside sections, with the CRC recomputed so the structural checks must catch it.
    func withSectionBytes(_ tag: SectionTag, _ edit: (inout [UInt8]) -> Void) -> [UInt8] {
        let file = try! MBMFile.parse(Self.valid)
        let index = file.sections.firstIndex { $0.tag == tag }!
        let s = file.sections[index]
        var body = Array(Self.valid[s.offset..<(s.offset + s.length)])
        edit(&body)
        precondition(body.count == s.length)
        var b = withSectionEntry(index, field: 24, le32(CRC32.checksum(body)))
        b.replaceSubrange(s.offset..<(s.offset + s.length), with: body)
        return b
    }

    @Test func tensorCountThatCannotFit() {
        let e = error(withSectionBytes(.tensorDirectory) { $0.replaceSubrange(0..<4, with: [0xFF, 0xFF, 0xFF, 0x7F]) })
        #expect(e?.description.contains("tensor count is 2147483647, more than the") == true, "\(String(describing: e))")
    }

    @Test func payloadOutOfRangeAndMisaligned() {
        // Directory entry 0: u32 count, then name "w" (u32 len + 1), i32 type, u32 rank, 3 × i64
        // dims, u8 encoding + 3 reserved, then u64 offset at byte 4 + 5 + 4 + 4 + 24 + 4 = 45.
        var e = error(withSectionBytes(.tensorDirectory) { $0.replaceSubrange(45..<53, with: self.le64(1 << 30)) })
        #expect(e?.description.contains("tensor 0 'w': payload 1073741824..<") == true, "\(String(describing: e))")
        e = error(withSectionBytes(.tensorDirectory) { $0.replaceSubrange(45..<53, with: self.le64(8)) })
        #expect(e?.description.contains("payload offset 8 is not a multiple of 64") == true, "\(String(describing: e))")
    }

    @Test func overlappingPayloads() {
        // Point the second tensor's payload at the first's.
        let file = try! MBMFile.parse(Self.valid)
        let dir = file.sections.first { $0.tag == .tensorDirectory }!
        let body = Array(Self.valid[dir.offset..<(dir.offset + dir.length)])
        // Find the second entry's offset field: search for name "b".
        let nameB: [UInt8] = [1, 0, 0, 0, UInt8(ascii: "b")]
        let at = (0..<(body.count - 5)).first { Array(body[$0..<($0 + 5)]) == nameB }!
        let offsetField = at + 5 + 4 + 4 + 8 + 4
        let e = error(withSectionBytes(.tensorDirectory) { $0.replaceSubrange(offsetField..<(offsetField + 8), with: self.le64(0)) })
        #expect(e?.description.contains("payload") == true, "\(String(describing: e))")
    }

    @Test func nanScaleIsRefused() {
        let file = try! MBMFile.parse(Self.valid)
        let data = file.sections.first { $0.tag == .data }!
        // The binarized tensor is the first payload: its scales come first.
        let e = error(withSectionBytes(.data) { $0.replaceSubrange(0..<4, with: self.le32(Float.nan.bitPattern)) })
        #expect(e?.description == "t.mbm: tensor 0 'w': level 1 scale of group 0 is nan", "\(String(describing: e)) data at \(data.offset)")
    }

    @Test func damagedMaskStream() {
        let file = try! MBMFile.parse(Self.valid)
        guard case .binarized = file.tensors[0].payload else { Issue.record(); return }
        let maskStart = file.tensors[0].storedBytes - file.tensors[0].maskBytes
        let e = error(withSectionBytes(.data) { $0[maskStart + 5] ^= 0x5A })
        #expect(e?.kind == .corrupt, "\(String(describing: e))")
    }

    @Test func badTensorIndexInGraph() {
        let e = error(withSectionBytes(.graph) { body in
            // GRPH: opsets, then graph name, inputs, outputs, then the constant count and indices.
            // Find the constant list by its count (2) followed by index 0 and 1.
            let pattern: [UInt8] = [2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
            let at = (0..<(body.count - pattern.count)).first { Array(body[$0..<($0 + pattern.count)]) == pattern }!
            body.replaceSubrange((at + 8)..<(at + 12), with: self.le32(99))
        })
        #expect(e?.description.contains("tensor index 99 is not in the tensor directory") == true, "\(String(describing: e))")
    }

    /// Random byte changes without checksums: the reader never traps, every refusal is a clean
    /// one-line error naming the file, and a file it accepts is one whose every part it checked
    /// (each binarized tensor validates). With checksums on, every change that alters a covered
    /// byte is refused.
    @Test func randomGarbageNeverCrashes() throws {
        var rng = SeededGenerator(seed: 2024)
        var refused = 0, accepted = 0, checksumRefused = 0, changed = 0
        for trial in 0..<300 {
            var b = Self.valid
            for _ in 0..<(1 + trial % 8) {
                let i = Int(rng.next() % UInt64(b.count))
                b[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            do {
                let file = try MBMFile.parse(b, name: "t.mbm", options: .init(verifyChecksums: false))
                accepted += 1
                for t in file.model.graph.constants {
                    if case .binarized(let p) = t.storage { #expect(throws: Never.self, "trial \(trial): accepted an invalid tensor '\(t.name)'") { try p.validate() } }
                }
            } catch {
                refused += 1
                #expect(error.file == "t.mbm" && !error.message.isEmpty && !error.description.contains("\n"), "trial \(trial): \(error)")
            }
            if b != Self.valid {
                changed += 1
                if self.error(b, verify: true) != nil { checksumRefused += 1 }
            }
        }
        // Changes may fall in zero padding between sections, which no checksum covers (the spec
        // says so); every other change is caught. Seed 2024 gives these counts.
        print("random garbage: \(refused) refused, \(accepted) accepted without checksums; \(checksumRefused) of \(changed) changed files refused with checksums")
        #expect(refused + accepted == 300)
        #expect(refused > 0)
        #expect(checksumRefused >= changed * 9 / 10, "\(checksumRefused) of \(changed) changed files refused with checksums")
    }
}
