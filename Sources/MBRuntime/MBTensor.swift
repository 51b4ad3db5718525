#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import MBCore

/// A dense tensor: element type, shape and a reference-counted buffer. Values are immutable once
/// made; tensors that share a buffer (Reshape, Identity) are views of the same bytes.
public struct MBTensor: @unchecked Sendable, CustomStringConvertible {
    public let elementType: ElementType
    public let shape: [Int]
    var storage: TensorStorage

    init(elementType: ElementType, shape: [Int], storage: TensorStorage) {
        self.elementType = elementType
        self.shape = shape
        self.storage = storage
    }

    /// Element types a tensor can hold at run time (float16 and double data are converted to
    /// float; 8- and 16-bit integers widened to int32, uint32 to int64).
    public static let supportedTypes: [ElementType] = [.float, .int64, .int32, .bool]

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }

    public init(shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count, "shape \(shape) needs \(shape.reduce(1, *)) values, got \(floats.count)")
        self.init(copying: floats, type: .float, shape: shape)
    }

    public init(shape: [Int], int64s: [Int64]) {
        precondition(shape.reduce(1, *) == int64s.count, "shape \(shape) needs \(shape.reduce(1, *)) values, got \(int64s.count)")
        self.init(copying: int64s, type: .int64, shape: shape)
    }

    public init(shape: [Int], int32s: [Int32]) {
        precondition(shape.reduce(1, *) == int32s.count, "shape \(shape) needs \(shape.reduce(1, *)) values, got \(int32s.count)")
        self.init(copying: int32s, type: .int32, shape: shape)
    }

    public init(shape: [Int], bools: [Bool]) {
        precondition(shape.reduce(1, *) == bools.count, "shape \(shape) needs \(shape.reduce(1, *)) values, got \(bools.count)")
        self.init(copying: bools.map { $0 ? UInt8(1) : 0 }, type: .bool, shape: shape)
    }

    /// A float32 scalar.
    public init(_ scalar: Float) { self.init(shape: [], floats: [scalar]) }
    /// An int64 scalar.
    public init(_ scalar: Int64) { self.init(shape: [], int64s: [scalar]) }

    private init<T>(copying values: [T], type: ElementType, shape: [Int]) {
        let s = TensorStorage(byteCount: values.count * MemoryLayout<T>.stride)
        values.withUnsafeBytes { s.raw.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(s.raw), byteCount: $0.count) }
        self.init(elementType: type, shape: shape, storage: s)
    }

    /// The elements as floats (int and bool tensors are converted).
    public var floats: [Float] {
        switch elementType {
        case .float: return Array(buffer(Float.self))
        case .int64: return buffer(Int64.self).map { Float($0) }
        case .int32: return buffer(Int32.self).map { Float($0) }
        case .bool: return buffer(UInt8.self).map { $0 != 0 ? 1 : 0 }
        default: return []
        }
    }

    /// The elements as Int64 (floats are truncated).
    public var int64s: [Int64] {
        switch elementType {
        case .float: return buffer(Float.self).map { $0.isNaN ? 0 : Int64(max(min($0, 9.2e18), -9.2e18)) }
        case .int64: return Array(buffer(Int64.self))
        case .int32: return buffer(Int32.self).map { Int64($0) }
        case .bool: return buffer(UInt8.self).map { Int64($0 != 0 ? 1 : 0) }
        default: return []
        }
    }

    public var bools: [Bool] { int64s.map { $0 != 0 } }

    /// The float32 elements in place. Precondition: a float tensor.
    public func withFloats<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        precondition(elementType == .float, "withFloats on a \(elementType.name) tensor")
        return try withExtendedLifetime(storage) { try body(buffer(Float.self)) }
    }

    /// The raw little-endian bytes (bool as one byte per element).
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) { try body(UnsafeRawBufferPointer(start: storage.raw, count: count * elementType.runtimeSize)) }
    }

    public var description: String { "\(elementType.name)\(shape)" }

    // MARK: internal access

    @inline(__always)
    func buffer<T>(_: T.Type) -> UnsafeBufferPointer<T> {
        UnsafeBufferPointer(start: storage.raw.assumingMemoryBound(to: T.self), count: count)
    }

    /// Mutable view: only for tensors a kernel just allocated.
    @inline(__always)
    func mutable<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        storage.raw.assumingMemoryBound(to: T.self)
    }

    @inline(__always)
    func pointer<T>(_: T.Type) -> UnsafePointer<T> {
        UnsafePointer(storage.raw.assumingMemoryBound(to: T.self))
    }

    /// The same bytes under another shape (same element count).
    func reshaped(_ newShape: [Int]) -> MBTensor {
        MBTensor(elementType: elementType, shape: newShape, storage: storage)
    }

    /// A tensor of `shape` over this one's elements from `elementOffset` on (a contiguous part:
    /// Split and Slice results). It keeps this tensor's buffer alive and is never written over
    /// (its storage is borrowed, so no op reuses it for an output).
    func view(_ shape: [Int], elementOffset: Int) -> MBTensor {
        let size = elementType.runtimeSize
        let count = shape.reduce(1, *)
        return MBTensor(elementType: elementType, shape: shape,
                        storage: TensorStorage(borrowing: storage.raw + elementOffset * size, byteCount: count * size, owner: storage))
    }
}

extension ElementType {
    /// Bytes per element in a runtime tensor.
    var runtimeSize: Int {
        switch self {
        case .float, .int32: return 4
        case .int64: return 8
        case .bool: return 1
        default: return (traits.bitsPerElement + 7) / 8
        }
    }
}

/// The bytes behind one or more tensors: allocated by the runtime (from a session's pool, and
/// handed back to it when the last tensor using them dies) or borrowed from constant data (kept
/// alive through `owner`).
final class TensorStorage: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
    let byteCount: Int
    let owner: AnyObject?
    /// The pool the bytes return to when this storage dies (nil: freed).
    let home: PoolCore?

    /// Fresh, uninitialized memory, 64-byte aligned.
    init(byteCount: Int) {
        self.byteCount = byteCount
        self.raw = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        self.owner = nil
        self.home = nil
    }

    /// Memory from a pool, returned to it on deinit.
    init(pooled raw: UnsafeMutableRawPointer, byteCount: Int, home: PoolCore) {
        self.raw = raw
        self.byteCount = byteCount
        self.owner = nil
        self.home = home
    }

    /// Memory someone else owns (e.g. a mapped constant); never written.
    init(borrowing raw: UnsafeRawPointer, byteCount: Int, owner: AnyObject) {
        self.raw = UnsafeMutableRawPointer(mutating: raw)
        self.byteCount = byteCount
        self.owner = owner
        self.home = nil
    }

    var recyclable: Bool { owner == nil }

    deinit {
        if let home { home.giveBack(raw, byteCount: byteCount) } else if owner == nil { raw.deallocate() }
    }
}

/// The free lists of one session's pool, shared with every storage it handed out (a tensor
/// may outlive its session, or die on another thread: returns are locked).
final class PoolCore: @unchecked Sendable {
    private let lock = PlainLock()
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var closed = false
    /// Bytes handed out and not yet returned, and their maximum since `resetPeak`.
    private(set) var liveBytes = 0
    private(set) var peakLiveBytes = 0
    /// Buffers that had to be allocated because none of that size was free.
    private(set) var misses = 0
    private(set) var heldBytes = 0

    func take(byteCount: Int) -> UnsafeMutableRawPointer {
        lock.lock()
        defer { lock.unlock() }
        liveBytes += byteCount
        peakLiveBytes = max(peakLiveBytes, liveBytes)
        if let p = free[byteCount]?.popLast() {
            heldBytes -= byteCount
            return p
        }
        misses += 1
        return UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
    }

    func giveBack(_ p: UnsafeMutableRawPointer, byteCount: Int) {
        lock.lock()
        defer { lock.unlock() }
        liveBytes -= byteCount
        if closed { p.deallocate(); return }
        free[byteCount, default: []].append(p)
        heldBytes += byteCount
    }

    func resetPeak() {
        lock.lock()
        peakLiveBytes = liveBytes
        lock.unlock()
    }

    /// Frees the held buffers; later returns are freed at once.
    func close() {
        lock.lock()
        defer { lock.unlock() }
        closed = true
        for list in free.values { for p in list { p.deallocate() } }
        free = [:]
        heldBytes = 0
    }

    deinit { for list in free.values { for p in list { p.deallocate() } } }
}

/// Intermediate buffers of one session, by exact size. A buffer returns when the last tensor
/// viewing it dies (the step after a value's last use drops it, so lifetimes follow liveness),
/// and the next allocation of that size takes it: the same model run twice asks for the same
/// sizes in the same order, so a steady-state run allocates nothing (`misses` stays put).
final class BufferPool {
    let core = PoolCore()

    func take(byteCount: Int) -> TensorStorage {
        TensorStorage(pooled: core.take(byteCount: byteCount), byteCount: byteCount, home: core)
    }

    var bytesHeld: Int { core.heldBytes }

    deinit { core.close() }
}

/// A mutex with NSLock's lock() and unlock(), over pthreads: the runtime does not load Foundation.
final class PlainLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { mutex.initialize(to: pthread_mutex_t()); pthread_mutex_init(mutex, nil) }
    deinit { pthread_mutex_destroy(mutex); mutex.deallocate() }
    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
}
