// Float kernels for convolutions on NCHW activations, in C because they need AVX-512 code
// chosen at run time by cpuid (Swift cannot compile one function for an instruction set the
// build does not target). Callers check fk_has_avx512() first and otherwise use the BLAS path.
// The plain references live in Swift (MBKernels/RowGemm+Reference.swift,
// MBKernels/Pool+Reference.swift); MBKernelsTests compare them over shape sweeps.
#ifndef CFLOATKERNELS_H
#define CFLOATKERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the CPU runs AVX-512 F (cpuid) and MBCONVERT_ISA does not cap it (portable or avx2).
int fk_has_avx512(void);
/// 1 on aarch64 (NEON kernels for fk_gemm_rows and fk_maxpool2d_valid, chosen at build time)
/// unless MBCONVERT_ISA=portable; 0 elsewhere. Kernels documented "only when fk_has_avx512()"
/// have no NEON variant.
int fk_has_neon(void);

/// C[i * ldc + j] = act(bias[i] + sum_p a[i * lda + p] * brows[p][j]) for i in [m0, m1) and
/// j in [n0, n1); act is max(0, .) when relu != 0, bias may be NULL. B is given as k row
/// pointers, so a 1x1 convolution reads its input planes and a shifted 3x3 one reads a padded
/// copy without an im2col matrix. Columns outside [n0, n1) are never read past a row's end
/// beyond n1 (masked loads). Only when fk_has_avx512() || fk_has_neon().
void fk_gemm_rows(long m0, long m1, long n0, long n1, long k,
                  const float *a, long lda, const float *const *brows,
                  const float *bias, int relu, float *c, long ldc);

/// fk_gemm_rows with any activation of Elementwise.h (code `act`, parameters p0, p1) applied as
/// C is finished: Relu in the register epilogue, the others over each finished tile while it is
/// in L1 (the elementwise kernel's code and error bounds). On NEON the others run over each row
/// of the part after the product.
void fk_gemm_rows_act(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                      const float *bias, int act, float p0, float p1, float *c, long ldc);

/// fk_gemm_rows_act on a pitched B: B[p][j] = brows[p][(j / width) * pitch + j % width], as a
/// convolution's output rows of `width` columns read from a padded input `pitch` floats wide (no
/// wasted columns, nothing to compact). B is packed from 16-float copies: each brows[p] must be
/// readable 15 floats past every element B uses. Only when fk_has_avx512().
void fk_gemm_rows_pitched(long m0, long m1, long n0, long n1, long k, const float *a, long lda, const float *const *brows,
                          long width, long pitch, const float *bias, int act, float p0, float p1, float *c, long ldc);

/// One group of a 2-D convolution (1-D: ih = kh = 1) as the B operand of fk_gemm_conv2d: input
/// [channels, ih, iw], output [oh, ow] with oh implied by the columns, kernel kh x kw, strides,
/// dilations, leading pads ph, pw (trailing padding is implied by the output size).
typedef struct {
    const float *input;
    long channels, ih, iw, ow;
    long kh, kw, sh, sw, dh, dw, ph, pw;
} fk_conv2d_source;

/// fk_gemm_rows_act with B the implicit im2col matrix of `source` (k = channels * kh * kw rows,
/// row (c, ky, kx), column oy * ow + ox), gathered from the input as B is packed: nothing is
/// read outside the input. Only when fk_has_avx512().
void fk_gemm_conv2d(long m0, long m1, long n0, long n1, const float *a, long lda, const fk_conv2d_source *source,
                    const float *bias, int act, float p0, float p1, float *c, long ldc);

/// Floats of fk_conv_channels_pack's layout for m output channels and a reduction of k.
long fk_conv_channels_packed_floats(long m, long k);

/// Packs weights [m][k] (one group) into blocks of 16, 32 or 48 output channels, each [k][block],
/// lanes past channel m zero. Any CPU.
void fk_conv_channels_pack(const float *weights, long m, long k, float *packed);

/// The convolution of one group `source` (oh output rows) with weights packed by
/// fk_conv_channels_pack: out[co * oh * ow + oy * ow + ox] = act(bias[co] + sum over channels
/// and taps) for co < m and output rows oy in [r0, r1). Vectorised over output channels, tiles
/// of 8 pixels of one output row (bias and Relu in registers; other activations of Elementwise.h
/// over each finished stretch); reads nothing outside the input (padding is copied per band of
/// rows into a per-thread buffer). Only when fk_has_avx512().
void fk_conv_channels(const fk_conv2d_source *source, long oh, const float *packed, long m, long r0, long r1, const float *bias,
                      int act, float p0, float p1, float *out);

/// Rows [r0, r1) of a [rows, cols] matrix of 4-byte elements with 2 to 4 columns into its
/// transpose [cols, rows]. Only when fk_has_avx512() (a scalar loop elsewhere).
void fk_transpose_few_columns(const uint32_t *src, uint32_t *dst, long rows, long cols, long r0, long r1);

/// Max pooling of `planes` 2-D planes [ih, iw] -> [oh, ow], window kh x kw, strides sh x sw,
/// no padding and no dilation, every window inside the input. Only when fk_has_avx512() ||
/// fk_has_neon().
void fk_maxpool2d_valid(long planes, const float *input, long ih, long iw, float *output, long oh, long ow,
                        long kh, long kw, long sh, long sw);

/// One output plane [oh, ow] of a depthwise convolution read from stride phases of its padded
/// input: out[oy * ow + ox] = act(bias + sum_t w[t] * src[offsets[t] + oy * wq + ox]), act =
/// max(0, .) when relu != 0. Reads only those elements. AVX-512 when fk_has_avx512(), else a
/// portable loop (any CPU).
void fk_depthwise_plane(const float *src, long wq, const long *offsets, const float *w, int taps, float bias, int relu,
                        float *out, long oh, long ow);

/// dst[i] = src[i * stride] for i < count; reads nothing past src[(count - 1) * stride].
/// AVX-512 permutes for stride 2 when fk_has_avx512(), else a plain loop.
void fk_gather_stride(const float *src, long stride, float *dst, long count);

/// Tells the CPU that the caller is in a spin-wait loop (x86 `pause`, aarch64 `yield`): the
/// spinning core backs off its loads and lets the loop exit promptly when the value changes.
static inline void fk_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#ifdef __cplusplus
}
#endif

// The elementwise kernels (their own header; this one is the module's umbrella).
#include "Elementwise.h"

#endif
