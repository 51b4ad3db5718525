// One kernel body (BitPlanes+Body.h) compiled for three instruction sets; bp_isa() picks one at
// run time. See include/CBitPlanes.h for the layouts.
#include "CBitPlanes.h"

#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BP_X86 1
#else
#define BP_X86 0
#endif

typedef uint64_t v8u64 __attribute__((ext_vector_type(8)));
typedef int64_t v8i64 __attribute__((ext_vector_type(8)));
typedef float v8f32 __attribute__((ext_vector_type(8)));

// Portable: no target attribute (baseline x86-64 or any other CPU).
#define BP_TARGET
#define BP_FN(n) portable_##n
#define BP_MASKED_FLOAT 0
#include "BitPlanes+Body.h"
#undef BP_TARGET
#undef BP_FN
#undef BP_MASKED_FLOAT

#if BP_X86
#define BP_TARGET __attribute__((target("avx2,popcnt,bmi2,fma")))
#define BP_FN(n) avx2_##n
#define BP_MASKED_FLOAT 0
#include "BitPlanes+Body.h"
#undef BP_TARGET
#undef BP_FN
#undef BP_MASKED_FLOAT

#define BP_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vpopcntdq,popcnt,bmi2,fma")))
#define BP_FN(n) avx512_##n
#define BP_MASKED_FLOAT 1
#include "BitPlanes+Body.h"
#undef BP_TARGET
#undef BP_FN
#undef BP_MASKED_FLOAT
#endif

static int detect(void) {
#if BP_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vpopcntdq"))
        return BP_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")) return BP_ISA_AVX2;
#elif defined(__aarch64__)
    return BP_ISA_NEON;
#endif
    return BP_ISA_PORTABLE;
}

int bp_isa(void) {
    static int cached = -1;
    if (cached < 0) {
        int isa = detect();
        const char *cap = getenv("MBCONVERT_ISA");
        if (cap) {
            if (strcmp(cap, "portable") == 0) isa = BP_ISA_PORTABLE;
            else if (strcmp(cap, "avx2") == 0 && isa > BP_ISA_AVX2) isa = BP_ISA_AVX2;
        }
        cached = isa;  // racing first calls compute the same value
    }
    return cached;
}

const char *bp_isa_name(int isa) {
#if defined(__aarch64__)
    if (isa == BP_ISA_NEON) return "neon";
#endif
    switch (isa) {
    case BP_ISA_AVX512: return "avx512-vpopcntdq";
    case BP_ISA_AVX2: return "avx2";
    default: return "portable";
    }
}

/// An ISA the CPU does not run falls back to the best one it does.
static int usable(int isa) {
    int best = detect();
    return isa > best ? best : isa;
}

void bp_binary_counts(int isa, const bp_weights *w, const bp_acts *x, const int32_t *patches,
                      int64_t first, int64_t count, int32_t *X, int32_t *M) {
    switch (usable(isa)) {
#if BP_X86
    case BP_ISA_AVX512: avx512_binary_counts(w, x, patches, first, count, X, M); return;
    case BP_ISA_AVX2: avx2_binary_counts(w, x, patches, first, count, X, M); return;
#endif
    default: portable_binary_counts(w, x, patches, first, count, X, M); return;
    }
}

void bp_binary_float(int isa, const bp_weights *w, const bp_acts *x, const int32_t *patches,
                     int64_t first, int64_t count, const int32_t *rowOrder, int32_t rows,
                     const float *bias, int relu, float *y, int64_t strideRow, int64_t stridePos) {
    switch (usable(isa)) {
#if BP_X86
    case BP_ISA_AVX512: avx512_binary_float(w, x, patches, first, count, rowOrder, rows, bias, relu, y, strideRow, stridePos); return;
    case BP_ISA_AVX2: avx2_binary_float(w, x, patches, first, count, rowOrder, rows, bias, relu, y, strideRow, stridePos); return;
#endif
    default: portable_binary_float(w, x, patches, first, count, rowOrder, rows, bias, relu, y, strideRow, stridePos); return;
    }
}

int64_t bp_gemv_scratch_floats(const bp_weights *w) {
    const int64_t words = (int64_t)w->taps * w->wordsPerTap;
    return words + 8 * 256 * words;
}

void bp_gemv_prepare(int isa, const bp_weights *w, const float *x, float *scratch) {
    switch (usable(isa)) {
#if BP_X86
    case BP_ISA_AVX512: avx512_gemv_prepare(w, x, scratch); return;
    case BP_ISA_AVX2: avx2_gemv_prepare(w, x, scratch); return;
#endif
    default: portable_gemv_prepare(w, x, scratch); return;
    }
}

void bp_gemv_float(int isa, const bp_weights *w, const float *x, float *out, const float *scratch,
                   int32_t firstBlock, int32_t blockCount) {
    switch (usable(isa)) {
#if BP_X86
    case BP_ISA_AVX512: avx512_gemv_float(w, x, out, scratch, firstBlock, blockCount); return;
    case BP_ISA_AVX2: avx2_gemv_float(w, x, out, scratch, firstBlock, blockCount); return;
#endif
    default: portable_gemv_float(w, x, out, scratch, firstBlock, blockCount); return;
    }
}
