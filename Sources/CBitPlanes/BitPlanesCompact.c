// Decoding of the compact weight layout (bp_compact, see CBitPlanes.h) into float rows.
//
// Why: packed mode keeps a binarized weight at about its stored size and decodes a tile of rows
// (bounded, reused by every layer) just before the float GEMM reads it. The decode is
// O(weights) per run against the GEMM's O(weights x pixels), so it stays small where the
// weights are reused, and the values are bit for bit the expanded ones (levels added in Float
// from level 1 up, as PackedTensor.dequantized does).
//
// Per 64 entries of a row: the level-1 signs are read straight from the flat sign bitset; a
// higher level's activity is its parent level's activity with the stored bits deposited into
// the parent's set bits (pdep), and its signs are deposited into its own activity the same way.
// The AVX-512 variant turns each level into 16-lane blends and masked adds; the portable one
// walks the bits.
#include "CBitPlanes.h"
#include "BitStream.h"

#include <stdint.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define BP_COMPACT_X86 1
#define BP_COMPACT_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,bmi2,popcnt")))
#else
#define BP_COMPACT_X86 0
#endif



/// Blocks of one row in the grouped layout: ceil(channels / groupChannels) x taps.
static inline int64_t compact_row_blocks(const bp_compact *w) {
    const int32_t C = w->columns / w->taps;
    return (int64_t)((C + w->groupChannels - 1) / w->groupChannels) * w->taps;
}

/// Words per level of a row's block activity in the scratch (one zero word past the blocks, for
/// bp_stream_bits).
static inline int64_t compact_block_stride(const bp_compact *w) { return (compact_row_blocks(w) + 63) / 64 + 1; }

/// Words per level of a row's entry activity in the scratch.
static inline int64_t compact_entry_words(const bp_compact *w) { return (w->columns + 63) / 64 + 1; }

// Grouped layout scratch, in words: the row's block activity (levels x block stride), its entry
// activity (levels x entry words), then the per-call plan of the bit gather: per entry word its
// first block (int32), per entry its block's offset from that (bytes, 64 per entry word).
int64_t bp_compact_block_words(const bp_compact *w) {
    if (w->groupChannels <= 1) return 0;
    const int64_t ew = compact_entry_words(w);
    return (int64_t)w->levels * (compact_block_stride(w) + ew) + (ew + 1) / 2 + 8 * ew;
}

/// Grouped layout: the activity of entries j0 ..< j0 + n of a row (bit i = entry j0 + i) from the
/// row's block activity `blk` at one level. Taps 1: the active blocks overlapping the word, each a
/// run of up to g entries; more taps: per channel in the word, its block row's bits for the taps
/// in the word (a block row holds the same taps in the same order as a channel).
static inline uint64_t compact_expand(const uint64_t *blk, int32_t g, int32_t T, int32_t j0, int32_t n) {
    uint64_t out = 0;
    if (T == 1) {
        const int32_t b0 = j0 / g, b1 = (j0 + n - 1) / g, span = b1 - b0 + 1;
        uint64_t bits = bp_stream_bits(blk, b0);
        if (span < 64) bits &= ((uint64_t)1 << span) - 1;
        while (bits) {
            const int32_t b = b0 + __builtin_ctzll(bits);
            bits &= bits - 1;
            const int32_t lo = b * g > j0 ? b * g - j0 : 0, hi = (b + 1) * g - j0 < n ? (b + 1) * g - j0 : n;
            out |= (hi == 64 ? ~(uint64_t)0 : ((uint64_t)1 << hi) - 1) & ~(((uint64_t)1 << lo) - 1);
        }
        return out;
    }
    for (int32_t c = j0 / T; (int64_t)c * T < j0 + n; c++) {
        const int32_t base = c * T - j0;  // entry offset of the channel's tap 0 in the word (may be < 0)
        const int32_t t0 = base < 0 ? -base : 0, t1 = n - base < T ? n - base : T, len = t1 - t0;
        uint64_t seg = bp_stream_bits(blk, (int64_t)(c / g) * T + t0);
        if (len < 64) seg &= ((uint64_t)1 << len) - 1;
        out |= seg << (base + t0);
    }
    return out;
}

/// The bit gather's plan for one call (the same for every row): for entry word w, `base[w]` =
/// the first block of its first entry's group, or -1 when its entries' blocks span more than 64 (that word
/// then takes compact_expand), and `idx[64 w + i]` = entry 64 w + i's block minus base[w].
static void compact_plan(const bp_compact *w, int32_t *base, uint8_t *idx) {
    const int32_t K = w->columns, g = w->groupChannels, T = w->taps;
    int32_t t = 0, cg = 0, cb = 0;  // tap, channel within its group, group: counted, not divided
    for (int32_t j0 = 0, wd = 0; j0 < K; j0 += 64, wd++) {
        const int32_t first = cb * T;  // tap 0 of the first entry's group: no entry of the word is below it
        int32_t wide = 0;
        for (int32_t i = 0; i < 64; i++) {
            if (j0 + i >= K) { idx[j0 + i] = 0; continue; }
            const int32_t d = cb * T + t - first;
            wide |= d > 63;
            idx[j0 + i] = (uint8_t)(d & 63);
            if (++t == T) { t = 0; if (++cg == g) { cg = 0; cb++; } }
        }
        base[wd] = wide ? -1 : first;
    }
}

/// One row's entry activity at one level, word by word, from its block activity `blk`
/// (portable: compact_expand per word).
static void compact_expand_row_portable(const bp_compact *w, const uint64_t *blk, uint64_t *out) {
    const int32_t K = w->columns;
    for (int32_t j0 = 0; j0 < K; j0 += 64) out[j0 / 64] = compact_expand(blk, w->groupChannels, w->taps, j0, K - j0 < 64 ? K - j0 : 64);
}

#if BP_COMPACT_X86
/// The same with AVX-512 BITALG: each word is one 64-lane bit gather (vpshufbitqmb) from the 64
/// blocks at its base, by the plan's offsets.
__attribute__((target("avx512f,avx512bw,avx512bitalg")))
static void compact_expand_row_bitalg(const bp_compact *w, const uint64_t *blk, const int32_t *base, const uint8_t *idx, uint64_t *out) {
    const int32_t K = w->columns;
    for (int32_t j0 = 0, wd = 0; j0 < K; j0 += 64, wd++) {
        const int32_t n = K - j0 < 64 ? K - j0 : 64;
        if (base[wd] < 0) {
            out[wd] = compact_expand(blk, w->groupChannels, w->taps, j0, n);
            continue;
        }
        const __m512i window = _mm512_set1_epi64((long long)bp_stream_bits(blk, base[wd]));
        const uint64_t m = _mm512_bitshuffle_epi64_mask(window, _mm512_loadu_si512(idx + j0));
        out[wd] = n == 64 ? m : m & (((uint64_t)1 << n) - 1);
    }
}

static int compact_has_bitalg(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512bitalg") && __builtin_cpu_supports("avx512bw");
    }
    return cached;
}
#endif

/// Grouped layout: the block activity of levels full ..< any of the current row into `blk`
/// (level k at blk + k * bstride), each level's stored bits deposited into its parent level's
/// active blocks, and its entry activity (`ent + k * ew`) derived from them; cursors advanced.
#define COMPACT_ROW_BLOCKS(PDEP, POPCNT, EXPAND_ROW)                                                          \
    do {                                                                                          \
        if (grouped && any > full) {                                                              \
            const int64_t nb = compact_row_blocks(w), nw = (nb + 63) / 64;                        \
            for (int32_t k = full; k < any; k++) {                                                \
                uint64_t *dst = blk + (int64_t)k * bstride;                                       \
                const uint64_t *par = blk + (int64_t)(k - 1) * bstride;                           \
                for (int64_t i = 0; i < nw; i++) {                                                \
                    const uint64_t all = i + 1 < nw || nb % 64 == 0 ? ~(uint64_t)0 : ((uint64_t)1 << (nb % 64)) - 1; \
                    const uint64_t parent = k - 1 < full ? all : par[i];                          \
                    dst[i] = PDEP(bp_stream_bits(w->acts, ca[k]), parent);                        \
                    ca[k] += POPCNT(parent);                                                      \
                }                                                                                 \
                dst[nw] = 0;                                                                      \
                EXPAND_ROW(dst, ent + (int64_t)k * ew);                                           \
            }                                                                                     \
        }                                                                                         \
    } while (0)

/// The per-level words of 64 entries: activity and signs of levels 1 ..< any (level 0 is every
/// valid entry, its signs read by the caller), cursors advanced.
#define COMPACT_LEVEL_WORDS(PDEP, POPCNT)                                                         \
    do {                                                                                          \
        uint64_t parent = valid;                                                                  \
        for (int32_t k = 1; k < any; k++) {                                                       \
            uint64_t a;                                                                           \
            if (k < full) {                                                                       \
                a = valid;                                                                        \
            } else if (grouped) {                                                                 \
                a = ent[(int64_t)k * ew + c0 / 64];                                               \
            } else {                                                                              \
                a = PDEP(bp_stream_bits(w->acts, ca[k]), parent);                                 \
                ca[k] += POPCNT(parent);                                                          \
            }                                                                                     \
            act[k] = a;                                                                           \
            sign[k] = PDEP(bp_stream_bits(w->signs, cs[k]), a);                                   \
            cs[k] += POPCNT(a);                                                                   \
            parent = a;                                                                           \
        }                                                                                         \
    } while (0)

static inline int64_t compact_popcount(uint64_t v) { return __builtin_popcountll(v); }

/// Cursors of block `b`'s first row.
static inline void compact_cursors(const bp_compact *w, int32_t b, int64_t *ca, int64_t *cs) {
    const int32_t blocks = (w->rows + BP_COMPACT_BLOCK - 1) / BP_COMPACT_BLOCK;
    for (int32_t k = 1; k < w->levels; k++) {
        ca[k] = w->actStart[(int64_t)(k - 1) * blocks + b];
        cs[k] = w->signStart[(int64_t)(k - 1) * blocks + b];
    }
}

static void compact_decode_portable(const bp_compact *w, int32_t firstRow, int32_t rowCount, float *out, int64_t ldo, uint64_t *blk) {
    const int32_t K = w->columns, end = firstRow + rowCount;
    int64_t ca[BP_MAX_LEVELS] = {0}, cs[BP_MAX_LEVELS] = {0};
    uint64_t act[BP_MAX_LEVELS] = {0}, sign[BP_MAX_LEVELS] = {0};
    const int32_t b0 = firstRow / BP_COMPACT_BLOCK;
    compact_cursors(w, b0, ca, cs);
    const int grouped = w->groupChannels > 1;
    const int64_t bstride = grouped ? compact_block_stride(w) : 0, ew = grouped ? compact_entry_words(w) : 0;
    uint64_t *ent = blk + w->levels * bstride;
    for (int32_t o = b0 * BP_COMPACT_BLOCK; o < end; o++) {
        const int32_t full = w->widths[o] & 15, any = w->widths[o] >> 4;
#define EXPAND_ROW(b, e) compact_expand_row_portable(w, b, e)
        COMPACT_ROW_BLOCKS(bp_deposit_portable, compact_popcount, EXPAND_ROW);
#undef EXPAND_ROW
        const float *mu = w->scales + (w->scaleStride ? (int64_t)o : 0);
        const int64_t levelStride = w->scaleStride ? w->rows : 1;
        float *y = out + (int64_t)(o - firstRow) * ldo;
        for (int32_t c0 = 0; c0 < K; c0 += 64) {
            const int32_t n = K - c0 < 64 ? K - c0 : 64;
            const uint64_t valid = n == 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1;
            const uint64_t s0 = bp_stream_bits(w->signs0, (int64_t)o * K + c0);
            COMPACT_LEVEL_WORDS(bp_deposit_portable, compact_popcount);
            if (o < firstRow) continue;  // skipped to reach firstRow: cursors only
            for (int32_t j = 0; j < n; j++) {
                float v = (s0 >> j) & 1 ? mu[0] : -mu[0];
                for (int32_t k = 1; k < any; k++) {
                    if ((act[k] >> j) & 1) v += (sign[k] >> j) & 1 ? mu[k * levelStride] : -mu[k * levelStride];
                }
                y[c0 + j] = v;
            }
        }
    }
}

/// y[r - firstRow] = row r . x: 16 rows decoded at a time into `buffer` (16 * columns floats), then dotted in order.
static void compact_gemv_portable(const bp_compact *w, int32_t firstRow, int32_t rowCount, const float *x, float *y, float *buffer, uint64_t *blk) {
    const int32_t K = w->columns;
    for (int32_t r0 = firstRow; r0 < firstRow + rowCount; r0 += BP_COMPACT_BLOCK) {
        const int32_t n = firstRow + rowCount - r0 < BP_COMPACT_BLOCK ? firstRow + rowCount - r0 : BP_COMPACT_BLOCK;
        compact_decode_portable(w, r0, n, buffer, K, blk);
        for (int32_t r = 0; r < n; r++) {
            float acc = 0;
            for (int32_t j = 0; j < K; j++) acc += buffer[(int64_t)r * K + j] * x[j];
            y[r0 - firstRow + r] = acc;
        }
    }
}

#if BP_COMPACT_X86
static inline __attribute__((always_inline)) BP_COMPACT_TARGET uint64_t compact_pdep_bmi2(uint64_t src, uint64_t mask) {
    return _pdep_u64(src, mask);
}
static inline __attribute__((always_inline)) BP_COMPACT_TARGET int64_t compact_popcnt_hw(uint64_t v) { return _mm_popcnt_u64(v); }

/// The AVX-512 decode's and GEMV's locals for a grouped layout (activity per mask group): the
/// per-level block and entry words in `blk`, and the BITALG gather's plan after them, built once.
#define COMPACT_GROUPED_LOCALS(w, blk)                                                                                  \
    const int grouped = (w)->groupChannels > 1;                                                                          \
    const int64_t bstride = grouped ? compact_block_stride(w) : 0, ew = grouped ? compact_entry_words(w) : 0;           \
    uint64_t *ent = (blk) + (w)->levels * bstride;                                                                       \
    int32_t *plan = (int32_t *)(void *)(ent + (w)->levels * ew);                                                         \
    const int bitalg = grouped && compact_has_bitalg();                                                                  \
    if (bitalg) compact_plan(w, plan, (uint8_t *)(plan + 2 * ((ew + 1) / 2)))

BP_COMPACT_TARGET static void compact_decode_avx512(const bp_compact *w, int32_t firstRow, int32_t rowCount, float *out, int64_t ldo, uint64_t *blk) {
    const int32_t K = w->columns, end = firstRow + rowCount;
    int64_t ca[BP_MAX_LEVELS] = {0}, cs[BP_MAX_LEVELS] = {0};
    uint64_t act[BP_MAX_LEVELS] = {0}, sign[BP_MAX_LEVELS] = {0};
    __m512 pos[BP_MAX_LEVELS], neg[BP_MAX_LEVELS];
    const int32_t b0 = firstRow / BP_COMPACT_BLOCK;
    compact_cursors(w, b0, ca, cs);
    COMPACT_GROUPED_LOCALS(w, blk);
    const int64_t levelStride = w->scaleStride ? w->rows : 1;
    for (int32_t o = b0 * BP_COMPACT_BLOCK; o < end; o++) {
        const int32_t full = w->widths[o] & 15, any = w->widths[o] >> 4;
#define EXPAND_ROW(b, e) (bitalg ? compact_expand_row_bitalg(w, b, plan, (const uint8_t *)(plan + 2 * ((ew + 1) / 2)), e) : compact_expand_row_portable(w, b, e))
        COMPACT_ROW_BLOCKS(compact_pdep_bmi2, compact_popcnt_hw, EXPAND_ROW);
#undef EXPAND_ROW
        const float *mu = w->scales + (w->scaleStride ? (int64_t)o : 0);
        for (int32_t k = 0; k < any; k++) {
            pos[k] = _mm512_set1_ps(mu[k * levelStride]);
            neg[k] = _mm512_set1_ps(-mu[k * levelStride]);
        }
        float *y = out + (int64_t)(o - firstRow) * ldo;
        for (int32_t c0 = 0; c0 < K; c0 += 64) {
            const int32_t n = K - c0 < 64 ? K - c0 : 64;
            const uint64_t valid = n == 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1;
            const uint64_t s0 = bp_stream_bits(w->signs0, (int64_t)o * K + c0);
            COMPACT_LEVEL_WORDS(compact_pdep_bmi2, compact_popcnt_hw);
            if (o < firstRow) continue;
            for (int32_t q = 0; q < n; q += 16) {
                __m512 v = _mm512_mask_blend_ps((__mmask16)(s0 >> q), neg[0], pos[0]);
                for (int32_t k = 1; k < any; k++) {
                    const __m512 t = _mm512_mask_blend_ps((__mmask16)(sign[k] >> q), neg[k], pos[k]);
                    v = _mm512_mask_add_ps(v, (__mmask16)(act[k] >> q), v, t);
                }
                _mm512_mask_storeu_ps(y + c0 + q, (__mmask16)(valid >> q), v);
            }
        }
    }
}
/// The decode with each 16-lane vector multiplied into accumulators instead of stored.
BP_COMPACT_TARGET static void compact_gemv_avx512(const bp_compact *w, int32_t firstRow, int32_t rowCount, const float *x, float *y, uint64_t *blk) {
    const int32_t K = w->columns, end = firstRow + rowCount;
    int64_t ca[BP_MAX_LEVELS] = {0}, cs[BP_MAX_LEVELS] = {0};
    uint64_t act[BP_MAX_LEVELS] = {0}, sign[BP_MAX_LEVELS] = {0};
    __m512 pos[BP_MAX_LEVELS], neg[BP_MAX_LEVELS];
    const int32_t b0 = firstRow / BP_COMPACT_BLOCK;
    compact_cursors(w, b0, ca, cs);
    COMPACT_GROUPED_LOCALS(w, blk);
    const int64_t levelStride = w->scaleStride ? w->rows : 1;
    for (int32_t o = b0 * BP_COMPACT_BLOCK; o < end; o++) {
        const int32_t full = w->widths[o] & 15, any = w->widths[o] >> 4;
#define EXPAND_ROW(b, e) (bitalg ? compact_expand_row_bitalg(w, b, plan, (const uint8_t *)(plan + 2 * ((ew + 1) / 2)), e) : compact_expand_row_portable(w, b, e))
        COMPACT_ROW_BLOCKS(compact_pdep_bmi2, compact_popcnt_hw, EXPAND_ROW);
#undef EXPAND_ROW
        const float *mu = w->scales + (w->scaleStride ? (int64_t)o : 0);
        for (int32_t k = 0; k < any; k++) {
            pos[k] = _mm512_set1_ps(mu[k * levelStride]);
            neg[k] = _mm512_set1_ps(-mu[k * levelStride]);
        }
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int32_t c0 = 0; c0 < K; c0 += 64) {
            const int32_t n = K - c0 < 64 ? K - c0 : 64;
            const uint64_t valid = n == 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1;
            const uint64_t s0 = bp_stream_bits(w->signs0, (int64_t)o * K + c0);
            COMPACT_LEVEL_WORDS(compact_pdep_bmi2, compact_popcnt_hw);
            if (o < firstRow) continue;
            for (int32_t q = 0; q < 4 && 16 * q < n; q++) {
                __m512 v = _mm512_mask_blend_ps((__mmask16)(s0 >> 16 * q), neg[0], pos[0]);
                for (int32_t k = 1; k < any; k++) {
                    const __m512 t = _mm512_mask_blend_ps((__mmask16)(sign[k] >> 16 * q), neg[k], pos[k]);
                    v = _mm512_mask_add_ps(v, (__mmask16)(act[k] >> 16 * q), v, t);
                }
                const __m512 xv = _mm512_maskz_loadu_ps((__mmask16)(valid >> 16 * q), x + c0 + 16 * q);
                acc[q] = _mm512_fmadd_ps(v, xv, acc[q]);
            }
        }
        if (o >= firstRow) y[o - firstRow] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
    }
}
#endif

int64_t bp_compact_gemv_scratch_floats(const bp_compact *w) {
    return 2 * bp_compact_block_words(w) + (int64_t)BP_COMPACT_BLOCK * w->columns;
}

void bp_compact_gemv(int isa, const bp_compact *w, int32_t firstRow, int32_t rowCount, const float *x, float *y, float *scratch) {
    if (rowCount <= 0) return;
    uint64_t *blk = (uint64_t *)(void *)scratch;
    float *buffer = scratch + 2 * bp_compact_block_words(w);
#if BP_COMPACT_X86
    if (isa >= BP_ISA_AVX512 && bp_isa() >= BP_ISA_AVX512) {
        compact_gemv_avx512(w, firstRow, rowCount, x, y, blk);
        return;
    }
#endif
    (void)isa;
    compact_gemv_portable(w, firstRow, rowCount, x, y, buffer, blk);
}

void bp_compact_decode(int isa, const bp_compact *w, int32_t firstRow, int32_t rowCount, float *out, int64_t ldo, uint64_t *blockBits) {
    if (rowCount <= 0) return;
#if BP_COMPACT_X86
    if (isa >= BP_ISA_AVX512 && bp_isa() >= BP_ISA_AVX512) {
        compact_decode_avx512(w, firstRow, rowCount, out, ldo, blockBits);
        return;
    }
#endif
    (void)isa;
    compact_decode_portable(w, firstRow, rowCount, out, ldo, blockBits);
}
