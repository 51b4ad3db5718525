import MBCore
import MBKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// BatchNormalization (inference, and training_mode=1's batch statistics), InstanceNormalization, LRN, Softmax and LogSoftmax.
enum NormalizationOps {
    /// BatchNormalization with training_mode=1 (opset 14+): normalized by this batch's per-channel
    /// mean and population variance (over every axis but 1); outputs Y and the running statistics
    /// `mean · momentum + batch statistic · (1 − momentum)`.
    static func batchNormTraining(_ i: Inputs, _ c: ExecutionContext, eps: Float, momentum: Float) throws -> [MBTensor] {
        let x = try i.float(0, "X")
        let scale = try i.float(1, "scale"), bias = try i.float(2, "B"), mean = try i.float(3, "input_mean"), variance = try i.float(4, "input_var")
        guard x.rank >= 2 else { throw OpError("X \(x.shape) needs a channel dimension") }
        let ch = x.shape[1], size = x.shape[2...].reduce(1, *), batch = x.shape[0]
        for (t, what) in [(scale, "scale"), (bias, "B"), (mean, "input_mean"), (variance, "input_var")] where t.count != ch {
            throw OpError("\(what) has \(t.count) values for \(ch) channels")
        }
        let src = x.pointer(Float.self), s = scale.pointer(Float.self), b = bias.pointer(Float.self)
        let m = mean.pointer(Float.self), v = variance.pointer(Float.self)
        var mul = [Float](repeating: 0, count: ch), add = [Float](repeating: 0, count: ch)
        var runningMean = [Float](repeating: 0, count: ch), runningVar = [Float](repeating: 0, count: ch)
        let count = Double(batch * size)
        for k in 0..<ch {
            var sum: Double = 0
            for n in 0..<batch { for j in 0..<size { sum += Double(src[(n * ch + k) * size + j]) } }
            let mu = count > 0 ? sum / count : 0
            var squares: Double = 0
            for n in 0..<batch { for j in 0..<size { let d = Double(src[(n * ch + k) * size + j]) - mu; squares += d * d } }
            let sigma2 = count > 0 ? squares / count : 0
            mul[k] = Float(Double(s[k]) / (sigma2 + Double(eps)).squareRoot())
            add[k] = b[k] - Float(mu) * mul[k]
            runningMean[k] = m[k] * momentum + Float(mu) * (1 - momentum)
            runningVar[k] = v[k] * momentum + Float(sigma2) * (1 - momentum)
        }
        return [try channelAffine(x, mul, add, c), MBTensor(shape: [ch], floats: runningMean), MBTensor(shape: [ch], floats: runningVar)]
    }

    static let table: [String: OpTable.Compile] = [
        "BatchNormalization": { n in
            let eps = try n.float("epsilon", default: 1e-5), momentum = try n.float("momentum", default: 0.9)
            let training = n.opset >= 14 ? try n.int("training_mode", default: 0) != 0 : false
            if n.opset < 9, try n.int("spatial", default: 1) == 0 { throw n.unsupported("spatial=0 is not supported") }
            if training { return { i, c in try batchNormTraining(i, c, eps: eps, momentum: momentum) } }
            return { i, c in
                let x = try i.float(0, "X")
                let scale = try i.float(1, "scale"), bias = try i.float(2, "B"), mean = try i.float(3, "mean"), variance = try i.float(4, "var")
                guard x.rank >= 2 else { throw OpError("X \(x.shape) needs a channel dimension") }
                let ch = x.shape[1]
                for (t, what) in [(scale, "scale"), (bias, "B"), (mean, "mean"), (variance, "var")] where t.count != ch {
                    throw OpError("\(what) has \(t.count) values for \(ch) channels")
                }
                var mul = [Float](repeating: 0, count: ch), add = [Float](repeating: 0, count: ch)
                let s = scale.pointer(Float.self), b = bias.pointer(Float.self), m = mean.pointer(Float.self), v = variance.pointer(Float.self)
                for k in 0..<ch {
                    mul[k] = s[k] / (v[k] + eps).squareRoot()
                    add[k] = b[k] - m[k] * mul[k]
                }
                return [try channelAffine(x, mul, add, c)]
            }
        },
        "InstanceNormalization": { n in
            let eps = try n.float("epsilon", default: 1e-5)
            return { i, c in
                let x = try i.float(0, "X"), scale = try i.float(1, "scale"), bias = try i.float(2, "B")
                guard x.rank >= 3 else { throw OpError("X \(x.shape) needs spatial dimensions") }
                let ch = x.shape[1], size = x.shape[2...].reduce(1, *)
                guard scale.count == ch, bias.count == ch else { throw OpError("scale and B need \(ch) values") }
                let y = try c.alloc(.float, x.shape)
                let src = x.pointer(Float.self), dst = y.mutable(Float.self)
                let s = scale.pointer(Float.self), b = bias.pointer(Float.self)
                for p in 0..<(x.shape[0] * ch) {
                    let xs = src + p * size, ys = dst + p * size
                    var mean: Double = 0
                    for k in 0..<size { mean += Double(xs[k]) }
                    mean /= Double(size)
                    var v: Double = 0
                    for k in 0..<size { let d = Double(xs[k]) - mean; v += d * d }
                    v /= Double(size)
                    let mul = Float(Double(s[p % ch]) / (v + Double(eps)).squareRoot())
                    let add = b[p % ch] - Float(mean) * mul
                    for k in 0..<size { ys[k] = xs[k] * mul + add }
                }
                return [y]
            }
        },
        "LRN": { n in
            let alpha = try n.float("alpha", default: 1e-4), beta = try n.float("beta", default: 0.75), bias = try n.float("bias", default: 1)
            guard let size = try n.int("size"), size >= 1 else { throw n.bad("size (>= 1) is required") }
            return { i, c in
                let x = try i.float(0, "X")
                guard x.rank >= 3 else { throw OpError("X \(x.shape) needs spatial dimensions") }
                let ch = x.shape[1], plane = x.shape[2...].reduce(1, *)
                let y = try c.alloc(.float, x.shape)
                let src = x.pointer(Float.self), dst = UncheckedSendable(y.mutable(Float.self))
                let before = (size - 1) / 2, after = size - 1 - before
                let scale = alpha / Float(size)
                Parallel.forEach(x.shape[0] * ch, threads: c.threads) { job in
                    let nIdx = job / ch, k = job % ch
                    let lo = max(0, k - before), hi = min(ch - 1, k + after)
                    let out = dst.value + job * plane
                    let xs = src + job * plane
                    // Sum of squares over the channel window, plane by plane (contiguous).
                    for p in 0..<plane { out[p] = 0 }
                    for j in lo...hi {
                        let other = src + (nIdx * ch + j) * plane
                        for p in 0..<plane { out[p] += other[p] * other[p] }
                    }
                    if beta == 0.75 {
                        // b^0.75 = sqrt(b) · sqrt(sqrt(b)): two vectorizable square roots instead of powf.
                        for p in 0..<plane {
                            let b = bias + scale * out[p]
                            let r = b.squareRoot()
                            out[p] = xs[p] / (r * r.squareRoot())
                        }
                    } else {
                        for p in 0..<plane { out[p] = xs[p] / powf(bias + scale * out[p], beta) }
                    }
                }
                return [y]
            }
        },
        "Softmax": { n in try softmax(n, log: false) },
        "LogSoftmax": { n in try softmax(n, log: true) },
    ]

    /// y = x * mul[c] + add[c] along axis 1.
    static func channelAffine(_ x: MBTensor, _ mul: [Float], _ add: [Float], _ c: ExecutionContext) throws -> MBTensor {
        let ch = mul.count, plane = x.shape[2...].reduce(1, *)
        let y = try c.alloc(.float, x.shape)
        let src = x.pointer(Float.self), dst = UncheckedSendable(y.mutable(Float.self))
        Parallel.forEach(x.shape[0] * ch, threads: x.count > parallelGrain ? c.threads : 1) { p in
            let m = mul[p % ch], a = add[p % ch]
            let xs = src + p * plane, ys = dst.value + p * plane
            for k in 0..<plane { ys[k] = xs[k] * m + a }
        }
        return y
    }

    /// The [outer, length, inner] view Softmax, LogSoftmax and Hardmax work over: before opset 13
    /// the input coerced to 2-D at `axis`, from 13 the single axis.
    static func softmaxView(_ x: MBTensor, axis axisAttr: Int, legacy: Bool) throws -> (outer: Int, length: Int, inner: Int) {
        let axis = try normalizeAxis(axisAttr, rank: x.rank)
        let outer = x.shape[..<axis].reduce(1, *)
        let len = legacy ? x.shape[axis...].reduce(1, *) : (x.rank == 0 ? 1 : x.shape[axis])
        return (outer, len, legacy ? 1 : x.shape[(axis + 1)...].reduce(1, *))
    }

    /// Opset < 13: the input is coerced to 2-D at `axis` (default 1) and normalized over the
    /// flattened trailing block. Opset >= 13: normalized along `axis` alone (default -1).
    static func softmax(_ n: NodeContext, log: Bool) throws -> OpRun {
        let legacy = n.opset < 13
        let axisAttr = try n.int("axis", default: legacy ? 1 : -1)
        return { i, c in
            let x = try i.float(0, "input")
            let (outer, len, inner) = try softmaxView(x, axis: axisAttr, legacy: legacy)
            if !log && inner == 1 && c.variant == .fast {
                // Contiguous rows: the SIMD kernel, rows split across threads, over a dying input.
                let y = try c.output(x.shape, reusing: [0], of: i)
                let src = x.pointer(Float.self), dst = UncheckedSendable(y.mutable(Float.self))
                let chunks = min(c.threads, outer, max(1, x.count / FloatElementwise.grain))
                Parallel.forEach(chunks, threads: chunks) { k in
                    let lo = outer * k / chunks, hi = outer * (k + 1) / chunks
                    Elementwise.softmaxRows(src + lo * len, dst.value + lo * len, rows: hi - lo, n: len)
                }
                return [y]
            }
            let y = try c.alloc(.float, x.shape)
            let src = x.pointer(Float.self), dst = UncheckedSendable(y.mutable(Float.self))
            Parallel.forEach(outer * inner, threads: x.count > parallelGrain ? c.threads : 1) { job in
                let o = job / inner, q = job % inner
                let base = o * len * inner + q
                var m = -Float.infinity
                for k in 0..<len { m = max(m, src[base + k * inner]) }
                var sum: Float = 0
                let d = dst.value
                for k in 0..<len { let e = expf(src[base + k * inner] - m); d[base + k * inner] = e; sum += e }
                if log {
                    let ls = logf(sum)
                    for k in 0..<len { d[base + k * inner] = src[base + k * inner] - m - ls }
                } else {
                    let inv = 1 / sum
                    for k in 0..<len { d[base + k * inner] *= inv }
                }
            }
            return [y]
        }
    }
}
