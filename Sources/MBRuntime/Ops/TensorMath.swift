import MBCore
import MBKernels

/// Row-major strides of `shape` in elements.
func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = Array(repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[i] = s
        s *= shape[i]
    }
    return strides
}

/// Numpy-style broadcast of two shapes, or an error naming both.
func broadcastShapes(_ a: [Int], _ b: [Int]) throws -> [Int] {
    let r = max(a.count, b.count)
    var out = Array(repeating: 1, count: r)
    for i in 0..<r {
        let x = i < r - a.count ? 1 : a[i - (r - a.count)]
        let y = i < r - b.count ? 1 : b[i - (r - b.count)]
        guard x == y || x == 1 || y == 1 else { throw OpError("shapes \(a) and \(b) cannot be broadcast together") }
        out[i] = x == 1 ? y : x
    }
    return out
}

/// The element offsets (in batch items) of batch item `index` of `batch` in two operands read
/// with broadcast strides `sa` and `sb` (numpy.matmul's batch dimensions).
func batchOffsets(_ index: Int, batch: [Int], _ sa: [Int], _ sb: [Int]) -> (Int, Int) {
    var rest = index, oa = 0, ob = 0
    for d in stride(from: batch.count - 1, through: 0, by: -1) {
        let q = rest % batch[d]
        rest /= batch[d]
        oa += q * sa[d]
        ob += q * sb[d]
    }
    return (oa, ob)
}

/// Strides that read `shape` as if it had `outShape` (0 along broadcast dimensions).
func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
    let r = outShape.count
    let own = contiguousStrides(shape)
    return (0..<r).map { i in
        let j = i - (r - shape.count)
        if j < 0 || shape[j] == 1 { return 0 }
        return own[j]
    }
}

/// Merges dimensions that every stride list walks contiguously, and drops size-1 dimensions.
func coalesce(_ shape: [Int], _ strides: [[Int]]) -> (shape: [Int], strides: [[Int]]) {
    var dims: [Int] = []
    var st: [[Int]] = strides.map { _ in [] }
    for i in 0..<shape.count where shape[i] != 1 {
        if let last = dims.last, (0..<strides.count).allSatisfy({ st[$0].last! == strides[$0][i] * shape[i] }) {
            dims[dims.count - 1] = last * shape[i]
            for k in 0..<strides.count { st[k][st[k].count - 1] = strides[k][i] }
        } else {
            dims.append(shape[i])
            for k in 0..<strides.count { st[k].append(strides[k][i]) }
        }
    }
    if dims.isEmpty { return ([1], strides.map { _ in [0] }) }
    return (dims, st)
}

/// Minimum elements per thread before a loop is split.
let parallelGrain = 1 << 15

/// `out[i] = f(x[i])` over a float tensor.
@inline(__always)
func mapFloats(_ x: MBTensor, _ ctx: ExecutionContext, _ f: (Float) -> Float) throws -> MBTensor {
    let out = try ctx.alloc(.float, x.shape)
    let src = x.pointer(Float.self), dst = UncheckedSendable(out.mutable(Float.self))
    let n = x.count
    let chunks = min(ctx.threads, max(1, n / parallelGrain))
    Parallel.forEach(chunks, threads: chunks) { c in
        let lo = n * c / chunks, hi = n * (c + 1) / chunks
        let d = dst.value
        for i in lo..<hi { d[i] = f(src[i]) }
    }
    return out
}

/// `out = f(a, b)` with numpy broadcasting; T in, U out.
@inline(__always)
func broadcastMap<T, U>(_ a: MBTensor, _ b: MBTensor, _ outType: ElementType, _ ctx: ExecutionContext, _ f: (T, T) -> U) throws -> MBTensor {
    let shape = a.shape == b.shape ? a.shape : try broadcastShapes(a.shape, b.shape)
    let out = try ctx.alloc(outType, shape)
    let pa = a.pointer(T.self), pb = b.pointer(T.self)
    let po = UncheckedSendable(out.mutable(U.self))
    let n = out.count
    if n == 0 { return out }
    if a.shape == b.shape {
        let chunks = min(ctx.threads, max(1, n / parallelGrain))
        Parallel.forEach(chunks, threads: chunks) { c in
            let lo = n * c / chunks, hi = n * (c + 1) / chunks
            let o = po.value
            for i in lo..<hi { o[i] = f(pa[i], pb[i]) }
        }
        return out
    }
    let (dims, st) = coalesce(shape, [broadcastStrides(a.shape, to: shape), broadcastStrides(b.shape, to: shape), contiguousStrides(shape)])
    let inner = dims.last!, sa = st[0].last!, sb = st[1].last!
    let rows = n / inner
    let outer = Array(dims.dropLast())
    let threads = min(ctx.threads, max(1, n / parallelGrain))
    Parallel.forEach(rows, threads: threads) { r in
        var rest = r, oa = 0, ob = 0
        for d in stride(from: outer.count - 1, through: 0, by: -1) {
            let k = rest % outer[d]
            rest /= outer[d]
            oa += k * st[0][d]
            ob += k * st[1][d]
        }
        let o = po.value + r * inner
        let x = pa + oa, y = pb + ob
        if sa == 1 && sb == 1 {
            for i in 0..<inner { o[i] = f(x[i], y[i]) }
        } else if sa == 1 {
            let v = y[0]
            if sb == 0 { for i in 0..<inner { o[i] = f(x[i], v) } } else { for i in 0..<inner { o[i] = f(x[i], y[i * sb]) } }
        } else if sb == 1 && sa == 0 {
            let v = x[0]
            for i in 0..<inner { o[i] = f(v, y[i]) }
        } else {
            for i in 0..<inner { o[i] = f(x[i * sa], y[i * sb]) }
        }
    }
    return out
}

/// Copies `shape` elements read at `src + offset + Σ index·srcStrides` into contiguous `dst`.
func stridedCopy(_ src: UnsafeRawPointer, offset: Int, strides: [Int], shape: [Int], elementSize: Int, to dst: UnsafeMutableRawPointer) {
    let n = shape.reduce(1, *)
    if n == 0 { return }
    let (dims, st) = coalesce(shape, [strides])
    let s = st[0]
    func run<T>(_: T.Type) {
        let from = src.assumingMemoryBound(to: T.self) + offset
        var to = dst.assumingMemoryBound(to: T.self)
        let inner = dims.last!, si = s.last!
        let outer = Array(dims.dropLast())
        var index = Array(repeating: 0, count: outer.count)
        var base = 0
        let rows = n / inner
        for _ in 0..<rows {
            let p = from + base
            if si == 1 { to.update(from: p, count: inner) } else { for i in 0..<inner { to[i] = p[i * si] } }
            to += inner
            var d = outer.count - 1
            while d >= 0 {
                index[d] += 1
                base += s[d]
                if index[d] < outer[d] { break }
                base -= s[d] * outer[d]
                index[d] = 0
                d -= 1
            }
        }
    }
    switch elementSize {
    case 1: run(UInt8.self)
    case 4: run(UInt32.self)
    default: run(UInt64.self)
    }
}

/// `stridedCopy` where the permutation comes down to transposing (a batch of) matrices of 4-byte
/// elements, e.g. an image's NHWC -> NCHW: the blocked, threaded `Transpose.matrices`. False
/// (nothing copied) for any other case.
func transposeMatrices(_ src: UnsafeRawPointer, strides: [Int], shape: [Int], elementSize: Int, to dst: UnsafeMutableRawPointer, threads: Int) -> Bool {
    guard elementSize == 4 else { return false }
    let (dims, st) = coalesce(shape, [strides])
    let s = st[0]
    // Output dims [.., A, B] read at strides [.., 1, A]: out[a][b] = in[b * A + a], the
    // transpose of a [B, A] matrix; a leading dim at stride A * B is a batch of them.
    guard dims.count == 2 || dims.count == 3, s[s.count - 1] == dims[dims.count - 2], s[s.count - 2] == 1 else { return false }
    let A = dims[dims.count - 2], B = dims[dims.count - 1]
    if dims.count == 3 && s[0] != A * B { return false }
    Transpose.matrices(src.assumingMemoryBound(to: UInt32.self), dst.assumingMemoryBound(to: UInt32.self), batch: dims.count == 3 ? dims[0] : 1,
                       rows: B, cols: A, threads: threads)
    return true
}

/// A tensor's elements as Int (for shape-like inputs: int64, int32, or float holding integers).
func intValues(_ t: MBTensor) -> [Int] {
    switch t.elementType {
    case .int64: return t.buffer(Int64.self).map { Int(truncatingIfNeeded: $0) }
    case .int32: return t.buffer(Int32.self).map { Int($0) }
    case .float: return t.buffer(Float.self).map(clampedInt)
    case .bool: return t.buffer(UInt8.self).map { Int($0) }
    default: return []
    }
}

/// A float as an Int, truncated toward zero; NaN is 0 and out-of-range values saturate (a
/// hostile shape tensor must give an error later, never a trap here).
func clampedInt(_ v: Float) -> Int {
    guard v.isFinite else { return v.isNaN ? 0 : (v > 0 ? .max : .min) }
    guard v < 9.2e18 else { return .max }
    guard v > -9.2e18 else { return .min }
    return Int(v)
}

/// A tensor's elements as Float.
func floatValues(_ t: MBTensor) -> [Float] { t.floats }

/// A scalar (or 1-element tensor) as Float.
func floatScalar(_ t: MBTensor) throws -> Float {
    guard t.count == 1 else { throw OpError("expected a single value, got shape \(t.shape)") }
    return t.floats[0]
}

func makeInt64(_ ctx: ExecutionContext, _ values: [Int], shape: [Int]? = nil) throws -> MBTensor {
    let t = try ctx.alloc(.int64, shape ?? [values.count])
    let p = t.mutable(Int64.self)
    for (i, v) in values.enumerated() { p[i] = Int64(v) }
    return t
}
