// fk_transpose_few_columns: the transpose of a matrix with 2-4 columns of 4-byte elements (an
// image's channels, NHWC -> NCHW), 16 rows at a time: the rows' cols x 16 values are loaded as
// cols vectors and each output column is gathered from them by two-source permutes, 16 values
// per store. The scalar loop this replaces moved one value per load and store.
#include "CFloatKernels.h"

#include <stdint.h>

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f"))) void fk_transpose_few_columns(const uint32_t *src, uint32_t *dst, long rows, long cols, long r0, long r1) {
    __m512i index[4];
    __mmask16 high[4];
    for (long c = 0; c < cols; c++) {
        int32_t v[16];
        high[c] = 0;
        for (int r = 0; r < 16; r++) {
            v[r] = (int32_t)(r * cols + c) & 31;
            if (r * cols + c >= 32) high[c] |= (__mmask16)(1u << r);
        }
        index[c] = _mm512_loadu_si512(v);
    }
    const __m512i zero = _mm512_setzero_si512();
    long r = r0;
    for (; r + 16 <= r1; r += 16) {
        const uint32_t *s = src + r * cols;
        const __m512i v0 = _mm512_loadu_si512(s), v1 = _mm512_loadu_si512(s + 16);
        const __m512i v2 = cols > 2 ? _mm512_loadu_si512(s + 32) : zero, v3 = cols > 3 ? _mm512_loadu_si512(s + 48) : zero;
        for (long c = 0; c < cols; c++) {
            const __m512i lo = _mm512_permutex2var_epi32(v0, index[c], v1), hi = _mm512_permutex2var_epi32(v2, index[c], v3);
            _mm512_storeu_si512(dst + c * rows + r, _mm512_mask_blend_epi32(high[c], lo, hi));
        }
    }
    for (; r < r1; r++)
        for (long c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
}
#else
void fk_transpose_few_columns(const uint32_t *src, uint32_t *dst, long rows, long cols, long r0, long r1) {
    for (long r = r0; r < r1; r++)
        for (long c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
}
#endif
