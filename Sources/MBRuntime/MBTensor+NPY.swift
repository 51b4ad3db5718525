import MBCore

extension MBTensor {
    /// A tensor from a `.npy` array: float32, int64, int32 and bool as they are; float16 and
    /// float64 converted to float32; uint8 widened to int32.
    public init(npy a: NPYArray) throws(MBRuntimeError) {
        switch a.elementType {
        case .float, .int64, .int32, .bool:
            let s = TensorStorage(byteCount: a.data.count)
            a.data.withUnsafeBytes { if $0.count > 0 { s.raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
            self.init(elementType: a.elementType, shape: a.shape, storage: s)
        case .float16, .double:
            self.init(shape: a.shape, floats: a.floatValues())
        case .uint8:
            // Held widened to int32, as the runtime holds uint8 (images, quantized inputs).
            self.init(shape: a.shape, int32s: a.data.map { Int32($0) })
        default:
            throw MBRuntimeError(.invalidInput, "a .npy array of \(a.elementType.name) cannot be a runtime tensor (float32, float16, float64, int64, int32, uint8, bool)")
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
