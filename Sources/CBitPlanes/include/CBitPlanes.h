// Bit-plane kernels for binarized weights (and binarized activations).
//
// C because the kernels need per-function instruction sets (AVX-512 VPOPCNTDQ, AVX2) chosen at
// run time by cpuid, which Swift cannot express: the same kernel body (BitPlanes+Body.h) is
// compiled once per instruction set with clang's target attribute, and `bp_isa()` picks one.
// The plain references live in Swift (MBKernels/BitPlane*+Reference.swift); tests compare them.
//
// Layouts (see MBKernels/BitPlaneMatrix.swift for the builder):
// - Weights: output rows in blocks of 8 (lanes = rows). Per (block, level) a list of entries,
//   one per 64-bit word of the reduction axis that any of the 8 rows has active at that level:
//   the word's index, then 8 sign words (bit set = +1) and, unless the list is FULL (every bit
//   of every row active), 8 activity words.
// - Activations: "units" of `wordsPerUnit` words (a pixel's channels for Conv, the vector for
//   Gemm); per (level, unit) activity and sign words, and a state (0 empty, 1 partial, 2 full).
// - A position's patch: for each tap, the unit it reads, or -1 (zero padding).
#ifndef CBITPLANES_H
#define CBITPLANES_H

#include <stddef.h>
#include <stdint.h>
#include "CBitPlanesDotConv8.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction-set levels, ordered: 0 portable, 1 the first vector level (AVX2 on x86-64, NEON on
/// aarch64: never both on one CPU), 2 AVX-512 (x86-64 only).
enum { BP_ISA_PORTABLE = 0, BP_ISA_AVX2 = 1, BP_ISA_AVX512 = 2, BP_ISA_NEON = 1 };
enum { BP_MAX_LEVELS = 8 };
enum { BP_UNIT_EMPTY = 0, BP_UNIT_PARTIAL = 1, BP_UNIT_FULL = 2 };

/// The best instruction set this CPU runs: AVX512 needs F, BW, VL and VPOPCNTDQ; AVX2 needs
/// AVX2 and POPCNT; on aarch64 it is NEON (part of every aarch64 CPU: chosen at build time).
/// Environment variable MBCONVERT_ISA=portable|avx2|avx512 caps it (tests; portable on aarch64).
int bp_isa(void);
const char *bp_isa_name(int isa);

typedef struct {
    int32_t blocks;          // ceil(rows / 8)
    int32_t levels;          // largest bit width
    int32_t taps;            // kernel positions (1 for Gemm)
    int32_t wordsPerTap;     // words of one tap's channels
    const int32_t *listStart;   // blocks*levels + 1 entry offsets (CSR)
    const uint8_t *listFull;    // blocks*levels
    const int64_t *listActs;    // blocks*levels: offset (in entries) of the list's activity words
    const int32_t *entryWord;   // word index (tap * wordsPerTap + i) per entry
    const int32_t *entryTap;    // its tap (saves a division per entry in the kernel)
    const uint64_t *entrySigns; // 8 words per entry
    const uint64_t *entryActs;  // 8 words per entry of non-full lists, at listActs[list] + (e - listStart[list])
    const uint64_t *validMask;  // wordsPerTap: valid channel bits of each word of a tap
    const float *scales;        // levels * blocks * 8: mu of (level, block row)
    const uint8_t *blockDense;  // blocks: n > 0 when the block's levels 1..n are full lists over
                                // every word and the rest empty (rows of one bit width: channel
                                // masks, homogeneous weights); the kernel then indexes words directly
} bp_weights;

typedef struct {
    int32_t units;
    int32_t levels;
    int32_t wordsPerUnit;
    const uint64_t *signs;   // levels * units * wordsPerUnit
    const uint64_t *acts;    // levels * units * wordsPerUnit
    const uint8_t *state;    // units * levels
    const float *scales;     // levels: nu_l
} bp_acts;

/// Integer part for `count` positions starting at `first`: for each position p, block b,
/// weight level k, activation level l and lane r:
///   X = popcount(a & b & (s ^ t)), M = popcount(a & b) summed over the patch,
/// stored at ((((p - first) * blocks + b) * levels_w + k) * levels_x + l) * 8 + r.
void bp_binary_counts(int isa, const bp_weights *w, const bp_acts *x, const int32_t *patches,
                      int64_t first, int64_t count, int32_t *X, int32_t *M);

/// y[row * strideRow + p * stridePos] = sum_{k,l} mu_k nu_l (M - 2 X) + bias[row], Relu when
/// `relu`, for rows in original order (`rowOrder[block row]`, -1 for padding).
void bp_binary_float(int isa, const bp_weights *w, const bp_acts *x, const int32_t *patches,
                     int64_t first, int64_t count, const int32_t *rowOrder, int32_t rows,
                     const float *bias, int relu, float *y, int64_t strideRow, int64_t stridePos);

/// Float activations, one vector x of taps*wordsPerTap*64 floats (zero padded) at batch 1:
/// out[level * blocks * 8 + block row] = sum over the row's active entries j of s_j x_j
/// (unscaled), for blocks firstBlock ..< firstBlock + blockCount. `scratch` holds at least
/// bp_gemv_scratch_floats(w) floats, filled from x by bp_gemv_prepare (once per x, before any
/// thread runs bp_gemv_float). The portable variant keeps 256 subset sums per 8 floats of x there.
int64_t bp_gemv_scratch_floats(const bp_weights *w);
void bp_gemv_prepare(int isa, const bp_weights *w, const float *x, float *scratch);
void bp_gemv_float(int isa, const bp_weights *w, const float *x, float *out, const float *scratch,
                   int32_t firstBlock, int32_t blockCount);


/// Float-input GEMV through in-register lookup tables (AVX-512 and aarch64 NEON; see BitPlanesLut.c).
/// Rows in groups of 16 (two weight blocks, block-row order). Per (group, level) a list of the
/// 64-bit words some row of the group has active; per entry 128 code bytes (FULL lists: for
/// half h, 16 little-endian 32-bit lanes, lane r = bits 32h..32h+31 of row r's sign word) or 256
/// (partial lists: per half, the 16 lanes of (sign & act) then the 16 of (~sign & act)).
/// Nibble i of a lane indexes the 16 subset sums of inputs 32h + 4i ..< 32h + 4i + 4.
typedef struct {
    int32_t groups;          // ceil(rows / 16)
    int32_t levels;
    int32_t rowsStored;      // blocks * 8: rows of `out` per level (the last group may be half)
    const int32_t *listStart;   // groups*levels + 1 entry offsets
    const uint8_t *listFull;    // groups*levels
    const int64_t *listCodes;   // groups*levels: byte offset of the list's first entry's codes
    const int32_t *entryWord;   // word index per entry
    const uint8_t *codes;
} bp_lut_weights;

/// 1 when the LUT GEMV runs on this CPU at `isa` (AVX-512 on x86-64, NEON on aarch64).
int bp_lut_available(int isa);
/// Floats of scratch for bp_lut_prepare: words + 16 * 16 * words.
int64_t bp_lut_scratch_floats(int32_t words);
/// Per word its sum, then per group of 4 inputs the 16 subset sums (x padded to 64 * words).
void bp_lut_prepare(const float *x, int32_t words, float *scratch);
/// out[level * rowsStored + row] = sum over the row's active entries of s x (unscaled), for
/// row groups firstGroup ..< firstGroup + groupCount.
void bp_lut_gemv(const bp_lut_weights *w, int32_t words, const float *scratch, float *out, int32_t firstGroup, int32_t groupCount);

/// Compact binarized weights (BitPlanesCompact.c): about their stored size, decoded a tile of
/// rows at a time into floats for the float kernels. Rows of `columns` entries (a Conv's
/// [outC, inC/groups * taps] in flat order). Level 1's signs are one flat bitset over rows *
/// columns entries (bit set = +1). Per row, `widths` holds in its low nibble how many levels
/// (from level 1) EVERY entry of the row has and in its high nibble how many SOME entry has.
/// For each higher level k (1-based k+1) of a row between those, `acts` holds, in order, one bit
/// per entry active at level k-1 (set when it is also active at k); then, for every row that has
/// the level, `signs` holds one bit per entry active at level k. Bit offsets of the first row of
/// each block of BP_COMPACT_BLOCK rows into `acts` and `signs`, per level, are in `actStart` /
/// `signStart` [(k - 1) * blocks + block]. Every stream carries one zero word past its end.
///
/// Grouped layout (`groupChannels` >= 2, a structured mask): a row's columns are `columns / taps`
/// channels x `taps` taps (entry c * taps + t), and the mask is constant on every block of
/// `groupChannels` consecutive channels at one tap (the last block of a row may hold fewer). `acts`
/// then holds one bit per BLOCK active at level k-1 (blocks in order block-of-channels major, tap
/// minor) instead of one per entry; `signs` is unchanged. The decoders derive each row's block
/// activity into the caller's scratch (bp_compact_block_words(w) words) and each 64-entry word's
/// activity from it.
enum { BP_COMPACT_BLOCK = 16 };
typedef struct {
    int32_t rows;
    int32_t columns;
    int32_t levels;
    int32_t scaleStride;        // 1: one scale per (level, row) at scales[level * rows + row]; 0: one per level
    int32_t groupChannels;      // >= 2: grouped layout (one activity bit per block); 1: one per entry
    int32_t taps;               // taps per channel in a row (grouped layout; 1 otherwise)
    const uint64_t *signs0;
    const uint8_t *widths;
    const uint64_t *acts;
    const uint64_t *signs;
    const int64_t *actStart;
    const int64_t *signStart;
    const float *scales;
} bp_compact;

/// Words of scratch the grouped layout's decoders need for one row's block activity (0 for the
/// per-entry layout): levels x (ceil(blocks per row / 64) + 1).
int64_t bp_compact_block_words(const bp_compact *w);
/// Rows firstRow ..< firstRow + rowCount decoded: out[(row - firstRow) * ldo + j] = the row's
/// entry j (levels added in Float from level 1 up). AVX-512 (with BMI2) or portable. `blockBits`:
/// bp_compact_block_words(w) words (may be NULL when that is 0).
void bp_compact_decode(int isa, const bp_compact *w, int32_t firstRow, int32_t rowCount, float *out, int64_t ldo, uint64_t *blockBits);
/// y[row - firstRow] = sum_j entry(row, j) * x[j] for rows firstRow ..< firstRow + rowCount: the
/// decode fused with a dot product (AVX-512: FMAs into 4 accumulators, nothing stored; portable:
/// 16 rows decoded into `scratch`, then dotted). `scratch`: bp_compact_gemv_scratch_floats(w)
/// floats, 8-byte aligned (the grouped layout's block words first).
int64_t bp_compact_gemv_scratch_floats(const bp_compact *w);
void bp_compact_gemv(int isa, const bp_compact *w, int32_t firstRow, int32_t rowCount, const float *x, float *y, float *scratch);

/// Activity bits of one level from bit widths: out bit j = (mask[j] > level), ceil(n / 64) words.
void bp_level_bits(const uint8_t *mask, int64_t n, int32_t level, uint64_t *out);
/// Unit words from a flat bitset of n bits (BitPlanesPack.c): out[u * cw + c / 64] bit c % 64 =
/// bit (base + u * unitStride + c * channelStride), cw = ceil(channels / 64), padding bits 0.
void bp_gather_units(const uint64_t *bits, int64_t n, int64_t base, int32_t units, int32_t channels,
                     int64_t unitStride, int64_t channelStride, uint64_t *out);

/// Run-time binarization passes (BitPlanesBinarize.c). An entry is active under `mode` 0
/// (every entry), 1 (mask[j] >= width) or 2 (mask[j] == 0, not yet assigned a width).
/// The canonical Double sum of |v| over the active entries in index order (active entry i in
/// lane i % 8, lanes combined ((0+1)+(2+3))+((4+5)+(6+7))); `count` receives their number.
double bp_active_abs_sum(int isa, const float *v, const uint8_t *mask, int64_t n, int32_t mode, uint8_t width, int64_t *count);
/// One residual level over the active entries: bit j of `bits` set where r[j] >= 0, and
/// r[j] -= mu there, r[j] -= -mu elsewhere.
void bp_residual_level(int isa, float *r, const uint8_t *mask, int64_t n, int32_t mode, uint8_t width, float mu, uint64_t *bits);
/// bp_residual_level, then (next > 0) the canonical sum of the updated |r| over entries with
/// mask[j] >= next (the next level's active set, within this one) in the same pass: the value
/// bp_active_abs_sum(mode 1, next) would return after it. `count` receives their number.
double bp_residual_level_sum(int isa, float *r, const uint8_t *mask, int64_t n, int32_t mode, uint8_t width, float mu, uint64_t *bits,
                             uint8_t next, int64_t *count);
/// Group keys over the unassigned entries (mask 0) in index order: sum[g] += | |v| - mean |, size[g] += 1.
/// size may be NULL (the caller knows the sizes: groups leave whole, so a later round's are the
/// previous round's with the chosen groups' set to 0).
void bp_group_keys(int isa, const float *v, const uint8_t *mask, int64_t n, const uint32_t *ids, double mean, double *sum, int64_t *size);
/// mask[j] = mark for unassigned entries of chosen groups.
void bp_mark_groups(int isa, uint8_t *mask, int64_t n, const uint32_t *ids, const uint8_t *chosen, uint8_t mark);
/// bp_mark_groups, then the canonical sum of |v| over the entries still unassigned (what
/// bp_active_abs_sum(mode 2) returns after it) in the same pass.
double bp_mark_groups_sum(int isa, const float *v, uint8_t *mask, int64_t n, const uint32_t *ids, const uint8_t *chosen, uint8_t mark, int64_t *count);
/// The c groups with the smallest key sum[g] / size[g] among groups with size > 0 (ties: lower
/// group) get chosen[g] = 1 (the rest 0); sum becomes the keys. scratch: `groups` doubles.
/// Returns how many were chosen (min(c, candidates)).
int64_t bp_choose_groups(double *sum, const int64_t *size, int64_t groups, int64_t c, uint8_t *chosen, double *scratch);
/// Runs of consecutive group ids (triples: first entry, length, its group; in index order,
/// covering every entry) in place of `ids`: the same passes without reading an id per entry.
void bp_group_keys_runs(int isa, const float *v, const uint8_t *mask, const int64_t *runs, int64_t count, double mean, double *sum, int64_t *size);
/// Marks like bp_mark_groups, and gives the other unassigned entries `fill` (the last round:
/// bp_fill_unassigned in the same pass; 0 leaves them); with v, also returns bp_mark_groups_sum's
/// sum (else 0) and its count.
double bp_mark_groups_runs(int isa, const float *v, uint8_t *mask, const int64_t *runs, int64_t count, const uint8_t *chosen, uint8_t mark,
                           uint8_t fill, int64_t *remaining);
/// mask[j] = width where mask[j] == 0.
void bp_fill_unassigned(uint8_t *mask, int64_t n, uint8_t width);

/// The lookup-table convolution (BitPlanesLutConv.c): binarized weights [rows, reduction] times
/// float activations, 32 output positions (`BP_LUTCONV_COLUMNS`) at a time. The reduction is cut
/// into groups of 4 entries and chunks of 16 groups; a code is (group % 16) * 16 + i, where bit j
/// of i is + for entry 4 * group + j. Per (row, level, chunk), list index
/// li = (row * levels + level) * chunks + chunk: codes[listStart[li] ..< halfStart[li]] are
/// "whole" codes (added at the level's scale), codes[halfStart[li] ..< listStart[li + 1]] are
/// "half" codes (added at half the scale: pairs whose inactive entries cancel).
enum { BP_LUTCONV_COLUMNS = 32, BP_LUTCONV_PASS_CHUNKS = 4 };
typedef struct {
    int32_t rows;
    int32_t reduction;
    int32_t levels;
    int32_t chunks;
    const int32_t *listStart;  // rows * levels * chunks + 1
    const int32_t *halfStart;  // rows * levels * chunks
    const uint8_t *codes;
    const float *scales;       // [row * levels + level]
} bp_lutconv_weights;
/// One image of a 2-D convolution (a 1-D one has height 1) with one group: input [channels,
/// height, width], reduction index (channel * kernelH + kh) * kernelW + kw.
typedef struct {
    int32_t channels, height, width;
    int32_t kernelH, kernelW, strideH, strideW, dilationH, dilationW, padH, padW;
    int32_t outHeight, outWidth;
} bp_lutconv_geometry;
/// Floats of scratch one bp_lutconv_forward call needs.
size_t bp_lutconv_scratch_floats(const bp_lutconv_weights *w);
/// Output blocks [block0, block1) of 32 positions: y[row, p] = bias[row] + sum over levels of
/// the level's scale times the signed active inputs of the row (y is [rows, outHeight * outWidth]).
/// `isa` BP_ISA_AVX512 runs the AVX-512 body, anything else the portable one (bit-identical).
void bp_lutconv_forward(int isa, const bp_lutconv_weights *w, const bp_lutconv_geometry *g, const float *x, const float *bias, float *y,
                        int32_t block0, int32_t block1, float *scratch);

/// The int8 lookup-table convolution (BitPlanesLutConv8.c): the geometry above, binarized weights
/// as nibble codes, activations quantized to int8 tables per output position and block of
/// `BP_LUTCONV8_BLOCK_QUADS` quads (16 reduction entries each). Rows go in tiles of
/// `BP_LUTCONV8_ROWS` (`order[slot]` is the output row of tile slot `slot`, -1 past the rows, or
/// slot itself when `order` is NULL;
/// rows are sorted by how many levels they have, so a channel mask's sparse levels fill few
/// tiles). The kernel reads, per tile, codes: per plane the tile has, per quad, `halves[plane]`
/// sets of 32 bytes; byte k holds entry 2k (low nibble) and 2k + 1 (high), entry e = 4 * row +
/// group in quad, bit j of a code is + for reduction entry 4 * group + j (so the 32 bytes are the
/// 256-bit word whose bit 16 * row + i is reduction entry 16 * quad + i). A plane with two sets
/// adds T[a] + T[b] per group (so its scale is the level's halved). scales: [tile][plane][16],
/// or one [plane][16] for every tile.
///
/// Held (`store`, tile t from 64-bit word `tileStart[t]`), the first `tilePlanes[t]` planes in
/// order, each a whole number of words:
/// - a plane with one code set (every row has all or none of the level): its codes as above
///   where every row of the tile has the level (`rowActive[t * planes + plane]` bit r says tile
///   row r has it), else only those rows' codes, per 64-bit word of the layout deposited into
///   the lanes of its active rows, as one LSB-first bit stream;
/// - a plane with two (per-entry activity): per quad and 64-bit word of the 256-bit layout, the
///   word's activity bits at the positions active one level down (plane 0: every position;
///   a one-set plane: its active rows), then its sign bits at its own active positions, as one
///   LSB-first bit stream (what `pdep` deposits); codes a = sign | ~active, b = sign. The
///   stream is expanded into the two code sets per tile and block of positions, so a per-entry
///   level is held at about its size in the file (1 activity bit per entry active one level
///   down, 1 sign bit per active entry), not 2 bits per entry. A structured mask, constant on
///   every aligned run of `runLength` entries of the reduction in every row, holds its activity
///   bits one per run (at each run's first entry, where the parent is active); the expansion
///   fills each run from it.
/// `store` has one zero word past its end.
enum { BP_LUTCONV8_ROWS = 16, BP_LUTCONV8_BLOCK_QUADS = 16, BP_LUTCONV8_POSITIONS = 8 };
typedef struct {
    int32_t rows;
    int32_t reduction;
    int32_t quads;              // (reduction + 15) / 16
    int32_t planes;
    int32_t codeSets;           // sum of halves
    const int32_t *halves;      // [planes], 1 or 2
    const int32_t *order;       // [tiles * 16], NULL when every row is in its own place
    const int32_t *tilePlanes;  // [tiles]
    const int64_t *tileStart;   // [tiles], in words of `store`
    const uint16_t *rowActive;  // [tiles][planes]
    const uint64_t *store;
    const uint8_t *codes;       // NULL, or every tile's codes expanded (tile t from byte codeStart[t])
    const int64_t *codeStart;   // [tiles] when `codes`
    int32_t indexCodes;         // `codes` hold one vpermb index byte per entry (code + 16 * (entry % 4)), 64 bytes per set
    const float *scales;        // tile t, plane p: scales + (t * scaleTileStride + p) * 16
    int32_t scaleTileStride;    // planes, or 0 when every tile has the same scales (tensor scales)
    int32_t runLength;          // two-set planes: one activity bit per aligned run of this many entries (1, 2, 4, 8, 16)
    int32_t maskScales;         // 1: `scales` is one [plane][16] for every tile, a one-set plane's rows without the level read as 0
} bp_lutconv8_weights;
/// Whether this CPU runs the AVX-512 (VBMI, VNNI) body.
int bp_lutconv8_fast_available(void);
/// Bytes of tile t's expanded codes (its planes' code sets x quads x 32).
int64_t bp_lutconv8_tile_code_bytes(const bp_lutconv8_weights *w, int32_t t);
/// Tile t's codes, expanded from `store` (or copied from `codes`), into `codes`
/// (`bp_lutconv8_tile_code_bytes`): what the kernel reads. Weights that hold every tile's codes
/// expanded run without the per-run expansion (speed for memory).
void bp_lutconv8_expand_tile(const bp_lutconv8_weights *w, int32_t t, uint8_t *codes);
/// Output positions per table block (tables of every quad for them stay in L2).
int32_t bp_lutconv8_block_positions(const bp_lutconv8_weights *w);
/// Bytes of scratch one bp_lutconv8_forward call needs.
size_t bp_lutconv8_scratch_bytes(const bp_lutconv8_weights *w);
/// Output positions [position0, position1) of one image: y[row, p] = bias[row] + the quantized
/// convolution (y is [rows, outHeight * outWidth]), max(0, .) of it when `relu`. `fast` nonzero
/// runs the AVX-512 body where the CPU has it, else the portable one (bit-identical).
void bp_lutconv8_forward(int fast, const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const float *x, const float *bias, float *y,
                         int32_t position0, int32_t position1, int relu, void *scratch);
/// bp_lutconv8_forward for the rows of row tiles [tile0, tile1) only (tile t: the rows of tile
/// slots 16t .. 16t + 15, `order`): threads that split a layer by rows each build the tables of
/// every position and read only their tiles' codes (where the weights outweigh the tables).
void bp_lutconv8_forward_tiles(int fast, const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const float *x, const float *bias, float *y,
                               int32_t position0, int32_t position1, int32_t tile0, int32_t tile1, int relu, void *scratch);
/// Threads that split a layer by rows can instead share its tables: per block of positions
/// (`bp_lutconv8_block_positions` from position0), each builds the tables of a part of the
/// block into one buffer of `bp_lutconv8_table_bytes` (`bp_lutconv8_build_tables`: positions
/// [position0, position1) of the block starting at block0, position0 - block0 a multiple of 16),
/// then, once every part is built, each runs its row tiles over the whole block
/// (`bp_lutconv8_tiles_from_tables`). `scratch` is each thread's own (bp_lutconv8_scratch_bytes).
/// The same bits as bp_lutconv8_forward.
size_t bp_lutconv8_table_bytes(const bp_lutconv8_weights *w);
void bp_lutconv8_build_tables(int fast, const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const float *x, int32_t block0, int32_t position0,
                              int32_t position1, void *tables, void *scratch);
void bp_lutconv8_tiles_from_tables(int fast, const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const float *bias, float *y, int32_t block0,
                                   int32_t block1, int32_t tile0, int32_t tile1, int relu, void *tables, void *scratch);

/// Pixel tables: the same weights with the reduction in tap-major order (entry t * channels + c,
/// `quads` = taps * channels / 16), so each table is 4 channels of one input pixel and is built
/// once per input pixel for every position and tap that reads it (not once per output position
/// and tap). Table scale per pixel and block of `BP_LUTCONV8_BLOCK_QUADS` quads of its channels;
/// per plane acc = fma(float(block sum), pixel scale, acc) over taps and blocks, then
/// y = fma(row scale, acc, y) over planes (plus bias). Whether `w` and `g` fit (channels a
/// multiple of 16, kernel height at most 64):
int bp_lutconv8_pixels_fit(const bp_lutconv8_weights *w, const bp_lutconv_geometry *g);
/// Bytes of scratch one bp_lutconv8_pixels_forward call needs.
size_t bp_lutconv8_pixels_scratch_bytes(const bp_lutconv8_weights *w, const bp_lutconv_geometry *g);
/// Output rows [row0, row1) of one image, as bp_lutconv8_forward (bit-identical bodies).
void bp_lutconv8_pixels_forward(int fast, const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const float *x, const float *bias, float *y,
                                int32_t row0, int32_t row1, int relu, void *scratch);
/// bp_lutconv8_pixels_forward for the rows of row tiles [tile0, tile1) only (as bp_lutconv8_forward_tiles).
void bp_lutconv8_pixels_forward_tiles(int fast, const bp_lutconv8_weights *w, const bp_lutconv_geometry *g, const float *x, const float *bias,
                                      float *y, int32_t row0, int32_t row1, int32_t tile0, int32_t tile1, int relu, void *scratch);

/// Middle-Out radix selection over the unassigned entries (mask[j] == 0) of a whole tensor
/// (BitPlanesSelect.c), key_j = | |v_j| - mean | in Double, coarse digit = the top `width` bits
/// of its Float rounding's bit pattern (bit 31 is 0): HBB.selectSmallest's first two passes.
/// histogram: 2^width counts of the digits (cleared first).
void bp_middle_out_histogram(int isa, const float *v, const uint8_t *mask, int64_t n, double mean, int32_t width, uint32_t *histogram);
/// mask[j] = mark for unassigned entries whose digit is below `boundary`; those whose digit
/// equals it are gathered in index order (index, key bit pattern). Returns how many.
int64_t bp_middle_out_mark(int isa, const float *v, uint8_t *mask, int64_t n, double mean, int32_t width, uint32_t boundary, uint8_t mark,
                           uint32_t *index, uint64_t *keys);

#ifdef __cplusplus
}
#endif

#endif
