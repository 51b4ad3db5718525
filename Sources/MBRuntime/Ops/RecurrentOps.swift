import MBCore
import MBKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// LSTM (directions forward, reverse, bidirectional; default activations; optional bias,
/// initial states and peepholes; layout 0 and 1). Gate order i, o, f, c as in ONNX.
enum RecurrentOps {
    static let table: [String: OpTable.Compile] = [
        "LSTM": { n in
            guard let hidden = try n.int("hidden_size"), hidden > 0 else { throw n.bad("hidden_size (> 0) is required") }
            let direction = try n.string("direction", default: "forward")
            guard ["forward", "reverse", "bidirectional"].contains(direction) else { throw n.bad("direction '\(direction)' is not one of forward, reverse, bidirectional") }
            if let acts = try n.strings("activations"), acts.count > 0 {
                let defaults = ["Sigmoid", "Tanh", "Tanh"]
                guard acts.enumerated().allSatisfy({ $0.element == defaults[$0.offset % 3] }) else {
                    throw n.unsupported("activations \(acts) are not supported (only the default Sigmoid, Tanh, Tanh)")
                }
            }
            if try n.int("input_forget", default: 0) != 0 { throw n.unsupported("input_forget=1 is not supported") }
            let clip = try n.float("clip", default: 0)
            let layout = try n.int("layout", default: 0)
            return { i, c in
                var x = try i.float(0, "X")
                let w = try i.float(1, "W"), r = try i.float(2, "R")
                if layout == 1 { x = try transpose01(x, c) }
                guard x.rank == 3 else { throw OpError("X \(x.shape) must be 3-D") }
                let (seq, batch, inSize) = (x.shape[0], x.shape[1], x.shape[2])
                let dirs = direction == "bidirectional" ? 2 : 1
                let h = hidden, g4 = 4 * hidden
                guard w.shape == [dirs, g4, inSize] else { throw OpError("W \(w.shape) must be [\(dirs), \(g4), \(inSize)]") }
                guard r.shape == [dirs, g4, h] else { throw OpError("R \(r.shape) must be [\(dirs), \(g4), \(h)]") }
                if let lens = i[4] {
                    guard intValues(lens).allSatisfy({ $0 == seq }) else { throw OpError("sequence_lens shorter than the sequence are not supported") }
                }
                let bias = try i[3].map { _ in try i.float(3, "B") }
                var initH = try i[5].map { _ in try i.float(5, "initial_h") }
                var initC = try i[6].map { _ in try i.float(6, "initial_c") }
                let peep = try i[7].map { _ in try i.float(7, "P") }
                for (t, name, count) in [(initH, "initial_h", dirs * batch * h), (initC, "initial_c", dirs * batch * h), (peep, "P", dirs * 3 * h)] {
                    if let t, t.count != count { throw OpError("\(name) \(t.shape) must hold \(count) values") }
                }
                if let bias, bias.count != dirs * 2 * g4 { throw OpError("B \(bias.shape) must hold \(dirs * 2 * g4) values") }
                if layout == 1 { initH = try initH.map { try transpose01($0, c) }; initC = try initC.map { try transpose01($0, c) } }
                let yAll = try c.alloc(.float, [seq, dirs, batch, h])
                let yH = try c.alloc(.float, [dirs, batch, h]), yC = try c.alloc(.float, [dirs, batch, h])
                var gates = [Float](repeating: 0, count: seq * batch * g4)
                var hState = [Float](repeating: 0, count: batch * h), cState = [Float](repeating: 0, count: batch * h)
                var step = [Float](repeating: 0, count: batch * g4)
                for dir in 0..<dirs {
                    let wd = w.pointer(Float.self) + dir * g4 * inSize, rd = r.pointer(Float.self) + dir * g4 * h
                    // Input projections for every time step at once: [seq*batch, 4h] = X · Wᵀ.
                    gates.withUnsafeMutableBufferPointer { gp in
                        Gemm.sgemm(c.variant, transA: false, transB: true, m: seq * batch, n: g4, k: inSize, alpha: 1,
                                   a: x.pointer(Float.self), lda: inSize, b: wd, ldb: inSize, beta: 0, c: gp.baseAddress!, ldc: g4)
                    }
                    for k in 0..<(batch * h) {
                        hState[k] = initH.map { $0.pointer(Float.self)[dir * batch * h + k] } ?? 0
                        cState[k] = initC.map { $0.pointer(Float.self)[dir * batch * h + k] } ?? 0
                    }
                    let reverse = direction == "reverse" || dir == 1
                    for t0 in 0..<seq {
                        let t = reverse ? seq - 1 - t0 : t0
                        // step = H · Rᵀ, then add the input projection and biases.
                        hState.withUnsafeBufferPointer { hp in step.withUnsafeMutableBufferPointer { sp in
                            Gemm.sgemm(c.variant, transA: false, transB: true, m: batch, n: g4, k: h, alpha: 1,
                                       a: hp.baseAddress!, lda: h, b: rd, ldb: h, beta: 0, c: sp.baseAddress!, ldc: g4)
                        } }
                        for b in 0..<batch {
                            for j in 0..<g4 {
                                var v = step[b * g4 + j] + gates[(t * batch + b) * g4 + j]
                                if let bias { let bp = bias.pointer(Float.self) + dir * 2 * g4; v += bp[j] + bp[g4 + j] }
                                step[b * g4 + j] = v
                            }
                            let p = peep.map { $0.pointer(Float.self) + dir * 3 * h }
                            for j in 0..<h {
                                func cl(_ v: Float) -> Float { clip > 0 ? min(max(v, -clip), clip) : v }
                                let cPrev = cState[b * h + j]
                                let gi = sigmoid(cl(step[b * g4 + j] + (p.map { $0[j] * cPrev } ?? 0)))
                                let gf = sigmoid(cl(step[b * g4 + 2 * h + j] + (p.map { $0[2 * h + j] * cPrev } ?? 0)))
                                let gc = tanhf(cl(step[b * g4 + 3 * h + j]))
                                let cNew = gf * cPrev + gi * gc
                                let go = sigmoid(cl(step[b * g4 + h + j] + (p.map { $0[h + j] * cNew } ?? 0)))
                                let hNew = go * tanhf(cNew)
                                cState[b * h + j] = cNew
                                hState[b * h + j] = hNew
                                yAll.mutable(Float.self)[((t * dirs + dir) * batch + b) * h + j] = hNew
                            }
                        }
                    }
                    for k in 0..<(batch * h) {
                        yH.mutable(Float.self)[dir * batch * h + k] = hState[k]
                        yC.mutable(Float.self)[dir * batch * h + k] = cState[k]
                    }
                }
                if layout == 1 {
                    // Y is [batch, seq, dirs, h]; Y_h and Y_c are [batch, dirs, h].
                    let yt = try c.alloc(.float, [batch, seq, dirs, h])
                    stridedCopy(yAll.storage.raw, offset: 0, strides: [dirs * h, dirs * batch * h, h, 1].enumerated().map { $0.offset == 0 ? h : ($0.offset == 1 ? dirs * batch * h : ($0.offset == 2 ? batch * h : 1)) },
                                shape: [batch, seq, dirs, h], elementSize: 4, to: yt.storage.raw)
                    return [yt, try transpose01(yH, c), try transpose01(yC, c)]
                }
                return [yAll, yH, yC]
            }
        },
    ]

    @inline(__always) static func sigmoid(_ v: Float) -> Float { ElementwiseOps.sigmoid(v) }

    /// Swaps the first two axes of a 3-D tensor.
    static func transpose01(_ t: MBTensor, _ c: ExecutionContext) throws -> MBTensor {
        guard t.rank == 3 else { throw OpError("expected 3 dimensions, got \(t.shape)") }
        let s = t.shape
        let out = try c.alloc(.float, [s[1], s[0], s[2]])
        stridedCopy(t.storage.raw, offset: 0, strides: [s[2], s[1] * s[2], 1], shape: [s[1], s[0], s[2]], elementSize: 4, to: out.storage.raw)
        return out
    }
}
