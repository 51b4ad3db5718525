import MBCore
import MBKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The rarer pools, computed by walking each window in plain loops: MaxPool with its Indices
/// output (storage_order 0 or 1), LpPool, GlobalLpPool and MaxUnpool.
enum PoolExtrasOps {
    /// Calls `body(plane, output index, input indices in the window)` for every output element;
    /// input indices are flat within the plane and skip the padding.
    static func forEachWindow(_ g: PoolGeometry, _ body: (Int, Int, [Int]) -> Void) {
        let r = g.input.count
        let outCount = g.output.reduce(1, *), taps = g.kernel.reduce(1, *)
        let inStrides = contiguousStrides(g.input)
        var window: [Int] = []
        window.reserveCapacity(taps)
        for p in 0..<g.planes {
            for o in 0..<outCount {
                let oc = IndexingOps.coordinates(o, g.output)
                window.removeAll(keepingCapacity: true)
                for t in 0..<taps {
                    let kc = IndexingOps.coordinates(t, g.kernel)
                    var flat = 0, inside = true
                    for d in 0..<r {
                        let at = oc[d] * g.strides[d] - g.padBegin[d] + kc[d] * g.dilations[d]
                        if at < 0 || at >= g.input[d] { inside = false; break }
                        flat += at * inStrides[d]
                    }
                    if inside { window.append(flat) }
                }
                body(p, o, window)
            }
        }
    }

    static func maxPoolWithIndices(_ n: NodeContext, _ a: ConvOps.Attributes, kernel: [Int], ceilMode: Bool) throws -> OpRun {
        let columnMajor = try n.int("storage_order", default: 0) != 0
        return { i, c in
            let x = try i.float(0, "X")
            let g = try PoolOps.geometry(a, kernel: kernel, ceilMode: ceilMode, x: x)
            let shape = Array(x.shape[0..<2]) + g.output
            let y = try c.alloc(.float, shape), indices = try c.alloc(.int64, shape)
            let src = x.pointer(Float.self), dst = y.mutable(Float.self), ids = indices.mutable(Int64.self)
            let planeSize = g.input.reduce(1, *), outSize = g.output.reduce(1, *)
            forEachWindow(g) { p, o, window in
                var best = -Float.infinity, at = window.first ?? 0
                for k in window where src[p * planeSize + k] > best { best = src[p * planeSize + k]; at = k }
                dst[p * outSize + o] = best
                // Indices count over the whole tensor; storage_order 1 numbers the spatial axes column-major.
                var flat = at
                if columnMajor {
                    let coords = IndexingOps.coordinates(at, g.input)
                    flat = 0
                    var scale = 1
                    for d in 0..<coords.count { flat += coords[d] * scale; scale *= g.input[d] }
                }
                ids[p * outSize + o] = Int64(p * planeSize + flat)
            }
            return [y, indices]
        }
    }

    static let table: [String: OpTable.Compile] = [
        "LpPool": { n in
            let a = try ConvOps.Attributes(n)
            guard let kernel = a.kernelShape else { throw n.bad("kernel_shape is required") }
            let p = Float(try n.int("p", default: 2))
            let ceilMode = try n.int("ceil_mode", default: 0) != 0
            return { i, c in
                let x = try i.float(0, "X")
                let g = try PoolOps.geometry(a, kernel: kernel, ceilMode: ceilMode, x: x)
                let y = try c.alloc(.float, Array(x.shape[0..<2]) + g.output)
                let src = x.pointer(Float.self), dst = y.mutable(Float.self)
                let planeSize = g.input.reduce(1, *), outSize = g.output.reduce(1, *)
                forEachWindow(g) { plane, o, window in
                    var sum: Float = 0
                    for k in window { sum += powf(abs(src[plane * planeSize + k]), p) }
                    dst[plane * outSize + o] = powf(sum, 1 / p)
                }
                return [y]
            }
        },
        "GlobalLpPool": { n in
            let p = Float(try n.int("p", default: 2))
            return { i, c in
                let x = try i.float(0, "X")
                guard x.rank >= 3 else { throw OpError("X \(x.shape) needs spatial dimensions") }
                let planes = x.shape[0] * x.shape[1], size = x.shape[2...].reduce(1, *)
                let y = try c.alloc(.float, Array(x.shape[0..<2]) + Array(repeating: 1, count: x.rank - 2))
                let src = x.pointer(Float.self), dst = y.mutable(Float.self)
                for plane in 0..<planes {
                    var sum: Float = 0
                    for k in 0..<size { sum += powf(abs(src[plane * size + k]), p) }
                    dst[plane] = powf(sum, 1 / p)
                }
                return [y]
            }
        },
        "MaxUnpool": { n in
            let a = try ConvOps.Attributes(n)
            guard let kernel = a.kernelShape else { throw n.bad("kernel_shape is required") }
            return { i, c in
                let x = try i.float(0, "X"), idx = try i.required(1, "I")
                guard idx.shape == x.shape, x.rank == kernel.count + 2 else { throw OpError("I \(idx.shape) must have the shape of X \(x.shape), with \(kernel.count) spatial axes") }
                let r = kernel.count
                let strides = try a.list(a.strides, r, 1, "strides"), pads = try a.list(a.pads, 2 * r, 0, "pads")
                // Indices number the elements of the natural unpooled shape; a given output_shape
                // (as after a pool that dropped a row) places them at the same coordinates.
                let natural = Array(x.shape[0..<2]) + (0..<r).map { d in (x.shape[d + 2] - 1) * strides[d] - pads[d] - pads[d + r] + kernel[d] }
                var shape = natural
                if let given = i[2] {
                    let s = intValues(given)
                    guard s.count == x.rank, s[0] == x.shape[0], s[1] == x.shape[1], zip(s, natural).allSatisfy({ $0 >= $1 }) else {
                        throw OpError("output_shape \(s) does not fit X \(x.shape) (at least \(natural))")
                    }
                    shape = s
                }
                let y = try c.alloc(.float, shape)
                let dst = y.mutable(Float.self), src = x.pointer(Float.self)
                dst.update(repeating: 0, count: y.count)
                let positions = intValues(idx), naturalCount = natural.reduce(1, *)
                let outStrides = contiguousStrides(shape)
                for k in 0..<x.count {
                    guard positions[k] >= 0 && positions[k] < naturalCount else { throw OpError("index \(positions[k]) is outside the unpooled shape \(natural)") }
                    let coords = IndexingOps.coordinates(positions[k], natural)
                    dst[zip(coords, outStrides).reduce(0) { $0 + $1.0 * $1.1 }] = src[k]
                }
                return [y]
            }
        },
    ]
}
