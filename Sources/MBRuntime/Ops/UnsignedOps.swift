import MBCore

/// uint64 values are held as their int64 bit pattern, where +, -, *, bit operations and casts to
/// other integers already wrap as in 64 unsigned bits. The operators whose result depends on the
/// sign bit get an unsigned form here, chosen at load when an input's declared type is uint64
/// (`TypePropagation` carries declared types through Cast and type-preserving operators): the
/// comparisons, Div, Mod, Max, Min, and Cast from uint64 to floats and from floats to uint64.
enum UnsignedOps {
    static func u(_ x: Int64) -> UInt64 { UInt64(bitPattern: x) }

    static func isUInt64(_ n: NodeContext, inputs: Range<Int> = 0..<2) -> Bool {
        inputs.contains { n.declaredElementType(ofInput: $0) == .uint64 }
    }

    static func pair(_ i: Inputs) throws -> (MBTensor, MBTensor) {
        guard let a = i[0], let b = i[1], a.elementType == .int64, b.elementType == .int64 else { throw OpError("uint64 operands expected") }
        return (a, b)
    }

    static func comparison(_ f: @escaping @Sendable (UInt64, UInt64) -> Bool) -> OpTable.Compile {
        { _ in { i, c in
            let (a, b) = try pair(i)
            return [try broadcastMap(a, b, .bool, c) { (x: Int64, y: Int64) -> UInt8 in f(u(x), u(y)) ? 1 : 0 }]
        } }
    }

    static func arithmetic(_ f: @escaping @Sendable (UInt64, UInt64) -> UInt64) -> OpTable.Compile {
        { _ in { i, c in
            let (a, b) = try pair(i)
            return [try broadcastMap(a, b, .int64, c) { (x: Int64, y: Int64) -> Int64 in Int64(bitPattern: f(u(x), u(y))) }]
        } }
    }

    static func variadic(_ f: @escaping @Sendable (UInt64, UInt64) -> UInt64) -> OpTable.Compile {
        { _ in { i, c in
            let xs = i.values.compactMap { $0 }
            guard var acc = xs.first, xs.allSatisfy({ $0.elementType == .int64 }) else { throw OpError("uint64 operands expected") }
            for x in xs.dropFirst() { acc = try broadcastMap(acc, x, .int64, c) { (p: Int64, q: Int64) -> Int64 in Int64(bitPattern: f(u(p), u(q))) } }
            return [acc]
        } }
    }

    /// The unsigned forms, by operator.
    static let forms: [String: OpTable.Compile] = [
        "Less": comparison { $0 < $1 }, "Greater": comparison { $0 > $1 },
        "LessOrEqual": comparison { $0 <= $1 }, "GreaterOrEqual": comparison { $0 >= $1 },
        "Div": arithmetic { $1 == 0 ? 0 : $0 / $1 }, "Mod": arithmetic { $1 == 0 ? 0 : $0 % $1 },
        "Max": variadic { max($0, $1) }, "Min": variadic { min($0, $1) },
    ]

    /// `base` (the table so far) with each operator above, and Cast, taking its unsigned form when
    /// the node reads or makes uint64.
    static func overriding(_ base: [String: OpTable.Compile]) -> [String: OpTable.Compile] {
        var out: [String: OpTable.Compile] = [:]
        for (name, form) in forms {
            guard let signed = base[name] else { continue }
            let inputs = name == "Max" || name == "Min" ? 0..<64 : 0..<2
            out[name] = { n in isUInt64(n, inputs: inputs) ? try form(n) : try signed(n) }
        }
        if let cast = base["Cast"] {
            out["Cast"] = { n in
                let signed = try cast(n)
                let target = try n.int("to").flatMap { ElementType(rawValue: Int32(truncatingIfNeeded: $0)) }
                let source = n.declaredElementType(ofInput: 0)
                if source == .uint64, let target, TensorConversion.runtimeType(of: target) == .float {
                    // Through float: the value of the 64 unsigned bits, then the target's rounding.
                    return { i, c in
                        let x = try i.required(0)
                        guard x.elementType == .int64 else { return try signed(i, c) }
                        let f = try c.alloc(.float, x.shape)
                        let px = x.pointer(Int64.self), pf = f.mutable(Float.self)
                        for k in 0..<x.count { pf[k] = Float(u(px[k])) }
                        return try signed(Inputs([f]), c)
                    }
                }
                if target == .uint64, source.map({ TensorConversion.runtimeType(of: $0) == .float }) ?? false {
                    // Floats at or above 2^63 keep their value in the unsigned range; beyond it
                    // (undefined in the spec) they saturate to the largest uint64.
                    return { i, c in
                        let x = try i.required(0)
                        guard x.elementType == .float else { return try signed(i, c) }
                        let y = try c.alloc(.int64, x.shape)
                        let px = x.pointer(Float.self), py = y.mutable(Int64.self)
                        for k in 0..<x.count {
                            let v = px[k].rounded(.towardZero)
                            if v >= 0x1p64 { py[k] = -1 } else if v >= 0x1p63 { py[k] = Int64(bitPattern: UInt64(v)) } else {
                                py[k] = v.isFinite ? Int64(max(v, -9.2e18)) : 0
                            }
                        }
                        return [y]
                    }
                }
                return signed
            }
        }
        return out
    }
}

/// Declared element types of node outputs, from their inputs' (what `NodeContext.declaredElementType`
/// reports for values computed in the graph): Cast's and CastLike's targets, and the input's type
/// for operators that keep it.
enum TypePropagation {
    static let preserving: Set<String> = [
        "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Gather", "GatherElements", "GatherND",
        "Expand", "Tile", "Concat", "Split", "Neg", "Abs", "Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "Sum", "ReduceMax",
        "ReduceMin", "ReduceSum", "ReduceProd", "Pad", "Clip", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot",
        "CumSum", "ScatterElements", "ScatterND", "TopK", "Sort", "Unique",
    ]

    static func outputTypes(of node: IRNode, inputs: [ElementType?]) -> [ElementType?] {
        guard node.domain.isEmpty || node.domain == "ai.onnx" else { return [] }
        switch node.opType {
        case "Cast":
            if case .int(let to)? = node.attribute("to") { return [ElementType(rawValue: Int32(truncatingIfNeeded: to))] }
            return []
        case "CastLike": return [inputs.count > 1 ? inputs[1] : nil]
        case "Where": return [inputs.count > 1 ? inputs[1] : nil]
        case "TopK": return [inputs.first ?? nil]
        default:
            guard preserving.contains(node.opType), let first = inputs.first else { return [] }
            return Array(repeating: first, count: node.outputs.count)
        }
    }
}
