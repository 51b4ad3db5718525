extension ConvTranspose {
    /// Whether `phases` can run `g` (1-D or 2-D, RowGemm's AVX-512 kernel present).
    public static func canRunPhases(_ g: ConvTransposeGeometry) -> Bool {
        let d = g.dims3
        return RowGemm.isAvailable && d.kernel.0 == 1 && d.input.0 == 1 && d.output.0 == 1 && d.strides.0 == 1
    }

    /// Whether `phases` runs `g` automatically: 1-D or 2-D, RowGemm's AVX-512 kernel present, and windows
    /// that overlap (kernel larger than the stride, or padded). A kernel equal to its stride
    /// without padding (YOLO's 2×2 stride-2 upsampling) makes every phase a 1×1 product whose
    /// scatter into every other column costs more than col2im, which then adds each column
    /// exactly once (`mbbench conv --set real`: 13.6 against 17.1 ms).
    public static func suitsPhases(_ g: ConvTransposeGeometry) -> Bool {
        guard canRunPhases(g) else { return false }
        let d = g.dims3
        let tiles = d.kernel.1 == d.strides.1 && d.kernel.2 == d.strides.2 && d.pads == (0, 0, 0) && d.dilations == (1, 1, 1)
        return !tiles
    }

    /// A 1-D/2-D transposed convolution as `sh·sw` ordinary convolutions, one per output phase
    /// (sub-pixel decomposition): the outputs `(ry + sh·j, rx + sw·i)` receive exactly the taps
    /// `ky` with `ky·dh ≡ ry + ph (mod sh)` (and likewise in x), each reading input
    /// `(j + dy, i + dx)` with `dy = (ry + ph - ky·dh) / sh`. So each phase is a small
    /// convolution (a 2×2 one for kernel 4 stride 2, a 1×1 one for kernel 2 stride 2) over a
    /// zero-bordered copy of the input, run through `RowGemm` on shifted row pointers (as
    /// `Conv.shifted` does), then scattered into every `sh`-th row and `sw`-th column. No
    /// `kSize`-times-larger column matrix, no col2im pass, bias added in the GEMM epilogue.
    static func phases(
        _ g: ConvTransposeGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, threads: Int, scratch: KernelScratch
    ) {
        let d = g.dims3
        let (_, kh, kw) = d.kernel
        let (_, ih, iw) = d.input
        let (_, oh, ow) = d.output
        let (_, sh, sw) = d.strides
        let (_, dh, dw) = d.dilations
        let (_, ph, pw) = d.pads
        // Taps per phase along one axis: (kernel index, input offset).
        func axisTaps(_ r: Int, k: Int, s: Int, dil: Int, pad: Int) -> [(k: Int, offset: Int)] {
            (0..<k).compactMap { t in
                let v = r + pad - t * dil
                return ((v % s) + s) % s == 0 ? (t, v >= 0 ? v / s : -((-v) / s)) : nil
            }
        }
        func count(_ r: Int, _ o: Int, _ s: Int) -> Int { r < o ? (o - r + s - 1) / s : 0 }
        let tapsY = (0..<sh).map { axisTaps($0, k: kh, s: sh, dil: dh, pad: ph) }
        let tapsX = (0..<sw).map { axisTaps($0, k: kw, s: sw, dil: dw, pad: pw) }
        // One zero border for every phase: the lowest and highest input row/column any phase reads.
        var top = 0, bottom = 0, left = 0, right = 0
        for ry in 0..<sh where count(ry, oh, sh) > 0 {
            for t in tapsY[ry] { top = max(top, -t.offset); bottom = max(bottom, count(ry, oh, sh) - 1 + t.offset - (ih - 1)) }
        }
        for rx in 0..<sw where count(rx, ow, sw) > 0 {
            for t in tapsX[rx] { left = max(left, -t.offset); right = max(right, count(rx, ow, sw) - 1 + t.offset - (iw - 1)) }
        }
        let hp = ih + top + bottom, wp = iw + left + right, plane = hp * wp
        let inC = g.inPerGroup, m = g.outPerGroup, kSize = kh * kw
        let inSize = ih * iw, outSize = oh * ow
        // Shifted rows of the last plane run up to `wp` past it (columns that are dropped).
        let slack = wp + 16
        let padded = scratch.floats(inC * plane + slack, .padded)
        let packedA = scratch.floats(m * inC * kSize, .columns)
        let rows = scratch.rowPointers(inC * kSize)
        for n in 0..<g.batch {
            for grp in 0..<g.groups {
                let x = UncheckedSendable(input + (n * g.inChannels + grp * g.inPerGroup) * inSize)
                let y = output + (n * g.outChannels + grp * m) * outSize
                let w = weights + grp * inC * m * kSize
                let b = bias.map { $0 + grp * m }
                let p = UncheckedSendable(padded)
                Parallel.forEach(inC, threads: inC * plane > 1 << 15 ? threads : 1) { c in
                    let dst = p.value + c * plane, src = x.value + c * inSize
                    dst.update(repeating: 0, count: top * wp)
                    for r in 0..<ih {
                        let row = dst + (top + r) * wp
                        row.update(repeating: 0, count: left)
                        (row + left).update(from: src + r * iw, count: iw)
                        (row + left + iw).update(repeating: 0, count: right)
                    }
                    (dst + (top + ih) * wp).update(repeating: 0, count: bottom * wp)
                }
                (padded + inC * plane).update(repeating: 0, count: slack)
                for ry in 0..<sh {
                    let jy = count(ry, oh, sh)
                    if jy == 0 { continue }
                    for rx in 0..<sw {
                        let jx = count(rx, ow, sw)
                        if jx == 0 { continue }
                        let ty = tapsY[ry], tx = tapsX[rx]
                        let k = inC * ty.count * tx.count
                        // A[oc, (c, a, b)] = W[c, oc, ky_a, kx_b]; B rows shifted by each tap's offset.
                        for oc in 0..<m {
                            var dst = packedA + oc * k
                            for c in 0..<inC {
                                let wc = w + (c * m + oc) * kSize
                                for a in ty { for t in tx { dst.pointee = wc[a.k * kw + t.k]; dst += 1 } }
                            }
                        }
                        var r = 0
                        for c in 0..<inC {
                            for a in ty { for t in tx {
                                rows[r] = UnsafePointer(padded + c * plane + (top + a.offset) * wp + left + t.offset)
                                r += 1
                            } }
                        }
                        // On AVX-512 the product reads B with a pitch of wp and computes only the jx
                        // columns of each row that land in the output; elsewhere all wp.
                        let pitched = RowGemm.pitchedAvailable && jx != wp
                        let rowWidth = pitched ? jx : wp
                        let wideColumns = jy * rowWidth
                        let wide = scratch.floats(m * wideColumns, .wideOutput)
                        if pitched {
                            RowGemm.forward(m: m, n: wideColumns, k: k, a: packedA, lda: max(k, 1), rows: rows, width: jx, pitch: wp, bias: b,
                                            activation: .none, c: wide, ldc: wideColumns, threads: threads)
                        } else {
                            RowGemm.forward(m: m, n: wideColumns, k: k, a: packedA, lda: max(k, 1), rows: rows, bias: b, activation: .none,
                                            c: wide, ldc: wideColumns, threads: threads)
                        }
                        let box = UncheckedSendable((UnsafePointer(wide), y))
                        Parallel.forEach(m, threads: m * wideColumns > 1 << 15 ? threads : 1) { oc in
                            let (wide, y) = box.value
                            for j in 0..<jy {
                                let src = wide + oc * wideColumns + j * rowWidth
                                let dst = y + oc * outSize + (ry + j * sh) * ow + rx
                                if sw == 1 {
                                    dst.update(from: src, count: jx)
                                } else {
                                    for i in 0..<jx { dst[i * sw] = src[i] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
