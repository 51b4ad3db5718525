/// Float reductions over one contiguous run of axes: the input is viewed as
/// `[outer, length, inner]` and reduced over `length` into `[outer, inner]`. This covers global
/// pooling (`inner` 1: each plane summed in one pass), ReduceMean/Sum/Max/Min over H,W of NCHW
/// (`inner` 1) and over C of NHWC or H,W of NHWC (`inner` > 1, whole rows added at once).
public enum Reduce {
    public enum Kind: Sendable, CaseIterable {
        case sum, mean, max, min
    }

    /// Sums are accumulated in float SIMD lanes over blocks of `block` values (rows when
    /// `inner` > 1) and the block sums in Double, so the rounding error grows with the block,
    /// not with `length` (a million-element mean is as accurate as a thousand-element one).
    static let block = 1024

    /// Max and Min propagate NaN (a NaN anywhere in a run makes its result NaN), as
    /// ReduceMax/ReduceMin and GlobalMaxPool do; an empty run gives -inf/+inf (max/min), 0 (sum)
    /// and 0 (mean).
    public static func forward(
        _ variant: KernelVariant = .fast, _ kind: Kind, outer: Int, length: Int, inner: Int,
        input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        if variant == .reference {
            reference(kind, outer: outer, length: length, inner: inner, input: input, output: output)
            return
        }
        let work = outer * length * inner
        let threads = work > 1 << 15 ? threads : 1
        let out = UncheckedSendable(output)
        if inner == 1 {
            Parallel.forEach(outer, threads: threads) { o in
                out.value[o] = run(kind, input + o * length, length)
            }
            return
        }
        // Columns split into parts of whole cache lines, so two threads never write one line.
        let parts = outer >= 2 * threads ? 1 : max(1, min(4 * threads, inner / 64))
        Parallel.forEach(outer * parts, threads: threads) { job in
            let o = job / parts, part = job % parts
            let lo = inner * part / parts / 16 * 16, hi = part == parts - 1 ? inner : inner * (part + 1) / parts / 16 * 16
            columns(kind, input + o * length * inner + lo, length: length, stride: inner, count: hi - lo,
                    output: out.value + o * inner + lo)
        }
    }

    /// One contiguous run of `n` values.
    static func run(_ kind: Kind, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        switch kind {
        case .sum, .mean:
            var total: Double = 0
            var start = 0
            while start < n {
                let end = min(start + block, n)
                var a = SIMD8<Float>(), b = SIMD8<Float>()
                var k = start
                while k + 16 <= end {
                    a += UnsafeRawPointer(x + k).loadUnaligned(as: SIMD8<Float>.self)
                    b += UnsafeRawPointer(x + k + 8).loadUnaligned(as: SIMD8<Float>.self)
                    k += 16
                }
                var s = (a + b).sum()
                while k < end { s += x[k]; k += 1 }
                total += Double(s)
                start = end
            }
            return kind == .mean ? (n > 0 ? Float(total / Double(n)) : 0) : Float(total)
        case .max, .min:
            let isMax = kind == .max
            var m = SIMD8<Float>(repeating: isMax ? -.infinity : .infinity)
            var nan = SIMDMask<SIMD8<Int32>>()
            var k = 0
            while k + 8 <= n {
                let v = UnsafeRawPointer(x + k).loadUnaligned(as: SIMD8<Float>.self)
                m.replace(with: v, where: isMax ? v .> m : v .< m)
                nan .|= v .!= v
                k += 8
            }
            var r = isMax ? m.max() : m.min()
            var sawNaN = any(nan)
            while k < n {
                let v = x[k]
                if isMax ? v > r : v < r { r = v }
                if v.isNaN { sawNaN = true }
                k += 1
            }
            return sawNaN ? .nan : r
        }
    }

    /// `count` columns at stride `stride` (the `inner` extent), `length` rows each: whole rows
    /// combined at once (contiguous, vectorised by the compiler).
    static func columns(_ kind: Kind, _ x: UnsafePointer<Float>, length: Int, stride: Int, count: Int,
                        output: UnsafeMutablePointer<Float>) {
        guard count > 0 else { return }
        switch kind {
        case .sum, .mean:
            // Temporary buffers on the stack where they fit (a steady-state run allocates nothing).
            withUnsafeTemporaryAllocation(of: Float.self, capacity: count) { partialBuffer in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: count) { totalBuffer in
                let partial = partialBuffer.baseAddress!, total = totalBuffer.baseAddress!
                total.update(repeating: 0, count: count)
                var start = 0
                while start < length {
                    let end = min(start + block, length)
                    partial.update(repeating: 0, count: count)
                    for r in start..<end {
                        let row = x + r * stride
                        for j in 0..<count { partial[j] += row[j] }
                    }
                    for j in 0..<count { total[j] += Double(partial[j]) }
                    start = end
                }
                let scale = kind == .mean ? (length > 0 ? 1 / Double(length) : 0) : 1
                for j in 0..<count { output[j] = Float(total[j] * scale) }
            } }
        case .max:
            output.update(repeating: -.infinity, count: count)
            for r in 0..<length {
                let row = x + r * stride
                // `v > m || v != v`: NaN replaces and then stays (nothing compares above NaN).
                for j in 0..<count { let v = row[j], m = output[j]; output[j] = v > m || v != v ? v : m }
            }
        case .min:
            output.update(repeating: .infinity, count: count)
            for r in 0..<length {
                let row = x + r * stride
                for j in 0..<count { let v = row[j], m = output[j]; output[j] = v < m || v != v ? v : m }
            }
        }
    }

    /// The definition: every output a Double-accumulated loop over its run.
    public static func reference(_ kind: Kind, outer: Int, length: Int, inner: Int, input: UnsafePointer<Float>,
                                 output: UnsafeMutablePointer<Float>) {
        for o in 0..<outer {
            for j in 0..<inner {
                var sum: Double = 0
                var m: Float = kind == .max ? -.infinity : .infinity
                for r in 0..<length {
                    let v = input[(o * length + r) * inner + j]
                    sum += Double(v)
                    if v.isNaN || m.isNaN { m = .nan } else if kind == .max ? v > m : v < m { m = v }
                }
                switch kind {
                case .sum: output[o * inner + j] = Float(sum)
                case .mean: output[o * inner + j] = length > 0 ? Float(sum / Double(length)) : 0
                case .max, .min: output[o * inner + j] = m
                }
            }
        }
    }
}
