import MBCore

/// A validated `.mbm` file, memory-mapped. Raw payloads are views of the mapping (64-byte
/// aligned, so float tensors are used in place); everything else was checked before use.
public struct MBMFile: Sendable {
    public struct Options: Sendable {
        /// Verify the CRC-32 of every section (on by default; off trades safety for load time).
        public var verifyChecksums = true
        /// Most elements one stored tensor may declare (2^32: 16 GiB of float32). Checked on
        /// the directory entry, before its payload is looked at.
        public var maxTensorElements = 1 << 32
        /// Most nodes in the main graph and all subgraphs together.
        public var maxNodes = 1_000_000
        public init(verifyChecksums: Bool = true, maxTensorElements: Int = 1 << 32, maxNodes: Int = 1_000_000) {
            self.verifyChecksums = verifyChecksums
            self.maxTensorElements = maxTensorElements
            self.maxNodes = maxNodes
        }
    }

    public var path: String
    public var majorVersion: UInt16
    public var minorVersion: UInt16
    public var fileBytes: Int
    public var sections: [SectionEntry]
    /// Sections this reader does not know and skipped (optional ones only).
    public var skippedSections: [SectionEntry]
    public var metadata: [MetadataEntry]
    public var tensors: [StoredTensor]
    public var model: IRModel
    public var checksumsVerified: Bool

    public func metadataValue(_ key: String) -> MetadataValue? {
        metadata.first { $0.key == key }?.value
    }

    public static func open(path: String, options: Options = Options()) throws(MBMError) -> MBMFile {
        let mapping: ByteStorage
        do { mapping = try FileMapping.map(path: path) } catch { throw MBMError(.unreadable, file: path, "\(error)") }
        return try MBMReader(path: path, mapping: mapping, options: options).read()
    }

    /// The file's metadata without its graph or tensors (header, section table and META are
    /// checked; nothing else is read or decoded): what a caller needs to decide whether it can
    /// afford to open the file.
    public static func readMetadata(path: String, options: Options = Options()) throws(MBMError) -> [MetadataEntry] {
        let mapping: ByteStorage
        do { mapping = try FileMapping.map(path: path) } catch { throw MBMError(.unreadable, file: path, "\(error)") }
        return try MBMReader(path: path, mapping: mapping, options: options).readMetadata()
    }

    /// Parses bytes already in memory (tests, fuzzing). `name` labels errors.
    public static func parse(_ bytes: [UInt8], name: String = "<memory>", options: Options = Options()) throws(MBMError) -> MBMFile {
        try MBMReader(path: name, mapping: ByteStorage(copying: bytes), options: options).read()
    }
}

struct MBMReader {
    let path: String
    let mapping: ByteStorage
    let options: MBMFile.Options

    func fail(_ kind: MBMError.Kind, _ place: String?, _ message: String) -> MBMError {
        MBMError(kind, file: path, place: place, message)
    }

    /// The header and section table, checked: the version, the sections by tag (the four known
    /// ones present) and the optional ones skipped.
    struct Sections {
        var major: UInt16
        var minor: UInt16
        var all: [SectionEntry]
        var known: [SectionTag: SectionEntry]
        var skipped: [SectionEntry]
    }

    static let knownTags: Set<SectionTag> = [.metadata, .graph, .tensorDirectory, .data]

    func sections() throws(MBMError) -> Sections {
        let bytes = mapping.buffer
        let size = bytes.count
        guard size >= MBMLayout.magic.count, Array(bytes[0..<MBMLayout.magic.count]) == MBMLayout.magic else {
            throw fail(.notMBM, nil, "not an .mbm file (bad magic)")
        }
        guard size >= MBMLayout.headerSize else {
            throw fail(.truncated, "header", "file is \(size) bytes, shorter than the \(MBMLayout.headerSize)-byte header")
        }
        var h = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[0..<MBMLayout.headerSize]))
        let major: UInt16, minor: UInt16, declaredLength: UInt64, tableOffset: UInt64, sectionCount: UInt32, tableCRC: UInt32, headerCRC: UInt32
        do {
            try h.skip(8, "magic")
            major = try h.u16("major version")
            minor = try h.u16("minor version")
            _ = try h.u32("flags")
            declaredLength = try h.u64("file length")
            tableOffset = try h.u64("section table offset")
            sectionCount = try h.u32("section count")
            tableCRC = try h.u32("section table CRC")
            try h.skip(20, "reserved")
            headerCRC = try h.u32("header CRC")
        } catch {
            throw fail(.corrupt, "header", error.description)
        }
        guard major <= MBMLayout.majorVersion else {
            throw fail(.newerVersion, "header", "format version \(major).\(minor) is newer than this reader supports (\(MBMLayout.majorVersion).x); update mbconvert")
        }
        guard major >= 1 else { throw fail(.corrupt, "header", "format version \(major).\(minor) does not exist") }
        let computedHeaderCRC = CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<60]))
        guard computedHeaderCRC == headerCRC else {
            throw fail(.checksum, "header", "CRC-32 mismatch (stored \(hex(headerCRC)), computed \(hex(computedHeaderCRC)))")
        }
        guard declaredLength == UInt64(size) else {
            if declaredLength > UInt64(size) {
                throw fail(.truncated, nil, "file is \(size) bytes but its header says \(declaredLength) (truncated)")
            }
            throw fail(.corrupt, nil, "file is \(size) bytes but its header says \(declaredLength) (trailing data)")
        }
        // Section table: inside the file, after the header, aligned.
        let (tableBytes, o1) = UInt64(sectionCount).multipliedReportingOverflow(by: UInt64(MBMLayout.sectionEntrySize))
        let (tableEnd, o2) = tableOffset.addingReportingOverflow(tableBytes)
        guard !o1, !o2, tableOffset >= UInt64(MBMLayout.headerSize), tableEnd <= UInt64(size) else {
            throw fail(.corrupt, "section table", "\(sectionCount) entries at offset \(tableOffset) do not fit in the \(size)-byte file")
        }
        guard tableOffset % UInt64(MBMLayout.alignment) == 0 else {
            throw fail(.corrupt, "section table", "offset \(tableOffset) is not a multiple of \(MBMLayout.alignment)")
        }
        let table = UnsafeRawBufferPointer(rebasing: bytes[Int(tableOffset)..<Int(tableEnd)])
        let computedTableCRC = CRC32.checksum(table)
        guard computedTableCRC == tableCRC else {
            throw fail(.checksum, "section table", "CRC-32 mismatch (stored \(hex(tableCRC)), computed \(hex(computedTableCRC)))")
        }
        var sections: [SectionEntry] = []
        var t = ByteReader(table)
        for i in 0..<Int(sectionCount) {
            do {
                let tag = SectionTag(rawValue: try t.u32("tag"))
                let flags = try t.u32("flags")
                let offset = try t.u64("offset")
                let length = try t.u64("length")
                let crc = try t.u32("crc")
                _ = try t.u32("reserved")
                let (end, o) = offset.addingReportingOverflow(length)
                guard !o, offset >= UInt64(MBMLayout.headerSize), end <= tableOffset else {
                    throw fail(.corrupt, "section \(i) (\(tag))", "offset \(offset) + length \(length) is outside the file's data area (\(MBMLayout.headerSize)..<\(tableOffset))")
                }
                guard offset % UInt64(MBMLayout.alignment) == 0 else {
                    throw fail(.corrupt, "section \(i) (\(tag))", "offset \(offset) is not a multiple of \(MBMLayout.alignment)")
                }
                sections.append(SectionEntry(tag: tag, flags: flags, offset: Int(offset), length: Int(length), crc: crc))
            } catch let e as MBMError {
                throw e
            } catch {
                throw fail(.corrupt, "section table entry \(i)", "\(error)")
            }
        }
        let ordered = sections.sorted { $0.offset < $1.offset }
        for (a, b) in zip(ordered, ordered.dropFirst()) where a.offset + a.length > b.offset {
            throw fail(.corrupt, "section \(b.tag)", "overlaps section \(a.tag) (\(a.offset)..<\(a.offset + a.length) and \(b.offset)..<\(b.offset + b.length))")
        }
        var known: [SectionTag: SectionEntry] = [:]
        var skipped: [SectionEntry] = []
        let knownTags = Self.knownTags
        for s in sections {
            guard known[s.tag] == nil else { throw fail(.corrupt, "section \(s.tag)", "appears twice") }
            if knownTags.contains(s.tag) {
                known[s.tag] = s
            } else if s.isRequired {
                throw fail(.unsupported, "section \(s.tag)", "is required but this reader does not know it; update mbconvert")
            } else {
                skipped.append(s)
            }
        }
        for tag in [SectionTag.metadata, .graph, .tensorDirectory, .data] where known[tag] == nil {
            throw fail(.corrupt, nil, "required section \(tag) is missing")
        }
        return Sections(major: major, minor: minor, all: sections, known: known, skipped: skipped)
    }

    /// The CRC-32 of section `s`, checked.
    func checkCRC(_ s: SectionEntry) throws(MBMError) {
        // In 64 MiB pieces whose pages of a mapped file are released once checked: opening a
        // large file does not leave it all resident (tensors' pages come back as they are read).
        var check = CRC32()
        for start in stride(from: s.offset, to: s.offset + s.length, by: 64 << 20) {
            let piece = ByteSlice(storage: mapping, offset: start, count: min(64 << 20, s.offset + s.length - start))
            piece.withBytes { check.update($0) }
            piece.releaseResidentPages()
        }
        let crc = check.value
        guard crc == s.crc else {
            throw fail(.checksum, "section \(s.tag)", "CRC-32 mismatch (stored \(hex(s.crc)), computed \(hex(crc)))")
        }
    }

    /// The metadata alone: header, section table and META checked (its CRC too, with
    /// `verifyChecksums`), nothing else read.
    func readMetadata() throws(MBMError) -> [MetadataEntry] {
        let found = try sections()
        let s = found.known[.metadata]!
        if options.verifyChecksums { try checkCRC(s) }
        do {
            return try MetadataCodec.decode(UnsafeRawBufferPointer(rebasing: mapping.buffer[s.offset..<(s.offset + s.length)]))
        } catch {
            throw fail(.corrupt, "section META", error.description)
        }
    }

    func read() throws(MBMError) -> MBMFile {
        try openLazily().decodeAll()
    }

    /// Header, section table, checksums (with `verifyChecksums`, page by page), metadata, the
    /// tensor directory (every entry's descriptor checked against its payload's size) and the
    /// graph; payloads are left in the file until asked for.
    func openLazily() throws(MBMError) -> MBMFile.Lazy {
        let bytes = mapping.buffer
        let size = bytes.count
        let found = try sections()
        let (major, minor, sections, known, skipped) = (found.major, found.minor, found.all, found.known, found.skipped)
        if options.verifyChecksums {
            for s in sections where Self.knownTags.contains(s.tag) { try checkCRC(s) }
        }
        func body(_ tag: SectionTag) -> UnsafeRawBufferPointer {
            let s = known[tag]!
            return UnsafeRawBufferPointer(rebasing: bytes[s.offset..<(s.offset + s.length)])
        }
        let metadata: [MetadataEntry]
        do { metadata = try MetadataCodec.decode(body(.metadata)) } catch {
            throw fail(.corrupt, "section META", error.description)
        }
        let entries = try readDirectory(body(.tensorDirectory), data: known[.data]!)
        // Strings are decoded now (the graph holds them as they are); the other payloads wait.
        var strings: [Int: StoredTensor] = [:]
        for (i, e) in entries.enumerated() where e.encoding == .strings { strings[i] = try decode(e, index: i) }
        let empty = ByteSlice(storage: mapping, offset: 0, count: 0)
        let shells = entries.enumerated().map { i, e -> IRTensor in
            if let t = strings[i] { return Self.irTensor(t) }
            let storage: IRTensor.Storage = e.encoding == .raw ? .dense(payload(e)) : .dense(empty)
            return IRTensor(name: e.name, elementType: e.elementType, shape: e.shape, storage: storage)
        }
        let model = try decodeGraph(body(.graph), shells)
        return MBMFile.Lazy(path: path, majorVersion: major, minorVersion: minor, fileBytes: size, sections: sections,
                            skippedSections: skipped, metadata: metadata, entries: entries, model: model,
                            checksumsVerified: options.verifyChecksums, reader: self)
    }

    func decodeGraph(_ bytes: UnsafeRawBufferPointer, _ tensors: [IRTensor]) throws(MBMError) -> IRModel {
        do {
            return try GraphCodec.decode(bytes, maxNodes: options.maxNodes) { i in i >= 0 && i < tensors.count ? tensors[i] : nil }
        } catch {
            throw fail(error.isLimit ? .limitExceeded : .corrupt, "section GRPH at byte \(error.offset)", error.message)
        }
    }

    func payload(_ e: MBMFile.Lazy.Entry) -> ByteSlice {
        ByteSlice(storage: mapping, offset: e.payloadOffset, count: e.storedBytes)
    }

    /// Entry `index`'s payload decoded and validated. A decoded payload is a copy: the pages it
    /// was read from go back, so a large file is not left resident beside its decoded tensors
    /// (raw payloads are used in place and keep theirs).
    func decode(_ e: MBMFile.Lazy.Entry, index: Int) throws(MBMError) -> StoredTensor {
        let slice = payload(e)
        do {
            let t = try PayloadCodec.decodePayload(e.descriptor, name: e.name, elementType: e.elementType, shape: e.shape,
                                                   count: e.elementCount, payload: slice, verifyScales: true)
            if e.encoding != .raw { slice.releaseResidentPages() }
            return t
        } catch {
            throw fail(.corrupt, "tensor \(index) '\(e.name)'", error.message)
        }
    }

    static func irTensor(_ t: StoredTensor) -> IRTensor {
        let storage: IRTensor.Storage
        switch t.payload {
        case .raw(let b): storage = .dense(b)
        case .strings(let s): storage = .strings(s)
        case .binarized(let b): storage = .binarized(b)
        case .quantized(let q): storage = .quantized(q)
        }
        return IRTensor(name: t.name, elementType: t.elementType, shape: t.shape, storage: storage)
    }

    func readDirectory(_ bytes: UnsafeRawBufferPointer, data: SectionEntry) throws(MBMError) -> [MBMFile.Lazy.Entry] {
        var r = ByteReader(bytes)
        var entries: [MBMFile.Lazy.Entry] = []
        do {
            let n = try r.count("tensor count", minimumItemSize: 32)
            for i in 0..<n {
                let name = try r.string("tensor name")
                let place = "tensor \(i) '\(name)'"
                let typeRaw = try r.i32("element type")
                guard let type = ElementType(rawValue: typeRaw) else { throw fail(.corrupt, place, "unknown element type \(typeRaw)") }
                let rank = try r.count("rank", minimumItemSize: 8)
                var shape: [Int] = []
                var count = 1
                for _ in 0..<rank {
                    let d = try r.i64("dimension")
                    guard d >= 0, let di = Int(exactly: d) else { throw fail(.corrupt, place, "dimension \(d) is negative") }
                    let (c, o) = count.multipliedReportingOverflow(by: di)
                    guard !o else { throw fail(.limitExceeded, place, "element count of shape \(shape + [di]) overflows") }
                    count = c
                    shape.append(di)
                }
                guard count <= options.maxTensorElements else {
                    throw fail(.limitExceeded, place, "shape \(shape) declares \(count) elements, more than the limit of \(options.maxTensorElements) (MBMFile.Options.maxTensorElements)")
                }
                let encRaw = try r.u8("encoding")
                guard let encoding = TensorEncoding(rawValue: encRaw) else { throw fail(.unsupported, place, "unknown tensor encoding \(encRaw)") }
                try r.skip(3, "reserved")
                let offset = try r.u64("payload offset")
                let length = try r.u64("payload length")
                let (end, o) = offset.addingReportingOverflow(length)
                guard !o, end <= UInt64(data.length) else {
                    throw fail(.corrupt, place, "payload \(offset)..<\(offset &+ length) is outside the DATA section (\(data.length) bytes)")
                }
                guard offset % UInt64(MBMLayout.alignment) == 0 else {
                    throw fail(.corrupt, place, "payload offset \(offset) is not a multiple of \(MBMLayout.alignment)")
                }
                let descriptor: PayloadCodec.Descriptor
                do {
                    descriptor = try PayloadCodec.readDescriptor(encoding: encoding, elementType: type, shape: shape, count: count,
                                                                 directory: &r, payloadBytes: Int(length))
                } catch {
                    throw fail(.corrupt, place, error.message)
                }
                entries.append(MBMFile.Lazy.Entry(name: name, elementType: type, shape: shape, encoding: encoding, storedBytes: Int(length),
                                                  payloadOffset: data.offset + Int(offset), descriptor: descriptor))
            }
            guard r.isAtEnd else { throw fail(.corrupt, "section TDIR", "\(r.remaining) bytes after the last tensor") }
        } catch let e as MBMError {
            throw e
        } catch {
            throw fail(.corrupt, "section TDIR", "\(error)")
        }
        let ordered = entries.filter { $0.storedBytes > 0 }.sorted { $0.payloadOffset < $1.payloadOffset }
        for (a, b) in zip(ordered, ordered.dropFirst()) where a.payloadOffset + a.storedBytes > b.payloadOffset {
            throw fail(.corrupt, "tensor '\(b.name)'", "payload overlaps tensor '\(a.name)'")
        }
        return entries
    }
}

func hex(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - s.count)) + s
}
