// fk_maxpool2d_valid: max pooling without padding, every window inside the input.
//
// Per output row: the vertical max of its kh input rows into a row buffer (contiguous, 16 lanes
// at a time), then the horizontal max over kw taps at stride sw: stride 1 reads the buffer
// directly, stride 2 deinterleaves two vectors with one permute, other strides go lane by lane.
#include "CFloatKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define ROW_MAX 4096

#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)

static inline __mmask16 lanes(long n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

static void scalar_row(const float *r0, long iw, float *out, long ow, long kh, long kw, long sw) {
    for (long ox = 0; ox < ow; ox++) {
        float m = r0[ox * sw];
        for (long ky = 0; ky < kh; ky++)
            for (long kx = 0; kx < kw; kx++) {
                float v = r0[ky * iw + ox * sw + kx];
                m = v > m ? v : m;
            }
        out[ox] = m;
    }
}

void fk_maxpool2d_valid(long planes, const float *input, long ih, long iw, float *output, long oh, long ow,
                        long kh, long kw, long sh, long sw) {
    // The row buffer and 32 slack lanes that permuted loads past the last window may touch
    // (their lanes are never stored).
    float vrow[ROW_MAX + 64] __attribute__((aligned(64)));
    memset(vrow + (iw < ROW_MAX ? iw : ROW_MAX), 0, 64 * sizeof(float));
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (long p = 0; p < planes; p++) {
        const float *src = input + p * ih * iw;
        float *dst = output + p * oh * ow;
        for (long oy = 0; oy < oh; oy++) {
            const float *r0 = src + oy * sh * iw;
            float *out = dst + oy * ow;
            if (iw > ROW_MAX) { scalar_row(r0, iw, out, ow, kh, kw, sw); continue; }
            for (long x = 0; x < iw; x += 16) {
                __mmask16 m = lanes(iw - x);
                __m512 v = _mm512_maskz_loadu_ps(m, r0 + x);
                for (long ky = 1; ky < kh; ky++) v = _mm512_max_ps(v, _mm512_maskz_loadu_ps(m, r0 + ky * iw + x));
                _mm512_mask_storeu_ps(vrow + x, m, v);
            }
            for (long ox = 0; ox < ow; ox += 16) {
                __mmask16 m = lanes(ow - ox);
                __m512 v;
                if (sw == 1) {
                    v = _mm512_loadu_ps(vrow + ox);
                    for (long kx = 1; kx < kw; kx++) v = _mm512_max_ps(v, _mm512_loadu_ps(vrow + ox + kx));
                } else if (sw == 2) {
                    const float *b = vrow + 2 * ox;
                    v = _mm512_permutex2var_ps(_mm512_loadu_ps(b), even, _mm512_loadu_ps(b + 16));
                    for (long kx = 1; kx < kw; kx++)
                        v = _mm512_max_ps(v, _mm512_permutex2var_ps(_mm512_loadu_ps(b + kx), even, _mm512_loadu_ps(b + kx + 16)));
                } else {
                    float tmp[16];
                    long n = ow - ox < 16 ? ow - ox : 16;
                    for (long l = 0; l < n; l++) {
                        float mx = vrow[(ox + l) * sw];
                        for (long kx = 1; kx < kw; kx++) { float t = vrow[(ox + l) * sw + kx]; mx = t > mx ? t : mx; }
                        tmp[l] = mx;
                    }
                    v = _mm512_maskz_loadu_ps(m, tmp);
                }
                _mm512_mask_storeu_ps(out + ox, m, v);
            }
        }
    }
}

#pragma clang attribute pop

#elif defined(__aarch64__)

// The NEON kernel (MaxPool+Neon.c).
void fk_maxpool2d_valid_neon(long planes, const float *input, long ih, long iw, float *output, long oh, long ow,
                             long kh, long kw, long sh, long sw);

void fk_maxpool2d_valid(long planes, const float *input, long ih, long iw, float *output, long oh, long ow,
                        long kh, long kw, long sh, long sw) {
    fk_maxpool2d_valid_neon(planes, input, ih, iw, output, oh, ow, kh, kw, sh, sw);
}

#else

void fk_maxpool2d_valid(long planes, const float *input, long ih, long iw, float *output, long oh, long ow,
                        long kh, long kw, long sh, long sw) {
    (void)planes; (void)input; (void)ih; (void)iw; (void)output; (void)oh; (void)ow; (void)kh; (void)kw; (void)sh; (void)sw;
}

#endif
