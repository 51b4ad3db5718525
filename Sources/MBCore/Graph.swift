/// The model as mbconvert's converter, file format and runtime see it: ONNX's graph with
/// everything the runtime does not need left out (doc strings, value_info, training info) and
/// every constant — initializers, `Constant` nodes, folded constant subgraphs — in `constants`.
/// MBConvert lowers ONNX into it, MBFormat stores it, MBRuntime executes it.
public struct IRGraph: Sendable {
    public var name: String
    /// Runtime inputs (constants are never inputs).
    public var inputs: [IRValueInfo]
    public var outputs: [IRValueInfo]
    /// In execution order (ONNX requires topological order).
    public var nodes: [IRNode]
    public var constants: [IRTensor]

    public init(name: String = "", inputs: [IRValueInfo] = [], outputs: [IRValueInfo] = [], nodes: [IRNode] = [], constants: [IRTensor] = []) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.nodes = nodes
        self.constants = constants
    }
}

/// A whole model: the main graph and the operator sets it was written against.
public struct IRModel: Sendable {
    public var graph: IRGraph
    /// Domain ("" for the default ONNX domain) to opset version.
    public var opsets: [IROpset]

    public init(graph: IRGraph, opsets: [IROpset]) {
        self.graph = graph
        self.opsets = opsets
    }

    public func opsetVersion(domain: String = "") -> Int64? {
        opsets.first { $0.domain == domain }?.version
    }
}

/// ONNX's default operator domain has two spellings, "" and "ai.onnx"; the IR writes it "".
public enum OperatorDomain {
    public static let onnx = "ai.onnx"

    /// The domain as the IR writes it: "" for ONNX's own operators.
    public static func normalized(_ domain: String?) -> String {
        let d = domain ?? ""
        return d == onnx ? "" : d
    }

    /// Whether `domain` (nil, "" or "ai.onnx") is ONNX's default domain.
    public static func isDefault(_ domain: String?) -> Bool { normalized(domain).isEmpty }
}

public struct IROpset: Sendable, Equatable {
    public var domain: String
    public var version: Int64
    public init(domain: String, version: Int64) {
        self.domain = domain
        self.version = version
    }
}

public enum IRDim: Sendable, Hashable, CustomStringConvertible {
    case fixed(Int64)
    case symbolic(String)
    case unknown

    public var description: String {
        switch self {
        case .fixed(let v): return String(v)
        case .symbolic(let s): return s
        case .unknown: return "?"
        }
    }
}

public struct IRValueInfo: Sendable {
    public var name: String
    /// nil when the model does not say (or for non-tensor types).
    public var elementType: ElementType?
    /// nil when the rank is unknown.
    public var shape: [IRDim]?
    /// The declared type when it is not a tensor (a sequence, an optional, a map); nil for a
    /// tensor or an undeclared type. `.mbm` files do not keep it.
    public var nonTensorType: IRType?

    public init(name: String, elementType: ElementType?, shape: [IRDim]?, nonTensorType: IRType? = nil) {
        self.name = name
        self.elementType = elementType
        self.shape = shape
        self.nonTensorType = nonTensorType
    }
}

/// An ONNX type (TypeProto): of a value, or of the `type` attribute of an `Optional` node.
public indirect enum IRType: Sendable, Equatable, CustomStringConvertible {
    /// A tensor; nil element type or shape when the model does not say.
    case tensor(ElementType?, shape: [IRDim]?)
    /// A sequence of values of one type (nil: not declared).
    case sequence(IRType?)
    /// A value of the type, or none (nil: not declared).
    case optional(IRType?)
    /// Maps, sparse tensors and opaque types: kept as a name, not run.
    case other(String)

    public var description: String {
        switch self {
        case .tensor(let t, let shape):
            return "tensor(\(t?.name ?? "?"))" + (shape.map { "[" + $0.map(\.description).joined(separator: ",") + "]" } ?? "")
        case .sequence(let e): return "seq(\(e?.description ?? "?"))"
        case .optional(let e): return "optional(\(e?.description ?? "?"))"
        case .other(let name): return name
        }
    }
}

public struct IRNode: Sendable {
    public var name: String
    public var opType: String
    /// "" for the default ONNX domain.
    public var domain: String
    /// "" marks an omitted optional input, as in ONNX.
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [IRAttribute]

    public init(name: String, opType: String, domain: String = "", inputs: [String], outputs: [String], attributes: [IRAttribute] = []) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }

    public func attribute(_ name: String) -> IRAttributeValue? {
        attributes.first { $0.name == name }?.value
    }
}

public struct IRAttribute: Sendable {
    public var name: String
    public var value: IRAttributeValue
    public init(name: String, value: IRAttributeValue) {
        self.name = name
        self.value = value
    }
}

public indirect enum IRAttributeValue: Sendable {
    case float(Float)
    case int(Int64)
    case string([UInt8])
    case tensor(IRTensor)
    case graph(IRGraph)
    case floats([Float])
    case ints([Int64])
    case strings([[UInt8]])
    case tensors([IRTensor])
    case graphs([IRGraph])
    /// A type (TYPE_PROTO), as the `Optional` operator's `type` attribute holds.
    case type(IRType)
    /// Not an ONNX kind: exact binary64 values for mbconvert's own attributes (the bit
    /// distribution of binarized activations); `export-onnx` drops the attributes that use it.
    case doubles([Double])
}

/// A constant tensor.
public struct IRTensor: Sendable {
    public enum Storage: Sendable {
        /// Every element, little-endian, packed as ONNX's raw_data (sub-byte types low bits first).
        case dense(ByteSlice)
        /// String tensors: one byte string per element.
        case strings([[UInt8]])
        /// Binarized float weights: mask, sign streams and scales (MBBinarize's packed form).
        case binarized(PackedTensor)
        /// Float weights as n-bit codes into per-group scales or palettes (int-n, k-means).
        case quantized(QuantizedTensor)
    }

    public var name: String
    public var elementType: ElementType
    public var shape: [Int]
    public var storage: Storage

    public init(name: String, elementType: ElementType, shape: [Int], storage: Storage) {
        self.name = name
        self.elementType = elementType
        self.shape = shape
        self.storage = storage
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// Float32 elements of a dense float tensor, viewed without copying. nil for other types.
    public func withFloats<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R? {
        guard elementType == .float, case .dense(let bytes) = storage else { return nil }
        return try bytes.withBytes { raw in
            if raw.count == 0 { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
            if Int(bitPattern: raw.baseAddress!) % MemoryLayout<Float>.alignment == 0 {
                return try body(raw.bindMemory(to: Float.self))
            }
            let copy = [Float](unsafeUninitializedCapacity: raw.count / 4) { buf, n in
                UnsafeMutableRawBufferPointer(buf).copyMemory(from: raw)
                n = raw.count / 4
            }
            return try copy.withUnsafeBufferPointer(body)
        }
    }
}

extension IRTensor {
    /// `values` stored densely as `elementType`: float32 as they are, float16 rounded to the
    /// nearest (ties to even). nil for other types.
    public init?(name: String, shape: [Int], floats values: [Float], as elementType: ElementType) {
        let bytes: ByteSlice
        switch elementType {
        case .float:
            bytes = values.withUnsafeBytes { ByteSlice(storage: ByteStorage(copying: $0)) }
        case .float16:
            let halves = values.map { $0.float16Bits.littleEndian }
            bytes = halves.withUnsafeBytes { ByteSlice(storage: ByteStorage(copying: $0)) }
        default:
            return nil
        }
        self.init(name: name, elementType: elementType, shape: shape, storage: .dense(bytes))
    }

    /// The elements of a dense float32, float64, float16 or bfloat16 tensor as Float; nil for
    /// other types and storage, or when the bytes are too few for the shape.
    public func floatValues() -> [Float]? {
        guard case .dense(let bytes) = storage else { return nil }
        let n = elementCount
        return bytes.withBytes { raw -> [Float]? in
            func u16(_ i: Int) -> UInt16 { UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
            switch elementType {
            case .float:
                guard raw.count >= n * 4 else { return nil }
                return (0..<n).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            case .double:
                guard raw.count >= n * 8 else { return nil }
                return (0..<n).map { Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)))) }
            case .float16:
                guard raw.count >= n * 2 else { return nil }
                return (0..<n).map { Float(float16Bits: u16($0)) }
            case .bfloat16:
                guard raw.count >= n * 2 else { return nil }
                return (0..<n).map { Float(bitPattern: UInt32(u16($0)) << 16) }
            default:
                return nil
            }
        }
    }
}
