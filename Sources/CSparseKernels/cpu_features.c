#include "cpu_features.h"
#include "internal.h"
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

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

/* ------------------------------------------------------------------------------------------ */
/* Quantized-kernel levels                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* AMX-TILE, AMX-INT8 and AMX-BF16 (CPUID.(7,0):EDX bits 24, 25, 22), and Linux's permission for
 * this process to use the tile data (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 18):
 * without it the first tile instruction faults. The kernel refuses it when a thread's signal
 * stack is too small for the larger signal frame; then the AMX level is simply not offered. */
static int amx_uncached(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned tile = 1u << 24, int8 = 1u << 25, bf16 = 1u << 22;
    if ((d & (tile | int8 | bf16)) != (tile | int8 | bf16)) return 0;
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18) == 0;
#else
    return 0;
#endif
}

int ss_amx_usable(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
    if (v < 0) {
        v = amx_uncached();
        __atomic_store_n(&cached, v, __ATOMIC_RELEASE);
    }
    return v;
}

static ss_isa qisa_hardware_uncached(void) {
    ss_isa best = ss_hardware_isa();
#if defined(__x86_64__) || defined(__i386__)
    if (best == SS_ISA_AVX512 && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bf16") &&
        __builtin_cpu_supports("avx512vbmi"))
        return (ss_isa)(ss_amx_usable() ? SS_QISA_AMX : SS_QISA_AVX512_DOT);
    if (best == SS_ISA_AVX512 && !__builtin_cpu_supports("avx512bw")) return SS_ISA_AVX2;
#endif
    return best;
}

static ss_isa qisa_detect_uncached(void) {
    ss_qisa best = ss_hardware_qisa();
    const char *cap = getenv("SPARSESERVE_ISA");
    if (cap) {
        ss_qisa limit = best;
        if (strcmp(cap, "portable") == 0) limit = SS_QISA_PORTABLE;
        else if (strcmp(cap, "avx2") == 0) limit = SS_QISA_AVX2;
        else if (strcmp(cap, "avx512") == 0) limit = SS_QISA_AVX512;
        else if (strcmp(cap, "avx512dot") == 0) limit = SS_QISA_AVX512_DOT;
        if (limit < best) best = limit;
    }
    return (ss_isa)best;
}

ss_qisa ss_hardware_qisa(void) {
    static int cached = -1;
    return (ss_qisa)cached_value(&cached, qisa_hardware_uncached);
}

ss_qisa ss_detect_qisa(void) {
    static int cached = -1;
    return (ss_qisa)cached_value(&cached, qisa_detect_uncached);
}

ss_qisa ss_clamp_qisa(ss_qisa requested) {
    ss_qisa hw = ss_hardware_qisa();
    if ((int)requested < (int)SS_QISA_PORTABLE) return SS_QISA_PORTABLE;
    return requested > hw ? hw : requested;
}

ss_isa ss_qisa_base(ss_qisa level) {
    return level >= SS_QISA_AVX512 ? SS_ISA_AVX512 : (ss_isa)level;
}
