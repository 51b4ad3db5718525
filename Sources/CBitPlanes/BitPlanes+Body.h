// The kernel bodies, included once per instruction set by BitPlanes.c with
//   BP_TARGET  the function attribute (target("...") or nothing)
//   BP_FN(n)   the variant's name for n
//   BP_MASKED_FLOAT  1 when AVX-512F masked adds are available for the float GEMV
// Lanes are the 8 rows of a weight block (v8u64), so popcounts need no horizontal sums: clang
// lowers __builtin_elementwise_popcount to VPOPCNTQ (AVX-512), a PSHUFB nibble table (AVX2)
// or scalar bit arithmetic (portable), from the same source.

#ifndef BP_LOAD8
#define BP_LOAD8(dst, p) __builtin_memcpy(&(dst), (p), sizeof(dst))
#endif

/// Counts of one position against one weight block: X[k][l] and M[k][l] (8 lanes each) for
/// k < w->levels, l < x->levels. Levels of the activations are nested (a unit empty at level l
/// is empty above it), so the level loop stops at the first empty one.
static inline __attribute__((always_inline)) BP_TARGET void BP_FN(block_counts)(const bp_weights *w, const bp_acts *x, const int32_t *patch, int32_t b,
                                                 v8u64 X[BP_MAX_LEVELS][BP_MAX_LEVELS], v8u64 M[BP_MAX_LEVELS][BP_MAX_LEVELS]) {
    const int32_t Lw = w->levels, Lx = x->levels, cw = w->wordsPerTap;
    const int64_t unitStride = (int64_t)x->units * cw;
    for (int32_t k = 0; k < Lw; k++) {
        const int32_t list = b * Lw + k;
        const int32_t e0 = w->listStart[list], e1 = w->listStart[list + 1];
        const int full = w->listFull[list];
        const uint64_t *acts = w->entryActs + 8 * (w->listActs[list] - e0);
        // Accumulators for this weight level, indexed by constants after unrolling.
        v8u64 ax[BP_MAX_LEVELS], am[BP_MAX_LEVELS];
        uint64_t fullCount[BP_MAX_LEVELS];
#pragma clang loop unroll(full)
        for (int l = 0; l < BP_MAX_LEVELS; l++) { ax[l] = (v8u64)0; am[l] = (v8u64)0; fullCount[l] = 0; }
        for (int32_t e = e0; e < e1; e++) {
            const int32_t tap = w->entryTap[e], i = w->entryWord[e] - tap * cw;
            const int32_t u = patch[tap];
            if (u < 0) continue;  // zero padding contributes nothing at any level
            const uint8_t *st = x->state + (int64_t)u * Lx;
            v8u64 s, a = (v8u64)0;
            BP_LOAD8(s, w->entrySigns + 8 * (int64_t)e);
            if (!full) BP_LOAD8(a, acts + 8 * (int64_t)e);
            const uint64_t *xs = x->signs + (int64_t)u * cw + i;
            const uint64_t *xa = x->acts + (int64_t)u * cw + i;
            const uint64_t valid = w->validMask[i];
            int alive = 1;
#pragma clang loop unroll(full)
            for (int l = 0; l < BP_MAX_LEVELS; l++) {
                alive = alive && l < Lx && st[l] != BP_UNIT_EMPTY;
                if (!alive) continue;
                const uint64_t t = xs[l * unitStride];
                if (full && st[l] == BP_UNIT_FULL) {
                    // Both sides active on every valid bit; padding bits are 0 in s and t.
                    ax[l] += __builtin_elementwise_popcount(s ^ t);
                    fullCount[l] += (uint64_t)__builtin_popcountll(valid);
                } else {
                    const uint64_t bw = st[l] == BP_UNIT_FULL ? valid : xa[l * unitStride];
                    const v8u64 m = full ? (v8u64)bw : (a & bw);
                    ax[l] += __builtin_elementwise_popcount((s ^ t) & m);
                    am[l] += __builtin_elementwise_popcount(m);
                }
            }
        }
#pragma clang loop unroll(full)
        for (int l = 0; l < BP_MAX_LEVELS; l++) {
            if (l < Lx) { X[k][l] = ax[l]; M[k][l] = am[l] + fullCount[l]; }
        }
    }
}

/// The activation side of one position, shared by every block: per level l, the words of the
/// patch active at l (index into the weight row, index into the activation planes, activity
/// word) and the sum of their popcounts.
typedef struct {
    int32_t *word;
    int64_t *at;
    uint64_t *act;
    uint64_t *sign;   // x->signs[at], so the register-blocked path reads no index
    int32_t count[BP_MAX_LEVELS];
    uint64_t total[BP_MAX_LEVELS];
    int32_t capacity;
} BP_FN(patch_lists);

static inline __attribute__((always_inline)) BP_TARGET void BP_FN(build_lists)(const bp_weights *w, const bp_acts *x, const int32_t *patch,
                                                                              BP_FN(patch_lists) *pl) {
    const int32_t cw = w->wordsPerTap, Lx = x->levels;
    for (int32_t l = 0; l < Lx; l++) {
        int32_t n = 0;
        uint64_t total = 0;
        int32_t *word = pl->word + (int64_t)l * pl->capacity;
        int64_t *at = pl->at + (int64_t)l * pl->capacity;
        uint64_t *act = pl->act + (int64_t)l * pl->capacity;
        uint64_t *sign = pl->sign + (int64_t)l * pl->capacity;
        for (int32_t tap = 0; tap < w->taps; tap++) {
            const int32_t u = patch[tap];
            if (u < 0) continue;
            for (int32_t i = 0; i < cw; i++) {
                const int64_t a = ((int64_t)l * x->units + u) * cw + i;
                const uint64_t b = x->acts[a];
                // Branch-free: whether a sparse level's word is active is a coin flip.
                word[n] = tap * cw + i;
                at[n] = a;
                act[n] = b;
                sign[n] = x->signs[a];
                total += (uint64_t)__builtin_popcountll(b);
                n += b != 0;
            }
        }
        pl->count[l] = n;
        pl->total[l] = total;
    }
}

/// Counts of a dense block (its levels 1..`levels` list every word; the rest are empty): loops
/// over the patch's active words per activation level and every weight level of the block per
/// word. A level whose list is full needs no weight activity (M is the patch's total); a partial
/// one (rows of mixed widths in the block) ANDs it in.
static inline __attribute__((always_inline)) BP_TARGET void BP_FN(dense_counts)(const bp_weights *w, const BP_FN(patch_lists) *pl, const bp_acts *x,
                                                                               int32_t b, int32_t levels,
                                                                               v8u64 X[BP_MAX_LEVELS][BP_MAX_LEVELS], v8u64 M[BP_MAX_LEVELS][BP_MAX_LEVELS]) {
    const int32_t Lw = w->levels, Lx = x->levels;
    const uint64_t *S[BP_MAX_LEVELS], *A[BP_MAX_LEVELS];
    int full[BP_MAX_LEVELS];
    for (int32_t k = 0; k < BP_MAX_LEVELS; k++) {
        if (k < Lw) {
            const int32_t list = b * Lw + k;
            S[k] = w->entrySigns + 8 * (int64_t)w->listStart[list];
            A[k] = w->entryActs + 8 * w->listActs[list];
            full[k] = w->listFull[list];
        } else { S[k] = A[k] = 0; full[k] = 1; }
    }
    for (int32_t l = 0; l < Lx; l++) {
        v8u64 acc[BP_MAX_LEVELS], accM[BP_MAX_LEVELS];
#pragma clang loop unroll(full)
        for (int k = 0; k < BP_MAX_LEVELS; k++) { acc[k] = (v8u64)0; accM[k] = (v8u64)0; }
        const int32_t n = pl->count[l];
        const int32_t *word = pl->word + (int64_t)l * pl->capacity;
        const int64_t *at = pl->at + (int64_t)l * pl->capacity;
        const uint64_t *act = pl->act + (int64_t)l * pl->capacity;
        for (int32_t j = 0; j < n; j++) {
            const v8u64 t = (v8u64)x->signs[at[j]], m = (v8u64)act[j];
            const int64_t off = 8 * (int64_t)word[j];
#pragma clang loop unroll(full)
            for (int k = 0; k < BP_MAX_LEVELS; k++) {
                if (k < levels) {
                    v8u64 s;
                    BP_LOAD8(s, S[k] + off);
                    if (full[k]) {
                        acc[k] += __builtin_elementwise_popcount((s ^ t) & m);
                    } else {
                        v8u64 a;
                        BP_LOAD8(a, A[k] + off);
                        const v8u64 mm = a & m;
                        acc[k] += __builtin_elementwise_popcount((s ^ t) & mm);
                        accM[k] += __builtin_elementwise_popcount(mm);
                    }
                }
            }
        }
        for (int32_t k = 0; k < Lw; k++) {
            X[k][l] = k < levels ? acc[k] : (v8u64)0;
            M[k][l] = k < levels ? (full[k] ? (v8u64)pl->total[l] : accM[k]) : (v8u64)0;
        }
    }
}

/// Blocks handled together by the register-blocked path: consecutive blocks whose levels 1..n
/// are all full lists over every word, for the same n (rows sorted by width make them common).
#ifndef BP_RUN
#define BP_RUN 8
#endif

/// Lanes (bit r = row r) of list (b, k) active on every valid bit of every entry, when all the
/// other lanes are inactive on all of them (rows of one width: channel masks), else -1. A block
/// mixing 1- and 2-bit rows then runs its level 2 as a full list: the inactive rows' signs are 0
/// and their scales 0 (BitPlaneMatrix), so they add nothing, and their counts are masked to 0.
static inline BP_TARGET int BP_FN(uniform_lanes)(const bp_weights *w, int32_t b, int32_t k) {
    const int32_t list = b * w->levels + k;
    if (w->listFull[list]) return 0xFF;
    const int32_t e0 = w->listStart[list], e1 = w->listStart[list + 1];
    const uint64_t *acts = w->entryActs + 8 * w->listActs[list];
    int on = 0xFF, off = 0xFF;
    for (int32_t e = e0; e < e1; e++) {
        const uint64_t valid = w->validMask[w->entryWord[e] - w->entryTap[e] * w->wordsPerTap];
        for (int r = 0; r < 8; r++) {
            const uint64_t a = acts[8 * (int64_t)(e - e0) + r];
            if (a != valid) on &= ~(1 << r);
            if (a != 0) off &= ~(1 << r);
        }
    }
    return (on | off) == 0xFF ? on : -1;
}

/// `levels` (1 to 3) when the block's levels 1..levels list every word, each full or
/// row-uniform (BP_FN(uniform_lanes)), and the rest are empty, else 0; lanes[k] gets the active
/// lanes of level k.
static inline BP_TARGET int BP_FN(full_levels)(const bp_weights *w, int32_t b, uint8_t *lanes) {
    const int32_t dense = w->blockDense[b];
    for (int32_t k = 0; k < w->levels; k++) lanes[k] = 0xFF;
    if (dense <= 0 || dense > 3) return 0;
    for (int32_t k = 0; k < dense; k++) {
        const int u = BP_FN(uniform_lanes)(w, b, k);
        if (u < 0) { for (int32_t q = 0; q < w->levels; q++) lanes[q] = 0xFF; return 0; }
        lanes[k] = (uint8_t)u;
    }
    return dense;
}

/// R <= BP_RUN blocks of `levels` full levels each: per activation word the broadcasts of its sign and
/// activity and the walk of the patch list are shared by all of them (register blocking: 4
/// blocks x 1 level, 4 x 2 or 2 x 3 accumulators), instead of repeated per block.
static inline __attribute__((always_inline)) BP_TARGET void BP_FN(dense_full_run)(const bp_weights *w, const BP_FN(patch_lists) *pl, const bp_acts *x,
                                                                                 int32_t b, const int R, const int levels,
                                                                                 v8u64 X[BP_MAX_LEVELS][BP_MAX_LEVELS][BP_RUN],
                                                                                 v8u64 M[BP_MAX_LEVELS][BP_MAX_LEVELS][BP_RUN]) {
    const int32_t Lw = w->levels, Lx = x->levels;
    const uint64_t *S[BP_RUN][3] = {{0}};
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++)
#pragma clang loop unroll(full)
        for (int k = 0; k < 3; k++) S[r][k] = w->entrySigns + 8 * (int64_t)w->listStart[(b + r) * Lw + (k < levels ? k : 0)];
    for (int32_t l = 0; l < Lx; l++) {
        v8u64 acc[BP_RUN][3];
#pragma clang loop unroll(full)
        for (int r = 0; r < R; r++)
#pragma clang loop unroll(full)
            for (int k = 0; k < 3; k++) acc[r][k] = (v8u64)0;
        const int32_t n = pl->count[l];
        const int32_t *word = pl->word + (int64_t)l * pl->capacity;
        const uint64_t *act = pl->act + (int64_t)l * pl->capacity;
        const uint64_t *sign = pl->sign + (int64_t)l * pl->capacity;
        for (int32_t j = 0; j < n; j++) {
            const v8u64 t = (v8u64)sign[j], m = (v8u64)act[j];
            const int64_t off = 8 * (int64_t)word[j];
#pragma clang loop unroll(full)
            for (int r = 0; r < R; r++) {
#pragma clang loop unroll(full)
                for (int k = 0; k < 3; k++) {
                    if (k < levels) {
                        v8u64 s;
                        BP_LOAD8(s, S[r][k] + off);
                        acc[r][k] += __builtin_elementwise_popcount((s ^ t) & m);
                    }
                }
            }
        }
        // Only levels < `levels` (the block's levels): callers read no further (BP_FOR_COUNTS).
#pragma clang loop unroll(full)
        for (int r = 0; r < R; r++) {
#pragma clang loop unroll(full)
            for (int k = 0; k < 3; k++) {
                if (k < levels) { X[k][l][r] = acc[r][k]; M[k][l][r] = (v8u64)pl->total[l]; }
            }
        }
    }
}

/// How many blocks from b the register-blocked path takes at once (8, 4, 2 or 1 consecutive
/// blocks of the same full width), or 0 when block b needs the general path.
static inline BP_TARGET int32_t BP_FN(run_length)(const bp_weights *w, const uint8_t *fullLevels, int32_t b) {
    const int n = fullLevels[b];
    if (n == 0) return 0;
    int32_t same = 1;
    while (same < BP_RUN && b + same < w->blocks && fullLevels[b + same] == n) same++;
    // About 8 accumulators: 8 one-level blocks, 4 two-level ones, 2 three-level ones.
    const int32_t cap = n == 1 ? 8 : n == 2 ? 4 : 2;
    if (same > cap) same = cap;
    return same >= 8 ? 8 : same >= 4 ? 4 : same >= 2 ? 2 : 1;
}

/// Either path for one (position, block).
static inline __attribute__((always_inline)) BP_TARGET void BP_FN(counts)(const bp_weights *w, const bp_acts *x, const int32_t *patch,
                                                                         const BP_FN(patch_lists) *pl, int32_t b,
                                                                         v8u64 X[BP_MAX_LEVELS][BP_MAX_LEVELS], v8u64 M[BP_MAX_LEVELS][BP_MAX_LEVELS]) {
    // Blocks of 1 to 3 full levels take the register-blocked path (run_counts) before this.
    const int32_t dense = w->blockDense[b];
    if (dense > 0) BP_FN(dense_counts)(w, pl, x, b, dense, X, M);
    else BP_FN(block_counts)(w, x, patch, b, X, M);
}

/// Counts of blocks b ..< b + max(run, 1) for one position (run from BP_FN(run_length)).
static inline __attribute__((always_inline)) BP_TARGET void BP_FN(run_counts)(const bp_weights *w, const bp_acts *x, const int32_t *patch,
                                                                             const BP_FN(patch_lists) *pl, const uint8_t *fullLevels, int32_t b, int32_t run,
                                                                             v8u64 X[BP_MAX_LEVELS][BP_MAX_LEVELS][BP_RUN],
                                                                             v8u64 M[BP_MAX_LEVELS][BP_MAX_LEVELS][BP_RUN]) {
    const int n = fullLevels[b];
#define BP_RUN_CASE(R, L) if (run == R && n == L) { BP_FN(dense_full_run)(w, pl, x, b, R, L, X, M); return; }
    BP_RUN_CASE(8, 1) BP_RUN_CASE(4, 1) BP_RUN_CASE(4, 2)
    BP_RUN_CASE(2, 1) BP_RUN_CASE(2, 2) BP_RUN_CASE(2, 3)
    BP_RUN_CASE(1, 1) BP_RUN_CASE(1, 2) BP_RUN_CASE(1, 3)
#undef BP_RUN_CASE
    // Run slot 0 of the [k][l][run] arrays (run-major would put slots 4 KB apart: store-to-load
    // aliasing in the epilogue).
    v8u64 Xg[BP_MAX_LEVELS][BP_MAX_LEVELS], Mg[BP_MAX_LEVELS][BP_MAX_LEVELS];
    BP_FN(counts)(w, x, patch, pl, b, Xg, Mg);
    for (int32_t k = 0; k < w->levels; k++)
        for (int32_t l = 0; l < x->levels; l++) { X[k][l][0] = Xg[k][l]; M[k][l][0] = Mg[k][l]; }
}

/// Per block, BP_FN(full_levels), then per (block, level) its active lanes (malloc'd, blocks +
/// blocks * levels bytes; the caller frees it).
static BP_TARGET uint8_t *BP_FN(full_levels_all)(const bp_weights *w) {
    uint8_t *f = (uint8_t *)malloc((size_t)w->blocks * (size_t)(1 + w->levels) + 1);
    if (f) for (int32_t b = 0; b < w->blocks; b++) f[b] = (uint8_t)BP_FN(full_levels)(w, b, f + w->blocks + (int64_t)b * w->levels);
    return f;
}

static BP_TARGET int BP_FN(lists_alloc)(const bp_weights *w, const bp_acts *x, BP_FN(patch_lists) *pl) {
    pl->capacity = w->taps * w->wordsPerTap;
    const int64_t n = (int64_t)pl->capacity * x->levels + 1;
    pl->word = (int32_t *)malloc(n * sizeof(int32_t));
    pl->at = (int64_t *)malloc(n * sizeof(int64_t));
    pl->act = (uint64_t *)malloc(n * sizeof(uint64_t));
    pl->sign = (uint64_t *)malloc(n * sizeof(uint64_t));
    return pl->word && pl->at && pl->act && pl->sign;
}

static BP_TARGET void BP_FN(lists_free)(BP_FN(patch_lists) *pl) {
    free(pl->word);
    free(pl->at);
    free(pl->act);
    free(pl->sign);
}

/// Positions per tile: their patch lists are built once, then every block (run) walks the tile's
/// positions while its weight words stay in L1 (a block run's planes are a few KB; all blocks'
/// planes, walked per position, would stream from L2 for every position).
#ifndef BP_TILE
#define BP_TILE 16
#endif

/// Runs BP_EMIT for every position p (tile slot i) in [first, first + count) and block b (run
/// slot r of X and M), tile by tile, and BP_AFTER_TILE after each tile (positions p0 ..< p0 + nt).
#define BP_FOR_COUNTS()                                                                                              \
    const int32_t Lw = w->levels, Lx = x->levels;                                                                         \
    (void)Lw; (void)Lx;                                                                                                   \
    /* Per block the levels it has: lists past the last nonempty one are empty, so X = M = 0 */                          \
    /* there and the register-blocked path does not write them. */                                                       \
    int32_t *blockLevels = (int32_t *)malloc(sizeof(int32_t) * (size_t)(w->blocks + 1));                                 \
    for (int32_t b = 0; blockLevels && b < w->blocks; b++) {                                                              \
        int32_t n = 0;                                                                                                    \
        for (int32_t k = 0; k < Lw; k++) if (w->listStart[b * Lw + k + 1] > w->listStart[b * Lw + k]) n = k + 1;         \
        blockLevels[b] = n;                                                                                               \
    }                                                                                                                     \
    v8u64 X[BP_MAX_LEVELS][BP_MAX_LEVELS][BP_RUN], M[BP_RUN][BP_MAX_LEVELS][BP_MAX_LEVELS];                               \
    BP_FN(patch_lists) pl[BP_TILE];                                                                                       \
    int ok = 1;                                                                                                           \
    for (int i = 0; i < BP_TILE; i++) ok = BP_FN(lists_alloc)(w, x, &pl[i]) && ok;                                       \
    uint8_t *fullLevels = BP_FN(full_levels_all)(w);                                                                      \
    const uint8_t *laneMask = fullLevels ? fullLevels + w->blocks : 0;                                                    \
    (void)laneMask;                                                                                                       \
    if (ok && fullLevels && blockLevels) {                                                                                \
        for (int64_t p0 = first; p0 < first + count; p0 += BP_TILE) {                                                    \
            const int32_t nt = (int32_t)(first + count - p0 < BP_TILE ? first + count - p0 : BP_TILE);                  \
            for (int32_t i = 0; i < nt; i++) BP_FN(build_lists)(w, x, patches + (p0 + i) * w->taps, &pl[i]);            \
            for (int32_t b0 = 0; b0 < w->blocks;) {                                                                       \
                const int32_t run = BP_FN(run_length)(w, fullLevels, b0);                                                 \
                for (int32_t i = 0; i < nt; i++) {                                                                        \
                    const int64_t p = p0 + i;                                                                             \
                    BP_FN(run_counts)(w, x, patches + p * w->taps, &pl[i], fullLevels, b0, run, X, M);                   \
                    for (int32_t r = 0; r < (run > 0 ? run : 1); r++) {                                                   \
                        const int32_t b = b0 + r;                                                                         \
                        BP_EMIT                                                                                           \
                    }                                                                                                     \
                }                                                                                                         \
                b0 += run > 0 ? run : 1;                                                                                  \
            }                                                                                                             \
            BP_AFTER_TILE                                                                                                 \
        }                                                                                                                 \
    }                                                                                                                     \
    for (int i = 0; i < BP_TILE; i++) BP_FN(lists_free)(&pl[i]);                                                         \
    free(fullLevels);                                                                                                     \
    free(blockLevels);

BP_TARGET static void BP_FN(binary_counts)(const bp_weights *w, const bp_acts *x, const int32_t *patches,
                                           int64_t first, int64_t count, int32_t *Xout, int32_t *Mout) {
#define BP_EMIT                                                                     \
    for (int32_t k = 0; k < Lw; k++) {                                              \
        for (int32_t l = 0; l < Lx; l++) {                                          \
            const int64_t at = (((((p - first) * w->blocks + b) * Lw + k) * Lx) + l) * 8; \
            for (int q = 0; q < 8; q++) {                                           \
                const int on = k < blockLevels[b] && ((laneMask[b * Lw + k] >> q) & 1); \
                Xout[at + q] = on ? (int32_t)X[k][l][r][q] : 0;                     \
                Mout[at + q] = on ? (int32_t)M[k][l][r][q] : 0;                     \
            }                                                                       \
        }                                                                           \
    }
#define BP_AFTER_TILE
    BP_FOR_COUNTS()
#undef BP_EMIT
#undef BP_AFTER_TILE
}

BP_TARGET static void BP_FN(binary_float)(const bp_weights *w, const bp_acts *x, const int32_t *patches,
                                          int64_t first, int64_t count, const int32_t *rowOrder, int32_t rows,
                                          const float *bias, int relu, float *y, int64_t strideRow, int64_t stridePos) {
    const int64_t levelStride = (int64_t)w->blocks * 8;
    // Per block the levels it has (lists after the last nonempty one are skipped in the
    // epilogue: a 1-bit block of 3-level weights does 1/3 of the scale work), and a tile of
    // outputs in block-row order, stored to y row by row after each tile (8 scattered stores
    // per block and position otherwise).
    float *tile = (float *)malloc(sizeof(float) * (size_t)levelStride * BP_TILE);
    if (!tile) return;
#define BP_EMIT                                                                                 \
    /* Epilogue: each level's scale once per output, k then l ascending (the reference's order). */ \
    v8f32 acc = (v8f32)0;                                                                       \
    for (int32_t k = 0; k < blockLevels[b]; k++) {                                              \
        v8f32 mu;                                                                               \
        __builtin_memcpy(&mu, w->scales + k * levelStride + 8 * b, sizeof mu);                  \
        for (int32_t l = 0; l < Lx; l++) {                                                      \
            if (pl[i].count[l] == 0) continue; /* X = M = 0 */                                  \
            const v8i64 d = (v8i64)M[k][l][r] - 2 * (v8i64)X[k][l][r];                          \
            acc += mu * x->scales[l] * __builtin_convertvector(d, v8f32);                       \
        }                                                                                       \
    }                                                                                           \
    for (int q = 0; q < 8; q++) tile[(int64_t)(8 * b + q) * BP_TILE + i] = acc[q];
#define BP_AFTER_TILE                                                                           \
    for (int32_t br = 0; br < w->blocks * 8; br++) {                                            \
        const int32_t row = rowOrder[br];                                                       \
        if (row < 0 || row >= rows) continue;                                                   \
        const float bv = bias ? bias[row] : 0.0f;                                               \
        float *out = y + row * strideRow + p0 * stridePos;                                      \
        for (int32_t i = 0; i < nt; i++) {                                                      \
            float v = tile[(int64_t)br * BP_TILE + i] + bv;                                     \
            if (relu && !(v > 0)) v = 0;                                                        \
            out[i * stridePos] = v;                                                             \
        }                                                                                       \
    }
    BP_FOR_COUNTS()
#undef BP_EMIT
#undef BP_AFTER_TILE
    free(tile);
}

#if BP_MASKED_FLOAT
/// AVX-512: per word, the 64 floats of x in four registers; each row adds them under the
/// 16-bit pieces of its sign (and activity) word as masks. 8 rows share the loads of x.
BP_TARGET static void BP_FN(gemv_prepare)(const bp_weights *w, const float *xv, float *scratch) {
    const int32_t words = w->taps * w->wordsPerTap;
    for (int32_t j = 0; j < words; j++) {
        __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(xv + 64 * j), _mm512_loadu_ps(xv + 64 * j + 16)),
                                 _mm512_add_ps(_mm512_loadu_ps(xv + 64 * j + 32), _mm512_loadu_ps(xv + 64 * j + 48)));
        scratch[j] = _mm512_reduce_add_ps(s);
    }
}

BP_TARGET static void BP_FN(gemv_float)(const bp_weights *w, const float *xv, float *out, const float *scratch,
                                        int32_t firstBlock, int32_t blockCount) {
    const int32_t Lw = w->levels;
    const float *wordSum = scratch;
    const int64_t levelStride = (int64_t)w->blocks * 8;
    for (int32_t b = firstBlock; b < firstBlock + blockCount; b++) {
        for (int32_t k = 0; k < Lw; k++) {
            const int32_t list = b * Lw + k;
            const int32_t e0 = w->listStart[list], e1 = w->listStart[list + 1];
            float *o = out + k * levelStride + 8 * b;
            if (w->listFull[list]) {
                // sum_j s_j x_j = 2 * (sum of x where s = +1) - (sum of the word's x).
                __m512 acc[8];
                for (int r = 0; r < 8; r++) acc[r] = _mm512_setzero_ps();
                float total = 0;
                for (int32_t e = e0; e < e1; e++) {
                    const int32_t j = w->entryWord[e];
                    const float *xj = xv + 64 * j;
                    const __m512 x0 = _mm512_loadu_ps(xj), x1 = _mm512_loadu_ps(xj + 16);
                    const __m512 x2 = _mm512_loadu_ps(xj + 32), x3 = _mm512_loadu_ps(xj + 48);
                    const uint64_t *sg = w->entrySigns + 8 * (int64_t)e;
                    total += wordSum[j];
#pragma clang loop unroll(full)
                    for (int r = 0; r < 8; r++) {
                        const uint64_t s = sg[r];
                        acc[r] = _mm512_mask_add_ps(acc[r], (__mmask16)s, acc[r], x0);
                        acc[r] = _mm512_mask_add_ps(acc[r], (__mmask16)(s >> 16), acc[r], x1);
                        acc[r] = _mm512_mask_add_ps(acc[r], (__mmask16)(s >> 32), acc[r], x2);
                        acc[r] = _mm512_mask_add_ps(acc[r], (__mmask16)(s >> 48), acc[r], x3);
                    }
                }
                for (int r = 0; r < 8; r++) o[r] = 2 * _mm512_reduce_add_ps(acc[r]) - total;
            } else {
                // sum over active j of s_j x_j = 2 * (sum where active and +1) - (sum where active).
                __m512 pos[8], act[8];
                for (int r = 0; r < 8; r++) { pos[r] = _mm512_setzero_ps(); act[r] = _mm512_setzero_ps(); }
                const uint64_t *acts = w->entryActs + 8 * w->listActs[list];
                for (int32_t e = e0; e < e1; e++) {
                    const int32_t j = w->entryWord[e];
                    const float *xj = xv + 64 * j;
                    const __m512 x0 = _mm512_loadu_ps(xj), x1 = _mm512_loadu_ps(xj + 16);
                    const __m512 x2 = _mm512_loadu_ps(xj + 32), x3 = _mm512_loadu_ps(xj + 48);
                    const uint64_t *sg = w->entrySigns + 8 * (int64_t)e;
                    const uint64_t *ac = acts + 8 * (int64_t)(e - e0);
#pragma clang loop unroll(full)
                    for (int r = 0; r < 8; r++) {
                        const uint64_t a = ac[r], s = sg[r] & a;
                        pos[r] = _mm512_mask_add_ps(pos[r], (__mmask16)s, pos[r], x0);
                        pos[r] = _mm512_mask_add_ps(pos[r], (__mmask16)(s >> 16), pos[r], x1);
                        pos[r] = _mm512_mask_add_ps(pos[r], (__mmask16)(s >> 32), pos[r], x2);
                        pos[r] = _mm512_mask_add_ps(pos[r], (__mmask16)(s >> 48), pos[r], x3);
                        act[r] = _mm512_mask_add_ps(act[r], (__mmask16)a, act[r], x0);
                        act[r] = _mm512_mask_add_ps(act[r], (__mmask16)(a >> 16), act[r], x1);
                        act[r] = _mm512_mask_add_ps(act[r], (__mmask16)(a >> 32), act[r], x2);
                        act[r] = _mm512_mask_add_ps(act[r], (__mmask16)(a >> 48), act[r], x3);
                    }
                }
                for (int r = 0; r < 8; r++) o[r] = 2 * _mm512_reduce_add_ps(pos[r]) - _mm512_reduce_add_ps(act[r]);
            }
        }
    }
}
#else
/// Portable: per byte of x (8 floats), a table of the 256 subset sums; a row's byte of signs
/// picks one entry, so a 64-bit word costs 8 loads per row instead of 64 multiply-adds.
BP_TARGET static void BP_FN(gemv_prepare)(const bp_weights *w, const float *xv, float *scratch) {
    const int32_t words = w->taps * w->wordsPerTap;
    float *wordSum = scratch;
    float *table = scratch + words;
    for (int32_t q = 0; q < 8 * words; q++) {
        float *t = table + 256 * (int64_t)q;
        const float *xq = xv + 8 * q;
        t[0] = 0;
        for (int m = 1; m < 256; m++) t[m] = t[m & (m - 1)] + xq[__builtin_ctz(m)];
    }
    for (int32_t j = 0; j < words; j++) {
        float s = 0;
        for (int q = 0; q < 8; q++) s += table[256 * (int64_t)(8 * j + q) + 255];
        wordSum[j] = s;
    }
}

BP_TARGET static void BP_FN(gemv_float)(const bp_weights *w, const float *xv, float *out, const float *scratch,
                                        int32_t firstBlock, int32_t blockCount) {
    const int32_t Lw = w->levels;
    const int32_t words = w->taps * w->wordsPerTap;
    const float *wordSum = scratch;
    const float *table = scratch + words;
    const int64_t levelStride = (int64_t)w->blocks * 8;
    for (int32_t b = firstBlock; b < firstBlock + blockCount; b++) {
        for (int32_t k = 0; k < Lw; k++) {
            const int32_t list = b * Lw + k;
            const int32_t e0 = w->listStart[list], e1 = w->listStart[list + 1];
            const int full = w->listFull[list];
            const uint64_t *acts = w->entryActs + 8 * w->listActs[list];
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            float total = 0;
            for (int32_t e = e0; e < e1; e++) {
                const int32_t j = w->entryWord[e];
                const float *tj = table + 256 * (int64_t)(8 * j);
                const uint64_t *sg = w->entrySigns + 8 * (int64_t)e;
                if (full) {
                    total += wordSum[j];
                    for (int r = 0; r < 8; r++) {
                        const uint64_t s = sg[r];
                        float v = 0;
                        for (int q = 0; q < 8; q++) v += tj[256 * q + ((s >> (8 * q)) & 255)];
                        acc[r] += v;
                    }
                } else {
                    const uint64_t *ac = acts + 8 * (int64_t)(e - e0);
                    for (int r = 0; r < 8; r++) {
                        const uint64_t a = ac[r], pos = sg[r] & a, neg = ~sg[r] & a;
                        float v = 0;
                        for (int q = 0; q < 8; q++)
                            v += tj[256 * q + ((pos >> (8 * q)) & 255)] - tj[256 * q + ((neg >> (8 * q)) & 255)];
                        acc[r] += v;
                    }
                }
            }
            float *o = out + k * levelStride + 8 * b;
            for (int r = 0; r < 8; r++) o[r] = full ? 2 * acc[r] - total : acc[r];
        }
    }
}
#endif
