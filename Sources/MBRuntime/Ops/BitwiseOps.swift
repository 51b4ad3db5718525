import MBCore

/// BitShift and BitwiseAnd/Or/Xor/Not on integer tensors. Narrow integers are held widened
/// (TensorConversion), so results are wrapped to the width the model declares for input 0 when
/// it is a graph input or a constant (otherwise the width the runtime holds).
enum BitwiseOps {
    /// Bit width and signedness of the integers a node works on.
    struct Width {
        var bits: Int
        var signed: Bool

        init(declared: ElementType?, held: ElementType) {
            switch declared ?? held {
            case .int8: (bits, signed) = (8, true)
            case .uint8: (bits, signed) = (8, false)
            case .int16: (bits, signed) = (16, true)
            case .uint16: (bits, signed) = (16, false)
            case .uint32: (bits, signed) = (32, false)
            case .int64: (bits, signed) = (64, true)
            default: (bits, signed) = (32, true)
            }
        }

        /// `v` wrapped to this width (two's complement for signed types).
        func wrap(_ v: Int64) -> Int64 {
            guard bits < 64 else { return v }
            let low = v & ((1 << Int64(bits)) - 1)
            return signed && low >> Int64(bits - 1) != 0 ? low - (1 << Int64(bits)) : low
        }
    }

    static func integers(_ i: Inputs) throws -> (MBTensor, MBTensor) {
        let a = try i.required(0), b = try i.required(1)
        guard a.elementType == .int32 || a.elementType == .int64 else {
            throw OpError("input 0 must be an integer tensor, got \(a.elementType.name)", kind: .unsupportedOperator)
        }
        return (a, b)
    }

    static func binary(_ n: NodeContext, _ op: @escaping @Sendable (Int64, Int64, Width) -> Int64) -> OpRun {
        let declared = n.declaredElementType(ofInput: 0)
        return { i, c in
            let (a, b) = try integers(i)
            let width = Width(declared: declared, held: a.elementType)
            return [try BinaryOps.arith(a, b, c, { x, _ in x }, { op($0, $1, width) })]
        }
    }

    static let table: [String: OpTable.Compile] = [
        "BitShift": { n in
            let direction = try n.string("direction", default: "")
            guard direction == "LEFT" || direction == "RIGHT" else { throw n.bad("direction '\(direction)' is not LEFT or RIGHT") }
            return binary(n) { a, b, w in
                // Shifts outside 0..<width give 0 (or -1 for negative values shifted right).
                guard b >= 0 && b < Int64(w.bits) else { return direction == "RIGHT" && a < 0 ? -1 : 0 }
                return direction == "LEFT" ? w.wrap(a << b) : a >> b
            }
        },
        "BitwiseAnd": { binary($0) { a, b, _ in a & b } },
        "BitwiseOr": { binary($0) { a, b, _ in a | b } },
        "BitwiseXor": { binary($0) { a, b, _ in a ^ b } },
        "BitwiseNot": { n in
            let declared = n.declaredElementType(ofInput: 0)
            return { i, c in
                let x = try i.required(0)
                guard x.elementType == .int32 || x.elementType == .int64 else {
                    throw OpError("input 0 must be an integer tensor, got \(x.elementType.name)", kind: .unsupportedOperator)
                }
                let width = Width(declared: declared, held: x.elementType)
                return [try mapInt(x, c) { width.wrap(~$0) }]
            }
        },
    ]
}
