// Packing run-time binarized activations into unit words (ActivationPlanes).
//
// Why C: per entry and level the Swift loop set one bit with a read-modify-write of a word
// strided by the unit size, which cost as much as the convolution's popcounts. Here activity
// bits come 64 at a time from the mask bytes (one AVX-512BW compare per 64 entries), and a
// Conv input's channel-major bitsets become pixel-major unit words by 64x64 bit transposes.
#include "CBitPlanes.h"
#include "BitPlanes+Neon.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx512f,avx512bw"))) static void level_bits_avx512(const uint8_t *mask, int64_t n, int32_t level, uint64_t *out) {
    const __m512i l = _mm512_set1_epi8((char)level);
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) out[j >> 6] = _mm512_cmpgt_epu8_mask(_mm512_loadu_si512(mask + j), l);
    if (j < n) {
        const __mmask64 tail = ((__mmask64)1 << (n - j)) - 1;
        out[j >> 6] = _mm512_mask_cmpgt_epu8_mask(tail, _mm512_maskz_loadu_epi8(tail, mask + j), l);
    }
}
#endif

void bp_level_bits(const uint8_t *mask, int64_t n, int32_t level, uint64_t *out) {
#if defined(__x86_64__)
    if (bp_isa() >= BP_ISA_AVX512) { level_bits_avx512(mask, n, level, out); return; }
#elif defined(__aarch64__)
    if (bp_isa() >= BP_ISA_NEON) { bp_neon_level_bits(mask, n, level, out); return; }
#endif
    for (int64_t w = 0; w < (n + 63) / 64; w++) {
        uint64_t bits = 0;
        const int64_t end = n - 64 * w < 64 ? n - 64 * w : 64;
        for (int64_t i = 0; i < end; i++) bits |= (uint64_t)(mask[64 * w + i] > level) << i;
        out[w] = bits;
    }
}

/// `count` (<= 64) bits of `bits` from bit `start`, in the low bits; bits past `n` read as 0.
static inline uint64_t get_bits(const uint64_t *bits, int64_t n, int64_t start, int32_t count) {
    if (count <= 0 || start >= n) return 0;
    const int64_t w = start >> 6;
    const int s = (int)(start & 63);
    uint64_t v = bits[w] >> s;
    if (s != 0 && (w + 1) * 64 < n) v |= bits[w + 1] << (64 - s);
    if (start + count > n) count = (int32_t)(n - start);
    return count >= 64 ? v : v & (((uint64_t)1 << count) - 1);
}

/// In place: afterwards a[i] bit j = the old a[j] bit i (Hacker's Delight, 6 rounds of swaps).
/// The rounds are unrolled by pragma (constant shifts and masks per round): -O2, the release
/// default, leaves them rolled, which made packing 25 % slower than the -O3 build did.
static void transpose64(uint64_t a[64]) {
    uint64_t m = 0x00000000FFFFFFFFull;
#pragma clang loop unroll(full)
    for (int j = 32; j != 0; j >>= 1, m ^= m << j) {
#pragma clang loop unroll(full)
        for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
            const uint64_t t = ((a[k] >> j) ^ a[k | j]) & m;
            a[k] ^= t << j;
            a[k | j] ^= t;
        }
    }
}

void bp_gather_units(const uint64_t *bits, int64_t n, int64_t base, int32_t units, int32_t channels,
                     int64_t unitStride, int64_t channelStride, uint64_t *out) {
    const int32_t cw = (channels + 63) / 64;
    if (channelStride == 1) {
        // A unit's channels are consecutive bits: 64 at a time.
        for (int32_t u = 0; u < units; u++)
            for (int32_t i = 0; i < cw; i++) {
                const int32_t c = channels - 64 * i < 64 ? channels - 64 * i : 64;
                out[(int64_t)u * cw + i] = get_bits(bits, n, base + u * unitStride + 64 * (int64_t)i, c);
            }
        return;
    }
    if (unitStride == 1) {
        // Channel-major (NCHW): tiles of 64 channels x 64 units, transposed.
        uint64_t a[64];
        for (int32_t u0 = 0; u0 < units; u0 += 64) {
            const int32_t nu = units - u0 < 64 ? units - u0 : 64;
            for (int32_t i = 0; i < cw; i++) {
                for (int r = 0; r < 64; r++) {
                    const int32_t c = 64 * i + r;
                    a[r] = c < channels ? get_bits(bits, n, base + c * channelStride + u0, nu) : 0;
                }
                transpose64(a);
                for (int32_t r = 0; r < nu; r++) out[(int64_t)(u0 + r) * cw + i] = a[r];
            }
        }
        return;
    }
    memset(out, 0, sizeof(uint64_t) * (size_t)units * (size_t)cw);
    for (int32_t u = 0; u < units; u++)
        for (int32_t c = 0; c < channels; c++) {
            const int64_t j = base + u * unitStride + c * channelStride;
            out[(int64_t)u * cw + c / 64] |= ((bits[j >> 6] >> (j & 63)) & 1) << (c % 64);
        }
}
