// fk_gemm_rows on aarch64 (NEON is part of every aarch64 CPU, so it is chosen at build time):
// the AVX-512 kernel's structure (GemmRows.c) with 128-bit registers. Compiles to nothing
// elsewhere.
//
// Register blocking: 6 rows of C by 16 columns (4 q registers each) = 24 accumulators; per step
// of the reduction, 4 loads of B and 6 broadcasts of A feed 24 FMAs (32 registers in all).
// Cache blocking as on x86: columns in blocks of NC, the reduction in equal blocks of at most KC,
// nothing packed. NEON has no masked loads, so the last 1 to 3 columns of a row go through a
// small zero-padded copy: the kernel never reads past n1. Each element of C is the same
// sequence of fused multiply-adds (p ascending), then + bias, then Relu, as on x86.
#include "CFloatKernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

#define MR 6
#define NV 4
#define NR (4 * NV)
#define KC 128
#define NC 1024

/// Loads 4 floats, or the first `rem` (1 to 3) of them and zeros.
static inline __attribute__((always_inline)) float32x4_t load4(const float *p, int rem) {
    if (rem == 4) return vld1q_f32(p);
    float t[4] = {0, 0, 0, 0};
    for (int i = 0; i < rem; i++) t[i] = p[i];
    return vld1q_f32(t);
}

static inline __attribute__((always_inline)) void store4(float *p, float32x4_t v, int rem) {
    if (rem == 4) { vst1q_f32(p, v); return; }
    float t[4];
    vst1q_f32(t, v);
    for (int i = 0; i < rem; i++) p[i] = t[i];
}

/// mr rows x nv vectors of C; the last vector has `rem` (1 to 4) valid columns.
static inline __attribute__((always_inline)) void micro(
    const int mr, const int nv, long kc, const float *a, long lda, const float *const *brows, long col,
    int rem, float *c, long ldc, int first, int last, const float *bias, int relu) {
    float32x4_t acc[MR][NV];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nv; j++)
            acc[i][j] = first ? vdupq_n_f32(0.0f) : load4(c + i * ldc + col + 4 * j, j == nv - 1 ? rem : 4);
    for (long p = 0; p < kc; p++) {
        const float *b = brows[p] + col;
        float32x4_t bv[NV];
        for (int j = 0; j < nv; j++) bv[j] = load4(b + 4 * j, j == nv - 1 ? rem : 4);
        for (int i = 0; i < mr; i++) {
            const float av = a[i * lda + p];
            for (int j = 0; j < nv; j++) acc[i][j] = vfmaq_n_f32(acc[i][j], bv[j], av);
        }
    }
    if (last) {
        for (int i = 0; i < mr; i++) {
            const float32x4_t bi = vdupq_n_f32(bias ? bias[i] : 0.0f);
            for (int j = 0; j < nv; j++) {
                acc[i][j] = vaddq_f32(acc[i][j], bi);
                if (relu) acc[i][j] = vmaxq_f32(acc[i][j], vdupq_n_f32(0.0f));
            }
        }
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nv; j++) store4(c + i * ldc + col + 4 * j, acc[i][j], j == nv - 1 ? rem : 4);
}

// One specialization per (rows, vectors, full last vector or not) so the loops unroll with
// constant bounds and full strips carry no tail test.
#define MICRO_CASE(R, V)                                                                                         \
    case (R) * 8 + (V):                                                                                          \
        if (rem == 4) micro(R, V, kc, a, lda, brows, col, 4, c, ldc, first, last, bias, relu);                   \
        else micro(R, V, kc, a, lda, brows, col, rem, c, ldc, first, last, bias, relu);                          \
        break;
#define MICRO_ROW(R) MICRO_CASE(R, 1) MICRO_CASE(R, 2) MICRO_CASE(R, 3) MICRO_CASE(R, 4)

static void micro_dispatch(int mr, int nv, long kc, const float *a, long lda, const float *const *brows, long col,
                           int rem, float *c, long ldc, int first, int last, const float *bias, int relu) {
    switch (mr * 8 + nv) {
        MICRO_ROW(1) MICRO_ROW(2) MICRO_ROW(3) MICRO_ROW(4) MICRO_ROW(5) MICRO_ROW(6)
    default: break;
    }
}

void fk_gemm_rows_neon(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                       const float *bias, int relu, float *c, long ldc) {
    if (m1 <= m0 || n1 <= n0) return;
    if (k <= 0) {
        for (long i = m0; i < m1; i++)
            for (long j = n0; j < n1; j++) {
                float v = bias ? bias[i] : 0.0f;
                c[i * ldc + j] = relu && v < 0 ? 0.0f : v;
            }
        return;
    }
    long kblocks = (k + KC - 1) / KC;
    long kcBase = (k + kblocks - 1) / kblocks;
    for (long jb = n0; jb < n1; jb += NC) {
        long jend = n1 - jb < NC ? n1 : jb + NC;
        for (long p0 = 0; p0 < k; p0 += kcBase) {
            long kc = k - p0 < kcBase ? k - p0 : kcBase;
            int first = p0 == 0, last = p0 + kc >= k;
            for (long i0 = m0; i0 < m1; i0 += MR) {
                int mr = (int)(m1 - i0 < MR ? m1 - i0 : MR);
                for (long j0 = jb; j0 < jend; j0 += NR) {
                    long w = jend - j0 < NR ? jend - j0 : NR;
                    int nv = (int)((w + 3) / 4);
                    int rem = (int)(w - 4 * (nv - 1));
                    micro_dispatch(mr, nv, kc, a + i0 * lda + p0, lda, brows + p0, j0, rem, c + i0 * ldc, ldc, first, last,
                                   bias ? bias + i0 : 0, relu);
                }
            }
        }
    }
}

#endif
