/// Fixed facts of the `.mbm` container (Schemas/mbm-format.md is the normative text).
public enum MBMLayout {
    /// "\x89MBM\r\n\x1A\n": a non-ASCII first byte and line-ending bytes catch text-mode damage.
    public static let magic: [UInt8] = [0x89, 0x4D, 0x42, 0x4D, 0x0D, 0x0A, 0x1A, 0x0A]
    public static let majorVersion: UInt16 = 1
    public static let minorVersion: UInt16 = 0
    public static let headerSize = 64
    public static let sectionEntrySize = 32
    /// Every section and every tensor payload starts at a multiple of this.
    public static let alignment = 64
    /// Nested subgraphs deeper than this are refused.
    public static let maxGraphDepth = 64
}

/// A section's four-character tag.
public struct SectionTag: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public init(_ text: StaticString) {
        precondition(text.utf8CodeUnitCount == 4)
        var v: UInt32 = 0
        text.withUTF8Buffer { for (i, b) in $0.enumerated() { v |= UInt32(b) << (8 * UInt32(i)) } }
        rawValue = v
    }

    public static let metadata = SectionTag("META")
    public static let graph = SectionTag("GRPH")
    public static let tensorDirectory = SectionTag("TDIR")
    public static let data = SectionTag("DATA")

    public var description: String {
        let bytes = (0..<4).map { UInt8(truncatingIfNeeded: rawValue >> (8 * UInt32($0))) }
        if bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return String(decoding: bytes, as: UTF8.self) }
        return "0x" + String(rawValue, radix: 16)
    }
}

public struct SectionEntry: Sendable, Equatable {
    public static let flagRequired: UInt32 = 1

    public var tag: SectionTag
    public var flags: UInt32
    public var offset: Int
    public var length: Int
    public var crc: UInt32

    public var isRequired: Bool { flags & Self.flagRequired != 0 }
}
