// Float-input GEMV through in-register lookup tables (AVX-512F).
//
// Why: the masked-add GEMV (BitPlanes+Body.h) handles 16 weights of one row per instruction and
// is bound by mask moves; sparse higher levels cost a second pass of masked adds. Here every
// group of 4 inputs has its 16 subset sums in one zmm, and 16 rows' sign nibbles of that group
// sit in 16 bytes: one vpmovzxbd and two vpermps handle 16 rows x 8 inputs (64 weights per
// permute). A full level is 2 T[s] - sum(x); a sparse level T[a & s] - T[a & ~s] (same tables,
// two lookups), so it costs twice a full level instead of reading and masking a second plane.
#include "CBitPlanes.h"

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

/// Adds T[code] over the 8 chunks of one entry: chunk c's low nibbles index table 2c, its
/// high nibbles table 2c + 1 (vpermps reads only an index's low 4 bits).
#define LUT_CHUNK(acc0, acc1, cd, T, c)                                                              \
    do {                                                                                             \
        const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)((cd) + 16 * (c)))); \
        acc0 = _mm512_add_ps(acc0, _mm512_permutexvar_ps(idx, _mm512_loadu_ps((T) + 32 * (c))));  \
        acc1 = _mm512_add_ps(acc1, _mm512_permutexvar_ps(_mm512_srli_epi32(idx, 4), _mm512_loadu_ps((T) + 32 * (c) + 16))); \
    } while (0)

BP_LUT_TARGET static void lut_gemv(const bp_lut_weights *w, int32_t words, const float *scratch, float *out,
                                   int32_t firstGroup, int32_t groupCount) {
    const float *tables = scratch, *wordSum = scratch + (int64_t)words * 256;
    const int32_t L = w->levels;
    for (int32_t g = firstGroup; g < firstGroup + groupCount; g++) {
        // The last group holds 8 rows when the block count is odd.
        const __mmask16 store = 16 * g + 16 <= w->rowsStored ? 0xFFFF : 0x00FF;
        for (int32_t k = 0; k < L; k++) {
            const int32_t list = g * L + k;
            const int32_t e0 = w->listStart[list], e1 = w->listStart[list + 1];
            const uint8_t *cd = w->codes + w->listCodes[list];
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
            __m512 n0 = _mm512_setzero_ps(), n1 = _mm512_setzero_ps();
            float *o = out + (int64_t)k * w->rowsStored + 16 * g;
            if (w->listFull[list]) {
                float total = 0;
                for (int32_t e = e0; e < e1; e++, cd += 128) {
                    const int32_t j = w->entryWord[e];
                    const float *T = tables + 256 * (int64_t)j;
                    total += wordSum[j];
                    LUT_CHUNK(a0, a1, cd, T, 0); LUT_CHUNK(n0, n1, cd, T, 1);
                    LUT_CHUNK(a0, a1, cd, T, 2); LUT_CHUNK(n0, n1, cd, T, 3);
                    LUT_CHUNK(a0, a1, cd, T, 4); LUT_CHUNK(n0, n1, cd, T, 5);
                    LUT_CHUNK(a0, a1, cd, T, 6); LUT_CHUNK(n0, n1, cd, T, 7);
                }
                // sum_j s_j x_j = 2 * (sum where s = +1) - (sum of the words' x).
                const __m512 pos = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(n0, n1));
                _mm512_mask_storeu_ps(o, store, _mm512_sub_ps(_mm512_add_ps(pos, pos), _mm512_set1_ps(total)));
            } else {
                // Per chunk 16 bytes of (s & a) codes, then 16 of (~s & a).
                for (int32_t e = e0; e < e1; e++, cd += 256) {
                    const float *T = tables + 256 * (int64_t)w->entryWord[e];
#pragma clang loop unroll(full)
                    for (int c = 0; c < 8; c++) {
                        const __m512i p = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(cd + 32 * c)));
                        const __m512i m = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(cd + 32 * c + 16)));
                        const __m512 t0 = _mm512_loadu_ps(T + 32 * c), t1 = _mm512_loadu_ps(T + 32 * c + 16);
                        a0 = _mm512_add_ps(a0, _mm512_permutexvar_ps(p, t0));
                        a1 = _mm512_add_ps(a1, _mm512_permutexvar_ps(_mm512_srli_epi32(p, 4), t1));
                        n0 = _mm512_add_ps(n0, _mm512_permutexvar_ps(m, t0));
                        n1 = _mm512_add_ps(n1, _mm512_permutexvar_ps(_mm512_srli_epi32(m, 4), t1));
                    }
                }
                _mm512_mask_storeu_ps(o, store, _mm512_sub_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(n0, n1)));
            }
        }
    }
}
#endif

void bp_lut_prepare(const float *x, int32_t words, float *scratch) {
#if BP_LUT_X86
    if (bp_isa() >= BP_ISA_AVX512) lut_prepare(x, words, scratch);
#else
    (void)x; (void)words; (void)scratch;
#endif
}

void bp_lut_gemv(const bp_lut_weights *w, int32_t words, const float *scratch, float *out, int32_t firstGroup, int32_t groupCount) {
#if BP_LUT_X86
    if (bp_isa() >= BP_ISA_AVX512) lut_gemv(w, words, scratch, out, firstGroup, groupCount);
#else
    (void)w; (void)words; (void)scratch; (void)out; (void)firstGroup; (void)groupCount;
#endif
}
