/// Little-endian encoding into a growing byte array.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    public var count: Int { bytes.count }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { append(v) }
    public mutating func u32(_ v: UInt32) { append(v) }
    public mutating func u64(_ v: UInt64) { append(v) }
    public mutating func i32(_ v: Int32) { append(v) }
    public mutating func i64(_ v: Int64) { append(v) }
    public mutating func f32(_ v: Float) { append(v.bitPattern) }
    public mutating func f64(_ v: Double) { append(v.bitPattern) }

    /// A length (u32) then the bytes.
    public mutating func blob(_ v: [UInt8]) {
        u32(UInt32(v.count))
        bytes.append(contentsOf: v)
    }

    public mutating func string(_ s: String) { blob(Array(s.utf8)) }

    public mutating func raw<C: Collection>(_ v: C) where C.Element == UInt8 { bytes.append(contentsOf: v) }

    /// Zero bytes up to the next multiple of `alignment`.
    public mutating func pad(to alignment: Int) {
        let r = bytes.count % alignment
        if r != 0 { bytes.append(contentsOf: repeatElement(0, count: alignment - r)) }
    }

    private mutating func append<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
}

/// A bounds-checked little-endian cursor over bytes someone else keeps alive. Every read checks
/// the remaining length first; counts that could not fit in what remains are refused before
/// anything is allocated for them.
public struct ByteReader {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        /// Byte offset (relative to the reader's start) where the read was attempted.
        public var offset: Int
        public var message: String
        public var description: String { "at byte \(offset): \(message)" }
        public init(offset: Int, message: String) {
            self.offset = offset
            self.message = message
        }
    }

    public let bytes: UnsafeRawBufferPointer
    public private(set) var position: Int = 0

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    public var remaining: Int { bytes.count - position }
    public var isAtEnd: Bool { position == bytes.count }

    @inline(__always)
    private mutating func take<T: FixedWidthInteger>(_: T.Type, _ what: String) throws(Failure) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else {
            throw Failure(offset: position, message: "\(what) needs \(size) bytes, \(remaining) remain")
        }
        let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
        position += size
        return v
    }

    public mutating func u8(_ what: String) throws(Failure) -> UInt8 { try take(UInt8.self, what) }
    public mutating func u16(_ what: String) throws(Failure) -> UInt16 { try take(UInt16.self, what) }
    public mutating func u32(_ what: String) throws(Failure) -> UInt32 { try take(UInt32.self, what) }
    public mutating func u64(_ what: String) throws(Failure) -> UInt64 { try take(UInt64.self, what) }
    public mutating func i32(_ what: String) throws(Failure) -> Int32 { try take(Int32.self, what) }
    public mutating func i64(_ what: String) throws(Failure) -> Int64 { try take(Int64.self, what) }
    public mutating func f32(_ what: String) throws(Failure) -> Float { Float(bitPattern: try take(UInt32.self, what)) }
    public mutating func f64(_ what: String) throws(Failure) -> Double { Double(bitPattern: try take(UInt64.self, what)) }

    /// A u32 count of items each at least `minimumItemSize` bytes; refused when the rest of the
    /// input could not hold that many.
    public mutating func count(_ what: String, minimumItemSize: Int) throws(Failure) -> Int {
        let at = position
        let n = Int(try u32(what))
        guard n <= remaining / max(minimumItemSize, 1) else {
            throw Failure(offset: at, message: "\(what) is \(n), more than the \(remaining) remaining bytes can hold")
        }
        return n
    }

    public mutating func blob(_ what: String) throws(Failure) -> [UInt8] {
        let n = try count("length of \(what)", minimumItemSize: 1)
        let v = Array(bytes[position..<(position + n)])
        position += n
        return v
    }

    public mutating func string(_ what: String) throws(Failure) -> String {
        let at = position
        let b = try blob(what)
        guard let s = String(validating: b, as: UTF8.self) else {
            throw Failure(offset: at, message: "\(what) is not valid UTF-8")
        }
        return s
    }

    public mutating func skip(_ n: Int, _ what: String) throws(Failure) {
        guard n >= 0, n <= remaining else { throw Failure(offset: position, message: "\(what): \(n) bytes, \(remaining) remain") }
        position += n
    }
}
