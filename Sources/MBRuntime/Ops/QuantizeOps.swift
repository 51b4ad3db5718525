import MBCore

/// The QDQ operators of quantized ONNX models: DequantizeLinear, QuantizeLinear and
/// DynamicQuantizeLinear, per tensor, per axis or per block (opset 21 block_size). 8- and 16-bit
/// integers are held widened to int32 at run time (TensorConversion), so a quantized value keeps
/// its exact integer; QuantizeLinear saturates to the range of the type the model declares for
/// its zero point (or output_dtype, or uint8): 4- and 2-bit integers included; to a float8 or
/// float4 type it rounds as Cast does (`LowPrecision`, `saturate`).
enum QuantizeOps {
    /// Where each element of x finds its scale and zero point (MBCore's `Dequantization.Layout`).
    static func layout(x: MBTensor, parameter: MBTensor, axis: Int, blockSize: Int) throws -> Dequantization.Layout {
        do { return try Dequantization.Layout(shape: x.shape, parameterShape: parameter.shape, axis: axis, blockSize: blockSize) } catch {
            throw OpError(error.description)
        }
    }

    /// The saturation range of a quantized type.
    static func range(of type: ElementType) throws -> ClosedRange<Float> {
        switch type {
        case .uint8: return 0...255
        case .int8: return -128...127
        case .uint16: return 0...65535
        case .int16: return -32768...32767
        case .int32: return -2147483648...2147483520  // the largest float below 2^31
        case .int4, .uint4, .int2, .uint2:
            let f = LowPrecision.intFormat(type)!
            return Float(f.min)...Float(f.max)
        default: throw OpError("quantizing to \(type.name) is not supported (uint8, int8, uint16, int16, int32, int4, uint4, int2, uint2, float8e4m3fn, float8e4m3fnuz, float8e5m2, float8e5m2fnuz, float4e2m1)")
        }
    }

    static func checkZeroPoint(_ zero: MBTensor?, _ zeroName: String, against scale: MBTensor, _ scaleName: String) throws {
        guard let zero else { return }
        do { try Dequantization.checkZeroPoint(shape: zero.shape, scale: scale.shape, zeroName: zeroName, scaleName: scaleName) } catch {
            throw OpError(error.description)
        }
    }

    static let table: [String: OpTable.Compile] = [
        "DequantizeLinear": { n in
            let axis = try n.int("axis", default: 1), blockSize = try n.int("block_size", default: 0)
            if let z = n.declaredElementType(ofInput: 2), let x = n.declaredElementType(ofInput: 0), z != x {
                throw n.bad("x_zero_point is \(z.name) but x is \(x.name): a zero point has its data's type")
            }
            // The output has the scale's type: float16 and bfloat16 results are rounded to it.
            let outputRounding = IntegerOps.scaleRounding(n.declaredElementType(ofInput: 1))
            let rounds = n.declaredElementType(ofInput: 1).map { $0 == .float16 || $0 == .bfloat16 } ?? false
            return { i, c in
                let x = try i.required(0, "x"), scale = try castTensor(try i.required(1, "x_scale"), to: .float, c)
                let zero = try i[2].map { try castTensor($0, to: .float, c) }
                let layout = try QuantizeOps.layout(x: x, parameter: scale, axis: axis, blockSize: blockSize)
                try checkZeroPoint(zero, "x_zero_point", against: scale, "x_scale")
                let values = try castTensor(x, to: .float, c)
                let y = try c.alloc(.float, x.shape)
                let v = values.pointer(Float.self), d = y.mutable(Float.self)
                Dequantization.apply(layout, count: x.count, x: { v[$0] }, scale: scale.pointer(Float.self), zero: zero?.pointer(Float.self), into: d)
                if rounds { for k in 0..<x.count { d[k] = outputRounding(d[k]) } }
                return [y]
            }
        },
        "QuantizeLinear": { n in
            let axis = try n.int("axis", default: 1), blockSize = try n.int("block_size", default: 0)
            let outputCode = try n.int("output_dtype", default: 0)
            let declared = n.declaredElementType(ofInput: 2)
                ?? (outputCode != 0 ? ElementType(rawValue: Int32(outputCode)) : nil) ?? .uint8
            // Float targets: x / scale + zero rounded to the format (ties to even, `saturate`),
            // held as float like every value of those types. Integer targets: rounded, then
            // saturated to the type's range.
            let format = LowPrecision.floatFormat(declared)
            let saturate = try n.int("saturate", default: 1) != 0
            let bounds: ClosedRange<Float>
            do { bounds = format == nil ? try range(of: declared) : 0...0 } catch let e as OpError { throw n.unsupported(e.message) }
            return { i, c in
                let x = try i.float(0, "x"), scale = try castTensor(try i.required(1, "y_scale"), to: .float, c)
                let zero = try i[2].map { try castTensor($0, to: .float, c) }
                let layout = try QuantizeOps.layout(x: x, parameter: scale, axis: axis, blockSize: blockSize)
                try checkZeroPoint(zero, "y_zero_point", against: scale, "y_scale")
                let y = try c.alloc(format == nil ? .int32 : .float, x.shape)
                let v = x.pointer(Float.self), s = scale.pointer(Float.self), z = zero?.pointer(Float.self)
                if let format {
                    let d = y.mutable(Float.self)
                    for k in 0..<x.count {
                        let p = layout.index(k)
                        d[k] = format.rounded(v[k] / s[p] + (z?[p] ?? 0), saturate: saturate)
                    }
                } else {
                    let d = y.mutable(Int32.self)
                    for k in 0..<x.count {
                        let p = layout.index(k)
                        let q = (v[k] / s[p]).rounded(.toNearestOrEven) + (z?[p] ?? 0)
                        d[k] = q.isNaN ? 0 : Int32(min(max(q, bounds.lowerBound), bounds.upperBound))
                    }
                }
                return [y]
            }
        },
        "DynamicQuantizeLinear": { _ in { i, c in
            let x = try i.float(0, "x")
            var lo: Float = 0, hi: Float = 0
            for v in x.buffer(Float.self) { lo = min(lo, v); hi = max(hi, v) }
            let scale = (hi - lo) / 255
            /// Saturated to 0...255; NaN (from NaN inputs or an infinite range) becomes 0.
            func byte(_ q: Float) -> Float { q.isNaN ? 0 : min(max(q, 0), 255) }
            let zero = scale == 0 ? 0 : byte((-lo / scale).rounded(.toNearestOrEven))
            let y = try c.alloc(.int32, x.shape)
            let v = x.pointer(Float.self), d = y.mutable(Int32.self)
            for k in 0..<x.count {
                d[k] = Int32(byte(scale == 0 ? zero : (v[k] / scale).rounded(.toNearestOrEven) + zero))
            }
            return [y, MBTensor(scale), MBTensor(shape: [], int32s: [Int32(zero)])]
        } },
    ]
}
