// The C kernels (CBitPlanes, CFloatKernels) against plain references written here, for the
// instruction set the build and the CPU pick: NEON when cross-compiled for aarch64 and run under
// qemu-user (Scripts/test-c-kernels.sh), AVX2 / AVX-512 when built natively on x86-64.
//
// Exact (bit for bit) on every integer part and on the binarization passes (their Double sums
// are the canonical lane order, so any variant must reproduce them); float GEMV, the bit-plane
// float epilogue and the row GEMM within the recursive-summation bound stated at each check, and
// the row GEMM also exactly against an fmaf reference in its own order (p ascending). Every case
// is seeded; a failure prints its seed and shape. Exit status 1 on any failure.
#include "CBitPlanes.h"
#include "CFloatKernels.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t casesRun, exactChecks, toleranceChecks, failures;

#define FAIL(...)                                                      \
    do {                                                               \
        if (failures++ < 20) { printf("FAIL: " __VA_ARGS__); printf("\n"); } \
    } while (0)

// splitmix64: seeded, the same sequence on every platform.
static uint64_t rngState;
static uint64_t next64(void) {
    uint64_t z = (rngState += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint32_t below(uint32_t n) { return (uint32_t)(next64() % n); }
/// Uniform in [-1, 1), with some exact zeros and negative zeros.
static float randf(void) {
    const uint32_t r = below(64);
    if (r == 0) return 0.0f;
    if (r == 1) return -0.0f;
    return (float)((double)(next64() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static uint64_t popcount64(uint64_t x) { uint64_t n = 0; for (; x; x &= x - 1) n++; return n; }

static int sameFloat(float a, float b) { uint32_t x, y; memcpy(&x, &a, 4); memcpy(&y, &b, 4); return x == y; }
static int sameDouble(double a, double b) { uint64_t x, y; memcpy(&x, &a, 8); memcpy(&y, &b, 8); return x == y; }

// MARK: - Bit-plane layouts (the builder of MBKernels/BitPlaneMatrix.swift, rows in given order)

typedef struct {
    int rows, taps, channels, levels, cw, blocks, words;
    uint8_t *mask;          // rows * taps * channels: bit width of each weight (0 = pruned)
    uint64_t *sign;         // levels * rows * words: sign bit (set = +1) where active
    float *scale;           // levels * rows
    // The layout.
    int32_t *listStart; uint8_t *listFull; int64_t *listActs; int32_t *entryWord, *entryTap;
    uint64_t *entrySigns, *entryActs, *validMask; float *scales; uint8_t *blockDense;
    bp_weights w;
} weights;

static uint64_t validBits(int channels, int i) {
    const int n = channels - 64 * i < 64 ? channels - 64 * i : 64;
    return n >= 64 ? ~0ull : ((1ull << n) - 1);
}

/// Weight widths by `pattern`: 0 one width per row (channel masks), 1 a random width per entry
/// (0 to levels), 2 every entry `levels` wide.
static void make_weights(weights *W, int rows, int taps, int channels, int levels, int pattern) {
    memset(W, 0, sizeof *W);
    W->rows = rows; W->taps = taps; W->channels = channels; W->levels = levels;
    W->cw = (channels + 63) / 64; W->blocks = (rows + 7) / 8; W->words = taps * W->cw;
    const int words = W->words, L = levels, B = W->blocks;
    W->mask = calloc((size_t)rows * taps * channels, 1);
    W->sign = calloc((size_t)L * rows * words, 8);
    W->scale = calloc((size_t)L * rows, sizeof(float));
    for (int o = 0; o < rows; o++) {
        // Rows sorted by width, as the builder sorts them, for channel masks.
        const int rowWidth = 1 + (o * L) / rows;
        for (int j = 0; j < taps * channels; j++)
            W->mask[(size_t)o * taps * channels + j] = (uint8_t)(pattern == 0 ? rowWidth : pattern == 1 ? (int)below((uint32_t)L + 1) : L);
        for (int k = 0; k < L; k++) W->scale[k * rows + o] = 0.05f + 0.5f * fabsf(randf());
    }
    for (int k = 0; k < L; k++)
        for (int o = 0; o < rows; o++)
            for (int t = 0; t < taps; t++)
                for (int c = 0; c < channels; c++)
                    if (W->mask[((size_t)o * taps + t) * channels + c] > k && (next64() & 1))
                        W->sign[((size_t)k * rows + o) * words + t * W->cw + c / 64] |= 1ull << (c % 64);

    W->validMask = malloc(sizeof(uint64_t) * W->cw);
    for (int i = 0; i < W->cw; i++) W->validMask[i] = validBits(channels, i);
    W->scales = calloc((size_t)L * B * 8, sizeof(float));
    W->listStart = malloc(sizeof(int32_t) * ((size_t)B * L + 1));
    W->listFull = malloc((size_t)B * L);
    W->listActs = malloc(sizeof(int64_t) * (size_t)B * L);
    const size_t maxEntries = (size_t)B * L * words;
    W->entryWord = malloc(sizeof(int32_t) * (maxEntries + 1));
    W->entryTap = malloc(sizeof(int32_t) * (maxEntries + 1));
    W->entrySigns = malloc(sizeof(uint64_t) * 8 * (maxEntries + 1));
    W->entryActs = malloc(sizeof(uint64_t) * 8 * (maxEntries + 1));
    W->blockDense = calloc((size_t)B, 1);
    uint64_t *act = malloc(sizeof(uint64_t) * (size_t)L * words * 8), *sgn = malloc(sizeof(uint64_t) * (size_t)L * words * 8);
    int32_t entries = 0;
    int64_t actEntries = 0;
    W->listStart[0] = 0;
    for (int b = 0; b < B; b++) {
        memset(act, 0, sizeof(uint64_t) * (size_t)L * words * 8);
        memset(sgn, 0, sizeof(uint64_t) * (size_t)L * words * 8);
        for (int r = 0; r < 8; r++) {
            const int o = 8 * b + r;
            if (o >= rows) {
                // Padding rows: active everywhere with sign 0 and scale 0.
                for (int k = 0; k < L; k++) for (int w = 0; w < words; w++) act[(k * words + w) * 8 + r] = W->validMask[w % W->cw];
                continue;
            }
            for (int k = 0; k < L; k++) W->scales[k * B * 8 + 8 * b + r] = W->scale[k * rows + o];
            for (int t = 0; t < taps; t++)
                for (int c = 0; c < channels; c++) {
                    const int m = W->mask[((size_t)o * taps + t) * channels + c];
                    const int w = t * W->cw + c / 64;
                    for (int k = 0; k < m; k++) {
                        act[(k * words + w) * 8 + r] |= 1ull << (c % 64);
                        sgn[(k * words + w) * 8 + r] |= W->sign[((size_t)k * rows + o) * words + w] & (1ull << (c % 64));
                    }
                }
        }
        for (int r = 0; r < 8 && 8 * b + r < rows; r++)
            for (int k = 0; k < L; k++) {
                int any = 0;
                for (int w = 0; w < words; w++) any |= act[(k * words + w) * 8 + r] != 0;
                if (!any) W->scales[k * B * 8 + 8 * b + r] = 0;
            }
        for (int k = 0; k < L; k++) {
            int full = 1;
            const int32_t first = entries;
            for (int w = 0; w < words; w++) {
                uint64_t any = 0;
                for (int r = 0; r < 8 && 8 * b + r < rows; r++) any |= act[(k * words + w) * 8 + r];
                if (!any) continue;
                W->entryWord[entries] = w;
                W->entryTap[entries] = w / W->cw;
                for (int r = 0; r < 8; r++) {
                    W->entrySigns[8 * (size_t)entries + r] = sgn[(k * words + w) * 8 + r];
                    if (act[(k * words + w) * 8 + r] != W->validMask[w % W->cw]) full = 0;
                }
                entries++;
            }
            W->listStart[b * L + k + 1] = entries;
            W->listFull[b * L + k] = (uint8_t)full;
            W->listActs[b * L + k] = actEntries;
            if (!full)
                for (int32_t e = first; e < entries; e++, actEntries++)
                    for (int r = 0; r < 8; r++) W->entryActs[8 * (size_t)actEntries + r] = act[(k * words + W->entryWord[e]) * 8 + r];
        }
    }
    for (int b = 0; b < B; b++) {
        int n = 0, ok = 1;
        for (int k = 0; k < L; k++) {
            const int count = W->listStart[b * L + k + 1] - W->listStart[b * L + k];
            if (count == 0) break;
            if (count != words || n != k) { ok = 0; break; }
            n++;
        }
        for (int k = n; k < L; k++) if (W->listStart[b * L + k + 1] != W->listStart[b * L + k]) ok = 0;
        W->blockDense[b] = (uint8_t)(ok ? n : 0);
    }
    free(act); free(sgn);
    W->w = (bp_weights){.blocks = B, .levels = L, .taps = taps, .wordsPerTap = W->cw, .listStart = W->listStart,
                        .listFull = W->listFull, .listActs = W->listActs, .entryWord = W->entryWord, .entryTap = W->entryTap,
                        .entrySigns = W->entrySigns, .entryActs = W->entryActs, .validMask = W->validMask, .scales = W->scales,
                        .blockDense = W->blockDense};
}

static void free_weights(weights *W) {
    free(W->mask); free(W->sign); free(W->scale); free(W->listStart); free(W->listFull); free(W->listActs); free(W->entryWord);
    free(W->entryTap); free(W->entrySigns); free(W->entryActs); free(W->validMask); free(W->scales); free(W->blockDense);
}

/// The weight words of a stored row (padding rows included) from the source, as the layout means them.
static void weight_words(const weights *W, int br, int k, int w, uint64_t *a, uint64_t *s) {
    *a = 0; *s = 0;
    if (br >= W->rows) { *a = W->validMask[w % W->cw]; return; }
    const int t = w / W->cw, i = w % W->cw;
    for (int c = 64 * i; c < W->channels && c < 64 * i + 64; c++)
        if (W->mask[((size_t)br * W->taps + t) * W->channels + c] > k) *a |= 1ull << (c % 64);
    *s = W->sign[((size_t)k * W->rows + br) * W->words + w] & *a;
}

typedef struct {
    int units, levels, cw;
    uint64_t *signs, *acts;
    uint8_t *state;
    float *scales;
    bp_acts x;
} activations;

/// Activation widths per (unit, channel) by `pattern`: 0 random 0..levels, 1 one width per unit, 2 all `levels`.
static void make_acts(activations *A, int units, int channels, int levels, int pattern) {
    const int cw = (channels + 63) / 64;
    A->units = units; A->levels = levels; A->cw = cw;
    A->signs = calloc((size_t)levels * units * cw, 8);
    A->acts = calloc((size_t)levels * units * cw, 8);
    A->state = calloc((size_t)units * levels, 1);
    A->scales = malloc(sizeof(float) * levels);
    for (int l = 0; l < levels; l++) A->scales[l] = 0.1f + fabsf(randf());
    for (int u = 0; u < units; u++) {
        const int unitWidth = (int)below((uint32_t)levels + 1);
        for (int c = 0; c < channels; c++) {
            const int width = pattern == 0 ? (int)below((uint32_t)levels + 1) : pattern == 1 ? unitWidth : levels;
            for (int l = 0; l < width; l++) {
                const size_t at = ((size_t)l * units + u) * cw + c / 64;
                A->acts[at] |= 1ull << (c % 64);
                if (next64() & 1) A->signs[at] |= 1ull << (c % 64);
            }
        }
        for (int l = 0; l < levels; l++) {
            int any = 0, all = 1;
            for (int i = 0; i < cw; i++) {
                const uint64_t a = A->acts[((size_t)l * units + u) * cw + i];
                any |= a != 0;
                all &= a == validBits(channels, i);
            }
            A->state[u * levels + l] = (uint8_t)(!any ? BP_UNIT_EMPTY : all ? BP_UNIT_FULL : BP_UNIT_PARTIAL);
        }
    }
    A->x = (bp_acts){.units = units, .levels = levels, .wordsPerUnit = cw, .signs = A->signs, .acts = A->acts, .state = A->state, .scales = A->scales};
}

static void free_acts(activations *A) { free(A->signs); free(A->acts); free(A->state); free(A->scales); }

/// One bit-plane case: counts exactly, the float epilogue and the float GEMV within tolerance,
/// for every instruction set up to bp_isa().
static void bitplane_case(uint64_t seed, int rows, int taps, int channels, int Lw, int Lx, int wpattern, int xpattern) {
    rngState = seed;
    casesRun++;
    weights W;
    make_weights(&W, rows, taps, channels, Lw, wpattern);
    activations A;
    const int units = 7, positions = 5;
    make_acts(&A, units, channels, Lx, xpattern);
    int32_t *patches = malloc(sizeof(int32_t) * positions * taps);
    for (int i = 0; i < positions * taps; i++) patches[i] = below(5) == 0 ? -1 : (int32_t)below(units);
    const int B = W.blocks, cw = W.cw;
    const size_t countsLen = (size_t)positions * B * Lw * Lx * 8;
    int32_t *X = malloc(sizeof(int32_t) * countsLen), *M = malloc(sizeof(int32_t) * countsLen);
    int32_t *Xr = calloc(countsLen, sizeof(int32_t)), *Mr = calloc(countsLen, sizeof(int32_t));
    // Reference counts from the definition.
    for (int p = 0; p < positions; p++)
        for (int br = 0; br < 8 * B; br++)
            for (int k = 0; k < Lw; k++)
                for (int l = 0; l < Lx; l++) {
                    int64_t xs = 0, ms = 0;
                    for (int t = 0; t < taps; t++) {
                        const int u = patches[p * taps + t];
                        if (u < 0) continue;
                        for (int i = 0; i < cw; i++) {
                            uint64_t a, s;
                            weight_words(&W, br, k, t * cw + i, &a, &s);
                            const size_t at = ((size_t)l * units + u) * cw + i;
                            const uint64_t m = a & A.acts[at];
                            xs += (int64_t)popcount64(m & (s ^ A.signs[at]));
                            ms += (int64_t)popcount64(m);
                        }
                    }
                    const size_t at = ((((size_t)p * B + br / 8) * Lw + k) * Lx + l) * 8 + br % 8;
                    Xr[at] = (int32_t)xs;
                    Mr[at] = (int32_t)ms;
                }
    // Reference outputs (Double) and their magnitude (the tolerance's scale).
    int32_t *rowOrder = malloc(sizeof(int32_t) * 8 * B);
    for (int i = 0; i < 8 * B; i++) rowOrder[i] = i < rows ? i : -1;
    float *bias = malloc(sizeof(float) * rows);
    for (int o = 0; o < rows; o++) bias[o] = randf();
    double *yr = malloc(sizeof(double) * rows * positions), *ymag = malloc(sizeof(double) * rows * positions);
    for (int p = 0; p < positions; p++)
        for (int o = 0; o < rows; o++) {
            double s = 0, mag = fabs(bias[o]);
            for (int k = 0; k < Lw; k++)
                for (int l = 0; l < Lx; l++) {
                    const size_t at = ((((size_t)p * B + o / 8) * Lw + k) * Lx + l) * 8 + o % 8;
                    const double term = (double)W.scales[k * B * 8 + o] * A.scales[l] * (double)(Mr[at] - 2 * Xr[at]);
                    s += term;
                    mag += fabs(term);
                }
            yr[o * positions + p] = s + bias[o];
            ymag[o * positions + p] = mag;
        }
    float *y = malloc(sizeof(float) * rows * positions);
    // Float GEMV input (taps * cw * 64 floats, zero padded) and its Double reference.
    const int64_t n = (int64_t)W.words * 64;
    float *xv = calloc((size_t)n, sizeof(float));
    for (int t = 0; t < taps; t++) for (int c = 0; c < channels; c++) xv[(t * cw) * 64 + c] = randf();
    const size_t outLen = (size_t)Lw * B * 8;
    double *gr = calloc(outLen, sizeof(double)), *gmag = calloc(outLen, sizeof(double));
    int64_t maxTerms = 1;
    for (int k = 0; k < Lw; k++)
        for (int br = 0; br < 8 * B; br++) {
            int64_t terms = 0;
            for (int w = 0; w < W.words; w++) {
                uint64_t a, s;
                weight_words(&W, br, k, w, &a, &s);
                for (int bit = 0; bit < 64; bit++) {
                    if (!((a >> bit) & 1)) continue;
                    const double v = xv[64 * w + bit];
                    gr[k * B * 8 + br] += ((s >> bit) & 1) ? v : -v;
                    gmag[k * B * 8 + br] += fabs(v);
                    terms++;
                }
            }
            if (terms > maxTerms) maxTerms = terms;
        }
    float *out = malloc(sizeof(float) * outLen);
    float *scratch = malloc(sizeof(float) * (size_t)bp_gemv_scratch_floats(&W.w));

    for (int isa = 0; isa <= bp_isa(); isa++) {
        memset(X, 0x55, sizeof(int32_t) * countsLen);
        memset(M, 0x55, sizeof(int32_t) * countsLen);
        bp_binary_counts(isa, &W.w, &A.x, patches, 0, positions, X, M);
        int bad = 0;
        for (size_t i = 0; i < countsLen && !bad; i++) {
            // Padding rows (past `rows`) are never read by callers.
            if ((int)(8 * ((i / 8 / Lx / Lw) % B) + i % 8) >= rows) continue;
            if (X[i] != Xr[i] || M[i] != Mr[i]) {
                FAIL("bitplane counts isa %s seed %llu rows %d taps %d channels %d Lw %d Lx %d patterns %d/%d: at %zu X %d (want %d) M %d (want %d)",
                     bp_isa_name(isa), (unsigned long long)seed, rows, taps, channels, Lw, Lx, wpattern, xpattern, i, X[i], Xr[i], M[i], Mr[i]);
                bad = 1;
            }
        }
        exactChecks++;
        bp_binary_float(isa, &W.w, &A.x, patches, 0, positions, rowOrder, rows, bias, 0, y, positions, 1);
        // Float epilogue: Lw * Lx products of three floats and their sum in float, so each
        // output is within (Lw * Lx + 4) * 2^-24 of the sum of its terms' magnitudes.
        bad = 0;
        for (int i = 0; i < rows * positions && !bad; i++) {
            const double tol = (Lw * Lx + 4) * 0x1p-24 * ymag[i];
            if (!(fabs((double)y[i] - yr[i]) <= tol)) {
                FAIL("bitplane float isa %s seed %llu rows %d taps %d channels %d Lw %d Lx %d: out %d = %.9g, want %.9g (tol %.3g)",
                     bp_isa_name(isa), (unsigned long long)seed, rows, taps, channels, Lw, Lx, i, y[i], yr[i], tol);
                bad = 1;
            }
        }
        toleranceChecks++;
        bp_gemv_prepare(isa, &W.w, xv, scratch);
        bp_gemv_float(isa, &W.w, xv, out, scratch, 0, B);
        // Float GEMV: a float sum of at most `maxTerms` signed inputs (by subset tables or
        // masked adds, any order): within 2 * maxTerms * 2^-24 of the sum of their magnitudes.
        bad = 0;
        for (size_t i = 0; i < outLen && !bad; i++) {
            if ((int)(i % (8 * B)) >= rows) continue;
            const double tol = 2.0 * (double)maxTerms * 0x1p-24 * gmag[i];
            if (!(fabs((double)out[i] - gr[i]) <= tol)) {
                FAIL("bitplane gemv isa %s seed %llu rows %d taps %d channels %d Lw %d: out %zu = %.9g, want %.9g (tol %.3g)",
                     bp_isa_name(isa), (unsigned long long)seed, rows, taps, channels, Lw, i, out[i], gr[i], tol);
                bad = 1;
            }
        }
        toleranceChecks++;
    }
    free(patches); free(X); free(M); free(Xr); free(Mr); free(rowOrder); free(bias); free(yr); free(ymag); free(y);
    free(xv); free(gr); free(gmag); free(out); free(scratch);
    free_weights(&W);
    free_acts(&A);
}

// MARK: - Binarization passes (every variant against the portable one, bit for bit)

static void expect_same_floats(const char *what, uint64_t seed, int64_t n, const float *a, const float *b) {
    for (int64_t j = 0; j < n; j++)
        if (!sameFloat(a[j], b[j])) { FAIL("%s seed %llu n %lld: entry %lld %.9g vs portable %.9g", what, (unsigned long long)seed, (long long)n, (long long)j, a[j], b[j]); return; }
}

static void expect_same_bytes(const char *what, uint64_t seed, int64_t n, const void *a, const void *b, size_t bytes) {
    if (memcmp(a, b, bytes) != 0) FAIL("%s seed %llu n %lld: differs from portable", what, (unsigned long long)seed, (long long)n);
}

static void expect_same_sum(const char *what, uint64_t seed, int64_t n, double a, double b, int64_t ca, int64_t cb) {
    if (!sameDouble(a, b) || ca != cb)
        FAIL("%s seed %llu n %lld: sum %.17g (count %lld) vs portable %.17g (count %lld)", what, (unsigned long long)seed, (long long)n, a, (long long)ca, b, (long long)cb);
}

/// Mask bytes by `pattern`: 0 random widths 0..levels, 1 runs of one width, 2 all 0, 3 all `levels`.
static void fill_mask(uint8_t *mask, int64_t n, int levels, int pattern) {
    uint8_t run = 0;
    for (int64_t j = 0; j < n; j++) {
        if (pattern == 1 && below(23) == 0) run = (uint8_t)below((uint32_t)levels + 1);
        mask[j] = (uint8_t)(pattern == 0 ? (int)below((uint32_t)levels + 1) : pattern == 1 ? run : pattern == 2 ? 0 : levels);
    }
}

static void binarize_case(uint64_t seed, int64_t n, int levels, int pattern) {
    rngState = seed;
    casesRun++;
    const int isa = bp_isa();
    float *v = malloc(sizeof(float) * (n + 16)), *r0 = malloc(sizeof(float) * (n + 16)), *r1 = malloc(sizeof(float) * (n + 16));
    uint8_t *mask = malloc((size_t)n + 16), *m0 = malloc((size_t)n + 16), *m1 = malloc((size_t)n + 16);
    const int64_t words = (n + 63) / 64;
    uint64_t *b0 = calloc((size_t)words, 8), *b1 = calloc((size_t)words, 8);
    for (int64_t j = 0; j < n; j++) v[j] = randf();
    fill_mask(mask, n, levels, pattern);
    int64_t c0 = -1, c1 = -2;

    for (int mode = 0; mode <= 2; mode++)
        for (int width = 1; width <= levels; width++) {
            const double s1 = bp_active_abs_sum(isa, v, mask, n, mode, (uint8_t)width, &c1);
            const double s0 = bp_active_abs_sum(BP_ISA_PORTABLE, v, mask, n, mode, (uint8_t)width, &c0);
            expect_same_sum("active_abs_sum", seed, n, s1, s0, c1, c0);
            exactChecks++;
            const float mu = 0.25f + fabsf(randf());
            memcpy(r0, v, sizeof(float) * n); memcpy(r1, v, sizeof(float) * n);
            memset(b0, 0, 8 * words); memset(b1, 0, 8 * words);
            bp_residual_level(isa, r1, mask, n, mode, (uint8_t)width, mu, b1);
            bp_residual_level(BP_ISA_PORTABLE, r0, mask, n, mode, (uint8_t)width, mu, b0);
            expect_same_floats("residual_level values", seed, n, r1, r0);
            expect_same_bytes("residual_level bits", seed, n, b1, b0, 8 * words);
            exactChecks += 2;
            for (int next = 0; next <= levels + 1; next++) {
                // The contract: the next level's entries (mask >= next) lie within this level's.
                if (next && !(mode == 0 || (mode == 1 && next > width))) continue;
                memcpy(r0, v, sizeof(float) * n); memcpy(r1, v, sizeof(float) * n);
                memset(b0, 0, 8 * words); memset(b1, 0, 8 * words);
                c0 = -1; c1 = -2;
                const double t1 = bp_residual_level_sum(isa, r1, mask, n, mode, (uint8_t)width, mu, b1, (uint8_t)next, &c1);
                const double t0 = bp_residual_level_sum(BP_ISA_PORTABLE, r0, mask, n, mode, (uint8_t)width, mu, b0, (uint8_t)next, &c0);
                expect_same_floats("residual_level_sum values", seed, n, r1, r0);
                expect_same_bytes("residual_level_sum bits", seed, n, b1, b0, 8 * words);
                expect_same_sum("residual_level_sum", seed, n, t1, t0, c1, c0);
                exactChecks += 3;
            }
        }

    // Groups: consecutive ids in runs (a channel-major input's rows), or scattered.
    const int64_t groups = n / 3 + 17;
    uint32_t *ids = malloc(sizeof(uint32_t) * (n + 16));
    int64_t *runs = malloc(sizeof(int64_t) * 3 * (n + 1));
    for (int scattered = 0; scattered <= 1; scattered++) {
        int64_t runCount = 0;
        for (int64_t j = 0; j < n;) {
            int64_t len = 1 + below(scattered ? 3 : 80);
            if (j + len > n) len = n - j;
            if (len > groups) len = groups;
            int64_t g0 = below((uint32_t)(groups - len + 1));
            if (g0 + len > groups) g0 = 0;
            runs[3 * runCount] = j; runs[3 * runCount + 1] = len; runs[3 * runCount + 2] = g0;
            runCount++;
            for (int64_t i = 0; i < len; i++) ids[j + i] = (uint32_t)(g0 + i);
            j += len;
        }
        const double mean = fabs(randf());
        uint8_t *mk = malloc((size_t)n + 16);
        for (int64_t j = 0; j < n; j++) mk[j] = below(3) == 0 ? (uint8_t)(1 + below(3)) : 0;
        double *s0 = calloc((size_t)groups + 16, 8), *s1 = calloc((size_t)groups + 16, 8);
        int64_t *z0 = calloc((size_t)groups + 16, 8), *z1 = calloc((size_t)groups + 16, 8);
        for (int withSize = 0; withSize <= 1; withSize++) {
            memset(s0, 0, 8 * groups); memset(s1, 0, 8 * groups); memset(z0, 0, 8 * groups); memset(z1, 0, 8 * groups);
            bp_group_keys(isa, v, mk, n, ids, mean, s1, withSize ? z1 : 0);
            bp_group_keys(BP_ISA_PORTABLE, v, mk, n, ids, mean, s0, withSize ? z0 : 0);
            expect_same_bytes("group_keys sums", seed, n, s1, s0, 8 * groups);
            expect_same_bytes("group_keys sizes", seed, n, z1, z0, 8 * groups);
            memset(s0, 0, 8 * groups); memset(s1, 0, 8 * groups); memset(z0, 0, 8 * groups); memset(z1, 0, 8 * groups);
            bp_group_keys_runs(isa, v, mk, runs, runCount, mean, s1, withSize ? z1 : 0);
            bp_group_keys_runs(BP_ISA_PORTABLE, v, mk, runs, runCount, mean, s0, withSize ? z0 : 0);
            expect_same_bytes("group_keys_runs sums", seed, n, s1, s0, 8 * groups);
            expect_same_bytes("group_keys_runs sizes", seed, n, z1, z0, 8 * groups);
            exactChecks += 4;
        }
        uint8_t *chosen = malloc((size_t)groups + 16);
        for (int64_t g = 0; g < groups + 16; g++) chosen[g] = below(3) == 0;
        memcpy(m0, mk, n); memcpy(m1, mk, n);
        bp_mark_groups(isa, m1, n, ids, chosen, 2);
        bp_mark_groups(BP_ISA_PORTABLE, m0, n, ids, chosen, 2);
        expect_same_bytes("mark_groups", seed, n, m1, m0, n);
        memcpy(m0, mk, n); memcpy(m1, mk, n);
        c0 = -1; c1 = -2;
        double t1 = bp_mark_groups_sum(isa, v, m1, n, ids, chosen, 3, &c1);
        double t0 = bp_mark_groups_sum(BP_ISA_PORTABLE, v, m0, n, ids, chosen, 3, &c0);
        expect_same_bytes("mark_groups_sum marks", seed, n, m1, m0, n);
        expect_same_sum("mark_groups_sum", seed, n, t1, t0, c1, c0);
        exactChecks += 3;
        for (int fill = 0; fill <= 1; fill++)
            for (int withV = 0; withV <= 1; withV++) {
                if (fill && withV) continue;  // callers fill only in the last round, which sums nothing
                memcpy(m0, mk, n); memcpy(m1, mk, n);
                c0 = -1; c1 = -2;
                t1 = bp_mark_groups_runs(isa, withV ? v : 0, m1, runs, runCount, chosen, 2, (uint8_t)(fill ? 1 : 0), &c1);
                t0 = bp_mark_groups_runs(BP_ISA_PORTABLE, withV ? v : 0, m0, runs, runCount, chosen, 2, (uint8_t)(fill ? 1 : 0), &c0);
                expect_same_bytes("mark_groups_runs marks", seed, n, m1, m0, n);
                expect_same_sum("mark_groups_runs", seed, n, t1, t0, c1, c0);
                exactChecks += 2;
            }
        free(mk); free(s0); free(s1); free(z0); free(z1); free(chosen);
    }
    // Activity bits of each level from widths, against the definition.
    for (int level = 0; level <= levels; level++) {
        memset(b1, 0xA5, 8 * words);
        bp_level_bits(mask, n, level, b1);
        memset(b0, 0, 8 * words);
        for (int64_t j = 0; j < n; j++) if (mask[j] > level) b0[j >> 6] |= 1ull << (j & 63);
        expect_same_bytes("level_bits", seed, n, b1, b0, 8 * words);
        exactChecks++;
    }
    free(v); free(r0); free(r1); free(mask); free(m0); free(m1); free(b0); free(b1); free(ids); free(runs);
}

// MARK: - Float kernels

static void gemm_case(uint64_t seed, long m, long n, long k, int relu, int withBias) {
    if (!(fk_has_avx512() || fk_has_neon())) return;  // the BLAS / Swift paths run instead
    rngState = seed;
    casesRun++;
    const long lda = k + 3, ldc = n + 5;
    float *a = malloc(sizeof(float) * (m * lda + 1)), *bmat = malloc(sizeof(float) * (k * n + 1)), *bias = malloc(sizeof(float) * m);
    const float **rows = malloc(sizeof(float *) * (k + 1));
    for (long i = 0; i < m * lda; i++) a[i] = randf();
    for (long i = 0; i < k * n; i++) bmat[i] = randf();
    for (long i = 0; i < m; i++) bias[i] = randf();
    // Each row its own allocation of exactly n floats: reads past n1 would be caught by tools.
    float **owned = malloc(sizeof(float *) * (k + 1));
    for (long p = 0; p < k; p++) { owned[p] = malloc(sizeof(float) * n); memcpy(owned[p], bmat + p * n, sizeof(float) * n); rows[p] = owned[p]; }
    float *c = malloc(sizeof(float) * m * ldc);
    for (long i = 0; i < m * ldc; i++) c[i] = 1234.5f;
    // Split as the threads do: column strips and row blocks.
    const long m0 = m > 6 ? 6 * (long)below((uint32_t)(m / 6)) : 0, n0 = n > 64 ? 64 * (long)below((uint32_t)(n / 64)) : 0;
    fk_gemm_rows(m0, m, n0, n, k, a, lda, rows, withBias ? bias : 0, relu, c, ldc);
    int badExact = 0, badTol = 0;
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            const float got = c[i * ldc + j];
            if (i < m0 || j < n0) {
                if (!sameFloat(got, 1234.5f) && !badExact) { FAIL("gemm_rows seed %llu m %ld n %ld k %ld: wrote outside the range at %ld,%ld", (unsigned long long)seed, m, n, k, i, j); badExact = 1; }
                continue;
            }
            // The kernel's own order: fused multiply-adds, p ascending, then + bias, then Relu.
            float f = 0;
            double d = 0, mag = 0;
            for (long p = 0; p < k; p++) {
                f = fmaf(a[i * lda + p], bmat[p * n + j], f);
                d += (double)a[i * lda + p] * bmat[p * n + j];
                mag += fabs((double)a[i * lda + p] * bmat[p * n + j]);
            }
            if (withBias) { f = f + bias[i]; d += bias[i]; mag += fabs(bias[i]); }
            if (relu) { f = f > 0 ? f : 0; d = d > 0 ? d : 0; }
            if (!sameFloat(got, f) && !badExact) {
                FAIL("gemm_rows seed %llu m %ld n %ld k %ld relu %d: c[%ld,%ld] = %.9g, fmaf order gives %.9g", (unsigned long long)seed, m, n, k, relu, i, j, got, f);
                badExact = 1;
            }
            // k + 1 roundings of float FMAs and the bias add: the recursive-summation bound.
            const double tol = (double)(k + 2) * 0x1p-24 * mag;
            if (!(fabs((double)got - d) <= tol) && !badTol) {
                FAIL("gemm_rows seed %llu m %ld n %ld k %ld: c[%ld,%ld] = %.9g, Double %.9g (tol %.3g)", (unsigned long long)seed, m, n, k, i, j, got, d, tol);
                badTol = 1;
            }
        }
    exactChecks++;
    toleranceChecks++;
    for (long p = 0; p < k; p++) free(owned[p]);
    free(owned); free(a); free(bmat); free(bias); free(rows); free(c);
}

static void maxpool_case(uint64_t seed, long planes, long ih, long iw, long kh, long kw, long sh, long sw) {
    if (!(fk_has_avx512() || fk_has_neon())) return;  // the BLAS / Swift paths run instead
    rngState = seed;
    casesRun++;
    const long oh = (ih - kh) / sh + 1, ow = (iw - kw) / sw + 1;
    float *in = malloc(sizeof(float) * planes * ih * iw), *out = malloc(sizeof(float) * planes * oh * ow);
    for (long i = 0; i < planes * ih * iw; i++) in[i] = randf();
    fk_maxpool2d_valid(planes, in, ih, iw, out, oh, ow, kh, kw, sh, sw);
    for (long p = 0; p < planes; p++)
        for (long y = 0; y < oh; y++)
            for (long x = 0; x < ow; x++) {
                float m = -INFINITY;
                for (long ky = 0; ky < kh; ky++)
                    for (long kx = 0; kx < kw; kx++) {
                        const float v = in[(p * ih + y * sh + ky) * iw + x * sw + kx];
                        if (v > m) m = v;
                    }
                const float got = out[(p * oh + y) * ow + x];
                // -0 and +0 compare equal in a max; either may win.
                if (!(got == m)) {
                    FAIL("maxpool seed %llu %ldx%ldx%ld k %ldx%ld s %ldx%ld: out %ld,%ld,%ld = %.9g, want %.9g", (unsigned long long)seed, planes, ih, iw, kh, kw, sh, sw, p, y, x, got, m);
                    goto done;
                }
            }
done:
    exactChecks++;
    free(in); free(out);
}

// The LUT GEMV (bp_lut_*): a layout built here as MBKernels' LutLayout builds it (groups of 16
// rows, per (group, level) the words some real row has active, full or partial lists, padding
// rows active with sign 0), against the definition in double. Patterns: 0 per entry (level 0
// full, higher levels partial on every word), 1 every level full, 2 sparse (words skipped per
// group, full and partial lists mixed). The group range is split in two calls, as the runtime's
// threads split it; rows past rowsStored must stay untouched.
static double lutWorst;  // the largest |error| / tolerance seen
static void lut_case(uint64_t seed, int n, int rows, int levels, int pattern) {
    casesRun++;
    rngState = seed;
    const int words = (n + 63) / 64, blocks = (rows + 7) / 8, groups = (blocks + 1) / 2, rowsStored = blocks * 8;
    float *x = calloc((size_t)words * 64, sizeof *x);
    for (int i = 0; i < n; i++) x[i] = randf();
    uint64_t *valid = calloc((size_t)words, sizeof *valid);
    for (int j = 0; j < words; j++) valid[j] = 64 * j + 64 <= n ? ~0ull : (1ull << (n - 64 * j)) - 1;
    const size_t lists = (size_t)groups * levels;
    int32_t *listStart = calloc(lists + 1, sizeof *listStart), *entryWord = calloc(lists * words + 1, sizeof *entryWord);
    uint8_t *listFull = calloc(lists, 1), *codes = malloc(lists * words * 256 + 1);
    int64_t *listCodes = calloc(lists, sizeof *listCodes), nc = 0;
    int32_t ne = 0;
    uint64_t *act = calloc((size_t)words * 16, 8), *sgn = calloc((size_t)words * 16, 8);
    double *ref = calloc((size_t)levels * rowsStored, sizeof *ref), *mag = calloc((size_t)levels * rowsStored, sizeof *mag);
    for (int g = 0; g < groups; g++)
        for (int k = 0; k < levels; k++) {
            const int mode = pattern == 0 ? (k == 0 ? 1 : 2) : pattern == 1 ? 1 : 0;  // 0 mixed, 1 full, 2 partial
            for (int j = 0; j < words; j++) {
                const int kind = mode == 0 ? (int)below(4) : mode;  // 0 empty, 1 full, 2-3 partial
                for (int r = 0; r < 16; r++) {
                    sgn[j * 16 + r] = next64() & valid[j];
                    act[j * 16 + r] = kind == 0 ? 0 : kind == 1 ? valid[j] : (next64() | next64()) & valid[j];
                    if (16 * g + r >= rows) { act[j * 16 + r] = valid[j]; sgn[j * 16 + r] = 0; }
                }
            }
            int full = 1;
            const size_t list = (size_t)g * levels + k;
            listCodes[list] = nc;
            int32_t stored[64], ns = 0;
            for (int j = 0; j < words; j++) {
                uint64_t any = 0;
                for (int r = 0; r < 16 && 16 * g + r < rows; r++) any |= act[j * 16 + r];
                if (!any) continue;
                stored[ns++] = j;
                for (int r = 0; r < 16; r++) full &= act[j * 16 + r] == valid[j];
            }
            listFull[list] = (uint8_t)full;
            for (int e = 0; e < ns; e++) {
                const int j = stored[e];
                entryWord[ne++] = j;
                for (int h = 0; h < 2; h++)
                    for (int part = 0; part < (full ? 1 : 2); part++)
                        for (int r = 0; r < 16; r++) {
                            const uint64_t bits = full ? sgn[j * 16 + r] : part == 0 ? sgn[j * 16 + r] & act[j * 16 + r] : ~sgn[j * 16 + r] & act[j * 16 + r];
                            const uint32_t lane = (uint32_t)(bits >> (32 * h));
                            for (int b = 0; b < 4; b++) codes[nc++] = (uint8_t)(lane >> (8 * b));
                        }
                for (int r = 0; r < 16 && 16 * g + r < rows; r++) {
                    double s = 0, m = 0;
                    for (int b = 0; b < 64; b++) {
                        m += fabs((double)x[64 * j + b]);  // the word's sum and its tables cover every input of it
                        if (act[j * 16 + r] >> b & 1) s += (sgn[j * 16 + r] >> b & 1) ? (double)x[64 * j + b] : -(double)x[64 * j + b];
                    }
                    ref[(size_t)k * rowsStored + 16 * g + r] += s;
                    mag[(size_t)k * rowsStored + 16 * g + r] += m;
                }
            }
            listStart[list + 1] = ne;
        }
    const bp_lut_weights w = {groups, levels, rowsStored, listStart, listFull, listCodes, entryWord, codes};
    float *scratch = malloc((size_t)bp_lut_scratch_floats(words) * sizeof *scratch);
    const size_t outN = (size_t)levels * rowsStored;
    float *out = malloc((outN + 16) * sizeof *out);
    for (size_t i = 0; i < outN + 16; i++) out[i] = 12345.0f;
    bp_lut_prepare(x, words, scratch);
    const int split = groups / 2;
    bp_lut_gemv(&w, words, scratch, out, 0, split);
    bp_lut_gemv(&w, words, scratch, out, split, groups - split);
    // Recursive summation bound: each row sums at most 32 table lookups per entry (2 per partial
    // entry's nibble pair) plus the word sums and the doubling, each term at most the word's
    // sum of |x|; the tables themselves add 3 roundings. So n_adds * 2^-24 * 2 * sum|x| with
    // n_adds = 64 * words + 16: a bound on summation-order differences, not a guess.
    const double u = 1.0 / 16777216.0;
    for (int k = 0; k < levels; k++)
        for (int row = 0; row < rows; row++) {
            const size_t i = (size_t)k * rowsStored + row;
            const double tol = (64.0 * words + 16) * u * 2 * mag[i] + 1e-30, err = fabs((double)out[i] - ref[i]);
            toleranceChecks++;
            if (!(err <= tol)) FAIL("lut gemv seed %llu n %d rows %d levels %d pattern %d: level %d row %d: %.9g, expected %.9g (tolerance %.3g)",
                                   (unsigned long long)seed, n, rows, levels, pattern, k, row, out[i], ref[i], tol);
            if (err / tol > lutWorst) lutWorst = err / tol;
        }
    for (size_t i = outN; i < outN + 16; i++) {
        exactChecks++;
        if (out[i] != 12345.0f) FAIL("lut gemv seed %llu n %d rows %d levels %d: wrote past rowsStored", (unsigned long long)seed, n, rows, levels);
    }
    free(x); free(valid); free(listStart); free(entryWord); free(listFull); free(codes); free(listCodes);
    free(act); free(sgn); free(ref); free(mag); free(scratch); free(out);
}

int main(void) {
    printf("c-kernels: bit-plane ISA %s (best of %d), float kernels %s\n", bp_isa_name(bp_isa()), bp_isa() + 1,
           fk_has_neon() ? "neon" : fk_has_avx512() ? "avx512" : "none (BLAS path)");
    uint64_t seed = 1;
    // Reduction lengths 1, 63, 64, 65, 511, 512, 513 (taps 1) and 9 taps of 1, 63, 64, 65
    // channels; weight and activation levels 1 to 3; each weight/activation pattern.
    const int lengths[] = {1, 63, 64, 65, 511, 512, 513};
    int64_t sweep = 0;
    for (size_t q = 0; q < sizeof lengths / sizeof *lengths; q++)
        for (int Lw = 1; Lw <= 3; Lw++)
            for (int Lx = 1; Lx <= 3; Lx++)
                for (int wp = 0; wp <= 2; wp++) {
                    const int rows = (int)(1 + (seed * 7) % 40), xp = (int)(seed % 3);
                    bitplane_case(seed, rows, 1, lengths[q], Lw, Lx, wp, xp);
                    seed++;
                    sweep++;
                }
    for (int q = 0; q < 4; q++)
        for (int Lw = 1; Lw <= 3; Lw++)
            for (int wp = 0; wp <= 2; wp++) {
                bitplane_case(seed, (int)(8 + seed % 30), 9, lengths[q], Lw, 1 + (int)(seed % 3), wp, (int)(seed % 3));
                seed++;
                sweep++;
            }
    // Wide blocks for the register-blocked runs (8, 4, 2 consecutive dense blocks).
    for (int Lw = 1; Lw <= 3; Lw++)
        for (int wp = 0; wp <= 2; wp += 2) bitplane_case(seed++, 64 + 3 * Lw, 9, 64, Lw, 2, wp, 2);
    printf("c-kernels: bit-plane counts, float epilogue, float GEMV: %lld cases (reduction lengths 1 63 64 65 511 512 513, 9-tap 1 63 64 65, levels 1-3)\n",
           (long long)sweep + 6);

    if (bp_lut_available(bp_isa())) {
        int64_t nl = 0;
        const int lutRows[] = {8, 16, 24, 40, 64, 72, 136};
        for (size_t q = 0; q < sizeof lengths / sizeof *lengths; q++)
            for (int levels = 1; levels <= 3; levels++)
                for (int pattern = 0; pattern <= 2; pattern++)
                    for (size_t r = 0; r < sizeof lutRows / sizeof *lutRows; r += 1 + (size_t)(seed % 2)) {
                        lut_case(seed, lengths[q], lutRows[r] - (int)(seed % 3) * 3, levels, pattern);
                        seed++;
                        nl++;
                    }
        printf("c-kernels: LUT float GEMV (%s): %lld cases (reduction lengths 1 63 64 65 511 512 513, rows 2..136, levels 1-3), "
               "max error %.3g of the tolerance\n", bp_isa_name(bp_isa()), (long long)nl, lutWorst);
    } else {
        printf("c-kernels: LUT float GEMV: not available at %s (callers use the subset-sum GEMV); skipped\n", bp_isa_name(bp_isa()));
    }

    const int64_t sizes[] = {1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 511, 512, 513, 1000};
    int64_t nb = 0;
    for (size_t q = 0; q < sizeof sizes / sizeof *sizes; q++)
        for (int levels = 1; levels <= 3; levels++)
            for (int pattern = 0; pattern <= 3; pattern++) { binarize_case(seed++, sizes[q], levels, pattern); nb++; }
    printf("c-kernels: binarization passes and level bits: %lld cases (n 1 7 8 9 15 16 17 63 64 65 511 512 513 1000, levels 1-3)\n", (long long)nb);

    const long ms[] = {1, 5, 6, 7, 13}, ns[] = {1, 3, 4, 5, 16, 17, 63, 64, 65, 130};
    const long ks[] = {1, 63, 64, 65, 511, 512, 513};
    int64_t ng = 0;
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
        for (size_t j = 0; j < sizeof ns / sizeof *ns; j++)
            for (size_t q = 0; q < sizeof ks / sizeof *ks; q++) {
                if (ms[i] * ns[j] * ks[q] > 200000 && (i + j + q) % 3) continue;
                gemm_case(seed++, ms[i], ns[j], ks[q], (int)((i + j) & 1), (int)(q % 2 == 0));
                ng++;
            }
    gemm_case(seed++, 7, 1100, 20, 1, 1);  // more than one column block (NC)
    gemm_case(seed++, 3, 9, 0, 1, 1);      // an empty reduction: the bias alone
    ng += 2;
    int64_t np = 0;
    const long pools[][6] = {{5, 5, 3, 3, 2, 2}, {13, 13, 3, 3, 2, 2}, {9, 17, 2, 2, 2, 2}, {8, 8, 3, 3, 1, 1}, {7, 30, 1, 5, 1, 1},
                             {11, 23, 3, 3, 3, 3}, {6, 40, 2, 3, 1, 2}, {4, 4, 4, 4, 1, 1}, {27, 27, 3, 3, 2, 2}};
    for (size_t q = 0; q < sizeof pools / sizeof *pools; q++) {
        maxpool_case(seed++, 3, pools[q][0], pools[q][1], pools[q][2], pools[q][3], pools[q][4], pools[q][5]);
        np++;
    }
    if (fk_has_avx512() || fk_has_neon())
        printf("c-kernels: row GEMM %lld cases (m 1 5 6 7 13, n 1..130 and 1100, k 0 1 63 64 65 511 512 513), max pooling %lld cases\n",
               (long long)ng, (long long)np);
    else
        printf("c-kernels: row GEMM and max pooling: no C kernel here (callers use BLAS and Swift)\n");
    printf("c-kernels: %lld cases, %lld exact comparisons, %lld within tolerance, %lld failures\n", (long long)casesRun,
           (long long)exactChecks, (long long)toleranceChecks, (long long)failures);
    return failures ? 1 : 0;
}
