// fk_maxpool2d_valid on aarch64 (NEON, chosen at build time): the AVX-512 kernel's plan
// (MaxPool.c) with 4 lanes. Per output row the vertical max of its kh input rows into a row
// buffer, then the horizontal max over kw taps at stride sw: stride 1 reads the buffer directly,
// stride 2 deinterleaves with vld2q, other strides go lane by lane. A max is exact, so every path
// gives the reference's values. Compiles to nothing elsewhere.
#include "CFloatKernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

#define ROW_MAX 4096

static inline float max1(float a, float b) { return b > a ? b : a; }

static void scalar_row(const float *r0, long iw, float *out, long ow, long kh, long kw, long sw) {
    for (long ox = 0; ox < ow; ox++) {
        float m = r0[ox * sw];
        for (long ky = 0; ky < kh; ky++)
            for (long kx = 0; kx < kw; kx++) m = max1(m, r0[ky * iw + ox * sw + kx]);
        out[ox] = m;
    }
}

void fk_maxpool2d_valid_neon(long planes, const float *input, long ih, long iw, float *output, long oh, long ow,
                             long kh, long kw, long sh, long sw) {
    // The row buffer and slack that the stride-2 loads past the last window may touch (their
    // lanes are never stored).
    float vrow[ROW_MAX + 16] __attribute__((aligned(16)));
    memset(vrow + (iw < ROW_MAX ? iw : ROW_MAX), 0, 16 * sizeof(float));
    for (long p = 0; p < planes; p++) {
        const float *src = input + p * ih * iw;
        float *dst = output + p * oh * ow;
        for (long oy = 0; oy < oh; oy++) {
            const float *r0 = src + oy * sh * iw;
            float *out = dst + oy * ow;
            if (iw > ROW_MAX) { scalar_row(r0, iw, out, ow, kh, kw, sw); continue; }
            long x = 0;
            for (; x + 4 <= iw; x += 4) {
                float32x4_t v = vld1q_f32(r0 + x);
                for (long ky = 1; ky < kh; ky++) v = vmaxq_f32(v, vld1q_f32(r0 + ky * iw + x));
                vst1q_f32(vrow + x, v);
            }
            for (; x < iw; x++) {
                float m = r0[x];
                for (long ky = 1; ky < kh; ky++) m = max1(m, r0[ky * iw + x]);
                vrow[x] = m;
            }
            long ox = 0;
            if (sw == 1) {
                // Windows ox .. ox + 3 read vrow up to ox + 3 + kw - 1 <= iw - 1.
                for (; ox + 4 <= ow; ox += 4) {
                    float32x4_t v = vld1q_f32(vrow + ox);
                    for (long kx = 1; kx < kw; kx++) v = vmaxq_f32(v, vld1q_f32(vrow + ox + kx));
                    vst1q_f32(out + ox, v);
                }
            } else if (sw == 2) {
                // vld2q of 8 floats from 2 ox + kx: lanes 0, 2, 4, 6 are the four windows' tap kx;
                // the last load reads at most 8 floats past the last window (slack above).
                for (; ox + 4 <= ow; ox += 4) {
                    const float *b = vrow + 2 * ox;
                    float32x4_t v = vld2q_f32(b).val[0];
                    for (long kx = 1; kx < kw; kx++) v = vmaxq_f32(v, vld2q_f32(b + kx).val[0]);
                    vst1q_f32(out + ox, v);
                }
            }
            for (; ox < ow; ox++) {
                float m = vrow[ox * sw];
                for (long kx = 1; kx < kw; kx++) m = max1(m, vrow[ox * sw + kx]);
                out[ox] = m;
            }
        }
    }
}

#endif
