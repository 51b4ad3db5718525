import MBCore

/// IR constants to runtime tensors: float, int64, int32 and bool data are used in place when
/// aligned (no copy of a mapped weight); float16, bfloat16 and double become float; int8, uint8, int16
/// and uint16 are widened to int32 and uint32 to int64 (values exact); other types are refused
/// with their name.
enum TensorConversion {
    /// The type a value of `declared` type is held as at run time, nil when it cannot be held.
    static func runtimeType(of declared: ElementType) -> ElementType? {
        switch declared {
        case .float, .float16, .bfloat16, .double: return .float
        case .int64, .uint32: return .int64
        case .int32, .int8, .uint8, .int16, .uint16: return .int32
        case .bool: return .bool
        default: return nil
        }
    }

    struct Failure: Error {
        let message: String
        var kind: MBRuntimeError.Kind = .unsupportedOperator
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
            let values = packed.dequantized()
            let s = TensorStorage(byteCount: values.count * 4)
            values.withUnsafeBytes { if $0.count > 0 { s.raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
            return MBTensor(elementType: .float, shape: t.shape, storage: s)
        }
        guard case .dense(let bytes) = t.storage else { throw Failure(message: "string tensors are not supported") }
        switch t.elementType {
        case .float, .int64, .int32, .bool:
            let size = t.elementType.runtimeSize
            guard bytes.count >= n * size else { throw Failure(message: "holds \(bytes.count) bytes for \(n) elements") }
            let aligned = bytes.withBytes { raw in raw.baseAddress.map { Int(bitPattern: $0) % 8 == 0 } ?? true }
            if aligned, n > 0, let base = bytes.storage.base {
                return MBTensor(elementType: t.elementType, shape: t.shape,
                                storage: TensorStorage(borrowing: base + bytes.offset, byteCount: n * size, owner: bytes.storage))
            }
            let s = TensorStorage(byteCount: n * size)
            bytes.withBytes { raw in if n > 0 { s.raw.copyMemory(from: raw.baseAddress!, byteCount: n * size) } }
            return MBTensor(elementType: t.elementType, shape: t.shape, storage: s)
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
            throw Failure(message: "element type \(t.elementType.name) is not supported (float, float16, double, int64, int32, int16, int8, uint32, uint16, uint8, bool)")
        }
    }
}
