import MBCore
import MBKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// GRU (gate order z, r, h; linear_before_reset) and the simple RNN (activation Tanh, Relu or
/// Sigmoid), in the directions forward, reverse and bidirectional, layouts 0 and 1, with
/// optional bias and initial state, like LSTM in RecurrentOps.
enum GRUAndRNNOps {
    /// What the two operators share: checked inputs in layout 0 and the per-direction loop.
    struct Recurrence {
        var x: MBTensor
        var seq: Int, batch: Int, inSize: Int, hidden: Int, dirs: Int, gates: Int
        var reverseOnly: Bool

        init(_ i: Inputs, gates: Int, direction: String, hidden: Int, layout: Int, _ c: ExecutionContext) throws {
            x = try i.float(0, "X")
            if layout == 1 { x = try RecurrentOps.transpose01(x, c) }
            guard x.rank == 3 else { throw OpError("X \(x.shape) must be 3-D") }
            (seq, batch, inSize) = (x.shape[0], x.shape[1], x.shape[2])
            dirs = direction == "bidirectional" ? 2 : 1
            self.hidden = hidden
            self.gates = gates
            reverseOnly = direction == "reverse"
            let w = try i.float(1, "W"), r = try i.float(2, "R")
            guard w.shape == [dirs, gates * hidden, inSize] else { throw OpError("W \(w.shape) must be [\(dirs), \(gates * hidden), \(inSize)]") }
            guard r.shape == [dirs, gates * hidden, hidden] else { throw OpError("R \(r.shape) must be [\(dirs), \(gates * hidden), \(hidden)]") }
            if let bias = i[3], bias.shape != [dirs, 2 * gates * hidden] { throw OpError("B \(bias.shape) must be [\(dirs), \(2 * gates * hidden)]") }
            if let lens = i[4] {
                guard intValues(lens).allSatisfy({ $0 == seq }) else { throw OpError("sequence_lens shorter than the sequence are not supported") }
            }
        }

        /// Runs `cell(direction, X·Wᵀ of the row at this step, H·Rᵀ of the row, R of the direction,
        /// state)` for every step and batch row, and returns Y [seq, dirs, batch, h] and Y_h
        /// [dirs, batch, h] in the requested layout. The cell updates `state` (the row's h) in place.
        func run(_ i: Inputs, layout: Int, _ c: ExecutionContext,
                 cell: (_ dir: Int, _ xw: UnsafePointer<Float>, _ hr: UnsafePointer<Float>, _ r: UnsafePointer<Float>,
                        _ state: UnsafeMutablePointer<Float>) -> Void) throws -> [MBTensor] {
            let w = try i.float(1, "W"), r = try i.float(2, "R")
            var initH = try i[5].map { _ in try i.float(5, "initial_h") }
            if let initH, initH.count != dirs * batch * hidden { throw OpError("initial_h \(initH.shape) must hold \(dirs) x \(batch) x \(hidden) values") }
            if layout == 1 { initH = try initH.map { try RecurrentOps.transpose01($0, c) } }
            let h = hidden, width = gates * hidden
            let yAll = try c.alloc(.float, [seq, dirs, batch, h]), yH = try c.alloc(.float, [dirs, batch, h])
            var projections = [Float](repeating: 0, count: seq * batch * width)
            var state = [Float](repeating: 0, count: batch * h)
            var step = [Float](repeating: 0, count: batch * width)
            for dir in 0..<dirs {
                let wd = w.pointer(Float.self) + dir * width * inSize, rd = r.pointer(Float.self) + dir * width * h
                projections.withUnsafeMutableBufferPointer { p in
                    Gemm.sgemm(c.variant, transA: false, transB: true, m: seq * batch, n: width, k: inSize, alpha: 1,
                               a: x.pointer(Float.self), lda: inSize, b: wd, ldb: inSize, beta: 0, c: p.baseAddress!, ldc: width)
                }
                for k in 0..<(batch * h) { state[k] = initH.map { $0.pointer(Float.self)[dir * batch * h + k] } ?? 0 }
                let reverse = reverseOnly || dir == 1
                for t0 in 0..<seq {
                    let t = reverse ? seq - 1 - t0 : t0
                    state.withUnsafeBufferPointer { hp in step.withUnsafeMutableBufferPointer { sp in
                        Gemm.sgemm(c.variant, transA: false, transB: true, m: batch, n: width, k: h, alpha: 1,
                                   a: hp.baseAddress!, lda: h, b: rd, ldb: h, beta: 0, c: sp.baseAddress!, ldc: width)
                    } }
                    projections.withUnsafeBufferPointer { p in step.withUnsafeBufferPointer { s in state.withUnsafeMutableBufferPointer { st in
                        for b in 0..<batch {
                            cell(dir, p.baseAddress! + (t * batch + b) * width, s.baseAddress! + b * width, rd, st.baseAddress! + b * h)
                        }
                    } } }
                    for b in 0..<batch {
                        for j in 0..<h { yAll.mutable(Float.self)[((t * dirs + dir) * batch + b) * h + j] = state[b * h + j] }
                    }
                }
                for k in 0..<(batch * h) { yH.mutable(Float.self)[dir * batch * h + k] = state[k] }
            }
            if layout == 1 {
                // Y becomes [batch, seq, dirs, h]; Y_h [batch, dirs, h].
                let yt = try c.alloc(.float, [batch, seq, dirs, h])
                stridedCopy(yAll.storage.raw, offset: 0, strides: [h, dirs * batch * h, batch * h, 1], shape: [batch, seq, dirs, h],
                            elementSize: 4, to: yt.storage.raw)
                return [yt, try RecurrentOps.transpose01(yH, c)]
            }
            return [yAll, yH]
        }
    }

    static func commonAttributes(_ n: NodeContext) throws -> (hidden: Int, direction: String, layout: Int, clip: Float) {
        guard let hidden = try n.int("hidden_size"), hidden > 0 else { throw n.bad("hidden_size (> 0) is required") }
        let direction = try n.string("direction", default: "forward")
        guard ["forward", "reverse", "bidirectional"].contains(direction) else { throw n.bad("direction '\(direction)' is not one of forward, reverse, bidirectional") }
        return (hidden, direction, try n.int("layout", default: 0), try n.float("clip", default: 0))
    }

    static func activation(_ name: String, _ n: NodeContext) throws -> @Sendable (Float) -> Float {
        switch name.lowercased() {
        case "tanh": return { tanhf($0) }
        case "sigmoid": return { ElementwiseOps.sigmoid($0) }
        case "relu": return { max($0, 0) }
        default: throw n.unsupported("activation \(name) is not supported (Tanh, Sigmoid, Relu)")
        }
    }

    static let table: [String: OpTable.Compile] = [
        "GRU": { n in
            let (hidden, direction, layout, clip) = try commonAttributes(n)
            let names = try n.strings("activations") ?? []
            let f = try activation(names.first ?? "Sigmoid", n), g = try activation(names.count > 1 ? names[1] : "Tanh", n)
            let linearBeforeReset = try n.int("linear_before_reset", default: 0) != 0
            return { i, c in
                let rec = try Recurrence(i, gates: 3, direction: direction, hidden: hidden, layout: layout, c)
                let bias = try i[3].map { _ in try i.float(3, "B") }
                let h = hidden
                func cl(_ v: Float) -> Float { clip > 0 ? min(max(v, -clip), clip) : v }
                var z = [Float](repeating: 0, count: h), resetState = z
                return try rec.run(i, layout: layout, c) { dir, xw, hr, rWeights, state in
                    let wb = bias.map { $0.pointer(Float.self) + dir * 6 * h }, rb = wb.map { $0 + 3 * h }
                    for j in 0..<h {
                        z[j] = f(cl(xw[j] + hr[j] + (wb?[j] ?? 0) + (rb?[j] ?? 0)))
                        let r = f(cl(xw[h + j] + hr[h + j] + (wb?[h + j] ?? 0) + (rb?[h + j] ?? 0)))
                        resetState[j] = r
                    }
                    // The candidate: with linear_before_reset, r ⊙ (H·Rhᵀ + Rbh) from the shared
                    // product; without it, (r ⊙ H)·Rhᵀ + Rbh, a product of its own.
                    var candidate = [Float](repeating: 0, count: h)
                    for j in 0..<h {
                        var recurrent: Float
                        if linearBeforeReset {
                            recurrent = resetState[j] * (hr[2 * h + j] + (rb?[2 * h + j] ?? 0))
                        } else {
                            recurrent = rb?[2 * h + j] ?? 0
                            let row = rWeights + (2 * h + j) * h
                            for k in 0..<h { recurrent += row[k] * resetState[k] * state[k] }
                        }
                        candidate[j] = g(cl(xw[2 * h + j] + (wb?[2 * h + j] ?? 0) + recurrent))
                    }
                    for j in 0..<h { state[j] = (1 - z[j]) * candidate[j] + z[j] * state[j] }
                }
            }
        },
        "RNN": { n in
            let (hidden, direction, layout, clip) = try commonAttributes(n)
            let f = try activation(try n.strings("activations")?.first ?? "Tanh", n)
            return { i, c in
                let rec = try Recurrence(i, gates: 1, direction: direction, hidden: hidden, layout: layout, c)
                let bias = try i[3].map { _ in try i.float(3, "B") }
                let h = hidden
                return try rec.run(i, layout: layout, c) { dir, xw, hr, _, state in
                    let wb = bias.map { $0.pointer(Float.self) + dir * 2 * h }
                    for j in 0..<h {
                        let v = xw[j] + hr[j] + (wb.map { $0[j] + $0[h + j] } ?? 0)
                        state[j] = f(clip > 0 ? min(max(v, -clip), clip) : v)
                    }
                }
            }
        },
    ]
}
