// Dense vs the project's 2:4 kernel vs the chunk-permute prototype (nm_chunk_permute.c), 1 thread,
// thread CPU time (robust on a loaded machine), alternating rounds, median; the prototype is checked
// against the project kernel (err = max abs difference). Not part of the package build. From the
// repository root (x86-64 with AVX-512; shapes with K a multiple of 16, as the prototype needs):
//   mkdir -p /tmp/k && for f in Sources/CSparseKernels/*.c; do
//     clang -O2 -ISources/CSparseKernels/include -c "$PWD/$f" -o /tmp/k/$(basename $f .c).o; done
//   ar rcs /tmp/k/libk.a /tmp/k/*.o
//   clang -O2 -DTBMAX=4 -ISources/CSparseKernels/include -IBenchmarks/zen4-pipes Benchmarks/zen4-pipes/nm_harness.c \
//     Benchmarks/zen4-pipes/nm_chunk_permute.c /tmp/k/libk.a -lm -lpthread -o /tmp/nm-harness && /tmp/nm-harness 3
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include "dense.h"
#include "nm.h"
#include "nm_chunk_permute.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
typedef struct { const char *name; void (*run)(void *ctx); void *ctx; } op;
static float frand(void) { return (float)((double)rand() / RAND_MAX * 2 - 1); }

typedef struct { ptrdiff_t n, k, m; float *wp, *vals, *x, *y, *bias; void *idx; proto_pack *pp; } ctx_t;
static void run_dense(void *c_) { ctx_t *c = c_; ss_dense_gemm_cols_isa(SS_ISA_AVX512, c->wp, c->bias, c->n, c->k, c->x, c->k, c->y, c->n, c->m, SS_ACT_NONE, 0, c->n); }
static void run_nm(void *c_) { ctx_t *c = c_; ss_nm_gemm_isa(SS_ISA_AVX512, c->vals, c->idx, 2, 4, c->bias, c->n, c->k, c->x, c->k, c->y, c->n, c->m, SS_ACT_NONE); }
static void run_proto(void *c_) { ctx_t *c = c_; proto_gemm(c->pp, c->bias, c->x, c->k, c->y, c->n, c->m); }

static double sample(op *o, double budget) {
    int reps = 0; double t0 = now(), t;
    do { o->run(o->ctx); reps++; t = now(); } while (t - t0 < budget);
    return (t - t0) / reps * 1e6;
}
static int cmpd(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
    int shapes[3][2] = { { 384, 384 }, { 384, 1536 }, { 1536, 384 } };
    int ms[] = { 4, 8, 16, 32, 64, 1, 2, 128 };
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    for (int s = 0; s < 3; s++) {
        ptrdiff_t k = shapes[s][0], n = shapes[s][1];
        float *w = malloc(n * k * 4);
        for (ptrdiff_t i = 0; i < n * k; i++) w[i] = frand();
        for (ptrdiff_t r = 0; r < n; r++) for (ptrdiff_t g = 0; g < k; g += 4) {  // 2:4 prune: keep 2 largest
            float *q = w + r * k + g; int a = 0, b = 1;
            for (int c = 0; c < 4; c++) if (fabsf(q[c]) > fabsf(q[a])) a = c;
            b = a == 0 ? 1 : 0;
            for (int c = 0; c < 4; c++) if (c != a && fabsf(q[c]) > fabsf(q[b])) b = c;
            for (int c = 0; c < 4; c++) if (c != a && c != b) q[c] = 0;
        }
        ctx_t c = { .n = n, .k = k };
        c.wp = aligned_alloc(64, ss_dense_packed_floats(n, k) * 4 + 64); ss_dense_pack(w, n, k, k, c.wp);
        c.vals = aligned_alloc(64, ss_nm_value_count(n, k, 2, 4) * 4 + 64);
        c.idx = aligned_alloc(64, ss_nm_index_count(n, k, 2, 4) * 4 + 64);
        ss_nm_pack(w, n, k, k, 2, 4, c.vals, c.idx);
        c.pp = proto_make(c.vals, c.idx, n, k);
        c.bias = malloc(n * 4); for (ptrdiff_t i = 0; i < n; i++) c.bias[i] = frand();
        c.x = malloc(128 * k * 4); for (ptrdiff_t i = 0; i < 128 * k; i++) c.x[i] = frand();
        c.y = malloc(128 * n * 4);
        float *y0 = malloc(128 * n * 4);
        for (int mi = 0; mi < 8; mi++) {
            c.m = ms[mi];
            // check proto against nm
            run_nm(&c); memcpy(y0, c.y, c.m * n * 4);
            memset(c.y, 0, c.m * n * 4); run_proto(&c);
            double err = 0; for (ptrdiff_t i = 0; i < c.m * n; i++) err = fmax(err, fabs(y0[i] - c.y[i]));
            op ops[3] = { { "dense", run_dense, &c }, { "nm", run_nm, &c }, { "proto", run_proto, &c } };
            double t[3][15];
            for (int r = 0; r < rounds; r++) for (int o = 0; o < 3; o++) t[o][r] = sample(&ops[o], 0.004);
            double med[3];
            for (int o = 0; o < 3; o++) { qsort(t[o], rounds, sizeof(double), cmpd); med[o] = t[o][rounds / 2]; }
            printf("%4tdx%-4td M=%3d dense %8.2f us (%5.1f GF)  nm %8.2f (%.2fx)  proto %8.2f (%.2fx)  err %.1e\n", k, n, ms[mi],
                   med[0], 2.0 * c.m * n * k / med[0] / 1e3, med[1], med[0] / med[1], med[2], med[0] / med[2], err);
            fflush(stdout);
        }
    }
    return 0;
}
