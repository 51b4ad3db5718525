import MBCore

// Plain Swift values for an ONNX model. They mirror ONNX's messages field for field, including
// presence (an absent optional field is nil, an empty string is ""), so that exporting a model
// we imported writes the same bytes. Large tensor payloads are not copied: they stay in the
// buffer protobuf-c allocated (adopted by `ByteStorage`) or in a memory-mapped external file.

public struct ONNXModel: Sendable {
    public var irVersion: Int64?
    public var opsetImports: [ONNXOperatorSetID] = []
    public var producerName: String?
    public var producerVersion: String?
    public var domain: String?
    public var modelVersion: Int64?
    public var docString: String?
    public var graph: ONNXGraph?
    public var metadataProps: [ONNXStringPair] = []
    /// Kept as their encoded bytes: mbconvert neither reads nor changes training programs.
    public var trainingInfo: [ONNXOpaqueMessage] = []
    public var functions: [ONNXFunction] = []
    /// Multi-device configurations, kept as their encoded bytes.
    public var configuration: [ONNXOpaqueMessage] = []

    public init() {}

    /// The opset version of a domain ("" and "ai.onnx" are the same domain), or nil.
    public func opsetVersion(domain: String = "") -> Int64? {
        let wanted = OperatorDomain.normalized(domain)
        return opsetImports.first { OperatorDomain.normalized($0.domain) == wanted }?.version
    }

    /// The opset imports as the IR keeps them: domains normalized, a missing version read as 1.
    public var irOpsets: [IROpset] {
        opsetImports.map { IROpset(domain: OperatorDomain.normalized($0.domain), version: $0.version ?? 1) }
    }
}

public struct ONNXOperatorSetID: Sendable, Equatable {
    public var domain: String?
    public var version: Int64?
    public init(domain: String? = nil, version: Int64? = nil) {
        self.domain = domain
        self.version = version
    }
}

public struct ONNXStringPair: Sendable, Equatable {
    public var key: String?
    public var value: String?
    public init(key: String? = nil, value: String? = nil) {
        self.key = key
        self.value = value
    }
}

/// A message mbconvert passes through untouched, held as its protobuf encoding.
public struct ONNXOpaqueMessage: Sendable, Equatable {
    public var encoded: [UInt8]
    public init(encoded: [UInt8]) { self.encoded = encoded }
}

public struct ONNXGraph: Sendable {
    public var nodes: [ONNXNode] = []
    public var name: String?
    public var initializers: [ONNXTensor] = []
    public var sparseInitializers: [ONNXSparseTensor] = []
    public var docString: String?
    public var inputs: [ONNXValueInfo] = []
    public var outputs: [ONNXValueInfo] = []
    public var valueInfo: [ONNXValueInfo] = []
    public var quantizationAnnotation: [ONNXTensorAnnotation] = []
    public var metadataProps: [ONNXStringPair] = []
    public init() {}
}

public struct ONNXTensorAnnotation: Sendable {
    public var tensorName: String?
    public var quantParameterTensorNames: [ONNXStringPair] = []
    public init() {}
}

public struct ONNXNode: Sendable {
    public var inputs: [String] = []
    public var outputs: [String] = []
    public var name: String?
    public var opType: String?
    public var domain: String?
    public var overload: String?
    public var attributes: [ONNXAttribute] = []
    public var docString: String?
    public var metadataProps: [ONNXStringPair] = []
    public var deviceConfigurations: [ONNXOpaqueMessage] = []
    public init() {}

    public func attribute(_ name: String) -> ONNXAttribute? {
        attributes.first { $0.name == name }
    }
}

public struct ONNXAttribute: Sendable {
    /// ONNX's AttributeProto.AttributeType numbering.
    public enum Kind: Int32, Sendable {
        case undefined = 0, float = 1, int = 2, string = 3, tensor = 4, graph = 5
        case floats = 6, ints = 7, strings = 8, tensors = 9, graphs = 10
        case sparseTensor = 11, sparseTensors = 12, typeProto = 13, typeProtos = 14
    }

    public var name: String?
    public var refAttrName: String?
    public var docString: String?
    /// The raw `type` field (nil when absent; see `kind`).
    public var type: Int32?
    public var f: Float?
    public var i: Int64?
    public var s: [UInt8]?
    public var t: ONNXTensor?
    public var g: ONNXGraph?
    public var sparseTensor: ONNXSparseTensor?
    public var tp: ONNXTypeProto?
    public var floats: [Float] = []
    public var ints: [Int64] = []
    public var strings: [[UInt8]] = []
    public var tensors: [ONNXTensor] = []
    public var graphs: [ONNXGraph] = []
    public var sparseTensors: [ONNXSparseTensor] = []
    public var typeProtos: [ONNXTypeProto] = []
    public init() {}

    public var kind: Kind? { type.flatMap(Kind.init(rawValue:)) }

    /// `s` as UTF-8 text (lossy for invalid bytes).
    public var stringValue: String? { s.map { String(decoding: $0, as: UTF8.self) } }
}

public struct ONNXValueInfo: Sendable {
    public var name: String?
    public var type: ONNXTypeProto?
    public var docString: String?
    public var metadataProps: [ONNXStringPair] = []
    public init() {}
}

public struct ONNXTypeProto: Sendable {
    public indirect enum Value: Sendable {
        case notSet
        case tensor(elemType: Int32?, shape: ONNXShape?)
        case sequence(elemType: ONNXTypeProto?)
        case map(keyType: Int32?, valueType: ONNXTypeProto?)
        case optional(elemType: ONNXTypeProto?)
        case sparseTensor(elemType: Int32?, shape: ONNXShape?)
        case opaque(domain: String?, name: String?)
    }

    public var value: Value = .notSet
    public var denotation: String?
    public init(value: Value = .notSet, denotation: String? = nil) {
        self.value = value
        self.denotation = denotation
    }
}

public struct ONNXShape: Sendable {
    public struct Dimension: Sendable {
        public enum Value: Sendable, Equatable {
            case unknown
            case fixed(Int64)
            case symbolic(String)
        }
        public var value: Value = .unknown
        public var denotation: String?
        public init(value: Value = .unknown, denotation: String? = nil) {
            self.value = value
            self.denotation = denotation
        }
    }
    public var dims: [Dimension] = []
    public init(dims: [Dimension] = []) { self.dims = dims }
}

public struct ONNXSparseTensor: Sendable {
    public var values: ONNXTensor?
    public var indices: ONNXTensor?
    public var dims: [Int64] = []
    public init() {}
}

public struct ONNXFunction: Sendable {
    public var name: String?
    public var inputs: [String] = []
    public var outputs: [String] = []
    public var attributeNames: [String] = []
    public var attributeProtos: [ONNXAttribute] = []
    public var nodes: [ONNXNode] = []
    public var docString: String?
    public var opsetImports: [ONNXOperatorSetID] = []
    public var domain: String?
    public var overload: String?
    public var valueInfo: [ONNXValueInfo] = []
    public var metadataProps: [ONNXStringPair] = []
    public init() {}
}
