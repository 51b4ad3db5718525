import MBCore

/// Operators that move or make data: Transpose, Concat, Split, Slice, Gather, Tile, Pad, Cast,
/// ConstantOfShape, Constant, Range.
enum DataOps {
    static let table: [String: OpTable.Compile] = [
        "Transpose": { n in
            let permAttr = try n.ints("perm")
            return { i, c in
                let x = try i.required(0)
                let perm = permAttr ?? Array((0..<x.rank).reversed())
                guard perm.count == x.rank, Set(perm) == Set(0..<x.rank) else { throw OpError("perm \(perm) is not a permutation of 0..<\(x.rank)") }
                let st = contiguousStrides(x.shape)
                let shape = perm.map { x.shape[$0] }
                let out = try c.alloc(x.elementType, shape)
                let strides = perm.map { st[$0] }
                if !transposeMatrices(x.storage.raw, strides: strides, shape: shape, elementSize: x.elementType.runtimeSize, to: out.storage.raw, threads: c.threads) {
                    stridedCopy(x.storage.raw, offset: 0, strides: strides, shape: shape, elementSize: x.elementType.runtimeSize, to: out.storage.raw)
                }
                return [out]
            }
        },
        "Concat": { n in
            guard let axisAttr = try n.int("axis") else { throw n.bad("attribute 'axis' is required") }
            return { i, c in
                let xs = i.values.compactMap { $0 }
                guard let first = xs.first else { throw OpError("needs at least one input") }
                let axis = try normalizeAxis(axisAttr, rank: first.rank)
                var shape = first.shape
                shape[axis] = 0
                for x in xs {
                    guard x.rank == first.rank, x.elementType == first.elementType,
                          (0..<x.rank).allSatisfy({ $0 == axis || x.shape[$0] == first.shape[$0] }) else {
                        throw OpError("inputs \(xs.map(\.description)) do not fit together along axis \(axisAttr)")
                    }
                    shape[axis] += x.shape[axis]
                }
                let size = first.elementType.runtimeSize
                let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
                let bytes = try c.checkedBytes(first.elementType, shape)
                // Inputs whose producers wrote them into this buffer already (`ConcatPlacement`)
                // are skipped below: their address is where they belong.
                var parts: [(offset: Int, bytes: Int)?] = []
                var offset = 0
                for x in i.values {
                    guard let x else { parts.append(nil); continue }
                    parts.append((offset, x.shape[axis] * inner * size))
                    offset += x.shape[axis] * inner * size
                }
                var out = try c.alloc(first.elementType, shape, placedInto: c.takeConcatBuffer(first.elementType, bytes: bytes))
                func inPlace(_ k: Int) -> Bool {
                    guard outer == 1, let x = i.values[k], let p = parts[k] else { return false }
                    return UnsafeRawPointer(x.storage.raw) == UnsafeRawPointer(out.storage.raw + p.offset)
                }
                // An input to copy that lies in the buffer elsewhere (shapes changed since the
                // layout was recorded) would be overwritten by the copies: start afresh instead.
                let buffer = UnsafeRawPointer(out.storage.raw)..<UnsafeRawPointer(out.storage.raw + bytes)
                if i.values.indices.contains(where: { k in
                    guard let x = i.values[k], !inPlace(k) else { return false }
                    let start = UnsafeRawPointer(x.storage.raw)
                    return start < buffer.upperBound && buffer.lowerBound < start + x.count * size
                }) {
                    out = try c.alloc(first.elementType, shape, placedInto: nil)
                }
                var copies = ContiguousCopies(plane: inner * size)
                let rowOut = shape[axis] * inner * size
                for (k, x) in i.values.enumerated() {
                    if inPlace(k) { c.concatInputsInPlace += 1 }
                    guard let x, let p = parts[k], p.bytes > 0, !inPlace(k) else { continue }
                    for o in 0..<outer {
                        copies.append(to: out.storage.raw + o * rowOut + p.offset, from: x.storage.raw + o * p.bytes, bytes: p.bytes)
                    }
                }
                copies.run(threads: c.threads)
                c.recordConcatLayout(outer == 1 ? .init(elementType: first.elementType, bytes: bytes, parts: parts) : nil)
                return [out]
            }
        },
        "Split": { n in
            let axisAttr = try n.int("axis", default: 0)
            let splitAttr = n.opset < 13 ? try n.ints("split") : nil
            let numOutputs = try n.int("num_outputs")
            let outputs = n.outputCount
            let splitInput = n.opset >= 13
            return { i, c in
                let x = try i.required(0)
                let axis = try normalizeAxis(axisAttr, rank: x.rank)
                let dim = x.shape[axis]
                var sizes: [Int]
                if let s = splitAttr ?? (splitInput ? i[1].map(intValues) : nil), !s.isEmpty {
                    sizes = s
                } else {
                    let parts = numOutputs ?? outputs
                    let chunk = (dim + parts - 1) / parts
                    sizes = (0..<parts).map { k in max(0, min(chunk, dim - k * chunk)) }
                }
                guard sizes.allSatisfy({ $0 >= 0 && $0 <= dim }), sizes.reduce(0, +) == dim else { throw OpError("split \(sizes) does not add up to \(dim) along axis \(axis) of \(x.shape)") }
                let st = contiguousStrides(x.shape)
                var start = 0
                // One image (every axis before the split one of size 1): each part is a
                // contiguous range of the input, so it is a view of it, not a copy.
                let inLine = x.shape[..<axis].allSatisfy { $0 == 1 }
                return try sizes.map { s in
                    var shape = x.shape
                    shape[axis] = s
                    if inLine {
                        defer { start += s }
                        return x.view(shape, elementOffset: start * st[axis])
                    }
                    let out = try c.alloc(x.elementType, shape)
                    stridedCopy(x.storage.raw, offset: start * st[axis], strides: st, shape: shape, elementSize: x.elementType.runtimeSize, to: out.storage.raw)
                    start += s
                    return out
                }
            }
        },
        "Slice": { n in
            let legacy = n.opset < 10
            let attrStarts = legacy ? try n.ints("starts") : nil, attrEnds = legacy ? try n.ints("ends") : nil, attrAxes = legacy ? try n.ints("axes") : nil
            if legacy && (attrStarts == nil || attrEnds == nil) { throw n.bad("attributes 'starts' and 'ends' are required") }
            return { i, c in
                let x = try i.required(0)
                let starts = legacy ? attrStarts! : intValues(try i.required(1, "starts"))
                let ends = legacy ? attrEnds! : intValues(try i.required(2, "ends"))
                let axes = (legacy ? attrAxes : i[3].map(intValues)) ?? Array(0..<starts.count)
                let steps = (legacy ? nil : i[4].map(intValues)) ?? Array(repeating: 1, count: starts.count)
                guard ends.count == starts.count, axes.count == starts.count, steps.count == starts.count else {
                    throw OpError("starts, ends, axes and steps must have the same length")
                }
                var begin = Array(repeating: 0, count: x.rank), step = Array(repeating: 1, count: x.rank), shape = x.shape
                for k in 0..<starts.count {
                    let a = try normalizeAxis(axes[k], rank: x.rank)
                    let d = x.shape[a], s = steps[k]
                    guard s != 0 else { throw OpError("step 0 on axis \(axes[k])") }
                    var lo = starts[k] < 0 ? starts[k] + d : starts[k]
                    var hi = ends[k] < 0 ? ends[k] + d : ends[k]
                    if s > 0 {
                        lo = min(max(lo, 0), d); hi = min(max(hi, 0), d)
                        shape[a] = hi > lo ? (hi - lo - 1) / s + 1 : 0
                    } else {
                        lo = min(max(lo, -1), d - 1); hi = min(max(hi, -1), d - 1)
                        shape[a] = lo > hi ? (lo - hi - 1) / (s == .min ? .max : -s) + 1 : 0
                    }
                    begin[a] = lo
                    step[a] = s
                }
                let st = contiguousStrides(x.shape)
                let offset = (0..<x.rank).reduce(0) { $0 + (shape[$1] > 0 ? begin[$1] * st[$1] : 0) }
                // A contiguous range of the input (axes before the first cut one of size 1 in
                // the result, that axis at step 1, every later axis whole) is a view, not a copy.
                let cut = (0..<x.rank).first { shape[$0] != x.shape[$0] } ?? x.rank
                if (0..<x.rank).allSatisfy({ step[$0] == 1 || shape[$0] <= 1 }), shape[..<cut].allSatisfy({ $0 == 1 }),
                   ((cut + 1)..<max(cut + 1, x.rank)).allSatisfy({ shape[$0] == x.shape[$0] }) {
                    return [x.view(shape, elementOffset: offset)]
                }
                let out = try c.alloc(x.elementType, shape)
                stridedCopy(x.storage.raw, offset: offset, strides: (0..<x.rank).map { st[$0] * step[$0] }, shape: shape,
                            elementSize: x.elementType.runtimeSize, to: out.storage.raw)
                return [out]
            }
        },
        "Gather": { n in
            let axisAttr = try n.int("axis", default: 0)
            return { i, c in
                let x = try i.required(0), idx = try i.required(1, "indices")
                let axis = try normalizeAxis(axisAttr, rank: x.rank)
                let indices = intValues(idx)
                let dim = x.shape[axis]
                let shape = Array(x.shape[..<axis]) + idx.shape + Array(x.shape[(axis + 1)...])
                let out = try c.alloc(x.elementType, shape)
                let size = x.elementType.runtimeSize
                let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *) * size
                var dst = out.storage.raw
                for o in 0..<outer {
                    for v in indices {
                        let k = v < 0 ? v + dim : v
                        guard k >= 0 && k < dim else { throw OpError("index \(v) is out of range for axis \(axisAttr) of size \(dim)") }
                        dst.copyMemory(from: x.storage.raw + (o * dim + k) * inner, byteCount: inner)
                        dst += inner
                    }
                }
                return [out]
            }
        },
        "Tile": { _ in { i, c in
            let x = try i.required(0)
            let reps = intValues(try i.required(1, "repeats"))
            guard reps.count == x.rank, reps.allSatisfy({ $0 >= 0 }) else { throw OpError("repeats \(reps) must have \(x.rank) non-negative values") }
            // View the output as [r0, d0, r1, d1, ...] reading the input with stride 0 along each r.
            let st = contiguousStrides(x.shape)
            var viewShape: [Int] = [], viewStrides: [Int] = []
            for k in 0..<x.rank { viewShape += [reps[k], x.shape[k]]; viewStrides += [0, st[k]] }
            var shape: [Int] = []
            for k in 0..<x.rank {
                let (d, overflow) = reps[k].multipliedReportingOverflow(by: x.shape[k])
                guard !overflow else { throw OpError("repeats \(reps) of shape \(x.shape): more elements than a 64-bit count can hold", kind: .limitExceeded) }
                shape.append(d)
            }
            let out = try c.alloc(x.elementType, shape)
            stridedCopy(x.storage.raw, offset: 0, strides: viewStrides, shape: viewShape, elementSize: x.elementType.runtimeSize, to: out.storage.raw)
            return [out]
        } },
        "Pad": { n in try PadOp.compile(n) },
        "Cast": { n in
            guard let to = try n.int("to"), let type = ElementType(rawValue: Int32(to)) else { throw n.bad("attribute 'to' is required") }
            let target = try runtimeCastTarget(type, n)
            let rules = try CastRules(n)
            return { i, c in [try castTensor(try i.required(0), to: target, c, rounding: type, rules: rules)] }
        },
        "CastLike": { n in
            // The target is the element type of input 1 at run time; float16 and double values are
            // held as float, so a float16 target is known only from the declared type.
            let declared = n.declaredElementType(ofInput: 1)
            if let declared { _ = try runtimeCastTarget(declared, n) }
            let rules = try CastRules(n)
            return { i, c in
                let like = try i.required(1, "target_type")
                return [try castTensor(try i.required(0), to: like.elementType, c, rounding: declared, rules: rules)]
            }
        },
        "ConstantOfShape": { n in
            let value = try n.tensor("value") ?? MBTensor(shape: [1], floats: [0])
            guard value.count == 1 else { throw n.bad("'value' must hold one element") }
            return { i, c in
                let shape = intValues(try i.required(0, "shape"))
                guard shape.allSatisfy({ $0 >= 0 }) else { throw OpError("shape \(shape) has a negative dimension") }
                let out = try c.alloc(value.elementType, shape)
                let size = value.elementType.runtimeSize
                for k in 0..<out.count { (out.storage.raw + k * size).copyMemory(from: value.storage.raw, byteCount: size) }
                return [out]
            }
        },
        "Constant": { n in
            let value: MBTensor
            if let t = try n.tensor("value") {
                value = t
            } else if let f = n.node.attribute("value_float"), case .float(let v) = f {
                value = MBTensor(v)
            } else if let fs = try n.floats("value_floats") {
                value = MBTensor(shape: [fs.count], floats: fs)
            } else if let v = try n.int("value_int") {
                value = MBTensor(Int64(v))
            } else if let vs = try n.ints("value_ints") {
                value = MBTensor(shape: [vs.count], int64s: vs.map(Int64.init))
            } else {
                throw n.unsupported("this form of Constant (sparse or string) is not supported")
            }
            return { _, _ in [value] }
        },
        "Range": { _ in { i, c in
            let start = try i.required(0), limit = try i.required(1), delta = try i.required(2)
            if start.elementType == .float {
                let s = try floatScalar(start), l = try floatScalar(limit), d = try floatScalar(delta)
                guard d != 0 else { throw OpError("delta is 0") }
                let steps = ((l - s) / d).rounded(.up)
                guard !steps.isNaN, steps != .infinity else {
                    throw OpError("Range from \(s) to \(l) by \(d) has no finite length", kind: .limitExceeded)
                }
                let count = max(0, clampedInt(steps))
                let out = try c.alloc(.float, [count])
                let p = out.mutable(Float.self)
                for k in 0..<count { p[k] = s + Float(k) * d }
                return [out]
            }
            let s = intValues(start)[0], l = intValues(limit)[0], d = intValues(delta)[0]
            guard d != 0 else { throw OpError("delta is 0") }
            // In 128 bits: (l - s) need not fit in 64.
            let wide = max(0, (Int128(l) - Int128(s) + Int128(d) + (d > 0 ? -1 : 1)) / Int128(d))
            guard wide <= Int128(Int.max) else {
                throw OpError("Range from \(s) to \(l) by \(d) has more elements than a 64-bit count can hold", kind: .limitExceeded)
            }
            let count = Int(wide)
            _ = try c.checkedBytes(.int64, [count])
            let values = (0..<count).map { Int(Int128(s) + Int128($0) * Int128(d)) }
            return [start.elementType == .int32 ? try castTensor(try makeInt64(c, values), to: .int32, c) : try makeInt64(c, values)]
        } },
    ]
}

/// Element type conversion between the runtime's types (float → int truncates toward zero).
/// The runtime type a Cast to `type` produces (float16, double and the float8/float4 types are
/// held as float, the narrow integers as int32, uint32 and uint64 as int64).
func runtimeCastTarget(_ type: ElementType, _ n: NodeContext) throws -> ElementType {
    if let held = TensorConversion.runtimeType(of: type) { return held }
    throw n.unsupported("Cast to \(type.name) is not supported (float, float16, bfloat16, double, float8e4m3fn, float8e4m3fnuz, float8e5m2, float8e5m2fnuz, float8e8m0, float4e2m1, int64, uint64, int32, uint32, int16, uint16, int8, uint8, int4, uint4, int2, uint2, bool)")
}

/// Cast's and CastLike's rounding attributes: `saturate` (opset 19+; float8/float4 targets) and
/// `round_mode` (opset 24+; float8e8m0 targets).
struct CastRules: Sendable {
    var saturate = true
    var roundMode = LowPrecision.E8M0.RoundMode.up

    init() {}

    init(_ n: NodeContext) throws {
        saturate = try n.int("saturate", default: 1) != 0
        let mode = try n.string("round_mode", default: "up")
        guard let m = LowPrecision.E8M0.RoundMode(rawValue: mode) else {
            throw n.bad("round_mode '\(mode)' is not one of up, down, nearest")
        }
        roundMode = m
    }
}

/// `x` converted to `target`; when the model's type (`rounding`) was float16, bfloat16 or one of
/// the float8/float4 types, a float result is rounded to that type's precision and range (`rules`:
/// saturation and float8e8m0's rounding), and when it was a narrower integer than the one holding
/// it, the value wraps to that width, as such a tensor would hold it.
func castTensor(_ x: MBTensor, to target: ElementType, _ c: ExecutionContext, rounding declared: ElementType? = nil, rules: CastRules = CastRules()) throws -> MBTensor {
    if target == .float, declared == .float16 || declared == .bfloat16 {
        let f = try castTensor(x, to: .float, c)
        return declared == .float16 ? try mapFloats(f, c) { $0.roundedToFloat16 } : try mapFloats(f, c) { $0.roundedToBFloat16 }
    }
    if target == .float, let declared, let format = LowPrecision.floatFormat(declared) {
        let saturate = rules.saturate
        return try mapFloats(try castTensor(x, to: .float, c), c) { format.rounded($0, saturate: saturate) }
    }
    if target == .float, declared == .float8e8m0 {
        let saturate = rules.saturate, mode = rules.roundMode
        return try mapFloats(try castTensor(x, to: .float, c), c) { LowPrecision.E8M0.decode(LowPrecision.E8M0.encode($0, saturate: saturate, mode: mode)) }
    }
    if let declared, let format = LowPrecision.intFormat(declared) {
        // From an integer the value wraps (as a C cast); from a float it truncates toward zero and
        // is 0 outside the type's range (the values of onnx's reference and ml_dtypes).
        if x.elementType == .float {
            let ints = try mapFloats(x, c) { v in
                let t = v.rounded(.towardZero)
                return t.isFinite && Float(format.min) <= t && t <= Float(format.max) ? t : 0
            }
            return try castTensor(ints, to: target, c)
        }
        return try mapInt(try castTensor(x, to: target, c), c) { format.wrapped($0) }
    }
    // A narrow integer held widened: the value wraps to the declared width, as a C cast does.
    switch declared {
    case .int8?: return try mapInt(try castTensor(x, to: target, c), c) { Int64(Int8(truncatingIfNeeded: $0)) }
    case .uint8?: return try mapInt(try castTensor(x, to: target, c), c) { Int64(UInt8(truncatingIfNeeded: $0)) }
    case .int16?: return try mapInt(try castTensor(x, to: target, c), c) { Int64(Int16(truncatingIfNeeded: $0)) }
    case .uint16?: return try mapInt(try castTensor(x, to: target, c), c) { Int64(UInt16(truncatingIfNeeded: $0)) }
    case .uint32?: return try mapInt(try castTensor(x, to: target, c), c) { Int64(UInt32(truncatingIfNeeded: $0)) }
    default: break
    }
    if x.elementType == target { return x }
    let out = try c.alloc(target, x.shape)
    let n = x.count
    func fill<S, D>(_: S.Type, _: D.Type, _ f: (S) -> D) {
        let s = x.pointer(S.self), d = out.mutable(D.self)
        for k in 0..<n { d[k] = f(s[k]) }
    }
    func toInt(_ v: Float) -> Int64 { v.isFinite ? Int64(max(min(v, 9.2e18), -9.2e18)) : 0 }
    switch (x.elementType, target) {
    case (.float, .int64): fill(Float.self, Int64.self, toInt)
    case (.float, .int32): fill(Float.self, Int32.self) { Int32(truncatingIfNeeded: toInt($0)) }
    case (.float, .bool): fill(Float.self, UInt8.self) { $0 != 0 ? 1 : 0 }
    case (.int64, .float): fill(Int64.self, Float.self) { Float($0) }
    case (.int64, .int32): fill(Int64.self, Int32.self) { Int32(truncatingIfNeeded: $0) }
    case (.int64, .bool): fill(Int64.self, UInt8.self) { $0 != 0 ? 1 : 0 }
    case (.int32, .float): fill(Int32.self, Float.self) { Float($0) }
    case (.int32, .int64): fill(Int32.self, Int64.self) { Int64($0) }
    case (.int32, .bool): fill(Int32.self, UInt8.self) { $0 != 0 ? 1 : 0 }
    case (.bool, .float): fill(UInt8.self, Float.self) { $0 != 0 ? 1 : 0 }
    case (.bool, .int64): fill(UInt8.self, Int64.self) { $0 != 0 ? 1 : 0 }
    case (.bool, .int32): fill(UInt8.self, Int32.self) { $0 != 0 ? 1 : 0 }
    default: throw OpError("cannot cast \(x.elementType.name) to \(target.name)")
    }
    return out
}
