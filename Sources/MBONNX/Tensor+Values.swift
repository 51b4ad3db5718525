import MBCore

extension ONNXTensor {
    /// The elements in raw form (little-endian, packed), whichever field holds them. Raw and
    /// external tensors return their bytes without copying; typed fields are converted.
    public func rawLittleEndianBytes() -> ByteSlice? {
        if let raw = rawBytes { return raw }
        guard let type = elementType, type != .string, let n = elementCount, let size = type.rawByteCount(elements: n) else { return nil }
        var out = [UInt8](repeating: 0, count: size)
        out.withUnsafeMutableBytes { dst in
            switch type.traits.protoField {
            case .floatData:
                floatData.withUnsafeBytes { copyPrefix($0, into: dst) }
            case .doubleData:
                doubleData.withUnsafeBytes { copyPrefix($0, into: dst) }
            case .int64Data:
                int64Data.withUnsafeBytes { copyPrefix($0, into: dst) }
            case .uint64Data:
                if type == .uint32 {
                    for (i, v) in uint64Data.prefix(n).enumerated() { dst.storeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian, toByteOffset: i * 4, as: UInt32.self) }
                } else {
                    uint64Data.withUnsafeBytes { copyPrefix($0, into: dst) }
                }
            case .int32Data:
                let bytesPerValue = max(1, type.traits.bitsPerElement / 8)
                if type.traits.bitsPerElement < 8 {
                    // Sub-byte types: each int32 value holds one packed byte.
                    for (i, v) in int32Data.prefix(size).enumerated() { dst[i] = UInt8(truncatingIfNeeded: v) }
                } else {
                    for (i, v) in int32Data.prefix(n).enumerated() {
                        var le = UInt32(bitPattern: v).littleEndian
                        withUnsafeBytes(of: &le) { src in
                            for b in 0..<bytesPerValue { dst[i * bytesPerValue + b] = src[b] }
                        }
                    }
                }
            case .stringData:
                break
            }
        }
        return ByteSlice(copying: out)
    }

    /// The elements converted to Float, for numeric types up to 64 bits (not complex, not the
    /// 8/6/4/2-bit float formats). `name` in errors is the tensor's.
    public func floatValues() throws(ONNXError) -> [Float] {
        let label = "tensor '\(name ?? "")'"
        guard let type = elementType else {
            throw ONNXError(.tensorData, file: label, "element type \(ElementType.describe(rawValue: dataType ?? 0)) is not numeric")
        }
        guard let n = elementCount else { throw ONNXError(.tensorData, file: label, "shape \(describeShape(dims)) overflows") }
        if let problem = dataSizeProblem() { throw ONNXError(.tensorData, file: label, problem) }
        if rawBytes == nil {
            switch type {
            case .float: return floatData
            case .double: return doubleData.map { Float($0) }
            case .int64: return int64Data.map { Float($0) }
            default: break
            }
        }
        guard let bytes = rawLittleEndianBytes() else {
            throw ONNXError(.tensorData, file: label, "has no data")
        }
        let converted = bytes.withBytes { (raw: UnsafeRawBufferPointer) -> [Float]? in
            func load<T: FixedWidthInteger>(_: T.Type, _ i: Int) -> T { T(littleEndian: raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self)) }
            switch type {
            case .float: return (0..<n).map { Float(bitPattern: load(UInt32.self, $0)) }
            case .double: return (0..<n).map { Float(Double(bitPattern: load(UInt64.self, $0))) }
            case .float16: return (0..<n).map { Float(float16Bits: load(UInt16.self, $0)) }
            case .bfloat16: return (0..<n).map { Float(bitPattern: UInt32(load(UInt16.self, $0)) << 16) }
            case .int8: return (0..<n).map { Float(Int8(bitPattern: raw[$0])) }
            case .uint8, .bool: return (0..<n).map { Float(raw[$0]) }
            case .int16: return (0..<n).map { Float(Int16(bitPattern: load(UInt16.self, $0))) }
            case .uint16: return (0..<n).map { Float(load(UInt16.self, $0)) }
            case .int32: return (0..<n).map { Float(Int32(bitPattern: load(UInt32.self, $0))) }
            case .uint32: return (0..<n).map { Float(load(UInt32.self, $0)) }
            case .int64: return (0..<n).map { Float(Int64(bitPattern: load(UInt64.self, $0))) }
            case .uint64: return (0..<n).map { Float(load(UInt64.self, $0)) }
            default: return nil
            }
        }
        guard let converted else { throw ONNXError(.tensorData, file: label, "element type \(type.name) cannot be read as float") }
        return converted
    }

    /// Integer elements (int8...int64, uint8...uint64, bool) as Int64, e.g. for shape tensors.
    public func int64Values() throws(ONNXError) -> [Int64] {
        let label = "tensor '\(name ?? "")'"
        guard let type = elementType, let n = elementCount else {
            throw ONNXError(.tensorData, file: label, "has no usable element type or shape")
        }
        if let problem = dataSizeProblem() { throw ONNXError(.tensorData, file: label, problem) }
        if rawBytes == nil, type == .int64 { return int64Data }
        guard let bytes = rawLittleEndianBytes() else { throw ONNXError(.tensorData, file: label, "has no data") }
        let converted = bytes.withBytes { (raw: UnsafeRawBufferPointer) -> [Int64]? in
            func load<T: FixedWidthInteger>(_: T.Type, _ i: Int) -> T { T(littleEndian: raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self)) }
            switch type {
            case .int8: return (0..<n).map { Int64(Int8(bitPattern: raw[$0])) }
            case .uint8, .bool: return (0..<n).map { Int64(raw[$0]) }
            case .int16: return (0..<n).map { Int64(Int16(bitPattern: load(UInt16.self, $0))) }
            case .uint16: return (0..<n).map { Int64(load(UInt16.self, $0)) }
            case .int32: return (0..<n).map { Int64(Int32(bitPattern: load(UInt32.self, $0))) }
            case .uint32: return (0..<n).map { Int64(load(UInt32.self, $0)) }
            case .int64: return (0..<n).map { Int64(bitPattern: load(UInt64.self, $0)) }
            case .uint64: return (0..<n).map { Int64(bitPattern: load(UInt64.self, $0)) }
            default: return nil
            }
        }
        guard let converted else { throw ONNXError(.tensorData, file: label, "element type \(type.name) is not an integer type") }
        return converted
    }
}

private func copyPrefix(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) {
    let n = min(src.count, dst.count)
    if n > 0 { dst.baseAddress!.copyMemory(from: src.baseAddress!, byteCount: n) }
}
