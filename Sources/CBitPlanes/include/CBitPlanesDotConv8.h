// The int8 dot-product pointwise convolution (BitPlanesDotConv8.c), included by CBitPlanes.h.
#ifndef CBITPLANES_DOTCONV8_H
#define CBITPLANES_DOTCONV8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Rows per weight block and positions per chunk of the dot-product convolution.
enum { BP_DOTCONV8_ROWS = 4, BP_DOTCONV8_CHUNK = 64 };

/// A binarized pointwise Conv weight [rows, reduction] as int8 sign planes: per plane (bit level)
/// l, w_l[row, k] in {-1, 0, +1} (the level's sign where the entry has the level, else 0) and a
/// float scale per row (the weight is sum over planes of scale * w). Rows in blocks of
/// BP_DOTCONV8_ROWS (padded with zero rows), the reduction in quads of 4 (padded with zeros).
/// - weights: [plane][row block][quad][BP_DOTCONV8_ROWS rows][4 entries], int8;
/// - rowSums: [plane][rows padded] the sum of the row's plane entries (the zero-point correction);
/// - scales: [plane][rows padded];
/// - blockActive: [plane][row block], 0 when every weight of the block is 0 at that plane (skipped).
typedef struct {
    int32_t rows, reduction, planes, quads, rowBlocks;
    const int8_t *weights;
    const int32_t *rowSums;
    const float *scales;
    const uint8_t *blockActive;
} bp_dotconv8_weights;

/// Whether this CPU has the AVX-512 VNNI body (the portable one runs everywhere).
int bp_dotconv8_fast_available(void);
/// Bytes of scratch one bp_dotconv8_forward call needs.
size_t bp_dotconv8_scratch_bytes(const bp_dotconv8_weights *w);
/// Output positions [position0, position1) of one image of a 1x1 Conv without padding (any
/// stride; `channels` = reduction): x [channels, height, width], y [rows, outHeight * outWidth].
/// Each position's inputs are quantized once to u8 with a per-position scale (zero point 128 when
/// one of them is negative), then y[row, p] = bias + position scale * sum over planes of row scale
/// * (exact int32 dot product - zero point * row sum), plus residual[row, p] when `residual` is
/// not NULL (a fused Add, y's shape), max(0, .) when `relu`. `fast`
/// nonzero runs the AVX-512 VNNI body where the CPU has it, else the portable one (bit-identical).
void bp_dotconv8_forward(int fast, const bp_dotconv8_weights *w, int32_t channels, int32_t height, int32_t width, int32_t strideH, int32_t strideW,
                         int32_t outHeight, int32_t outWidth, const float *x, const float *bias, const float *residual, float *y,
                         int32_t position0, int32_t position1, int relu, void *scratch);

#ifdef __cplusplus
}
#endif

#endif
