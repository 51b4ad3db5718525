import MBCore

/// Operators on sequences and optionals (`MBValue`), run as value steps: they see values of any
/// kind and never touch the tensor kernels. Sequences hold tensors; an optional holds a tensor,
/// a sequence or nothing. Identity passes any value on; If, Loop and SequenceMap (with their
/// subgraphs) are in `ControlOps.valueTable`.
enum SequenceOps {
    static let table: [String: OpTable.ValueCompile] = {
        var t: [String: OpTable.ValueCompile] = [
            "Identity": { _ in { i, _ in [try required(i, 0, "input")] } },
            "SequenceEmpty": { n in
                let raw = try n.int("dtype", default: Int(ElementType.float.rawValue))
                guard let declared = ElementType(rawValue: Int32(truncatingIfNeeded: raw)) else { throw n.bad("dtype \(raw) is not an element type") }
                let type = TensorConversion.runtimeType(of: declared) ?? declared
                return { _, _ in [.sequence(MBSequence([], elementType: type))] }
            },
            "SequenceConstruct": { _ in { i, _ in
                let tensors = try i.indices.map { try tensor(i, $0, "inputs") }
                guard let first = tensors.first else { throw OpError("needs at least one tensor") }
                guard tensors.allSatisfy({ $0.elementType == first.elementType }) else {
                    throw OpError("the tensors have different element types: \(tensors.map(\.elementType.name))")
                }
                return [.sequence(MBSequence(tensors))]
            } },
            "SequenceLength": { _ in { i, _ in [.tensor(MBTensor(Int64(try sequence(i, 0).count)))] } },
            "SequenceAt": { _ in { i, _ in
                let s = try sequence(i, 0)
                let at = try position(try tensor(i, 1, "position"), count: s.count, inclusiveEnd: false)
                return [.tensor(s.tensors[at])]
            } },
            "SequenceInsert": { _ in { i, _ in
                var s = try sequence(i, 0)
                let x = try tensor(i, 1, "tensor")
                try checkType(x, joining: s)
                let at = try i.count > 2 && i[2] != nil ? position(try tensor(i, 2, "position"), count: s.count, inclusiveEnd: true) : s.count
                s.tensors.insert(x, at: at)
                s.elementType = x.elementType
                return [.sequence(s)]
            } },
            "SequenceErase": { _ in { i, _ in
                var s = try sequence(i, 0)
                guard !s.tensors.isEmpty else { throw OpError("cannot erase from an empty sequence") }
                let at = try i.count > 1 && i[1] != nil ? position(try tensor(i, 1, "position"), count: s.count, inclusiveEnd: false) : s.count - 1
                s.tensors.remove(at: at)
                return [.sequence(s)]
            } },
            "SplitToSequence": { n in
                let axisAttr = try n.int("axis", default: 0)
                let keepdims = try n.int("keepdims", default: 1) != 0
                return { i, c in
                    let x = try tensor(i, 0, "input")
                    let axis = try normalizeAxis(axisAttr, rank: x.rank)
                    let dim = x.shape[axis]
                    var sizes: [Int]
                    var squeeze = false
                    if i.count > 1, i[1] != nil {
                        let split = try tensor(i, 1, "split")
                        let values = intValues(split)
                        if split.rank == 0 {
                            guard let chunk = values.first, chunk > 0 else { throw OpError("split must be positive, got \(values)") }
                            sizes = stride(from: 0, to: dim, by: chunk).map { min(chunk, dim - $0) }
                        } else {
                            sizes = values
                        }
                    } else {
                        sizes = Array(repeating: 1, count: dim)
                        squeeze = !keepdims
                    }
                    guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == dim else {
                        throw OpError("split \(sizes) does not add up to \(dim) along axis \(axis) of \(x.shape)")
                    }
                    let st = contiguousStrides(x.shape)
                    var start = 0
                    let parts = try sizes.map { size -> MBTensor in
                        var shape = x.shape
                        shape[axis] = size
                        let out = try c.alloc(x.elementType, shape)
                        stridedCopy(x.storage.raw, offset: start * st[axis], strides: st, shape: shape, elementSize: x.elementType.runtimeSize, to: out.storage.raw)
                        start += size
                        if squeeze { shape.remove(at: axis) }
                        return out.reshaped(shape)
                    }
                    return [.sequence(MBSequence(parts, elementType: x.elementType))]
                }
            },
            "ConcatFromSequence": { n in
                guard let axisAttr = try n.int("axis") else { throw n.bad("attribute 'axis' is required") }
                let newAxis = try n.int("new_axis", default: 0) != 0
                guard let concat = OpTable.all["Concat"] else { throw n.unsupported("Concat is not in the op table") }
                let run = try concat(n)
                return { i, c in
                    let s = try sequence(i, 0)
                    guard let first = s.tensors.first else { throw OpError("cannot concatenate an empty sequence") }
                    var parts = s.tensors
                    if newAxis {
                        // A new axis of length 1 on each, then an ordinary concatenation along it.
                        let at = try normalizeAxis(axisAttr, rank: first.rank + 1)
                        parts = parts.map { t in
                            var shape = t.shape
                            shape.insert(1, at: at)
                            return t.reshaped(shape)
                        }
                    }
                    return try run(Inputs(parts), c).map { .tensor($0) }
                }
            },
            "Optional": { n in
                if n.hasInput(0) { return { i, _ in [.optional(try required(i, 0, "input"))] } }
                guard n.node.attribute("type") != nil else { throw n.bad("an Optional without an input needs the attribute 'type'") }
                return { _, _ in [.optional(nil)] }
            },
            "OptionalHasElement": { _ in { i, _ in
                // Since opset 18 the input may be a tensor or sequence (it has an element) or omitted (none).
                guard let v = i.first ?? nil else { return [.tensor(MBTensor(shape: [], bools: [false]))] }
                if case .optional(let inner) = v { return [.tensor(MBTensor(shape: [], bools: [inner != nil]))] }
                return [.tensor(MBTensor(shape: [], bools: [true]))]
            } },
            "OptionalGetElement": { _ in { i, _ in
                let v = try required(i, 0, "input")
                guard case .optional(let inner) = v else { return [v] }
                guard let inner else { throw OpError("the optional input is empty") }
                return [inner]
            } },
            "Equal": { _ in { i, _ in
                // String tensors (OpTable.stringForms), broadcast as numbers are.
                guard case .strings(let a)? = i.first ?? nil, i.count > 1, case .strings(let b)? = i[1] else {
                    throw OpError("Equal on string tensors needs two string tensors", kind: .invalidInput)
                }
                let shape = try broadcastShapes(a.shape, b.shape)
                let sa = broadcastStrides(a.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
                var out = [Bool](repeating: false, count: shape.reduce(1, *))
                var index = [Int](repeating: 0, count: shape.count)
                for k in out.indices {
                    var pa = 0, pb = 0
                    for d in 0..<shape.count { pa += index[d] * sa[d]; pb += index[d] * sb[d] }
                    out[k] = a.values[pa] == b.values[pb]
                    var d = shape.count - 1
                    while d >= 0 { index[d] += 1; if index[d] < shape[d] { break }; index[d] = 0; d -= 1 }
                }
                return [.tensor(MBTensor(shape: shape, bools: out))]
            } },
        ]
        for (name, c) in ControlOps.valueTable { t[name] = c }
        return t
    }()

    static func required(_ i: [MBValue?], _ k: Int, _ what: String) throws -> MBValue {
        guard k < i.count, let v = i[k] else { throw OpError("input \(k) (\(what)) is required") }
        return v
    }

    static func tensor(_ i: [MBValue?], _ k: Int, _ what: String) throws -> MBTensor {
        let v = try required(i, k, what)
        guard let t = v.tensor else { throw OpError("input \(k) (\(what)) must be a tensor, got \(v.kindName)", kind: .invalidInput) }
        return t
    }

    static func sequence(_ i: [MBValue?], _ k: Int) throws -> MBSequence {
        let v = try required(i, k, "input_sequence")
        guard let s = v.sequence else { throw OpError("input \(k) must be a sequence, got \(v.kindName)", kind: .invalidInput) }
        return s
    }

    /// A sequence position (negative counts from the back) in [-count, count) or, for an
    /// insertion, [-count, count].
    static func position(_ t: MBTensor, count: Int, inclusiveEnd: Bool) throws -> Int {
        guard t.elementType == .int64 || t.elementType == .int32 else { throw OpError("position must be int32 or int64, got \(t.elementType.name)") }
        let p = try IndexingOps.scalarInt(t, "position")
        let at = p < 0 ? p + count : p
        guard at >= 0 && (inclusiveEnd ? at <= count : at < count) else {
            throw OpError("position \(p) is out of range for a sequence of \(count) tensors")
        }
        return at
    }

    static func checkType(_ x: MBTensor, joining s: MBSequence) throws {
        if let e = s.elementType, e != x.elementType, !s.tensors.isEmpty {
            throw OpError("a \(x.elementType.name) tensor cannot join a sequence of \(e.name)")
        }
    }
}
