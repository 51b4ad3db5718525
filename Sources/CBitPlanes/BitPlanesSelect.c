// Middle-Out selection over the unassigned entries of a whole tensor (bp_middle_out_histogram,
// bp_middle_out_mark; see CBitPlanes.h): the first two passes of the radix select
// (MBKernels' HBB.selectSmallest) with the Middle-Out key, for the runtime's per-entry
// activation masks.
//
// Why: a binarized activation gets a new mask on every run; the radix select's two passes over
// every entry computed the Double key | |v| - m | entry by entry through a generic index list.
// Here the AVX-512 variant computes 16 keys at once (Float -> Double, subtract, abs, round to
// Float for the coarse digit), keeps the histogram increments scalar, and marks / gathers with
// masked stores and compress stores. Keys and digits are the same IEEE operations as the Swift
// key (HBB.MiddleOutKey), so every variant selects exactly the same entries.
#include "CBitPlanes.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t key_bits(float v, double mean) {
    const double k = fabs((double)fabsf(v) - mean);
    uint64_t bits;
    memcpy(&bits, &k, sizeof bits);
    return bits;
}

static inline uint32_t coarse_digit(uint64_t key, int shift) {
    double k;
    memcpy(&k, &key, sizeof k);
    const float f = (float)k;
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits >> shift;
}

static void portable_histogram(const float *v, const uint8_t *mask, int64_t n, double mean, int shift, uint32_t *histogram) {
    for (int64_t j = 0; j < n; j++)
        if (mask[j] == 0) histogram[coarse_digit(key_bits(v[j], mean), shift)]++;
}

static int64_t portable_mark(const float *v, uint8_t *mask, int64_t n, double mean, int shift, uint32_t boundary, uint8_t mark,
                             uint32_t *index, uint64_t *keys) {
    int64_t gathered = 0;
    for (int64_t j = 0; j < n; j++) {
        if (mask[j] != 0) continue;
        const uint64_t k = key_bits(v[j], mean);
        const uint32_t d = coarse_digit(k, shift);
        if (d < boundary) mask[j] = mark;
        else if (d == boundary) {
            index[gathered] = (uint32_t)j;
            keys[gathered] = k;
            gathered++;
        }
    }
    return gathered;
}

#if defined(__x86_64__)
#include <immintrin.h>
#define SEL_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

/// Keys (two halves of 8 Doubles) and coarse digits of v[j ..< j + 16] (lanes past `valid` 0).
SEL_TARGET static inline __m512i keys16(const float *v, int64_t j, __mmask16 valid, __m512d mean, int shift, __m512d *lo, __m512d *hi) {
    const __m512 x = _mm512_abs_ps(_mm512_maskz_loadu_ps(valid, v + j));
    *lo = _mm512_abs_pd(_mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(x)), mean));
    *hi = _mm512_abs_pd(_mm512_sub_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))), mean));
    const __m512 f = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(*lo)), _mm512_cvtpd_ps(*hi), 1);
    return _mm512_srl_epi32(_mm512_castps_si512(f), _mm_cvtsi32_si128(shift));
}

SEL_TARGET static inline __mmask16 unassigned16(const uint8_t *mask, int64_t j, __mmask16 valid) {
    return _mm_mask_cmpeq_epu8_mask(valid, _mm_maskz_loadu_epi8(valid, mask + j), _mm_setzero_si128());
}

SEL_TARGET static void avx512_histogram(const float *v, const uint8_t *mask, int64_t n, double mean, int shift, uint32_t *histogram) {
    const __m512d m = _mm512_set1_pd(mean);
    uint32_t digits[16];
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 valid = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        __mmask16 act = unassigned16(mask, j, valid);
        if (!act) continue;
        __m512d lo, hi;
        _mm512_storeu_si512(digits, keys16(v, j, valid, m, shift, &lo, &hi));
        while (act) {
            const int i = __builtin_ctz(act);
            histogram[digits[i]]++;
            act &= act - 1;
        }
    }
}

SEL_TARGET static int64_t avx512_mark(const float *v, uint8_t *mask, int64_t n, double mean, int shift, uint32_t boundary, uint8_t mark,
                                      uint32_t *index, uint64_t *keys) {
    const __m512d m = _mm512_set1_pd(mean);
    const __m512i b = _mm512_set1_epi32((int)boundary), lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int64_t gathered = 0;
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 valid = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        const __mmask16 act = unassigned16(mask, j, valid);
        if (!act) continue;
        __m512d lo, hi;
        const __m512i d = keys16(v, j, valid, m, shift, &lo, &hi);
        const __mmask16 below = _mm512_mask_cmplt_epu32_mask(act, d, b), at = _mm512_mask_cmpeq_epu32_mask(act, d, b);
        _mm_mask_storeu_epi8(mask + j, below, _mm_set1_epi8((char)mark));
        if (at) {
            _mm512_mask_compressstoreu_epi32(index + gathered, at, _mm512_add_epi32(lanes, _mm512_set1_epi32((int)j)));
            const int nlo = __builtin_popcount(at & 0xFF);
            _mm512_mask_compressstoreu_epi64(keys + gathered, (__mmask8)(at & 0xFF), _mm512_castpd_si512(lo));
            _mm512_mask_compressstoreu_epi64(keys + gathered + nlo, (__mmask8)(at >> 8), _mm512_castpd_si512(hi));
            gathered += __builtin_popcount(at);
        }
    }
    return gathered;
}
#endif

void bp_middle_out_histogram(int isa, const float *v, const uint8_t *mask, int64_t n, double mean, int32_t width, uint32_t *histogram) {
    memset(histogram, 0, sizeof(uint32_t) << width);
    const int shift = 31 - width;
#if defined(__x86_64__)
    if (isa >= BP_ISA_AVX512 && bp_isa() >= BP_ISA_AVX512) {
        avx512_histogram(v, mask, n, mean, shift, histogram);
        return;
    }
#endif
    (void)isa;
    portable_histogram(v, mask, n, mean, shift, histogram);
}

int64_t bp_middle_out_mark(int isa, const float *v, uint8_t *mask, int64_t n, double mean, int32_t width, uint32_t boundary, uint8_t mark,
                           uint32_t *index, uint64_t *keys) {
    const int shift = 31 - width;
#if defined(__x86_64__)
    if (isa >= BP_ISA_AVX512 && bp_isa() >= BP_ISA_AVX512) return avx512_mark(v, mask, n, mean, shift, boundary, mark, index, keys);
#endif
    (void)isa;
    return portable_mark(v, mask, n, mean, shift, boundary, mark, index, keys);
}
