import MBCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ONNX Attention (opset 23+): scaled dot-product attention over [batch, heads, sequence, size]
/// (or [batch, sequence, heads × size] with q_num_heads/kv_num_heads), with a key/value cache
/// (past_key/past_value, concatenated in front: present_key/present_value), grouped-query heads
/// (each KV head serves q_heads / kv_heads query heads), an additive or boolean mask broadcast
/// right-aligned to [batch, q_heads, q_len, kv_len] (a shorter last axis is masked beyond its
/// end), bottom-right-aligned causal and sliding-window masks (offset by the cache length, or per
/// batch by nonpad_kv_seqlen - q_len), softcap, and the optional qk_matmul_output (mode 0/1: the
/// scaled, softcapped scores; 2: with the mask added; 3: the probabilities). The scale is split
/// as √scale on Q and on K, as the spec's function body does. A row whose mask allows no key is
/// all zeros. Plain loops: the reference, with sums in double.
enum AttentionOp {
    struct Settings: Sendable {
        var scale: Float?
        var causal: Bool
        var qHeads: Int?, kvHeads: Int?
        var softcap: Float
        var mode: Int
        var left: Int, right: Int
    }

    /// A [batch, heads, length, size] view of Q, K or V (3-D inputs split into heads).
    struct Heads {
        var values: [Float]
        var batch: Int, heads: Int, length: Int, size: Int
        @inline(__always) func at(_ b: Int, _ h: Int, _ s: Int) -> Int { ((b * heads + h) * length + s) * size }

        init(_ t: MBTensor, heads declared: Int?, what: String) throws {
            if t.rank == 4 {
                (batch, heads, length, size) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
                values = t.floats
                return
            }
            guard t.rank == 3 else { throw OpError("\(what) must be 3-D or 4-D, got \(t.shape)") }
            guard let h = declared, h > 0, t.shape[2] % h == 0 else {
                throw OpError("\(what) \(t.shape) is 3-D: q_num_heads and kv_num_heads must be set and divide its last dimension")
            }
            (batch, heads, length, size) = (t.shape[0], h, t.shape[1], t.shape[2] / h)
            let src = t.floats
            var out = [Float](repeating: 0, count: src.count)
            for b in 0..<batch { for s in 0..<length { for hh in 0..<heads { for d in 0..<size {
                out[((b * heads + hh) * length + s) * size + d] = src[(b * length + s) * heads * size + hh * size + d]
            } } } }
            values = out
        }

        init(values: [Float], batch: Int, heads: Int, length: Int, size: Int) {
            (self.values, self.batch, self.heads, self.length, self.size) = (values, batch, heads, length, size)
        }

        /// `past` followed by `self` along the sequence.
        func appended(to past: MBTensor?) throws -> Heads {
            guard let past else { return self }
            guard past.rank == 4, past.shape[0] == batch, past.shape[1] == heads, past.shape[3] == size else {
                throw OpError("past cache \(past.shape) does not fit [\(batch), \(heads), _, \(size)]")
            }
            let p = past.shape[2], pv = past.floats
            var out = Heads(values: [], batch: batch, heads: heads, length: p + length, size: size)
            out.values.reserveCapacity(batch * heads * (p + length) * size)
            for b in 0..<batch { for h in 0..<heads {
                let pastStart: Int = (b * heads + h) * p * size
                let pastEnd: Int = pastStart + p * size
                out.values.append(contentsOf: pv[pastStart..<pastEnd])
                out.values.append(contentsOf: values[at(b, h, 0)..<at(b, h, length)])
            } }
            return out
        }
    }

    static let table: [String: OpTable.Compile] = [
        "Attention": { n in
            let s = Settings(scale: n.node.attribute("scale") == nil ? nil : try n.float("scale", default: 1),
                             causal: try n.int("is_causal", default: 0) != 0,
                             qHeads: try n.int("q_num_heads"), kvHeads: try n.int("kv_num_heads"),
                             softcap: try n.float("softcap", default: 0), mode: try n.int("qk_matmul_output_mode", default: 0),
                             left: try n.int("left_window_size", default: -1), right: try n.int("right_window_size", default: -1))
            guard (0...3).contains(s.mode) else { throw n.bad("qk_matmul_output_mode must be 0...3, got \(s.mode)") }
            guard s.left >= -1, s.right >= -1 else { throw n.bad("left_window_size and right_window_size must be -1 or >= 0") }
            return { i, c in try run(s, i, c) }
        },
    ]

    static func run(_ s: Settings, _ i: Inputs, _ c: ExecutionContext) throws -> [MBTensor] {
        let q0 = try i.float(0, "Q"), k0 = try i.float(1, "K"), v0 = try i.float(2, "V")
        guard q0.rank == k0.rank, k0.rank == v0.rank else { throw OpError("Q \(q0.shape), K \(k0.shape) and V \(v0.shape) must have one rank") }
        let q = try Heads(q0, heads: s.qHeads, what: "Q")
        let pastKey = i[4], pastValue = i[5]
        guard (pastKey == nil) == (pastValue == nil) else { throw OpError("past_key and past_value must be given together") }
        let k = try Heads(k0, heads: s.kvHeads, what: "K").appended(to: pastKey)
        let v = try Heads(v0, heads: s.kvHeads, what: "V").appended(to: pastValue)
        let (batch, qh, ql, d) = (q.batch, q.heads, q.length, q.size)
        guard k.batch == batch, v.batch == batch, k.heads == v.heads, k.length == v.length, k.size == d, qh % k.heads == 0 else {
            throw OpError("Q \(q0.shape), K \(k0.shape) and V \(v0.shape) do not fit (heads, batch, sizes)")
        }
        let kl = k.length, dv = v.size, group = qh / k.heads
        let nonpad: [Int64]? = try i[6].map { t in
            guard t.count == batch else { throw OpError("nonpad_kv_seqlen has \(t.count) values for batch \(batch)") }
            return t.int64s
        }
        if nonpad != nil, pastKey != nil { throw OpError("nonpad_kv_seqlen cannot be combined with past_key/past_value") }
        let pastLength = pastKey?.shape[2] ?? 0
        func offset(_ b: Int) -> Int { nonpad.map { Int($0[b]) - ql } ?? pastLength }

        // The mask, broadcast right-aligned to [batch, q_heads, q_len, its own last axis].
        let mask = i[3]
        var maskStrides: [Int] = [], maskLast = 0, maskValues: [Float] = [], maskBool = false
        if let mask {
            guard mask.rank >= 1, mask.rank <= 4 else { throw OpError("attn_mask must have rank 1 to 4, got \(mask.shape)") }
            maskLast = mask.shape[mask.rank - 1]
            let target = [batch, qh, ql, maskLast]
            for (a, t) in zip(mask.shape.reversed(), target.reversed()) where a != 1 && a != t {
                throw OpError("attn_mask \(mask.shape) does not broadcast to \(target)")
            }
            maskStrides = broadcastStrides(mask.shape, to: target)
            maskBool = mask.elementType == .bool
            maskValues = maskBool ? mask.bools.map { $0 ? 0 : -.infinity } : try castTensor(mask, to: .float, c).floats
        }
        func bias(_ b: Int, _ h: Int, _ r: Int, _ j: Int) -> Float {
            var x: Float = 0
            if mask != nil {
                x = j < maskLast ? maskValues[b * maskStrides[0] + h * maskStrides[1] + r * maskStrides[2] + j * maskStrides[3]] : -.infinity
            }
            let diff = r + offset(b) - j
            if s.causal, diff < 0 { x += -.infinity }
            if s.left >= 0 || s.right >= 0 {
                if (s.left >= 0 && diff > s.left) || (s.right >= 0 && -diff > s.right) { x += -.infinity }
            }
            if let nonpad, Int64(j) >= nonpad[b] { x += -.infinity }
            return x
        }

        let scale = s.scale.map(Double.init) ?? 1 / Double(d).squareRoot()
        let root = Float(scale.squareRoot())
        let y = try c.alloc(.float, q0.rank == 4 ? [batch, qh, ql, dv] : [batch, ql, qh * dv])
        let scores = try c.alloc(.float, [batch, qh, ql, kl])
        let py = y.mutable(Float.self), ps = scores.mutable(Float.self)
        var row = [Double](repeating: 0, count: kl), probabilities = [Double](repeating: 0, count: kl)
        for b in 0..<batch { for h in 0..<qh {
            let hk = h / group
            for r in 0..<ql {
                let qa = q.at(b, h, r)
                var biasMax = -Double.infinity, logitMax = -Double.infinity, sawNaN = false
                for j in 0..<kl {
                    let ka = k.at(b, hk, j)
                    var dot = 0.0
                    for t in 0..<d { dot += Double(q.values[qa + t] * root) * Double(k.values[ka + t] * root) }
                    var x = Float(dot)
                    if s.softcap > 0 { x = Float(tanh(Double(x / s.softcap))) * s.softcap }
                    let bj = bias(b, h, r, j)
                    let withBias = x + bj
                    if s.mode <= 1 { ps[((b * qh + h) * ql + r) * kl + j] = x }
                    if s.mode == 2 { ps[((b * qh + h) * ql + r) * kl + j] = withBias }
                    row[j] = Double(withBias)
                    biasMax = max(biasMax, Double(bj))
                    if withBias.isNaN { sawNaN = true } else { logitMax = max(logitMax, Double(withBias)) }
                }
                // A row no key may attend is zeros (decided on the mask, not the logits).
                if biasMax == -.infinity || logitMax == -.infinity && !sawNaN {
                    for j in 0..<kl { probabilities[j] = 0 }
                } else {
                    let m = sawNaN ? Double.nan : logitMax
                    var sum = 0.0
                    for j in 0..<kl { probabilities[j] = exp(row[j] - m); sum += probabilities[j] }
                    for j in 0..<kl { probabilities[j] /= sum }
                }
                if s.mode == 3 { for j in 0..<kl { ps[((b * qh + h) * ql + r) * kl + j] = Float(probabilities[j]) } }
                for e in 0..<dv {
                    var acc = 0.0
                    for j in 0..<kl where probabilities[j] != 0 || probabilities[j].isNaN {
                        acc += Double(Float(probabilities[j])) * Double(v.values[v.at(b, hk, j) + e])
                    }
                    let out = q0.rank == 4 ? ((b * qh + h) * ql + r) * dv + e : (b * ql + r) * qh * dv + h * dv + e
                    py[out] = Float(acc)
                }
            }
        } }
        let presentKey = MBTensor(shape: [batch, k.heads, kl, d], floats: k.values)
        let presentValue = MBTensor(shape: [batch, v.heads, kl, dv], floats: v.values)
        return [y, presentKey, presentValue, scores]
    }
}
