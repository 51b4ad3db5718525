// fk_conv_channels: a 2-D convolution on NCHW activations vectorised over OUTPUT CHANNELS.
//
// fk_gemm_rows vectorises over output pixels: a plane of 7x7, 13x13 or 14x14 fills 64-column
// strips only in part, and the activations are packed on every call. Here the roles swap:
// out^T[pixel, co] = sum_k in[k at pixel] * W[k, co], with W packed once (fk_conv_channels_pack)
// as blocks of 16, 32 or 48 output channels, each [k][block] (zero lanes past the last channel).
// A register tile is up to 8 output pixels of one output row by up to 3 zmm of channels (24
// accumulators); per reduction step it loads the block's weight vectors and feeds each pixel's
// input value as a broadcast memory operand, read straight from the (zero-padded) NCHW input at
// precomputed tap offsets: no im2col, no activation packing, and plane sizes cost nothing but a
// shorter last tile per row. Output rows run in bands whose input (every channel) fits in L2;
// a band is copied with its zero padding into a per-thread buffer first unless the input can
// be read in place (no padding read, and 1x1 or a small input): at large planes and stride 2
// the tiles would otherwise pull each channel's rows from memory on hundreds of streams. The
// finished tile is transposed in registers (8 pixels x 16 channels -> 16 rows of 8) and stored
// into the NCHW output with bias and Relu applied in registers; other activations run over each
// finished stretch of output rows while it is in cache (the elementwise kernel's code and error
// bounds).
#include "CFloatKernels.h"

// Vectors of 16 channels in the block that starts with `vectors` left: three a block, but four
// left make two blocks of two rather than three and one (a 16-channel block feeds only 8 FMAs
// per step, a 32-channel one 16). The packing and the kernel walk blocks the same way.
static inline int block_vectors(long vectors) { return vectors == 4 ? 2 : vectors >= 3 ? 3 : (int)vectors; }

long fk_conv_channels_packed_floats(long m, long k) { return (m + 15) / 16 * 16 * k; }

void fk_conv_channels_pack(const float *weights, long m, long k, float *packed) {
    for (long co0 = 0; co0 < m;) {
        const long width = 16 * block_vectors((m - co0 + 15) / 16);
        for (long p = 0; p < k; p++) {
            float *dst = packed + co0 * k + p * width;
            for (long c = 0; c < width; c++) dst[c] = co0 + c < m ? weights[(co0 + c) * k + p] : 0.0f;
        }
        co0 += width;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PIX 8

// The address 8 floats before `p`, only written through stores whose first 8 lanes are masked off.
static inline float *eight_before(float *p) { return (float *)((uintptr_t)p - 8 * sizeof(float)); }

#pragma clang attribute push(__attribute__((target("avx512f,fma"))), apply_to = function)

// Stores one 8-pixel x 16-channel accumulator tile (a[p] = pixel p, lane = channel) into
// out[c * ldo + p] for channels c < channels and pixels p < pixels.
static inline __attribute__((always_inline)) void store_transposed(const __m512 a[PIX], float *out, long ldo, int channels,
                                                                  unsigned pixels) {
    // The high 256 bits are stored from 8 floats before their destination with only the high
    // lanes enabled (AVX-512 F has no 256-bit masked store; masked-out lanes never fault).
    const __mmask16 low = (__mmask16)pixels, high = (__mmask16)(pixels << 8);
    // Within each 128-bit lane L (channels 4L..4L+3): after the unpacks and shuffles, u[c]
    // holds pixels 0-3 of channel 4L + c and u[4 + c] pixels 4-7.
    __m512 t0 = _mm512_unpacklo_ps(a[0], a[1]), t1 = _mm512_unpackhi_ps(a[0], a[1]);
    __m512 t2 = _mm512_unpacklo_ps(a[2], a[3]), t3 = _mm512_unpackhi_ps(a[2], a[3]);
    __m512 t4 = _mm512_unpacklo_ps(a[4], a[5]), t5 = _mm512_unpackhi_ps(a[4], a[5]);
    __m512 t6 = _mm512_unpacklo_ps(a[6], a[7]), t7 = _mm512_unpackhi_ps(a[6], a[7]);
    __m512 u[8];
    u[0] = _mm512_shuffle_ps(t0, t2, 0x44);
    u[1] = _mm512_shuffle_ps(t0, t2, 0xEE);
    u[2] = _mm512_shuffle_ps(t1, t3, 0x44);
    u[3] = _mm512_shuffle_ps(t1, t3, 0xEE);
    u[4] = _mm512_shuffle_ps(t4, t6, 0x44);
    u[5] = _mm512_shuffle_ps(t4, t6, 0xEE);
    u[6] = _mm512_shuffle_ps(t5, t7, 0x44);
    u[7] = _mm512_shuffle_ps(t5, t7, 0xEE);
    // Lanes (0 of u[c], 0 of u[4+c], 1 of u[c], 1 of u[4+c]): channel c in the low 256 bits,
    // channel 4 + c in the high; lanes 2 and 3 likewise give channels 8 + c and 12 + c.
    const __m512i lo = _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
    const __m512i hi = _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 27, 26, 25, 24, 11, 10, 9, 8);
    for (int c = 0; c < 4; c++) {
        __m512 r0 = _mm512_permutex2var_ps(u[c], lo, u[4 + c]);
        __m512 r1 = _mm512_permutex2var_ps(u[c], hi, u[4 + c]);
        if (c < channels) _mm512_mask_storeu_ps(out + c * ldo, low, r0);
        if (4 + c < channels) _mm512_mask_storeu_ps(eight_before(out + (4 + c) * ldo), high, r0);
        if (8 + c < channels) _mm512_mask_storeu_ps(out + (8 + c) * ldo, low, r1);
        if (12 + c < channels) _mm512_mask_storeu_ps(eight_before(out + (12 + c) * ldo), high, r1);
    }
}

// One tile: P pixels (input columns src + p * sw) by NV vectors of channels, the whole
// reduction, then bias, Relu and the transposed store. SW 0 means a run-time stride `sw`.
static inline __attribute__((always_inline)) void tile(const int P, const int NV, const long SW, long sw, const float *src,
                                                      const long *offsets, long k, const float *w, const float *bias,
                                                      int relu, float *out, long ldo, long channels) {
    const long s = SW ? SW : sw;
    __m512 acc[3][PIX];
    for (int j = 0; j < NV; j++)
        for (int p = 0; p < PIX; p++) acc[j][p] = _mm512_setzero_ps();
    for (long q = 0; q < k; q++) {
        const float *x = src + offsets[q];
        __m512 wv[3];
        for (int j = 0; j < NV; j++) wv[j] = _mm512_load_ps(w + q * 16 * NV + 16 * j);
        for (int p = 0; p < P; p++) {
            __m512 xv = _mm512_set1_ps(x[p * s]);
            for (int j = 0; j < NV; j++) acc[j][p] = _mm512_fmadd_ps(xv, wv[j], acc[j][p]);
        }
    }
    const unsigned pixels = (1u << P) - 1;
    for (int j = 0; j < NV; j++) {
        long left = channels - 16 * j;
        if (left <= 0) break;
        __mmask16 lanes = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __m512 b = bias ? _mm512_maskz_loadu_ps(lanes, bias + 16 * j) : _mm512_setzero_ps();
        for (int p = 0; p < PIX; p++) {
            acc[j][p] = _mm512_add_ps(acc[j][p], b);
            if (relu) acc[j][p] = _mm512_max_ps(acc[j][p], _mm512_setzero_ps());
        }
        store_transposed(acc[j], out + 16 * j * ldo, ldo, left >= 16 ? 16 : (int)left, pixels);
    }
}

#define TILE_CASE(P, NV, SW) \
    case (P) * 16 + (NV) * 4 + ((SW) == 0 ? 0 : (SW)): \
        tile(P, NV, SW, sw, src, offsets, k, w, bias, relu, out, ldo, channels); \
        break;
#define TILE_P(NV, SW) \
    TILE_CASE(1, NV, SW) TILE_CASE(2, NV, SW) TILE_CASE(3, NV, SW) TILE_CASE(4, NV, SW) \
    TILE_CASE(5, NV, SW) TILE_CASE(6, NV, SW) TILE_CASE(7, NV, SW) TILE_CASE(8, NV, SW)
#define TILE_NV(SW) TILE_P(1, SW) TILE_P(2, SW) TILE_P(3, SW)

static void tile_dispatch(int P, int nv, long sw, const float *src, const long *offsets, long k, const float *w,
                          const float *bias, int relu, float *out, long ldo, long channels) {
    int key = P * 16 + nv * 4 + (sw == 1 ? 1 : sw == 2 ? 2 : 0);
    switch (key) {
        TILE_NV(1) TILE_NV(2) TILE_NV(0)
    default: break;
    }
}

// Output columns processed between activation passes: a stretch of this many pixels per
// channel of a block stays in L1/L2 until the activation reads it back.
#define STRETCH 256
// Bytes of input a band of output rows reads (all its channels): the band stays in L2 while
// every channel block sweeps it.
#define BAND_BYTES (192 * 1024)

// Per-thread buffers kept for the thread's life (the session's workers live as long as the
// process): a padded band of the input and the tap offsets.
static float *band_buffer(long floats) {
    static _Thread_local float *buffer = 0;
    static _Thread_local long capacity = 0;
    if (floats > capacity) {
        free(buffer);
        capacity = floats + floats / 4;
        buffer = (float *)aligned_alloc(64, (size_t)((capacity * 4 + 63) / 64 * 64));
    }
    return buffer;
}

static long *offset_buffer(long count) {
    static _Thread_local long *buffer = 0;
    static _Thread_local long capacity = 0;
    if (count > capacity) {
        free(buffer);
        capacity = count;
        buffer = (long *)malloc((size_t)capacity * sizeof(long));
    }
    return buffer;
}

// Copies input rows [iy0, iy0 + rows) of every channel, columns [-pw, wp - pw), into
// dst[c][r][x] with zeros outside the input.
static void fill_band(const fk_conv2d_source *g, long iy0, long rows, long wp, long plane, float *dst) {
    const long x0 = g->pw < wp ? g->pw : wp;
    const long count = g->iw < wp - x0 ? g->iw : wp - x0;
    for (long c = 0; c < g->channels; c++) {
        for (long r = 0; r < rows; r++) {
            float *d = dst + c * plane + r * wp;
            long iy = iy0 + r;
            if (iy < 0 || iy >= g->ih || count <= 0) {
                memset(d, 0, (size_t)wp * sizeof(float));
                continue;
            }
            memset(d, 0, (size_t)x0 * sizeof(float));
            memcpy(d + x0, g->input + (c * g->ih + iy) * g->iw, (size_t)count * sizeof(float));
            memset(d + x0 + count, 0, (size_t)(wp - x0 - count) * sizeof(float));
        }
    }
}

void fk_conv_channels(const fk_conv2d_source *g, long oh, const float *packed, long m, long r0, long r1, const float *bias,
                      int act, float p0, float p1, float *out) {
    if (r1 <= r0 || m <= 0 || g->ow <= 0) return;
    const int relu = act == FK_ACT_RELU;
    const int tileAct = act != FK_ACT_NONE && !relu;
    const long ow = g->ow, ldo = oh * ow;
    const long k = g->channels * g->kh * g->kw;
    // Columns and rows the convolution reads, counted from the first padded one.
    const long wp = (ow - 1) * g->sw + (g->kw - 1) * g->dw + 1;
    const long hp = (oh - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    // The input is read in place when no read falls in the padding and it is 1x1 (one line
    // per channel a tile) or small enough to stay in L2; otherwise each band is copied first.
    const int inPlace = g->ph == 0 && g->pw == 0 && wp <= g->iw && hp <= g->ih &&
                        ((g->kh == 1 && g->kw == 1) || g->channels * g->ih * g->iw * 4 <= 512 * 1024);
    const long pitch = inPlace ? g->iw : wp;
    long bandRows = BAND_BYTES / (g->channels * g->sh * pitch * 4 + 1);
    if (bandRows < 1) bandRows = 1;
    const long bandInputRows = (bandRows - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    const long plane = inPlace ? g->ih * g->iw : bandInputRows * wp;
    long *offsets = offset_buffer(k);
    for (long c = 0, q = 0; c < g->channels; c++)
        for (long ky = 0; ky < g->kh; ky++)
            for (long kx = 0; kx < g->kw; kx++) offsets[q++] = c * plane + ky * g->dh * pitch + kx * g->dw;
    float *band = inPlace ? 0 : band_buffer(g->channels * plane);
    for (long y0 = r0; y0 < r1; y0 += bandRows) {
        const long y1 = r1 - y0 < bandRows ? r1 : y0 + bandRows;
        const float *base;
        if (inPlace) {
            base = g->input + y0 * g->sh * pitch;
        } else {
            fill_band(g, y0 * g->sh - g->ph, (y1 - 1 - y0) * g->sh + (g->kh - 1) * g->dh + 1, wp, plane, band);
            base = band;
        }
        for (long co0 = 0; co0 < m;) {
            const int nv = block_vectors((m - co0 + 15) / 16);
            const long width = 16 * nv;
            const long channels = m - co0 < width ? m - co0 : width;
            const float *w = packed + co0 * k;
            const float *b = bias ? bias + co0 : 0;
            for (long oy = y0; oy < y1; oy++) {
                const float *row = base + (oy - y0) * g->sh * pitch;
                for (long x0 = 0; x0 < ow; x0 += STRETCH) {
                    const long x1 = ow - x0 < STRETCH ? ow : x0 + STRETCH;
                    for (long ox = x0; ox < x1; ox += PIX) {
                        const int P = (int)(x1 - ox < PIX ? x1 - ox : PIX);
                        tile_dispatch(P, nv, g->sw, row + ox * g->sw, offsets, k, w, b, relu, out + co0 * ldo + oy * ow + ox, ldo,
                                      channels);
                    }
                    if (tileAct)
                        for (long c = 0; c < channels; c++) {
                            float *o = out + (co0 + c) * ldo + oy * ow + x0;
                            fk_ew_unary(-1, act, p0, p1, o, o, x1 - x0);
                        }
                }
            }
            co0 += width;
        }
    }
}

#pragma clang attribute pop

#else

void fk_conv_channels(const fk_conv2d_source *g, long oh, const float *packed, long m, long r0, long r1, const float *bias,
                      int act, float p0, float p1, float *out) {
    (void)g; (void)oh; (void)packed; (void)m; (void)r0; (void)r1; (void)bias; (void)act; (void)p0; (void)p1; (void)out;
}

#endif
