// The run-time binarization passes (BitPlanesBinarize.c) for aarch64 NEON, chosen at build time
// (NEON is part of every aarch64 CPU); bit for bit the portable passes' results. Compiles to
// nothing elsewhere.
//
// The canonical Double sum gives active entry i to lane i % 8. NEON has no compress, so the
// lanes live in four float64x2 registers *rotated* by the phase (the active count mod 8): a run
// of 8 active entries adds straight into them without moving anything (the phase is unchanged),
// and only a partly active group of 8 goes through the lanes in memory, entry by entry in
// order. Each lane still receives its entries in index order, so the sums are the scalar ones.
#include "BitPlanes+Neon.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <math.h>
#include <string.h>

static const uint8_t bitWeights[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};

/// Bit t of the result = lane t of a 0x00/0xFF byte vector.
static inline uint32_t bits8(uint8x8_t m) { return vaddv_u8(vand_u8(m, vld1_u8(bitWeights))); }
static inline uint32_t bits16(uint8x16_t m) {
    const uint8x16_t w = vandq_u8(m, vld1q_u8(bitWeights));
    return vaddv_u8(vget_low_u8(w)) | (vaddv_u8(vget_high_u8(w)) << 8);
}

/// The 8 mask bytes from j active under mode 0 (all), 1 (>= width) or 2 (== 0), as bits.
static inline uint32_t active8(const uint8_t *mask, int64_t j, int mode, uint8_t width) {
    if (mode == 0) return 0xFF;
    const uint8x8_t m = vld1_u8(mask + j);
    return bits8(mode == 1 ? vcge_u8(m, vdup_n_u8(width)) : vceq_u8(m, vdup_n_u8(0)));
}

static inline int scalar_active(const uint8_t *mask, int64_t j, int mode, uint8_t width) {
    return mode == 0 ? 1 : mode == 1 ? mask[j] >= width : mask[j] == 0;
}

/// The canonical sum's state: r[q] holds lanes (phase + 2q) % 8 and (phase + 2q + 1) % 8.
typedef struct {
    float64x2_t r[4];
    int64_t count;
} canon;

static inline canon canon_start(void) {
    canon c;
    for (int q = 0; q < 4; q++) c.r[q] = vdupq_n_f64(0.0);
    c.count = 0;
    return c;
}

static inline void canon_spill(const canon *c, double l[8]) {
    double t[8];
    for (int q = 0; q < 4; q++) vst1q_f64(t + 2 * q, c->r[q]);
    const int ph = (int)(c->count & 7);
    for (int q = 0; q < 8; q++) l[(ph + q) & 7] = t[q];
}

static inline void canon_load(canon *c, const double l[8]) {
    double t[8];
    const int ph = (int)(c->count & 7);
    for (int q = 0; q < 8; q++) t[q] = l[(ph + q) & 7];
    for (int q = 0; q < 4; q++) c->r[q] = vld1q_f64(t + 2 * q);
}

/// Adds the entries `keep` (bit t = entry t) of the 8 non-negative floats lo, hi in order.
static inline __attribute__((always_inline)) void canon_add8(canon *c, uint32_t keep, float32x4_t lo, float32x4_t hi) {
    if (keep == 0) return;
    if (keep == 0xFF) {
        c->r[0] = vaddq_f64(c->r[0], vcvt_f64_f32(vget_low_f32(lo)));
        c->r[1] = vaddq_f64(c->r[1], vcvt_high_f64_f32(lo));
        c->r[2] = vaddq_f64(c->r[2], vcvt_f64_f32(vget_low_f32(hi)));
        c->r[3] = vaddq_f64(c->r[3], vcvt_high_f64_f32(hi));
        c->count += 8;
        return;
    }
    float x[8];
    vst1q_f32(x, lo);
    vst1q_f32(x + 4, hi);
    double l[8];
    canon_spill(c, l);
    for (int t = 0; t < 8; t++)
        if ((keep >> t) & 1) { l[c->count & 7] += (double)x[t]; c->count++; }
    canon_load(c, l);
}

/// One non-negative value.
static inline void canon_add1(canon *c, float x) {
    double l[8];
    canon_spill(c, l);
    l[c->count & 7] += (double)x;
    c->count++;
    canon_load(c, l);
}

static inline double canon_sum(const canon *c, int64_t *count) {
    double l[8];
    canon_spill(c, l);
    if (count) *count = c->count;
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

double bp_neon_abs_sum(const float *v, const uint8_t *mask, int64_t n, int mode, uint8_t width, int64_t *count) {
    canon c = canon_start();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        canon_add8(&c, active8(mask, j, mode, width), vabsq_f32(vld1q_f32(v + j)), vabsq_f32(vld1q_f32(v + j + 4)));
    for (; j < n; j++)
        if (scalar_active(mask, j, mode, width)) canon_add1(&c, fabsf(v[j]));
    return canon_sum(&c, count);
}

/// Eight entries of one residual level: r -= mu where r >= 0, r -= -mu elsewhere (e - (-mu) is
/// e + mu, the same rounding), for the entries `act`; returns the positive ones' bits.
static inline __attribute__((always_inline)) uint32_t residual8(float *r, int64_t j, uint32_t act, float mu, float32x4_t *outLo, float32x4_t *outHi) {
    const float32x4_t m = vdupq_n_f32(mu), zero = vdupq_n_f32(0.0f);
    const float32x4_t e0 = vld1q_f32(r + j), e1 = vld1q_f32(r + j + 4);
    const uint32x4_t p0 = vcgeq_f32(e0, zero), p1 = vcgeq_f32(e1, zero);
    float32x4_t o0 = vbslq_f32(p0, vsubq_f32(e0, m), vaddq_f32(e0, m));
    float32x4_t o1 = vbslq_f32(p1, vsubq_f32(e1, m), vaddq_f32(e1, m));
    // Lane masks of the active entries.
    const uint32x4_t w0 = {1, 2, 4, 8}, w1 = {16, 32, 64, 128};
    o0 = vbslq_f32(vtstq_u32(vdupq_n_u32(act), w0), o0, e0);
    o1 = vbslq_f32(vtstq_u32(vdupq_n_u32(act), w1), o1, e1);
    vst1q_f32(r + j, o0);
    vst1q_f32(r + j + 4, o1);
    *outLo = o0;
    *outHi = o1;
    const uint16x8_t pos16 = vcombine_u16(vmovn_u32(p0), vmovn_u32(p1));
    return bits8(vmovn_u16(pos16)) & act;
}

static inline void residual1(float *r, int64_t j, float mu, uint64_t *bits) {
    const float e = r[j];
    const int positive = e >= 0;
    if (positive) bits[j >> 6] |= (uint64_t)1 << (j & 63);
    r[j] = positive ? e - mu : e - (-mu);
}

void bp_neon_residual_level(float *r, const uint8_t *mask, int64_t n, int mode, uint8_t width, float mu, uint64_t *bits) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const uint32_t act = active8(mask, j, mode, width);
        if (act == 0) continue;
        float32x4_t lo, hi;
        bits[j >> 6] |= (uint64_t)residual8(r, j, act, mu, &lo, &hi) << (j & 63);
    }
    for (; j < n; j++)
        if (scalar_active(mask, j, mode, width)) residual1(r, j, mu, bits);
}

double bp_neon_residual_level_sum(float *r, const uint8_t *mask, int64_t n, int mode, uint8_t width, float mu, uint64_t *bits,
                                  uint8_t next, int64_t *count) {
    canon c = canon_start();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const uint32_t act = active8(mask, j, mode, width);
        if (act == 0) continue;
        float32x4_t lo, hi;
        bits[j >> 6] |= (uint64_t)residual8(r, j, act, mu, &lo, &hi) << (j & 63);
        if (next) canon_add8(&c, act & active8(mask, j, 1, next), vabsq_f32(lo), vabsq_f32(hi));
    }
    for (; j < n; j++) {
        if (!scalar_active(mask, j, mode, width)) continue;
        residual1(r, j, mu, bits);
        if (next && mask[j] >= next) canon_add1(&c, fabsf(r[j]));
    }
    return canon_sum(&c, count);
}

/// Group keys of 8 unassigned entries (mask 0) of consecutive groups g0 ..< g0 + 8: sum[g] +=
/// | |v| - mean | (and size[g] += 1), leaving the assigned ones' groups untouched.
static inline __attribute__((always_inline)) void keys8(const float *v, const uint8_t *mask, double mean, double *sum, int64_t *size) {
    const uint32_t open = bits8(vceq_u8(vld1_u8(mask), vdup_n_u8(0)));
    if (open == 0) return;
    const float32x4_t x0 = vabsq_f32(vld1q_f32(v)), x1 = vabsq_f32(vld1q_f32(v + 4));
    const float64x2_t m = vdupq_n_f64(mean);
    const float64x2_t x[4] = {vcvt_f64_f32(vget_low_f32(x0)), vcvt_high_f64_f32(x0), vcvt_f64_f32(vget_low_f32(x1)), vcvt_high_f64_f32(x1)};
    for (int q = 0; q < 4; q++) {
        const uint64x2_t take = {((open >> (2 * q)) & 1) ? ~0ull : 0, ((open >> (2 * q + 1)) & 1) ? ~0ull : 0};
        const float64x2_t s = vld1q_f64(sum + 2 * q);
        vst1q_f64(sum + 2 * q, vbslq_f64(take, vaddq_f64(s, vabsq_f64(vsubq_f64(x[q], m))), s));
        if (size) {
            const int64x2_t z = vld1q_s64(size + 2 * q);
            vst1q_s64(size + 2 * q, vsubq_s64(z, vreinterpretq_s64_u64(take)));
        }
    }
}

static inline void key1(float v, double mean, double *sum, int64_t *size) {
    *sum += fabs((double)fabsf(v) - mean);
    if (size) *size += 1;
}

void bp_neon_group_keys(const float *v, const uint8_t *mask, int64_t n, const uint32_t *ids, double mean, double *sum, int64_t *size) {
    const uint32x4_t iota = {0, 1, 2, 3}, four = vdupq_n_u32(4);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const uint32x4_t expect = vaddq_u32(vdupq_n_u32(ids[j]), iota);
        const uint32x4_t same = vandq_u32(vceqq_u32(vld1q_u32(ids + j), expect), vceqq_u32(vld1q_u32(ids + j + 4), vaddq_u32(expect, four)));
        if (vminvq_u32(same) == ~0u) { keys8(v + j, mask + j, mean, sum + ids[j], size ? size + ids[j] : 0); continue; }
        for (int64_t i = j; i < j + 8; i++)
            if (mask[i] == 0) key1(v[i], mean, sum + ids[i], size ? size + ids[i] : 0);
    }
    for (; j < n; j++)
        if (mask[j] == 0) key1(v[j], mean, sum + ids[j], size ? size + ids[j] : 0);
}

void bp_neon_group_keys_runs(const float *v, const uint8_t *mask, const int64_t *runs, int64_t count, double mean, double *sum, int64_t *size) {
    for (int64_t q = 0; q < count; q++) {
        const int64_t j0 = runs[3 * q], len = runs[3 * q + 1], g0 = runs[3 * q + 2];
        int64_t i = 0;
        for (; i + 8 <= len; i += 8) keys8(v + j0 + i, mask + j0 + i, mean, sum + g0 + i, size ? size + g0 + i : 0);
        for (; i < len; i++)
            if (mask[j0 + i] == 0) key1(v[j0 + i], mean, sum + g0 + i, size ? size + g0 + i : 0);
    }
}

/// Marks 16 entries of consecutive groups g0 ..< g0 + 16 (chosen -> mark, the other unassigned
/// ones -> fill when fill != 0); returns the entries still unassigned afterwards.
static inline __attribute__((always_inline)) uint32_t mark16(uint8_t *mask, const uint8_t *chosen, uint8_t mark, uint8_t fill) {
    const uint8x16_t m = vld1q_u8(mask), zero = vdupq_n_u8(0);
    const uint8x16_t open = vceqq_u8(m, zero);
    const uint8x16_t pick = vandq_u8(open, vmvnq_u8(vceqq_u8(vld1q_u8(chosen), zero)));
    const uint8x16_t rest = vbicq_u8(open, pick);
    uint8x16_t out = vbslq_u8(pick, vdupq_n_u8(mark), m);
    if (fill) out = vbslq_u8(rest, vdupq_n_u8(fill), out);
    vst1q_u8(mask, out);
    return fill ? 0 : bits16(rest);
}

void bp_neon_mark_groups(uint8_t *mask, int64_t n, const uint32_t *ids, const uint8_t *chosen, uint8_t mark) {
    (void)bp_neon_mark_groups_sum(0, mask, n, ids, chosen, mark, 0);
}

static inline int consecutive16(const uint32_t *ids) {
    const uint32x4_t iota = {0, 1, 2, 3}, four = vdupq_n_u32(4);
    uint32x4_t e = vaddq_u32(vdupq_n_u32(ids[0]), iota), same = vdupq_n_u32(~0u);
    for (int q = 0; q < 4; q++, e = vaddq_u32(e, four)) same = vandq_u32(same, vceqq_u32(vld1q_u32(ids + 4 * q), e));
    return vminvq_u32(same) == ~0u;
}

double bp_neon_mark_groups_sum(const float *v, uint8_t *mask, int64_t n, const uint32_t *ids, const uint8_t *chosen, uint8_t mark, int64_t *count) {
    canon c = canon_start();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        uint32_t still;
        if (consecutive16(ids + j)) {
            // ids[j] + 15 is a group, so the 16 bytes of `chosen` from ids[j] exist.
            still = mark16(mask + j, chosen + ids[j], mark, 0);
        } else {
            for (int64_t i = j; i < j + 16; i++)
                if (mask[i] == 0 && chosen[ids[i]]) mask[i] = mark;
            still = bits16(vceqq_u8(vld1q_u8(mask + j), vdupq_n_u8(0)));
        }
        if (v) {
            canon_add8(&c, still & 0xFF, vabsq_f32(vld1q_f32(v + j)), vabsq_f32(vld1q_f32(v + j + 4)));
            canon_add8(&c, still >> 8, vabsq_f32(vld1q_f32(v + j + 8)), vabsq_f32(vld1q_f32(v + j + 12)));
        }
    }
    for (; j < n; j++) {
        if (mask[j] == 0 && chosen[ids[j]]) mask[j] = mark;
        if (v && mask[j] == 0) canon_add1(&c, fabsf(v[j]));
    }
    return canon_sum(&c, count);
}

double bp_neon_mark_groups_runs(const float *v, uint8_t *mask, const int64_t *runs, int64_t count, const uint8_t *chosen, uint8_t mark,
                                uint8_t fill, int64_t *remaining) {
    canon c = canon_start();
    for (int64_t q = 0; q < count; q++) {
        const int64_t j0 = runs[3 * q], len = runs[3 * q + 1], g0 = runs[3 * q + 2];
        int64_t i = 0;
        for (; i + 16 <= len; i += 16) {
            const uint32_t still = mark16(mask + j0 + i, chosen + g0 + i, mark, fill);
            if (v && still) {
                const float *x = v + j0 + i;
                canon_add8(&c, still & 0xFF, vabsq_f32(vld1q_f32(x)), vabsq_f32(vld1q_f32(x + 4)));
                canon_add8(&c, still >> 8, vabsq_f32(vld1q_f32(x + 8)), vabsq_f32(vld1q_f32(x + 12)));
            }
        }
        for (; i < len; i++) {
            const int64_t j = j0 + i;
            if (mask[j] == 0) mask[j] = chosen[g0 + i] ? mark : fill;
            if (v && mask[j] == 0) canon_add1(&c, fabsf(v[j]));
        }
    }
    const double total = canon_sum(&c, 0);
    if (remaining) *remaining = c.count;
    return total;
}

void bp_neon_level_bits(const uint8_t *mask, int64_t n, int32_t level, uint64_t *out) {
    const uint8x16_t l = vdupq_n_u8((uint8_t)level);
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) {
        uint64_t w = 0;
        for (int q = 0; q < 4; q++) w |= (uint64_t)bits16(vcgtq_u8(vld1q_u8(mask + j + 16 * q), l)) << (16 * q);
        out[j >> 6] = w;
    }
    if (j < n) {
        uint64_t w = 0;
        for (int64_t i = 0; i < n - j; i++) w |= (uint64_t)(mask[j + i] > level) << i;
        out[j >> 6] = w;
    }
}

#endif
