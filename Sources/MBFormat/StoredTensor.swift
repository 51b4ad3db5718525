import MBCore

/// How a tensor's payload is laid out. One table: every encoding the reader accepts is listed
/// here, and the round-trip tests iterate over `allCases`.
public enum TensorEncoding: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// Every element little-endian, packed as ONNX's raw_data.
    case raw = 0
    /// String tensors: per element a u32 length and the bytes.
    case strings = 1
    /// Residual sign bits per level, scales, and an entropy-coded mask (see `BinarizedPayload`).
    case binarized = 2
    /// Per-group scale and zero point, n-bit codes (int-n; see `QuantizedTensor`).
    case linear = 3
    /// Per-group palette of 2^n values, n-bit codes (k-means).
    case palette = 4

    public var description: String {
        switch self {
        case .raw: return "raw"
        case .strings: return "strings"
        case .binarized: return "binarized"
        case .linear: return "linear"
        case .palette: return "palette"
        }
    }
}

public enum StoredPayload: Sendable {
    case raw(ByteSlice)
    case strings([[UInt8]])
    case binarized(PackedTensor)
    case quantized(QuantizedTensor)

    public var encoding: TensorEncoding {
        switch self {
        case .raw: return .raw
        case .strings: return .strings
        case .binarized: return .binarized
        case .quantized(let q): return q.scheme == .linear ? .linear : .palette
        }
    }
}

/// One entry of the tensor directory with its payload.
public struct StoredTensor: Sendable {
    public var name: String
    public var elementType: ElementType
    public var shape: [Int]
    public var payload: StoredPayload
    /// Bytes the payload occupies in the file (set by the reader and the writer).
    public internal(set) var storedBytes: Int = 0
    /// Bytes of the mask stream inside a binarized payload (0 otherwise).
    public internal(set) var maskBytes: Int = 0
    /// Mask coding 2: the block sizes the mask is stored by, one width per block (nil for a
    /// per-entry or uniform mask, and for other encodings).
    public internal(set) var maskBlocks: [Int]?

    public init(name: String, elementType: ElementType, shape: [Int], payload: StoredPayload) {
        self.name = name
        self.elementType = elementType
        self.shape = shape
        self.payload = payload
    }

    public var elementCount: Int { shape.reduce(1, *) }
}
