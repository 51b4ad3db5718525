import CONNXProto

/// A structural check of protobuf bytes against the ONNX schema, run before protobuf-c sees
/// them. protobuf-c says only "failed" when unpacking fails and recurses without limit; this
/// walk finds the first problem with its byte offset and message path, and refuses nesting
/// deeper than `maxDepth` so a hostile file cannot exhaust the stack inside protobuf-c. It also
/// counts what protobuf-c would allocate per item: NodeProto messages anywhere in the file
/// (`maxNodes`) and the values of each repeated field of an AttributeProto (`maxAttributeValues`).
struct WireCheck {
    struct Problem: Error {
        var offset: Int
        var path: String
        var message: String
        /// A configurable limit was reached (the bytes themselves may be well formed).
        var isLimit = false
    }

    let bytes: UnsafeRawBufferPointer
    let maxDepth: Int
    let maxNodes: Int
    let maxAttributeValues: Int
    private(set) var nodes = 0
    private let nodeDescriptor = mb_node_descriptor()!
    private let attributeDescriptor = mb_attribute_descriptor()!

    init(bytes: UnsafeRawBufferPointer, maxDepth: Int, maxNodes: Int = .max, maxAttributeValues: Int = .max) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.maxNodes = maxNodes
        self.maxAttributeValues = maxAttributeValues
    }

    init(bytes: UnsafeRawBufferPointer, options: ONNXReader.Options) {
        self.init(bytes: bytes, maxDepth: options.maxNestingDepth, maxNodes: options.maxNodes,
                  maxAttributeValues: options.maxAttributeValues)
    }

    mutating func run(descriptor: UnsafePointer<ProtobufCMessageDescriptor>) throws(Problem) {
        try walk(from: 0, to: bytes.count, descriptor: descriptor, path: String(cString: descriptor.pointee.short_name), depth: 1)
    }

    private func varint(at position: inout Int, end: Int, path: String, what: String) throws(Problem) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        let start = position
        while true {
            guard position < end else {
                throw Problem(offset: start, path: path, message: "\(what) runs past the end of its message (file truncated?)")
            }
            let byte = bytes[position]
            position += 1
            if shift < 64 { result |= UInt64(byte & 0x7F) << shift }
            if byte & 0x80 == 0 { return result }
            shift += 7
            guard shift < 70 else {
                throw Problem(offset: start, path: path, message: "\(what) is a varint longer than 10 bytes")
            }
        }
    }

    private func field(_ descriptor: UnsafePointer<ProtobufCMessageDescriptor>, number: UInt32) -> ProtobufCFieldDescriptor? {
        let d = descriptor.pointee
        for i in 0..<Int(d.n_fields) where d.fields[i].id == number { return d.fields[i] }
        return nil
    }

    private mutating func walk(
        from start: Int, to end: Int, descriptor: UnsafePointer<ProtobufCMessageDescriptor>, path: String, depth: Int
    ) throws(Problem) {
        guard depth <= maxDepth else {
            throw Problem(offset: start, path: path, message: "messages nested deeper than \(maxDepth) levels (ONNXReader.Options.maxNestingDepth)", isLimit: true)
        }
        if descriptor == nodeDescriptor {
            nodes += 1
            guard nodes <= maxNodes else {
                throw Problem(offset: start, path: path, message: "more than \(maxNodes) nodes in the model (ONNXReader.Options.maxNodes)", isLimit: true)
            }
        }
        let isAttribute = descriptor == attributeDescriptor
        let typeName = String(cString: descriptor.pointee.short_name)
        var counts: [UInt32: Int] = [:]
        // Values per repeated field (packed runs count every value); attributes only.
        var values: [UInt32: Int] = [:]
        var position = start
        while position < end {
            let tagOffset = position
            let tag = try varint(at: &position, end: end, path: path, what: "a field tag")
            let number = tag >> 3
            let wireType = Int(tag & 7)
            guard number > 0, number <= 0x1FFF_FFFF else {
                throw Problem(offset: tagOffset, path: path,
                              message: "field number \(number) is not valid in \(typeName) (not an ONNX protobuf, or damaged)")
            }
            let fd = field(descriptor, number: UInt32(number))
            let name = fd.map { String(cString: $0.name) } ?? "field \(number)"
            let index = counts[UInt32(number), default: 0]
            counts[UInt32(number)] = index + 1
            let here = fd.map { $0.label == PROTOBUF_C_LABEL_REPEATED ? "\(path).\(name)[\(index)]" : "\(path).\(name)" }
                ?? "\(path).<field \(number)>"
            let fieldStart = position

            switch wireType {
            case 0:
                if let fd, !Self.acceptsVarint(fd) {
                    throw Problem(offset: tagOffset, path: here, message: "\(typeName).\(name) has wire type varint, which its type does not allow")
                }
                _ = try varint(at: &position, end: end, path: here, what: "the value of \(name)")
            case 1, 5:
                let size = wireType == 1 ? 8 : 4
                if let fd, !Self.acceptsFixed(fd, size: size) {
                    throw Problem(offset: tagOffset, path: here, message: "\(typeName).\(name) has a \(size * 8)-bit fixed wire type, which its type does not allow")
                }
                guard end - position >= size else {
                    throw Problem(offset: tagOffset, path: here, message: "\(size)-byte value of \(name) runs past the end of its message (file truncated?)")
                }
                position += size
            case 2:
                let lengthOffset = position
                let length = try varint(at: &position, end: end, path: here, what: "the length of \(name)")
                guard length <= UInt64(end - position) else {
                    throw Problem(offset: lengthOffset, path: here,
                                  message: "\(name) declares \(length) bytes but only \(end - position) remain in its message (file truncated?)")
                }
                let payloadEnd = position + Int(length)
                if let fd {
                    try checkLengthDelimited(fd, from: position, to: payloadEnd, path: here, typeName: typeName, name: name, depth: depth)
                }
                position = payloadEnd
            case 3, 4:
                throw Problem(offset: tagOffset, path: here, message: "group wire type (deprecated in protobuf, never used by ONNX)")
            default:
                throw Problem(offset: tagOffset, path: here, message: "invalid wire type \(wireType) (not an ONNX protobuf, or damaged)")
            }
            if isAttribute, let fd, fd.label == PROTOBUF_C_LABEL_REPEATED {
                let n = wireType == 2 && Self.isPackable(fd) ? try packedCount(fd, from: fieldStart, to: position, path: here) : 1
                let total = values[UInt32(number), default: 0] + n
                values[UInt32(number)] = total
                guard total <= maxAttributeValues else {
                    throw Problem(offset: tagOffset, path: here,
                                  message: "attribute '\(name)' holds more than \(maxAttributeValues) values (ONNXReader.Options.maxAttributeValues)", isLimit: true)
                }
            }
        }
    }

    /// How many numbers a packed run (length varint then payload, already checked) holds.
    private func packedCount(_ fd: ProtobufCFieldDescriptor, from start: Int, to end: Int, path: String) throws(Problem) -> Int {
        var position = start
        let length = Int(try varint(at: &position, end: end, path: path, what: "a length"))
        if let size = Self.fixedSize(fd) { return length / size }
        var n = 0
        for i in position..<end where bytes[i] & 0x80 == 0 { n += 1 }
        return n
    }

    private static func isPackable(_ fd: ProtobufCFieldDescriptor) -> Bool {
        fd.type != PROTOBUF_C_TYPE_MESSAGE && fd.type != PROTOBUF_C_TYPE_STRING && fd.type != PROTOBUF_C_TYPE_BYTES
    }

    private mutating func checkLengthDelimited(
        _ fd: ProtobufCFieldDescriptor, from start: Int, to end: Int, path: String, typeName: String, name: String, depth: Int
    ) throws(Problem) {
        switch fd.type {
        case PROTOBUF_C_TYPE_MESSAGE:
            let sub = fd.descriptor!.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
            try walk(from: start, to: end, descriptor: sub, path: path, depth: depth + 1)
        case PROTOBUF_C_TYPE_STRING, PROTOBUF_C_TYPE_BYTES:
            break
        default:
            // A packed run of numbers.
            guard fd.label == PROTOBUF_C_LABEL_REPEATED else {
                throw Problem(offset: start, path: path, message: "\(typeName).\(name) is a single number but is stored length-delimited")
            }
            if let size = Self.fixedSize(fd) {
                guard (end - start) % size == 0 else {
                    throw Problem(offset: start, path: path, message: "packed \(name) is \(end - start) bytes, not a multiple of \(size)")
                }
            } else {
                var position = start
                while position < end {
                    _ = try varint(at: &position, end: end, path: path, what: "a packed value of \(name)")
                }
            }
        }
    }

    private static func fixedSize(_ fd: ProtobufCFieldDescriptor) -> Int? {
        switch fd.type {
        case PROTOBUF_C_TYPE_FLOAT, PROTOBUF_C_TYPE_FIXED32, PROTOBUF_C_TYPE_SFIXED32: return 4
        case PROTOBUF_C_TYPE_DOUBLE, PROTOBUF_C_TYPE_FIXED64, PROTOBUF_C_TYPE_SFIXED64: return 8
        default: return nil
        }
    }

    private static func acceptsVarint(_ fd: ProtobufCFieldDescriptor) -> Bool {
        switch fd.type {
        case PROTOBUF_C_TYPE_INT32, PROTOBUF_C_TYPE_SINT32, PROTOBUF_C_TYPE_UINT32, PROTOBUF_C_TYPE_INT64,
             PROTOBUF_C_TYPE_SINT64, PROTOBUF_C_TYPE_UINT64, PROTOBUF_C_TYPE_BOOL, PROTOBUF_C_TYPE_ENUM:
            return true
        default:
            return false
        }
    }

    private static func acceptsFixed(_ fd: ProtobufCFieldDescriptor, size: Int) -> Bool {
        fixedSize(fd) == size
    }
}
