import Foundation
import MBCore

/// Converted weights of a calibration that runs in segments, kept on disk between the runs
/// that need them and the writer, so each weight is converted once and none is held.
///
/// The large arrays of a converted tensor (a binarized tensor's mask and sign words, a quantized
/// tensor's codes) go to an unnamed scratch file in the output's folder;
/// the rest (shape, scales, active counts, the report row) stays in memory, a few bytes per
/// channel. `outcome(named:)` reads the arrays back, so the tensor is the one converted, bit for
/// bit. The file has no name from the moment it is opened (Linux `O_TMPFILE`, or a name removed
/// at once), so nothing is left behind on any exit, a crash included.
final class ConvertedSpill: @unchecked Sendable {
    /// Where each array of a stored tensor lies in the file.
    private struct Entry {
        var skeleton: Conversion.LayerOutcome
        var pieces: [(offset: Int, count: Int)]
    }

    private let fd: Int32
    private let folder: String
    private let lock = NSLock()
    private var end = 0
    private var entries: [String: Entry] = [:]

    /// Bytes written to the scratch file so far.
    var fileBytes: Int { lock.withLock { end } }
    /// Tensors stored so far.
    var count: Int { lock.withLock { entries.count } }

    /// A scratch file in the folder of `output` (the converted model's path).
    init(besideOutput output: String) throws {
        let slash = output.lastIndex(of: "/")
        folder = slash.map { $0 == output.startIndex ? "/" : String(output[..<$0]) } ?? "."
        var fd: Int32 = -1
        #if os(Linux)
        // O_TMPFILE is (__O_TMPFILE | O_DIRECTORY); Glibc does not export the composite macro.
        fd = open(folder, 0o20_000_000 | O_DIRECTORY | O_RDWR | O_CLOEXEC, 0o600)
        #endif
        if fd < 0 {
            let name = (slash.map { String(output[...$0]) } ?? "") + ".\((output as NSString).lastPathComponent).converted-\(getpid())"
            fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 { unlink(name) }
        }
        guard fd >= 0 else {
            throw ConversionError("\(folder): cannot create a scratch file for the converted weights: \(String(cString: strerror(errno)))")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Whether `name` is stored.
    func contains(_ name: String) -> Bool { lock.withLock { entries[name] != nil } }

    /// What the writer holds for stored tensor `name` once it is read back (the arrays the file
    /// holds, and their encoding), or nil.
    func heldBytes(_ name: String) -> Int? {
        lock.withLock { entries[name].map { 2 * $0.pieces.reduce(0) { $0 + $1.count } } }
    }

    /// Stores `outcome` (its tensor's large arrays go to the file); a kept (dense) tensor is not
    /// stored, converting it again being a copy or a cast.
    func store(_ outcome: Conversion.LayerOutcome) throws {
        var skeleton = outcome
        var arrays: [[UInt8]] = []
        switch outcome.tensor.storage {
        case .binarized(var p):
            arrays.append(p.mask)
            p.mask = []
            for k in p.levels.indices {
                arrays.append(p.levels[k].signs.withUnsafeBytes { Array($0) })
                p.levels[k].signs = []
            }
            skeleton.tensor.storage = .binarized(p)
        case .quantized(var q):
            arrays.append(q.codes)
            q.codes = []
            skeleton.tensor.storage = .quantized(q)
        case .dense, .strings:
            return  // kept tensors: converting them again is a copy or a cast
        }
        let total = arrays.reduce(0) { $0 + $1.count }
        let start = lock.withLock { () -> Int in
            let s = end
            end += total
            return s
        }
        var pieces: [(offset: Int, count: Int)] = []
        var at = start
        for a in arrays {
            try a.withUnsafeBytes { try write($0, at: at) }
            pieces.append((at, a.count))
            at += a.count
        }
        lock.withLock { entries[outcome.name] = Entry(skeleton: skeleton, pieces: pieces) }
    }

    /// Stored tensor `name` as it was converted, or nil when it is not stored.
    func outcome(named name: String) throws -> Conversion.LayerOutcome? {
        guard let entry = lock.withLock({ entries[name] }) else { return nil }
        var outcome = entry.skeleton
        var arrays = try entry.pieces.map { piece in
            try [UInt8](unsafeUninitializedCapacity: piece.count) { buffer, count in
                try read(UnsafeMutableRawBufferPointer(buffer), at: piece.offset)
                count = piece.count
            }
        }.makeIterator()
        switch outcome.tensor.storage {
        case .binarized(var p):
            p.mask = arrays.next()!
            for k in p.levels.indices {
                let bytes = arrays.next()!
                p.levels[k].signs = [UInt64](unsafeUninitializedCapacity: bytes.count / 8) { buffer, count in
                    bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
                    count = bytes.count / 8
                }
            }
            outcome.tensor.storage = .binarized(p)
        case .quantized(var q):
            q.codes = arrays.next()!
            outcome.tensor.storage = .quantized(q)
        case .dense, .strings:
            break
        }
        return outcome
    }

    private func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        try transfer(bytes.count, failure: { "cannot write the scratch file of converted weights: \(String(cString: strerror($0 ?? ENOSPC)))" }) { done in
            pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
        }
    }

    private func read(_ bytes: UnsafeMutableRawBufferPointer, at offset: Int) throws {
        try transfer(bytes.count, failure: { "cannot read back the scratch file of converted weights: \($0.map { String(cString: strerror($0)) } ?? "it is shorter than written")" }) { done in
            pread(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
        }
    }

    /// Calls `step` with the bytes done so far until `count` are done (retrying interrupted
    /// calls); `failure` words the error from errno (nil: the call did nothing).
    private func transfer(_ count: Int, failure: (Int32?) -> String, _ step: (Int) -> Int) throws {
        var done = 0
        while done < count {
            let n = step(done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw ConversionError("\(folder): " + failure(n < 0 ? errno : nil)) }
            done += n
        }
    }
}
