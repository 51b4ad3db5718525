import MBCore

/// IR constants to runtime tensors: float, int64, int32 and bool data are used in place when
/// aligned (no copy of a mapped weight); float16 and double become float; other types are
/// refused with their name.
enum TensorConversion {
    struct Failure: Error {
        let message: String
        var kind: MBRuntimeError.Kind = .unsupportedOperator
    }

    static func tensor(from t: IRTensor, maxBytes: Int = MBSession.Options.defaultMaxTensorBytes) throws(Failure) -> MBTensor {
        // What the runtime holds: float16 and double become float, binarized weights float.
        let size = t.elementType == .int64 ? 8 : (t.elementType == .bool ? 1 : 4)
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
        case .double:
            guard bytes.count >= n * 8 else { throw Failure(message: "holds \(bytes.count) bytes for \(n) elements") }
            let s = TensorStorage(byteCount: n * 4)
            let out = s.raw.assumingMemoryBound(to: Float.self)
            bytes.withBytes { raw in
                for i in 0..<n { out[i] = Float(Double(bitPattern: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).littleEndian)) }
            }
            return MBTensor(elementType: .float, shape: t.shape, storage: s)
        default:
            throw Failure(message: "element type \(t.elementType.name) is not supported (float, float16, double, int64, int32, bool)")
        }
    }
}
