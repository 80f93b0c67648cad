/*
 * N:M-sparse and CSR linear layers, and the piecewise-linear activation table. See sparse.h for
 * the layouts. Every kernel has an AVX-512, an AVX2 and a portable C path; the instruction set is
 * chosen per call (ss_clamp_isa keeps it within what the CPU has).
 */
#include "sparse.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SS_X86 1
#endif

#define PANEL 16
#define T512 __attribute__((target("avx512f,fma")))
#define T256 __attribute__((target("avx2,fma")))

static int nm_supported(int n, int m) { return (m == 4 || m == 8 || m == 16) && n >= 1 && n < m; }
static ptrdiff_t panels_of(ptrdiff_t rows) { return (rows + PANEL - 1) / PANEL; }
static ptrdiff_t groups_of(ptrdiff_t k, int m) { return (k + m - 1) / m; }
static ptrdiff_t round16(ptrdiff_t r) { return (r + 15) / 16 * 16; }

ptrdiff_t ss_nm_value_count(ptrdiff_t rows, ptrdiff_t k, int n, int m) {
    if (rows <= 0 || k <= 0 || !nm_supported(n, m)) return 0;
    return panels_of(rows) * groups_of(k, m) * n * PANEL;
}

ptrdiff_t ss_nm_index_count(ptrdiff_t rows, ptrdiff_t k, int n, int m) {
    if (rows <= 0 || k <= 0 || !nm_supported(n, m)) return 0;
    return panels_of(rows) * groups_of(k, m) * n;
}

/* Position (0..m-1) inside its group of the weight in slot word `word`, lane j. */
static inline int nm_lane_index(const void *indices, int m, ptrdiff_t word, int j) {
    if (m == 4) return (int)((((const uint32_t *)indices)[word] >> (2 * j)) & 3u);
    return (int)((((const uint64_t *)indices)[word] >> (4 * j)) & 15u);
}

int ss_nm_pack(const float *w, ptrdiff_t rows, ptrdiff_t k, ptrdiff_t ldw, int n, int m,
               float *values, void *indices) {
    if (!nm_supported(n, m) || rows <= 0 || k <= 0) return -1;
    const ptrdiff_t P = panels_of(rows), G = groups_of(k, m);
    memset(values, 0, (size_t)(P * G * n * PANEL) * sizeof(float));
    memset(indices, 0, (size_t)(P * G * n) * (m == 4 ? sizeof(uint32_t) : sizeof(uint64_t)));
    for (ptrdiff_t p = 0; p < P; p++) {
        for (int j = 0; j < PANEL; j++) {
            const ptrdiff_t row = p * PANEL + j;
            for (ptrdiff_t g = 0; g < G; g++) {
                int used[16] = { 0 };
                int slot = 0;
                const ptrdiff_t base = (p * G + g) * n;
                if (row < rows) {
                    for (int c = 0; c < m; c++) {
                        const ptrdiff_t col = g * m + c;
                        if (col >= k) break;
                        const float v = w[row * ldw + col];
                        if (v == 0.0f) continue;
                        if (slot >= n) return -1;
                        values[(base + slot) * PANEL + j] = v;
                        if (m == 4) ((uint32_t *)indices)[base + slot] |= (uint32_t)c << (2 * j);
                        else ((uint64_t *)indices)[base + slot] |= (uint64_t)c << (4 * j);
                        used[c] = 1;
                        slot++;
                    }
                }
                /* Unused slots keep weight 0 at a position no other slot of this lane uses. */
                for (int c = 0; slot < n && c < m; c++) {
                    if (used[c]) continue;
                    if (m == 4) ((uint32_t *)indices)[base + slot] |= (uint32_t)c << (2 * j);
                    else ((uint64_t *)indices)[base + slot] |= (uint64_t)c << (4 * j);
                    slot++;
                }
            }
        }
    }
    return 0;
}

ptrdiff_t ss_sparse_scratch_floats(ptrdiff_t r, ptrdiff_t k, ptrdiff_t rows) {
    if (r <= 2) return 0;
    return round16(r) * (k + rows);
}

void ss_transpose(const float *in, ptrdiff_t r, ptrdiff_t c, ptrdiff_t ldi, float *out, ptrdiff_t ldo) {
    enum { B = 32 };
    for (ptrdiff_t i0 = 0; i0 < r; i0 += B) {
        const ptrdiff_t i1 = i0 + B < r ? i0 + B : r;
        for (ptrdiff_t j0 = 0; j0 < c; j0 += B) {
            const ptrdiff_t j1 = j0 + B < c ? j0 + B : c;
            for (ptrdiff_t i = i0; i < i1; i++)
                for (ptrdiff_t j = j0; j < j1; j++) out[j * ldo + i] = in[i * ldi + j];
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Shared GEMM driver: X^T, per-row sparse accumulation into Y^T, epilogue, transpose back.     */
/* ------------------------------------------------------------------------------------------ */

/* One output row's non-zeros, however they are stored. */
typedef struct {
    int kind;                 /* 0 = n:m, 1 = csr */
    const float *values;
    const void *indices;
    int n, m;
    ptrdiff_t G;
    const int32_t *row_ptr, *col;
    const float *val;
} sparse_src;

/* K-block: X^T rows [kb0, kb1) x 64 columns stay in L1 (64 x 64 floats = 16 KB) while every
 * output row adds its non-zeros of that block; Y^T accumulates across blocks. */
#ifndef SS_KBLOCK
#define SS_KBLOCK 64
#endif
enum { KBLOCK = SS_KBLOCK, RBLOCK = 64 };

/* yt[0..rb) (+)= sum over the row's non-zeros with column in [kb0, kb1) of w * xt[col][0..rb).
 * `cursor` (CSR) is the row's first non-zero not yet used. rb is a multiple of 16 (<= 64). */
typedef void (*block_fn)(const sparse_src *s, ptrdiff_t row, ptrdiff_t kb0, ptrdiff_t kb1, int32_t *cursor,
                         const float *xt, ptrdiff_t rp, ptrdiff_t rb, float *yt, int accumulate);

static void block_portable(const sparse_src *s, ptrdiff_t row, ptrdiff_t kb0, ptrdiff_t kb1, int32_t *cursor,
                           const float *xt, ptrdiff_t rp, ptrdiff_t rb, float *yt, int accumulate) {
    float acc[RBLOCK];
    for (ptrdiff_t i = 0; i < rb; i++) acc[i] = accumulate ? yt[i] : 0.0f;
    if (s->kind == 1) {
        int32_t e = *cursor;
        const int32_t end = s->row_ptr[row + 1];
        for (; e < end && s->col[e] < kb1; e++) {
            const float w = s->val[e];
            const float *x = xt + (ptrdiff_t)s->col[e] * rp;
            for (ptrdiff_t i = 0; i < rb; i++) acc[i] += w * x[i];
        }
        *cursor = e;
    } else {
        const ptrdiff_t p = row / PANEL;
        const int j = (int)(row % PANEL);
        for (ptrdiff_t g = kb0 / s->m; g < kb1 / s->m; g++)
            for (int sl = 0; sl < s->n; sl++) {
                const ptrdiff_t word = (p * s->G + g) * s->n + sl;
                const float w = s->values[word * PANEL + j];
                const float *x = xt + (g * s->m + nm_lane_index(s->indices, s->m, word, j)) * rp;
                for (ptrdiff_t i = 0; i < rb; i++) acc[i] += w * x[i];
            }
    }
    for (ptrdiff_t i = 0; i < rb; i++) yt[i] = acc[i];
}

#ifdef SS_X86
/* NB vectors of VW floats per non-zero; X^T rows come from L1. */
#define BLOCK_KERNEL(NAME, TARGET, VEC, VW, ZERO, LOAD, STORE, FMA, SET1, ADD)                           \
    TARGET static inline __attribute__((always_inline)) void NAME##_body(const sparse_src *s, ptrdiff_t row, ptrdiff_t kb0, ptrdiff_t kb1, \
                                   int32_t *cursor, const float *xt, ptrdiff_t rp, float *yt,          \
                                   int accumulate, const int NB) {                                     \
        VEC a[4];                                                                                       \
        for (int v = 0; v < NB; v++) a[v] = accumulate ? LOAD(yt + v * VW) : ZERO();                   \
        if (s->kind == 1) {                                                                             \
            int32_t e = *cursor;                                                                        \
            const int32_t last = s->row_ptr[row + 1];                                                   \
            int32_t end = e;                                                                            \
            while (end < last && s->col[end] < kb1) end++;                                              \
            /* Independent accumulator chains hide the FMA latency when few vectors are live. */       \
            const int U = NB == 1 ? 4 : (NB == 2 ? 2 : 1);                                              \
            VEC b[4][4];                                                                                \
            for (int u = 1; u < U; u++) for (int v = 0; v < NB; v++) b[u][v] = ZERO();                  \
            for (; e + U <= end; e += U) {                                                              \
                for (int u = 0; u < U; u++) {                                                           \
                    const VEC w = SET1(s->val[e + u]);                                                  \
                    const float *x = xt + (ptrdiff_t)s->col[e + u] * rp;                                \
                    for (int v = 0; v < NB; v++) {                                                      \
                        if (u == 0) a[v] = FMA(w, LOAD(x + v * VW), a[v]);                              \
                        else b[u][v] = FMA(w, LOAD(x + v * VW), b[u][v]);                               \
                    }                                                                                   \
                }                                                                                       \
            }                                                                                           \
            for (; e < end; e++) {                                                                      \
                const VEC w = SET1(s->val[e]);                                                          \
                const float *x = xt + (ptrdiff_t)s->col[e] * rp;                                        \
                for (int v = 0; v < NB; v++) a[v] = FMA(w, LOAD(x + v * VW), a[v]);                     \
            }                                                                                           \
            for (int u = 1; u < U; u++) for (int v = 0; v < NB; v++) a[v] = ADD(a[v], b[u][v]);         \
            *cursor = e;                                                                                \
        } else if (s->m == 4) {                                                                         \
            const ptrdiff_t p = row / PANEL;                                                            \
            const int j = (int)(row % PANEL), n = s->n;                                                 \
            const uint32_t *iw = (const uint32_t *)s->indices + p * s->G * n;                           \
            const float *vw = s->values + p * s->G * n * PANEL + j;                                     \
            for (ptrdiff_t g = kb0 / 4; g < kb1 / 4; g++)                                               \
                for (int sl = 0; sl < n; sl++) {                                                        \
                    const ptrdiff_t e = g * n + sl;                                                     \
                    const VEC w = SET1(vw[e * PANEL]);                                                  \
                    const float *x = xt + (g * 4 + ((iw[e] >> (2 * j)) & 3u)) * rp;                     \
                    for (int v = 0; v < NB; v++) a[v] = FMA(w, LOAD(x + v * VW), a[v]);                 \
                }                                                                                       \
        } else {                                                                                        \
            const ptrdiff_t p = row / PANEL;                                                            \
            const int j = (int)(row % PANEL), n = s->n, m = s->m;                                       \
            const uint64_t *iw = (const uint64_t *)s->indices + p * s->G * n;                           \
            const float *vw = s->values + p * s->G * n * PANEL + j;                                     \
            for (ptrdiff_t g = kb0 / m; g < kb1 / m; g++)                                               \
                for (int sl = 0; sl < n; sl++) {                                                        \
                    const ptrdiff_t e = g * n + sl;                                                     \
                    const VEC w = SET1(vw[e * PANEL]);                                                  \
                    const float *x = xt + (g * m + (ptrdiff_t)((iw[e] >> (4 * j)) & 15u)) * rp;         \
                    for (int v = 0; v < NB; v++) a[v] = FMA(w, LOAD(x + v * VW), a[v]);                 \
                }                                                                                       \
        }                                                                                               \
        for (int v = 0; v < NB; v++) STORE(yt + v * VW, a[v]);                                         \
    }                                                                                                   \
    TARGET static void NAME##_1(const sparse_src *s, ptrdiff_t row, ptrdiff_t kb0, ptrdiff_t kb1, int32_t *c, \
                                const float *xt, ptrdiff_t rp, float *yt, int acc) { NAME##_body(s, row, kb0, kb1, c, xt, rp, yt, acc, 1); } \
    TARGET static void NAME##_2(const sparse_src *s, ptrdiff_t row, ptrdiff_t kb0, ptrdiff_t kb1, int32_t *c, \
                                const float *xt, ptrdiff_t rp, float *yt, int acc) { NAME##_body(s, row, kb0, kb1, c, xt, rp, yt, acc, 2); } \
    TARGET static void NAME##_3(const sparse_src *s, ptrdiff_t row, ptrdiff_t kb0, ptrdiff_t kb1, int32_t *c, \
                                const float *xt, ptrdiff_t rp, float *yt, int acc) { NAME##_body(s, row, kb0, kb1, c, xt, rp, yt, acc, 3); } \
    TARGET static void NAME##_4(const sparse_src *s, ptrdiff_t row, ptrdiff_t kb0, ptrdiff_t kb1, int32_t *c, \
                                const float *xt, ptrdiff_t rp, float *yt, int acc) { NAME##_body(s, row, kb0, kb1, c, xt, rp, yt, acc, 4); } \
    static void NAME(const sparse_src *s, ptrdiff_t row, ptrdiff_t kb0, ptrdiff_t kb1, int32_t *cursor,        \
                     const float *xt, ptrdiff_t rp, ptrdiff_t rb, float *yt, int accumulate) {                 \
        switch (rb / VW) {                                                                              \
        case 1: NAME##_1(s, row, kb0, kb1, cursor, xt, rp, yt, accumulate); break;                      \
        case 2: NAME##_2(s, row, kb0, kb1, cursor, xt, rp, yt, accumulate); break;                      \
        case 3: NAME##_3(s, row, kb0, kb1, cursor, xt, rp, yt, accumulate); break;                      \
        default: NAME##_4(s, row, kb0, kb1, cursor, xt, rp, yt, accumulate); break;                     \
        }                                                                                               \
    }

BLOCK_KERNEL(block_512, T512, __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_add_ps)
BLOCK_KERNEL(block_256x, T256, __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_add_ps)

/* AVX2 holds 32 columns in 4 ymm: a 64-column block runs as two halves (the CSR cursor of the
 * second half starts where the first one started). */
static void block_256(const sparse_src *s, ptrdiff_t row, ptrdiff_t kb0, ptrdiff_t kb1, int32_t *cursor,
                      const float *xt, ptrdiff_t rp, ptrdiff_t rb, float *yt, int accumulate) {
    int32_t start = cursor ? *cursor : 0;
    block_256x(s, row, kb0, kb1, cursor, xt, rp, rb < 32 ? rb : 32, yt, accumulate);
    if (rb > 32) {
        int32_t second = start;
        block_256x(s, row, kb0, kb1, cursor ? &second : NULL, xt + 32, rp, rb - 32, yt + 32, accumulate);
    }
}
#endif

static void sparse_gemm(ss_isa isa, const sparse_src *s, const float *bias, ptrdiff_t rows, ptrdiff_t k,
                        const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                        ss_act_kind act, float *scratch) {
    const ptrdiff_t rp = round16(r);
    /* X^T gets whole n:m groups (zero rows past K) so the inner loops never test bounds. */
    const ptrdiff_t kp = s->kind == 0 ? s->G * s->m : k;
    /* Per-thread scratch, kept between calls: a fresh large malloc would be an mmap and a page
     * fault per 4 KB on every call. */
    static __thread float *cache = NULL;
    static __thread size_t cache_floats = 0;
    const size_t need = (size_t)(rp * (kp + rows));
    if (!scratch || kp != k) {
        if (cache_floats < need) {
            free(cache);
            cache = (float *)malloc(need * sizeof(float));
            cache_floats = cache ? need : 0;
            if (!cache) return;
        }
        scratch = cache;
    }
    float *xt = scratch, *yt = scratch + rp * kp;
    ss_transpose(x, r, k, ldx, xt, rp);
    if (rp > r)
        for (ptrdiff_t c = 0; c < k; c++) memset(xt + c * rp + r, 0, (size_t)(rp - r) * sizeof(float));
    if (kp > k) memset(xt + k * rp, 0, (size_t)((kp - k) * rp) * sizeof(float));
    block_fn fn = block_portable;
#ifdef SS_X86
    if (isa == SS_ISA_AVX512) fn = block_512;
    else if (isa == SS_ISA_AVX2) fn = block_256;
#endif
    /* K blocks hold whole groups: KBLOCK is a multiple of every m. */
    int32_t *cursor = s->kind == 1 ? (int32_t *)malloc((size_t)rows * sizeof(int32_t)) : NULL;
    for (ptrdiff_t r0 = 0; r0 < rp; r0 += RBLOCK) {
        const ptrdiff_t rb = rp - r0 < RBLOCK ? rp - r0 : RBLOCK;
        if (cursor) memcpy(cursor, s->row_ptr, (size_t)rows * sizeof(int32_t));
        for (ptrdiff_t kb0 = 0; kb0 < kp; kb0 += KBLOCK) {
            const ptrdiff_t kb1 = kb0 + KBLOCK < kp ? kb0 + KBLOCK : kp;
            for (ptrdiff_t row = 0; row < rows; row++)
                fn(s, row, kb0, kb1, cursor ? cursor + row : NULL, xt + r0, rp, rb, yt + row * rp + r0, kb0 > 0);
        }
    }
    free(cursor);
    for (ptrdiff_t row = 0; row < rows; row++) {
        float *out = yt + row * rp;
        if (bias) {
            const float b = bias[row];
            for (ptrdiff_t i = 0; i < r; i++) out[i] += b;
        }
        if (act != SS_ACT_NONE) ss_act_apply_isa(isa, act, out, r);
    }
    ss_transpose(yt, rows, r, rp, y, ldy);
}

/* ------------------------------------------------------------------------------------------ */
/* N:M GEMV: in-register selection of each lane's input                                        */
/* ------------------------------------------------------------------------------------------ */

static void nm_gemv_portable(const float *values, const void *indices, int n, int m, const float *bias,
                             ptrdiff_t rows, ptrdiff_t k, const float *xp, float *y) {
    const ptrdiff_t P = panels_of(rows), G = groups_of(k, m);
    for (ptrdiff_t p = 0; p < P; p++) {
        float acc[PANEL] = { 0 };
        for (ptrdiff_t g = 0; g < G; g++)
            for (int s = 0; s < n; s++) {
                const ptrdiff_t word = (p * G + g) * n + s;
                const float *v = values + word * PANEL;
                for (int j = 0; j < PANEL; j++) acc[j] += v[j] * xp[g * m + nm_lane_index(indices, m, word, j)];
            }
        for (int j = 0; j < PANEL && p * PANEL + j < rows; j++)
            y[p * PANEL + j] = acc[j] + (bias ? bias[p * PANEL + j] : 0.0f);
    }
}

#ifdef SS_X86
T512 static void nm_gemv_512(const float *values, const void *indices, int n, int m, const float *bias,
                             ptrdiff_t rows, ptrdiff_t k, const float *xp, float *y) {
    const ptrdiff_t P = panels_of(rows), G = groups_of(k, m);
    const __m512i sh2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i sh4 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
    for (ptrdiff_t p = 0; p < P; p++) {
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        const float *vp = values + p * G * n * PANEL;
        if (m == 4) {
            const uint32_t *ip = (const uint32_t *)indices + p * G * n;
            for (ptrdiff_t g = 0; g < G; g++) {
                const __m512 xg = _mm512_broadcast_f32x4(_mm_loadu_ps(xp + 4 * g));
                for (int s = 0; s < n; s++) {
                    const ptrdiff_t e = g * n + s;
                    const __m512i iv = _mm512_srlv_epi32(_mm512_set1_epi32((int)ip[e]), sh2);
                    const __m512 sel = _mm512_permutexvar_ps(iv, xg);
                    if (e & 1) acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(vp + e * PANEL), sel, acc1);
                    else acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(vp + e * PANEL), sel, acc0);
                }
            }
        } else {
            const uint64_t *ip = (const uint64_t *)indices + p * G * n;
            for (ptrdiff_t g = 0; g < G; g++) {
                __m512 xg;
                if (m == 8) {
                    const __m512 t = _mm512_castps256_ps512(_mm256_loadu_ps(xp + 8 * g));
                    xg = _mm512_shuffle_f32x4(t, t, _MM_SHUFFLE(1, 0, 1, 0));
                } else {
                    xg = _mm512_loadu_ps(xp + 16 * g);
                }
                for (int s = 0; s < n; s++) {
                    const ptrdiff_t e = g * n + s;
                    const uint64_t word = ip[e];
                    const __m512i both = _mm512_mask_blend_epi32((__mmask16)0xFF00, _mm512_set1_epi32((int)(uint32_t)word),
                                                                 _mm512_set1_epi32((int)(uint32_t)(word >> 32)));
                    const __m512 sel = _mm512_permutexvar_ps(_mm512_srlv_epi32(both, sh4), xg);
                    if (e & 1) acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(vp + e * PANEL), sel, acc1);
                    else acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(vp + e * PANEL), sel, acc0);
                }
            }
        }
        const ptrdiff_t valid = rows - p * PANEL;
        const __mmask16 mask = valid >= PANEL ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1u);
        __m512 v = _mm512_add_ps(acc0, acc1);
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias + p * PANEL));
        _mm512_mask_storeu_ps(y + p * PANEL, mask, v);
    }
}

T256 static void nm_gemv_256(const float *values, const void *indices, int n, int m, const float *bias,
                             ptrdiff_t rows, ptrdiff_t k, const float *xp, float *y) {
    const ptrdiff_t P = panels_of(rows), G = groups_of(k, m);
    const __m256i sh2lo = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i sh2hi = _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30);
    const __m256i sh4 = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    for (ptrdiff_t p = 0; p < P; p++) {
        __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
        const float *vp = values + p * G * n * PANEL;
        for (ptrdiff_t g = 0; g < G; g++) {
            for (int s = 0; s < n; s++) {
                const ptrdiff_t e = g * n + s;
                __m256 sl, sh;
                if (m == 4) {
                    const __m256 xg = _mm256_broadcast_ps((const __m128 *)(xp + 4 * g));
                    const __m256i w = _mm256_set1_epi32((int)((const uint32_t *)indices)[p * G * n + e]);
                    sl = _mm256_permutevar8x32_ps(xg, _mm256_srlv_epi32(w, sh2lo));
                    sh = _mm256_permutevar8x32_ps(xg, _mm256_srlv_epi32(w, sh2hi));
                } else {
                    const uint64_t word = ((const uint64_t *)indices)[p * G * n + e];
                    const __m256i il = _mm256_srlv_epi32(_mm256_set1_epi32((int)(uint32_t)word), sh4);
                    const __m256i ih = _mm256_srlv_epi32(_mm256_set1_epi32((int)(uint32_t)(word >> 32)), sh4);
                    if (m == 8) {
                        const __m256 xg = _mm256_loadu_ps(xp + 8 * g);
                        sl = _mm256_permutevar8x32_ps(xg, il);
                        sh = _mm256_permutevar8x32_ps(xg, ih);
                    } else {
                        const __m256 x0 = _mm256_loadu_ps(xp + 16 * g), x1 = _mm256_loadu_ps(xp + 16 * g + 8);
                        sl = _mm256_blendv_ps(_mm256_permutevar8x32_ps(x0, il), _mm256_permutevar8x32_ps(x1, il),
                                              _mm256_castsi256_ps(_mm256_slli_epi32(il, 28)));
                        sh = _mm256_blendv_ps(_mm256_permutevar8x32_ps(x0, ih), _mm256_permutevar8x32_ps(x1, ih),
                                              _mm256_castsi256_ps(_mm256_slli_epi32(ih, 28)));
                    }
                }
                lo = _mm256_fmadd_ps(_mm256_loadu_ps(vp + e * PANEL), sl, lo);
                hi = _mm256_fmadd_ps(_mm256_loadu_ps(vp + e * PANEL + 8), sh, hi);
            }
        }
        float out[PANEL];
        _mm256_storeu_ps(out, lo);
        _mm256_storeu_ps(out + 8, hi);
        for (int j = 0; j < PANEL && p * PANEL + j < rows; j++)
            y[p * PANEL + j] = out[j] + (bias ? bias[p * PANEL + j] : 0.0f);
    }
}
#endif

void ss_nm_gemm_isa(ss_isa isa, const float *values, const void *indices, int n, int m,
                    const float *bias, ptrdiff_t rows, ptrdiff_t k,
                    const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                    ss_act_kind act, float *scratch) {
    if (!nm_supported(n, m) || rows <= 0 || k <= 0 || r <= 0) return;
    isa = ss_clamp_isa(isa);
    const ptrdiff_t G = groups_of(k, m);
    if (r <= 2) {
        /* Inputs copied with zero padding so whole groups (and 16-wide loads) stay in bounds. */
        const ptrdiff_t padded = G * m + 16;
        float stackbuf[4096 + 16];
        float *xp = padded <= 4096 + 16 ? stackbuf : (float *)malloc((size_t)padded * sizeof(float));
        for (ptrdiff_t i = 0; i < r; i++) {
            memcpy(xp, x + i * ldx, (size_t)k * sizeof(float));
            memset(xp + k, 0, (size_t)(padded - k) * sizeof(float));
            float *out = y + i * ldy;
#ifdef SS_X86
            if (isa == SS_ISA_AVX512) nm_gemv_512(values, indices, n, m, bias, rows, k, xp, out);
            else if (isa == SS_ISA_AVX2) nm_gemv_256(values, indices, n, m, bias, rows, k, xp, out);
            else
#endif
                nm_gemv_portable(values, indices, n, m, bias, rows, k, xp, out);
            if (act != SS_ACT_NONE) ss_act_apply_isa(isa, act, out, rows);
        }
        if (xp != stackbuf) free(xp);
        return;
    }
    const sparse_src s = { .kind = 0, .values = values, .indices = indices, .n = n, .m = m, .G = G };
    sparse_gemm(isa, &s, bias, rows, k, x, ldx, y, ldy, r, act, scratch);
}

void ss_csr_gemm_isa(ss_isa isa, const int32_t *row_ptr, const int32_t *col, const float *val,
                     const float *bias, ptrdiff_t rows, ptrdiff_t k,
                     const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                     ss_act_kind act, float *scratch) {
    if (rows <= 0 || k <= 0 || r <= 0) return;
    isa = ss_clamp_isa(isa);
    if (r <= 2) {
        for (ptrdiff_t i = 0; i < r; i++) {
            const float *xi = x + i * ldx;
            float *out = y + i * ldy;
            for (ptrdiff_t row = 0; row < rows; row++) {
                float acc = bias ? bias[row] : 0.0f;
                for (int32_t e = row_ptr[row]; e < row_ptr[row + 1]; e++) acc += val[e] * xi[col[e]];
                out[row] = acc;
            }
            if (act != SS_ACT_NONE) ss_act_apply_isa(isa, act, out, rows);
        }
        return;
    }
    const sparse_src s = { .kind = 1, .row_ptr = row_ptr, .col = col, .val = val };
    sparse_gemm(isa, &s, bias, rows, k, x, ldx, y, ldy, r, act, scratch);
}

/* ------------------------------------------------------------------------------------------ */
/* Piecewise-linear activation                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void pwl_portable(const float *slope, const float *offset, int segments, float lo, float inv_h,
                         float *x, ptrdiff_t count) {
    for (ptrdiff_t i = 0; i < count; i++) {
        float t = (x[i] - lo) * inv_h;
        int s = t < 0.0f ? 0 : (t >= (float)(segments - 1) ? segments - 1 : (int)t);
        x[i] = slope[s] * x[i] + offset[s];
    }
}

#ifdef SS_X86
T512 static void pwl_512(const float *slope, const float *offset, int segments, float lo, float inv_h,
                         float *x, ptrdiff_t count) {
    float sl[32] = { 0 }, of[32] = { 0 };
    memcpy(sl, slope, (size_t)segments * sizeof(float));
    memcpy(of, offset, (size_t)segments * sizeof(float));
    const __m512 s0 = _mm512_loadu_ps(sl), s1 = _mm512_loadu_ps(sl + 16);
    const __m512 o0 = _mm512_loadu_ps(of), o1 = _mm512_loadu_ps(of + 16);
    const __m512 vlo = _mm512_set1_ps(lo), vinv = _mm512_set1_ps(inv_h);
    const __m512 vmax = _mm512_set1_ps((float)(segments - 1));
    ptrdiff_t i = 0;
    for (; i < count; i += 16) {
        const __mmask16 mask = count - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - i)) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(mask, x + i);
        __m512 t = _mm512_mul_ps(_mm512_sub_ps(v, vlo), vinv);
        t = _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), vmax);
        const __m512i idx = _mm512_cvttps_epi32(t);
        const __m512 a = _mm512_permutex2var_ps(s0, idx, s1);
        const __m512 b = _mm512_permutex2var_ps(o0, idx, o1);
        _mm512_mask_storeu_ps(x + i, mask, _mm512_fmadd_ps(a, v, b));
    }
}

T256 static void pwl_256(const float *slope, const float *offset, int segments, float lo, float inv_h,
                         float *x, ptrdiff_t count) {
    const __m256 vlo = _mm256_set1_ps(lo), vinv = _mm256_set1_ps(inv_h);
    const __m256 vmax = _mm256_set1_ps((float)(segments - 1));
    ptrdiff_t i = 0;
    for (; i + 8 <= count; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        __m256 t = _mm256_mul_ps(_mm256_sub_ps(v, vlo), vinv);
        t = _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), vmax);
        const __m256i idx = _mm256_cvttps_epi32(t);
        const __m256 a = _mm256_i32gather_ps(slope, idx, 4);
        const __m256 b = _mm256_i32gather_ps(offset, idx, 4);
        _mm256_storeu_ps(x + i, _mm256_fmadd_ps(a, v, b));
    }
    pwl_portable(slope, offset, segments, lo, inv_h, x + i, count - i);
}
#endif

void ss_pwl_apply_isa(ss_isa isa, const float *slope, const float *offset, int segments,
                      float lo, float hi, float *x, ptrdiff_t count) {
    if (segments <= 0 || count <= 0 || !(hi > lo)) return;
    const float inv_h = (float)segments / (hi - lo);
    isa = ss_clamp_isa(isa);
#ifdef SS_X86
    if (isa == SS_ISA_AVX512 && segments <= 32) { pwl_512(slope, offset, segments, lo, inv_h, x, count); return; }
    if (isa >= SS_ISA_AVX2) { pwl_256(slope, offset, segments, lo, inv_h, x, count); return; }
#endif
    pwl_portable(slope, offset, segments, lo, inv_h, x, count);
}

/* ------------------------------------------------------------------------------------------ */
/* BLAST diagonal mix                                                                           */
/* ------------------------------------------------------------------------------------------ */

static void mix_portable(const float *z, ptrdiff_t rows, int b1, int b2, ptrdiff_t r, const float *s, float *h) {
    for (ptrdiff_t row = 0; row < rows; row++)
        for (int i = 0; i < b1; i++) {
            float *out = h + (row * b1 + i) * r;
            for (ptrdiff_t t = 0; t < r; t++) out[t] = 0.0f;
            for (int j = 0; j < b2; j++) {
                const float *zz = z + (row * b2 + j) * r, *ss = s + ((ptrdiff_t)i * b2 + j) * r;
                for (ptrdiff_t t = 0; t < r; t++) out[t] += ss[t] * zz[t];
            }
        }
}

#ifdef SS_X86
T512 static void mix_512(const float *z, ptrdiff_t rows, int b1, int b2, ptrdiff_t r, const float *s, float *h) {
    for (ptrdiff_t row = 0; row < rows; row++)
        for (int i = 0; i < b1; i++) {
            float *out = h + (row * b1 + i) * r;
            for (ptrdiff_t t = 0; t < r; t += 16) {
                const __mmask16 mask = r - t >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (r - t)) - 1u);
                __m512 acc = _mm512_setzero_ps();
                for (int j = 0; j < b2; j++)
                    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, s + ((ptrdiff_t)i * b2 + j) * r + t),
                                          _mm512_maskz_loadu_ps(mask, z + (row * b2 + j) * r + t), acc);
                _mm512_mask_storeu_ps(out + t, mask, acc);
            }
        }
}
#endif

void ss_blast_mix_isa(ss_isa isa, const float *z, ptrdiff_t rows, int b1, int b2, ptrdiff_t r,
                      const float *s, float *h) {
#ifdef SS_X86
    if (ss_clamp_isa(isa) == SS_ISA_AVX512) { mix_512(z, rows, b1, b2, r, s, h); return; }
#endif
    mix_portable(z, rows, b1, b2, r, s, h);
}

long ss_atomic_load(const long *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
void ss_atomic_store(long *p, long v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
long ss_atomic_fetch_add(long *p, long v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
void ss_cpu_relax(void) {
#ifdef SS_X86
    _mm_pause();
#endif
}
