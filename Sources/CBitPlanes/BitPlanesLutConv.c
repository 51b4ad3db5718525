// The lookup-table convolution (bp_lutconv, see CBitPlanes.h): binarized weights times float
// activations over many output positions, without expanding the weights.
//
// Why: a convolution reuses every weight across all output positions, so the float GEMM on
// expanded weights is compute bound (one FMA per weight, position). Here the reduction axis is
// cut into groups of 4 rows; for a block of 32 positions, each group gets a table of its 16
// signed sums (+-x0 +-x1 +-x2 +-x3, per position), and a weight row's level adds one table
// entry (32 floats, two 512-bit loads) per group instead of 4 FMAs per position: 4 weights x 32
// positions per lookup. Per level the stored codes are:
//   - "whole" codes: the 4 entries are all active at that level: one lookup of their signs;
//   - "half" code pairs: some of the 4 are inactive: T[a] + T[b] with the inactive entries +
//     in a and - in b cancels them, so the pair counts half (the kernel scales it by 1/2);
//   - nothing when none of the 4 is active (sparse higher levels cost nothing there).
// Tables for up to `BP_LUTCONV_PASS_CHUNKS` chunks of 16 groups (32 KiB each) are built per
// block and pass, so they stay in L2; longer reductions take several passes over the output.
//
// Float results: the sums are taken in a different order from the float GEMM on expanded
// weights (table entries first, then per level, then scaled), so they agree within float
// rounding, not bit for bit. The AVX-512 and portable variants do the same operations in the
// same order and give bit-identical results.
#include "CBitPlanes.h"
#include "BitPlanesConvGather.h"

#include <stdint.h>
#include <string.h>

// Both variants must round alike: no fused multiply-adds where the source has a product and a sum.
#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__)
#include <immintrin.h>
#define BP_LUTCONV_X86 1
#define BP_LUTCONV_TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))
#else
#define BP_LUTCONV_X86 0
#endif

enum { COLS = BP_LUTCONV_COLUMNS, V = COLS / 16, CHAINS = 4, CODES = 256, CHUNK_FLOATS = CODES * COLS };

size_t bp_lutconv_scratch_floats(const bp_lutconv_weights *w) {
    const int32_t passChunks = w->chunks < BP_LUTCONV_PASS_CHUNKS ? w->chunks : BP_LUTCONV_PASS_CHUNKS;
    // Tables (64-byte aligned: a table entry split over cache lines costs a second access),
    // four gathered rows, then the block's input coordinates (2 x COLS int32).
    return (size_t)passChunks * CHUNK_FLOATS + 4 * COLS + 2 * COLS + 16;
}

/// The 16 signed sums of 4 rows: table[i] = sum_j (bit j of i ? +x_j : -x_j), pairs first.
static void build_table_portable(const float *x, float *table) {
    const float *x0 = x, *x1 = x + COLS, *x2 = x + 2 * COLS, *x3 = x + 3 * COLS;
    float p[4][COLS], q[4][COLS];
    for (int n = 0; n < COLS; n++) {
        p[0][n] = -x0[n] - x1[n]; p[1][n] = x0[n] - x1[n]; p[2][n] = x1[n] - x0[n]; p[3][n] = x0[n] + x1[n];
        q[0][n] = -x2[n] - x3[n]; q[1][n] = x2[n] - x3[n]; q[2][n] = x3[n] - x2[n]; q[3][n] = x2[n] + x3[n];
    }
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < 4; i++)
            for (int n = 0; n < COLS; n++) table[(i + 4 * j) * COLS + n] = p[i][n] + q[j][n];
}

/// One row's result over a pass, portable: the same adds in the same order as the AVX-512 body
/// (`CHAINS` codes in flight, code i of a list into sum i % CHAINS).
static void row_pass_portable(const bp_lutconv_weights *w, int32_t row, int32_t chunk0, int32_t chunk1, const float *tables, float *y,
                              int32_t count, int first, float bias) {
    float acc[COLS];
    for (int n = 0; n < COLS; n++) acc[n] = first ? bias : n < count ? y[n] : 0.0f;
    for (int32_t l = 0; l < w->levels; l++) {
        float whole[CHAINS][COLS], half[CHAINS][COLS];
        memset(whole, 0, sizeof whole);
        memset(half, 0, sizeof half);
        for (int32_t ch = chunk0; ch < chunk1; ch++) {
            const int64_t li = ((int64_t)row * w->levels + l) * w->chunks + ch;
            const float *t = tables + (int64_t)(ch - chunk0) * CHUNK_FLOATS;
            const int32_t s = w->listStart[li], h = w->halfStart[li], e = w->listStart[li + 1];
            for (int32_t i = s; i < h; i++)
                for (int n = 0; n < COLS; n++) whole[(i - s) % CHAINS][n] += t[w->codes[i] * COLS + n];
            for (int32_t i = h; i < e; i++)
                for (int n = 0; n < COLS; n++) half[(i - h) % CHAINS][n] += t[w->codes[i] * COLS + n];
        }
        const float sw = w->scales[(int64_t)row * w->levels + l], sh = 0.5f * sw;
        for (int n = 0; n < COLS; n++) {
            const float ws = (whole[0][n] + whole[1][n]) + (whole[2][n] + whole[3][n]);
            const float hs = (half[0][n] + half[1][n]) + (half[2][n] + half[3][n]);
            acc[n] = acc[n] + sw * ws + sh * hs;
        }
    }
    for (int32_t n = 0; n < count; n++) y[n] = acc[n];
}

#if BP_LUTCONV_X86
BP_LUTCONV_TARGET static void build_table_avx512(const float *x, float *table) {
    for (int v = 0; v < COLS; v += 16) {
        const __m512 x0 = _mm512_loadu_ps(x + v), x1 = _mm512_loadu_ps(x + COLS + v);
        const __m512 x2 = _mm512_loadu_ps(x + 2 * COLS + v), x3 = _mm512_loadu_ps(x + 3 * COLS + v);
        const __m512 zero = _mm512_setzero_ps();
        const __m512 p[4] = {_mm512_sub_ps(_mm512_sub_ps(zero, x0), x1), _mm512_sub_ps(x0, x1), _mm512_sub_ps(x1, x0), _mm512_add_ps(x0, x1)};
        const __m512 q[4] = {_mm512_sub_ps(_mm512_sub_ps(zero, x2), x3), _mm512_sub_ps(x2, x3), _mm512_sub_ps(x3, x2), _mm512_add_ps(x2, x3)};
        for (int j = 0; j < 4; j++)
            for (int i = 0; i < 4; i++) _mm512_storeu_ps(table + (i + 4 * j) * COLS + v, _mm512_add_ps(p[i], q[j]));
    }
}

/// Adds the table entries of codes[from ..< to] into sums[i % CHAINS] (V vectors each).
BP_LUTCONV_TARGET static inline __attribute__((always_inline)) void add_codes_avx512(const float *t, const uint8_t *codes, int32_t from, int32_t to, __m512 sums[CHAINS][V]) {
    int32_t i = from;
    for (; i + CHAINS <= to; i += CHAINS)
        for (int c = 0; c < CHAINS; c++) {
            const float *e = t + codes[i + c] * COLS;
            for (int v = 0; v < V; v++) sums[c][v] = _mm512_add_ps(sums[c][v], _mm512_loadu_ps(e + 16 * v));
        }
    // The last 0 to 3 codes, with constant sum indices (a variable one would keep the sums in memory).
    for (int c = 0; c < CHAINS - 1; c++)
        if (i + c < to) {
            const float *e = t + codes[i + c] * COLS;
            for (int v = 0; v < V; v++) sums[c][v] = _mm512_add_ps(sums[c][v], _mm512_loadu_ps(e + 16 * v));
        }
}

BP_LUTCONV_TARGET static void row_pass_avx512(const bp_lutconv_weights *w, int32_t row, int32_t chunk0, int32_t chunk1, const float *tables,
                                              float *y, int32_t count, int first, float bias) {
    __mmask16 mask[V];
    __m512 acc[V];
    for (int v = 0; v < V; v++) {
        const int32_t n = count - 16 * v;
        mask[v] = (__mmask16)(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1);
        acc[v] = first ? _mm512_set1_ps(bias) : _mm512_maskz_loadu_ps(mask[v], y + 16 * v);
    }
    for (int32_t l = 0; l < w->levels; l++) {
        __m512 whole[CHAINS][V], half[CHAINS][V];
        for (int c = 0; c < CHAINS; c++)
            for (int v = 0; v < V; v++) whole[c][v] = half[c][v] = _mm512_setzero_ps();
        for (int32_t ch = chunk0; ch < chunk1; ch++) {
            const int64_t li = ((int64_t)row * w->levels + l) * w->chunks + ch;
            const float *t = tables + (int64_t)(ch - chunk0) * CHUNK_FLOATS;
            add_codes_avx512(t, w->codes, w->listStart[li], w->halfStart[li], whole);
            add_codes_avx512(t, w->codes, w->halfStart[li], w->listStart[li + 1], half);
        }
        const float swf = w->scales[(int64_t)row * w->levels + l];
        const __m512 sw = _mm512_set1_ps(swf), sh = _mm512_set1_ps(0.5f * swf);
        for (int v = 0; v < V; v++) {
            const __m512 ws = _mm512_add_ps(_mm512_add_ps(whole[0][v], whole[1][v]), _mm512_add_ps(whole[2][v], whole[3][v]));
            const __m512 hs = _mm512_add_ps(_mm512_add_ps(half[0][v], half[1][v]), _mm512_add_ps(half[2][v], half[3][v]));
            acc[v] = _mm512_add_ps(_mm512_add_ps(acc[v], _mm512_mul_ps(sw, ws)), _mm512_mul_ps(sh, hs));
        }
    }
    for (int v = 0; v < V; v++) _mm512_mask_storeu_ps(y + 16 * v, mask[v], acc[v]);
}
#endif

void bp_lutconv_forward(int isa, const bp_lutconv_weights *w, const bp_lutconv_geometry *g, const float *x, const float *bias, float *y,
                        int32_t block0, int32_t block1, float *scratch) {
#if BP_LUTCONV_X86
    const int fast = isa == BP_ISA_AVX512;
#else
    const int fast = 0;
    (void)isa;
#endif
    const int32_t positions = g->outHeight * g->outWidth;
    const int32_t passChunks = w->chunks < BP_LUTCONV_PASS_CHUNKS ? w->chunks : BP_LUTCONV_PASS_CHUNKS;
    float *tables = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    float *rows4 = tables + (size_t)passChunks * CHUNK_FLOATS;
    int32_t *ih0 = (int32_t *)(rows4 + 4 * COLS), *iw0 = ih0 + COLS;
    for (int32_t b = block0; b < block1; b++) {
        const int32_t p0 = b * COLS, count = positions - p0 < COLS ? positions - p0 : COLS;
        bp_conv_block_coordinates(g, p0, count, ih0, iw0);
        for (int32_t c0 = 0; c0 < w->chunks; c0 += passChunks) {
            const int32_t c1 = c0 + passChunks < w->chunks ? c0 + passChunks : w->chunks;
            const int64_t g1 = ((int64_t)w->reduction + 3) / 4;
            for (int64_t grp = (int64_t)c0 * 16; grp < (int64_t)c1 * 16 && grp < g1; grp++) {
                float *table = tables + (grp - (int64_t)c0 * 16) * 16 * COLS;
                bp_conv_gather_group(g, x, grp, w->reduction, p0, count, COLS, ih0, iw0, rows4);
#if BP_LUTCONV_X86
                if (fast) build_table_avx512(rows4, table); else
#endif
                build_table_portable(rows4, table);
            }
            for (int32_t r = 0; r < w->rows; r++) {
                float *yr = y + (int64_t)r * positions + p0;
                const float b0 = bias ? bias[r] : 0.0f;
#if BP_LUTCONV_X86
                if (fast) row_pass_avx512(w, r, c0, c1, tables, yr, count, c0 == 0, b0); else
#endif
                row_pass_portable(w, r, c0, c1, tables, yr, count, c0 == 0, b0);
            }
        }
    }
}
