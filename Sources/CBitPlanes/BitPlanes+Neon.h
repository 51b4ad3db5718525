// The aarch64 NEON variants (BitPlanes+Neon.c, BitPlanesBinarize+Neon.c, BitPlanesLut+Neon.c),
// called from the dispatch points of BitPlanes.c, BitPlanesBinarize.c, BitPlanesPack.c and
// BitPlanesLut.c. Each has the
// semantics of the public entry point of the same name in include/CBitPlanes.h, bit for bit.
#ifndef BITPLANES_NEON_H
#define BITPLANES_NEON_H

#include "CBitPlanes.h"

#if defined(__aarch64__)
double bp_neon_abs_sum(const float *v, const uint8_t *mask, int64_t n, int mode, uint8_t width, int64_t *count);
void bp_neon_residual_level(float *r, const uint8_t *mask, int64_t n, int mode, uint8_t width, float mu, uint64_t *bits);
double bp_neon_residual_level_sum(float *r, const uint8_t *mask, int64_t n, int mode, uint8_t width, float mu, uint64_t *bits,
                                  uint8_t next, int64_t *count);
void bp_neon_group_keys(const float *v, const uint8_t *mask, int64_t n, const uint32_t *ids, double mean, double *sum, int64_t *size);
void bp_neon_group_keys_runs(const float *v, const uint8_t *mask, const int64_t *runs, int64_t count, double mean, double *sum, int64_t *size);
void bp_neon_mark_groups(uint8_t *mask, int64_t n, const uint32_t *ids, const uint8_t *chosen, uint8_t mark);
double bp_neon_mark_groups_sum(const float *v, uint8_t *mask, int64_t n, const uint32_t *ids, const uint8_t *chosen, uint8_t mark, int64_t *count);
double bp_neon_mark_groups_runs(const float *v, uint8_t *mask, const int64_t *runs, int64_t count, const uint8_t *chosen, uint8_t mark,
                                uint8_t fill, int64_t *remaining);
void bp_neon_level_bits(const uint8_t *mask, int64_t n, int32_t level, uint64_t *out);
void bp_neon_lut_prepare(const float *x, int32_t words, float *scratch);
void bp_neon_lut_gemv(const bp_lut_weights *w, int32_t words, const float *scratch, float *out, int32_t firstGroup, int32_t groupCount);
#endif

#endif
