/*
 * bf16-weight linear layers (layout and levels in include/bfloat16.h): AMX tiles (amx.c) for calls
 * of 8 rows or more on the AMX level, `vdpbf16ps` on the dot-product level, weights widened to fp32
 * in registers elsewhere. Driver as in dense.c.
 */
#include "bfloat16.h"
#include "internal.h"
#include <math.h>
#include <string.h>

#define SS_T512BF __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

enum { BF_MR = 8, BF_NP = 3, BF_NP_GEMV = 8, BF_MR_C = 4, BF_MR_256 = 4, BF_NP_256 = 2 };

static ptrdiff_t pairs_of(ptrdiff_t k) { return (k + 1) / 2; }

ptrdiff_t ss_bf16_packed_count(ptrdiff_t n, ptrdiff_t k) {
    return n <= 0 || k <= 0 ? 0 : ss_ceil_div(n, SS_PANEL) * SS_PANEL * pairs_of(k) * 2;
}

uint16_t ss_bf16_from_float(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if (isnan(x)) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float bf16_to_float(uint16_t b) {
    const uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Packs N x K values (stride ldw) given as bf16 bits (bits) or floats rounded here (floats). */
static int pack_rows(const uint16_t *bits, const float *floats, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldw, uint16_t *wp) {
    if (n <= 0 || k <= 0 || ldw < k) return SS_ERR_ARGUMENT;
    const ptrdiff_t pairs = pairs_of(k);
    memset(wp, 0, (size_t)ss_bf16_packed_count(n, k) * sizeof(uint16_t));
    for (ptrdiff_t row = 0; row < n; row++) {
        const ptrdiff_t p = row / SS_PANEL, j = row % SS_PANEL;
        for (ptrdiff_t c = 0; c < k; c++) {
            if (floats && !isfinite(floats[row * ldw + c])) return SS_ERR_ARGUMENT;
            const uint16_t v = floats ? ss_bf16_from_float(floats[row * ldw + c]) : bits[row * ldw + c];
            wp[((p * pairs + c / 2) * SS_PANEL + j) * 2 + c % 2] = v;
        }
    }
    return SS_OK;
}

int ss_bf16_pack_bits(const uint16_t *w, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldw, uint16_t *wp) {
    return pack_rows(w, NULL, n, k, ldw, wp);
}

int ss_bf16_pack(const float *w, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldw, uint16_t *wp) {
    return pack_rows(NULL, w, n, k, ldw, wp);
}

/* One tile: rows x[0..mr) (fp32, stride ldx; xb: the same rows as bf16 pairs, stride ldb
 * uint16, dot level only), panels w[0..np) (stride pairs*32 uint16). */
typedef struct {
    const uint16_t *w, *xb;
    const float *x, *bias;
    float *y;
    ptrdiff_t k, ldx, ldb, ldy, cols;
    int relu;
} bf_tile;

typedef void (*bf_tile_fn)(const bf_tile *t);

static void tile_portable(const bf_tile *t, int mr) {
    float acc[BF_MR_C][SS_PANEL];
    memset(acc, 0, sizeof acc);
    for (ptrdiff_t c = 0; c < t->k; c++) {
        const uint16_t *w = t->w + (c / 2) * 2 * SS_PANEL + c % 2;
        for (int i = 0; i < mr; i++) {
            const float xv = t->x[i * t->ldx + c];
            for (int j = 0; j < SS_PANEL; j++) acc[i][j] += xv * bf16_to_float(w[2 * j]);
        }
    }
    for (int i = 0; i < mr; i++)
        for (ptrdiff_t j = 0; j < t->cols; j++) {
            float v = acc[i][j] + (t->bias ? t->bias[j] : 0.0f);
            t->y[i * t->ldy + j] = t->relu && v < 0.0f ? 0.0f : v;
        }
}

#ifdef SS_X86
SS_T512BF SS_AI void store512(const bf_tile *t, __m512 acc[BF_MR][BF_NP_GEMV], const int MR, const int NP) {
    for (int j = 0; j < NP; j++) {
        const ptrdiff_t valid = t->cols - j * SS_PANEL;
        const __mmask16 m = valid >= SS_PANEL ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1u);
        const __m512 b = t->bias ? _mm512_maskz_loadu_ps(m, t->bias + j * SS_PANEL) : _mm512_setzero_ps();
        for (int i = 0; i < MR; i++) {
            __m512 v = _mm512_add_ps(acc[i][j], b);
            if (t->relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);
            _mm512_mask_storeu_ps(t->y + i * t->ldy + j * SS_PANEL, m, v);
        }
    }
}

/* DOT: vdpbf16ps of broadcast input pairs (bf16) with the packed weight pairs. */
SS_T512BF SS_AI void tile_dot(const bf_tile *t, const int MR, const int NP) {
    __m512 acc[BF_MR][BF_NP_GEMV];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NP; j++) acc[i][j] = _mm512_setzero_ps();
    const ptrdiff_t pairs = pairs_of(t->k), ps = pairs * 2 * SS_PANEL;
    for (ptrdiff_t q = 0; q < pairs; q++) {
        __m512i w[BF_NP_GEMV];
        for (int j = 0; j < NP; j++) w[j] = _mm512_loadu_si512(t->w + j * ps + q * 2 * SS_PANEL);
        for (int i = 0; i < MR; i++) {
            int32_t pair;
            memcpy(&pair, t->xb + i * t->ldb + 2 * q, 4);
            const __m512bh xb = (__m512bh)_mm512_set1_epi32(pair);
            for (int j = 0; j < NP; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xb, (__m512bh)w[j]);
        }
    }
    store512(t, acc, MR, NP);
}

/* AVX-512 without BF16: the even input's weight is the lane shifted left 16, the odd one's the
 * lane with its low half cleared; fp32 FMAs with the fp32 inputs. */
SS_T512BF SS_AI void tile_widen512(const bf_tile *t, const int MR, const int NP) {
    __m512 acc[BF_MR][BF_NP_GEMV];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NP; j++) acc[i][j] = _mm512_setzero_ps();
    const ptrdiff_t pairs = pairs_of(t->k), full = t->k / 2, ps = pairs * 2 * SS_PANEL;
    const __m512i high = _mm512_set1_epi32((int)0xFFFF0000u);
    for (ptrdiff_t q = 0; q < pairs; q++) {
        __m512 lo[BF_NP_GEMV], hi[BF_NP_GEMV];
        for (int j = 0; j < NP; j++) {
            const __m512i w = _mm512_loadu_si512(t->w + j * ps + q * 2 * SS_PANEL);
            lo[j] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
            hi[j] = _mm512_castsi512_ps(_mm512_and_si512(w, high));
        }
        for (int i = 0; i < MR; i++) {
            const float *xi = t->x + i * t->ldx + 2 * q;
            const __m512 x0 = _mm512_set1_ps(xi[0]);
            for (int j = 0; j < NP; j++) acc[i][j] = _mm512_fmadd_ps(lo[j], x0, acc[i][j]);
            if (q < full) {
                const __m512 x1 = _mm512_set1_ps(xi[1]);
                for (int j = 0; j < NP; j++) acc[i][j] = _mm512_fmadd_ps(hi[j], x1, acc[i][j]);
            }
        }
    }
    store512(t, acc, MR, NP);
}

#define DEF512(MR, NP) \
    SS_T512BF static void dot_##MR##_##NP(const bf_tile *t) { tile_dot(t, MR, NP); } \
    SS_T512BF static void wid_##MR##_##NP(const bf_tile *t) { tile_widen512(t, MR, NP); }
SS_TILES_8X3(DEF512)
static const bf_tile_fn dot512[BF_NP_GEMV + 1][BF_MR + 1] = SS_TILE_TABLE_8X3(dot);
static const bf_tile_fn widen512[BF_NP_GEMV + 1][BF_MR + 1] = SS_TILE_TABLE_8X3(wid);

SS_T256 SS_AI void tile256(const bf_tile *t, const int MR, const int NP) {
    __m256 acc[BF_MR_256][2 * BF_NP_256];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < 2 * NP; v++) acc[i][v] = _mm256_setzero_ps();
    const ptrdiff_t pairs = pairs_of(t->k), full = t->k / 2, ps = pairs * 2 * SS_PANEL;
    const __m256i high = _mm256_set1_epi32((int)0xFFFF0000u);
    for (ptrdiff_t q = 0; q < pairs; q++) {
        __m256 lo[2 * BF_NP_256], hi[2 * BF_NP_256];
        for (int v = 0; v < 2 * NP; v++) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)(t->w + (v / 2) * ps + q * 2 * SS_PANEL + (v % 2) * 16));
            lo[v] = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
            hi[v] = _mm256_castsi256_ps(_mm256_and_si256(w, high));
        }
        for (int i = 0; i < MR; i++) {
            const float *xi = t->x + i * t->ldx + 2 * q;
            const __m256 x0 = _mm256_broadcast_ss(xi);
            for (int v = 0; v < 2 * NP; v++) acc[i][v] = _mm256_fmadd_ps(lo[v], x0, acc[i][v]);
            if (q < full) {
                const __m256 x1 = _mm256_broadcast_ss(xi + 1);
                for (int v = 0; v < 2 * NP; v++) acc[i][v] = _mm256_fmadd_ps(hi[v], x1, acc[i][v]);
            }
        }
    }
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int v = 0; v < 2 * NP; v++) {
        const ptrdiff_t valid = t->cols - v * 8;
        if (valid <= 0) break;
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid >= 8 ? 8 : (int)valid), lanes);
        const __m256 b = t->bias ? _mm256_maskload_ps(t->bias + v * 8, m) : _mm256_setzero_ps();
        for (int i = 0; i < MR; i++) {
            __m256 y = _mm256_add_ps(acc[i][v], b);
            if (t->relu) y = _mm256_max_ps(_mm256_setzero_ps(), y);
            _mm256_maskstore_ps(t->y + i * t->ldy + v * 8, m, y);
        }
    }
}

#define DEF256(MR, NP) SS_T256 static void avx2_##MR##_##NP(const bf_tile *t) { tile256(t, MR, NP); }
DEF256(1, 1) DEF256(2, 1) DEF256(3, 1) DEF256(4, 1) DEF256(1, 2) DEF256(2, 2)
static const bf_tile_fn avx2[BF_NP_256 + 1][BF_MR_256 + 1] = {
    { NULL }, { NULL, avx2_1_1, avx2_2_1, avx2_3_1, avx2_4_1 }, { NULL, avx2_1_2, avx2_2_2, NULL, NULL },
};

/* Rows of x as bf16 pairs (nearest even), the odd tail padded with 0. */
SS_T512BF static void round_rows_512(const float *x, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t k, uint16_t *xb, ptrdiff_t ldb) {
    for (ptrdiff_t i = 0; i < rows; i++) {
        for (ptrdiff_t c = 0; c < k; c += 16) {
            const __mmask16 m = (__mmask16)(k - c >= 16 ? 0xFFFF : (1u << (k - c)) - 1u);
            const __m256bh b = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i * ldx + c));
            _mm256_mask_storeu_epi16(xb + i * ldb + c, m, (__m256i)b);
        }
        if (k % 2) xb[i * ldb + k] = 0;
    }
}

/* The AMX level: the rows of X rounded to bf16 in chunks of ~256 KB (a multiple of 16 rows) and run
 * on tiles (ss_bf16_amx_rows); returns the rows done (all, or 0 where AMX does not apply: fewer
 * than SS_AMX_MIN_ROWS rows, or K2 not a multiple of 32), -1 out of memory. */
static ptrdiff_t amx_rows(const uint16_t *wp, const float *bias, ptrdiff_t k, const float *x, ptrdiff_t ldx, float *y,
                          ptrdiff_t ldy, ptrdiff_t m, ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end) {
    const ptrdiff_t ldb = pairs_of(k) * 2;
    if (!ss_amx_usable() || ldb % 32 != 0 || m < SS_AMX_MIN_ROWS) return 0;
    const ptrdiff_t chunk = ss_min(m, ss_max(16, 131072 / ldb / 16 * 16));
    uint16_t *xb = (uint16_t *)ss_thread_scratch(SS_SCRATCH_QUANT, (size_t)(chunk * ldb + 1) / 2 + 16);
    if (!xb) return -1;
    for (ptrdiff_t r0 = 0; r0 < m; r0 += chunk) {
        const ptrdiff_t count = ss_min(chunk, m - r0);
        round_rows_512(x + r0 * ldx, ldx, count, k, xb, ldb);
        ss_bf16_amx_rows(wp, bias, k, xb, count, y + r0 * ldy, ldy, act, n_begin, n_end);
    }
    return m;
}
#endif

/* One call's operands; bf_visit fills in a tile's pointers, bf_chunk rounds a chunk of X. */
typedef struct {
    ss_qisa isa;
    ptrdiff_t r0;      /* first row of the current chunk (xb holds it) */
    bf_tile call;      /* pointers at row 0, column 0; xb at the chunk's first row */
} bf_job;

static void bf_chunk(void *ctx, ptrdiff_t r0, ptrdiff_t rows) {
    bf_job *job = ctx;
    job->r0 = r0;
#ifdef SS_X86
    if (job->isa >= SS_QISA_AVX512_DOT)
        round_rows_512(job->call.x + r0 * job->call.ldx, job->call.ldx, rows, job->call.k, (uint16_t *)job->call.xb, job->call.ldb);
#else
    (void)rows;
#endif
}

static void bf_visit(void *ctx, ptrdiff_t row, int mr, ptrdiff_t panel, int np, ptrdiff_t col0, ptrdiff_t cols) {
    const bf_job *job = ctx;
    bf_tile t = job->call;
    t.w += panel * t.ldb * SS_PANEL;
    t.xb = t.xb ? t.xb + (row - job->r0) * t.ldb : NULL;
    t.x += row * t.ldx;
    t.y += row * t.ldy + col0;
    t.bias = t.bias ? t.bias + col0 : NULL;
    t.cols = cols;
#ifdef SS_X86
    if (job->isa >= SS_QISA_AVX512_DOT) { dot512[np][mr](&t); return; }
    if (job->isa == SS_QISA_AVX512) { widen512[np][mr](&t); return; }
    if (job->isa == SS_QISA_AVX2) { avx2[np][mr](&t); return; }
#endif
    tile_portable(&t, mr);
}

int ss_bf16_gemm_cols_isa(ss_qisa isa, const uint16_t *wp, const float *bias, ptrdiff_t n, ptrdiff_t k,
                          const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t m,
                          ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end) {
    if (ss_check_columns(n, k, m, n_begin, n_end) != SS_OK || ldx < k) return SS_ERR_ARGUMENT;
    if (m == 0 || n_begin == n_end) return SS_OK;
    isa = ss_clamp_qisa(isa);
#ifdef SS_X86
    if (isa >= SS_QISA_AMX) {
        const ptrdiff_t done = amx_rows(wp, bias, k, x, ldx, y, ldy, m, act, n_begin, n_end);
        if (done < 0) return SS_ERR_NO_MEMORY;
        x += done * ldx;
        y += done * ldy;
        m -= done;
        isa = SS_QISA_AVX512_DOT;
        if (m == 0) return SS_OK;
    }
#endif
    ss_tile_shape shape = { BF_MR_C, 1, 1 };
    if (isa >= SS_QISA_AVX512) shape = (ss_tile_shape){ BF_MR, BF_NP, BF_NP_GEMV };
    else if (isa == SS_QISA_AVX2) shape = (ss_tile_shape){ BF_MR_256, 1, BF_NP_256 };
    const ptrdiff_t ldb = pairs_of(k) * 2;
    const ptrdiff_t chunk = ss_max(shape.max_rows, (65536 / k) / shape.max_rows * shape.max_rows);
    uint16_t *xb = NULL;
    if (isa >= SS_QISA_AVX512_DOT) {
        xb = (uint16_t *)ss_thread_scratch(SS_SCRATCH_QUANT, (size_t)(ss_min(chunk, m) * ldb + 1) / 2 + 16);
        if (!xb) return SS_ERR_NO_MEMORY;
    }
    bf_job job = {
        .isa = isa,
        .call = { .w = wp, .xb = xb, .x = x, .bias = bias, .y = y, .k = k, .ldx = ldx, .ldb = ldb, .ldy = ldy,
                  .relu = act == SS_ACT_RELU },
    };
    const ss_tile_visitor visitor = { .ctx = &job, .chunk_begin = bf_chunk, .tile = bf_visit };
    ss_panel_tiles(shape, m, chunk, n_begin, n_end, ss_qisa_base(isa), act, y, ldy, &visitor);
    return SS_OK;
}
