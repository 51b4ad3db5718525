import MBCore
import MBKernels

/// The one broadcasting driver of every float binary operator (Add, Sub, Mul, Div, Max, Min and
/// the fused residual adds), and the unary map of the activations: both run the SIMD kernels of
/// `MBKernels.Elementwise` over contiguous runs, split across the session's threads, and write
/// over a dying input's buffer when they may (`ExecutionContext.output(_:reusing:of:)`).
///
/// Broadcasting is resolved once per call, never per element: the shapes are coalesced
/// (`coalesce`) into an outer index and an inner run in which each operand has stride 1
/// (a vector) or 0 (a scalar). Same shape and scalar operands are one flat run; a per-channel
/// vector against NCHW is one run per plane; a trailing-axis vector is one run per row. Only an
/// inner run with another stride (a transposing broadcast) takes the generic element loop.
enum FloatElementwise {
    /// Below this many elements per thread a loop is not split.
    static let grain = 1 << 14

    /// `y = act(a op b)` with numpy broadcasting. `candidates` are the input indices (in
    /// `inputs`) of `a` and `b` whose buffer the result may take over.
    static func binary(_ op: Elementwise.BinaryOp, _ a: MBTensor, _ b: MBTensor, then act: Activation = .none,
                       reusing candidates: [Int] = [], of inputs: Inputs = Inputs([]), _ ctx: ExecutionContext) throws -> MBTensor {
        let shape = a.shape == b.shape ? a.shape : try broadcastShapes(a.shape, b.shape)
        // Only an operand already of the output's shape can be overwritten by it.
        let eligible = candidates.filter { inputs[$0]?.shape == shape }
        let out = try ctx.output(shape, reusing: eligible, of: inputs)
        let n = out.count
        if n == 0 { return out }
        let pa = a.pointer(Float.self), pb = b.pointer(Float.self)
        let po = UncheckedSendable(out.mutable(Float.self))
        let fast = ctx.variant == .fast
        func run(_ x: UnsafePointer<Float>, _ sx: Int, _ y: UnsafePointer<Float>, _ sy: Int, _ o: UnsafeMutablePointer<Float>, _ count: Int) {
            if fast {
                Elementwise.binary(op, x, aStride: sx, y, bStride: sy, o, count: count, then: act)
            } else {
                for i in 0..<count { o[i] = Float(act.reference(Elementwise.reference(op, Double(x[i * sx]), Double(y[i * sy])))) }
            }
        }
        let flatA = a.count == n ? 1 : (a.count == 1 ? 0 : -1), flatB = b.count == n ? 1 : (b.count == 1 ? 0 : -1)
        if flatA >= 0 && flatB >= 0 && (flatA == 0 || a.shape == shape || a.count == 1) && (flatB == 0 || b.shape == shape || b.count == 1) {
            let chunks = min(ctx.threads, max(1, n / grain))
            Parallel.forEach(chunks, threads: chunks) { c in
                let lo = n * c / chunks, hi = n * (c + 1) / chunks
                run(pa + lo * flatA, flatA, pb + lo * flatB, flatB, po.value + lo, hi - lo)
            }
            return out
        }
        let (dims, st) = coalesce(shape, [broadcastStrides(a.shape, to: shape), broadcastStrides(b.shape, to: shape)])
        let inner = dims.last!, sa = st[0].last!, sb = st[1].last!
        let rows = n / inner
        let outer = Array(dims.dropLast()), oa = Array(st[0].dropLast()), ob = Array(st[1].dropLast())
        let threads = min(ctx.threads, max(1, n / grain))
        let simple = (sa == 0 || sa == 1) && (sb == 0 || sb == 1)
        Parallel.forEach(rows, threads: threads) { r in
            let (offA, offB) = batchOffsets(r, batch: outer, oa, ob)
            let o = po.value + r * inner
            if simple {
                run(pa + offA, sa, pb + offB, sb, o, inner)
            } else {
                for i in 0..<inner {
                    o[i] = Float(act.reference(Elementwise.reference(op, Double(pa[offA + i * sa]), Double(pb[offB + i * sb]))))
                }
            }
        }
        return out
    }

    /// `y = f(x)` elementwise; `candidate` is the input index of `x` whose buffer `y` may take over.
    static func unary(_ f: Elementwise.Unary, _ x: MBTensor, reusing candidate: Int? = nil, of inputs: Inputs = Inputs([]),
                      _ ctx: ExecutionContext) throws -> MBTensor {
        let out = try ctx.output(x.shape, reusing: candidate.map { [$0] } ?? [], of: inputs)
        let n = x.count
        let src = x.pointer(Float.self), dst = UncheckedSendable(out.mutable(Float.self))
        let fast = ctx.variant == .fast
        let chunks = min(ctx.threads, max(1, n / grain))
        Parallel.forEach(chunks, threads: chunks) { c in
            let lo = n * c / chunks, hi = n * (c + 1) / chunks
            if fast {
                Elementwise.unary(f, src + lo, dst.value + lo, count: hi - lo)
            } else {
                for i in lo..<hi { dst.value[i] = Float(Elementwise.reference(f, Double(src[i]))) }
            }
        }
        return out
    }

    /// Applies `act` in place over a buffer this node just wrote, split across threads.
    static func applyInPlace(_ act: Activation, _ p: UnsafeMutablePointer<Float>, count n: Int, _ ctx: ExecutionContext) {
        if act == .none { return }
        let box = UncheckedSendable(p)
        let fast = ctx.variant == .fast
        let chunks = min(ctx.threads, max(1, n / grain))
        Parallel.forEach(chunks, threads: chunks) { c in
            let lo = n * c / chunks, hi = n * (c + 1) / chunks
            if fast { act.apply(to: box.value + lo, count: hi - lo) } else { act.applyReference(to: box.value + lo, count: hi - lo) }
        }
    }

    /// The epilogue of a fused Conv/Gemm over its freshly written output: adds the residual
    /// (in the same pass as the activation when shapes match; broadcast as Add would otherwise)
    /// and applies `act`.
    static func finish(_ out: MBTensor, residual: MBTensor?, _ act: Activation, _ ctx: ExecutionContext) throws -> MBTensor {
        guard let r = residual else {
            applyInPlace(act, out.mutable(Float.self), count: out.count, ctx)
            return out
        }
        guard r.elementType == .float else { throw OpError("the residual added to this node's output must be float, got \(r.elementType.name)") }
        if r.shape == out.shape {
            // out is this node's own buffer: the sum is written over it.
            return try binary(.add, out, r, then: act, reusing: [0], of: Inputs([out, r], reusable: [true, false]), ctx)
        }
        return try binary(.add, out, r, then: act, ctx)
    }

    /// Runs a fused chain over `x`: blocks of `block` floats go through every step while they
    /// are in L1 (the first step reads x, the rest work in place), split across threads.
    static func chain(_ steps: [ChainStep], _ x: MBTensor, of inputs: Inputs, _ ctx: ExecutionContext) throws -> MBTensor {
        let out = try ctx.output(x.shape, reusing: [0], of: inputs)
        let n = x.count
        let src = x.pointer(Float.self), dst = UncheckedSendable(out.mutable(Float.self))
        let fast = ctx.variant == .fast
        let block = 2048
        let blocks = (n + block - 1) / block
        let threads = min(ctx.threads, max(1, n / grain))
        Parallel.forEach(blocks, threads: threads) { b in
            let lo = b * block, count = min(block, n - lo)
            let o = dst.value + lo
            var from = src + lo
            for step in steps {
                switch step {
                case .unary(let f):
                    if fast { Elementwise.unary(f, from, o, count: count) } else {
                        for i in 0..<count { o[i] = Float(Elementwise.reference(f, Double(from[i]))) }
                    }
                case .scalar(let op, let v, let onLeft):
                    withUnsafePointer(to: v) { s in
                        if fast {
                            if onLeft { Elementwise.binary(op, s, aStride: 0, from, bStride: 1, o, count: count) } else {
                                Elementwise.binary(op, from, aStride: 1, s, bStride: 0, o, count: count)
                            }
                        } else {
                            for i in 0..<count {
                                let a = Double(from[i]), c = Double(v)
                                o[i] = Float(onLeft ? Elementwise.reference(op, c, a) : Elementwise.reference(op, a, c))
                            }
                        }
                    }
                }
                from = UnsafePointer(o)
            }
        }
        return out
    }

    /// Internal operators the optimizer emits (domain "mbruntime"), by type.
    static let internalTable: [String: OpTable.Compile] = [
        FuseElementwiseChains.opType: { n in
            guard let steps = n.plan?.chain, !steps.isEmpty else { throw n.bad("an elementwise chain without steps") }
            return { i, c in [try chain(steps, try i.float(0), of: i, c)] }
        },
    ]
}
