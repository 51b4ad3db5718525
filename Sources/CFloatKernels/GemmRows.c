// fk_gemm_rows: C = act(bias + A * B) with B given by row pointers (NCHW planes).
//
// Register blocking: 6 rows of C by 64 columns (4 zmm each) = 24 accumulators; per step of the
// reduction, 4 loads of B and 6 broadcasts of A feed 24 FMAs. Cache blocking without packing
// (GotoBLAS order): columns in blocks of NC, the reduction in equal blocks of at most KC, so a
// block of B (KC x NC floats, 512 KiB) stays in L2 while each 6 x KC block of A, read in place
// from L1, sweeps all of its 64-column strips (the last masked). With few row blocks nothing is
// copied, so small-channel layers pay no packing and the 1000 x 512 classifier reads its weights
// once. With 4 or more row blocks the B block is first packed strip by strip into a contiguous
// per-thread buffer: its up to 128 rows lie a plane apart in the activations (a power-of-two
// plane puts every row's column chunk in the same L2 sets, and no prefetcher follows 128
// streams), so without packing large-spatial layers ran at under half the rate of small ones.
#include "CFloatKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdlib.h>

#define MR 6
#define NR 64
#define KC 128
#define NC 1024

#pragma clang attribute push(__attribute__((target("avx512f,fma"))), apply_to = function)

// One packed B block (KC x NC floats, 512 KiB) per thread, allocated on first use and kept: the
// session's worker threads live as long as the process, so this is allocated once per thread.
static float *pack_buffer(void) {
    static _Thread_local float *buffer = 0;
    if (!buffer) buffer = (float *)aligned_alloc(64, (size_t)KC * NC * sizeof(float));
    return buffer;
}

static inline __attribute__((always_inline)) void micro(
    const int mr, const int nv, long kc, const float *a, long lda, const float *const *brows, long col,
    const float *packed, __mmask16 tail, float *c, long ldc, int first, int last, const float *bias, int relu) {
    __m512 acc[MR][4];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nv; j++)
            acc[i][j] = first ? _mm512_setzero_ps()
                              : _mm512_maskz_loadu_ps(j == nv - 1 ? tail : 0xFFFF, c + i * ldc + col + 16 * j);
    for (long p = 0; p < kc; p++) {
        __m512 bv[4];
        if (packed) {
            // A packed strip: kc rows of NR floats, the tail zero-filled.
            const float *b = packed + p * NR;
            for (int j = 0; j < nv; j++) bv[j] = _mm512_load_ps(b + 16 * j);
        } else {
            const float *b = brows[p] + col;
            for (int j = 0; j < nv; j++) bv[j] = _mm512_maskz_loadu_ps(j == nv - 1 ? tail : 0xFFFF, b + 16 * j);
        }
        for (int i = 0; i < mr; i++) {
            __m512 av = _mm512_set1_ps(a[i * lda + p]);
            for (int j = 0; j < nv; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    if (last) {
        for (int i = 0; i < mr; i++) {
            __m512 bi = _mm512_set1_ps(bias ? bias[i] : 0.0f);
            for (int j = 0; j < nv; j++) {
                acc[i][j] = _mm512_add_ps(acc[i][j], bi);
                if (relu) acc[i][j] = _mm512_max_ps(acc[i][j], _mm512_setzero_ps());
            }
        }
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nv; j++)
            _mm512_mask_storeu_ps(c + i * ldc + col + 16 * j, j == nv - 1 ? tail : 0xFFFF, acc[i][j]);
}

// One specialization per (rows, vectors) so every loop above unrolls with constant bounds.
#define MICRO_CASE(R, V) \
    case (R) * 8 + (V): \
        if (packed) micro(R, V, kc, a, lda, 0, col, packed, tail, c, ldc, first, last, bias, relu); \
        else micro(R, V, kc, a, lda, brows, col, 0, tail, c, ldc, first, last, bias, relu); \
        break;
#define MICRO_ROW(R) MICRO_CASE(R, 1) MICRO_CASE(R, 2) MICRO_CASE(R, 3) MICRO_CASE(R, 4)

static void micro_dispatch(int mr, int nv, long kc, const float *a, long lda, const float *const *brows, long col,
                           const float *packed, __mmask16 tail, float *c, long ldc, int first, int last, const float *bias,
                           int relu) {
    switch (mr * 8 + nv) {
        MICRO_ROW(1) MICRO_ROW(2) MICRO_ROW(3) MICRO_ROW(4) MICRO_ROW(5) MICRO_ROW(6)
    default: break;
    }
}

void fk_gemm_rows(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                  const float *bias, int relu, float *c, long ldc) {
    if (m1 <= m0 || n1 <= n0) return;
    if (k <= 0) {
        // An empty reduction: the bias alone.
        for (long i = m0; i < m1; i++)
            for (long j = n0; j < n1; j++) {
                float v = bias ? bias[i] : 0.0f;
                c[i * ldc + j] = relu && v < 0 ? 0.0f : v;
            }
        return;
    }
    // Reduction blocks of equal size (at most KC): no short last block paying a full pass over C.
    long kblocks = (k + KC - 1) / KC;
    long kcBase = (k + kblocks - 1) / kblocks;
    // Packing pays when enough row blocks reuse each packed B block.
    float *pack = (m1 - m0) >= 4 * MR ? pack_buffer() : 0;
    for (long jb = n0; jb < n1; jb += NC) {
        long jend = n1 - jb < NC ? n1 : jb + NC;
        for (long p0 = 0; p0 < k; p0 += kcBase) {
            long kc = k - p0 < kcBase ? k - p0 : kcBase;
            int first = p0 == 0, last = p0 + kc >= k;
            if (pack) {
                for (long j0 = jb; j0 < jend; j0 += NR) {
                    long w = jend - j0 < NR ? jend - j0 : NR;
                    float *dst = pack + ((j0 - jb) / NR) * kc * NR;
                    int nv = (int)((w + 15) / 16);
                    int rem = (int)(w - 16 * (nv - 1));
                    __mmask16 tail = rem == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1);
                    for (long p = 0; p < kc; p++) {
                        const float *src = brows[p0 + p] + j0;
                        for (int j = 0; j < 4; j++) {
                            __m512 v = j < nv ? _mm512_maskz_loadu_ps(j == nv - 1 ? tail : 0xFFFF, src + 16 * j) : _mm512_setzero_ps();
                            _mm512_store_ps(dst + p * NR + 16 * j, v);
                        }
                    }
                }
            }
            for (long i0 = m0; i0 < m1; i0 += MR) {
                int mr = (int)(m1 - i0 < MR ? m1 - i0 : MR);
                for (long j0 = jb; j0 < jend; j0 += NR) {
                    long w = jend - j0 < NR ? jend - j0 : NR;
                    int nv = (int)((w + 15) / 16);
                    int rem = (int)(w - 16 * (nv - 1));
                    __mmask16 tail = rem == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1);
                    const float *packed = pack ? pack + ((j0 - jb) / NR) * kc * NR : 0;
                    micro_dispatch(mr, nv, kc, a + i0 * lda + p0, lda, brows + p0, j0, packed, tail, c + i0 * ldc, ldc, first, last,
                                   bias ? bias + i0 : 0, relu);
                }
            }
        }
    }
}

#pragma clang attribute pop

#elif defined(__aarch64__)

// The NEON kernel (GemmRows+Neon.c).
void fk_gemm_rows_neon(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                       const float *bias, int relu, float *c, long ldc);

void fk_gemm_rows(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                  const float *bias, int relu, float *c, long ldc) {
    fk_gemm_rows_neon(m0, m1, n0, n1, k, a, lda, brows, bias, relu, c, ldc);
}

#else

void fk_gemm_rows(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                  const float *bias, int relu, float *c, long ldc) {
    (void)m0; (void)m1; (void)n0; (void)n1; (void)k; (void)a; (void)lda; (void)brows; (void)bias; (void)relu; (void)c; (void)ldc;
}

#endif
