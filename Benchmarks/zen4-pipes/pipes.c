/*
 * Throughput of the instruction mixes a 2:4 kernel is made of, in core cycles per loop body
 * (calibrated on 8 independent zmm FMAs = 8 cycles, i.e. one zmm FMA per cycle). Not part of the
 * package build; x86-64 with AVX-512 VNNI only:
 *   cc -O2 -mavx512f Benchmarks/zen4-pipes/pipes.c -o /tmp/pipes && /tmp/pipes
 * Every instruction writes a register nothing else in the body reads, so only the execution
 * pipes limit the rate. The minimum over 20 repetitions is taken (robust to preemption).
 */
#include <stdint.h>
#include <stdio.h>
#include <x86intrin.h>

static float buf[1024] __attribute__((aligned(64)));
static double fma_ticks = 0;

#define CLOBBER "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm10", "xmm11", "xmm12", \
    "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm22", "xmm23", "xmm24", "xmm25"
#define RUN(name, body) do {                                                            \
        uint64_t best = ~0ull;                                                          \
        for (int rep = 0; rep < 20; rep++) {                                            \
            const uint64_t t0 = __rdtsc();                                              \
            for (int it = 0; it < 20000; it++) __asm__ volatile(body ::"r"(buf) : CLOBBER); \
            const uint64_t t = __rdtsc() - t0;                                          \
            if (t < best) best = t;                                                     \
        }                                                                               \
        if (fma_ticks == 0) fma_ticks = best / 8.0;                                     \
        printf("%-44s %6.2f cycles\n", name, best / fma_ticks);                         \
    } while (0)

#define FMA2 "vfmadd231ps %%zmm30,%%zmm31,%%zmm0\n vfmadd231ps %%zmm30,%%zmm31,%%zmm1\n"
#define FMA8 FMA2 "vfmadd231ps %%zmm30,%%zmm31,%%zmm2\n vfmadd231ps %%zmm30,%%zmm31,%%zmm3\n" \
    "vfmadd231ps %%zmm30,%%zmm31,%%zmm4\n vfmadd231ps %%zmm30,%%zmm31,%%zmm5\n" \
    "vfmadd231ps %%zmm30,%%zmm31,%%zmm6\n vfmadd231ps %%zmm30,%%zmm31,%%zmm7\n"
#define DP8 "vpdpbusd %%zmm30,%%zmm31,%%zmm0\n vpdpbusd %%zmm30,%%zmm31,%%zmm1\n vpdpbusd %%zmm30,%%zmm31,%%zmm2\n" \
    "vpdpbusd %%zmm30,%%zmm31,%%zmm3\n vpdpbusd %%zmm30,%%zmm31,%%zmm4\n vpdpbusd %%zmm30,%%zmm31,%%zmm5\n" \
    "vpdpbusd %%zmm30,%%zmm31,%%zmm6\n vpdpbusd %%zmm30,%%zmm31,%%zmm7\n"
#define PERM4 "vpermps %%zmm29,%%zmm28,%%zmm10\n vpermps %%zmm29,%%zmm28,%%zmm11\n" \
    "vpermps %%zmm29,%%zmm28,%%zmm12\n vpermps %%zmm29,%%zmm28,%%zmm13\n"
#define PERMIL4 "vpermilps %%zmm29,%%zmm28,%%zmm10\n vpermilps %%zmm29,%%zmm28,%%zmm11\n" \
    "vpermilps %%zmm29,%%zmm28,%%zmm12\n vpermilps %%zmm29,%%zmm28,%%zmm13\n"
#define SHUFB4 "vpshufb %%zmm29,%%zmm28,%%zmm10\n vpshufb %%zmm29,%%zmm28,%%zmm11\n" \
    "vpshufb %%zmm29,%%zmm28,%%zmm12\n vpshufb %%zmm29,%%zmm28,%%zmm13\n"
#define LOAD4 "vmovups (%0),%%zmm14\n vmovups 64(%0),%%zmm15\n vmovups 128(%0),%%zmm16\n vmovups 192(%0),%%zmm17\n"
#define BCAST4 "vbroadcastss 4(%0),%%zmm18\n vbroadcastss 8(%0),%%zmm19\n" \
    "vbroadcastss 12(%0),%%zmm22\n vbroadcastss 16(%0),%%zmm23\n"

#define VPERMB4 "vpermb %%zmm29,%%zmm28,%%zmm10\n vpermb %%zmm29,%%zmm28,%%zmm11\n" \
    "vpermb %%zmm29,%%zmm28,%%zmm12\n vpermb %%zmm29,%%zmm28,%%zmm13\n"
/* vpdpbusd with the s8 operand broadcast from memory ({1to16}), 8 independent accumulators */
#define DPBC4(o) "vpdpbusd " #o "(%0)%{1to16%},%%zmm31,%%zmm0\n vpdpbusd " #o "+4(%0)%{1to16%},%%zmm31,%%zmm1\n" \
    "vpdpbusd " #o "+8(%0)%{1to16%},%%zmm31,%%zmm2\n vpdpbusd " #o "+12(%0)%{1to16%},%%zmm31,%%zmm3\n"
#define DPBC8 DPBC4(0) "vpdpbusd 16(%0)%{1to16%},%%zmm31,%%zmm4\n vpdpbusd 20(%0)%{1to16%},%%zmm31,%%zmm5\n" \
    "vpdpbusd 24(%0)%{1to16%},%%zmm31,%%zmm6\n vpdpbusd 28(%0)%{1to16%},%%zmm31,%%zmm7\n"

int main(void) {
    RUN("8 fma (calibration)", FMA8);
    RUN("8 vpermps", PERM4 PERM4);
    RUN("8 fma + 2 vpermps", FMA8 "vpermps %%zmm29,%%zmm28,%%zmm10\n vpermps %%zmm29,%%zmm28,%%zmm11\n");
    RUN("8 fma + 4 vpermps", FMA8 PERM4);
    RUN("8 fma + 8 vpermps (selection: 1 per FMA)", FMA8 PERM4 PERM4);
    RUN("8 fma + 8 vpermilps", FMA8 PERMIL4 PERMIL4);
    RUN("8 fma + 8 zmm loads", FMA8 LOAD4 LOAD4);
    RUN("8 fma + 12 zmm loads", FMA8 LOAD4 LOAD4 LOAD4);
    RUN("8 fma + 8 vbroadcastss zmm, m32", FMA8 BCAST4 BCAST4);
    RUN("8 fma + 8 loads + 2 vbroadcastss m32", FMA8 LOAD4 LOAD4 "vbroadcastss 4(%0),%%zmm18\n vbroadcastss 8(%0),%%zmm19\n");
    RUN("8 fma + 4 vpermps + 8 loads", FMA8 PERM4 LOAD4 LOAD4);
    RUN("8 vpdpbusd", DP8);
    RUN("8 vpdpbusd + 4 vpshufb", DP8 SHUFB4);
    RUN("8 vpdpbusd + 8 vpermb (batched 2:4 int8)", DP8 VPERMB4 VPERMB4);
    RUN("8 vpdpbusd m32{1to16} + 8 zmm loads", DPBC8 LOAD4 LOAD4);
    RUN("8 vpdpbusd + 8 vpshufb (selection: 1 per dot)", DP8 SHUFB4 SHUFB4);
    return 0;
}
