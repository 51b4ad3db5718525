import CBitPlanes
import MBCore

/// Binarized activations laid out for the bit-plane kernels: `units` of `unitChannels` entries
/// (a pixel's channels for Conv, a row of A for Gemm), each a whole number of words, with per
/// (level, unit) activity and sign words and a state (empty, partial, full) that lets the
/// kernel skip empty levels and drop the activity mask where every channel is active.
/// Buffers come from a `BitPlaneScratch` and are valid until it is reused.
public struct ActivationPlanes {
    public let units: Int
    public let unitChannels: Int
    public let levels: Int
    public let wordsPerUnit: Int
    let signs: UnsafeMutablePointer<UInt64>
    let acts: UnsafeMutablePointer<UInt64>
    let state: UnsafeMutablePointer<UInt8>
    let scales: UnsafeMutablePointer<Float>

    var c: bp_acts {
        bp_acts(units: Int32(units), levels: Int32(levels), wordsPerUnit: Int32(wordsPerUnit),
                signs: signs, acts: acts, state: state, scales: scales)
    }

    /// Packs `x` (flat) into units: unit u's channel ch is flat entry
    /// `base + u * unitStride + ch * channelStride`.
    public init(_ x: BinarizedValues, units: Int, unitChannels: Int, base: Int, unitStride: Int, channelStride: Int, scratch: BitPlaneScratch) {
        self.units = units
        self.unitChannels = unitChannels
        levels = max(1, x.levels)
        wordsPerUnit = max(1, (unitChannels + 63) / 64)
        let cw = wordsPerUnit, L = levels
        let n = L * units * cw
        signs = scratch.buffer(.actSigns, n, as: UInt64.self)
        acts = scratch.buffer(.actActs, n, as: UInt64.self)
        state = scratch.buffer(.actState, units * L, as: UInt8.self)
        scales = scratch.buffer(.actScales, L, as: Float.self)
        signs.update(repeating: 0, count: n)
        acts.update(repeating: 0, count: n)
        for l in 0..<L { scales[l] = l < x.levels ? x.scales[l] : 0 }
        let unitWords = units * cw, perLevel = x.wordsPerLevel
        let (signs, acts) = (self.signs, self.acts)
        x.mask.withUnsafeBufferPointer { mask in
            x.signs.withUnsafeBufferPointer { xs in
                // Walk memory in order: channels outer when a unit's channels are strided (NCHW).
                @inline(__always) func put(_ u: Int, _ ch: Int) {
                    let j = base + u * unitStride + ch * channelStride
                    let w = u * cw + ch / 64
                    let bit = UInt64(1) << UInt64(ch % 64)
                    for l in 0..<Int(mask[j]) {
                        acts[l * unitWords + w] |= bit
                        if (xs[l * perLevel + (j >> 6)] >> UInt64(j & 63)) & 1 == 1 { signs[l * unitWords + w] |= bit }
                    }
                }
                if channelStride > unitStride {
                    for ch in 0..<unitChannels { for u in 0..<units { put(u, ch) } }
                } else {
                    for u in 0..<units { for ch in 0..<unitChannels { put(u, ch) } }
                }
            }
        }
        // States from the activity words: empty, full (every channel), or partial.
        let last = UInt64.max >> UInt64((64 - unitChannels % 64) % 64)
        for u in 0..<units {
            for l in 0..<L {
                var any: UInt64 = 0, all = true
                for i in 0..<cw {
                    let a = acts[l * unitWords + u * cw + i]
                    any |= a
                    all = all && a == (i == cw - 1 ? last : UInt64.max)
                }
                state[u * L + l] = any == 0 ? UInt8(BP_UNIT_EMPTY) : all ? UInt8(BP_UNIT_FULL) : UInt8(BP_UNIT_PARTIAL)
            }
        }
    }

    /// Activity and sign word `i` of unit `u` at level `l`.
    func words(unit u: Int, level l: Int, word i: Int) -> (act: UInt64, sign: UInt64) {
        let at = (l * units + u) * wordsPerUnit + i
        return (acts[at], signs[at])
    }
}
