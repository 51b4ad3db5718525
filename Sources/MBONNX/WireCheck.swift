import CONNXProto

/// A structural check of protobuf bytes against the ONNX schema, run before protobuf-c sees
/// them. protobuf-c says only "failed" when unpacking fails and recurses without limit; this
/// walk finds the first problem with its byte offset and message path, and refuses nesting
/// deeper than `maxDepth` so a hostile file cannot exhaust the stack inside protobuf-c.
struct WireCheck {
    struct Problem: Error {
        var offset: Int
        var path: String
        var message: String
    }

    let bytes: UnsafeRawBufferPointer
    let maxDepth: Int

    init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    func run(descriptor: UnsafePointer<ProtobufCMessageDescriptor>) throws(Problem) {
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

    private func walk(
        from start: Int, to end: Int, descriptor: UnsafePointer<ProtobufCMessageDescriptor>, path: String, depth: Int
    ) throws(Problem) {
        guard depth <= maxDepth else {
            throw Problem(offset: start, path: path, message: "messages nested deeper than \(maxDepth) levels")
        }
        let typeName = String(cString: descriptor.pointee.short_name)
        var counts: [UInt32: Int] = [:]
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
        }
    }

    private func checkLengthDelimited(
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
