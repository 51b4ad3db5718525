// The lookup-table float GEMV (BitPlanesLut.c) for aarch64 NEON, chosen at build time (NEON is
// part of every aarch64 CPU); the same code layout and scratch layout as the AVX-512 variant.
// Compiles to nothing elsewhere.
//
// A table of 16 floats is 64 bytes, i.e. four q registers: vqtbl4q_u8 looks up 4 rows at once
// when each row's 32-bit lane holds the byte indices 4n, 4n+1, 4n+2, 4n+3 of its nibble n
// (n * 4 masked out of the code lane by one shift and one and, spread over the 4 bytes by one
// multiply-add with 0x01010101 onto 0x03020100). The 16 rows of a group are 4 such lanes
// vectors against the same 8 tables per half word. Sums run per row over entries, halves and
// nibbles in ascending order into one accumulator per 4 rows (a different order from the
// portable subset-sum GEMV: equal within float rounding, not bit for bit).
#include "BitPlanes+Neon.h"

#if defined(__aarch64__)
#include <arm_neon.h>

void bp_neon_lut_prepare(const float *x, int32_t words, float *scratch) {
    float *tables = scratch, *wordSum = scratch + (int64_t)words * 256;
    for (int64_t q = 0; q < 16 * (int64_t)words; q++) {
        // Entry m = sum of the inputs whose bit is set in m, added in ascending input order
        // (the AVX-512 variant's order, so both build the same tables).
        const float *xq = x + 4 * q;
        float *t = tables + 16 * q;
        for (int m = 0; m < 16; m++) {
            float s = 0.0f;
            for (int b = 0; b < 4; b++)
                if (m >> b & 1) s += xq[b];
            t[m] = s;
        }
    }
    for (int32_t j = 0; j < words; j++) {
        const float *xj = x + 64 * (int64_t)j;
        float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
        for (int i = 0; i < 64; i += 16) {
            s0 = vaddq_f32(s0, vld1q_f32(xj + i));
            s1 = vaddq_f32(s1, vld1q_f32(xj + i + 4));
            s2 = vaddq_f32(s2, vld1q_f32(xj + i + 8));
            s3 = vaddq_f32(s3, vld1q_f32(xj + i + 12));
        }
        wordSum[j] = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    }
}

/// acc[q] (+ or - by `sub`) the 8 lookups of one half word's 16 code lanes `c` (64 bytes;
/// rows 4q ..< 4q + 4 in acc[q]); nibble i of a lane indexes the table at T + 16 i.
static inline void lut_half(float32x4_t acc[4], const uint8_t *c, const float *T, int sub) {
    uint32x4_t v[4];
    for (int q = 0; q < 4; q++) v[q] = vreinterpretq_u32_u8(vld1q_u8(c + 16 * q));
    const uint32x4_t four = vdupq_n_u32(0x3C), spread = vdupq_n_u32(0x01010101), bytes = vdupq_n_u32(0x03020100);
    for (int i = 0; i < 8; i++) {
        const uint8x16x4_t tab = vld1q_u8_x4((const uint8_t *)(T + 16 * i));
        const int32x4_t shift = vdupq_n_s32(2 - 4 * i);  // left by 2 - 4i: nibble i times 4 in bits 2..5
        for (int q = 0; q < 4; q++) {
            const uint32x4_t n4 = vandq_u32(vshlq_u32(v[q], shift), four);
            const uint8x16_t idx = vreinterpretq_u8_u32(vmlaq_u32(bytes, n4, spread));
            const float32x4_t f = vreinterpretq_f32_u8(vqtbl4q_u8(tab, idx));
            acc[q] = sub ? vsubq_f32(acc[q], f) : vaddq_f32(acc[q], f);
        }
    }
}

/// Level k of row group g through its list (any sparsity), as lut_list of BitPlanesLut.c.
static void lut_list(const bp_lut_weights *w, const float *tables, const float *wordSum, float *out, int32_t g, int32_t k) {
    const int32_t L = w->levels;
    const int32_t list = g * L + k;
    const int32_t e0 = w->listStart[list], e1 = w->listStart[list + 1];
    const uint8_t *cd = w->codes + w->listCodes[list];
    float32x4_t acc[4];
    for (int q = 0; q < 4; q++) acc[q] = vdupq_n_f32(0.0f);
    // The last group of an odd block count holds 8 real rows: rows 8 ..< 16 are not stored.
    const int quads = 16 * g + 16 <= w->rowsStored ? 4 : 2;
    float *o = out + (int64_t)k * w->rowsStored + 16 * (int64_t)g;
    if (w->listFull[list]) {
        float total = 0.0f;
        for (int32_t e = e0; e < e1; e++, cd += 128) {
            const int32_t j = w->entryWord[e];
            const float *T = tables + 256 * (int64_t)j;
            total += wordSum[j];
            lut_half(acc, cd, T, 0);
            lut_half(acc, cd + 64, T + 128, 0);
        }
        // sum_j s_j x_j = 2 * (sum where s = +1) - (sum of the words' x).
        const float32x4_t t = vdupq_n_f32(total);
        for (int q = 0; q < quads; q++) vst1q_f32(o + 4 * q, vsubq_f32(vaddq_f32(acc[q], acc[q]), t));
        return;
    }
    // Per half, 64 bytes of (s & a) lanes, then 64 of (~s & a): T[s & a] - T[~s & a].
    for (int32_t e = e0; e < e1; e++, cd += 256) {
        const float *T = tables + 256 * (int64_t)w->entryWord[e];
        for (int h = 0; h < 2; h++) {
            lut_half(acc, cd + 128 * h, T + 128 * h, 0);
            lut_half(acc, cd + 128 * h + 64, T + 128 * h, 1);
        }
    }
    for (int q = 0; q < quads; q++) vst1q_f32(o + 4 * q, acc[q]);
}

void bp_neon_lut_gemv(const bp_lut_weights *w, int32_t words, const float *scratch, float *out, int32_t firstGroup, int32_t groupCount) {
    const float *tables = scratch, *wordSum = scratch + (int64_t)words * 256;
    for (int32_t g = firstGroup; g < firstGroup + groupCount; g++)
        for (int32_t k = 0; k < w->levels; k++) lut_list(w, tables, wordSum, out, g, k);
}
#endif
