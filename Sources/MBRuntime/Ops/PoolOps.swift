import MBCore
import MBKernels

/// MaxPool, AveragePool (ceil_mode, count_include_pad, dilations, auto_pad) and the global pools
/// (MaxPool's Indices output, LpPool and MaxUnpool are in PoolExtrasOps).
enum PoolOps {
    static func compilePool(_ n: NodeContext, max isMax: Bool) throws -> OpRun {
        let a = try ConvOps.Attributes(n)
        guard let kernel = a.kernelShape else { throw n.bad("kernel_shape is required") }
        let ceilMode = try n.int("ceil_mode", default: 0) != 0
        let includePad = try n.int("count_include_pad", default: 0) != 0
        if isMax && n.wantsOutput(1) { return try PoolExtrasOps.maxPoolWithIndices(n, a, kernel: kernel, ceilMode: ceilMode) }
        return { i, c in
            // MaxPool on int8/uint8 (held as int32): pooled as float, exact for every 8-bit value.
            let integer = isMax && i[0]?.elementType == .int32
            let x = integer ? try castTensor(try i.required(0, "X"), to: .float, c) : try i.float(0, "X")
            let g = try geometry(a, kernel: kernel, ceilMode: ceilMode, x: x)
            let y = try c.alloc(.float, Array(x.shape[0..<2]) + g.output)
            Pool.forward(c.variant, isMax ? .max : .average(countIncludePad: includePad), g,
                         input: x.pointer(Float.self), output: y.mutable(Float.self), threads: c.threads)
            return [integer ? try castTensor(y, to: .int32, c) : y]
        }
    }

    /// The pooling geometry of `x` under the node's kernel, strides, dilations, pads or auto_pad,
    /// and ceil_mode.
    static func geometry(_ a: ConvOps.Attributes, kernel: [Int], ceilMode: Bool, x: MBTensor) throws -> PoolGeometry {
        try ConvOps.Attributes.checkDimensions(("X", x))
        let r = kernel.count
        guard x.rank == r + 2 else { throw OpError("X \(x.shape) must have \(r) spatial dimensions for kernel_shape \(kernel)") }
        let spatial = Array(x.shape[2...])
        let strides = try a.list(a.strides, r, 1, "strides"), dil = try a.list(a.dilations, r, 1, "dilations")
        let (pb, pe) = try a.resolvePads(input: spatial, kernel: kernel, strides: strides, dilations: dil)
        var out: [Int] = []
        for d in 0..<r {
            let span = (kernel[d] - 1) * dil[d] + 1
            let room = spatial[d] + pb[d] + pe[d] - span
            guard room >= 0 else { throw OpError("kernel \(kernel) does not fit the padded input \(spatial)") }
            var o: Int
            if a.autoPad.hasPrefix("SAME") {
                o = (spatial[d] + strides[d] - 1) / strides[d]
            } else if ceilMode {
                o = (room + strides[d] - 1) / strides[d] + 1
                // The last window must start inside the input or its leading padding.
                if (o - 1) * strides[d] >= spatial[d] + pb[d] { o -= 1 }
            } else {
                o = room / strides[d] + 1
            }
            out.append(o)
        }
        return PoolGeometry(planes: x.shape[0] * x.shape[1], input: spatial, kernel: kernel, strides: strides,
                            dilations: dil, padBegin: pb, padEnd: pe, output: out)
    }

    static func global(max isMax: Bool) -> OpRun {
        { i, c in
            let x = try i.float(0, "X")
            guard x.rank >= 3 else { throw OpError("X \(x.shape) needs spatial dimensions") }
            try ConvOps.Attributes.checkDimensions(("X", x))
            let planes = x.shape[0] * x.shape[1]
            let size = x.shape[2...].reduce(1, *)
            let y = try c.alloc(.float, Array(x.shape[0..<2]) + Array(repeating: 1, count: x.rank - 2))
            Reduce.forward(c.variant, isMax ? .max : .mean, outer: planes, length: size, inner: 1,
                           input: x.pointer(Float.self), output: y.mutable(Float.self), threads: c.threads)
            return [y]
        }
    }

    static let table: [String: OpTable.Compile] = [
        "MaxPool": { n in try compilePool(n, max: true) },
        "AveragePool": { n in try compilePool(n, max: false) },
        "GlobalMaxPool": { _ in global(max: true) },
        "GlobalAveragePool": { _ in global(max: false) },
    ]
}
