// Float-input GEMV through in-register lookup tables (AVX-512F here; aarch64 NEON in
// BitPlanesLut+Neon.c, dispatched from the entry points below).
//
// Why: the masked-add GEMV (BitPlanes+Body.h) handles 16 weights of one row per instruction and
// is bound by mask moves; sparse higher levels cost a second pass of masked adds. Here every
// group of 4 inputs has its 16 subset sums in one zmm, and 16 rows' sign bits of 32 inputs sit
// in one zmm (a 32-bit lane per row): 8 vpermps handle 16 rows x 32 inputs (64 weights per
// permute). A full level is 2 T[s] - sum(x); a sparse level T[a & s] - T[a & ~s] (same tables,
// two lookups), so it costs twice a full level instead of reading and masking a second plane.
#include "BitPlanes+Neon.h"

#include <stdint.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define BP_LUT_X86 1
#define BP_LUT_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#else
#define BP_LUT_X86 0
#endif

int bp_lut_available(int isa) {
#if BP_LUT_X86
    return isa >= BP_ISA_AVX512 && bp_isa() >= BP_ISA_AVX512;
#elif defined(__aarch64__)
    return isa >= BP_ISA_NEON && bp_isa() >= BP_ISA_NEON;
#else
    (void)isa;
    return 0;
#endif
}

int64_t bp_lut_scratch_floats(int32_t words) { return (int64_t)words * 256 + words; }

#if BP_LUT_X86
BP_LUT_TARGET static void lut_prepare(const float *x, int32_t words, float *scratch) {
    float *tables = scratch, *wordSum = scratch + (int64_t)words * 256;
    for (int32_t q = 0; q < 16 * words; q++) {
        // Lane m = sum of the inputs whose bit is set in m (inputs in ascending order).
        const float *xq = x + 4 * (int64_t)q;
        __m512 t = _mm512_setzero_ps();
        t = _mm512_mask_add_ps(t, 0xAAAA, t, _mm512_set1_ps(xq[0]));
        t = _mm512_mask_add_ps(t, 0xCCCC, t, _mm512_set1_ps(xq[1]));
        t = _mm512_mask_add_ps(t, 0xF0F0, t, _mm512_set1_ps(xq[2]));
        t = _mm512_mask_add_ps(t, 0xFF00, t, _mm512_set1_ps(xq[3]));
        _mm512_storeu_ps(tables + 16 * (int64_t)q, t);
    }
    for (int32_t j = 0; j < words; j++) {
        const float *xj = x + 64 * (int64_t)j;
        __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(xj), _mm512_loadu_ps(xj + 16)),
                                 _mm512_add_ps(_mm512_loadu_ps(xj + 32), _mm512_loadu_ps(xj + 48)));
        wordSum[j] = _mm512_reduce_add_ps(s);
    }
}

/// Adds the 8 lookups of one half word's code vector `v` (16 rows x 8 nibbles) to x0 / x1:
/// nibble i of every lane indexes table T + 16 i. vpermps reads only an index's low 4 bits, so
/// the nibbles are brought down by vpmulhuw (the low 16 bits times 2^(16 - 4i), high half: a
/// shift that runs on the multiply pipes, beside the permutes) and one shift for the upper 16
/// bits: 1 load, 1 shift, 6 multiplies per 8 permutes instead of the 4 vpmovzxbd + 4 shifts of
/// byte codes (both compete with the permutes for the shuffle pipes on Zen 4).
#define LUT_HALF_OP(OP, x0, x1, v, T)                                                                             \
    do {                                                                                                     \
        const __m512i lo_ = (v), hi_ = _mm512_srli_epi32(lo_, 16);                                           \
        x0 = OP(x0, _mm512_permutexvar_ps(lo_, _mm512_loadu_ps((T))));                            \
        x1 = OP(x1, _mm512_permutexvar_ps(_mm512_mulhi_epu16(lo_, down4), _mm512_loadu_ps((T) + 16))); \
        x0 = OP(x0, _mm512_permutexvar_ps(_mm512_mulhi_epu16(lo_, down8), _mm512_loadu_ps((T) + 32))); \
        x1 = OP(x1, _mm512_permutexvar_ps(_mm512_mulhi_epu16(lo_, down12), _mm512_loadu_ps((T) + 48))); \
        x0 = OP(x0, _mm512_permutexvar_ps(hi_, _mm512_loadu_ps((T) + 64)));                       \
        x1 = OP(x1, _mm512_permutexvar_ps(_mm512_mulhi_epu16(hi_, down4), _mm512_loadu_ps((T) + 80))); \
        x0 = OP(x0, _mm512_permutexvar_ps(_mm512_mulhi_epu16(hi_, down8), _mm512_loadu_ps((T) + 96))); \
        x1 = OP(x1, _mm512_permutexvar_ps(_mm512_mulhi_epu16(hi_, down12), _mm512_loadu_ps((T) + 112))); \
    } while (0)

#define LUT_HALF(x0, x1, v, T) LUT_HALF_OP(_mm512_add_ps, x0, x1, v, T)

#define LUT_SHIFTS                                                                                           \
    const __m512i down4 = _mm512_set1_epi16(1 << 12), down8 = _mm512_set1_epi16(1 << 8), down12 = _mm512_set1_epi16(1 << 4)

BP_LUT_TARGET static inline __m512i lut_codes(const uint8_t *p) { return _mm512_loadu_si512((const void *)p); }

/// R row groups whose level-k lists both list every word (per-entry masks: all of them) share
/// each word's tables while they are in L1: the tables (1 KB per word) stream from L2 once per
/// R groups instead of once per group.
static inline __attribute__((always_inline)) BP_LUT_TARGET void lut_dense_run(const bp_lut_weights *w, int32_t words, const float *tables,
                                                                             const float *wordSum, float *out, int32_t g0, int32_t k,
                                                                             const int R, const int full) {
    LUT_SHIFTS;
    const int32_t L = w->levels;
    const uint8_t *cd[4];
    __m512 a0[4], a1[4], n0[4], n1[4];
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++) {
        cd[r] = w->codes + w->listCodes[(g0 + r) * L + k];
        a0[r] = a1[r] = n0[r] = n1[r] = _mm512_setzero_ps();
    }
    float total = 0;
    const int64_t stride = full ? 128 : 256;
    for (int32_t j = 0; j < words; j++) {
        const float *T = tables + 256 * (int64_t)j;
        if (full) total += wordSum[j];
#pragma clang loop unroll(full)
        for (int h = 0; h < 2; h++) {
#pragma clang loop unroll(full)
            for (int r = 0; r < R; r++) {
                const uint8_t *q = cd[r] + stride * j + (full ? 64 : 128) * h;
                LUT_HALF(a0[r], a1[r], lut_codes(q), T + 128 * h);
                if (!full) LUT_HALF(n0[r], n1[r], lut_codes(q + 64), T + 128 * h);
            }
        }
    }
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++) {
        const int32_t g = g0 + r;
        const __mmask16 store = 16 * g + 16 <= w->rowsStored ? 0xFFFF : 0x00FF;
        float *o = out + (int64_t)k * w->rowsStored + 16 * g;
        const __m512 pos = _mm512_add_ps(a0[r], a1[r]);
        const __m512 v = full ? _mm512_sub_ps(_mm512_add_ps(pos, pos), _mm512_set1_ps(total)) : _mm512_sub_ps(pos, _mm512_add_ps(n0[r], n1[r]));
        _mm512_mask_storeu_ps(o, store, v);
    }
}

/// Every level of R row groups in one pass, for the per-entry pattern: level 0 full, levels
/// 1 ..< L partial, every list over every word. Each word's tables are loaded once for all
/// R * (2L - 1) code streams instead of once per level; a partial level adds T[a & s] and
/// subtracts T[a & ~s] in one accumulator per (group, level).
static inline __attribute__((always_inline)) BP_LUT_TARGET void lut_fused_run(const bp_lut_weights *w, int32_t words, const float *tables,
                                                                             const float *wordSum, float *out, int32_t g0,
                                                                             const int R, const int L) {
    LUT_SHIFTS;
    const uint8_t *cd[4][3];
    __m512 acc[4][3], acc2[4][3];
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++) {
#pragma clang loop unroll(full)
        for (int k = 0; k < L; k++) {
            cd[r][k] = w->codes + w->listCodes[(g0 + r) * L + k];
            acc[r][k] = acc2[r][k] = _mm512_setzero_ps();
        }
    }
    float total = 0;
    for (int32_t j = 0; j < words; j++) {
        const float *T = tables + 256 * (int64_t)j;
        total += wordSum[j];
#pragma clang loop unroll(full)
        for (int h = 0; h < 2; h++) {
#pragma clang loop unroll(full)
            for (int r = 0; r < R; r++) {
                LUT_HALF(acc[r][0], acc2[r][0], lut_codes(cd[r][0] + 128 * j + 64 * h), T + 128 * h);
#pragma clang loop unroll(full)
                for (int k = 1; k < L; k++) {
                    const uint8_t *q = cd[r][k] + 256 * j + 128 * h;
                    LUT_HALF(acc[r][k], acc2[r][k], lut_codes(q), T + 128 * h);
                    LUT_HALF_OP(_mm512_sub_ps, acc[r][k], acc2[r][k], lut_codes(q + 64), T + 128 * h);
                }
            }
        }
    }
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++) {
        const int32_t g = g0 + r;
        const __mmask16 store = 16 * g + 16 <= w->rowsStored ? 0xFFFF : 0x00FF;
        float *o = out + 16 * (int64_t)g;
#pragma clang loop unroll(full)
        for (int k = 0; k < L; k++) acc[r][k] = _mm512_add_ps(acc[r][k], acc2[r][k]);
        _mm512_mask_storeu_ps(o, store, _mm512_sub_ps(_mm512_add_ps(acc[r][0], acc[r][0]), _mm512_set1_ps(total)));
#pragma clang loop unroll(full)
        for (int k = 1; k < L; k++) _mm512_mask_storeu_ps(o + (int64_t)k * w->rowsStored, store, acc[r][k]);
    }
}

/// Level k of one row group through its list (any sparsity).
BP_LUT_TARGET static void lut_list(const bp_lut_weights *w, const float *tables, const float *wordSum, float *out, int32_t g, int32_t k) {
    LUT_SHIFTS;
    const int32_t L = w->levels;
    const int32_t list = g * L + k;
    const int32_t e0 = w->listStart[list], e1 = w->listStart[list + 1];
    const uint8_t *cd = w->codes + w->listCodes[list];
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 n0 = _mm512_setzero_ps(), n1 = _mm512_setzero_ps();
    const __mmask16 store = 16 * g + 16 <= w->rowsStored ? 0xFFFF : 0x00FF;
    float *o = out + (int64_t)k * w->rowsStored + 16 * g;
    if (w->listFull[list]) {
        float total = 0;
        for (int32_t e = e0; e < e1; e++, cd += 128) {
            const int32_t j = w->entryWord[e];
            const float *T = tables + 256 * (int64_t)j;
            total += wordSum[j];
            // Four accumulators (a*, n*) to overlap the adds' latency.
            LUT_HALF(a0, a1, lut_codes(cd), T);
            LUT_HALF(n0, n1, lut_codes(cd + 64), T + 128);
        }
        // sum_j s_j x_j = 2 * (sum where s = +1) - (sum of the words' x).
        const __m512 pos = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(n0, n1));
        _mm512_mask_storeu_ps(o, store, _mm512_sub_ps(_mm512_add_ps(pos, pos), _mm512_set1_ps(total)));
        return;
    }
    // Per half, 64 bytes of (s & a) lanes, then 64 of (~s & a).
    for (int32_t e = e0; e < e1; e++, cd += 256) {
        const float *T = tables + 256 * (int64_t)w->entryWord[e];
#pragma clang loop unroll(full)
        for (int h = 0; h < 2; h++) {
            LUT_HALF(a0, a1, lut_codes(cd + 128 * h), T + 128 * h);
            LUT_HALF(n0, n1, lut_codes(cd + 128 * h + 64), T + 128 * h);
        }
    }
    _mm512_mask_storeu_ps(o, store, _mm512_sub_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(n0, n1)));
}

/// Whether groups g ..< g + R list every word at level k with the same fullness.
static inline int lut_dense(const bp_lut_weights *w, int32_t words, int32_t g, int32_t R, int32_t k) {
    const int32_t L = w->levels;
    for (int32_t r = 0; r < R; r++) {
        const int32_t list = (g + r) * L + k;
        if (w->listStart[list + 1] - w->listStart[list] != words || w->listFull[list] != w->listFull[g * L + k]) return 0;
    }
    return 1;
}

/// Whether groups g ..< g + R have the per-entry pattern of lut_fused_run.
static inline int lut_per_entry(const bp_lut_weights *w, int32_t words, int32_t g, int32_t R) {
    for (int32_t k = 0; k < w->levels; k++) {
        if (!lut_dense(w, words, g, R, k) || w->listFull[g * w->levels + k] != (k == 0)) return 0;
    }
    return 1;
}

BP_LUT_TARGET static void lut_gemv(const bp_lut_weights *w, int32_t words, const float *scratch, float *out,
                                   int32_t firstGroup, int32_t groupCount) {
    const float *tables = scratch, *wordSum = scratch + (int64_t)words * 256;
    const int32_t end = firstGroup + groupCount;
    for (int32_t g = firstGroup; g < end;) {
        const int32_t R = end - g >= 4 ? 4 : end - g >= 2 ? 2 : 1;
        if (R == 4 && (w->levels == 2 || w->levels == 3) && lut_per_entry(w, words, g, R)) {
            if (w->levels == 3) lut_fused_run(w, words, tables, wordSum, out, g, 4, 3);
            else lut_fused_run(w, words, tables, wordSum, out, g, 4, 2);
            g += R;
            continue;
        }
        for (int32_t k = 0; k < w->levels; k++) {
            if (R > 1 && lut_dense(w, words, g, R, k)) {
                const int full = w->listFull[g * w->levels + k];
                if (R == 4 && full) lut_dense_run(w, words, tables, wordSum, out, g, k, 4, 1);
                else if (R == 4) lut_dense_run(w, words, tables, wordSum, out, g, k, 4, 0);
                else if (full) lut_dense_run(w, words, tables, wordSum, out, g, k, 2, 1);
                else lut_dense_run(w, words, tables, wordSum, out, g, k, 2, 0);
            } else {
                for (int32_t r = 0; r < R; r++) lut_list(w, tables, wordSum, out, g + r, k);
            }
        }
        g += R;
    }
}
#endif

void bp_lut_prepare(const float *x, int32_t words, float *scratch) {
#if BP_LUT_X86
    if (bp_isa() >= BP_ISA_AVX512) lut_prepare(x, words, scratch);
#elif defined(__aarch64__)
    if (bp_isa() >= BP_ISA_NEON) bp_neon_lut_prepare(x, words, scratch);
#else
    (void)x; (void)words; (void)scratch;
#endif
}

void bp_lut_gemv(const bp_lut_weights *w, int32_t words, const float *scratch, float *out, int32_t firstGroup, int32_t groupCount) {
#if BP_LUT_X86
    if (bp_isa() >= BP_ISA_AVX512) lut_gemv(w, words, scratch, out, firstGroup, groupCount);
#elif defined(__aarch64__)
    if (bp_isa() >= BP_ISA_NEON) bp_neon_lut_gemv(w, words, scratch, out, firstGroup, groupCount);
#else
    (void)w; (void)words; (void)scratch; (void)out; (void)firstGroup; (void)groupCount;
#endif
}
