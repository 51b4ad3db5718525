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
        for l in 0..<L { scales[l] = l < x.levels ? x.scales[l] : 0 }
        // Per level: activity bits from the mask (64 at a time), then both bitsets gathered into
        // unit words (transposed for channel-major inputs) in C (BitPlanesPack.c).
        let unitWords = units * cw, count = x.mask.count
        let levelBits = scratch.buffer(.actMask, max(1, x.wordsPerLevel), as: UInt64.self)
        x.mask.withUnsafeBufferPointer { mask in
            x.signs.withUnsafeBufferPointer { xs in
                for l in 0..<L {
                    guard l < x.levels else {
                        (signs + l * unitWords).update(repeating: 0, count: unitWords)
                        (acts + l * unitWords).update(repeating: 0, count: unitWords)
                        continue
                    }
                    bp_level_bits(mask.baseAddress, Int64(count), Int32(l), levelBits)
                    bp_gather_units(levelBits, Int64(count), Int64(base), Int32(units), Int32(unitChannels), Int64(unitStride),
                                    Int64(channelStride), acts + l * unitWords)
                    bp_gather_units(xs.baseAddress! + l * x.wordsPerLevel, Int64(count), Int64(base), Int32(units), Int32(unitChannels),
                                    Int64(unitStride), Int64(channelStride), signs + l * unitWords)
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
    public func words(unit u: Int, level l: Int, word i: Int) -> (act: UInt64, sign: UInt64) {
        let at = (l * units + u) * wordsPerUnit + i
        return (acts[at], signs[at])
    }
}
