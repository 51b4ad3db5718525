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
//
// fk_gemm_conv2d runs the same blocks on the implicit im2col matrix of a 2-D convolution: the
// packing step gathers each strip straight from the unpadded input (masked loads zero the
// padding, a permute picks stride 2), so no padded copy, no im2col matrix and no wider output to
// compact are ever written.
#include "CFloatKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>

#define MR 6
#define NR 64
#define KC 128
#define NC 1024

#pragma clang attribute push(__attribute__((target("avx512f,fma"))), apply_to = function)

// One packed B block (KC x NC floats, 512 KiB, and 16 floats that the packing's whole-chunk
// stores may overshoot into) per thread, allocated on first use and kept: the session's worker threads live as long
// as the process, so this is allocated once per thread.
static float *pack_buffer(void) {
    static _Thread_local float *buffer = 0;
    if (!buffer) buffer = (float *)aligned_alloc(64, ((size_t)KC * NC + 16) * sizeof(float));
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

// Packs columns [j0, j0 + w) of reduction rows [p0, p0 + kc) given by row pointers into a strip
// of kc rows of NR floats (the tail zero-filled).
static void pack_rows(float *dst, const float *const *brows, long p0, long kc, long j0, long w) {
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

// Packs columns [j0, j0 + w) of reduction rows [p0, p0 + kc) of the pitched matrix
// B[p][j] = brows[p][(j / width) * pitch + j % width] into a strip of kc rows of NR floats. A
// strip crosses rows of `width` columns, so each row of the strip is copied in segments, the same
// for every p (computed once). Each segment is copied 16 floats at a time with plain unaligned
// loads and stores: a copy may run up to 15 floats past the end of its segment (the caller
// keeps the source readable there; the next segment or row, or the buffer's slack, takes the
// stores). Lanes [w, 16·ceil(w/16)) are zeroed: the kernel multiplies them (into columns of C it
// never stores) and they must hold no stale NaN or denormal.
static void pack_pitched(float *dst, const float *const *brows, long p0, long kc, long j0, long w, long width, long pitch) {
    long so[NR], dt[NR], len[NR];
    int segments = 0;
    for (long t = 0, y = j0 / width, x = j0 % width; t < w; y++, x = 0) {
        long l = width - x < w - t ? width - x : w - t;
        so[segments] = y * pitch + x;
        dt[segments] = t;
        len[segments++] = l;
        t += l;
    }
    const long zeroFrom = w & ~15L;
    const __mmask16 zeroLanes = (__mmask16)(0xFFFFu << (w & 15));
    for (long p = 0; p < kc; p++) {
        const float *src = brows[p0 + p];
        float *d = dst + p * NR;
        for (int s = 0; s < segments; s++) {
            const float *from = src + so[s];
            float *to = d + dt[s];
            for (long q = 0; q < len[s]; q += 16) _mm512_storeu_ps(to + q, _mm512_loadu_ps(from + q));
        }
        if (w & 15) _mm512_mask_storeu_ps(d + zeroFrom, zeroLanes, _mm512_setzero_ps());
    }
}

// Lanes [lo, hi) of a 16- or 32-bit mask (empty when hi <= lo).
static inline unsigned lane_range(long lo, long hi, int lanes) {
    if (lo < 0) lo = 0;
    if (hi > lanes) hi = lanes;
    if (hi <= lo) return 0;
    unsigned upper = hi >= 32 ? 0xFFFFFFFFu : (1u << hi) - 1;
    return upper & ~((1u << lo) - 1);
}

// An address `offset` floats from `row`, possibly outside the buffer: only read through masked
// loads whose masked-out lanes are the out-of-range ones (AVX-512 suppresses their faults).
static inline const float *row_at(const float *row, long offset) {
    return (const float *)((uintptr_t)row + (uintptr_t)(offset * (long)sizeof(float)));
}

// dst[s] = row[x0 + s * sw] where 0 <= x0 + s * sw < iw, else 0, for s < len. Stores whole
// 16-float chunks, so up to 15 floats past dst[len - 1] are overwritten (pack_conv2d writes its
// segments in order and the pack buffer has slack). Chunks inside the row use plain loads: on
// Zen 4 the masked ones made packing a third of a 32-channel 3x3 layer's time.
static void gather_segment(float *dst, const float *row, long x0, long sw, long len, long iw) {
    if (sw == 1) {
        for (long s0 = 0; s0 < len; s0 += 16) {
            long x = x0 + s0, count = len - s0 < 16 ? len - s0 : 16;
            __m512 v;
            if (count == 16 && x >= 0 && x + 16 <= iw) v = _mm512_loadu_ps(row + x);
            else v = _mm512_maskz_loadu_ps((__mmask16)(lane_range(-x, iw - x, 16) & lane_range(0, count, 16)), row_at(row, x));
            _mm512_storeu_ps(dst + s0, v);
        }
    } else if (sw == 2) {
        const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        for (long s0 = 0; s0 < len; s0 += 16) {
            long x = x0 + 2 * s0, count = len - s0 < 16 ? len - s0 : 16;
            __m512 lo, hi;
            if (count == 16 && x >= 0 && x + 32 <= iw) {
                lo = _mm512_loadu_ps(row + x);
                hi = _mm512_loadu_ps(row + x + 16);
            } else {
                // Input elements x .. x + 2·count - 2 are read (the even ones).
                unsigned valid = lane_range(-x, iw - x, 32) & lane_range(0, 2 * count - 1, 32);
                lo = _mm512_maskz_loadu_ps((__mmask16)(valid & 0xFFFF), row_at(row, x));
                hi = _mm512_maskz_loadu_ps((__mmask16)(valid >> 16), row_at(row, x + 16));
            }
            _mm512_storeu_ps(dst + s0, _mm512_permutex2var_ps(lo, even, hi));
        }
    } else {
        for (long s = 0; s < len; s++) {
            long xi = x0 + s * sw;
            dst[s] = xi >= 0 && xi < iw ? row[xi] : 0.0f;
        }
    }
}

// Packs output columns [j0, j0 + w) of reduction rows [p0, p0 + kc) of the implicit im2col
// matrix of a 2-D convolution: row p = (channel, ky, kx), column j = (oy, ox), value the input at
// (oy·sh - ph + ky·dh, ox·sw - pw + kx·dw) or 0 in the padding. A strip crosses output rows, so
// each reduction row is gathered in segments of one output row each.
static void pack_conv2d(float *dst, const fk_conv2d_source *g, long p0, long kc, long j0, long w) {
    long kx = p0 % g->kw, ky = p0 / g->kw % g->kh, ch = p0 / (g->kw * g->kh);
    long oyStart = j0 / g->ow, oxStart = j0 % g->ow;
    long padded = (w + 15) / 16 * 16;
    for (long p = 0; p < kc; p++) {
        float *d = dst + p * NR;
        const float *plane = g->input + ch * g->ih * g->iw;
        long t = 0, oy = oyStart, ox = oxStart;
        while (t < w) {
            long len = g->ow - ox < w - t ? g->ow - ox : w - t;
            long iy = oy * g->sh - g->ph + ky * g->dh;
            if (iy < 0 || iy >= g->ih) {
                for (long s = 0; s < len; s += 16) _mm512_storeu_ps(d + t + s, _mm512_setzero_ps());
            } else {
                gather_segment(d + t, plane + iy * g->iw, ox * g->sw - g->pw + kx * g->dw, g->sw, len, g->iw);
            }
            t += len;
            ox = 0;
            oy++;
        }
        for (long s = w; s < padded; s++) d[s] = 0.0f;
        if (++kx == g->kw) {
            kx = 0;
            if (++ky == g->kh) { ky = 0; ch++; }
        }
    }
}

// The blocked product over columns [n0, n1) and rows [m0, m1). B comes from row pointers
// (`brows`, pitched when pitch != width: see pack_pitched) or, when `conv` is set, from the
// implicit im2col matrix of a 2-D convolution. Pitched and implicit B are always packed.
static void gemm_blocked(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                         long width, long pitch, const fk_conv2d_source *conv, const float *bias, int act, float p0,
                         float p1, float *c, long ldc) {
    if (m1 <= m0 || n1 <= n0) return;
    const int relu = act == FK_ACT_RELU;
    // Other activations run over each finished tile while it is in L1, through the SIMD
    // elementwise kernel (the same code and error bounds as the standalone operators).
    const int tileAct = act != FK_ACT_NONE && !relu;
    if (k <= 0) {
        // An empty reduction: the bias alone.
        for (long i = m0; i < m1; i++) {
            for (long j = n0; j < n1; j++) {
                float v = bias ? bias[i] : 0.0f;
                c[i * ldc + j] = relu && v < 0 ? 0.0f : v;
            }
            if (tileAct) fk_ew_unary(-1, act, p0, p1, c + i * ldc + n0, c + i * ldc + n0, n1 - n0);
        }
        return;
    }
    // Reduction blocks of equal size (at most KC): no short last block paying a full pass over C.
    long kblocks = (k + KC - 1) / KC;
    long kcBase = (k + kblocks - 1) / kblocks;
    // Packing pays when enough row blocks reuse each packed B block.
    const int pitched = !conv && pitch != width;
    float *pack = conv || pitched || (m1 - m0) >= 4 * MR ? pack_buffer() : 0;
    for (long jb = n0; jb < n1; jb += NC) {
        long jend = n1 - jb < NC ? n1 : jb + NC;
        for (long r0 = 0; r0 < k; r0 += kcBase) {
            long kc = k - r0 < kcBase ? k - r0 : kcBase;
            int first = r0 == 0, last = r0 + kc >= k;
            if (pack) {
                for (long j0 = jb; j0 < jend; j0 += NR) {
                    long w = jend - j0 < NR ? jend - j0 : NR;
                    float *dst = pack + ((j0 - jb) / NR) * kc * NR;
                    if (conv) pack_conv2d(dst, conv, r0, kc, j0, w);
                    else if (pitched) pack_pitched(dst, brows, r0, kc, j0, w, width, pitch);
                    else pack_rows(dst, brows, r0, kc, j0, w);
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
                    micro_dispatch(mr, nv, kc, a + i0 * lda + r0, lda, pack ? 0 : brows + r0, j0, packed, tail, c + i0 * ldc, ldc,
                                   first, last, bias ? bias + i0 : 0, relu);
                    if (last && tileAct)
                        for (int i = 0; i < mr; i++) fk_ew_unary(-1, act, p0, p1, c + (i0 + i) * ldc + j0, c + (i0 + i) * ldc + j0, w);
                }
            }
        }
    }
}

void fk_gemm_rows(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                  const float *bias, int relu, float *c, long ldc) {
    gemm_blocked(m0, m1, n0, n1, k, a, lda, brows, 1, 1, 0, bias, relu ? FK_ACT_RELU : FK_ACT_NONE, 0, 0, c, ldc);
}

void fk_gemm_rows_act(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                      const float *bias, int act, float p0, float p1, float *c, long ldc) {
    gemm_blocked(m0, m1, n0, n1, k, a, lda, brows, 1, 1, 0, bias, act, p0, p1, c, ldc);
}

void fk_gemm_rows_pitched(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                          long width, long pitch, const float *bias, int act, float p0, float p1, float *c, long ldc) {
    gemm_blocked(m0, m1, n0, n1, k, a, lda, brows, width, pitch, 0, bias, act, p0, p1, c, ldc);
}

void fk_gemm_conv2d(long m0, long m1, long n0, long n1, const float *a, long lda, const fk_conv2d_source *source,
                    const float *bias, int act, float p0, float p1, float *c, long ldc) {
    gemm_blocked(m0, m1, n0, n1, source->channels * source->kh * source->kw, a, lda, 0, 1, 1, source, bias, act, p0, p1, c,
                 ldc);
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

// The NEON kernel's epilogue has Relu; other activations run over each row of the part after it.
void fk_gemm_rows_act(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                      const float *bias, int act, float p0, float p1, float *c, long ldc) {
    fk_gemm_rows_neon(m0, m1, n0, n1, k, a, lda, brows, bias, act == FK_ACT_RELU, c, ldc);
    if (act != FK_ACT_NONE && act != FK_ACT_RELU && n1 > n0)
        for (long i = m0; i < m1; i++) fk_ew_unary(-1, act, p0, p1, c + i * ldc + n0, c + i * ldc + n0, n1 - n0);
}

// No NEON pitched or implicit-im2col kernel: callers check fk_has_avx512() first.
void fk_gemm_rows_pitched(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                          long width, long pitch, const float *bias, int act, float p0, float p1, float *c, long ldc) {
    (void)m0; (void)m1; (void)n0; (void)n1; (void)k; (void)a; (void)lda; (void)brows; (void)width; (void)pitch; (void)bias; (void)act; (void)p0; (void)p1; (void)c; (void)ldc;
}

void fk_gemm_conv2d(long m0, long m1, long n0, long n1, const float *a, long lda, const fk_conv2d_source *source,
                    const float *bias, int act, float p0, float p1, float *c, long ldc) {
    (void)m0; (void)m1; (void)n0; (void)n1; (void)a; (void)lda; (void)source; (void)bias; (void)act; (void)p0; (void)p1; (void)c; (void)ldc;
}

#else

void fk_gemm_rows_pitched(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                          long width, long pitch, const float *bias, int act, float p0, float p1, float *c, long ldc) {
    (void)m0; (void)m1; (void)n0; (void)n1; (void)k; (void)a; (void)lda; (void)brows; (void)width; (void)pitch; (void)bias; (void)act; (void)p0; (void)p1; (void)c; (void)ldc;
}

void fk_gemm_conv2d(long m0, long m1, long n0, long n1, const float *a, long lda, const fk_conv2d_source *source,
                    const float *bias, int act, float p0, float p1, float *c, long ldc) {
    (void)m0; (void)m1; (void)n0; (void)n1; (void)a; (void)lda; (void)source; (void)bias; (void)act; (void)p0; (void)p1; (void)c; (void)ldc;
}

void fk_gemm_rows_act(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                      const float *bias, int act, float p0, float p1, float *c, long ldc) {
    (void)m0; (void)m1; (void)n0; (void)n1; (void)k; (void)a; (void)lda; (void)brows; (void)bias; (void)act; (void)p0; (void)p1; (void)c; (void)ldc;
}

void fk_gemm_rows(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                  const float *bias, int relu, float *c, long ldc) {
    (void)m0; (void)m1; (void)n0; (void)n1; (void)k; (void)a; (void)lda; (void)brows; (void)bias; (void)relu; (void)c; (void)ldc;
}

#endif
