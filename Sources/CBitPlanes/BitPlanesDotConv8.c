// The int8 dot-product pointwise convolution (bp_dotconv8, see CBitPlanesDotConv8.h): binarized
// weights held as int8 sign planes times float activations quantized to u8 once per position.
//
// Why: a lookup-table convolution builds each position's tables before it reads them, which pays
// only when many rows share them; a 1x1 Conv with 32-256 input channels has few rows per table
// and the build costs what the lookups save. Here there are no tables: per plane, an exact int32
// dot product of the u8 activations with the plane's {-1, 0, +1} weights, 64 products per
// vpdpbusd (AVX-512 VNNI), the technique of int8 GEMMs (u8 activations x s8 weights). A plane
// costs a quarter of the float GEMM's multiply-adds; a weight costs one byte per plane. Register
// tile: 4 rows x 32 positions per plane pass (8 int32 accumulators, the float sums in registers).
//
// Activations (per output position p, over its `reduction` inputs): m = max |x|. When some
// input is negative, s = m / 127, q = rne(x * (127 / m)) + 128 (zero point z = 128), else
// s = m / 255, q = rne(x * (255 / m)) (z = 0; post-ReLU inputs use all 8 bits); m = 0 gives
// s = 0, q = 0. |x - s (q - z)| <= s / 2 (plus one float rounding of the scale), so the relative
// error of an input is at most 1/254 (1/510 for non-negative inputs) of the position's largest.
// Inputs are quantized once per chunk of 64 positions into [quad][64 positions][4 entries]
// bytes (vpdpbusd's layout: a position's 4 entries of a quad in one int32 lane).
//
// Exactness: the int32 sums are exact (|sum| <= 255 * reduction). The float part,
// t = 0; per plane t = fma(plane's row scale, float(sum - z * rowSum), t);
// y = fma(t, position scale, bias), plus the residual (a fused Add), then max(0, .), does the same operations in the same order in
// both bodies, so the AVX-512 and the portable bodies give bit-identical results (and the Swift
// reference, DotConvInt8+Reference).
#include "CBitPlanes.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__)
#include <immintrin.h>
#define BP_DOT8_X86 1
#define BP_DOT8_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#else
#define BP_DOT8_X86 0
#endif

enum { R = BP_DOTCONV8_ROWS, CH = BP_DOTCONV8_CHUNK };

int bp_dotconv8_fast_available(void) {
#if BP_DOT8_X86
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

/// Scratch: the chunk's quantized inputs, its zero points and scales, and (strided Convs) the
/// chunk's gathered float inputs.
size_t bp_dotconv8_scratch_bytes(const bp_dotconv8_weights *w) {
    return (size_t)w->quads * CH * 4 + CH * 8 + (size_t)w->quads * 4 * CH * sizeof(float) + 128;
}

typedef struct {
    uint8_t *acts;   // [quad][CH][4]
    int32_t *zero;   // [CH]
    float *scale;    // [CH]
    float *gather;   // [quad * 4][CH]
} chunk_buffers;

static chunk_buffers buffers_of(const bp_dotconv8_weights *w, void *scratch) {
    uintptr_t base = ((uintptr_t)scratch + 63) & ~(uintptr_t)63;
    chunk_buffers b;
    b.acts = (uint8_t *)base;
    b.zero = (int32_t *)(b.acts + (size_t)w->quads * CH * 4);
    b.scale = (float *)(b.zero + CH);
    b.gather = b.scale + CH;
    return b;
}

/// The quantization rule above for one position's scale and zero point.
static inline void position_scale(float m, int negative, float *inverse, float *scale, int32_t *zero) {
    if (m == 0.0f) {
        *inverse = 0.0f; *scale = 0.0f; *zero = 0;
    } else if (negative) {
        *inverse = 127.0f / m; *scale = m / 127.0f; *zero = 128;
    } else {
        *inverse = 255.0f / m; *scale = m / 255.0f; *zero = 0;
    }
}

static inline int32_t quantize_one(float x, float inverse, int32_t zero) {
    int32_t q = (int32_t)lrintf(x * inverse) + zero;
    return q < 0 ? 0 : q > 255 ? 255 : q;
}

/// `n` positions, input entry k of position j at src[k * stride + j].
static void quantize_portable(const bp_dotconv8_weights *w, const float *src, int64_t stride, int32_t n, chunk_buffers b) {
    const int32_t K = w->reduction;
    for (int32_t j = 0; j < n; j++) {
        float m = 0.0f;
        int negative = 0;
        for (int32_t k = 0; k < K; k++) {
            float v = src[k * stride + j], a = fabsf(v);
            m = a > m ? a : m;
            negative |= v < 0.0f;
        }
        float inverse;
        position_scale(m, negative, &inverse, &b.scale[j], &b.zero[j]);
        for (int32_t k = 0; k < w->quads * 4; k++) {
            float v = k < K ? src[k * stride + j] : 0.0f;
            b.acts[((size_t)(k / 4) * CH + j) * 4 + k % 4] = (uint8_t)quantize_one(v, inverse, b.zero[j]);
        }
    }
}

static void chunk_portable(const bp_dotconv8_weights *w, chunk_buffers b, int32_t n, const float *bias, const float *res, float *y, int64_t ldy,
                           int relu) {
    for (int32_t o = 0; o < w->rows; o++) {
        const int32_t rb = o / R, r = o % R, padded = w->rowBlocks * R;
        for (int32_t j = 0; j < n; j++) {
            float t = 0.0f;
            for (int32_t l = 0; l < w->planes; l++) {
                int32_t sum = 0;
                if (w->blockActive[l * w->rowBlocks + rb]) {
                    const int8_t *wq = w->weights + ((size_t)(l * w->rowBlocks + rb) * w->quads) * R * 4 + r * 4;
                    for (int32_t q = 0; q < w->quads; q++)
                        for (int32_t e = 0; e < 4; e++) sum += (int32_t)wq[(size_t)q * R * 4 + e] * (int32_t)b.acts[((size_t)q * CH + j) * 4 + e];
                }
                sum -= b.zero[j] * w->rowSums[l * padded + o];
                t = fmaf(w->scales[l * padded + o], (float)sum, t);
            }
            float acc = fmaf(t, b.scale[j], bias ? bias[o] : 0.0f);
            if (res) acc = acc + res[o * ldy + j];
            y[o * ldy + j] = relu ? (acc > 0.0f ? acc : 0.0f) : acc;
        }
    }
}

#if BP_DOT8_X86
BP_DOT8_TARGET static void quantize_fast(const bp_dotconv8_weights *w, const float *src, int64_t stride, int32_t n, chunk_buffers b) {
    const int32_t K = w->reduction;
    const __m512 signless = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    // Whole pairs of vectors (what block_fast reads): lanes past n quantize to 0.
    for (int32_t j0 = 0; j0 < ((n + 31) & ~31); j0 += 16) {
        const __mmask16 lanes = n - j0 >= 16 ? (__mmask16)0xffff : n <= j0 ? 0 : (__mmask16)((1u << (n - j0)) - 1);
        __m512 m = _mm512_setzero_ps();
        __mmask16 negative = 0;
        for (int32_t k = 0; k < K; k++) {
            __m512 v = _mm512_maskz_loadu_ps(lanes, src + k * stride + j0);
            m = _mm512_max_ps(_mm512_and_ps(v, signless), m);
            negative |= _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
        }
        // position_scale, lane-wise.
        const __mmask16 nonzero = _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        const __m512 top = _mm512_mask_blend_ps(negative, _mm512_set1_ps(255.0f), _mm512_set1_ps(127.0f));
        const __m512 inverse = _mm512_maskz_div_ps(nonzero, top, m);
        const __m512 scale = _mm512_maskz_div_ps(nonzero, m, top);
        const __m512i zero = _mm512_maskz_mov_epi32(negative & nonzero, _mm512_set1_epi32(128));
        _mm512_store_ps(b.scale + j0, scale);
        _mm512_store_si512((__m512i *)(b.zero + j0), zero);
        for (int32_t q = 0; q < w->quads; q++) {
            __m512i packed = _mm512_setzero_si512();
            for (int32_t e = 0; e < 4; e++) {
                const int32_t k = 4 * q + e;
                __m512 v = k < K ? _mm512_maskz_loadu_ps(lanes, src + k * stride + j0) : _mm512_setzero_ps();
                __m512i t = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, inverse)), zero);
                t = _mm512_min_epi32(_mm512_max_epi32(t, _mm512_setzero_si512()), _mm512_set1_epi32(255));
                packed = _mm512_or_si512(packed, _mm512_slli_epi32(t, 8 * e));
            }
            _mm512_store_si512((__m512i *)(b.acts + ((size_t)q * CH + j0) * 4), packed);
        }
    }
}

/// Rows [4 rb, 4 rb + 4) x positions [j0, j0 + 32) of the chunk into y (ldy floats per row; only
/// `rows` rows and `n` positions from j0 stored): per plane 8 int32 accumulators (4 rows x 2
/// vectors of 16 positions), each quad one load of 2 x 16 positions' 4 bytes and 4 row broadcasts
/// for 8 vpdpbusd; the float sums stay in registers.
BP_DOT8_TARGET static void block_fast(const bp_dotconv8_weights *w, chunk_buffers b, int32_t rb, int32_t j0, int32_t n, const float *bias,
                                      const float *res, float *y, int64_t ldy, int relu) {
    const int32_t padded = w->rowBlocks * R;
    __m512 t0[R], t1[R];
    for (int32_t r = 0; r < R; r++) t0[r] = t1[r] = _mm512_setzero_ps();
    // Zero points are 0 or 128: z * rowSum is rowSum << 7 in the lanes whose z is 128.
    const __mmask16 signed0 = _mm512_test_epi32_mask(_mm512_load_si512((const __m512i *)(b.zero + j0)), _mm512_set1_epi32(-1));
    const __mmask16 signed1 = _mm512_test_epi32_mask(_mm512_load_si512((const __m512i *)(b.zero + j0 + 16)), _mm512_set1_epi32(-1));
    for (int32_t l = 0; l < w->planes; l++) {
        __m512i a0[R], a1[R];
        for (int32_t r = 0; r < R; r++) a0[r] = a1[r] = _mm512_setzero_si512();
        if (w->blockActive[l * w->rowBlocks + rb]) {
            const int32_t *wq = (const int32_t *)(w->weights + ((size_t)(l * w->rowBlocks + rb) * w->quads) * R * 4);
            const uint8_t *act = b.acts + (size_t)j0 * 4;
            for (int32_t q = 0; q < w->quads; q++, wq += R, act += CH * 4) {
                const __m512i x0 = _mm512_load_si512((const __m512i *)act), x1 = _mm512_load_si512((const __m512i *)(act + 64));
                for (int32_t r = 0; r < R; r++) {
                    const __m512i wr = _mm512_set1_epi32(wq[r]);
                    a0[r] = _mm512_dpbusd_epi32(a0[r], x0, wr);
                    a1[r] = _mm512_dpbusd_epi32(a1[r], x1, wr);
                }
            }
        }
        for (int32_t r = 0; r < R; r++) {
            const int32_t o = rb * R + r;
            const __m512i rs = _mm512_set1_epi32((int32_t)((uint32_t)w->rowSums[l * padded + o] << 7));
            const __m512 s = _mm512_set1_ps(w->scales[l * padded + o]);
            t0[r] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(_mm512_mask_sub_epi32(a0[r], signed0, a0[r], rs)), t0[r]);
            t1[r] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(_mm512_mask_sub_epi32(a1[r], signed1, a1[r], rs)), t1[r]);
        }
    }
    const __m512 scale0 = _mm512_load_ps(b.scale + j0), scale1 = _mm512_load_ps(b.scale + j0 + 16), zero = _mm512_setzero_ps();
    const int32_t rows = w->rows - rb * R < R ? w->rows - rb * R : R;
    const __mmask16 lanes0 = n - j0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j0)) - 1);
    const __mmask16 lanes1 = n - j0 >= 32 ? (__mmask16)0xffff : n - j0 <= 16 ? 0 : (__mmask16)((1u << (n - j0 - 16)) - 1);
    for (int32_t r = 0; r < rows; r++) {
        const __m512 init = _mm512_set1_ps(bias ? bias[rb * R + r] : 0.0f);
        __m512 v0 = _mm512_fmadd_ps(t0[r], scale0, init), v1 = _mm512_fmadd_ps(t1[r], scale1, init);
        if (res) {
            const float *add = res + (int64_t)(rb * R + r) * ldy + j0;
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(lanes0, add));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(lanes1, add + 16));
        }
        if (relu) {
            v0 = _mm512_max_ps(v0, zero);
            v1 = _mm512_max_ps(v1, zero);
        }
        float *out = y + (int64_t)(rb * R + r) * ldy + j0;
        if (lanes1 == 0xffff) {
            // Full vectors (masked stores are slower on some CPUs).
            _mm512_storeu_ps(out, v0);
            _mm512_storeu_ps(out + 16, v1);
        } else {
            _mm512_mask_storeu_ps(out, lanes0, v0);
            _mm512_mask_storeu_ps(out + 16, lanes1, v1);
        }
    }
}

BP_DOT8_TARGET static void chunk_fast(const bp_dotconv8_weights *w, chunk_buffers b, int32_t n, const float *bias, const float *res, float *y,
                                      int64_t ldy, int relu) {
    for (int32_t rb = 0; rb < w->rowBlocks; rb++)
        for (int32_t j0 = 0; j0 < n; j0 += 32) block_fast(w, b, rb, j0, n, bias, res, y, ldy, relu);
}
#endif

void bp_dotconv8_forward(int fast, const bp_dotconv8_weights *w, int32_t channels, int32_t height, int32_t width, int32_t strideH, int32_t strideW,
                         int32_t outHeight, int32_t outWidth, const float *x, const float *bias, const float *residual, float *y,
                         int32_t position0, int32_t position1, int relu, void *scratch) {
    (void)channels;
    fast = fast && bp_dotconv8_fast_available();
    const chunk_buffers b = buffers_of(w, scratch);
    const int64_t inSize = (int64_t)height * width, outSize = (int64_t)outHeight * outWidth;
    const int contiguous = strideH == 1 && strideW == 1 && outWidth == width;
    for (int32_t p0 = position0; p0 < position1; p0 += CH) {
        const int32_t n = position1 - p0 < CH ? position1 - p0 : CH;
        const float *src = x + p0;
        int64_t stride = inSize;
        if (!contiguous) {
            // A strided Conv: the chunk's input pixels gathered once, [entry][position] (channel by
            // channel: each reads a few input rows).
            int64_t pixel[CH];
            for (int32_t j = 0; j < n; j++) pixel[j] = (int64_t)((p0 + j) / outWidth * strideH) * width + (p0 + j) % outWidth * strideW;
            for (int32_t k = 0; k < w->reduction; k++) {
                const float *plane = x + k * inSize;
                float *to = b.gather + (size_t)k * CH;
                for (int32_t j = 0; j < n; j++) to[j] = plane[pixel[j]];
            }
            src = b.gather;
            stride = CH;
        }
#if BP_DOT8_X86
        if (fast) {
            quantize_fast(w, src, stride, n, b);
            chunk_fast(w, b, n, bias, residual ? residual + p0 : NULL, y + p0, outSize, relu);
            continue;
        }
#endif
        quantize_portable(w, src, stride, n, b);
        chunk_portable(w, b, n, bias, residual ? residual + p0 : NULL, y + p0, outSize, relu);
    }
}
