import MBCore

/// An ONNX TensorProto. Every storage field is kept as it was in the file; `data` and the typed
/// accessors give the elements regardless of where they live.
public struct ONNXTensor: Sendable {
    public struct Segment: Sendable, Equatable {
        public var begin: Int64?
        public var end: Int64?
        public init(begin: Int64? = nil, end: Int64? = nil) {
            self.begin = begin
            self.end = end
        }
    }

    /// Where the elements of an external tensor were found (filled in by the importer).
    public struct ExternalLocation: Sendable {
        /// `location` as written in the model.
        public var location: String
        /// The resolved file path.
        public var path: String
        public var offset: Int
        public var length: Int
        /// The bytes, through a memory map of the external file (no copy).
        public var bytes: ByteSlice
    }

    public var dims: [Int64] = []
    public var dataType: Int32?
    public var segment: Segment?
    public var floatData: [Float] = []
    public var int32Data: [Int32] = []
    public var stringData: [[UInt8]] = []
    public var int64Data: [Int64] = []
    public var name: String?
    public var docString: String?
    public var rawData: ByteSlice?
    public var externalData: [ONNXStringPair] = []
    public var dataLocation: Int32?
    public var doubleData: [Double] = []
    public var uint64Data: [UInt64] = []
    public var metadataProps: [ONNXStringPair] = []

    /// Set by the importer for tensors whose data_location is EXTERNAL.
    public var external: ExternalLocation?

    public init() {}

    public var elementType: ElementType? { dataType.flatMap(ElementType.init(rawValue:)) }
    public var elementCount: Int? { MBCore.elementCount(of: dims) }
    public var isExternal: Bool { dataLocation == 1 }

    /// The bytes of a raw tensor (embedded raw_data or external data), nil for typed storage.
    public var rawBytes: ByteSlice? { external?.bytes ?? rawData }

    /// Size of the elements in raw form (what numpy's `nbytes` reports), nil for strings and
    /// unknown types.
    public var logicalByteCount: Int? {
        guard let type = elementType, let n = elementCount else { return nil }
        return type.rawByteCount(elements: n)
    }

    /// How many values the typed field for this element type must hold.
    func expectedTypedValueCount(type: ElementType, elements: Int) -> Int? {
        let t = type.traits
        let (v, o) = elements.multipliedReportingOverflow(by: t.valuesPerElement)
        guard !o else { return nil }
        return (v + t.elementsPerProtoValue - 1) / t.elementsPerProtoValue
    }

    func typedValueCount(_ field: ElementType.ProtoField) -> Int {
        switch field {
        case .floatData: return floatData.count
        case .int32Data: return int32Data.count
        case .stringData: return stringData.count
        case .int64Data: return int64Data.count
        case .doubleData: return doubleData.count
        case .uint64Data: return uint64Data.count
        }
    }

    /// Checks that the stored data agrees with dims and type; returns a problem description or nil.
    public func dataSizeProblem() -> String? {
        guard segment == nil else { return nil }
        guard let n = elementCount else { return "shape \(describeShape(dims)) has a negative or overflowing element count" }
        guard let type = elementType else {
            return dataType == nil || dataType == 0 ? nil : nil  // unknown types pass through untouched
        }
        if isExternal {
            guard let ext = external else { return nil }
            guard let need = type.rawByteCount(elements: n) else { return nil }
            if ext.length != need {
                return "external data holds \(ext.length) bytes, shape \(describeShape(dims)) of \(type.name) needs \(need)"
            }
            return nil
        }
        if let raw = rawData {
            guard type != .string else { return "string tensors cannot use raw_data" }
            guard let need = type.rawByteCount(elements: n) else { return "byte size of shape \(describeShape(dims)) overflows" }
            if raw.count != need {
                return "raw_data holds \(raw.count) bytes, shape \(describeShape(dims)) of \(type.name) needs \(need)"
            }
            return nil
        }
        let field = type.traits.protoField
        let have = typedValueCount(field)
        guard let need = expectedTypedValueCount(type: type, elements: n) else { return "element count overflows" }
        if have != need {
            return "\(field.protoName) holds \(have) values, shape \(describeShape(dims)) of \(type.name) needs \(need)"
        }
        return nil
    }
}

extension ElementType.ProtoField {
    public var protoName: String {
        switch self {
        case .floatData: return "float_data"
        case .int32Data: return "int32_data"
        case .stringData: return "string_data"
        case .int64Data: return "int64_data"
        case .doubleData: return "double_data"
        case .uint64Data: return "uint64_data"
        }
    }
}
