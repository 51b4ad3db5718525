// The int8 lookup-table convolution (bp_lutconv8, see CBitPlanes.h): binarized weights times
// float activations quantized per table, the technique of T-MAC / bitnet.cpp written for convs.
//
// Why: the float-table convolution (BitPlanesLutConv.c) reads each table entry from memory as
// 32 floats; here a table is 16 int8 sums, so one 512-bit register holds the tables of 4 groups
// of 4 reduction entries for one output position, and one byte permute (vpermb) looks up 16 rows
// x 4 groups at once: 64 lookups of 4 weights each. One vpdpbusd against a vector of ones then
// adds each row's 4 lookups into its int32 sum. So 256 weight x activation products cost two
// instructions, against 16 fused multiply-adds for the float GEMM.
//
// Activations: per output position and block of 16 quads (256 reduction entries), the table
// scale is s = m / 127 where m is the largest sum of |x| over 4 entries in the block, and an entry
// is round-to-nearest-even(T * 127 / m) with T the float signed sum: |entry| <= 127. Entries of
// opposite codes are exact negations (T[15 - c] = -T[c] in float, and rounding is symmetric).
// This is lossy (about 7 bits per table entry), hence a named opt-in in the runtime.
//
// Weights: per 16-row tile, plane and quad, 32 bytes of nibble codes (byte k: entry 2k low,
// 2k + 1 high; entry e = 4 * row + group in quad). A plane with one code set per quad adds
// sum_j sign_j x_j of each group; a plane with two (a level where some entries are inactive)
// adds T[a] + T[b], where inactive entries are + in one and - in the other and cancel, at half
// the level's scale (the Swift layout stores the halved scale). Rows are sorted by how many
// levels they have and a tile runs only the planes some row of it has (a zero-scale plane adds
// exactly nothing, so skipping it changes no bit). Two-set planes are held compact (activity
// bits nested in the level below, signs of active entries) and expanded into their two code sets
// once per tile and block of positions (`expand_tile`): pdep per 64-bit word.
//
// Exactness: the int32 sums are exact. The float part (table quantization, then per block
// y += float(sum) * (row scale * table scale)) does the same operations in the same order in the
// AVX-512 (VBMI, VNNI) and the portable bodies, so both give bit-identical results.
#include "CBitPlanes.h"
#include "BitStream.h"
#include "BitPlanesConvGather.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__)
#include <immintrin.h>
#define BP_LUT8_X86 1
#define BP_LUT8_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni")))
#else
#define BP_LUT8_X86 0
#endif

enum {
    TILE = BP_LUTCONV8_ROWS,          // rows per tile (16 int32 lanes)
    KB = BP_LUTCONV8_BLOCK_QUADS,     // quads per table-scale block
    PG = BP_LUTCONV8_POSITIONS,       // positions per register tile
    GATHER = 32,                      // positions per gather
    TABLE_BUDGET = 256 * 1024,        // table bytes per block of positions (L2)
};

int bp_lutconv8_fast_available(void) {
#if BP_LUT8_X86
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi") &&
           __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("bmi2");
#else
    return 0;
#endif
}

int32_t bp_lutconv8_block_positions(const bp_lutconv8_weights *w) {
    // Compact weights with per-entry levels expand each tile once per block: larger blocks (and
    // at least 64 positions, so a 7x7 map is one block) amortize that over more positions.
    int expands = 0;
    for (int32_t l = 0; l < w->planes; l++) expands |= !w->codes && w->halves[l] == 2;
    int64_t p = (expands ? 2 : 1) * (int64_t)TABLE_BUDGET / ((int64_t)w->quads * 64);
    p = p / GATHER * GATHER;
    if (p < (expands ? 2 : 1) * GATHER) p = (expands ? 2 : 1) * GATHER;
    if (p > 512) p = 512;
    return (int32_t)p;
}

static int32_t kblocks_of(const bp_lutconv8_weights *w) { return (w->quads + KB - 1) / KB; }

/// Bytes of one code set of one quad as the kernel reads it: 64 index bytes when the weights
/// hold their codes expanded as vpermb indices (`indexCodes`), else 32 bytes of nibbles.
static inline int32_t set_bytes(const bp_lutconv8_weights *w) { return w->codes && w->indexCodes ? 64 : 32; }

/// Code of entry e (0 .. 63) of a code set in either form.
static inline int code_of(const uint8_t *c, int e, int32_t setBytes) { return setBytes == 64 ? c[e] & 15 : (c[e >> 1] >> ((e & 1) * 4)) & 15; }

size_t bp_lutconv8_scratch_bytes(const bp_lutconv8_weights *w) {
    const size_t pb = (size_t)bp_lutconv8_block_positions(w);
    return 64 + (size_t)w->quads * pb * 64       // tables
           + pb * (size_t)kblocks_of(w) * 4      // table scales
           + (size_t)KB * 16 * GATHER * 4        // gathered rows of one block of quads
           + 2 * GATHER * 4                      // coordinates
           + (size_t)TILE * PG * 4 + 64          // output tile
           + (size_t)w->quads * w->codeSets * 32 + 64  // one tile's expanded codes
           + (size_t)w->quads * 4 * 8;           // one level's activity words
}

typedef struct {
    int8_t *tables;   // [quad][pb][64]
    float *scales;    // [pb][kblocks]
    float *rows;      // [KB * 4 groups][4][GATHER]
    int32_t *ih0, *iw0;
    float *tile;      // [PG][TILE]
    uint8_t *codes;   // one tile's codes [plane][quad][halves][32]
    uint64_t *act;    // [quad][4] activity of the last level expanded
    int32_t pb, kblocks;
} scratch_layout;

static scratch_layout layout(const bp_lutconv8_weights *w, void *scratch) {
    scratch_layout s;
    s.pb = bp_lutconv8_block_positions(w);
    s.kblocks = kblocks_of(w);
    uint8_t *b = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    s.tables = (int8_t *)b;
    b += (size_t)w->quads * (size_t)s.pb * 64;
    s.scales = (float *)b;
    b += (size_t)s.pb * (size_t)s.kblocks * 4;
    s.rows = (float *)b;
    b += (size_t)KB * 16 * GATHER * 4;
    s.ih0 = (int32_t *)b;
    s.iw0 = s.ih0 + GATHER;
    b += 2 * GATHER * 4;
    s.tile = (float *)(((uintptr_t)b + 63) & ~(uintptr_t)63);
    b = (uint8_t *)(s.tile + (size_t)TILE * PG);
    s.codes = (uint8_t *)(((uintptr_t)b + 63) & ~(uintptr_t)63);
    s.act = (uint64_t *)(s.codes + (size_t)w->quads * w->codeSets * 32);
    return s;
}



/// Row scales of tile rt, plane pl: held per tile (or one vector for every tile), or with
/// `maskScales` one vector for every tile whose lanes are zeroed for the rows without a one-set
/// plane's level (into `buf`): the same values the per-tile vectors would hold.
static inline const float *row_scale_vector(const bp_lutconv8_weights *w, int32_t rt, int32_t pl, float *buf) {
    if (!w->maskScales) return w->scales + ((int64_t)rt * w->scaleTileStride + pl) * TILE;
    const float *v = w->scales + (int64_t)pl * TILE;
    if (w->halves[pl] == 2) return v;
    const uint32_t ra = w->rowActive[(int64_t)rt * w->planes + pl];
    for (int r = 0; r < TILE; r++) buf[r] = (ra >> r) & 1 ? v[r] : 0.0f;
    return buf;
}

/// Tile t's codes for the kernels: pre-expanded ones (`w->codes`) when the weights hold them; else
/// one-set planes read in place when the tile has no two-set plane (unless `copy`), else every
/// plane written to `codes` (`act`: quads * 4 words of scratch). All ways give the same bytes.
#define EXPAND_TILE_BODY(DEPOSIT, POPCOUNT)                                                                              \
    do {                                                                                                                 \
        if (w->codes) return w->codes + w->codeStart[t];                                                                 \
        const int32_t quads = w->quads, planes = w->tilePlanes[t];                                                      \
        const uint64_t *p = w->store + w->tileStart[t];                                                                  \
        int pairs = copy;                                                                                                \
        for (int32_t l = 0; l < planes; l++) pairs |= w->halves[l] == 2 || w->rowActive[(int64_t)t * w->planes + l] != 0xFFFF; \
        if (!pairs) return (const uint8_t *)p;                                                                           \
        uint8_t *out = codes;                                                                                            \
        for (int64_t i = 0; i < (int64_t)quads * 4; i++) act[i] = ~(uint64_t)0;                                          \
        for (int32_t l = 0; l < planes; l++) {                                                                           \
            if (w->halves[l] == 1) {                                                                                     \
                const uint32_t ra = w->rowActive[(int64_t)t * w->planes + l];                                            \
                for (int32_t q = 0; q < quads; q++)                                                                      \
                    for (int k = 0; k < 4; k++) {                                                                        \
                        uint64_t a = 0;                                                                                  \
                        for (int r = 0; r < 4; r++)                                                                      \
                            if ((ra >> (4 * k + r)) & 1) a |= (uint64_t)0xFFFF << (16 * r);                              \
                        act[q * 4 + k] = a;                                                                              \
                    }                                                                                                    \
                if (ra == 0xFFFF) {                                                                                      \
                    memcpy(out, p, (size_t)quads * 32);                                                                  \
                    p += (int64_t)quads * 4;                                                                             \
                } else {                                                                                                 \
                    /* Only the rows with the level are held: their codes deposited into their lanes. */                  \
                    int64_t pos = 0;                                                                                     \
                    uint64_t *c64 = (uint64_t *)(void *)out;                                                             \
                    for (int32_t i = 0; i < quads * 4; i++) {                                                            \
                        c64[i] = DEPOSIT(bp_stream_bits(p, pos), act[i]);                                                \
                        pos += POPCOUNT(act[i]);                                                                         \
                    }                                                                                                    \
                    p += (pos + 63) >> 6;                                                                                \
                }                                                                                                        \
                out += (size_t)quads * 32;                                                                               \
            } else {                                                                                                     \
                int64_t pos = 0;                                                                                         \
                /* Runs of L entries: one stored bit at each run's first entry, times 2^L - 1 fills the run. */          \
                const uint64_t fill = w->runLength >= 16 ? 0xFFFF : ((uint64_t)1 << w->runLength) - 1;                   \
                const uint64_t firsts = ~(uint64_t)0 / fill;                                                             \
                for (int32_t q = 0; q < quads; q++) {                                                                    \
                    uint64_t *a = (uint64_t *)(out + (size_t)q * 64), *b = (uint64_t *)(out + (size_t)q * 64 + 32);      \
                    for (int k = 0; k < 4; k++) {                                                                        \
                        const uint64_t parent = act[q * 4 + k];                                                          \
                        const uint64_t active = DEPOSIT(bp_stream_bits(p, pos), parent & firsts) * fill;                   \
                        pos += POPCOUNT(parent & firsts);                                                                \
                        const uint64_t sign = DEPOSIT(bp_stream_bits(p, pos), active);                                      \
                        pos += POPCOUNT(active);                                                                         \
                        act[q * 4 + k] = active;                                                                         \
                        a[k] = sign | ~active;                                                                           \
                        b[k] = sign;                                                                                     \
                    }                                                                                                    \
                }                                                                                                        \
                p += (pos + 63) >> 6;                                                                                    \
                out += (size_t)quads * 64;                                                                               \
            }                                                                                                            \
        }                                                                                                                \
        return codes;                                                                                                    \
    } while (0)

static const uint8_t *expand_tile_portable(const bp_lutconv8_weights *w, int32_t t, uint8_t *codes, uint64_t *act, int copy) {
    EXPAND_TILE_BODY(bp_deposit_portable, __builtin_popcountll);
}

/// Table scale of one position: m / 127 and the quantizing factor 127 / m (0 and 0 for m = 0).
static inline void scale_pair(float m, float *scale, float *inv) {
    *scale = m / 127.0f;
    *inv = m > 0.0f ? 127.0f / m : 0.0f;
}

/// One position's tables of a block of groups, portable: rows[(g * 4 + j) * GATHER + n].
/// rows[e]: entry e's inputs at the block's positions (a gathered row, or the input itself).
static void build_tables_portable(const float *const *rows, int32_t groups, int32_t n, int8_t *tables, int32_t pb, int32_t pl, float *scaleOut) {
    float m = 0.0f;
    for (int32_t g = 0; g < groups; g++) {
        const float *const *r = rows + 4 * g;
        const float a = (fabsf(r[0][n]) + fabsf(r[1][n])) + (fabsf(r[2][n]) + fabsf(r[3][n]));
        m = a > m ? a : m;
    }
    float scale, inv;
    scale_pair(m, &scale, &inv);
    *scaleOut = scale;
    for (int32_t g = 0; g < groups; g++) {
        const float *const *r = rows + 4 * g;
        const float x0 = r[0][n], x1 = r[1][n], x2 = r[2][n], x3 = r[3][n];
        const float p[4] = {-x0 - x1, x0 - x1, x1 - x0, x0 + x1};
        const float q[2] = {x3 - x2, x2 + x3};
        int8_t *t = tables + ((size_t)(g / 4) * pb + pl) * 64 + (g % 4) * 16;
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < 4; i++) {
                const int32_t e = (int32_t)nearbyintf((p[i] + q[j]) * inv);
                t[8 + 4 * j + i] = (int8_t)e;
                t[7 - 4 * j - i] = (int8_t)-e;
            }
    }
}

/// y tile rows [r0, r0 + rows) x positions [pl0, pl0 + count) of one register tile, portable.
static void tile_portable(const bp_lutconv8_weights *w, const scratch_layout *s, int32_t rt, const uint8_t *tc, int32_t pl0, float *acc) {
    for (int i = 0; i < PG * TILE; i++) acc[i] = 0.0f;
    const int32_t sb = set_bytes(w);
    int64_t planeStart = 0;
    for (int32_t pl = 0; pl < w->tilePlanes[rt]; pl++) {
        const int32_t halves = w->halves[pl];
        const uint8_t *cp = tc + planeStart;
        float rsbuf[TILE];
        const float *rs = row_scale_vector(w, rt, pl, rsbuf);
        for (int32_t kb = 0; kb < s->kblocks; kb++) {
            int32_t sums[PG][TILE];
            memset(sums, 0, sizeof sums);
            const int32_t q1 = (kb + 1) * KB < w->quads ? (kb + 1) * KB : w->quads;
            for (int32_t q = kb * KB; q < q1; q++)
                for (int32_t h = 0; h < halves; h++) {
                    const uint8_t *c = cp + ((int64_t)q * halves + h) * sb;
                    for (int p = 0; p < PG; p++) {
                        const int8_t *t = s->tables + ((size_t)q * s->pb + pl0 + p) * 64;
                        for (int r = 0; r < TILE; r++)
                            for (int gi = 0; gi < 4; gi++) sums[p][r] += t[16 * gi + code_of(c, 4 * r + gi, sb)];
                    }
                }
            for (int p = 0; p < PG; p++) {
                const float ts = s->scales[(size_t)(pl0 + p) * s->kblocks + kb];
                for (int r = 0; r < TILE; r++) acc[p * TILE + r] = acc[p * TILE + r] + (float)sums[p][r] * (rs[r] * ts);
            }
        }
        planeStart += (int64_t)w->quads * halves * sb;
    }
}

#if BP_LUT8_X86
/// 16 positions' tables of a block of groups: p/q sums across positions, quantized, then moved
/// from entry-major (one vector per entry) to position-major (16 bytes per position and group).
BP_LUT8_TARGET static void build_tables_avx512(const float *const *rows, int32_t groups, int32_t n0, int8_t *tables, int32_t pb, int32_t pl0,
                                               float *scaleOut, int32_t kblocks) {
    __m512 m = _mm512_setzero_ps();
    for (int32_t g = 0; g < groups; g++) {
        const float *const *r = rows + 4 * g;
        const __m512 a = _mm512_add_ps(_mm512_add_ps(_mm512_abs_ps(_mm512_loadu_ps(r[0] + n0)), _mm512_abs_ps(_mm512_loadu_ps(r[1] + n0))),
                                       _mm512_add_ps(_mm512_abs_ps(_mm512_loadu_ps(r[2] + n0)), _mm512_abs_ps(_mm512_loadu_ps(r[3] + n0))));
        m = _mm512_max_ps(a, m);
    }
    const __m512 scale = _mm512_div_ps(m, _mm512_set1_ps(127.0f));
    const __mmask16 positive = _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512 inv = _mm512_maskz_div_ps(positive, _mm512_set1_ps(127.0f), m);
    float sc[16];
    _mm512_storeu_ps(sc, scale);
    for (int n = 0; n < 16; n++) scaleOut[(size_t)n * kblocks] = sc[n];
    // packs_epi32 then packs_epi16 of the entries c, c+1, c+2, c+3 leave, in 128-bit lane l,
    // byte 4e + i = entry c + e at position 4l + i. vpermb then makes dword p the 4 entries of
    // position p (`forward`), or of the negated vector with the entries reversed (`reversed`:
    // entries 7 - c are -entries 8 + c).
    // fwd[4p + e] = 16 (p / 4) + 4 e + p mod 4, rev[4p + e] = 16 (p / 4) + 4 (3 - e) + p mod 4.
    static const uint8_t fwd[64] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 16, 20, 24, 28, 17, 21, 25, 29, 18, 22, 26, 30, 19, 23, 27, 31, 32, 36, 40, 44, 33, 37, 41, 45, 34, 38, 42, 46, 35, 39, 43, 47, 48, 52, 56, 60, 49, 53, 57, 61, 50, 54, 58, 62, 51, 55, 59, 63};
    static const uint8_t rev[64] = {12, 8, 4, 0, 13, 9, 5, 1, 14, 10, 6, 2, 15, 11, 7, 3, 28, 24, 20, 16, 29, 25, 21, 17, 30, 26, 22, 18, 31, 27, 23, 19, 44, 40, 36, 32, 45, 41, 37, 33, 46, 42, 38, 34, 47, 43, 39, 35, 60, 56, 52, 48, 61, 57, 53, 49, 62, 58, 54, 50, 63, 59, 55, 51};
    const __m512i forward = _mm512_loadu_si512(fwd), reversed = _mm512_loadu_si512(rev);
    for (int32_t g0 = 0; g0 < groups; g0 += 4) {
        __m512i o[4][4];  // o[group in quad][j], lane l: position 4l + j's 16 entries
        for (int gi = 0; gi < 4; gi++) {
            const float *const *r = rows + 4 * (g0 + gi);
            const __m512 x0 = _mm512_loadu_ps(r[0] + n0), x1 = _mm512_loadu_ps(r[1] + n0), x2 = _mm512_loadu_ps(r[2] + n0), x3 = _mm512_loadu_ps(r[3] + n0);
            const __m512 zero = _mm512_setzero_ps();
            const __m512 p[4] = {_mm512_sub_ps(_mm512_sub_ps(zero, x0), x1), _mm512_sub_ps(x0, x1), _mm512_sub_ps(x1, x0), _mm512_add_ps(x0, x1)};
            const __m512 q[2] = {_mm512_sub_ps(x3, x2), _mm512_add_ps(x2, x3)};
            __m512i v[8];  // entries 8 .. 15
            for (int j = 0; j < 2; j++)
                for (int i = 0; i < 4; i++) v[4 * j + i] = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_add_ps(p[i], q[j]), inv));
            const __m512i z2 = _mm512_packs_epi16(_mm512_packs_epi32(v[0], v[1]), _mm512_packs_epi32(v[2], v[3]));
            const __m512i z3 = _mm512_packs_epi16(_mm512_packs_epi32(v[4], v[5]), _mm512_packs_epi32(v[6], v[7]));
            const __m512i zero8 = _mm512_setzero_si512();
            const __m512i w0 = _mm512_permutexvar_epi8(reversed, _mm512_sub_epi8(zero8, z3));
            const __m512i w1 = _mm512_permutexvar_epi8(reversed, _mm512_sub_epi8(zero8, z2));
            const __m512i w2 = _mm512_permutexvar_epi8(forward, z2), w3 = _mm512_permutexvar_epi8(forward, z3);
            const __m512i t0 = _mm512_unpacklo_epi32(w0, w1), t1 = _mm512_unpackhi_epi32(w0, w1);
            const __m512i t2 = _mm512_unpacklo_epi32(w2, w3), t3 = _mm512_unpackhi_epi32(w2, w3);
            o[gi][0] = _mm512_unpacklo_epi64(t0, t2);
            o[gi][1] = _mm512_unpackhi_epi64(t0, t2);
            o[gi][2] = _mm512_unpacklo_epi64(t1, t3);
            o[gi][3] = _mm512_unpackhi_epi64(t1, t3);
        }
        // Position 4l + j's 64 bytes: lane l of o[0][j], o[1][j], o[2][j], o[3][j].
        int8_t *base = tables + ((size_t)(g0 / 4) * pb + pl0) * 64;
        for (int j = 0; j < 4; j++) {
            const __m512i a = _mm512_shuffle_i64x2(o[0][j], o[1][j], 0x44), b = _mm512_shuffle_i64x2(o[0][j], o[1][j], 0xEE);
            const __m512i c = _mm512_shuffle_i64x2(o[2][j], o[3][j], 0x44), d = _mm512_shuffle_i64x2(o[2][j], o[3][j], 0xEE);
            _mm512_store_si512(base + (size_t)j * 64, _mm512_shuffle_i64x2(a, c, 0x88));
            _mm512_store_si512(base + (size_t)(4 + j) * 64, _mm512_shuffle_i64x2(a, c, 0xDD));
            _mm512_store_si512(base + (size_t)(8 + j) * 64, _mm512_shuffle_i64x2(b, d, 0x88));
            _mm512_store_si512(base + (size_t)(12 + j) * 64, _mm512_shuffle_i64x2(b, d, 0xDD));
        }
    }
}

/// Byte indices for vpermb from 32 bytes of nibble codes: entry e -> code + 16 * (e % 4).
BP_LUT8_TARGET static inline __attribute__((always_inline)) __m512i unpack_codes(const uint8_t *c, __m512i offsets) {
    const __m512i v = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)c));
    const __m512i lo = _mm512_and_si512(v, _mm512_set1_epi16(0x000F));
    const __m512i hi = _mm512_slli_epi16(_mm512_and_si512(v, _mm512_set1_epi16(0x00F0)), 4);
    return _mm512_or_si512(_mm512_or_si512(lo, hi), offsets);
}

/// One code set's vpermb indices: loaded when held as indices (sb 64), else unpacked from nibbles.
BP_LUT8_TARGET static inline __attribute__((always_inline)) __m512i set_indices(const uint8_t *c, int32_t sb, __m512i offsets) {
    return sb == 64 ? _mm512_loadu_si512(c) : unpack_codes(c, offsets);
}

BP_LUT8_TARGET static inline __attribute__((always_inline)) void plane_block_avx512(const uint8_t *cp, int32_t halves, int32_t sb, const int8_t *tables,
                                                                                     int32_t pb, int32_t pl0, int32_t q0, int32_t q1, __m512i acc[PG]) {
    const __m512i ones = _mm512_set1_epi8(1), offsets = _mm512_set1_epi32(0x30201000);
    if (halves == 1) {
        for (int32_t q = q0; q < q1; q++) {
            const __m512i idx = set_indices(cp + (int64_t)q * sb, sb, offsets);
            const int8_t *t = tables + ((size_t)q * pb + pl0) * 64;
            for (int p = 0; p < PG; p++)
                acc[p] = _mm512_dpbusd_epi32(acc[p], ones, _mm512_permutexvar_epi8(idx, _mm512_load_si512(t + 64 * p)));
        }
    } else {
        for (int32_t q = q0; q < q1; q++) {
            const __m512i a = set_indices(cp + (int64_t)q * 2 * sb, sb, offsets), b = set_indices(cp + (int64_t)q * 2 * sb + sb, sb, offsets);
            const int8_t *t = tables + ((size_t)q * pb + pl0) * 64;
            for (int p = 0; p < PG; p++) {
                const __m512i tv = _mm512_load_si512(t + 64 * p);
                acc[p] = _mm512_dpbusd_epi32(acc[p], ones, _mm512_permutexvar_epi8(a, tv));
                acc[p] = _mm512_dpbusd_epi32(acc[p], ones, _mm512_permutexvar_epi8(b, tv));
            }
        }
    }
}

BP_LUT8_TARGET static void tile_avx512(const bp_lutconv8_weights *w, const scratch_layout *s, int32_t rt, const uint8_t *tc, int32_t pl0,
                                       float *out) {
    __m512 acc[PG];
    for (int p = 0; p < PG; p++) acc[p] = _mm512_setzero_ps();
    const int32_t sb = set_bytes(w);
    int64_t planeStart = 0;
    for (int32_t pl = 0; pl < w->tilePlanes[rt]; pl++) {
        const int32_t halves = w->halves[pl];
        const uint8_t *cp = tc + planeStart;
        float rsbuf[TILE];
        const __m512 rs = _mm512_loadu_ps(row_scale_vector(w, rt, pl, rsbuf));
        for (int32_t kb = 0; kb < s->kblocks; kb++) {
            __m512i sums[PG];
            for (int p = 0; p < PG; p++) sums[p] = _mm512_setzero_si512();
            const int32_t q1 = (kb + 1) * KB < w->quads ? (kb + 1) * KB : w->quads;
            if (sb == 64) plane_block_avx512(cp, halves, 64, s->tables, s->pb, pl0, kb * KB, q1, sums);
            else plane_block_avx512(cp, halves, 32, s->tables, s->pb, pl0, kb * KB, q1, sums);
            for (int p = 0; p < PG; p++) {
                const __m512 ts = _mm512_set1_ps(s->scales[(size_t)(pl0 + p) * s->kblocks + kb]);
                acc[p] = _mm512_add_ps(acc[p], _mm512_mul_ps(_mm512_cvtepi32_ps(sums[p]), _mm512_mul_ps(rs, ts)));
            }
        }
        planeStart += (int64_t)w->quads * halves * sb;
    }
    for (int p = 0; p < PG; p++) _mm512_store_ps(out + p * TILE, acc[p]);
}

__attribute__((target("bmi2,popcnt"))) static const uint8_t *expand_tile_bmi2(const bp_lutconv8_weights *w, int32_t t, uint8_t *codes,
                                                                              uint64_t *act, int copy) {
    EXPAND_TILE_BODY(_pdep_u64, __builtin_popcountll);
}
#endif

/// The output store, portable: tile [PG][TILE] plus bias, rows of tile rt to their places in y
/// (positions [p0, p0 + count) of each row), max(0, .) when `relu`.
static void store_tile_portable(const bp_lutconv8_weights *w, int32_t rt, const float *tile, const float *bias, float *y, int64_t positions,
                                int64_t p0, int32_t count, int relu) {
    const int32_t r0 = rt * TILE, rows = w->rows - r0 < TILE ? w->rows - r0 : TILE;
    for (int32_t r = 0; r < rows; r++) {
        const int32_t o = w->order ? w->order[r0 + r] : r0 + r;
        const float b = bias ? bias[o] : 0.0f;
        float *yr = y + (int64_t)o * positions + p0;
        for (int32_t p = 0; p < count; p++) {
            const float v = tile[p * TILE + r] + b;
            yr[p] = relu && !(v > 0.0f) ? 0.0f : v;
        }
    }
}

#if BP_LUT8_X86
/// Lane permutations of the tile transpose (`store_tile_avx512`), built once.
typedef struct {
    __m512i s1[2], s2[2], s3[2];
} transpose_indices;

static transpose_indices transpose_index_vectors(void) {
    transpose_indices t;
    int32_t v[16];
    for (int h = 0; h < 2; h++) {
        // Stage 1: two positions' 16 rows -> rows 8h .. 8h + 7 x the 2 positions (lane 2k + s).
        for (int j = 0; j < 16; j++) v[j] = 8 * h + j / 2 + (j % 2) * 16;
        memcpy(&t.s1[h], v, 64);
        // Stage 2: two such (positions 0-1, 2-3) -> rows 4h .. 4h + 3 x 4 positions (lane 4k + t).
        for (int j = 0; j < 16; j++) v[j] = (j % 4 / 2) * 16 + 2 * (4 * h + j / 4) + j % 2;
        memcpy(&t.s2[h], v, 64);
        // Stage 3: two such (positions 0-3, 4-7) -> rows 2h and 2h + 1 x 8 positions (lane 8k + p).
        for (int j = 0; j < 16; j++) v[j] = (j % 8 / 4) * 16 + 4 * (2 * h + j / 8) + j % 4;
        memcpy(&t.s3[h], v, 64);
    }
    return t;
}

/// store_tile_portable's result with the tile transposed in registers (8 x 16 -> 16 rows of 8
/// positions, three rounds of two-source permutes) and 8-lane masked stores: the same
/// operations per value (tile + bias, then max with 0), so the same bits.
BP_LUT8_TARGET static void store_tile_avx512(const bp_lutconv8_weights *w, int32_t rt, const float *tile, const float *bias, float *y, int64_t positions,
                                             int64_t p0, int32_t count, int relu, const transpose_indices *ti) {
    const int32_t r0 = rt * TILE, rows = w->rows - r0 < TILE ? w->rows - r0 : TILE;
    __m512 a[PG], b[PG], c[PG];
    for (int i = 0; i < PG / 2; i++)
        for (int h = 0; h < 2; h++)
            a[2 * i + h] = _mm512_permutex2var_ps(_mm512_load_ps(tile + 2 * i * TILE), ti->s1[h], _mm512_load_ps(tile + (2 * i + 1) * TILE));
    // a[2i + h]: rows 8h.., positions 2i, 2i + 1.
    for (int m = 0; m < 2; m++)
        for (int h = 0; h < 2; h++)
            for (int part = 0; part < 2; part++) b[4 * m + 2 * h + part] = _mm512_permutex2var_ps(a[4 * m + h], ti->s2[part], a[4 * m + 2 + h]);
    // b[4m + 2h + part]: rows 8h + 4 part .., positions 4m .. 4m + 3.
    for (int h = 0; h < 2; h++)
        for (int part = 0; part < 2; part++)
            for (int k = 0; k < 2; k++) c[4 * h + 2 * part + k] = _mm512_permutex2var_ps(b[2 * h + part], ti->s3[k], b[4 + 2 * h + part]);
    // c[4h + 2 part + k]: rows 8h + 4 part + 2k (lanes 0-7) and the next (lanes 8-15), positions 0-7.
    const __mmask16 lo = (__mmask16)((1u << count) - 1), hi = (__mmask16)(lo << 8);
    for (int i = 0; i < PG; i++) {
        const int32_t ra = 2 * i, rb = 2 * i + 1;
        if (ra >= rows) break;
        const int32_t oa = w->order ? w->order[r0 + ra] : r0 + ra;
        const int32_t ob = rb < rows ? (w->order ? w->order[r0 + rb] : r0 + rb) : oa;
        const __m512 bv = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(bias ? bias[oa] : 0.0f), _mm512_set1_ps(bias ? bias[ob] : 0.0f));
        __m512 v = _mm512_add_ps(c[i], bv);
        if (relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
        _mm512_mask_storeu_ps(y + (int64_t)oa * positions + p0, lo, v);
        if (rb < rows) _mm512_mask_storeu_ps(y + (int64_t)ob * positions + p0 - 8, hi, v);
    }
}
#endif

#if !BP_LUT8_X86
typedef int transpose_indices;
#endif

/// The output store of either body (`ti`: the transpose's indices, AVX-512 only).
static inline void store_tile(int fast, const bp_lutconv8_weights *w, int32_t rt, const float *tile, const float *bias, float *y, int64_t positions,
                              int64_t p0, int32_t count, int relu, const transpose_indices *ti) {
#if BP_LUT8_X86
    if (fast) {
        store_tile_avx512(w, rt, tile, bias, y, positions, p0, count, relu, ti);
        return;
    }
#endif
    (void)ti;
    store_tile_portable(w, rt, tile, bias, y, positions, p0, count, relu);
}

int64_t bp_lutconv8_tile_code_bytes(const bp_lutconv8_weights *w, int32_t t) {
    int64_t sets = 0;
    for (int32_t l = 0; l < w->tilePlanes[t]; l++) sets += w->halves[l];
    return sets * w->quads * 32;
}

void bp_lutconv8_expand_tile(const bp_lutconv8_weights *w, int32_t t, uint8_t *codes) {
    uint64_t *act = (uint64_t *)malloc((size_t)w->quads * 32 + 8);
    const uint8_t *c;
#if BP_LUT8_X86
    if (__builtin_cpu_supports("bmi2")) c = expand_tile_bmi2(w, t, codes, act, 1); else
#endif
    c = expand_tile_portable(w, t, codes, act, 1);
    if (c != codes) memcpy(codes, c, (size_t)bp_lutconv8_tile_code_bytes(w, t));
    free(act);
}

void bp_lutconv8_forward(int fast, const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const float *x, const float *bias, float *y,
                         int32_t position0, int32_t position1, int relu, void *scratch) {
    bp_lutconv8_forward_tiles(fast, w, g, x, bias, y, position0, position1, 0, (w->rows + TILE - 1) / TILE, relu, scratch);
}

/// Whether g is a 1x1 stride-1 Conv without padding whose inputs the table build reads in place.
static int direct_of(const bp_lutconv_geometry *g) {
    return g->kernelH * g->kernelW == 1 && g->strideH == 1 && g->strideW == 1 && g->padH == 0 && g->padW == 0 && g->outWidth == g->width &&
           g->outHeight == g->height;
}

/// Tables of every quad for positions [from, to) of the block of positions starting at b0 (from - b0
/// a multiple of 16, so threads that build parts of one block write disjoint 16-position chunks),
/// gathered 32 positions and 16 quads at a time into s->tables / s->scales.
static void build_block(int fast, const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const float *x, const scratch_layout *s, int32_t b0,
                        int32_t from, int32_t to) {
    const int32_t positions = g->outHeight * g->outWidth;
    const int direct = direct_of(g);
    for (int32_t c0 = from; c0 < to; c0 += GATHER) {
        const int32_t count = to - c0 < GATHER ? to - c0 : GATHER;
        bp_conv_block_coordinates(g, c0, count, s->ih0, s->iw0);
        for (int32_t kb = 0; kb < s->kblocks; kb++) {
            const int32_t q0 = kb * KB, q1 = (kb + 1) * KB < w->quads ? (kb + 1) * KB : w->quads;
            const int32_t groups = (q1 - q0) * 4;
            const float *rp[KB * 16];
            // A 1x1 stride-1 Conv without padding reads its inputs in place (whole 16-position
            // chunks of whole entries, what the build reads; a band's chunk past the map's end is
            // gathered); anything else is gathered. Both give the build the same values.
            const int inPlace = direct && count % 16 == 0 && (int64_t)q1 * 16 <= w->reduction;
            for (int32_t gi = 0; gi < groups; gi++) {
                if (inPlace) {
                    for (int j = 0; j < 4; j++) {
                        const float *r = x + ((int64_t)q0 * 16 + 4 * gi + j) * positions + c0;
                        rp[4 * gi + j] = r;
                        // The next block's lines of this row, as the gather does: one stream
                        // per input channel is more than the hardware prefetchers follow.
                        __builtin_prefetch(r + GATHER);
                        __builtin_prefetch(r + GATHER + 16);
                    }
                    continue;
                }
                bp_conv_gather_group(g, x, (int64_t)q0 * 4 + gi, w->reduction, c0, count, GATHER, s->ih0, s->iw0, s->rows + (size_t)gi * 4 * GATHER);
                for (int j = 0; j < 4; j++) rp[4 * gi + j] = s->rows + (size_t)(4 * gi + j) * GATHER;
            }
            int8_t *tb = s->tables + (size_t)q0 * s->pb * 64;
#if BP_LUT8_X86
            if (fast) {
                // Only the 16-position chunks that hold positions (a small map's block is short).
                for (int h = 0; h < count; h += 16)
                    build_tables_avx512(rp, groups, h, tb, s->pb, c0 - b0 + h, s->scales + (size_t)(c0 - b0 + h) * s->kblocks + kb, s->kblocks);
                continue;
            }
#endif
            for (int n = 0; n < count; n++)
                build_tables_portable(rp, groups, n, tb, s->pb, c0 - b0 + n, s->scales + (size_t)(c0 - b0 + n) * s->kblocks + kb);
        }
    }
}

/// Row tiles [tile0, tile1) x positions [b0, b1) from the block's tables in s.
static void tiles_block(int fast, const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const float *bias, float *y, const scratch_layout *s,
                        int32_t b0, int32_t b1, int32_t tile0, int32_t tile1, int relu) {
    const int32_t positions = g->outHeight * g->outWidth;
#if BP_LUT8_X86
    const transpose_indices tiv = transpose_index_vectors(), *ti = &tiv;
#else
    const transpose_indices *ti = NULL;
#endif
    for (int32_t rt = tile0; rt < tile1; rt++) {
        const uint8_t *tc;
#if BP_LUT8_X86
        if (fast) tc = expand_tile_bmi2(w, rt, s->codes, s->act, 0); else
#endif
        tc = expand_tile_portable(w, rt, s->codes, s->act, 0);
        for (int32_t p0 = b0; p0 < b1; p0 += PG) {
            const int32_t count = b1 - p0 < PG ? b1 - p0 : PG;
#if BP_LUT8_X86
            if (fast) tile_avx512(w, s, rt, tc, p0 - b0, s->tile); else
#endif
            tile_portable(w, s, rt, tc, p0 - b0, s->tile);
            store_tile(fast, w, rt, s->tile, bias, y, positions, p0, count, relu, ti);
        }
    }
}

static int resolve_fast(int fast) {
#if BP_LUT8_X86
    return fast && bp_lutconv8_fast_available();
#else
    (void)fast;
    return 0;
#endif
}

void bp_lutconv8_forward_tiles(int fast, const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const float *x, const float *bias, float *y,
                               int32_t position0, int32_t position1, int32_t tile0, int32_t tile1, int relu, void *scratch) {
    fast = resolve_fast(fast);
    const scratch_layout s = layout(w, scratch);
    for (int32_t b0 = position0; b0 < position1; b0 += s.pb) {
        const int32_t b1 = b0 + s.pb < position1 ? b0 + s.pb : position1;
        build_block(fast, w, g, x, &s, b0, b0, b1);
        tiles_block(fast, w, g, bias, y, &s, b0, b1, tile0, tile1, relu);
    }
}

size_t bp_lutconv8_table_bytes(const bp_lutconv8_weights *w) {
    const size_t pb = (size_t)bp_lutconv8_block_positions(w);
    return 64 + (size_t)w->quads * pb * 64 + pb * (size_t)kblocks_of(w) * 4;
}

/// `scratch`'s layout with the tables and table scales in the shared `tables` instead.
static scratch_layout shared_layout(const bp_lutconv8_weights *w, void *scratch, void *tables) {
    scratch_layout s = layout(w, scratch);
    s.tables = (int8_t *)(((uintptr_t)tables + 63) & ~(uintptr_t)63);
    s.scales = (float *)(s.tables + (size_t)w->quads * (size_t)s.pb * 64);
    return s;
}

void bp_lutconv8_build_tables(int fast, const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const float *x, int32_t block0, int32_t position0,
                              int32_t position1, void *tables, void *scratch) {
    const scratch_layout s = shared_layout(w, scratch, tables);
    build_block(resolve_fast(fast), w, g, x, &s, block0, position0, position1);
}

void bp_lutconv8_tiles_from_tables(int fast, const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const float *bias, float *y, int32_t block0,
                                   int32_t block1, int32_t tile0, int32_t tile1, int relu, void *tables, void *scratch) {
    const scratch_layout s = shared_layout(w, scratch, tables);
    tiles_block(resolve_fast(fast), w, g, bias, y, &s, block0, block1, tile0, tile1, relu);
}

// ---------------------------------------------------------------------------------------------
// Pixel tables (bp_lutconv8_pixels_forward): the reduction in tap-major order (entry t * C + c),
// so a group of 4 entries is 4 channels of one input pixel and its table serves every output
// position that reads that pixel, at any tap. Tables are built once per input pixel (per row of
// the input, 16 pixels at a time, the same build as above with columns for positions) instead of
// once per output position and tap: a 3x3 stride-1 layer builds 9x fewer. The table scale is per
// pixel and block of 256 channels, so the int32 sums are scaled per tap and block:
// acc = fma(float(sum), pixel scale, acc) per plane, then total = fma(row scale, acc, total).

typedef struct {
    int32_t qp, cb;           // quads and channel blocks per pixel
    int32_t cols;             // table columns per input row: padded width, a multiple of 16
    int32_t ring;             // input rows held
    size_t rowBytes;          // one input row's tables
    int8_t *tables;           // [ring][quad][cols][64]
    float *scales;            // [ring][cols][cb]
    int32_t *slotRow;         // [ring] input row held in a slot (INT32_MIN: none)
    int8_t *zeroTables;       // one row of zero tables (rows outside the image)
    float *zeroScales;
    float *rows;              // gathered channels [16 quads * 4 groups][4][GATHER]
    float *tile;              // [PG][TILE]
    float *total;             // [PG][TILE]
    uint8_t *codes;
    uint64_t *act;
} pixel_layout;

static int32_t pixel_cols(const bp_lutconv_geometry *g) {
    const int32_t outW = (g->outWidth + PG - 1) / PG * PG;
    int32_t need = (outW - 1) * g->strideW + (g->kernelW - 1) * g->dilationW + 1;
    if (need < g->width + g->padW) need = g->width + g->padW;
    return (need + 15) / 16 * 16;
}

static int32_t pixel_ring(const bp_lutconv8_weights *w, const bp_lutconv_geometry *g) {
    const int32_t qp = w->quads / (g->kernelH * g->kernelW);
    const size_t rowBytes = (size_t)qp * (size_t)pixel_cols(g) * 64;
    const int32_t span = (g->kernelH - 1) * g->dilationH + 1;
    // Enough rows for bands of several output rows while the tables stay in L2; at least one band.
    int32_t bands = (int32_t)((size_t)(2 * TABLE_BUDGET) / (rowBytes ? rowBytes : 1)) - span + 1;
    if (bands < 1) bands = 1;
    if (bands > g->outHeight) bands = g->outHeight;
    return (bands - 1) * g->strideH + span;
}

int bp_lutconv8_pixels_fit(const bp_lutconv8_weights *w, const bp_lutconv_geometry *g) {
    const int32_t taps = g->kernelH * g->kernelW;
    return g->channels % 16 == 0 && g->channels > 0 && g->kernelH <= 64 && w->reduction == g->channels * taps && w->quads == taps * (g->channels / 16);
}

size_t bp_lutconv8_pixels_scratch_bytes(const bp_lutconv8_weights *w, const bp_lutconv_geometry *g) {
    const int32_t qp = g->channels / 16, cb = (qp + KB - 1) / KB, cols = pixel_cols(g), ring = pixel_ring(w, g);
    const size_t rowBytes = (size_t)qp * (size_t)cols * 64, rowScales = (size_t)cols * (size_t)cb * 4;
    return 64 + (size_t)(ring + 1) * (rowBytes + rowScales + 64) + (size_t)ring * 4 + (size_t)KB * 16 * GATHER * 4 + 2 * ((size_t)TILE * PG * 4 + 64) +
           (size_t)w->quads * w->codeSets * 32 + 64 + (size_t)w->quads * 4 * 8;
}

static pixel_layout pixel_scratch(const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, void *scratch) {
    pixel_layout s;
    s.qp = g->channels / 16;
    s.cb = (s.qp + KB - 1) / KB;
    s.cols = pixel_cols(g);
    s.ring = pixel_ring(w, g);
    s.rowBytes = (size_t)s.qp * (size_t)s.cols * 64;
    const size_t rowScales = (size_t)s.cols * (size_t)s.cb;
    uint8_t *b = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    s.tables = (int8_t *)b;
    b += (size_t)s.ring * s.rowBytes;
    s.zeroTables = (int8_t *)b;
    b += s.rowBytes;
    s.scales = (float *)b;
    b += (size_t)s.ring * rowScales * 4;
    s.zeroScales = (float *)b;
    b += rowScales * 4;
    s.slotRow = (int32_t *)b;
    b += (size_t)s.ring * 4;
    s.rows = (float *)(((uintptr_t)b + 63) & ~(uintptr_t)63);
    b = (uint8_t *)(s.rows + (size_t)KB * 16 * GATHER);
    s.tile = (float *)(((uintptr_t)b + 63) & ~(uintptr_t)63);
    s.total = s.tile + (size_t)TILE * PG;
    b = (uint8_t *)(s.total + (size_t)TILE * PG);
    s.codes = (uint8_t *)(((uintptr_t)b + 63) & ~(uintptr_t)63);
    s.act = (uint64_t *)(s.codes + (size_t)w->quads * w->codeSets * 32);
    memset(s.zeroTables, 0, s.rowBytes);
    memset(s.zeroScales, 0, rowScales * 4);
    for (int32_t i = 0; i < s.ring; i++) s.slotRow[i] = INT32_MIN;
    return s;
}

/// Input row ih's tables (every column, padding columns zero) into ring slot `slot`.
static void build_pixel_row(int fast, const bp_lutconv_geometry *g, const float *x, int32_t ih, const pixel_layout *s, int32_t slot) {
    int8_t *rt = s->tables + (size_t)slot * s->rowBytes;
    float *rs = s->scales + (size_t)slot * s->cols * s->cb;
    const int64_t plane = (int64_t)g->height * g->width;
    const float *xr = x + (int64_t)ih * g->width;
    for (int32_t c0 = 0; c0 < s->cols; c0 += GATHER) {
        const int32_t count = s->cols - c0 < GATHER ? s->cols - c0 : GATHER;
        // Columns [c0, c0 + count) are input columns c0 - padW ...: copy the part inside the row.
        int32_t lo = g->padW - c0, hi = g->padW + g->width - c0;
        if (lo < 0) lo = 0;
        if (hi > GATHER) hi = GATHER;
        for (int32_t cb = 0; cb < s->cb; cb++) {
            const int32_t q0 = cb * KB, q1 = (cb + 1) * KB < s->qp ? (cb + 1) * KB : s->qp;
            const int32_t groups = (q1 - q0) * 4;
            const float *rp[KB * 16];
            for (int32_t e = 0; e < groups * 4; e++) {
                float *o = s->rows + (size_t)e * GATHER;
                const float *xc = xr + (q0 * 16 + e) * plane + (c0 - g->padW);
                // A chunk inside the row is read in place.
                rp[e] = lo == 0 && hi == GATHER ? xc : o;
                if (lo == 0 && hi == GATHER) continue;
                if (hi <= lo) {
                    memset(o, 0, sizeof(float) * GATHER);
                    continue;
                }
                if (lo > 0) memset(o, 0, sizeof(float) * (size_t)lo);
                memcpy(o + lo, xc + lo, sizeof(float) * (size_t)(hi - lo));
                if (hi < GATHER) memset(o + hi, 0, sizeof(float) * (size_t)(GATHER - hi));
            }
            int8_t *tb = rt + (size_t)q0 * s->cols * 64;
#if BP_LUT8_X86
            if (fast) {
                for (int h = 0; h < count; h += 16) build_tables_avx512(rp, groups, h, tb, s->cols, c0 + h, rs + (size_t)(c0 + h) * s->cb + cb, s->cb);
                continue;
            }
#endif
            for (int n = 0; n < count; n++) build_tables_portable(rp, groups, n, tb, s->cols, c0 + n, rs + (size_t)(c0 + n) * s->cb + cb);
        }
    }
}

/// Ring slot of input row ih (built if not held), or -1 outside the image.
static int32_t pixel_row(int fast, const bp_lutconv_geometry *g, const float *x, int32_t ih, pixel_layout *s) {
    if (ih < 0 || ih >= g->height) return -1;
    const int32_t slot = ih % s->ring;
    if (s->slotRow[slot] != ih) {
        build_pixel_row(fast, g, x, ih, s, slot);
        s->slotRow[slot] = ih;
    }
    return slot;
}

static inline const int8_t *row_tables(const pixel_layout *s, int32_t slot) {
    return slot < 0 ? s->zeroTables : s->tables + (size_t)slot * s->rowBytes;
}
static inline const float *row_scales(const pixel_layout *s, int32_t slot) {
    return slot < 0 ? s->zeroScales : s->scales + (size_t)slot * s->cols * s->cb;
}

/// Tile rt x positions ow0 .. ow0 + PG - 1 of output row oh into `out` ([PG][TILE]), portable.
static void pixel_tile_portable(const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const pixel_layout *s, const int32_t *slots, int32_t rt,
                                const uint8_t *tc, int32_t ow0, float *out) {
    for (int i = 0; i < PG * TILE; i++) out[i] = 0.0f;
    const int32_t sb = set_bytes(w);
    int64_t planeStart = 0;
    for (int32_t pl = 0; pl < w->tilePlanes[rt]; pl++) {
        const int32_t halves = w->halves[pl];
        float rsbuf[TILE];
        const float *rsc = row_scale_vector(w, rt, pl, rsbuf);
        float acc[PG][TILE];
        memset(acc, 0, sizeof acc);
        for (int32_t a = 0; a < g->kernelH; a++) {
            const int8_t *tab = row_tables(s, slots[a]);
            const float *sc = row_scales(s, slots[a]);
            for (int32_t b = 0; b < g->kernelW; b++) {
                const int32_t t = a * g->kernelW + b, col0 = ow0 * g->strideW + b * g->dilationW;
                for (int32_t cb = 0; cb < s->cb; cb++) {
                    int32_t sums[PG][TILE];
                    memset(sums, 0, sizeof sums);
                    const int32_t q1 = (cb + 1) * KB < s->qp ? (cb + 1) * KB : s->qp;
                    for (int32_t q = cb * KB; q < q1; q++)
                        for (int32_t h = 0; h < halves; h++) {
                            const uint8_t *c = tc + planeStart + (((int64_t)t * s->qp + q) * halves + h) * sb;
                            for (int p = 0; p < PG; p++) {
                                const int8_t *tv = tab + ((size_t)q * s->cols + col0 + p * g->strideW) * 64;
                                for (int r = 0; r < TILE; r++)
                                    for (int gi = 0; gi < 4; gi++) sums[p][r] += tv[16 * gi + code_of(c, 4 * r + gi, sb)];
                            }
                        }
                    for (int p = 0; p < PG; p++) {
                        const float ts = sc[(size_t)(col0 + p * g->strideW) * s->cb + cb];
                        for (int r = 0; r < TILE; r++) acc[p][r] = fmaf((float)sums[p][r], ts, acc[p][r]);
                    }
                }
            }
        }
        for (int p = 0; p < PG; p++)
            for (int r = 0; r < TILE; r++) out[p * TILE + r] = fmaf(rsc[r], acc[p][r], out[p * TILE + r]);
        planeStart += (int64_t)w->quads * halves * sb;
    }
}

#if BP_LUT8_X86
BP_LUT8_TARGET static void pixel_tile_avx512(const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const pixel_layout *s, const int32_t *slots,
                                             int32_t rt, const uint8_t *tc, int32_t ow0, float *out) {
    const __m512i ones = _mm512_set1_epi8(1), offsets = _mm512_set1_epi32(0x30201000);
    for (int p = 0; p < PG; p++) _mm512_store_ps(out + p * TILE, _mm512_setzero_ps());
    const size_t pstep = (size_t)g->strideW * 64, qstep = (size_t)s->cols * 64;
    const int32_t sb = set_bytes(w);
    int64_t planeStart = 0;
    for (int32_t pl = 0; pl < w->tilePlanes[rt]; pl++) {
        const int32_t halves = w->halves[pl];
        __m512 acc[PG];
        for (int p = 0; p < PG; p++) acc[p] = _mm512_setzero_ps();
        for (int32_t a = 0; a < g->kernelH; a++) {
            const int8_t *tab = row_tables(s, slots[a]);
            const float *sc = row_scales(s, slots[a]);
            for (int32_t b = 0; b < g->kernelW; b++) {
                const int32_t t = a * g->kernelW + b, col0 = ow0 * g->strideW + b * g->dilationW;
                for (int32_t cb = 0; cb < s->cb; cb++) {
                    __m512i sums[PG];
                    for (int p = 0; p < PG; p++) sums[p] = _mm512_setzero_si512();
                    const int32_t q0 = cb * KB, q1 = (cb + 1) * KB < s->qp ? (cb + 1) * KB : s->qp;
                    const uint8_t *cq = tc + planeStart + ((int64_t)t * s->qp + q0) * halves * sb;
                    const int8_t *tq = tab + ((size_t)q0 * s->cols + col0) * 64;
                    if (halves == 1) {
                        for (int32_t q = q0; q < q1; q++, cq += sb, tq += qstep) {
                            const __m512i idx = set_indices(cq, sb, offsets);
                            for (int p = 0; p < PG; p++)
                                sums[p] = _mm512_dpbusd_epi32(sums[p], ones, _mm512_permutexvar_epi8(idx, _mm512_load_si512(tq + pstep * p)));
                        }
                    } else {
                        for (int32_t q = q0; q < q1; q++, cq += 2 * sb, tq += qstep) {
                            const __m512i ia = set_indices(cq, sb, offsets), ib = set_indices(cq + sb, sb, offsets);
                            for (int p = 0; p < PG; p++) {
                                const __m512i tv = _mm512_load_si512(tq + pstep * p);
                                sums[p] = _mm512_dpbusd_epi32(sums[p], ones, _mm512_permutexvar_epi8(ia, tv));
                                sums[p] = _mm512_dpbusd_epi32(sums[p], ones, _mm512_permutexvar_epi8(ib, tv));
                            }
                        }
                    }
                    const float *scb = sc + (size_t)col0 * s->cb + cb;
                    for (int p = 0; p < PG; p++)
                        acc[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[p]), _mm512_set1_ps(scb[(size_t)p * g->strideW * s->cb]), acc[p]);
                }
            }
        }
        float rsbuf[TILE];
        const __m512 rs = _mm512_loadu_ps(row_scale_vector(w, rt, pl, rsbuf));
        for (int p = 0; p < PG; p++) _mm512_store_ps(out + p * TILE, _mm512_fmadd_ps(rs, acc[p], _mm512_load_ps(out + p * TILE)));
        planeStart += (int64_t)w->quads * halves * sb;
    }
}
#endif

void bp_lutconv8_pixels_forward(int fast, const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const float *x, const float *bias, float *y,
                                int32_t row0, int32_t row1, int relu, void *scratch) {
    bp_lutconv8_pixels_forward_tiles(fast, w, g, x, bias, y, row0, row1, 0, (w->rows + TILE - 1) / TILE, relu, scratch);
}

void bp_lutconv8_pixels_forward_tiles(int fast, const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const float *x, const float *bias,
                                      float *y, int32_t row0, int32_t row1, int32_t tile0, int32_t tile1, int relu, void *scratch) {
#if BP_LUT8_X86
    fast = fast && bp_lutconv8_fast_available();
#else
    fast = 0;
#endif
    pixel_layout s = pixel_scratch(w, g, scratch);
    const int32_t positions = g->outHeight * g->outWidth;
#if BP_LUT8_X86
    const transpose_indices tiv = transpose_index_vectors(), *ti = &tiv;
#else
    const transpose_indices *ti = NULL;
#endif
    const int32_t span = (g->kernelH - 1) * g->dilationH + 1, band = (s.ring - span) / g->strideH + 1;
    int32_t slots[64];
    for (int32_t b0 = row0; b0 < row1; b0 += band) {
        const int32_t b1 = b0 + band < row1 ? b0 + band : row1;
        // The band's input rows, built once for every row tile (rows the last band built are kept).
        for (int32_t oh = b0; oh < b1; oh++)
            for (int32_t a = 0; a < g->kernelH; a++) pixel_row(fast, g, x, oh * g->strideH - g->padH + a * g->dilationH, &s);
        for (int32_t rt = tile0; rt < tile1; rt++) {
            const uint8_t *tc;
#if BP_LUT8_X86
            if (fast) tc = expand_tile_bmi2(w, rt, s.codes, s.act, 0); else
#endif
            tc = expand_tile_portable(w, rt, s.codes, s.act, 0);
            for (int32_t oh = b0; oh < b1; oh++) {
                for (int32_t a = 0; a < g->kernelH; a++) {
                    const int32_t ih = oh * g->strideH - g->padH + a * g->dilationH;
                    slots[a] = ih < 0 || ih >= g->height ? -1 : ih % s.ring;
                }
                for (int32_t ow0 = 0; ow0 < g->outWidth; ow0 += PG) {
                    const int32_t count = g->outWidth - ow0 < PG ? g->outWidth - ow0 : PG;
#if BP_LUT8_X86
                    if (fast) pixel_tile_avx512(w, g, &s, slots, rt, tc, ow0, s.tile); else
#endif
                    pixel_tile_portable(w, g, &s, slots, rt, tc, ow0, s.tile);
                    const int64_t p0 = (int64_t)oh * g->outWidth + ow0;
                    store_tile(fast, w, rt, s.tile, bias, y, positions, p0, count, relu, ti);
                }
            }
        }
    }
}
