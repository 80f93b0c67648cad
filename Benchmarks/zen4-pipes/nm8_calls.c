// Whole C calls of the 2:4 W8A8 operator against the dense W8A8 one: ss_q8_gemm_cols_isa vs
// ss_nm8_gemm_cols_isa (the GEMV, and the multi-row kernel for M >= 2) and
// ss_nm8_gemm_indexed_cols_isa (the batched kernel), same random 2:4 int8 weights, ReLU epilogue,
// 1 thread, thread CPU time, best of 5 alternating rounds. Not part of the package build. From the
// repository root (x86-64 with AVX-512 VNNI + VBMI):
//   mkdir -p /tmp/k && for f in Sources/CSparseKernels/*.c; do
//     clang -O2 -ISources/CSparseKernels/include -c "$PWD/$f" -o /tmp/k/$(basename $f .c).o; done
//   ar rcs /tmp/k/libk.a /tmp/k/*.o
//   clang -O2 -ISources/CSparseKernels/include Benchmarks/zen4-pipes/nm8_calls.c /tmp/k/libk.a -lm -lpthread \
//     -o /tmp/nm8-calls && /tmp/nm8-calls
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "int8.h"
#include "nm_int8.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

/* Random int8 weights (N x K) and the same with 2 of every 4 zeroed. */
static void weights(int n, int k, int8_t *q, int8_t *q24) {
    for (size_t i = 0; i < (size_t)n * k; i++) q[i] = (int8_t)(rand() % 255 - 127);
    memcpy(q24, q, (size_t)n * k);
    for (size_t i = 0; i + 4 <= (size_t)n * k; i += 4) {
        const int a = rand() % 4;
        int b;
        do b = rand() % 4; while (b == a);
        for (int c = 0; c < 4; c++)
            if (c != a && c != b) q24[i + c] = 0;
    }
}

int main(void) {
    static const int shapes[][2] = { { 384, 384 }, { 384, 1536 }, { 1536, 384 }, { 2048, 2048 } };
    static const int rows[] = { 1, 2, 4, 8, 16, 32, 64 };
    enum { MMAX = 64 };
    puts("K x N      M   int8 us   2:4 us (ratio)   2:4 batched us (ratio)");
    for (int si = 0; si < 4; si++) {
        const int k = shapes[si][0], n = shapes[si][1];
        const ptrdiff_t padded = ss_q8_padded_rows(n);
        int8_t *q = malloc((size_t)n * k), *q24 = malloc((size_t)n * k);
        weights(n, k, q, q24);
        int8_t *wp = aligned_alloc(64, (size_t)ss_q8_packed_bytes(n, k));
        int8_t *values = aligned_alloc(64, (size_t)ss_nm8_value_bytes(n, k));
        uint8_t *codes = aligned_alloc(64, (size_t)ss_nm8_code_bytes(n, k));
        uint8_t *indices = aligned_alloc(64, (size_t)ss_nm8_index_bytes(n, k));
        int32_t *corr = aligned_alloc(64, 4 * (size_t)padded), *corr24 = aligned_alloc(64, 4 * (size_t)padded);
        float *scale = aligned_alloc(64, 4 * (size_t)padded), *bias = calloc((size_t)n, 4);
        float *x = malloc(4 * (size_t)k * MMAX), *y = malloc(4 * (size_t)n * MMAX);
        for (ptrdiff_t i = 0; i < padded; i++) scale[i] = 0.01f;
        for (int i = 0; i < k * MMAX; i++) x[i] = (float)(rand() / (double)RAND_MAX) - 0.5f;
        if (ss_q8_pack(q, n, k, k, wp, corr) || ss_nm8_pack(q24, n, k, k, values, codes, corr24) ||
            ss_nm8_expand_indices(codes, n, k, indices)) return puts("pack failed"), 1;
        for (int mi = 0; mi < 7; mi++) {
            const int m = rows[mi], reps = (k * n > 1 << 20 ? 50 : 2000) / m + 1;
            double best[3] = { 1e9, 1e9, 1e9 };
            for (int round = 0; round < 5; round++)
                for (int v = 0; v < 3; v++) {
                    const double t0 = now();
                    for (int r = 0; r < reps; r++) {
                        if (v == 0) ss_q8_gemm_cols_isa(SS_QISA_AVX512_DOT, wp, corr, scale, bias, n, k, x, k, m, y, n, SS_ACT_RELU, 0, n);
                        else if (v == 1) ss_nm8_gemm_cols_isa(SS_QISA_AVX512_DOT, values, codes, corr24, scale, bias, n, k, x, k, m, y, n, SS_ACT_RELU, 0, n);
                        else ss_nm8_gemm_indexed_cols_isa(SS_QISA_AVX512_DOT, values, codes, indices, corr24, scale, bias, n, k, x, k, m, y, n, SS_ACT_RELU, 0, n);
                    }
                    const double t = (now() - t0) / reps;
                    if (t < best[v]) best[v] = t;
                }
            printf("%4dx%-4d %3d %8.2f %8.2f (%.2fx) %8.2f (%.2fx)%s\n", k, n, m, best[0] * 1e6, best[1] * 1e6, best[0] / best[1],
                   best[2] * 1e6, best[0] / best[2], m == 1 ? "  (M = 1: both run the GEMV)" : "");
        }
        free(q); free(q24); free(wp); free(values); free(codes); free(indices); free(corr); free(corr24); free(scale); free(bias); free(x); free(y);
    }
    return 0;
}
