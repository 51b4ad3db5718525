import CBitPlanes

extension BitPlaneMatrix {
    /// Binarized weights times binarized activations as AND/XOR-popcounts:
    /// `y = sum_{k,l} mu_k nu_l (popcount(a & b) - 2 popcount(a & b & (s ^ t))) + bias`, Relu when
    /// `relu`, for `positions` positions whose patches (`taps` unit indices each, -1 for padding)
    /// start at `patches`; row o of position p goes to `y[o * strideRow + p * stridePos]`.
    /// Positions are split across `threads`.
    public func binaryForward(
        _ variant: KernelVariant = .fast, acts: ActivationPlanes, patches: UnsafePointer<Int32>, positions: Int,
        bias: UnsafePointer<Float>?, relu: Bool, y: UnsafeMutablePointer<Float>, strideRow: Int, stridePos: Int, threads: Int = 1
    ) {
        precondition(acts.wordsPerUnit == wordsPerTap, "activation units of \(acts.wordsPerUnit) words for taps of \(wordsPerTap)")
        if variant == .reference {
            binaryForwardReference(acts: acts, patches: patches, positions: positions, bias: bias, relu: relu,
                                   y: y, strideRow: strideRow, stridePos: stridePos)
            return
        }
        let chunks = max(1, min(threads, positions))
        let box = UncheckedSendable((c, acts.c, patches, rowOrderBuffer.pointer, bias, y))
        let isa = bp_isa()
        let rows = Int32(self.rows)
        Parallel.forEach(chunks, threads: chunks) { t in
            var (w, x, patches, order, bias, y) = box.value
            let p0 = positions * t / chunks, p1 = positions * (t + 1) / chunks
            bp_binary_float(isa, &w, &x, patches, Int64(p0), Int64(p1 - p0), order, rows, bias, relu ? 1 : 0,
                            y, Int64(strideRow), Int64(stridePos))
        }
    }

    /// The integer part of `binaryForward` for every (position, block, weight level, activation
    /// level, lane): X = popcount(a & b & (s ^ t)) and M = popcount(a & b) summed over the patch.
    public func binaryCounts(_ variant: KernelVariant = .fast, acts: ActivationPlanes, patches: UnsafePointer<Int32>, positions: Int,
                             isa: Int32? = nil) -> (X: [Int32], M: [Int32]) {
        if variant == .reference { return binaryCountsReference(acts: acts, patches: patches, positions: positions) }
        let n = positions * blocks * levels * acts.levels * 8
        var X = [Int32](repeating: 0, count: n), M = [Int32](repeating: 0, count: n)
        var w = c, x = acts.c
        bp_binary_counts(isa ?? bp_isa(), &w, &x, patches, 0, Int64(positions), &X, &M)
        return (X, M)
    }

    /// Batch-1 GEMV with float activations on a chosen instruction set (tests sweep them all);
    /// `lut: false` takes the masked-add AVX-512 kernel instead of the lookup tables.
    public func levelSums(x: UnsafePointer<Float>, isa: Int32, lut: Bool = true, threads: Int = 1, scratch: BitPlaneScratch) -> [Float] {
        let padded = scratch.buffer(.paddedInput, paddedReduction, as: Float.self)
        padded.update(from: x, count: tapChannels)
        (padded + tapChannels).update(repeating: 0, count: paddedReduction - tapChannels)
        var out = [Float](repeating: 0, count: levels * blocks * 8)
        if lut && Self.usesLut(isa: isa) {
            lutLevelSums(x: padded, into: &out, threads: threads, scratch: scratch)
            return out
        }
        var w = c
        let tables = scratch.buffer(.gemvTables, Int(bp_gemv_scratch_floats(&w)), as: Float.self)
        bp_gemv_prepare(isa, &w, padded, tables)
        bp_gemv_float(isa, &w, padded, &out, tables, 0, Int32(blocks))
        return out
    }

    /// The instruction sets this CPU runs, portable first.
    public static var availableISAs: [Int32] { (0...bp_isa()).map { Int32($0) } }
    public static func isaName(_ isa: Int32) -> String { String(cString: bp_isa_name(isa)) }
}

/// Patches of a convolution over activation units (one unit per input pixel of one sample):
/// for each output position, the unit each kernel tap reads, -1 where it falls in the padding.
/// Taps in the weight's kernel order (row-major over the kernel's spatial dimensions).
public enum ConvPatches {
    public static func build(_ g: ConvGeometry, into out: UnsafeMutablePointer<Int32>) {
        let d = g.dims3
        let (kd, kh, kw) = d.kernel, (od, oh, ow) = d.output, (id, ih, iw) = d.input
        let (sd, sh, sw) = d.strides, (dd, dh, dw) = d.dilations, (pd, ph, pw) = d.pads
        var at = 0
        for oz in 0..<od { for oy in 0..<oh { for ox in 0..<ow {
            for z in 0..<kd { for y in 0..<kh { for x in 0..<kw {
                let iz = oz * sd - pd + z * dd, iy = oy * sh - ph + y * dh, ix = ox * sw - pw + x * dw
                let inside = iz >= 0 && iz < id && iy >= 0 && iy < ih && ix >= 0 && ix < iw
                out[at] = inside ? Int32((iz * ih + iy) * iw + ix) : -1
                at += 1
            } } }
        } } }
    }
}
