// Implicit im2col for the lookup-table convolutions (BitPlanesLutConv.c, BitPlanesLutConv8.c):
// the input rows of one group of 4 reduction entries at a block of output positions.
#ifndef BITPLANES_CONV_GATHER_H
#define BITPLANES_CONV_GATHER_H

#include "CBitPlanes.h"

#include <stdint.h>
#include <string.h>

/// Block coordinates: the input position of kernel tap (0, 0) for each output position.
static inline void bp_conv_block_coordinates(const bp_lutconv_geometry *g, int32_t p0, int32_t count, int32_t *ih0, int32_t *iw0) {
    for (int32_t n = 0; n < count; n++) {
        const int32_t p = p0 + n, oh = p / g->outWidth, ow = p % g->outWidth;
        ih0[n] = oh * g->strideH - g->padH;
        iw0[n] = ow * g->strideW - g->padW;
    }
}

/// Input rows 4 * group .. 4 * group + 3 at the block's `count` positions into `out` (4 rows of
/// `cols` floats; 0 past the reduction, in the padding and past `count`).
static inline void bp_conv_gather_group(const bp_lutconv_geometry *g, const float *x, int64_t group, int32_t reduction, int32_t p0,
                                        int32_t count, int32_t cols, const int32_t *ih0, const int32_t *iw0, float *out) {
    const int32_t taps = g->kernelH * g->kernelW;
    const int64_t plane = (int64_t)g->height * g->width;
    const int direct = taps == 1 && g->strideH == 1 && g->strideW == 1 && g->padH == 0 && g->padW == 0 && g->outWidth == g->width &&
                       g->outHeight == g->height;
    for (int j = 0; j < 4; j++) {
        float *o = out + j * cols;
        const int64_t k = 4 * group + j;
        if (k >= reduction) {
            memset(o, 0, sizeof(float) * (size_t)cols);
            continue;
        }
        const int32_t c = (int32_t)(k / taps), t = (int32_t)(k % taps);
        const int32_t dh = (t / g->kernelW) * g->dilationH, dw = (t % g->kernelW) * g->dilationW;
        const float *xc = x + c * plane;
        if (direct) {
            memcpy(o, xc + p0, sizeof(float) * (size_t)count);
            // The next block's lines of this row: one stream per input row is more than the
            // hardware prefetchers follow.
            __builtin_prefetch(xc + p0 + cols);
            if (cols > 16) __builtin_prefetch(xc + p0 + cols + 16);
        } else if (g->strideW == 1) {
            // Runs of positions on one output row read one input row contiguously: copy the part
            // inside the image, zero the padding.
            for (int32_t n = 0; n < count;) {
                const int32_t ow = (p0 + n) % g->outWidth;
                int32_t len = g->outWidth - ow;
                if (len > count - n) len = count - n;
                const int32_t ih = ih0[n] + dh, iw = iw0[n] + dw;
                if (ih < 0 || ih >= g->height) {
                    memset(o + n, 0, sizeof(float) * (size_t)len);
                } else {
                    const int32_t lo = iw < 0 ? -iw : 0;
                    int32_t hi = g->width - iw;
                    if (hi > len) hi = len;
                    if (hi < lo) hi = lo;
                    if (lo > 0) memset(o + n, 0, sizeof(float) * (size_t)(lo < len ? lo : len));
                    if (hi > lo) memcpy(o + n + lo, xc + (int64_t)ih * g->width + iw + lo, sizeof(float) * (size_t)(hi - lo));
                    if (len > hi) memset(o + n + hi, 0, sizeof(float) * (size_t)(len - hi));
                }
                n += len;
            }
        } else {
            for (int32_t n = 0; n < count; n++) {
                const int32_t ih = ih0[n] + dh, iw = iw0[n] + dw;
                o[n] = (ih >= 0 && ih < g->height && iw >= 0 && iw < g->width) ? xc[(int64_t)ih * g->width + iw] : 0.0f;
            }
        }
        for (int32_t n = count; n < cols; n++) o[n] = 0.0f;
    }
}

#endif
