import CZlib

/// CRC-32 (zlib's, the one in gzip and PNG), incrementally.
public struct CRC32: Sendable {
    public private(set) var value: UInt32 = 0

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var rest = bytes
        // zlib takes a 32-bit length.
        while !rest.isEmpty {
            let n = min(rest.count, 1 << 30)
            value = UInt32(crc32(uLong(value), rest.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt(n)))
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
        }
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = CRC32()
        c.update(bytes)
        return c.value
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}
