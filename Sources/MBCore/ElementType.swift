/// Element types, numbered as ONNX's `TensorProto.DataType` so the value read from a file can be
/// used directly. One table (`traits`) describes each type once; everything that needs to know a
/// type's size or name asks it rather than switching on its own.
public enum ElementType: Int32, CaseIterable, Sendable, Codable {
    case float = 1
    case uint8 = 2
    case int8 = 3
    case uint16 = 4
    case int16 = 5
    case int32 = 6
    case int64 = 7
    case string = 8
    case bool = 9
    case float16 = 10
    case double = 11
    case uint32 = 12
    case uint64 = 13
    case complex64 = 14
    case complex128 = 15
    case bfloat16 = 16
    case float8e4m3fn = 17
    case float8e4m3fnuz = 18
    case float8e5m2 = 19
    case float8e5m2fnuz = 20
    case uint4 = 21
    case int4 = 22
    case float4e2m1 = 23
    case float8e8m0 = 24
    case uint2 = 25
    case int2 = 26
    case float6e2m3 = 27
    case float6e3m2 = 28

    /// Which repeated field of ONNX's TensorProto holds this type when `raw_data` is not used.
    public enum ProtoField: Sendable {
        case floatData, int32Data, stringData, int64Data, doubleData, uint64Data
    }

    public struct Traits: Sendable {
        /// Lower-case name as ONNX spells it in `onnx.helper` (e.g. "float16").
        public let name: String
        /// Bits per element in packed little-endian raw form (0 for strings).
        public let bitsPerElement: Int
        /// The typed field a non-raw tensor of this type uses.
        public let protoField: ProtoField
        /// How many values of the typed field make one element (2 for complex types).
        public let valuesPerElement: Int
        /// Sub-byte types pack this many elements into each int32_data value.
        public let elementsPerProtoValue: Int
    }

    public var traits: Traits {
        switch self {
        case .float: return Traits(name: "float", bitsPerElement: 32, protoField: .floatData, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .uint8: return Traits(name: "uint8", bitsPerElement: 8, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .int8: return Traits(name: "int8", bitsPerElement: 8, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .uint16: return Traits(name: "uint16", bitsPerElement: 16, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .int16: return Traits(name: "int16", bitsPerElement: 16, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .int32: return Traits(name: "int32", bitsPerElement: 32, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .int64: return Traits(name: "int64", bitsPerElement: 64, protoField: .int64Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .string: return Traits(name: "string", bitsPerElement: 0, protoField: .stringData, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .bool: return Traits(name: "bool", bitsPerElement: 8, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .float16: return Traits(name: "float16", bitsPerElement: 16, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .double: return Traits(name: "double", bitsPerElement: 64, protoField: .doubleData, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .uint32: return Traits(name: "uint32", bitsPerElement: 32, protoField: .uint64Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .uint64: return Traits(name: "uint64", bitsPerElement: 64, protoField: .uint64Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .complex64: return Traits(name: "complex64", bitsPerElement: 64, protoField: .floatData, valuesPerElement: 2, elementsPerProtoValue: 1)
        case .complex128: return Traits(name: "complex128", bitsPerElement: 128, protoField: .doubleData, valuesPerElement: 2, elementsPerProtoValue: 1)
        case .bfloat16: return Traits(name: "bfloat16", bitsPerElement: 16, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .float8e4m3fn: return Traits(name: "float8e4m3fn", bitsPerElement: 8, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .float8e4m3fnuz: return Traits(name: "float8e4m3fnuz", bitsPerElement: 8, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .float8e5m2: return Traits(name: "float8e5m2", bitsPerElement: 8, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .float8e5m2fnuz: return Traits(name: "float8e5m2fnuz", bitsPerElement: 8, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .uint4: return Traits(name: "uint4", bitsPerElement: 4, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 2)
        case .int4: return Traits(name: "int4", bitsPerElement: 4, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 2)
        case .float4e2m1: return Traits(name: "float4e2m1", bitsPerElement: 4, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 2)
        case .float8e8m0: return Traits(name: "float8e8m0", bitsPerElement: 8, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .uint2: return Traits(name: "uint2", bitsPerElement: 2, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 4)
        case .int2: return Traits(name: "int2", bitsPerElement: 2, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 4)
        case .float6e2m3: return Traits(name: "float6e2m3", bitsPerElement: 6, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        case .float6e3m2: return Traits(name: "float6e3m2", bitsPerElement: 6, protoField: .int32Data, valuesPerElement: 1, elementsPerProtoValue: 1)
        }
    }

    public var name: String { traits.name }

    /// Bytes needed for `count` elements in raw (little-endian, packed) form, or nil on overflow.
    public func rawByteCount(elements count: Int) -> Int? {
        let bits = traits.bitsPerElement
        guard bits > 0, count >= 0 else { return bits == 0 ? nil : nil }
        let (total, overflow) = count.multipliedReportingOverflow(by: bits)
        guard !overflow else { return nil }
        return (total + 7) / 8
    }

    /// A description for types the file names by number that we do not know.
    public static func describe(rawValue: Int32) -> String {
        if let type = ElementType(rawValue: rawValue) { return type.name }
        return rawValue == 0 ? "undefined" : "unknown(\(rawValue))"
    }
}
