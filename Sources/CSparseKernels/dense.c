/*
 * Dense linear layer Y = act(X * W^T + b) over weights pre-packed in 16-wide output panels.
 *
 * Loop nest (all ISAs):
 *   row chunks of about 256 KB of X (kept in L2)
 *     groups of NP panels (16*NP output columns)
 *       row tiles of MR rows: an MR x (16*NP) register tile runs the whole K loop, reading NP
 *       contiguous panel streams and broadcasting one X value per row and k.
 * The epilogue adds the bias and applies ReLU in registers, stores with column masks (the last
 * panel is zero-padded, so only the store needs masking), and runs any other activation on the
 * freshly written, L1-resident tile through the vectorised activation kernels.
 *
 * Tiles: AVX-512 8 rows x 3 panels (24 zmm accumulators); AVX2 6 rows x 1 panel (12 ymm);
 * portable C 4 rows x 1 panel. For one or two rows (GEMV) the tile widens instead (AVX-512 8
 * panels, AVX2 3 panels) so enough independent FMA chains stay in flight.
 */
#include "dense.h"
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SS_X86 1
#endif

#define SS_INLINE static inline __attribute__((always_inline))
#define PANEL SS_DENSE_PANEL

ptrdiff_t ss_dense_packed_floats(ptrdiff_t n, ptrdiff_t k) {
    if (n <= 0 || k <= 0) return 0;
    return (n + PANEL - 1) / PANEL * k * PANEL;
}

void ss_dense_pack(const float *w, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldw, float *wp) {
    ptrdiff_t panels = (n + PANEL - 1) / PANEL;
    for (ptrdiff_t p = 0; p < panels; p++) {
        float *dst = wp + p * k * PANEL;
        for (int j = 0; j < PANEL; j++) {
            ptrdiff_t row = p * PANEL + j;
            if (row < n) {
                const float *src = w + row * ldw;
                for (ptrdiff_t kk = 0; kk < k; kk++) dst[kk * PANEL + j] = src[kk];
            } else {
                for (ptrdiff_t kk = 0; kk < k; kk++) dst[kk * PANEL + j] = 0.0f;
            }
        }
    }
}

/* One register tile's job: rows x[0..MR) (stride ldx), panels w[0..NP) (stride k*16), outputs
 * y[0..MR)[0..cols) with cols <= 16*NP, bias (at the tile's first column) may be NULL. */
typedef struct {
    const float *w;
    const float *x;
    float *y;
    const float *bias;
    ptrdiff_t k, ldx, ldy, cols;
    int relu;
} tile_job;

typedef void (*tile_fn)(const tile_job *job);

/* ------------------------------------------------------------------------------------------ */
/* Portable C                                                                                  */
/* ------------------------------------------------------------------------------------------ */
#define MR_C 4

static void tile_portable(const tile_job *t, int mr) {
    float acc[MR_C][PANEL];
    memset(acc, 0, sizeof acc);
    for (ptrdiff_t kk = 0; kk < t->k; kk++) {
        const float *w = t->w + kk * PANEL;
        for (int i = 0; i < mr; i++) {
            float xv = t->x[i * t->ldx + kk];
            for (int j = 0; j < PANEL; j++) acc[i][j] += xv * w[j];
        }
    }
    for (int i = 0; i < mr; i++) {
        float *y = t->y + i * t->ldy;
        for (ptrdiff_t j = 0; j < t->cols; j++) {
            float v = acc[i][j] + (t->bias ? t->bias[j] : 0.0f);
            y[j] = (t->relu && v < 0.0f) ? 0.0f : v;
        }
    }
}

#ifdef SS_X86
/* ------------------------------------------------------------------------------------------ */
/* AVX-512                                                                                     */
/* ------------------------------------------------------------------------------------------ */
#define T512 __attribute__((target("avx512f,fma")))
#define MR_512 8
#define NP_512 3
#define NP_512_GEMV 8

T512 SS_INLINE void tile512(const tile_job *t, const int MR, const int NP) {
    __m512 acc[MR_512][NP_512_GEMV];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NP; j++) acc[i][j] = _mm512_setzero_ps();
    const ptrdiff_t k = t->k, ldx = t->ldx, ps = k * PANEL;
    const float *w = t->w, *x = t->x;
    for (ptrdiff_t kk = 0; kk < k; kk++) {
        __m512 wv[NP_512_GEMV];
        for (int j = 0; j < NP; j++) wv[j] = _mm512_loadu_ps(w + j * ps + kk * PANEL);
        for (int i = 0; i < MR; i++) {
            __m512 xb = _mm512_set1_ps(x[i * ldx + kk]);
            for (int j = 0; j < NP; j++) acc[i][j] = _mm512_fmadd_ps(wv[j], xb, acc[i][j]);
        }
    }
    for (int j = 0; j < NP; j++) {
        ptrdiff_t valid = t->cols - j * PANEL;
        __mmask16 m = valid >= PANEL ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1u);
        __m512 b = t->bias ? _mm512_maskz_loadu_ps(m, t->bias + j * PANEL) : _mm512_setzero_ps();
        for (int i = 0; i < MR; i++) {
            __m512 v = _mm512_add_ps(acc[i][j], b);
            if (t->relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);
            _mm512_mask_storeu_ps(t->y + i * t->ldy + j * PANEL, m, v);
        }
    }
}

#define DEF512(MR, NP) \
    T512 static void k512_##MR##_##NP(const tile_job *t) { tile512(t, MR, NP); }
#define DEF512_ROWS(NP) DEF512(1, NP) DEF512(2, NP) DEF512(3, NP) DEF512(4, NP) \
                        DEF512(5, NP) DEF512(6, NP) DEF512(7, NP) DEF512(8, NP)
DEF512_ROWS(1) DEF512_ROWS(2) DEF512_ROWS(3)
DEF512(1, 4) DEF512(1, 5) DEF512(1, 6) DEF512(1, 7) DEF512(1, 8)
DEF512(2, 4) DEF512(2, 5) DEF512(2, 6) DEF512(2, 7) DEF512(2, 8)

#define ROW512(NP) { NULL, k512_1_##NP, k512_2_##NP, k512_3_##NP, k512_4_##NP, \
                     k512_5_##NP, k512_6_##NP, k512_7_##NP, k512_8_##NP }
#define GEMV512(NP) { NULL, k512_1_##NP, k512_2_##NP, NULL, NULL, NULL, NULL, NULL, NULL }
/* [np][mr]; rows 3..8 exist only for np <= 3. */
static const tile_fn kernels512[NP_512_GEMV + 1][MR_512 + 1] = {
    { NULL }, ROW512(1), ROW512(2), ROW512(3),
    GEMV512(4), GEMV512(5), GEMV512(6), GEMV512(7), GEMV512(8),
};

/* ------------------------------------------------------------------------------------------ */
/* AVX2 + FMA                                                                                  */
/* ------------------------------------------------------------------------------------------ */
#define T256 __attribute__((target("avx2,fma")))
#define MR_256 6
#define NP_256 1
#define NP_256_GEMV 3

T256 SS_INLINE __m256i lane_mask8(ptrdiff_t valid) {
    int r = valid >= 8 ? 8 : (valid < 0 ? 0 : (int)valid);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

T256 SS_INLINE void tile256(const tile_job *t, const int MR, const int NP) {
    __m256 acc[MR_256][2 * NP_256_GEMV];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < 2 * NP; j++) acc[i][j] = _mm256_setzero_ps();
    const ptrdiff_t k = t->k, ldx = t->ldx, ps = k * PANEL;
    const float *w = t->w, *x = t->x;
    for (ptrdiff_t kk = 0; kk < k; kk++) {
        __m256 wv[2 * NP_256_GEMV];
        for (int j = 0; j < NP; j++) {
            wv[2 * j] = _mm256_loadu_ps(w + j * ps + kk * PANEL);
            wv[2 * j + 1] = _mm256_loadu_ps(w + j * ps + kk * PANEL + 8);
        }
        for (int i = 0; i < MR; i++) {
            __m256 xb = _mm256_broadcast_ss(x + i * ldx + kk);
            for (int j = 0; j < 2 * NP; j++) acc[i][j] = _mm256_fmadd_ps(wv[j], xb, acc[i][j]);
        }
    }
    for (int j = 0; j < 2 * NP; j++) {
        ptrdiff_t valid = t->cols - j * 8;
        if (valid <= 0) break;
        __m256i m = lane_mask8(valid);
        __m256 b = t->bias ? _mm256_maskload_ps(t->bias + j * 8, m) : _mm256_setzero_ps();
        for (int i = 0; i < MR; i++) {
            __m256 v = _mm256_add_ps(acc[i][j], b);
            if (t->relu) v = _mm256_max_ps(_mm256_setzero_ps(), v);
            float *dst = t->y + i * t->ldy + j * 8;
            if (valid >= 8) _mm256_storeu_ps(dst, v);
            else _mm256_maskstore_ps(dst, m, v);
        }
    }
}

#define DEF256(MR, NP) \
    T256 static void k256_##MR##_##NP(const tile_job *t) { tile256(t, MR, NP); }
DEF256(1, 1) DEF256(2, 1) DEF256(3, 1) DEF256(4, 1) DEF256(5, 1) DEF256(6, 1)
DEF256(1, 2) DEF256(2, 2) DEF256(1, 3) DEF256(2, 3)

/* [np][mr]; rows 3..6 exist only for np == 1. */
static const tile_fn kernels256[NP_256_GEMV + 1][MR_256 + 1] = {
    { NULL },
    { NULL, k256_1_1, k256_2_1, k256_3_1, k256_4_1, k256_5_1, k256_6_1 },
    { NULL, k256_1_2, k256_2_2, NULL, NULL, NULL, NULL },
    { NULL, k256_1_3, k256_2_3, NULL, NULL, NULL, NULL },
};
#endif /* SS_X86 */

/* ------------------------------------------------------------------------------------------ */
/* Driver                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Tile geometry of one instruction set. */
typedef struct {
    int max_rows;      /* MR of the main tile */
    int panels;        /* NP of the main tile */
    int gemv_panels;   /* NP used when M <= 2 */
} tile_shape;

static void run_tile(ss_isa isa, const tile_job *t, int mr, int np) {
#ifdef SS_X86
    if (isa == SS_ISA_AVX512) { kernels512[np][mr](t); return; }
    if (isa == SS_ISA_AVX2) { kernels256[np][mr](t); return; }
#endif
    for (int j = 0; j < np; j++) {  /* portable: one panel at a time */
        tile_job one = *t;
        one.w += j * t->k * PANEL;
        one.y += j * PANEL;
        if (one.bias) one.bias += j * PANEL;
        one.cols = t->cols - j * PANEL < PANEL ? t->cols - j * PANEL : PANEL;
        tile_portable(&one, mr);
    }
}

int ss_dense_gemm_cols_isa(ss_isa isa, const float *wp, const float *bias, ptrdiff_t n, ptrdiff_t k,
                           const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t m,
                           ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end) {
    if (n_begin < 0 || n_end > n || n_begin > n_end || m < 0 || k < 0) return -1;
    if (m == 0 || n_begin == n_end) return 0;
    if (n_begin % PANEL != 0 || (n_end % PANEL != 0 && n_end != n)) return -1;

    isa = ss_clamp_isa(isa);
    tile_shape shape = { MR_C, 1, 1 };
#ifdef SS_X86
    if (isa == SS_ISA_AVX512) shape = (tile_shape){ MR_512, NP_512, NP_512_GEMV };
    else if (isa == SS_ISA_AVX2) shape = (tile_shape){ MR_256, NP_256, NP_256_GEMV };
#endif
    const int group = m <= 2 ? shape.gemv_panels : shape.panels;

    /* Row chunks of ~256 KB of X, a whole number of main tiles. */
    ptrdiff_t chunk = k > 0 ? (ptrdiff_t)(65536 / k) : m;
    chunk = chunk < shape.max_rows ? shape.max_rows : chunk / shape.max_rows * shape.max_rows;

    const ptrdiff_t p_begin = n_begin / PANEL, p_end = (n_end + PANEL - 1) / PANEL;
    const int fused_relu = act == SS_ACT_RELU;

    for (ptrdiff_t r0 = 0; r0 < m; r0 += chunk) {
        const ptrdiff_t rows = m - r0 < chunk ? m - r0 : chunk;
        /* Balanced row tiles: rows split into ceil(rows/MR) tiles whose sizes differ by <= 1. */
        const ptrdiff_t tiles = (rows + shape.max_rows - 1) / shape.max_rows;
        for (ptrdiff_t p = p_begin; p < p_end; p += group) {
            const int np = (int)(p_end - p < group ? p_end - p : group);
            const ptrdiff_t col0 = p * PANEL;
            const ptrdiff_t col1 = (p + np) * PANEL < n_end ? (p + np) * PANEL : n_end;
            ptrdiff_t r = r0;
            for (ptrdiff_t tix = 0; tix < tiles; tix++) {
                const int mr = (int)(rows / tiles + (tix < rows % tiles ? 1 : 0));
                tile_job job = {
                    .w = wp + p * k * PANEL, .x = x + r * ldx, .y = y + r * ldy + col0,
                    .bias = bias ? bias + col0 : NULL,
                    .k = k, .ldx = ldx, .ldy = ldy, .cols = col1 - col0, .relu = fused_relu,
                };
                run_tile(isa, &job, mr, np);
                if (act != SS_ACT_NONE && !fused_relu)
                    for (int i = 0; i < mr; i++) ss_act_apply_isa(isa, act, job.y + i * ldy, job.cols);
                r += mr;
            }
        }
    }
    return 0;
}

void ss_dense_gemm(const float *wp, const float *bias, ptrdiff_t n, ptrdiff_t k,
                   const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t m,
                   ss_act_kind act) {
    (void)ss_dense_gemm_cols_isa(ss_detect_isa(), wp, bias, n, k, x, ldx, y, ldy, m, act, 0, n);
}
