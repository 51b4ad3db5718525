import CONNXProto
import MBCore

/// Tensors' `raw_data` used where it lies in the memory-mapped `.onnx` file, not copied.
///
/// protobuf-c copies every bytes field it unpacks, so unpacking a model whose weights are
/// embedded would hold them twice (the mapped file and the copies). Instead, a wire-level pass
/// over the (already checked) bytes builds a reduced copy of the protobuf in which the payload
/// of each non-empty `TensorProto.raw_data` is replaced by its 8-byte index in a table of byte
/// ranges, and the enclosing messages' lengths are re-encoded. protobuf-c unpacks the reduced
/// copy (metadata only, small); the decoder then turns each index back into a slice of the
/// mapping. Opaque sub-messages (training info, device configurations) are copied as they are:
/// they travel re-encoded from protobuf-c's tree, so their tensors must keep their real bytes.
struct RawDataInPlace: Sendable {
    /// Byte ranges of the extracted payloads in the mapped file, by index.
    let ranges: [(offset: Int, count: Int)]
    let mapping: ByteStorage

    /// Set while the decoder runs over a reduced copy: every non-empty raw_data is then an index.
    @TaskLocal static var current: RawDataInPlace?

    /// The slice for an index payload (8 bytes, little-endian), nil when it is not one of ours.
    func slice(forIndex payload: UnsafeRawBufferPointer) -> ByteSlice? {
        guard payload.count == 8 else { return nil }
        let i = Int(UInt64(littleEndian: payload.loadUnaligned(as: UInt64.self)))
        guard i >= 0, i < ranges.count else { return nil }
        return ByteSlice(storage: mapping, offset: ranges[i].offset, count: ranges[i].count)
    }

    /// The reduced copy of `mapping`'s protobuf (a message of type `descriptor`), or nil when
    /// no tensor carries raw_data (nothing to gain). The bytes must have passed `WireCheck`.
    static func reduce(_ mapping: ByteStorage, descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> (bytes: [UInt8], table: RawDataInPlace)? {
        mapping.withBuffer { bytes in
            var walk = Walk(bytes: bytes)
            let size = walk.size(from: 0, to: bytes.count, descriptor: descriptor)
            guard !walk.ranges.isEmpty else { return nil }
            var out: [UInt8] = []
            out.reserveCapacity(size)
            walk.ranges.removeAll(keepingCapacity: true)
            walk.emit(from: 0, to: bytes.count, descriptor: descriptor, into: &out)
            return (out, RawDataInPlace(ranges: walk.ranges, mapping: mapping))
        }
    }

    /// Two walks over the same fields: `size` finds the reduced length of every message that
    /// holds extracted raw_data (remembered by start offset), `emit` writes the reduced bytes.
    private struct Walk {
        let bytes: UnsafeRawBufferPointer
        var ranges: [(offset: Int, count: Int)] = []
        /// Reduced content length of each changed message, by the offset of its first byte.
        var reducedSizes: [Int: Int] = [:]
        let tensorDescriptor = mb_tensor_descriptor()!
        let opaque: Set<UnsafePointer<ProtobufCMessageDescriptor>> = [
            mb_training_info_descriptor()!, mb_device_configuration_descriptor()!, mb_node_device_configuration_descriptor()!,
        ]
        static let rawDataField: UInt64 = 9
        static let indexBytes = 8

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        static func varint(_ bytes: UnsafeRawBufferPointer, _ position: inout Int) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let byte = bytes[position]
                position += 1
                if shift < 64 { result |= UInt64(byte & 0x7F) << shift }
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
        }

        static func varintSize(_ v: UInt64) -> Int {
            var n = 1
            var v = v >> 7
            while v != 0 { n += 1; v >>= 7 }
            return n
        }

        func subMessage(_ descriptor: UnsafePointer<ProtobufCMessageDescriptor>, _ number: UInt64) -> UnsafePointer<ProtobufCMessageDescriptor>? {
            let d = descriptor.pointee
            for i in 0..<Int(d.n_fields) where UInt64(d.fields[i].id) == number {
                guard d.fields[i].type == PROTOBUF_C_TYPE_MESSAGE, let sub = d.fields[i].descriptor else { return nil }
                let p = sub.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
                return opaque.contains(p) ? nil : p
            }
            return nil
        }

        /// One field: its tag range, and for length-delimited fields the payload range.
        struct Field {
            var start: Int
            var number: UInt64
            var payload: Range<Int>?
            var end: Int
        }

        static func fields(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int, _ body: (Field) -> Void) {
            var position = start
            while position < end {
                let fieldStart = position
                let tag = varint(bytes, &position)
                var payload: Range<Int>?
                switch tag & 7 {
                case 0: _ = varint(bytes, &position)
                case 1: position += 8
                case 5: position += 4
                default:  // 2: length-delimited (WireCheck refused groups and bad types)
                    let length = Int(varint(bytes, &position))
                    payload = position..<(position + length)
                    position += length
                }
                body(Field(start: fieldStart, number: tag >> 3, payload: payload, end: position))
            }
        }

        func isExtracted(_ f: Field, in descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> Bool {
            descriptor == tensorDescriptor && f.number == Self.rawDataField && (f.payload.map { !$0.isEmpty } ?? false)
        }

        /// The reduced content length of a message.
        mutating func size(from start: Int, to end: Int, descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> Int {
            var total = 0
            var changed = false
            Self.fields(bytes, from: start, to: end) { f in
                if isExtracted(f, in: descriptor) {
                    ranges.append((f.payload!.lowerBound, f.payload!.count))
                    total += Self.varintSize(f.number << 3 | 2) + 1 + Self.indexBytes
                    changed = true
                } else if let payload = f.payload, let sub = subMessage(descriptor, f.number) {
                    let before = ranges.count
                    let n = size(from: payload.lowerBound, to: payload.upperBound, descriptor: sub)
                    if ranges.count != before {
                        changed = true
                        total += Self.varintSize(f.number << 3 | 2) + Self.varintSize(UInt64(n)) + n
                    } else {
                        total += f.end - f.start
                    }
                } else {
                    total += f.end - f.start
                }
            }
            if changed { reducedSizes[start] = total }
            return total
        }

        /// Writes the reduced content of a message (after `size` ran over the same bytes).
        mutating func emit(from start: Int, to end: Int, descriptor: UnsafePointer<ProtobufCMessageDescriptor>, into out: inout [UInt8]) {
            Self.fields(bytes, from: start, to: end) { f in
                if isExtracted(f, in: descriptor) {
                    Self.append(varint: f.number << 3 | 2, to: &out)
                    out.append(UInt8(Self.indexBytes))
                    withUnsafeBytes(of: UInt64(ranges.count).littleEndian) { out.append(contentsOf: $0) }
                    ranges.append((f.payload!.lowerBound, f.payload!.count))
                } else if let payload = f.payload, let n = reducedSizes[payload.lowerBound], let sub = subMessage(descriptor, f.number) {
                    Self.append(varint: f.number << 3 | 2, to: &out)
                    Self.append(varint: UInt64(n), to: &out)
                    emit(from: payload.lowerBound, to: payload.upperBound, descriptor: sub, into: &out)
                } else {
                    out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[f.start..<f.end]))
                }
            }
        }

        static func append(varint v: UInt64, to out: inout [UInt8]) {
            var v = v
            while v >= 0x80 {
                out.append(UInt8(v & 0x7F) | 0x80)
                v >>= 7
            }
            out.append(UInt8(v))
        }
    }
}
