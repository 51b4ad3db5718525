// Which instruction set the float kernels may use, decided once.
#include "CFloatKernels.h"

#include <stdlib.h>
#include <string.h>

int fk_has_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        int ok = 0;
#if defined(__x86_64__)
        __builtin_cpu_init();
        ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
        // Same switch as the bit-plane kernels (tests run the fallback paths with it).
        const char *cap = getenv("MBCONVERT_ISA");
        if (cap && (strcmp(cap, "portable") == 0 || strcmp(cap, "avx2") == 0)) ok = 0;
        cached = ok;  // racing first calls compute the same value
    }
    return cached;
}

int fk_has_neon(void) {
#if defined(__aarch64__)
    // NEON is part of every aarch64 CPU; only the tests' switch turns the kernels off.
    const char *cap = getenv("MBCONVERT_ISA");
    return !(cap && strcmp(cap, "portable") == 0);
#else
    return 0;
#endif
}
