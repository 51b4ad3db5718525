#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Immutable bytes that live somewhere other than a Swift array: a memory-mapped file, or a
/// block malloc'd by a C library whose ownership we took over. Slices share the owner, so a
/// tensor can point into a mapped file without copying it.
public final class ByteStorage: @unchecked Sendable {
    public enum Owner: Sendable {
        /// Freed with `free()` when the storage dies (e.g. a protobuf-c allocation we adopted).
        case malloc
        /// Unmapped with `munmap(base, length)` when the storage dies.
        case mapping(length: Int)
        /// Memory someone else keeps alive.
        case borrowed
        /// Allocated by Swift (`UnsafeMutableRawPointer.allocate`).
        case swift
    }

    public let base: UnsafeRawPointer?
    public let count: Int
    private let owner: Owner

    public init(base: UnsafeRawPointer?, count: Int, owner: Owner) {
        self.base = base
        self.count = count
        self.owner = owner
    }

    /// A Swift-owned copy of `bytes`.
    public convenience init<C: Collection>(copying bytes: C) where C.Element == UInt8 {
        let n = bytes.count
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1), alignment: 64)
        let copied: Void? = bytes.withContiguousStorageIfAvailable { src in
            if n > 0 { p.copyMemory(from: src.baseAddress!, byteCount: n) }
        }
        if copied == nil {
            _ = UnsafeMutableRawBufferPointer(start: p, count: n).initializeMemory(as: UInt8.self, from: bytes)
        }
        self.init(base: UnsafeRawPointer(p), count: n, owner: .swift)
    }

    deinit {
        guard let base else { return }
        switch owner {
        case .malloc: free(UnsafeMutableRawPointer(mutating: base))
        case .mapping(let length): munmap(UnsafeMutableRawPointer(mutating: base), length)
        case .borrowed: break
        case .swift: UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }

    /// Whether the bytes are a read-only memory map of a file (`FileMapping.map`).
    public var isFileMapping: Bool {
        if case .mapping = owner { return true }
        return false
    }

    /// The bytes. Only valid while this storage is alive: prefer `withBuffer` unless you keep a
    /// reference to the storage for as long as you use the pointer.
    public var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Runs `body` over the bytes, keeping the storage alive meanwhile.
    public func withBuffer<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        defer { withExtendedLifetime(self) {} }
        return try body(buffer)
    }
}

/// A byte range of a `ByteStorage`, keeping it alive.
public struct ByteSlice: @unchecked Sendable {
    public let storage: ByteStorage
    public let offset: Int
    public let count: Int

    public init(storage: ByteStorage, offset: Int = 0, count: Int? = nil) {
        precondition(offset >= 0 && offset <= storage.count)
        let n = count ?? (storage.count - offset)
        precondition(n >= 0 && n <= storage.count - offset)
        self.storage = storage
        self.offset = offset
        self.count = n
    }

    public init(copying bytes: [UInt8]) {
        self.init(storage: ByteStorage(copying: bytes))
    }

    public static let empty = ByteSlice(storage: ByteStorage(base: nil, count: 0, owner: .borrowed))

    /// Runs `body` over the bytes. Valid only inside `body`.
    @inline(__always)
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        defer { withExtendedLifetime(storage) {} }
        let start = storage.base.map { $0 + offset }
        return try body(UnsafeRawBufferPointer(start: count == 0 ? nil : start, count: count))
    }

    public var bytes: [UInt8] { withBytes { Array($0) } }

    /// Whether the bytes are a read-only memory map of a file.
    public var isFileMapping: Bool { storage.isFileMapping }

    /// Takes this range's pages of a file mapping out of the process's resident memory (the
    /// kernel reads them again from the file, or its page cache, if they are touched later).
    /// Does nothing for other storage, whose pages hold the only copy of the bytes. Used when
    /// streaming through a large model, so resident memory follows the tensor being worked on.
    public func releaseResidentPages() {
        guard storage.isFileMapping, count > 0, let base = storage.base else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        // The mapping starts on a page; round outward (neighbours' pages are only re-read).
        let start = offset / page * page
        let end = min(storage.count, (offset + count + page - 1) / page * page)
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, Int32(MADV_DONTNEED))
    }
}

/// A read-only memory map of a whole file.
public enum FileMapping {
    public enum Failure: Error, Sendable {
        case open(path: String, errno: Int32)
        case notARegularFile(path: String)
        case map(path: String, errno: Int32)
    }

    /// Size of the file at `path` (follows links), or an error naming the path.
    public static func fileSize(path: String) throws(Failure) -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else { throw .open(path: path, errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .notARegularFile(path: path) }
        return Int(st.st_size)
    }

    /// Maps the file read-only. An empty file gives empty storage.
    public static func map(path: String) throws(Failure) -> ByteStorage {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .open(path: path, errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .open(path: path, errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .notARegularFile(path: path) }
        let size = Int(st.st_size)
        if size == 0 { return ByteStorage(base: nil, count: 0, owner: .borrowed) }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw .map(path: path, errno: errno)
        }
        return ByteStorage(base: UnsafeRawPointer(p), count: size, owner: .mapping(length: size))
    }
}

extension FileMapping.Failure: CustomStringConvertible {
    public var description: String {
        switch self {
        case .open(let path, let e): return "\(path): cannot open: \(String(cString: strerror(e)))"
        case .notARegularFile(let path): return "\(path): not a regular file"
        case .map(let path, let e): return "\(path): cannot map: \(String(cString: strerror(e)))"
        }
    }
}
