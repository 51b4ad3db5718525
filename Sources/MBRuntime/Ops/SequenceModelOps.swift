import MBCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The newer ONNX operators of sequence models: RotaryEmbedding, SwiGLU, CausalConvWithState and
/// LinearAttention (the recurrent linear/gated/delta/gated-delta state update). Plain loops in
/// float32 with double sums, following the spec's definitions step by step.
enum SequenceModelOps {
    static func sigmoid(_ x: Float) -> Float { 1 / (1 + Float(exp(Double(-x)))) }

    static let table: [String: OpTable.Compile] = [
        "RotaryEmbedding": { n in
            let interleaved = try n.int("interleaved", default: 0) != 0
            let rotaryAttr = try n.int("rotary_embedding_dim", default: 0), numHeads = try n.int("num_heads", default: 0)
            return { i, c in
                let x = try i.float(0, "X"), cosCache = try i.float(1, "cos_cache"), sinCache = try i.float(2, "sin_cache")
                let positions = try i[3].map { _ in try i.required(3, "position_ids").int64s }
                // [batch, heads, seq, head] (4-D) or [batch, seq, heads × head] (3-D).
                let four = x.rank == 4
                guard four || x.rank == 3 else { throw OpError("X must be 3-D or 4-D, got \(x.shape)") }
                let batch = x.shape[0], seq = four ? x.shape[2] : x.shape[1]
                let heads = four ? x.shape[1] : numHeads
                guard heads > 0, four || x.shape[2] % heads == 0 else { throw OpError("a 3-D X \(x.shape) needs num_heads dividing its last dimension") }
                let head = four ? x.shape[3] : x.shape[2] / heads
                let rotary = rotaryAttr == 0 ? head : rotaryAttr
                let half = rotary / 2
                guard rotary <= head, rotary % 2 == 0, cosCache.shape.last == half, sinCache.shape == cosCache.shape else {
                    throw OpError("cos_cache \(cosCache.shape) and sin_cache \(sinCache.shape) must end in rotary_embedding_dim / 2 = \(half)")
                }
                if let positions { guard positions.count == batch * seq else { throw OpError("position_ids must have \(batch) × \(seq) values") } }
                else { guard cosCache.count == batch * seq * half else { throw OpError("without position_ids the caches must be [\(batch), \(seq), \(half)]") } }
                let rows = cosCache.count / half
                let xs = x.pointer(Float.self), cs = cosCache.pointer(Float.self), ss = sinCache.pointer(Float.self)
                let y = try c.alloc(.float, x.shape)
                let ys = y.mutable(Float.self)
                for b in 0..<batch { for s in 0..<seq {
                    let row = positions.map { Int($0[b * seq + s]) } ?? (b * seq + s)
                    guard row >= 0, row < rows else { throw OpError("position \(row) is outside the caches' \(rows) rows") }
                    for h in 0..<heads {
                        let base = four ? ((b * heads + h) * seq + s) * head : (b * seq + s) * heads * head + h * head
                        for k in 0..<half {
                            let cv = cs[row * half + k], sv = ss[row * half + k]
                            let (i1, i2) = interleaved ? (base + 2 * k, base + 2 * k + 1) : (base + k, base + k + half)
                            let x1 = xs[i1], x2 = xs[i2]
                            ys[i1] = cv * x1 - sv * x2
                            ys[i2] = sv * x1 + cv * x2
                        }
                        for k in rotary..<head { ys[base + k] = xs[base + k] }
                    }
                } }
                return [y]
            }
        },
        "SwiGLU": { n in
            let alpha = try n.float("alpha", default: 1)
            return { i, c in
                let a = try i.float(0, "A"), b = try i.float(1, "B")
                guard a.shape == b.shape else { throw OpError("A \(a.shape) and B \(b.shape) must have one shape (no broadcasting)") }
                let y = try c.alloc(.float, a.shape)
                let pa = a.pointer(Float.self), pb = b.pointer(Float.self), py = y.mutable(Float.self)
                for k in 0..<a.count { py[k] = pa[k] * sigmoid(alpha * pa[k]) * pb[k] }
                return [y]
            }
        },
        "CausalConvWithState": { n in
            let activation = try n.string("activation", default: "none")
            guard ["none", "silu", "swish"].contains(activation) else { throw n.bad("activation '\(activation)' is not one of none, silu, swish") }
            return { i, c in
                let x = try i.float(0, "input"), w = try i.float(1, "weight")
                guard x.rank == 3, w.rank == 3, w.shape[0] == x.shape[1], w.shape[1] == 1, w.shape[2] >= 1 else {
                    throw OpError("input \(x.shape) must be [batch, channels, length] and weight \(w.shape) [channels, 1, k]")
                }
                let (batch, channels, length, k) = (x.shape[0], x.shape[1], x.shape[2], w.shape[2])
                let bias = try i[2].map { _ in try i.float(2, "bias") }
                if let bias, bias.count != channels { throw OpError("bias has \(bias.count) values for \(channels) channels") }
                let past = try i[3].map { _ in try i.float(3, "past_state") }
                if let past, past.shape != [batch, channels, k - 1] { throw OpError("past_state \(past.shape) must be [\(batch), \(channels), \(k - 1)]") }
                let y = try c.alloc(.float, x.shape), state = try c.alloc(.float, [batch, channels, k - 1])
                let px = x.pointer(Float.self), pw = w.pointer(Float.self), py = y.mutable(Float.self), pst = state.mutable(Float.self)
                var padded = [Float](repeating: 0, count: length + k - 1)
                for b in 0..<batch { for ch in 0..<channels {
                    for t in 0..<(k - 1) { padded[t] = past.map { $0.pointer(Float.self)[(b * channels + ch) * (k - 1) + t] } ?? 0 }
                    for t in 0..<length { padded[k - 1 + t] = px[(b * channels + ch) * length + t] }
                    for t in 0..<length {
                        var sum = Double(bias?.pointer(Float.self)[ch] ?? 0)
                        for j in 0..<k { sum += Double(pw[ch * k + j]) * Double(padded[t + j]) }
                        let v = Float(sum)
                        py[(b * channels + ch) * length + t] = activation == "none" ? v : v * sigmoid(v)
                    }
                    for t in 0..<(k - 1) { pst[(b * channels + ch) * (k - 1) + t] = padded[length + t] }
                } }
                return [y, state]
            }
        },
        "LinearAttention": { n in
            let rule = try n.string("update_rule", default: "gated_delta")
            guard ["linear", "gated", "delta", "gated_delta"].contains(rule) else { throw n.bad("update_rule '\(rule)' is not one of linear, gated, delta, gated_delta") }
            guard let qHeads = try n.int("q_num_heads"), let kvHeads = try n.int("kv_num_heads"), qHeads > 0, kvHeads > 0, qHeads % kvHeads == 0 else {
                throw n.bad("q_num_heads and kv_num_heads are required, q_num_heads a positive multiple of kv_num_heads")
            }
            let scaleAttr = try n.float("scale", default: 0)
            let gating = rule.hasPrefix("gated"), delta = rule.hasSuffix("delta")
            return { i, c in
                let q = try i.float(0, "query"), k = try i.float(1, "key"), v = try i.float(2, "value")
                guard q.rank == 3, k.rank == 3, v.rank == 3 else { throw OpError("query, key and value must be [batch, time, heads × size]") }
                let (batch, time) = (q.shape[0], q.shape[1])
                let dk = q.shape[2] / qHeads, dv = v.shape[2] / kvHeads, group = qHeads / kvHeads
                guard k.shape == [batch, time, kvHeads * dk], v.shape == [batch, time, kvHeads * dv] else {
                    throw OpError("key \(k.shape) and value \(v.shape) do not fit query \(q.shape) with \(qHeads)/\(kvHeads) heads")
                }
                let decay = try i[4].map { _ in try i.float(4, "decay") }, beta = try i[5].map { _ in try i.float(5, "beta") }
                guard (decay != nil) == gating, (beta != nil) == delta else {
                    throw OpError("update_rule '\(rule)' \(gating ? "needs" : "forbids") decay and \(delta ? "needs" : "forbids") beta")
                }
                if let decay, decay.shape != [batch, time, kvHeads], decay.shape != [batch, time, kvHeads * dk] {
                    throw OpError("decay \(decay.shape) must be [\(batch), \(time), \(kvHeads)] or [\(batch), \(time), \(kvHeads * dk)]")
                }
                if let beta, beta.shape != [batch, time, kvHeads], beta.shape != [batch, time, 1] {
                    throw OpError("beta \(beta.shape) must be [\(batch), \(time), \(kvHeads)] or [\(batch), \(time), 1]")
                }
                var state = [Float](repeating: 0, count: batch * kvHeads * dk * dv)
                if let past = i[3] {
                    guard past.shape == [batch, kvHeads, dk, dv] else { throw OpError("past_state \(past.shape) must be [\(batch), \(kvHeads), \(dk), \(dv)]") }
                    state = try castTensor(past, to: .float, c).floats
                }
                let scale = scaleAttr == 0 ? Float(1 / Double(dk).squareRoot()) : scaleAttr
                let pq = q.floats, pk = k.floats, pv = v.floats
                let pd = decay?.floats, pb = beta?.floats
                let y = try c.alloc(.float, [batch, time, qHeads * dv])
                let py = y.mutable(Float.self)
                var vt = [Float](repeating: 0, count: dv)
                for b in 0..<batch { for t in 0..<time {
                    for h in 0..<kvHeads {
                        let s0 = (b * kvHeads + h) * dk * dv
                        let kOff = (b * time + t) * kvHeads * dk + h * dk
                        if let pd {
                            let perKey = decay!.shape[2] != kvHeads
                            for d in 0..<dk {
                                let g = Float(exp(Double(pd[(b * time + t) * decay!.shape[2] + (perKey ? h * dk + d : h)])))
                                for m in 0..<dv { state[s0 + d * dv + m] *= g }
                            }
                        }
                        for m in 0..<dv { vt[m] = pv[(b * time + t) * kvHeads * dv + h * dv + m] }
                        if let pb {
                            let bt = pb[(b * time + t) * beta!.shape[2] + (beta!.shape[2] == 1 ? 0 : h)]
                            for m in 0..<dv {
                                var retrieved = 0.0
                                for d in 0..<dk { retrieved += Double(state[s0 + d * dv + m]) * Double(pk[kOff + d]) }
                                vt[m] = bt * (vt[m] - Float(retrieved))
                            }
                        }
                        for d in 0..<dk { for m in 0..<dv { state[s0 + d * dv + m] += pk[kOff + d] * vt[m] } }
                    }
                    for h in 0..<qHeads {
                        let s0 = (b * kvHeads + h / group) * dk * dv
                        let qOff = (b * time + t) * qHeads * dk + h * dk
                        for m in 0..<dv {
                            var sum = 0.0
                            for d in 0..<dk { sum += Double(pq[qOff + d]) * Double(state[s0 + d * dv + m]) }
                            py[(b * time + t) * qHeads * dv + h * dv + m] = scale * Float(sum)
                        }
                    }
                } }
                return [y, MBTensor(shape: [batch, kvHeads, dk, dv], floats: state)]
            }
        },
    ]
}
