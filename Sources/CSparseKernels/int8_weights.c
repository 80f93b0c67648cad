/*
 * Weight-only int8 linear layers ("w8"): int8 weights in 16-row panels (wp[p][K][16]) with
 * per-row or per-group fp32 scales, fp32 activations. Each step loads 16 weights (16 bytes),
 * widens them to fp32 in registers (vpmovsxbd + vcvtdq2ps; times the group scale when grouped)
 * and runs fp32 FMAs against broadcast inputs, so a GEMV streams a quarter of the fp32 bytes.
 * Per-row scales are applied once in the epilogue. Tiles as in dense.c: AVX-512 8 rows x 3
 * panels (GEMV 8 panels), AVX2 4 rows x 1 panel (GEMV 2), portable 4 x 1.
 */
#include "int8.h"
#include "internal.h"
#include <string.h>

enum { W8_MR = 8, W8_NP = 3, W8_NP_GEMV = 8, W8_MR_C = 4, W8_MR_256 = 4, W8_NP_256 = 2 };

static ptrdiff_t groups_of(ptrdiff_t k, ptrdiff_t group) { return group == 0 ? 1 : ss_ceil_div(k, group); }

ptrdiff_t ss_w8_packed_bytes(ptrdiff_t n, ptrdiff_t k) { return n <= 0 || k <= 0 ? 0 : ss_ceil_div(n, SS_PANEL) * SS_PANEL * k; }

ptrdiff_t ss_w8_scale_count(ptrdiff_t n, ptrdiff_t k, ptrdiff_t group) {
    if (n <= 0 || k <= 0 || group < 0) return 0;
    return ss_ceil_div(n, SS_PANEL) * SS_PANEL * groups_of(k, group);
}

int ss_w8_pack(const int8_t *q, const float *scales, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldq, ptrdiff_t group,
               int8_t *wp, float *sp) {
    if (n <= 0 || k <= 0 || ldq < k || group < 0) return SS_ERR_ARGUMENT;
    const ptrdiff_t G = groups_of(k, group), rows = ss_ceil_div(n, SS_PANEL) * SS_PANEL;
    memset(wp, 0, (size_t)ss_w8_packed_bytes(n, k));
    for (ptrdiff_t row = 0; row < rows; row++) {
        const ptrdiff_t p = row / SS_PANEL, j = row % SS_PANEL;
        for (ptrdiff_t c = 0; row < n && c < k; c++) wp[(p * k + c) * SS_PANEL + j] = q[row * ldq + c];
        for (ptrdiff_t g = 0; g < G; g++) sp[(p * G + g) * SS_PANEL + j] = row < n ? scales[row * G + g] : 0.0f;
    }
    return SS_OK;
}

/* One tile: rows x[0..mr), panels w[0..np) (stride k*16 bytes) with scales s (panel stride G*16). */
typedef struct {
    const int8_t *w;
    const float *s, *x, *bias;
    float *y;
    ptrdiff_t k, width, groups, ldx, ldy, cols;
    int relu;
} w8_tile;

typedef void (*w8_tile_fn)(const w8_tile *t);

static void tile_portable(const w8_tile *t, int mr, int grouped) {
    float acc[W8_MR_C][SS_PANEL];
    memset(acc, 0, sizeof acc);
    for (ptrdiff_t g = 0; g < t->groups; g++) {
        const ptrdiff_t k0 = g * t->width, k1 = ss_min(t->k, k0 + t->width);
        for (ptrdiff_t kk = k0; kk < k1; kk++) {
            float w[SS_PANEL];
            for (int j = 0; j < SS_PANEL; j++)
                w[j] = grouped ? (float)t->w[kk * SS_PANEL + j] * t->s[g * SS_PANEL + j] : (float)t->w[kk * SS_PANEL + j];
            for (int i = 0; i < mr; i++) {
                const float xv = t->x[i * t->ldx + kk];
                for (int j = 0; j < SS_PANEL; j++) acc[i][j] += xv * w[j];
            }
        }
    }
    for (int i = 0; i < mr; i++)
        for (ptrdiff_t j = 0; j < t->cols; j++) {
            float v = grouped ? acc[i][j] : acc[i][j] * t->s[j];
            if (t->bias) v += t->bias[j];
            t->y[i * t->ldy + j] = t->relu && v < 0.0f ? 0.0f : v;
        }
}

#ifdef SS_X86
SS_T512 SS_AI __m512 widen512(const int8_t *p) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p))); }

SS_T512 SS_AI void tile512(const w8_tile *t, const int MR, const int NP, const int GROUPED) {
    __m512 acc[W8_MR][W8_NP_GEMV];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NP; j++) acc[i][j] = _mm512_setzero_ps();
    const ptrdiff_t ps = t->k * SS_PANEL, ss = t->groups * SS_PANEL;
    for (ptrdiff_t g = 0; g < t->groups; g++) {
        const ptrdiff_t k0 = g * t->width, k1 = ss_min(t->k, k0 + t->width);
        __m512 sv[W8_NP_GEMV];
        if (GROUPED)
            for (int j = 0; j < NP; j++) sv[j] = _mm512_loadu_ps(t->s + j * ss + g * SS_PANEL);
        for (ptrdiff_t kk = k0; kk < k1; kk++) {
            __m512 wv[W8_NP_GEMV];
            for (int j = 0; j < NP; j++) {
                wv[j] = widen512(t->w + j * ps + kk * SS_PANEL);
                if (GROUPED) wv[j] = _mm512_mul_ps(wv[j], sv[j]);
            }
            for (int i = 0; i < MR; i++) {
                const __m512 xb = _mm512_set1_ps(t->x[i * t->ldx + kk]);
                for (int j = 0; j < NP; j++) acc[i][j] = _mm512_fmadd_ps(wv[j], xb, acc[i][j]);
            }
        }
    }
    for (int j = 0; j < NP; j++) {
        const ptrdiff_t valid = t->cols - j * SS_PANEL;
        const __mmask16 m = valid >= SS_PANEL ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1u);
        const __m512 s = _mm512_loadu_ps(t->s + j * ss);
        const __m512 b = t->bias ? _mm512_maskz_loadu_ps(m, t->bias + j * SS_PANEL) : _mm512_setzero_ps();
        for (int i = 0; i < MR; i++) {
            __m512 v = GROUPED ? _mm512_add_ps(acc[i][j], b) : _mm512_fmadd_ps(acc[i][j], s, b);
            if (t->relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);
            _mm512_mask_storeu_ps(t->y + i * t->ldy + j * SS_PANEL, m, v);
        }
    }
}

#define DEF512(MR, NP) \
    SS_T512 static void ch512_##MR##_##NP(const w8_tile *t) { tile512(t, MR, NP, 0); } \
    SS_T512 static void gr512_##MR##_##NP(const w8_tile *t) { tile512(t, MR, NP, 1); }
SS_TILES_8X3(DEF512)
static const w8_tile_fn channel512[W8_NP_GEMV + 1][W8_MR + 1] = SS_TILE_TABLE_8X3(ch512);
static const w8_tile_fn grouped512[W8_NP_GEMV + 1][W8_MR + 1] = SS_TILE_TABLE_8X3(gr512);

SS_T256 SS_AI __m256 widen256(const int8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

SS_T256 SS_AI void tile256(const w8_tile *t, const int MR, const int NP, const int GROUPED) {
    __m256 acc[W8_MR_256][2 * W8_NP_256];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < 2 * NP; v++) acc[i][v] = _mm256_setzero_ps();
    const ptrdiff_t ps = t->k * SS_PANEL, ss = t->groups * SS_PANEL;
    for (ptrdiff_t g = 0; g < t->groups; g++) {
        const ptrdiff_t k0 = g * t->width, k1 = ss_min(t->k, k0 + t->width);
        __m256 sv[2 * W8_NP_256];
        if (GROUPED)
            for (int v = 0; v < 2 * NP; v++) sv[v] = _mm256_loadu_ps(t->s + (v / 2) * ss + g * SS_PANEL + (v % 2) * 8);
        for (ptrdiff_t kk = k0; kk < k1; kk++) {
            __m256 wv[2 * W8_NP_256];
            for (int v = 0; v < 2 * NP; v++) {
                wv[v] = widen256(t->w + (v / 2) * ps + kk * SS_PANEL + (v % 2) * 8);
                if (GROUPED) wv[v] = _mm256_mul_ps(wv[v], sv[v]);
            }
            for (int i = 0; i < MR; i++) {
                const __m256 xb = _mm256_broadcast_ss(t->x + i * t->ldx + kk);
                for (int v = 0; v < 2 * NP; v++) acc[i][v] = _mm256_fmadd_ps(wv[v], xb, acc[i][v]);
            }
        }
    }
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int v = 0; v < 2 * NP; v++) {
        const ptrdiff_t valid = t->cols - v * 8;
        if (valid <= 0) break;
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid >= 8 ? 8 : (int)valid), lanes);
        const __m256 s = _mm256_loadu_ps(t->s + (v / 2) * ss + (v % 2) * 8);
        const __m256 b = t->bias ? _mm256_maskload_ps(t->bias + v * 8, m) : _mm256_setzero_ps();
        for (int i = 0; i < MR; i++) {
            __m256 y = GROUPED ? _mm256_add_ps(acc[i][v], b) : _mm256_fmadd_ps(acc[i][v], s, b);
            if (t->relu) y = _mm256_max_ps(_mm256_setzero_ps(), y);
            _mm256_maskstore_ps(t->y + i * t->ldy + v * 8, m, y);
        }
    }
}

#define DEF256(MR, NP) \
    SS_T256 static void ch256_##MR##_##NP(const w8_tile *t) { tile256(t, MR, NP, 0); } \
    SS_T256 static void gr256_##MR##_##NP(const w8_tile *t) { tile256(t, MR, NP, 1); }
DEF256(1, 1) DEF256(2, 1) DEF256(3, 1) DEF256(4, 1) DEF256(1, 2) DEF256(2, 2)
static const w8_tile_fn channel256[W8_NP_256 + 1][W8_MR_256 + 1] = {
    { NULL }, { NULL, ch256_1_1, ch256_2_1, ch256_3_1, ch256_4_1 }, { NULL, ch256_1_2, ch256_2_2, NULL, NULL },
};
static const w8_tile_fn grouped256[W8_NP_256 + 1][W8_MR_256 + 1] = {
    { NULL }, { NULL, gr256_1_1, gr256_2_1, gr256_3_1, gr256_4_1 }, { NULL, gr256_1_2, gr256_2_2, NULL, NULL },
};
#endif

/* One call's operands; w8_visit fills in a tile's pointers. */
typedef struct {
    ss_isa isa;
    int grouped;
    w8_tile call;  /* pointers at row 0, column 0 */
} w8_job;

static void w8_visit(void *ctx, ptrdiff_t row, int mr, ptrdiff_t panel, int np, ptrdiff_t col0, ptrdiff_t cols) {
    const w8_job *job = ctx;
    w8_tile t = job->call;
    t.w += panel * t.k * SS_PANEL;
    t.s += panel * t.groups * SS_PANEL;
    t.x += row * t.ldx;
    t.y += row * t.ldy + col0;
    t.bias = t.bias ? t.bias + col0 : NULL;
    t.cols = cols;
#ifdef SS_X86
    if (job->isa == SS_ISA_AVX512) { (job->grouped ? grouped512 : channel512)[np][mr](&t); return; }
    if (job->isa == SS_ISA_AVX2) { (job->grouped ? grouped256 : channel256)[np][mr](&t); return; }
#endif
    tile_portable(&t, mr, job->grouped);
}

int ss_w8_gemm_cols_isa(ss_isa isa, const int8_t *wp, const float *sp, ptrdiff_t group, const float *bias,
                        ptrdiff_t n, ptrdiff_t k, const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy,
                        ptrdiff_t m, ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end) {
    if (ss_check_columns(n, k, m, n_begin, n_end) != SS_OK || group < 0 || ldx < k) return SS_ERR_ARGUMENT;
    if (m == 0 || n_begin == n_end) return SS_OK;
    isa = ss_clamp_isa(isa);
    ss_tile_shape shape = { W8_MR_C, 1, 1 };
#ifdef SS_X86
    if (isa == SS_ISA_AVX512) shape = (ss_tile_shape){ W8_MR, W8_NP, W8_NP_GEMV };
    else if (isa == SS_ISA_AVX2) shape = (ss_tile_shape){ W8_MR_256, 1, W8_NP_256 };
#endif
    w8_job job = {
        .isa = isa, .grouped = group != 0,
        .call = { .w = wp, .s = sp, .x = x, .bias = bias, .y = y, .k = k, .width = group == 0 ? k : group,
                  .groups = groups_of(k, group), .ldx = ldx, .ldy = ldy, .relu = act == SS_ACT_RELU },
    };
    const ss_tile_visitor visitor = { .ctx = &job, .chunk_begin = NULL, .tile = w8_visit };
    /* row chunks of ~256 KB of X */
    ss_panel_tiles(shape, m, 65536 / k, n_begin, n_end, isa, act, y, ldy, &visitor);
    return SS_OK;
}
