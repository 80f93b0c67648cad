/*
 * Second-order (optimal brain surgeon / SparseGPT) compression kernels: calibration Gram matrices,
 * the inverse-Hessian factor, and the column sweep with N:M mask choice. See include/obs.h.
 */
#include "obs.h"
#include "internal.h"
#include "linalg.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Gram matrices: out += A^T B                                                                  */
/* ------------------------------------------------------------------------------------------ */

enum { GRAM_CHUNK = 64 };   /* tokens summed in float before each add into double */

/* A chunk packed as tc rows of `width` floats (zero padded): the tile kernels read whole tiles. */
typedef struct {
    const float *ap, *bp;   /* packed A columns [i0, ...) and B columns [j0, ...) */
    ptrdiff_t lda, ldb;     /* their row lengths (multiples of the tile sizes) */
    ptrdiff_t tc;           /* tokens in the chunk */
} gram_chunk;

/* acc (ri x cj floats, row stride cj) into out[i..][j..], only (i + r, j + c) inside the limits. */
static void gram_add(const float *acc, int ri, int cj, ptrdiff_t i, ptrdiff_t j, ptrdiff_t i_end, ptrdiff_t j_end,
                     int upper_only, double *out, ptrdiff_t ldo) {
    for (int r = 0; r < ri && i + r < i_end; r++) {
        double *o = out + (i + r) * ldo;
        for (int c = 0; c < cj && j + c < j_end; c++)
            if (!upper_only || j + c >= i + r) o[j + c] += (double)acc[r * cj + c];
    }
}

static void gram_tile_portable(const gram_chunk *g, ptrdiff_t ii, ptrdiff_t jj, float *acc /* 4 x 16 */) {
    memset(acc, 0, 64 * sizeof(float));
    for (ptrdiff_t t = 0; t < g->tc; t++) {
        const float *a = g->ap + t * g->lda + ii, *b = g->bp + t * g->ldb + jj;
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 16; c++) acc[r * 16 + c] += a[r] * b[c];
    }
}

#ifdef SS_X86
SS_T512 static void gram_tile512(const gram_chunk *g, ptrdiff_t ii, ptrdiff_t jj, float *acc /* 8 x 32 */) {
    __m512 s[8][2];
    for (int r = 0; r < 8; r++) { s[r][0] = _mm512_setzero_ps(); s[r][1] = _mm512_setzero_ps(); }
    for (ptrdiff_t t = 0; t < g->tc; t++) {
        const float *a = g->ap + t * g->lda + ii, *b = g->bp + t * g->ldb + jj;
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        for (int r = 0; r < 8; r++) {
            const __m512 av = _mm512_set1_ps(a[r]);
            s[r][0] = _mm512_fmadd_ps(av, b0, s[r][0]);
            s[r][1] = _mm512_fmadd_ps(av, b1, s[r][1]);
        }
    }
    for (int r = 0; r < 8; r++) { _mm512_storeu_ps(acc + r * 32, s[r][0]); _mm512_storeu_ps(acc + r * 32 + 16, s[r][1]); }
}

SS_T256 static void gram_tile256(const gram_chunk *g, ptrdiff_t ii, ptrdiff_t jj, float *acc /* 4 x 16 */) {
    __m256 s[4][2];
    for (int r = 0; r < 4; r++) { s[r][0] = _mm256_setzero_ps(); s[r][1] = _mm256_setzero_ps(); }
    for (ptrdiff_t t = 0; t < g->tc; t++) {
        const float *a = g->ap + t * g->lda + ii, *b = g->bp + t * g->ldb + jj;
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        for (int r = 0; r < 4; r++) {
            const __m256 av = _mm256_set1_ps(a[r]);
            s[r][0] = _mm256_fmadd_ps(av, b0, s[r][0]);
            s[r][1] = _mm256_fmadd_ps(av, b1, s[r][1]);
        }
    }
    for (int r = 0; r < 4; r++) { _mm256_storeu_ps(acc + r * 16, s[r][0]); _mm256_storeu_ps(acc + r * 16 + 8, s[r][1]); }
}
#endif

/* Rows t0..t0+tc of x's columns [c0, c0 + width) (zero past cols) into p (tc x ld). */
static void gram_pack(const float *x, ptrdiff_t ldx, ptrdiff_t t0, ptrdiff_t tc, ptrdiff_t c0, ptrdiff_t cols,
                      ptrdiff_t ld, float *p) {
    const ptrdiff_t n = ss_max(0, ss_min(ld, cols - c0));
    for (ptrdiff_t t = 0; t < tc; t++) {
        memcpy(p + t * ld, x + (t0 + t) * ldx + c0, (size_t)n * sizeof(float));
        memset(p + t * ld + n, 0, (size_t)(ld - n) * sizeof(float));
    }
}

ss_status ss_gram_accumulate(ss_isa isa, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                       ptrdiff_t tokens, ptrdiff_t cols_b, ptrdiff_t row_begin, ptrdiff_t row_end,
                       int upper_only, double *out, ptrdiff_t ldo) {
    isa = ss_clamp_isa(isa);
    if (row_begin < 0 || cols_b < 0 || tokens < 0) return SS_ERR_ARGUMENT;
    if (row_end <= row_begin || cols_b == 0 || tokens == 0) return SS_OK;
    const int ri = isa == SS_ISA_AVX512 ? 8 : 4, cj = isa == SS_ISA_AVX512 ? 32 : 16;
    const ptrdiff_t j0 = upper_only ? row_begin : 0;
    const ptrdiff_t ni = ss_ceil_div(row_end - row_begin, ri) * ri, nj = ss_ceil_div(cols_b - j0, cj) * cj;
    float *ap = malloc((size_t)(GRAM_CHUNK * (ni + nj)) * sizeof(float));
    if (!ap) return SS_ERR_NO_MEMORY;
    float *bp = ap + GRAM_CHUNK * ni, acc[256];
    for (ptrdiff_t t0 = 0; t0 < tokens; t0 += GRAM_CHUNK) {
        const gram_chunk g = {ap, bp, ni, nj, ss_min(GRAM_CHUNK, tokens - t0)};
        gram_pack(a, lda, t0, g.tc, row_begin, row_end, ni, ap);
        gram_pack(b, ldb, t0, g.tc, j0, cols_b, nj, bp);
        for (ptrdiff_t ii = 0; ii < ni; ii += ri) {
            const ptrdiff_t i = row_begin + ii;
            const ptrdiff_t jstart = upper_only ? (i - j0) / cj * cj : 0;
            for (ptrdiff_t jj = jstart; jj < nj; jj += cj) {
#ifdef SS_X86
                if (isa == SS_ISA_AVX512) gram_tile512(&g, ii, jj, acc);
                else if (isa == SS_ISA_AVX2) gram_tile256(&g, ii, jj, acc);
                else gram_tile_portable(&g, ii, jj, acc);
#else
                gram_tile_portable(&g, ii, jj, acc);
#endif
                gram_add(acc, ri, cj, i, j0 + jj, row_end, cols_b, upper_only, out, ldo);
            }
        }
    }
    free(ap);
    return SS_OK;
}

void ss_gram_mirror(double *h, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t j = 0; j < i; j++) h[i * n + j] = h[j * n + i];
}

/* ------------------------------------------------------------------------------------------ */
/* The inverse-Hessian factor                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Dead inputs and damping; 0 when every entry is finite, else -1. */
static int obs_damp(double *h, ptrdiff_t n, double damp, uint8_t *dead) {
    double mean = 0.0;
    for (ptrdiff_t j = 0; j < n; j++) {
        dead[j] = h[j * n + j] == 0.0;
        if (dead[j]) h[j * n + j] = 1.0;
        mean += h[j * n + j];
    }
    mean /= (double)n;
    for (ptrdiff_t j = 0; j < n; j++) h[j * n + j] += damp * mean;
    for (ptrdiff_t k = 0; k < n * n; k++)
        if (!isfinite(h[k])) return -1;
    return 0;
}

ss_status ss_obs_prepare(double *h, ptrdiff_t n, double damp, uint8_t *dead) {
    if (n <= 0) return n == 0 ? SS_OK : SS_ERR_ARGUMENT;
    if (obs_damp(h, n, damp, dead) != 0) return SS_ERR_ARGUMENT;
    double *g = malloc((size_t)(2 * n * n) * sizeof(double));
    if (!g) return SS_ERR_NO_MEMORY;
    double *m = g + n * n, trace = 0.0;
    for (ptrdiff_t i = 0; i < n; i++) {          /* G = J H J */
        trace += h[i * n + i];
        for (ptrdiff_t j = 0; j < n; j++) g[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)];
    }
    ss_dcholesky(g, n, 1e-12 * trace / (double)n);   /* G = L L^T */
    ss_dlower_inverse(g, n, m);                       /* M = L^-1 */
    for (ptrdiff_t i = 0; i < n; i++)                 /* U = J M J: upper, H^-1 = U^T U */
        for (ptrdiff_t j = 0; j < n; j++) h[i * n + j] = m[(n - 1 - i) * n + (n - 1 - j)];
    free(g);
    return SS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* The SparseGPT sweep                                                                          */
/* ------------------------------------------------------------------------------------------ */

enum { OBS_ROWS = 8 };   /* rows swept together, so each row of U is read once per tile */

/* Marks (mask 1 = keep) the n of m entries of w[0..m) with the largest w^2 / d^2 (d = diag of U
 * at those columns); ties keep the later column. */
static void obs_choose(const double *w, const double *u, ptrdiff_t cols, ptrdiff_t c0, int n, int m, uint8_t *mask) {
    double s[256];
    for (int k = 0; k < m; k++) {
        const double d = u[(c0 + k) * cols + c0 + k];
        s[k] = w[k] * w[k] / (d * d);
    }
    for (int k = 0; k < m; k++) {
        int below = 0;   /* entries pruned before k: smaller, or equal and earlier */
        for (int l = 0; l < m; l++) below += s[l] < s[k] || (s[l] == s[k] && l < k);
        mask[k] = below >= m - n;
    }
}

/* What one sweep does at each column: prune (choose n of m, or follow a mask) or quantize. */
typedef struct {
    const ss_obs_params *prune;          /* pruning; NULL when quantizing */
    const ss_obs_quant_params *quant;    /* quantizing; NULL when pruning */
    ptrdiff_t block;                     /* lazy-update width */
    ptrdiff_t groups;                    /* scales per row (quantizing) */
    float *scales;                       /* the tile's scales, nr x groups (quantizing) */
    int8_t *q;                           /* the tile's int8 values, stride ldq (quantizing) */
    ptrdiff_t ldq;
} obs_sweep;

/* Symmetric int8 scale of w[0..count) over the kept entries (mask 1): absmax / 127, 1 when 0. */
static float obs_scale(const double *w, const uint8_t *mask, ptrdiff_t count) {
    double absmax = 0.0;
    for (ptrdiff_t c = 0; c < count; c++)
        if (mask[c]) absmax = fmax(absmax, fabs(w[c]));
    const float scale = (float)(absmax / 127.0);
    return scale > 0.0f && isfinite(scale * 127.0f) ? scale : 1.0f;
}

/* The value column i of tile row r ends at: 0 when pruned, the nearest int8 level when quantized
 * (recorded in q), itself when it is a free column. Group scales are set at each group's start. */
static double obs_target(const obs_sweep *s, const double *w, const uint8_t *mask, ptrdiff_t cols, int r, ptrdiff_t i) {
    const uint8_t *row_mask = mask + r * cols;
    if (!s->quant) return row_mask[i] ? w[i] : 0.0;
    const ss_obs_quant_params *p = s->quant;
    const ptrdiff_t qcols = cols - p->free_cols;
    if (i >= qcols) return w[i];
    if (p->group > 0 && i % p->group == 0)
        s->scales[r * s->groups + i / p->group] = obs_scale(w + i, row_mask + i, ss_min(p->group, qcols - i));
    int8_t *q = s->q + r * s->ldq + i;
    if (!row_mask[i]) { *q = 0; return 0.0; }
    const double scale = s->scales[r * s->groups + (p->group > 0 ? i / p->group : 0)];
    const double level = rint(w[i] / scale);
    *q = (int8_t)(level > 127.0 ? 127 : level < -127.0 ? -127 : (int)level);
    return (double)*q * scale;
}

/* One lazy block [b0, b1) of a tile of nr rows (wt: nr x cols doubles, err: nr x block). */
static void obs_block(ss_isa isa, const obs_sweep *s, const double *u, ptrdiff_t cols, ptrdiff_t b0, ptrdiff_t b1,
                      double *wt, double *err, int nr, uint8_t *mask /* row 0 of the tile */) {
    const ss_obs_params *p = s->prune;
    for (ptrdiff_t i = b0; i < b1; i++) {
        if (p && !p->fixed_mask && (i - b0) % p->m == 0)
            for (int r = 0; r < nr; r++) obs_choose(wt + r * cols + i, u, cols, i, p->n, p->m, mask + r * cols + i);
        const double d = u[i * cols + i];
        for (int r = 0; r < nr; r++) {
            double *w = wt + r * cols;
            const double target = obs_target(s, w, mask, cols, r, i);
            const double e = (w[i] - target) / d;
            err[r * s->block + (i - b0)] = e;
            w[i] = target;
            if (e == 0.0) continue;
            ss_daxpy(isa, b1 - i - 1, -e, u + i * cols + i + 1, w + i + 1);
        }
    }
    if (b1 >= cols) return;
    for (ptrdiff_t k = b0; k < b1; k++)          /* the block's errors onto every later column */
        for (int r = 0; r < nr; r++) {
            const double e = err[r * s->block + (k - b0)];
            if (e != 0.0) ss_daxpy(isa, cols - b1, -e, u + k * cols + b1, wt + r * cols + b1);
        }
}

/* Loads rows [r0, r0 + nr) of w into the double tile (dead inputs zeroed). */
static void obs_load(const float *w, ptrdiff_t ldw, ptrdiff_t r0, int nr, ptrdiff_t cols, const uint8_t *dead, double *wt) {
    for (int r = 0; r < nr; r++)
        for (ptrdiff_t c = 0; c < cols; c++)
            wt[r * cols + c] = dead && dead[c] ? 0.0 : (double)w[(r0 + r) * ldw + c];
}

ss_status ss_obs_prune(ss_isa isa, const ss_obs_params *p, const double *u, ptrdiff_t cols, const uint8_t *dead,
                 float *w, ptrdiff_t ldw, ptrdiff_t row_begin, ptrdiff_t row_end, uint8_t *mask) {
    isa = ss_clamp_isa(isa);
    if (p->n < 1 || p->m < p->n || p->m > 256 || p->block < p->m || p->block % p->m != 0) return SS_ERR_ARGUMENT;
    if ((!p->fixed_mask && cols % p->m != 0) || row_begin < 0 || cols < 0) return SS_ERR_ARGUMENT;
    double *wt = malloc((size_t)(OBS_ROWS * (cols + p->block)) * sizeof(double));
    if (!wt) return SS_ERR_NO_MEMORY;
    double *err = wt + OBS_ROWS * cols;
    const obs_sweep s = {p, NULL, p->block, 0, NULL, NULL, 0};
    for (ptrdiff_t r0 = row_begin; r0 < row_end; r0 += OBS_ROWS) {
        const int nr = (int)ss_min(OBS_ROWS, row_end - r0);
        obs_load(w, ldw, r0, nr, cols, dead, wt);
        for (ptrdiff_t b0 = 0; b0 < cols; b0 += p->block)
            obs_block(isa, &s, u, cols, b0, ss_min(b0 + p->block, cols), wt, err, nr, mask + r0 * cols);
        for (int r = 0; r < nr; r++)
            for (ptrdiff_t c = 0; c < cols; c++)
                w[(r0 + r) * ldw + c] = mask[(r0 + r) * cols + c] ? (float)wt[r * cols + c] : 0.0f;
    }
    free(wt);
    return SS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* The GPTQ sweep: the same column sweep with int8 rounding in place of pruning                 */
/* ------------------------------------------------------------------------------------------ */

ptrdiff_t ss_obs_quant_groups(const ss_obs_quant_params *p, ptrdiff_t cols) {
    const ptrdiff_t qcols = cols - p->free_cols;
    return qcols <= 0 ? 0 : p->group > 0 ? ss_ceil_div(qcols, p->group) : 1;
}

ss_status ss_obs_quantize(ss_isa isa, const ss_obs_quant_params *p, const double *u, ptrdiff_t cols, const uint8_t *dead,
                          float *w, ptrdiff_t ldw, ptrdiff_t row_begin, ptrdiff_t row_end, int8_t *q, ptrdiff_t ldq,
                          float *scales) {
    isa = ss_clamp_isa(isa);
    const ptrdiff_t qcols = cols - p->free_cols, groups = ss_obs_quant_groups(p, cols);
    if (p->group < 0 || p->free_cols < 0 || qcols <= 0 || ldq < qcols || ldw < cols || row_begin < 0) return SS_ERR_ARGUMENT;
    const ptrdiff_t block = p->group > 0 ? p->group * ss_max(1, 128 / p->group) : 128;   /* groups never straddle blocks */
    double *wt = malloc((size_t)(OBS_ROWS * (cols + block)) * sizeof(double));
    uint8_t *keep = malloc((size_t)(OBS_ROWS * cols));
    if (!wt || !keep) { free(wt); free(keep); return SS_ERR_NO_MEMORY; }
    double *err = wt + OBS_ROWS * cols;
    for (ptrdiff_t r0 = row_begin; r0 < row_end; r0 += OBS_ROWS) {
        const int nr = (int)ss_min(OBS_ROWS, row_end - r0);
        obs_load(w, ldw, r0, nr, cols, dead, wt);
        for (int r = 0; r < nr; r++) {
            for (ptrdiff_t c = 0; c < cols; c++) keep[r * cols + c] = p->mask ? p->mask[(r0 + r) * cols + c] : 1;
            if (p->group == 0) scales[(r0 + r) * groups] = obs_scale(wt + r * cols, keep + r * cols, qcols);
        }
        const obs_sweep s = {NULL, p, block, groups, scales + r0 * groups, q + r0 * ldq, ldq};
        for (ptrdiff_t b0 = 0; b0 < cols; b0 += block)
            obs_block(isa, &s, u, cols, b0, ss_min(b0 + block, cols), wt, err, nr, keep);
        for (int r = 0; r < nr; r++)
            for (ptrdiff_t c = 0; c < cols; c++) w[(r0 + r) * ldw + c] = (float)wt[r * cols + c];
    }
    free(wt);
    free(keep);
    return SS_OK;
}
