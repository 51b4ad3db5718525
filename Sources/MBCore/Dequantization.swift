/// ONNX DequantizeLinear's arithmetic, shared by the runtime operator and the conversion's
/// constant folding of QDQ weights (so a folded weight equals what the runtime computes, bit for
/// bit): `y = (x - zero_point) * scale` in float32, with the scale and zero point per tensor, per
/// index along `axis`, or per block of `block_size` along it (opset 21).
public enum Dequantization {
    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// Where each element of an [outer, length, inner] view of x finds its scale and zero point.
    public struct Layout: Sendable {
        var outer = 1, length = 1, inner = 1
        /// 0: one value; 1: one per index along the axis; 2: one per block of `block` along it.
        var kind = 0
        var block = 1

        public init(shape: [Int], parameterShape: [Int], axis axisAttr: Int, blockSize: Int) throws(Problem) {
            let count = parameterShape.reduce(1, *)
            if count == 1 && blockSize == 0 { return }
            let rank = shape.count
            let axis = axisAttr < 0 ? axisAttr + rank : axisAttr
            guard axis >= 0, axis < rank else { throw Problem("axis \(axisAttr) is out of range for x of shape \(shape)") }
            outer = shape[..<axis].reduce(1, *)
            length = shape[axis]
            inner = shape[(axis + 1)...].reduce(1, *)
            if blockSize > 0 {
                var expected = shape
                expected[axis] = (length + blockSize - 1) / blockSize
                guard parameterShape == expected else { throw Problem("a block_size \(blockSize) scale must have shape \(expected), got \(parameterShape)") }
                kind = 2
                block = blockSize
            } else {
                guard parameterShape.count == 1, count == length else {
                    throw Problem("a per-axis scale must have \(length) values (axis \(axisAttr) of \(shape)), got shape \(parameterShape)")
                }
                kind = 1
            }
        }

        /// The scale index of element `k` of x.
        @inline(__always)
        public func index(_ k: Int) -> Int {
            switch kind {
            case 0: return 0
            case 1: return (k / inner) % length
            default:
                let q = k % inner, l = (k / inner) % length, o = k / (inner * length)
                let blocks = (length + block - 1) / block
                return (o * blocks + l / block) * inner + q
            }
        }
    }

    /// A zero point has its scale's shape; a one-element zero point beside a scalar scale is per
    /// tensor too (onnx's own cases write [1]).
    public static func checkZeroPoint(shape zero: [Int], scale: [Int], zeroName: String = "x_zero_point", scaleName: String = "x_scale") throws(Problem) {
        guard zero != scale, !(zero.reduce(1, *) == 1 && scale.reduce(1, *) == 1) else { return }
        throw Problem("\(zeroName) \(zero) must have the shape of \(scaleName) \(scale)")
    }

    /// `(x - zero) * scale` element by element (the one definition both users call).
    public static func apply(_ layout: Layout, count: Int, x: (Int) -> Float, scale: UnsafePointer<Float>, zero: UnsafePointer<Float>?,
                             into y: UnsafeMutablePointer<Float>) {
        for k in 0..<count {
            let p = layout.index(k)
            y[k] = (x(k) - (zero?[p] ?? 0)) * scale[p]
        }
    }

    /// The values of an integer constant (8-, 16- and 32-bit, and the packed 4- and 2-bit types)
    /// as Float, exact; nil for other types or too few bytes.
    public static func integerValues(_ t: IRTensor) -> [Float]? {
        guard case .dense(let bytes) = t.storage else { return nil }
        let n = t.elementCount
        if let f = LowPrecision.intFormat(t.elementType) {
            guard let need = t.elementType.rawByteCount(elements: n), bytes.count == need else { return nil }
            return bytes.withBytes { LowPrecision.unpackCodes($0, bits: f.bits, count: n) }.map { Float(f.wrapped(Int64($0))) }
        }
        return bytes.withBytes { raw -> [Float]? in
            switch t.elementType {
            case .uint8: guard raw.count >= n else { return nil }; return (0..<n).map { Float(raw[$0]) }
            case .int8: guard raw.count >= n else { return nil }; return (0..<n).map { Float(Int8(bitPattern: raw[$0])) }
            case .uint16:
                guard raw.count >= 2 * n else { return nil }
                return (0..<n).map { Float(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
            case .int16:
                guard raw.count >= 2 * n else { return nil }
                return (0..<n).map { Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self))) }
            case .int32:
                guard raw.count >= 4 * n else { return nil }
                return (0..<n).map { Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
            default: return nil
            }
        }
    }

    /// DequantizeLinear of constants: an integer `x` (int8, uint8, int16, uint16, int32, int4,
    /// uint4, int2, uint2), a float `scale` (float32, float16 or bfloat16: the result has its type,
    /// rounded to it as the spec's output type is) and an optional zero point of x's type.
    public static func dequantize(_ x: IRTensor, scale: IRTensor, zero: IRTensor?, axis: Int, blockSize: Int, name: String) throws(Problem) -> IRTensor {
        guard let values = integerValues(x) else { throw Problem("x is \(x.elementType.name): only integer x is folded") }
        guard [.float, .float16, .bfloat16].contains(scale.elementType), let s = scale.floatValues() else {
            throw Problem("x_scale is \(scale.elementType.name): float, float16 or bfloat16 expected")
        }
        var z: [Float]?
        if let zero {
            guard zero.elementType == x.elementType else {
                throw Problem("x_zero_point is \(zero.elementType.name) but x is \(x.elementType.name): a zero point has its data's type")
            }
            guard let zv = integerValues(zero) else { throw Problem("x_zero_point holds too few bytes") }
            try checkZeroPoint(shape: zero.shape, scale: scale.shape)
            z = zv
        }
        let layout = try Layout(shape: x.shape, parameterShape: scale.shape, axis: axis, blockSize: blockSize)
        var y = [Float](repeating: 0, count: values.count)
        s.withUnsafeBufferPointer { sp in
            y.withUnsafeMutableBufferPointer { yp in
                if let z {
                    z.withUnsafeBufferPointer { zp in apply(layout, count: values.count, x: { values[$0] }, scale: sp.baseAddress!, zero: zp.baseAddress!, into: yp.baseAddress!) }
                } else {
                    apply(layout, count: values.count, x: { values[$0] }, scale: sp.baseAddress!, zero: nil, into: yp.baseAddress!)
                }
            }
        }
        switch scale.elementType {
        case .float16:
            return IRTensor(name: name, shape: x.shape, floats: y, as: .float16)!
        case .bfloat16:
            var bytes: [UInt8] = []
            bytes.reserveCapacity(2 * y.count)
            for v in y {
                let b = v.roundedToBFloat16.bitPattern >> 16
                bytes.append(UInt8(truncatingIfNeeded: b))
                bytes.append(UInt8(truncatingIfNeeded: b >> 8))
            }
            return IRTensor(name: name, elementType: .bfloat16, shape: x.shape, storage: .dense(ByteSlice(storage: ByteStorage(copying: bytes))))
        default:
            return IRTensor(name: name, shape: x.shape, floats: y, as: .float)!
        }
    }
}

extension Dequantization {
    /// The element types `integerValues` reads.
    public static let integerValueTypes: Set<ElementType> = [.uint8, .int8, .uint16, .int16, .int32, .int4, .uint4, .int2, .uint2]
}
