/* STREAM-like read kernel for the benchmarks' bandwidth reference (include/bandwidth.h). */
#include "bandwidth.h"
#include "internal.h"

static float sum_portable(const float *x, ptrdiff_t n) {
    float a[8] = { 0 };
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) a[j] += x[i + j];
    for (; i < n; i++) a[0] += x[i];
    return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

#ifdef SS_X86
SS_T512 static float sum512(const float *x, ptrdiff_t n) {
    __m512 a[8];
    for (int j = 0; j < 8; j++) a[j] = _mm512_setzero_ps();
    ptrdiff_t i = 0;
    for (; i + 128 <= n; i += 128)
        for (int j = 0; j < 8; j++) a[j] = _mm512_add_ps(a[j], _mm512_loadu_ps(x + i + 16 * j));
    for (int j = 1; j < 8; j++) a[0] = _mm512_add_ps(a[0], a[j]);
    return _mm512_reduce_add_ps(a[0]) + sum_portable(x + i, n - i);
}

SS_T256 static float sum256(const float *x, ptrdiff_t n) {
    __m256 a[8];
    for (int j = 0; j < 8; j++) a[j] = _mm256_setzero_ps();
    ptrdiff_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int j = 0; j < 8; j++) a[j] = _mm256_add_ps(a[j], _mm256_loadu_ps(x + i + 8 * j));
    for (int j = 1; j < 8; j++) a[0] = _mm256_add_ps(a[0], a[j]);
    float lanes[8];
    _mm256_storeu_ps(lanes, a[0]);
    return sum_portable(lanes, 8) + sum_portable(x + i, n - i);
}
#endif

float ss_read_sum(const float *x, ptrdiff_t n) {
#ifdef SS_X86
    const ss_isa isa = ss_detect_isa();
    if (isa == SS_ISA_AVX512) return sum512(x, n);
    if (isa == SS_ISA_AVX2) return sum256(x, n);
#endif
    return sum_portable(x, n);
}
