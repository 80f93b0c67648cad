#include "cpu_features.h"
#include <stdlib.h>
#include <string.h>

static ss_isa hardware_uncached(void) {
    ss_isa best = SS_ISA_PORTABLE;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = SS_ISA_AVX2;
    if (best == SS_ISA_AVX2 && __builtin_cpu_supports("avx512f")) best = SS_ISA_AVX512;
#endif
    return best;
}

static ss_isa detect_uncached(void) {
    ss_isa best = ss_hardware_isa();
    const char *cap = getenv("SPARSESERVE_ISA");
    if (cap) {
        ss_isa limit = best;
        if (strcmp(cap, "portable") == 0) limit = SS_ISA_PORTABLE;
        else if (strcmp(cap, "avx2") == 0) limit = SS_ISA_AVX2;
        else if (strcmp(cap, "avx512") == 0) limit = SS_ISA_AVX512;
        if (limit < best) best = limit;
    }
    return best;
}

static ss_isa cached_value(int *slot, ss_isa (*compute)(void)) {
    int v = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (v < 0) {
        v = (int)compute();
        __atomic_store_n(slot, v, __ATOMIC_RELAXED);
    }
    return (ss_isa)v;
}

ss_isa ss_hardware_isa(void) {
    static int cached = -1;
    return cached_value(&cached, hardware_uncached);
}

ss_isa ss_detect_isa(void) {
    static int cached = -1;
    return cached_value(&cached, detect_uncached);
}

ss_isa ss_clamp_isa(ss_isa requested) {
    ss_isa hw = ss_hardware_isa();
    if ((int)requested < (int)SS_ISA_PORTABLE) return SS_ISA_PORTABLE;
    return requested > hw ? hw : requested;
}
