import MBCore

/// BitCast (opset 26): each element's bits reinterpreted as another type of the same width. The
/// runtime holds narrow integers widened and float16/bfloat16 as float, so the source's bits are
/// rebuilt from its declared type (a graph input's or a constant's) and the result is held as its
/// own type is. Sources whose bits the runtime does not keep (double, held as float; the float8
/// and float4 types, whose NaN codes are not kept apart) and sources of undeclared type are refused.
enum BitCastOp {
    /// The raw bits of element `k` of `t`, a value of declared type `type`.
    static func bits(_ t: MBTensor, _ k: Int, as type: ElementType) -> UInt64 {
        switch type {
        case .float: return UInt64(t.pointer(Float.self)[k].bitPattern)
        case .float16: return UInt64(t.pointer(Float.self)[k].float16Bits)
        case .bfloat16: return UInt64(t.pointer(Float.self)[k].bitPattern >> 16)
        case .int64, .uint64: return UInt64(bitPattern: t.pointer(Int64.self)[k])
        case .uint32: return UInt64(UInt32(truncatingIfNeeded: t.pointer(Int64.self)[k]))
        case .bool: return UInt64(t.pointer(UInt8.self)[k])
        default: return UInt64(UInt32(bitPattern: t.pointer(Int32.self)[k]))  // 8-, 16- and 32-bit integers
        }
    }

    static let sources: Set<ElementType> = [.float, .float16, .bfloat16, .int64, .uint64, .uint32, .int32, .int16, .uint16, .int8, .uint8, .bool]
    static let targets: Set<ElementType> = sources.union([.double])

    static let table: [String: OpTable.Compile] = [
        "BitCast": { n in
            guard let code = try n.int("to"), let to = ElementType(rawValue: Int32(truncatingIfNeeded: code)) else { throw n.bad("attribute 'to' must name an element type") }
            guard let from = n.declaredElementType(ofInput: 0) else { throw n.unsupported("the input's element type is not declared (BitCast needs the source type's bits)") }
            guard from.traits.bitsPerElement == to.traits.bitsPerElement else {
                throw n.bad("BitCast needs types of one width: \(from.name) has \(from.traits.bitsPerElement) bits, \(to.name) \(to.traits.bitsPerElement)")
            }
            guard sources.contains(from) else { throw n.unsupported("BitCast from \(from.name) (the runtime does not keep its bits)") }
            guard targets.contains(to) else { throw n.unsupported("BitCast to \(to.name)") }
            return { i, c in
                let x = try i.required(0, "input")
                guard let held = TensorConversion.runtimeType(of: to) else { throw OpError("BitCast to \(to.name) is not supported") }
                let y = try c.alloc(held, x.shape)
                for k in 0..<x.count {
                    let b = bits(x, k, as: from)
                    switch to {
                    case .float: y.mutable(Float.self)[k] = Float(bitPattern: UInt32(truncatingIfNeeded: b))
                    case .float16: y.mutable(Float.self)[k] = Float(float16Bits: UInt16(truncatingIfNeeded: b))
                    case .bfloat16: y.mutable(Float.self)[k] = Float(bitPattern: UInt32(truncatingIfNeeded: b) << 16)
                    case .double: y.mutable(Float.self)[k] = Float(Double(bitPattern: b))
                    case .int64, .uint64: y.mutable(Int64.self)[k] = Int64(bitPattern: b)
                    case .uint32: y.mutable(Int64.self)[k] = Int64(UInt32(truncatingIfNeeded: b))
                    case .int32: y.mutable(Int32.self)[k] = Int32(truncatingIfNeeded: b)
                    case .int16: y.mutable(Int32.self)[k] = Int32(Int16(truncatingIfNeeded: b))
                    case .uint16: y.mutable(Int32.self)[k] = Int32(UInt16(truncatingIfNeeded: b))
                    case .int8: y.mutable(Int32.self)[k] = Int32(Int8(truncatingIfNeeded: b))
                    case .uint8: y.mutable(Int32.self)[k] = Int32(UInt8(truncatingIfNeeded: b))
                    default: y.mutable(UInt8.self)[k] = b == 0 ? 0 : 1  // bool
                    }
                }
                return [y]
            }
        },
    ]
}
