// fk_depthwise_plane: one output plane of a depthwise convolution from its input's stride phases.
//
// The caller splits the zero-bordered input plane into stride phases (Conv+RowGemm.swift,
// fillPhase), so every tap of every output row reads a contiguous run of one phase: tap t of
// output (oy, ox) is src[offsets[t] + oy * wq + ox]. The AVX-512 body keeps 64 outputs of a row in
// 4 zmm accumulators across all taps (one load and one FMA per tap and 16 outputs, no partial
// sums stored between taps) and masks the row's tail; the portable body is the same loop nest.
#include "CFloatKernels.h"

static void depthwise_portable(const float *src, long wq, const long *offsets, const float *w, int taps, float bias, int relu,
                               float *out, long oh, long ow) {
    for (long oy = 0; oy < oh; oy++) {
        float *row = out + oy * ow;
        for (long ox = 0; ox < ow; ox++) row[ox] = bias;
        for (int t = 0; t < taps; t++) {
            const float *s = src + offsets[t] + oy * wq;
            float wt = w[t];
            for (long ox = 0; ox < ow; ox++) row[ox] += wt * s[ox];
        }
        if (relu)
            for (long ox = 0; ox < ow; ox++) row[ox] = row[ox] > 0 ? row[ox] : 0;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f,fma")))
static void depthwise_avx512(const float *src, long wq, const long *offsets, const float *w, int taps, float bias, int relu,
                             float *out, long oh, long ow) {
    const __m512 b = _mm512_set1_ps(bias), zero = _mm512_setzero_ps();
    for (long oy = 0; oy < oh; oy++) {
        const float *base = src + oy * wq;
        float *row = out + oy * ow;
        long ox = 0;
        for (; ox + 64 <= ow; ox += 64) {
            __m512 a0 = b, a1 = b, a2 = b, a3 = b;
            for (int t = 0; t < taps; t++) {
                const float *s = base + offsets[t] + ox;
                __m512 wt = _mm512_set1_ps(w[t]);
                a0 = _mm512_fmadd_ps(wt, _mm512_loadu_ps(s), a0);
                a1 = _mm512_fmadd_ps(wt, _mm512_loadu_ps(s + 16), a1);
                a2 = _mm512_fmadd_ps(wt, _mm512_loadu_ps(s + 32), a2);
                a3 = _mm512_fmadd_ps(wt, _mm512_loadu_ps(s + 48), a3);
            }
            if (relu) { a0 = _mm512_max_ps(a0, zero); a1 = _mm512_max_ps(a1, zero); a2 = _mm512_max_ps(a2, zero); a3 = _mm512_max_ps(a3, zero); }
            _mm512_storeu_ps(row + ox, a0);
            _mm512_storeu_ps(row + ox + 16, a1);
            _mm512_storeu_ps(row + ox + 32, a2);
            _mm512_storeu_ps(row + ox + 48, a3);
        }
        for (; ox < ow; ox += 16) {
            long rem = ow - ox;
            __mmask16 m = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1);
            __m512 a = b;
            for (int t = 0; t < taps; t++)
                a = _mm512_fmadd_ps(_mm512_set1_ps(w[t]), _mm512_maskz_loadu_ps(m, base + offsets[t] + ox), a);
            if (relu) a = _mm512_max_ps(a, zero);
            _mm512_mask_storeu_ps(row + ox, m, a);
        }
    }
}
#endif

void fk_depthwise_plane(const float *src, long wq, const long *offsets, const float *w, int taps, float bias, int relu,
                        float *out, long oh, long ow) {
#if defined(__x86_64__)
    if (fk_has_avx512()) {
        depthwise_avx512(src, wq, offsets, w, taps, bias, relu, out, oh, ow);
        return;
    }
#endif
    depthwise_portable(src, wq, offsets, w, taps, bias, relu, out, oh, ow);
}

// fk_gather_stride: dst[i] = src[i * stride] for i < count (a stride phase of one input row).
#if defined(__x86_64__)
__attribute__((target("avx512f")))
static void gather2_avx512(const float *src, float *dst, long count) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    long i = 0;
    // 32 inputs give 16 outputs; the last input read is src[2 * i + 31] <= src[2 * (count - 1)] only while i + 16 < count.
    for (; i + 16 < count; i += 16) {
        __m512 lo = _mm512_loadu_ps(src + 2 * i), hi = _mm512_loadu_ps(src + 2 * i + 16);
        _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(lo, even, hi));
    }
    for (; i < count; i++) dst[i] = src[2 * i];
}
#endif

void fk_gather_stride(const float *src, long stride, float *dst, long count) {
#if defined(__x86_64__)
    if (stride == 2 && fk_has_avx512()) {
        gather2_avx512(src, dst, count);
        return;
    }
#endif
    for (long i = 0; i < count; i++) dst[i] = src[i * stride];
}
