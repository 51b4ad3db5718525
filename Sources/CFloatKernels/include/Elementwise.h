// Elementwise float kernels at memory speed: activations (including the exp-based sigmoid,
// tanh, SiLU, GELU, erf), binary arithmetic with a scalar or vector operand and a fused
// activation, and row softmax. One C body is compiled for AVX-512, AVX2+FMA and portable C
// (SSE2 at baseline x86-64) and picked at run time by cpuid; MBCONVERT_ISA=portable or avx2
// caps it. The definitions (and the tests) are in MBKernels/Elementwise+Reference.swift.
#ifndef CFLOATKERNELS_ELEMENTWISE_H
#define CFLOATKERNELS_ELEMENTWISE_H

#ifdef __cplusplus
extern "C" {
#endif

/// Activation codes (MBKernels.Activation plus the unary functions that share the exp core).
enum {
    FK_ACT_NONE = 0, FK_ACT_RELU = 1, FK_ACT_CLIP = 2, FK_ACT_LEAKY_RELU = 3, FK_ACT_HARD_SIGMOID = 4,
    FK_ACT_HARD_SWISH = 5, FK_ACT_SIGMOID = 6, FK_ACT_SILU = 7, FK_ACT_TANH = 8, FK_ACT_EXP = 9,
    FK_ACT_ERF = 10, FK_ACT_GELU = 11, FK_ACT_GELU_TANH = 12
};

/// Binary operation codes.
enum { FK_BIN_ADD = 0, FK_BIN_SUB = 1, FK_BIN_MUL = 2, FK_BIN_DIV = 3, FK_BIN_MAX = 4, FK_BIN_MIN = 5 };

/// Instruction set used: 2 AVX-512F, 1 AVX2+FMA, 0 portable.
int fk_ew_isa(void);

/// y[i] = act(x[i]) for i < n, with parameters p0, p1 (clip: min, max; leaky: alpha;
/// hard sigmoid: alpha, beta). y may equal x. `isa` < 0 picks the best the CPU has; tests pass
/// 0, 1 or 2 (capped at what the CPU has).
void fk_ew_unary(int isa, int act, float p0, float p1, const float *x, float *y, long n);

/// y[i] = act(a[i*sa] op b[i*sb]) for i < n, where sa and sb are 1 (a vector) or 0 (a scalar
/// read once). y may equal a or b when that operand is a vector.
void fk_ew_binary(int isa, int op, const float *a, long sa, const float *b, long sb, float *y, long n,
                  int act, float p0, float p1);

/// Softmax of each of `rows` contiguous rows of n floats: y = exp(x - max) / sum. y may equal x.
void fk_softmax_rows(int isa, const float *x, float *y, long rows, long n);

#ifdef __cplusplus
}
#endif

#endif
