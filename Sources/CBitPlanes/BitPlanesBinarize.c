// Run-time binarization of activations (MBKernels ActivationBinarizer / MiddleOutMask): the
// passes over every entry, bit for bit the same arithmetic as MBBinarize's binarizer.
//
// Why C: the Swift loops walked index lists (a gather and a compaction per level) and compiled
// for baseline x86-64; they took longer than the popcount convolution they feed. Here the active
// set of a level is a predicate on the mask bytes, active values are compressed in order (so
// the canonical sum sees the same sequence: entry i of the active list in Double lane i % 8), and
// the sign/residual update is a masked vector pass. The portable variant is the scalar twin.
#include "CBitPlanes.h"
#include "BitPlanes+Neon.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/// Active at a level: mode 0 every entry; mode 1 mask[j] >= width; mode 2 mask[j] == 0.
static inline int active(const uint8_t *mask, int64_t j, int mode, uint8_t width) {
    return mode == 0 ? 1 : mode == 1 ? mask[j] >= width : mask[j] == 0;
}

static double combine(const double l[8]) { return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])); }

static double portable_abs_sum(const float *v, const uint8_t *mask, int64_t n, int mode, uint8_t width, int64_t *count) {
    double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (int64_t j = 0; j < n; j++)
        if (active(mask, j, mode, width)) { l[i & 7] += (double)fabsf(v[j]); i++; }
    *count = i;
    return combine(l);
}

static void portable_residual_level(float *r, const uint8_t *mask, int64_t n, int mode, uint8_t width, float mu, uint64_t *bits) {
    for (int64_t j = 0; j < n; j++) {
        if (!active(mask, j, mode, width)) continue;
        const float e = r[j];
        const int positive = e >= 0;
        if (positive) bits[j >> 6] |= (uint64_t)1 << (j & 63);
        r[j] = positive ? e - mu : e - (-mu);
    }
}

/// The residual level, then the next level's canonical sum (entries with mask >= next; a subset
/// of this level's active set, so every value it reads was just updated) in the same pass.
static double portable_residual_level_sum(float *r, const uint8_t *mask, int64_t n, int mode, uint8_t width, float mu, uint64_t *bits,
                                          uint8_t next, int64_t *count) {
    double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (int64_t j = 0; j < n; j++) {
        if (!active(mask, j, mode, width)) continue;
        const float e = r[j];
        const int positive = e >= 0;
        if (positive) bits[j >> 6] |= (uint64_t)1 << (j & 63);
        r[j] = positive ? e - mu : e - (-mu);
        if (next && mask[j] >= next) { l[i & 7] += (double)fabsf(r[j]); i++; }
    }
    *count = i;
    return combine(l);
}

#if defined(__x86_64__)
#include <immintrin.h>
#define BZ_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

BZ_TARGET static inline __mmask16 avx512_active(const uint8_t *mask, int64_t j, __mmask16 valid, int mode, uint8_t width) {
    if (mode == 0) return valid;
    const __m128i m = _mm_maskz_loadu_epi8(valid, mask + j);
    return mode == 1 ? _mm_mask_cmpge_epu8_mask(valid, m, _mm_set1_epi8((char)width))
                     : _mm_mask_cmpeq_epu8_mask(valid, m, _mm_setzero_si128());
}

/// The active |v| are compressed 16 at a time into a queue, drained 8 at a time into the Double
/// lanes, so lane q receives active entries q, q + 8, ... exactly as the scalar loop. With every
/// entry active the queue is skipped.
BZ_TARGET static double avx512_abs_sum(const float *v, const uint8_t *mask, int64_t n, int mode, uint8_t width, int64_t *count) {
    __m512d acc = _mm512_setzero_pd();
    const __m512 signBit = _mm512_set1_ps(-0.0f);
    double l[8];
    if (mode == 0) {
        int64_t j = 0;
        for (; j + 8 <= n; j += 8) acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_loadu_ps(v + j))));
        _mm512_storeu_pd(l, acc);
        for (int i = 0; j < n; j++, i++) l[i] += (double)fabsf(v[j]);
        *count = n;
        return combine(l);
    }
    enum { QUEUE = 1024 };
    float queue[QUEUE + 16];
    int q = 0;
    int64_t total = 0;
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 valid = n - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        const __mmask16 a = avx512_active(mask, j, valid, mode, width);
        if (a == 0) continue;
        const __m512 x = _mm512_andnot_ps(signBit, _mm512_maskz_loadu_ps(a, v + j));
        _mm512_storeu_ps(queue + q, _mm512_maskz_compress_ps(a, x));
        q += __builtin_popcount(a);
        total += __builtin_popcount(a);
        if (q >= QUEUE) {
            int i = 0;
            for (; i + 8 <= q; i += 8) acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_loadu_ps(queue + i)));
            for (int t = 0; i + t < q; t++) queue[t] = queue[i + t];
            q -= i;
        }
    }
    int i = 0;
    for (; i + 8 <= q; i += 8) acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_loadu_ps(queue + i)));
    _mm512_storeu_pd(l, acc);
    for (int t = 0; i < q; i++, t++) l[t] += (double)queue[i];
    *count = total;
    return combine(l);
}

BZ_TARGET static void avx512_residual_level(float *r, const uint8_t *mask, int64_t n, int mode, uint8_t width, float mu, uint64_t *bits) {
    const __m512 m = _mm512_set1_ps(mu), zero = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 valid = n - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        const __mmask16 a = avx512_active(mask, j, valid, mode, width);
        if (a == 0) continue;
        const __m512 e = _mm512_maskz_loadu_ps(a, r + j);
        const __mmask16 pos = _mm512_mask_cmp_ps_mask(a, e, zero, _CMP_GE_OQ);
        // e - mu where positive, e - (-mu) (= e + mu, the same rounding) where negative.
        __m512 out = _mm512_mask_sub_ps(e, pos, e, m);
        out = _mm512_mask_add_ps(out, a & (__mmask16)~pos, e, m);
        _mm512_mask_storeu_ps(r + j, a, out);
        bits[j >> 6] |= (uint64_t)pos << (j & 63);
    }
}

/// The canonical sum of a pass's compressed values (see avx512_abs_sum): values are queued in
/// order and drained 8 at a time into the Double lanes.
enum { SUM_QUEUE = 1024 };
typedef struct {
    float items[SUM_QUEUE + 16];
    int queued;
    int64_t total;
    double lanes[8];
} abs_queue;

BZ_TARGET static inline void queue_drain(abs_queue *s, int last) {
    __m512d acc = _mm512_loadu_pd(s->lanes);
    int i = 0;
    for (; i + 8 <= s->queued; i += 8) acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_loadu_ps(s->items + i)));
    _mm512_storeu_pd(s->lanes, acc);
    if (last) {
        for (int t = 0; i < s->queued; i++, t++) s->lanes[t] += (double)s->items[i];
        s->queued = 0;
        return;
    }
    for (int t = 0; i + t < s->queued; t++) s->items[t] = s->items[i + t];
    s->queued -= i;
}

/// Queues the lanes `keep` of x (non-negative values), in lane order.
BZ_TARGET static inline void queue_push(abs_queue *s, __mmask16 keep, __m512 x) {
    if (keep == 0) return;
    _mm512_storeu_ps(s->items + s->queued, _mm512_maskz_compress_ps(keep, x));
    s->queued += __builtin_popcount(keep);
    s->total += __builtin_popcount(keep);
    if (s->queued >= SUM_QUEUE) queue_drain(s, 0);
}

BZ_TARGET static inline double queue_sum(abs_queue *s, int64_t *count) {
    queue_drain(s, 1);
    *count = s->total;
    return combine(s->lanes);
}

BZ_TARGET static double avx512_residual_level_sum(float *r, const uint8_t *mask, int64_t n, int mode, uint8_t width, float mu, uint64_t *bits,
                                                  uint8_t next, int64_t *count) {
    const __m512 m = _mm512_set1_ps(mu), zero = _mm512_setzero_ps(), signBit = _mm512_set1_ps(-0.0f);
    abs_queue q = {.queued = 0, .total = 0, .lanes = {0, 0, 0, 0, 0, 0, 0, 0}};
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 valid = n - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        const __mmask16 a = avx512_active(mask, j, valid, mode, width);
        if (a == 0) continue;
        const __m512 e = _mm512_maskz_loadu_ps(a, r + j);
        const __mmask16 pos = _mm512_mask_cmp_ps_mask(a, e, zero, _CMP_GE_OQ);
        __m512 out = _mm512_mask_sub_ps(e, pos, e, m);
        out = _mm512_mask_add_ps(out, a & (__mmask16)~pos, e, m);
        _mm512_mask_storeu_ps(r + j, a, out);
        bits[j >> 6] |= (uint64_t)pos << (j & 63);
        if (next) queue_push(&q, avx512_active(mask, j, valid, 1, next), _mm512_andnot_ps(signBit, out));
    }
    return queue_sum(&q, count);
}
#endif

double bp_active_abs_sum(int isa, const float *v, const uint8_t *mask, int64_t n, int32_t mode, uint8_t width, int64_t *count) {
#if defined(__x86_64__)
    if (isa >= BP_ISA_AVX512 && bp_isa() >= BP_ISA_AVX512) return avx512_abs_sum(v, mask, n, mode, width, count);
#endif
#if defined(__aarch64__)
    if (isa >= BP_ISA_NEON && bp_isa() >= BP_ISA_NEON) return bp_neon_abs_sum(v, mask, n, mode, width, count);
#endif
    (void)isa;
    return portable_abs_sum(v, mask, n, mode, width, count);
}

void bp_residual_level(int isa, float *r, const uint8_t *mask, int64_t n, int32_t mode, uint8_t width, float mu, uint64_t *bits) {
#if defined(__x86_64__)
    if (isa >= BP_ISA_AVX512 && bp_isa() >= BP_ISA_AVX512) { avx512_residual_level(r, mask, n, mode, width, mu, bits); return; }
#endif
#if defined(__aarch64__)
    if (isa >= BP_ISA_NEON && bp_isa() >= BP_ISA_NEON) { bp_neon_residual_level(r, mask, n, mode, width, mu, bits); return; }
#endif
    (void)isa;
    portable_residual_level(r, mask, n, mode, width, mu, bits);
}

double bp_residual_level_sum(int isa, float *r, const uint8_t *mask, int64_t n, int32_t mode, uint8_t width, float mu, uint64_t *bits,
                             uint8_t next, int64_t *count) {
#if defined(__x86_64__)
    if (isa >= BP_ISA_AVX512 && bp_isa() >= BP_ISA_AVX512) return avx512_residual_level_sum(r, mask, n, mode, width, mu, bits, next, count);
#endif
#if defined(__aarch64__)
    if (isa >= BP_ISA_NEON && bp_isa() >= BP_ISA_NEON) return bp_neon_residual_level_sum(r, mask, n, mode, width, mu, bits, next, count);
#endif
    (void)isa;
    return portable_residual_level_sum(r, mask, n, mode, width, mu, bits, next, count);
}

#if defined(__x86_64__)
/// Eight entries at once when their groups are consecutive ids (a channel-major input's
/// channel row: neighbouring pixels are neighbouring groups) and all unassigned: each group
/// still receives its own entries in index order, so the sums are the scalar ones.
static inline __attribute__((always_inline)) BZ_TARGET void avx512_group_keys_body(const float *v, const uint8_t *mask, int64_t n, const uint32_t *ids, double mean,
                                                                                 double *sum, int64_t *size, const int sizes) {
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m512d m = _mm512_set1_pd(mean), signBit = _mm512_set1_pd(-0.0);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        uint64_t m8;
        memcpy(&m8, mask + j, 8);
        const __m256i g = _mm256_loadu_si256((const __m256i *)(ids + j));
        const __m256i expect = _mm256_add_epi32(_mm256_set1_epi32((int)ids[j]), iota);
        if (_mm256_cmpeq_epi32_mask(g, expect) == 0xFF) {
            // Lanes of assigned entries (mask != 0, later rounds) are left out by masked adds.
            const __mmask8 open = _mm_cmpeq_epi8_mask(_mm_cvtsi64_si128((long long)m8), _mm_setzero_si128()) & 0xFF;
            const uint32_t g0 = ids[j];
            const __m512d x = _mm512_andnot_pd(signBit, _mm512_cvtps_pd(_mm256_loadu_ps(v + j)));
            const __m512d key = _mm512_andnot_pd(signBit, _mm512_sub_pd(x, m));
            const __m512d s0 = _mm512_loadu_pd(sum + g0);
            _mm512_storeu_pd(sum + g0, _mm512_mask_add_pd(s0, open, s0, key));
            if (sizes) {
                const __m512i z0 = _mm512_loadu_si512(size + g0);
                _mm512_storeu_si512(size + g0, _mm512_mask_add_epi64(z0, open, z0, _mm512_set1_epi64(1)));
            }
            continue;
        }
        for (int64_t i = j; i < j + 8; i++) {
            if (mask[i] != 0) continue;
            sum[ids[i]] += fabs((double)fabsf(v[i]) - mean);
            if (sizes) size[ids[i]] += 1;
        }
    }
    for (; j < n; j++) {
        if (mask[j] != 0) continue;
        sum[ids[j]] += fabs((double)fabsf(v[j]) - mean);
        if (sizes) size[ids[j]] += 1;
    }
}

/// Without sizes (size == NULL) the pass leaves out half of its read-modify-writes: a channel
/// row's sums (25 KB at 56x56) then stay in L1.
BZ_TARGET static void avx512_group_keys(const float *v, const uint8_t *mask, int64_t n, const uint32_t *ids, double mean, double *sum, int64_t *size) {
    if (size) avx512_group_keys_body(v, mask, n, ids, mean, sum, size, 1);
    else avx512_group_keys_body(v, mask, n, ids, mean, sum, size, 0);
}
#endif

void bp_group_keys(int isa, const float *v, const uint8_t *mask, int64_t n, const uint32_t *ids, double mean, double *sum, int64_t *size) {
    (void)isa;
#if defined(__x86_64__)
    if (isa >= BP_ISA_AVX512 && bp_isa() >= BP_ISA_AVX512) { avx512_group_keys(v, mask, n, ids, mean, sum, size); return; }
#endif
#if defined(__aarch64__)
    if (isa >= BP_ISA_NEON && bp_isa() >= BP_ISA_NEON) { bp_neon_group_keys(v, mask, n, ids, mean, sum, size); return; }
#endif
    for (int64_t j = 0; j < n; j++) {
        if (mask[j] != 0) continue;
        const uint32_t g = ids[j];
        sum[g] += fabs((double)fabsf(v[j]) - mean);
        if (size) size[g] += 1;
    }
}

#if defined(__x86_64__)
/// Marks 16 entries from j (all valid) and returns the lanes still unassigned. When their groups
/// are consecutive ids (a channel-major input's channel row) the mask bytes, the groups'
/// choices and the update are one vector each; otherwise entry by entry.
BZ_TARGET static inline __mmask16 mark16(uint8_t *mask, int64_t j, const uint32_t *ids, const uint8_t *chosen, uint8_t mark) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i g = _mm512_loadu_si512((const void *)(ids + j));
    __m128i m = _mm_loadu_si128((const __m128i *)(mask + j));
    if (_mm512_cmpeq_epi32_mask(g, _mm512_add_epi32(_mm512_set1_epi32((int)ids[j]), iota)) == 0xFFFF) {
        // ids[j] + 15 is a group, so the 16 bytes of `chosen` from ids[j] exist.
        const __m128i c = _mm_loadu_si128((const __m128i *)(chosen + ids[j]));
        const __mmask16 open = _mm_cmpeq_epi8_mask(m, _mm_setzero_si128());
        const __mmask16 pick = _mm_mask_cmpneq_epi8_mask(open, c, _mm_setzero_si128());
        if (pick) _mm_storeu_si128((__m128i *)(mask + j), _mm_mask_mov_epi8(m, pick, _mm_set1_epi8((char)mark)));
        return open & (__mmask16)~pick;
    }
    for (int64_t i = j; i < j + 16; i++)
        if (mask[i] == 0 && chosen[ids[i]]) mask[i] = mark;
    m = _mm_loadu_si128((const __m128i *)(mask + j));
    return _mm_cmpeq_epi8_mask(m, _mm_setzero_si128());
}

BZ_TARGET static void avx512_mark_groups(uint8_t *mask, int64_t n, const uint32_t *ids, const uint8_t *chosen, uint8_t mark) {
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) (void)mark16(mask, j, ids, chosen, mark);
    for (; j < n; j++)
        if (mask[j] == 0 && chosen[ids[j]]) mask[j] = mark;
}
#endif

#if defined(__x86_64__)
/// avx512_mark_groups, then the canonical sum of |v| over the entries still unassigned (the next
/// round's mean) from the same registers.
BZ_TARGET static double avx512_mark_groups_sum(const float *v, uint8_t *mask, int64_t n, const uint32_t *ids, const uint8_t *chosen, uint8_t mark,
                                               int64_t *count) {
    const __m512 signBit = _mm512_set1_ps(-0.0f);
    abs_queue q = {.queued = 0, .total = 0, .lanes = {0, 0, 0, 0, 0, 0, 0, 0}};
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __mmask16 still = mark16(mask, j, ids, chosen, mark);
        queue_push(&q, still, _mm512_andnot_ps(signBit, _mm512_loadu_ps(v + j)));
    }
    for (; j < n; j++) {
        if (mask[j] == 0 && chosen[ids[j]]) mask[j] = mark;
        if (mask[j] == 0) queue_push(&q, 1, _mm512_andnot_ps(signBit, _mm512_maskz_loadu_ps(1, v + j)));
    }
    return queue_sum(&q, count);
}
#endif

double bp_mark_groups_sum(int isa, const float *v, uint8_t *mask, int64_t n, const uint32_t *ids, const uint8_t *chosen, uint8_t mark, int64_t *count) {
#if defined(__x86_64__)
    if (isa >= BP_ISA_AVX512 && bp_isa() >= BP_ISA_AVX512) return avx512_mark_groups_sum(v, mask, n, ids, chosen, mark, count);
#endif
#if defined(__aarch64__)
    if (isa >= BP_ISA_NEON && bp_isa() >= BP_ISA_NEON) return bp_neon_mark_groups_sum(v, mask, n, ids, chosen, mark, count);
#endif
    (void)isa;
    double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (int64_t j = 0; j < n; j++) {
        if (mask[j] == 0 && chosen[ids[j]]) mask[j] = mark;
        if (mask[j] == 0) { l[i & 7] += (double)fabsf(v[j]); i++; }
    }
    *count = i;
    return combine(l);
}

void bp_mark_groups(int isa, uint8_t *mask, int64_t n, const uint32_t *ids, const uint8_t *chosen, uint8_t mark) {
    (void)isa;
#if defined(__x86_64__)
    if (isa >= BP_ISA_AVX512 && bp_isa() >= BP_ISA_AVX512) { avx512_mark_groups(mask, n, ids, chosen, mark); return; }
#endif
#if defined(__aarch64__)
    if (isa >= BP_ISA_NEON && bp_isa() >= BP_ISA_NEON) { bp_neon_mark_groups(mask, n, ids, chosen, mark); return; }
#endif
    for (int64_t j = 0; j < n; j++)
        if (mask[j] == 0 && chosen[ids[j]]) mask[j] = mark;
}

/// The k-th smallest (0-based) of a[0 ..< n], all non-negative (so a value orders like its bit
/// pattern): radix select, 11 bits at a time from the top, keeping the boundary bucket's
/// candidates. Exact, and without the mispredicted branches of a quickselect's partitions (the
/// keys of neighbouring groups are coin flips). Reorders a.
static double kth_smallest(double *a, int64_t n, int64_t k) {
    enum { DIGIT = 11, BUCKETS = 1 << DIGIT };
    static _Thread_local int64_t histogram[BUCKETS];
    uint64_t *bits = (uint64_t *)a;
    for (int shift = 64 - DIGIT; n > 1; shift -= DIGIT) {
        const int s = shift < 0 ? 0 : shift;
        const uint64_t digitMask = shift < 0 ? ((uint64_t)1 << (DIGIT + shift)) - 1 : BUCKETS - 1;
        memset(histogram, 0, sizeof histogram);
        for (int64_t i = 0; i < n; i++) histogram[(bits[i] >> s) & digitMask]++;
        int64_t below = 0, bucket = 0;
        while (below + histogram[bucket] <= k) below += histogram[bucket++];
        int64_t kept = 0;
        for (int64_t i = 0; i < n; i++) {
            const uint64_t b = bits[i];
            bits[kept] = b;
            kept += ((b >> s) & digitMask) == (uint64_t)bucket;
        }
        n = kept;
        k -= below;
        if (s == 0) break;  // every bit decided: the candidates are equal
    }
    return a[0];
}

int64_t bp_choose_groups(double *sum, const int64_t *size, int64_t groups, int64_t c, uint8_t *chosen, double *scratch) {
    int64_t candidates = 0;
    for (int64_t g = 0; g < groups; g++) {
        chosen[g] = 0;
        if (size[g] > 0) { sum[g] /= (double)size[g]; scratch[candidates++] = sum[g]; }
    }
    if (c > candidates) c = candidates;
    if (c <= 0) return 0;
    const double threshold = kth_smallest(scratch, candidates, c - 1);
    int64_t taken = 0;
    for (int64_t g = 0; g < groups; g++)
        if (size[g] > 0 && sum[g] < threshold) { chosen[g] = 1; taken++; }
    for (int64_t g = 0; g < groups && taken < c; g++)
        if (size[g] > 0 && sum[g] == threshold) { chosen[g] = 1; taken++; }
    return taken;
}

void bp_fill_unassigned(uint8_t *mask, int64_t n, uint8_t width) {
    for (int64_t j = 0; j < n; j++) mask[j] = mask[j] == 0 ? width : mask[j];
}

// Runs: maximal stretches of consecutive group ids, as triples (first entry, length, its group),
// in index order and covering every entry. A channel-major conv input has one per channel row,
// so the passes below read no ids (4 bytes per entry, 4 passes per binarization otherwise).

static void portable_group_keys_runs(const float *v, const uint8_t *mask, const int64_t *runs, int64_t count, double mean, double *sum, int64_t *size) {
    for (int64_t q = 0; q < count; q++) {
        const int64_t j0 = runs[3 * q], len = runs[3 * q + 1], g0 = runs[3 * q + 2];
        for (int64_t i = 0; i < len; i++) {
            if (mask[j0 + i] != 0) continue;
            sum[g0 + i] += fabs((double)fabsf(v[j0 + i]) - mean);
            if (size) size[g0 + i] += 1;
        }
    }
}

static double portable_mark_groups_runs(const float *v, uint8_t *mask, const int64_t *runs, int64_t count, const uint8_t *chosen, uint8_t mark,
                                        uint8_t fill, int64_t *remaining) {
    double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = 0;
    for (int64_t q = 0; q < count; q++) {
        const int64_t j0 = runs[3 * q], len = runs[3 * q + 1], g0 = runs[3 * q + 2];
        for (int64_t i = 0; i < len; i++) {
            if (mask[j0 + i] == 0) mask[j0 + i] = chosen[g0 + i] ? mark : fill;
            if (v && mask[j0 + i] == 0) { l[k & 7] += (double)fabsf(v[j0 + i]); k++; }
        }
    }
    if (remaining) *remaining = k;
    return combine(l);
}

#if defined(__x86_64__)
static inline __attribute__((always_inline)) BZ_TARGET void avx512_group_keys_runs_body(const float *v, const uint8_t *mask, const int64_t *runs, int64_t count,
                                                                                      double mean, double *sum, int64_t *size, const int sizes) {
    const __m512d m = _mm512_set1_pd(mean), signBit = _mm512_set1_pd(-0.0);
    for (int64_t q = 0; q < count; q++) {
        const int64_t j0 = runs[3 * q], len = runs[3 * q + 1], g0 = runs[3 * q + 2];
        int64_t i = 0;
        for (; i + 8 <= len; i += 8) {
            uint64_t m8;
            memcpy(&m8, mask + j0 + i, 8);
            const __mmask8 open = _mm_cmpeq_epi8_mask(_mm_cvtsi64_si128((long long)m8), _mm_setzero_si128()) & 0xFF;
            if (open == 0) continue;
            const __m512d x = _mm512_andnot_pd(signBit, _mm512_cvtps_pd(_mm256_loadu_ps(v + j0 + i)));
            const __m512d key = _mm512_andnot_pd(signBit, _mm512_sub_pd(x, m));
            const __m512d s0 = _mm512_loadu_pd(sum + g0 + i);
            _mm512_storeu_pd(sum + g0 + i, _mm512_mask_add_pd(s0, open, s0, key));
            if (sizes) {
                const __m512i z0 = _mm512_loadu_si512(size + g0 + i);
                _mm512_storeu_si512(size + g0 + i, _mm512_mask_add_epi64(z0, open, z0, _mm512_set1_epi64(1)));
            }
        }
        for (; i < len; i++) {
            if (mask[j0 + i] != 0) continue;
            sum[g0 + i] += fabs((double)fabsf(v[j0 + i]) - mean);
            if (sizes) size[g0 + i] += 1;
        }
    }
}

BZ_TARGET static void avx512_group_keys_runs(const float *v, const uint8_t *mask, const int64_t *runs, int64_t count, double mean, double *sum, int64_t *size) {
    if (size) avx512_group_keys_runs_body(v, mask, runs, count, mean, sum, size, 1);
    else avx512_group_keys_runs_body(v, mask, runs, count, mean, sum, size, 0);
}

BZ_TARGET static double avx512_mark_groups_runs(const float *v, uint8_t *mask, const int64_t *runs, int64_t count, const uint8_t *chosen, uint8_t mark,
                                                uint8_t fill, int64_t *remaining) {
    const __m512 signBit = _mm512_set1_ps(-0.0f);
    abs_queue acc = {.queued = 0, .total = 0, .lanes = {0, 0, 0, 0, 0, 0, 0, 0}};
    for (int64_t q = 0; q < count; q++) {
        const int64_t j0 = runs[3 * q], len = runs[3 * q + 1], g0 = runs[3 * q + 2];
        int64_t i = 0;
        for (; i + 16 <= len; i += 16) {
            const __m128i m = _mm_loadu_si128((const __m128i *)(mask + j0 + i));
            const __m128i c = _mm_loadu_si128((const __m128i *)(chosen + g0 + i));
            const __mmask16 open = _mm_cmpeq_epi8_mask(m, _mm_setzero_si128());
            const __mmask16 pick = _mm_mask_cmpneq_epi8_mask(open, c, _mm_setzero_si128());
            const __mmask16 rest = open & (__mmask16)~pick;
            __m128i out = _mm_mask_mov_epi8(m, pick, _mm_set1_epi8((char)mark));
            if (fill) out = _mm_mask_mov_epi8(out, rest, _mm_set1_epi8((char)fill));
            if (pick || (fill && rest)) _mm_storeu_si128((__m128i *)(mask + j0 + i), out);
            if (v) queue_push(&acc, rest, _mm512_andnot_ps(signBit, _mm512_loadu_ps(v + j0 + i)));
        }
        for (; i < len; i++) {
            const int64_t j = j0 + i;
            if (mask[j] == 0) mask[j] = chosen[g0 + i] ? mark : fill;
            if (v && mask[j] == 0) queue_push(&acc, 1, _mm512_andnot_ps(signBit, _mm512_maskz_loadu_ps(1, v + j)));
        }
    }
    int64_t k = 0;
    const double total = queue_sum(&acc, &k);
    if (remaining) *remaining = k;
    return total;
}
#endif

void bp_group_keys_runs(int isa, const float *v, const uint8_t *mask, const int64_t *runs, int64_t count, double mean, double *sum, int64_t *size) {
#if defined(__x86_64__)
    if (isa >= BP_ISA_AVX512 && bp_isa() >= BP_ISA_AVX512) { avx512_group_keys_runs(v, mask, runs, count, mean, sum, size); return; }
#endif
#if defined(__aarch64__)
    if (isa >= BP_ISA_NEON && bp_isa() >= BP_ISA_NEON) { bp_neon_group_keys_runs(v, mask, runs, count, mean, sum, size); return; }
#endif
    (void)isa;
    portable_group_keys_runs(v, mask, runs, count, mean, sum, size);
}

double bp_mark_groups_runs(int isa, const float *v, uint8_t *mask, const int64_t *runs, int64_t count, const uint8_t *chosen, uint8_t mark,
                           uint8_t fill, int64_t *remaining) {
#if defined(__x86_64__)
    if (isa >= BP_ISA_AVX512 && bp_isa() >= BP_ISA_AVX512) return avx512_mark_groups_runs(v, mask, runs, count, chosen, mark, fill, remaining);
#endif
#if defined(__aarch64__)
    if (isa >= BP_ISA_NEON && bp_isa() >= BP_ISA_NEON) return bp_neon_mark_groups_runs(v, mask, runs, count, chosen, mark, fill, remaining);
#endif
    (void)isa;
    return portable_mark_groups_runs(v, mask, runs, count, chosen, mark, fill, remaining);
}
