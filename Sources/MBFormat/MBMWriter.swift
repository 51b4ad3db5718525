import MBCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes `.mbm` files: header, META, GRPH, TDIR, DATA, then the section table; the header is
/// filled in last. The destination only ever appears complete:
///
/// - On Linux the bytes go to an anonymous file in the destination's folder (`O_TMPFILE`),
///   linked in by name only once complete and synced. Killed at any point before that, even by
///   SIGKILL, the process leaves nothing behind: the kernel frees an unlinked file.
/// - Where `O_TMPFILE` is not available (other systems, some file systems) they go to
///   `<out>.partial-<pid>`, renamed into place when complete and removed on failure (and by
///   mbconvert's SIGINT/SIGTERM handler). A SIGKILL can leave that file behind; the next write
///   to the same destination removes `<out>.partial-<pid>` files whose process is gone.
/// - Replacing an existing destination is one `rename`: readers see the old file or the new one.
public struct MBMWriter: Sendable {
    public init() {}

    /// Sizes of what was written, for reports.
    public struct Summary: Sendable {
        public var fileBytes: Int
        public var sections: [SectionEntry]
        /// Per tensor: name, encoding, payload bytes, mask stream bytes.
        public var tensors: [(name: String, encoding: TensorEncoding, bytes: Int, maskBytes: Int)]
    }

    /// Stores every IR constant as it is held: dense as raw, strings, packed tensors binarized.
    public func write(model: IRModel, metadata: [MetadataEntry], to path: String) throws(MBMError) -> Summary {
        var irTensors: [IRTensor] = []
        let graphBytes = GraphCodec.encode(model, tensors: &irTensors)
        var stored: [StoredTensor] = []
        for t in irTensors {
            let payload: StoredPayload
            switch t.storage {
            case .dense(let bytes): payload = .raw(bytes)
            case .strings(let list): payload = .strings(list)
            case .binarized(let b): payload = .binarized(b)
            case .quantized(let q): payload = .quantized(q)
            }
            stored.append(StoredTensor(name: t.name, elementType: t.elementType, shape: t.shape, payload: payload))
        }
        return try write(graph: graphBytes, tensors: stored, metadata: metadata, to: path)
    }

    func write(graph: [UInt8], tensors: [StoredTensor], metadata: [MetadataEntry], to path: String) throws(MBMError) -> Summary {
        // Payloads and the directory (offsets relative to the DATA section).
        var encoded: [PayloadCodec.Encoded] = []
        var directory = ByteWriter()
        directory.u32(UInt32(tensors.count))
        var dataLength = 0
        var offsets: [Int] = []
        for t in tensors {
            let e = try PayloadCodec.encode(t)
            dataLength = (dataLength + MBMLayout.alignment - 1) / MBMLayout.alignment * MBMLayout.alignment
            offsets.append(dataLength)
            directory.string(t.name)
            directory.i32(t.elementType.rawValue)
            directory.u32(UInt32(t.shape.count))
            for d in t.shape { directory.i64(Int64(d)) }
            directory.u8(t.payload.encoding.rawValue)
            directory.raw([0, 0, 0])
            directory.u64(UInt64(dataLength))
            directory.u64(UInt64(e.length))
            directory.raw(e.descriptor)
            dataLength += e.length
            encoded.append(e)
        }

        MBMWriter.removeStalePartialFiles(for: path)
        let temporary = MBMWriter.partialPath(for: path, pid: getpid())
        var anonymous = true
        var fd = MBMWriter.openAnonymous(inFolderOf: path)
        if fd < 0 {
            anonymous = false
            fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        }
        guard fd >= 0 else { throw MBMError(.writeFailed, file: path, "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var file = OutputFile(fd: fd)
        var succeeded = false
        defer {
            close(fd)
            if !succeeded && !anonymous { unlink(temporary) }
        }
        func check() throws(MBMError) {
            if file.error != 0 { throw MBMError(.writeFailed, file: path, "cannot write: \(String(cString: strerror(file.error)))") }
        }

        var sections: [SectionEntry] = []
        file.write(zeros: MBMLayout.headerSize)
        func section(_ tag: SectionTag, _ bytes: [UInt8]) {
            file.alignTo(MBMLayout.alignment)
            let offset = file.position
            let crc = CRC32.checksum(bytes)
            bytes.withUnsafeBytes { file.write($0) }
            sections.append(SectionEntry(tag: tag, flags: SectionEntry.flagRequired, offset: offset, length: bytes.count, crc: crc))
        }
        section(.metadata, MetadataCodec.encode(metadata))
        section(.graph, graph)
        section(.tensorDirectory, directory.bytes)

        file.alignTo(MBMLayout.alignment)
        let dataStart = file.position
        var crc = CRC32()
        var summaries: [(name: String, encoding: TensorEncoding, bytes: Int, maskBytes: Int)] = []
        for (i, e) in encoded.enumerated() {
            let pad = dataStart + offsets[i] - file.position
            let zeros = [UInt8](repeating: 0, count: pad)
            zeros.withUnsafeBytes { crc.update($0); file.write($0) }
            if let raw = e.rawSlice {
                raw.withBytes { crc.update($0); file.write($0) }
            } else {
                e.payload.withUnsafeBytes { crc.update($0); file.write($0) }
            }
            summaries.append((tensors[i].name, tensors[i].payload.encoding, e.length, e.maskBytes))
        }
        sections.append(SectionEntry(tag: .data, flags: SectionEntry.flagRequired, offset: dataStart,
                                     length: file.position - dataStart, crc: crc.value))
        try check()

        // Section table, then the header that points at it.
        file.alignTo(MBMLayout.alignment)
        let tableOffset = file.position
        var table = ByteWriter()
        for s in sections {
            table.u32(s.tag.rawValue)
            table.u32(s.flags)
            table.u64(UInt64(s.offset))
            table.u64(UInt64(s.length))
            table.u32(s.crc)
            table.u32(0)
        }
        table.bytes.withUnsafeBytes { file.write($0) }
        let fileLength = file.position
        var header = ByteWriter()
        header.raw(MBMLayout.magic)
        header.u16(MBMLayout.majorVersion)
        header.u16(MBMLayout.minorVersion)
        header.u32(0)
        header.u64(UInt64(fileLength))
        header.u64(UInt64(tableOffset))
        header.u32(UInt32(sections.count))
        header.u32(CRC32.checksum(table.bytes))
        header.raw([UInt8](repeating: 0, count: 20))
        header.u32(CRC32.checksum(header.bytes))
        file.flush()
        try check()
        let written = header.bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard written == MBMLayout.headerSize else {
            throw MBMError(.writeFailed, file: path, "cannot write the header: \(String(cString: strerror(errno)))")
        }
        guard fsync(fd) == 0 || errno == EINVAL else {
            throw MBMError(.writeFailed, file: path, "cannot sync: \(String(cString: strerror(errno)))")
        }
        if anonymous {
            // Give the complete file a name: the destination itself when it does not exist (link
            // never replaces), else the temporary name, renamed over the destination below.
            if MBMWriter.link(fd: fd, to: path) {
                succeeded = true
                return Summary(fileBytes: fileLength, sections: sections, tensors: summaries)
            }
            unlink(temporary)  // our pid's name: only a dead process that had our pid could have left it
            guard MBMWriter.link(fd: fd, to: temporary) else {
                throw MBMError(.writeFailed, file: path, "cannot link the finished file as \(temporary): \(String(cString: strerror(errno)))")
            }
            anonymous = false  // it has a name now: remove it if the rename fails
        }
        guard rename(temporary, path) == 0 else {
            throw MBMError(.writeFailed, file: path, "cannot rename \(temporary) into place: \(String(cString: strerror(errno)))")
        }
        succeeded = true
        return Summary(fileBytes: fileLength, sections: sections, tensors: summaries)
    }
}

extension MBMWriter {
    /// The temporary name a writer in process `pid` uses for `path` when it needs one.
    public static func partialPath(for path: String, pid: Int32) -> String {
        path + ".partial-\(pid)"
    }

    /// An unnamed file in the folder of `path` (Linux `O_TMPFILE`), or -1 when the system or
    /// file system cannot make one.
    static func openAnonymous(inFolderOf path: String) -> Int32 {
        #if os(Linux)
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        // O_TMPFILE is (__O_TMPFILE | O_DIRECTORY); Glibc does not export the composite macro.
        let tmpfile: Int32 = 0o20_000_000 | O_DIRECTORY
        return open(folder, tmpfile | O_WRONLY | O_CLOEXEC, 0o644)
        #else
        return -1
        #endif
    }

    /// Links the anonymous file open as `fd` at `path` (fails if `path` exists).
    static func link(fd: Int32, to path: String) -> Bool {
        #if os(Linux)
        return linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0
        #else
        return false
        #endif
    }

    /// Removes `<path>.partial-<pid>` files left by writers that were killed (their process no
    /// longer exists). Files of live processes are another conversion's work and stay.
    public static func removeStalePartialFiles(for path: String) {
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let prefix = (slash.map { String(path[path.index(after: $0)...]) } ?? path) + ".partial-"
        guard let dir = opendir(folder) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix(prefix), let pid = Int32(name.dropFirst(prefix.count)), pid > 0 else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { unlink(folder + "/" + name) }
        }
    }
}

/// Buffered sequential writes to a file descriptor; remembers the first error.
struct OutputFile {
    let fd: Int32
    private(set) var position = 0
    private(set) var error: Int32 = 0
    private var buffer: [UInt8] = []

    init(fd: Int32) {
        self.fd = fd
        buffer.reserveCapacity(1 << 20)
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        position += bytes.count
        if bytes.count >= 1 << 20 {
            flush()
            writeAll(bytes)
        } else {
            if buffer.count + bytes.count > 1 << 20 { flush() }
            buffer.append(contentsOf: bytes)
        }
    }

    mutating func write(zeros n: Int) {
        [UInt8](repeating: 0, count: n).withUnsafeBytes { write($0) }
    }

    mutating func alignTo(_ alignment: Int) {
        let r = position % alignment
        if r != 0 { write(zeros: alignment - r) }
    }

    mutating func flush() {
        let pending = buffer
        buffer.removeAll(keepingCapacity: true)
        pending.withUnsafeBytes { writeAll($0) }
    }

    private mutating func writeAll(_ bytes: UnsafeRawBufferPointer) {
        guard error == 0, var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = systemWrite(fd, p, left)
            if n < 0 {
                if errno == EINTR { continue }
                error = errno
                return
            }
            p += n
            left -= n
        }
    }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif
