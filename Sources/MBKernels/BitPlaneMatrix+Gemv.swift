import CBitPlanes

extension BitPlaneMatrix {
    /// Batch-1 product with float activations straight from the planes:
    /// `y[o] = sum_k mu_k[o] * (sum over j active at k of s_kj x[j]) + bias[o]`, for a Gemm-shaped
    /// matrix (one tap); `x` holds `tapChannels` floats. Only stored (non-empty) words are read,
    /// so the cost follows the blocks' average bit width. Blocks are split across `threads`.
    public func gemv(
        _ variant: KernelVariant = .fast, x: UnsafePointer<Float>, bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>,
        threads: Int = 1, scratch: BitPlaneScratch
    ) {
        precondition(taps == 1, "gemv needs a Gemm-shaped matrix (one tap)")
        if variant == .reference {
            gemvReference(x: x, bias: bias, y: y)
            return
        }
        let padded = scratch.buffer(.paddedInput, paddedReduction, as: Float.self)
        padded.update(from: x, count: tapChannels)
        (padded + tapChannels).update(repeating: 0, count: paddedReduction - tapChannels)
        let isa = bp_isa()
        let sums = scratch.buffer(.levelSums, levels * blocks * 8, as: Float.self)
        if Self.usesLut(isa: isa) {
            lutLevelSums(x: padded, into: sums, threads: threads, scratch: scratch)
            epilogue(sums: sums, bias: bias, y: y)
            return
        }
        var cw = c
        let tables = scratch.buffer(.gemvTables, Int(bp_gemv_scratch_floats(&cw)), as: Float.self)
        bp_gemv_prepare(isa, &cw, padded, tables)
        let chunks = max(1, min(threads, blocks / 16))
        let box = UncheckedSendable((cw, padded, sums, tables))
        Parallel.forEach(chunks, threads: chunks) { t in
            var (w, padded, sums, tables) = box.value
            let b0 = blocks * t / chunks, b1 = blocks * (t + 1) / chunks
            bp_gemv_float(isa, &w, padded, sums, tables, Int32(b0), Int32(b1 - b0))
        }
        epilogue(sums: sums, bias: bias, y: y)
    }

    /// Applies each level's scale once per output (levels ascending) and the bias, writing rows
    /// in their original order.
    func epilogue(sums: UnsafePointer<Float>, bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>) {
        let stride = blocks * 8
        for br in 0..<stride {
            let o = Int(rowOrder[br])
            guard o >= 0 else { continue }
            var acc: Float = 0
            for k in 0..<levels { acc += scales.pointer[k * stride + br] * sums[k * stride + br] }
            y[o] = acc + (bias?[o] ?? 0)
        }
    }
}
