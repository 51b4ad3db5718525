import MBCore

extension MBTensor {
    /// A tensor from a `.npy` array, held as the runtime holds its type: float32, int64, int32 and
    /// bool as they are; float16, bfloat16 and float64 converted to float32; int8, uint8, int16 and
    /// uint16 widened to int32; uint32 widened to int64; uint64 as int64 (its bit pattern).
    /// `declared`, the model's type for the value, says how to take an array that spells it by
    /// convention: uint16 bit patterns for a bfloat16 input; bytes (uint8, or ml_dtypes' '|V1') of
    /// codes for a float8, float4e2m1, float8e8m0, int4, uint4, int2 or uint2 input.
    public init(npy given: NPYArray, declared: ElementType? = nil) throws(MBRuntimeError) {
        var a = given
        if declared == .bfloat16, a.elementType == .uint16, let bits = a.reinterpreted(as: .bfloat16) { a = bits }
        if let declared, a.elementType == .uint8, declared.traits.bitsPerElement <= 8, declared != .uint8, declared != .bool,
           LowPrecision.floatFormat(declared) != nil || LowPrecision.intFormat(declared) != nil || declared == .float8e8m0 {
            // One element per byte, the type's code in the low bits (ml_dtypes' arrays, saved as '|V1').
            let packed = LowPrecision.packCodes(a.data, bits: declared.traits.bitsPerElement)
            self = try MBTensor(irTensor: IRTensor(name: "npy", elementType: declared, shape: a.shape, storage: .dense(ByteSlice(copying: packed))))
            return
        }
        switch a.elementType {
        case .float, .int64, .int32, .bool, .uint64:
            let s = TensorStorage(byteCount: a.data.count)
            a.data.withUnsafeBytes { if $0.count > 0 { s.raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
            self.init(elementType: a.elementType == .uint64 ? .int64 : a.elementType, shape: a.shape, storage: s)
        case .float16, .bfloat16, .double:
            self.init(shape: a.shape, floats: a.floatValues())
        case .uint8, .int8, .int16, .uint16:
            // Held widened to int32, as the runtime holds them (images, quantized inputs); exact.
            self.init(shape: a.shape, int32s: (a.int64Values() ?? []).map { Int32($0) })
        case .uint32:
            self.init(shape: a.shape, int64s: a.int64Values() ?? [])
        default:
            throw MBRuntimeError(.invalidInput, "a .npy array of \(a.elementType.name) cannot be a runtime tensor (\(NPY.supportedTypes.map(\.elementType.name).joined(separator: ", ")))")
        }
    }

    /// The tensor as a `.npy` array (same element type and bytes).
    public var npy: NPYArray {
        let bytes = withBytes { Array($0) }
        // Element types of runtime tensors are all in the .npy table.
        return try! NPYArray(elementType: elementType, shape: shape, data: bytes)
    }
}

extension MBTensor {
    /// A tensor from an IR constant (float16 and double converted to float32).
    public init(irTensor t: IRTensor) throws(MBRuntimeError) {
        do {
            self = try TensorConversion.tensor(from: t)
        } catch {
            throw MBRuntimeError(.invalidInput, "tensor '\(t.name)': \(error.message)")
        }
    }
}
