// Elementwise kernels, one body per instruction set (Elementwise+Body.h), chosen by cpuid.
#include "Elementwise.h"

#include <stdlib.h>
#include <string.h>

#define EW_W 4
#define EW_SUFFIX _portable
#include "Elementwise+Body.h"
#undef EW_W
#undef EW_SUFFIX

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define EW_W 8
#define EW_SUFFIX _avx2
#include "Elementwise+Body.h"
#undef EW_W
#undef EW_SUFFIX
#pragma clang attribute pop

#pragma clang attribute push(__attribute__((target("avx512f,fma"))), apply_to = function)
#define EW_W 16
#define EW_SUFFIX _avx512
#include "Elementwise+Body.h"
#undef EW_W
#undef EW_SUFFIX
#pragma clang attribute pop
#endif

static int cpu_isa(void) {
    static int cached = -1;
    if (cached < 0) {
        int level = 0;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) level = 1;
        if (level == 1 && __builtin_cpu_supports("avx512f")) level = 2;
#endif
        const char *cap = getenv("MBCONVERT_ISA");
        if (cap && strcmp(cap, "portable") == 0) level = 0;
        if (cap && strcmp(cap, "avx2") == 0 && level > 1) level = 1;
        cached = level;  // racing first calls compute the same value
    }
    return cached;
}

int fk_ew_isa(void) { return cpu_isa(); }

static int pick(int isa) {
    int best = cpu_isa();
    return (isa < 0 || isa > best) ? best : isa;
}

void fk_ew_unary(int isa, int act, float p0, float p1, const float *x, float *y, long n) {
    if (n <= 0) return;
    switch (pick(isa)) {
#if defined(__x86_64__)
    case 2: unary_avx512(act, p0, p1, x, y, n); return;
    case 1: unary_avx2(act, p0, p1, x, y, n); return;
#endif
    default: unary_portable(act, p0, p1, x, y, n); return;
    }
}

void fk_ew_binary(int isa, int op, const float *a, long sa, const float *b, long sb, float *y, long n,
                  int act, float p0, float p1) {
    if (n <= 0) return;
    switch (pick(isa)) {
#if defined(__x86_64__)
    case 2: binary_avx512(op, a, sa, b, sb, y, n, act, p0, p1); return;
    case 1: binary_avx2(op, a, sa, b, sb, y, n, act, p0, p1); return;
#endif
    default: binary_portable(op, a, sa, b, sb, y, n, act, p0, p1); return;
    }
}

void fk_softmax_rows(int isa, const float *x, float *y, long rows, long n) {
    if (rows <= 0 || n <= 0) return;
    switch (pick(isa)) {
#if defined(__x86_64__)
    case 2: softmax_avx512(x, y, rows, n); return;
    case 1: softmax_avx2(x, y, rows, n); return;
#endif
    default: softmax_portable(x, y, rows, n); return;
    }
}
