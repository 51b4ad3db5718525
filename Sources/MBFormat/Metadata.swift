import MBCore

/// Typed metadata (the META section).
public enum MetadataValue: Sendable, Equatable {
    case string(String)
    case int(Int64)
    case double(Double)
    case bytes([UInt8])
    /// JSON text (per-layer statistics and other structured reports).
    case json(String)

    var typeCode: UInt8 {
        switch self {
        case .string: return 1
        case .int: return 2
        case .double: return 3
        case .bytes: return 4
        case .json: return 5
        }
    }
}

public struct MetadataEntry: Sendable, Equatable {
    public var key: String
    public var value: MetadataValue
    public init(_ key: String, _ value: MetadataValue) {
        self.key = key
        self.value = value
    }
}

/// Well-known keys. Readers must accept and keep keys they do not know.
public enum MetadataKey {
    public static let producer = "producer"
    public static let producerVersion = "producer.version"
    public static let sourceFile = "source.file"
    public static let sourceSHA256 = "source.sha256"
    public static let sourceBytes = "source.bytes"
    public static let policyText = "policy.text"
    public static let policyFile = "policy.file"
    public static let layerStatistics = "layers"
    /// JSON: the per-layer output corrections of a calibrated conversion (`--calibrate`), so
    /// that `verify` can recompute every calibrated tensor from the ONNX values.
    public static let calibration = "calibration"
    /// Blob: the same corrections as binary float32 arrays (what conversions write now; see
    /// Schemas/mbm-format.md). `calibration` (JSON) is still read from older files.
    public static let calibrationRecord = "calibration.f32"
}

enum MetadataCodec {
    static func encode(_ entries: [MetadataEntry]) -> [UInt8] {
        var w = ByteWriter()
        w.u32(UInt32(entries.count))
        for e in entries {
            w.string(e.key)
            w.u8(e.value.typeCode)
            switch e.value {
            case .string(let s), .json(let s): w.string(s)
            case .int(let i): w.i64(i)
            case .double(let d): w.f64(d)
            case .bytes(let b): w.blob(b)
            }
        }
        return w.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws(ByteReader.Failure) -> [MetadataEntry] {
        var r = ByteReader(bytes)
        let n = try r.count("metadata count", minimumItemSize: 5)
        var out: [MetadataEntry] = []
        for _ in 0..<n {
            let key = try r.string("metadata key")
            let at = r.position
            switch try r.u8("metadata type") {
            case 1: out.append(MetadataEntry(key, .string(try r.string("value of '\(key)'"))))
            case 2: out.append(MetadataEntry(key, .int(try r.i64("value of '\(key)'"))))
            case 3: out.append(MetadataEntry(key, .double(try r.f64("value of '\(key)'"))))
            case 4: out.append(MetadataEntry(key, .bytes(try r.blob("value of '\(key)'"))))
            case 5: out.append(MetadataEntry(key, .json(try r.string("value of '\(key)'"))))
            case let t: throw ByteReader.Failure(offset: at, message: "metadata '\(key)' has unknown type \(t)")
            }
        }
        guard r.isAtEnd else { throw ByteReader.Failure(offset: r.position, message: "\(r.remaining) bytes after the metadata") }
        return out
    }
}
