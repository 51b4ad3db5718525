import MBCore

/// IR constants to runtime tensors: float, int64, int32 and bool data are used in place when
/// aligned (no copy of a mapped weight); float16, bfloat16 and double become float; int8, uint8, int16
/// and uint16 are widened to int32 and uint32 to int64 (values exact); uint64 is held as int64
/// (its bit pattern); the float8, float4 and float8e8m0 types become float and the 4- and 2-bit
/// integers int32 (exact, `LowPrecision`); other types are refused with their name.
enum TensorConversion {
    /// The type a value of `declared` type is held as at run time, nil when it cannot be held.
    static func runtimeType(of declared: ElementType) -> ElementType? {
        switch declared {
        case .float, .float16, .bfloat16, .double: return .float
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float4e2m1, .float8e8m0: return .float
        // uint64 as its bit pattern: +, -, * and bit operations wrap as they would in 64 bits.
        case .int64, .uint32, .uint64: return .int64
        case .int32, .int8, .uint8, .int16, .uint16, .int4, .uint4, .int2, .uint2: return .int32
        case .bool: return .bool
        default: return nil
        }
    }

    struct Failure: Error {
        let message: String
        var kind: MBRuntimeError.Kind = .unsupportedOperator
    }

    /// Dequantized weights (binarized, int-n, palette) held as a float tensor.
    static func expanded(_ values: [Float], shape: [Int]) -> MBTensor {
        let s = TensorStorage(byteCount: values.count * 4)
        values.withUnsafeBytes { if $0.count > 0 { s.raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        return MBTensor(elementType: .float, shape: shape, storage: s)
    }

    static func tensor(from t: IRTensor, maxBytes: Int = MBSession.Options.defaultMaxTensorBytes) throws(Failure) -> MBTensor {
        // What the runtime holds: float16 and double become float, binarized weights float.
        let size = runtimeType(of: t.elementType)?.runtimeSize ?? 4
        guard let n = elementCount(of: t.shape), let runtimeBytes = byteCount(elements: n, size: size) else {
            throw Failure(message: "shape \(t.shape) has a negative dimension or more elements than a 64-bit count can hold", kind: .limitExceeded)
        }
        guard runtimeBytes <= maxBytes else {
            throw Failure(message: "shape \(t.shape) needs \(runtimeBytes) bytes at run time, more than the limit of \(maxBytes) (MBModel.Options.maxTensorBytes)",
                          kind: .limitExceeded)
        }
        if case .binarized(let packed) = t.storage {
            // Expanded once at load into exactly the stored values (the one dequantization).
            return expanded(packed.dequantized(), shape: t.shape)
        }
        if case .quantized(let q) = t.storage {
            return expanded(q.dequantized(), shape: t.shape)
        }
        guard case .dense(let bytes) = t.storage else { throw Failure(message: "string tensors are not supported") }
        switch t.elementType {
        case .float, .int64, .int32, .bool, .uint64:
            let held = t.elementType == .uint64 ? ElementType.int64 : t.elementType
            let size = held.runtimeSize
            guard bytes.count >= n * size else { throw Failure(message: "holds \(bytes.count) bytes for \(n) elements") }
            let aligned = bytes.withBytes { raw in raw.baseAddress.map { Int(bitPattern: $0) % 8 == 0 } ?? true }
            if aligned, n > 0, let base = bytes.storage.base {
                return MBTensor(elementType: held, shape: t.shape,
                                storage: TensorStorage(borrowing: base + bytes.offset, byteCount: n * size, owner: bytes.storage))
            }
            let s = TensorStorage(byteCount: n * size)
            bytes.withBytes { raw in if n > 0 { s.raw.copyMemory(from: raw.baseAddress!, byteCount: n * size) } }
            // A copy out of a mapped file: its pages there are not needed again (a later reader
            // re-reads them from the file). Without this a model's weights were resident twice
            // for as long as any aligned constant kept the mapping alive (SqueezeNet: 5 MB).
            bytes.releaseResidentPages()
            return MBTensor(elementType: held, shape: t.shape, storage: s)
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float4e2m1, .float8e8m0, .int4, .uint4, .int2, .uint2:
            return try lowPrecision(t, bytes, count: n)
        case .float16:
            guard bytes.count >= n * 2 else { throw Failure(message: "holds \(bytes.count) bytes for \(n) elements") }
            let s = TensorStorage(byteCount: n * 4)
            let out = s.raw.assumingMemoryBound(to: Float.self)
            bytes.withBytes { raw in
                for i in 0..<n { out[i] = Float(float16Bits: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) }
            }
            return MBTensor(elementType: .float, shape: t.shape, storage: s)
        case .bfloat16:
            // The upper half of a float32: exact.
            guard bytes.count >= n * 2 else { throw Failure(message: "holds \(bytes.count) bytes for \(n) elements") }
            let s = TensorStorage(byteCount: n * 4)
            let out = s.raw.assumingMemoryBound(to: Float.self)
            bytes.withBytes { raw in
                for i in 0..<n { out[i] = Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) << 16) }
            }
            return MBTensor(elementType: .float, shape: t.shape, storage: s)
        case .double:
            guard bytes.count >= n * 8 else { throw Failure(message: "holds \(bytes.count) bytes for \(n) elements") }
            let s = TensorStorage(byteCount: n * 4)
            let out = s.raw.assumingMemoryBound(to: Float.self)
            bytes.withBytes { raw in
                for i in 0..<n { out[i] = Float(Double(bitPattern: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).littleEndian)) }
            }
            return MBTensor(elementType: .float, shape: t.shape, storage: s)
        case .int8, .uint8, .int16, .uint16, .uint32:
            let width = t.elementType.runtimeSize
            guard bytes.count >= n * width else { throw Failure(message: "holds \(bytes.count) bytes for \(n) elements") }
            let wide = runtimeType(of: t.elementType)!
            let s = TensorStorage(byteCount: n * wide.runtimeSize)
            bytes.withBytes { raw in
                func widen<S: FixedWidthInteger, D: FixedWidthInteger>(_: S.Type, _: D.Type) {
                    let out = s.raw.assumingMemoryBound(to: D.self)
                    for i in 0..<n { out[i] = D(S(littleEndian: raw.loadUnaligned(fromByteOffset: i * width, as: S.self))) }
                }
                switch t.elementType {
                case .int8: widen(Int8.self, Int32.self)
                case .uint8: widen(UInt8.self, Int32.self)
                case .int16: widen(Int16.self, Int32.self)
                case .uint16: widen(UInt16.self, Int32.self)
                default: widen(UInt32.self, Int64.self)
                }
            }
            return MBTensor(elementType: wide, shape: t.shape, storage: s)
        default:
            throw Failure(message: "element type \(t.elementType.name) is not supported (float, float16, bfloat16, double, float8e4m3fn, float8e4m3fnuz, float8e5m2, float8e5m2fnuz, float8e8m0, float4e2m1, int64, uint64, int32, uint32, int16, uint16, int8, uint8, int4, uint4, int2, uint2, bool)")
        }
    }

    /// The 8-, 4- and 2-bit types: decoded to float (small floats, exact) or int32 (small integers).
    /// Packed types must hold exactly the bytes their shape needs.
    static func lowPrecision(_ t: IRTensor, _ bytes: ByteSlice, count n: Int) throws(Failure) -> MBTensor {
        let type = t.elementType
        guard let need = type.rawByteCount(elements: n), bytes.count == need else {
            throw Failure(message: "holds \(bytes.count) bytes; shape \(describeShape(t.shape.map(Int64.init))) of \(type.name) needs \(type.rawByteCount(elements: n).map(String.init) ?? "more than 64 bits can count") (\(type.traits.bitsPerElement) bits per element, packed)",
                          kind: .invalidInput)
        }
        let codes = bytes.withBytes { LowPrecision.unpackCodes($0, bits: type.traits.bitsPerElement, count: n) }
        if let f = LowPrecision.intFormat(type) {
            let s = TensorStorage(byteCount: n * 4)
            let out = s.raw.assumingMemoryBound(to: Int32.self)
            for i in 0..<n { out[i] = Int32(f.wrapped(Int64(codes[i]))) }
            return MBTensor(elementType: .int32, shape: t.shape, storage: s)
        }
        let s = TensorStorage(byteCount: n * 4)
        let out = s.raw.assumingMemoryBound(to: Float.self)
        if let f = LowPrecision.floatFormat(type) {
            for i in 0..<n { out[i] = f.decode(codes[i]) }
        } else {
            for i in 0..<n { out[i] = LowPrecision.E8M0.decode(codes[i]) }
        }
        return MBTensor(elementType: .float, shape: t.shape, storage: s)
    }
}
