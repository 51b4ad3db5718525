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
        let (graphBytes, irTensors) = MBMWriter.encodeGraph(model)
        return try write(graph: graphBytes, tensors: irTensors.map(MBMWriter.stored), metadata: metadata, to: path)
    }

    func write(graph: [UInt8], tensors: [StoredTensor], metadata: [MetadataEntry], to path: String) throws(MBMError) -> Summary {
        let stream = try Stream(path: path)
        for t in tensors { try stream.append(t) }
        return try stream.finish(graph: graph, metadata: metadata)
    }

    /// The GRPH section of `model` and its constants in the order the tensor directory lists
    /// them (a streaming writer appends them in this order).
    public static func encodeGraph(_ model: IRModel) -> (graph: [UInt8], tensors: [IRTensor]) {
        var tensors: [IRTensor] = []
        let bytes = GraphCodec.encode(model, tensors: &tensors)
        return (bytes, tensors)
    }

    /// An IR constant as the writer stores it.
    public static func stored(_ t: IRTensor) -> StoredTensor {
        let payload: StoredPayload
        switch t.storage {
        case .dense(let bytes): payload = .raw(bytes)
        case .strings(let list): payload = .strings(list)
        case .binarized(let b): payload = .binarized(b)
        case .quantized(let q): payload = .quantized(q)
        }
        return StoredTensor(name: t.name, elementType: t.elementType, shape: t.shape, payload: payload)
    }

    /// An `.mbm` written as its tensors arrive, so no more than one payload is held at a time.
    /// The layout puts META, GRPH and the tensor directory before DATA and the directory needs
    /// every payload's length, so `append` encodes each payload into an unnamed scratch file
    /// beside the destination (its CRC computed on the way) and keeps only its directory entry;
    /// `finish` writes the sections in order, copies DATA from the scratch file and puts the
    /// file in place as `MBMWriter` describes. The bytes are those `write` makes for the same
    /// tensors (`write` is this class). On any failure nothing is left behind. One caller at a
    /// time: concurrent producers must take turns appending.
    public final class Stream: @unchecked Sendable {
        let path: String
        private let scratch: Int32
        private var data: OutputFile
        private var crc = CRC32()
        private var directory = ByteWriter()
        private var count = 0
        private var summaries: [(name: String, encoding: TensorEncoding, bytes: Int, maskBytes: Int)] = []

        /// Payload bytes appended so far (DATA's length, with alignment padding).
        public var dataBytes: Int { data.position }

        public init(path: String) throws(MBMError) {
            self.path = path
            var fd = MBMWriter.openAnonymous(inFolderOf: path, readable: true)
            if fd < 0 {
                // No O_TMPFILE here: a named file, unlinked at once (it lives while open).
                let name = MBMWriter.partialPath(for: path, pid: getpid()) + ".data"
                fd = open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                if fd >= 0 { unlink(name) }
            }
            guard fd >= 0 else {
                throw MBMError(.writeFailed, file: path, "cannot create a scratch file for the tensor data: \(String(cString: strerror(errno)))")
            }
            scratch = fd
            data = OutputFile(fd: fd)
        }

        deinit { close(scratch) }

        private func check() throws(MBMError) {
            if data.error != 0 { throw MBMError(.writeFailed, file: path, "cannot write: \(String(cString: strerror(data.error)))") }
        }

        /// Encodes `t`'s payload and appends it to DATA; the payload is not kept.
        public func append(_ t: StoredTensor) throws(MBMError) {
            let e = try PayloadCodec.encode(t)
            let pad = (MBMLayout.alignment - data.position % MBMLayout.alignment) % MBMLayout.alignment
            let zeros = [UInt8](repeating: 0, count: pad)
            zeros.withUnsafeBytes { crc.update($0); data.write($0) }
            let offset = data.position
            if let raw = e.rawSlice {
                raw.withBytes { crc.update($0); data.write($0) }
            } else {
                e.payload.withUnsafeBytes { crc.update($0); data.write($0) }
            }
            try check()
            directory.string(t.name)
            directory.i32(t.elementType.rawValue)
            directory.u32(UInt32(t.shape.count))
            for d in t.shape { directory.i64(Int64(d)) }
            directory.u8(t.payload.encoding.rawValue)
            directory.raw([0, 0, 0])
            directory.u64(UInt64(offset))
            directory.u64(UInt64(e.length))
            directory.raw(e.descriptor)
            count += 1
            summaries.append((t.name, t.payload.encoding, e.length, e.maskBytes))
        }

        /// Writes the file (header, META, GRPH, TDIR, DATA, section table) and links it in place.
        public func finish(graph: [UInt8], metadata: [MetadataEntry]) throws(MBMError) -> Summary {
            data.flush()
            try check()
            let dataLength = data.position
            var tdir = ByteWriter()
            tdir.u32(UInt32(count))
            tdir.raw(directory.bytes)
            return try MBMWriter.writeFile(to: path, metadata: MetadataCodec.encode(metadata), graph: graph, directory: tdir.bytes,
                                           data: (scratch, dataLength, crc.value), tensors: summaries)
        }
    }

    /// Writes the sections around DATA, which is copied from `data.fd` (its first `length`
    /// bytes, CRC already known), then names the file as the type's comment describes.
    static func writeFile(
        to path: String, metadata: [UInt8], graph: [UInt8], directory: [UInt8], data: (fd: Int32, length: Int, crc: UInt32),
        tensors summaries: [(name: String, encoding: TensorEncoding, bytes: Int, maskBytes: Int)]
    ) throws(MBMError) -> Summary {
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
        section(.metadata, metadata)
        section(.graph, graph)
        section(.tensorDirectory, directory)

        file.alignTo(MBMLayout.alignment)
        let dataStart = file.position
        try file.copy(from: data.fd, count: data.length, file: path)
        sections.append(SectionEntry(tag: .data, flags: SectionEntry.flagRequired, offset: dataStart, length: data.length, crc: data.crc))
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
    static func openAnonymous(inFolderOf path: String, readable: Bool = false) -> Int32 {
        #if os(Linux)
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        // O_TMPFILE is (__O_TMPFILE | O_DIRECTORY); Glibc does not export the composite macro.
        let tmpfile: Int32 = 0o20_000_000 | O_DIRECTORY
        return open(folder, tmpfile | (readable ? O_RDWR : O_WRONLY) | O_CLOEXEC, readable ? 0o600 : 0o644)
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

    /// Appends the first `count` bytes of the file open as `source` (read with pread, 1 MiB at
    /// a time). A read failure throws; a write failure is remembered like any other.
    mutating func copy(from source: Int32, count: Int, file path: String) throws(MBMError) {
        flush()
        var chunk = [UInt8](repeating: 0, count: min(count, 1 << 20))
        var done = 0
        while done < count, error == 0 {
            let want = min(chunk.count, count - done)
            let n = chunk.withUnsafeMutableBytes { pread(source, $0.baseAddress, want, off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let reason = n < 0 ? String(cString: strerror(errno)) : "it ended early"
                throw MBMError(.writeFailed, file: path, "cannot read back the scratch file of the tensor data: \(reason)")
            }
            chunk.withUnsafeBytes { write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            done += n
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
