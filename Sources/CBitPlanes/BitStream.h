// Bit-stream reads shared by the compact weight layouts (BitPlanesCompact.c, BitPlanesLutConv8.c):
// a stored level is a stream of bits read 64 at a time from any bit position, and its bits are
// deposited into the set bits of its parent level's activity.
#ifndef BP_BITSTREAM_H
#define BP_BITSTREAM_H

#include <stdint.h>

/// 64 bits of `s` from bit `pos` on (streams carry one zero word past their end).
static inline uint64_t bp_stream_bits(const uint64_t *s, int64_t pos) {
    const int sh = (int)(pos & 63);
    uint64_t v = s[pos >> 6] >> sh;
    if (sh) v |= s[(pos >> 6) + 1] << (64 - sh);
    return v;
}

/// Bits of `src`, low first, deposited into the set bits of `mask` (BMI2 pdep's definition), for
/// machines and bodies without pdep.
static inline uint64_t bp_deposit_portable(uint64_t src, uint64_t mask) {
    uint64_t out = 0;
    for (uint64_t b = 1; mask; b += b) {
        if (src & b) out |= mask & (0 - mask);
        mask &= mask - 1;
    }
    return out;
}

#endif
