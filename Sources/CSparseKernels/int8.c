/*
 * W8A8 linear layers: int8 weights x per-token int8 activations -> int32, rescaled to fp32 with
 * the bias and activation fused (layout and exactness in include/int8.h).
 *
 * Loop nest as in dense.c: row chunks of X, groups of NP panels, balanced row tiles of MR rows;
 * each tile runs the whole K loop in int32 registers, four inputs per step:
 *   AMX              calls of 8 rows or more on tiles (amx.c), smaller ones as AVX-512 + VNNI;
 *   AVX-512 + VNNI   vpdpbusd (u8 x s8, 4 products per lane), tile 8 rows x 3 panels, GEMV 8 panels;
 *   AVX-512BW, AVX2  the same sums from even/odd bytes widened to 16 bits and vpmaddwd (exact);
 *   portable C       plain int32 loops.
 */
#include "int8.h"
#include "internal.h"
#include <math.h>
#include <string.h>

#define SS_T512DOT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma")))

enum { Q8_PANEL_BYTES = 64, Q8_MR = 8, Q8_NP = 3, Q8_NP_GEMV = 8 };

static ptrdiff_t k4_of(ptrdiff_t k) { return (k + 3) / 4 * 4; }

ptrdiff_t ss_q8_padded_rows(ptrdiff_t n) { return n <= 0 ? 0 : ss_ceil_div(n, SS_PANEL) * SS_PANEL; }
ptrdiff_t ss_q8_packed_bytes(ptrdiff_t n, ptrdiff_t k) { return n <= 0 || k <= 0 ? 0 : ss_q8_padded_rows(n) * k4_of(k); }
ptrdiff_t ss_q8_row_bytes(ptrdiff_t k) { return k <= 0 ? 0 : k4_of(k); }

/* ------------------------------------------------------------------------------------------ */
/* Quantization                                                                                */
/* ------------------------------------------------------------------------------------------ */

static float quantize_span(const float *w, ptrdiff_t count, int8_t *q) {
    float absmax = 0.0f;
    for (ptrdiff_t c = 0; c < count; c++) absmax = fmaxf(absmax, fabsf(w[c]));
    const float scale = absmax > 0.0f ? absmax / 127.0f : 1.0f;
    for (ptrdiff_t c = 0; c < count; c++) {
        const float r = rintf(w[c] / scale);
        q[c] = (int8_t)(r > 127.0f ? 127 : r < -127.0f ? -127 : (int)r);
    }
    return scale;
}

int ss_int8_quantize_weights(const float *w, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldw, ptrdiff_t group,
                             int8_t *q, float *scales) {
    if (n <= 0 || k <= 0 || ldw < k || group < 0) return SS_ERR_ARGUMENT;
    const ptrdiff_t width = group == 0 ? k : group, groups = ss_ceil_div(k, width);
    for (ptrdiff_t row = 0; row < n; row++)
        for (ptrdiff_t c = 0; c < k; c++)
            if (!isfinite(w[row * ldw + c])) return SS_ERR_ARGUMENT;
    for (ptrdiff_t row = 0; row < n; row++)
        for (ptrdiff_t g = 0; g < groups; g++) {
            const ptrdiff_t c0 = g * width, count = ss_min(width, k - c0);
            scales[row * groups + g] = quantize_span(w + row * ldw + c0, count, q + row * k + c0);
        }
    return SS_OK;
}

/* One row: scale = absmax / 127, q = rint(x * (127 / absmax)) + 128 (every level computes exactly
 * this); a non-finite row gets scale NaN (its outputs are NaN, as the fp32 kernels would give). */
static void quantize_row_portable(const float *x, ptrdiff_t k, ptrdiff_t k4, uint8_t *xq, float *scale) {
    float absmax = 0.0f;
    int finite = 1;
    for (ptrdiff_t c = 0; c < k; c++) {
        finite &= isfinite(x[c]) != 0;
        absmax = fmaxf(absmax, fabsf(x[c]));
    }
    memset(xq, 128, (size_t)k4);
    if (!finite) { *scale = NAN; return; }
    if (absmax == 0.0f) { *scale = 0.0f; return; }
    const float inv = 127.0f / absmax;
    *scale = absmax / 127.0f;
    for (ptrdiff_t c = 0; c < k; c++) {
        const float r = rintf(x[c] * inv);
        xq[c] = (uint8_t)((r > 127.0f ? 127 : r < -127.0f ? -127 : (int)r) + 128);
    }
}

#ifdef SS_X86
SS_T512 static void quantize_row_512(const float *x, ptrdiff_t k, ptrdiff_t k4, uint8_t *xq, float *scale) {
    __m512 vmax = _mm512_setzero_ps();
    __mmask16 bad = 0;
    const __m512 inf = _mm512_set1_ps(INFINITY);
    for (ptrdiff_t c = 0; c < k; c += 16) {
        const __mmask16 m = (__mmask16)(k - c >= 16 ? 0xFFFF : (1u << (k - c)) - 1u);
        const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(m, x + c));
        bad |= _mm512_cmp_ps_mask(a, inf, _CMP_NLT_UQ);  /* NaN or infinite */
        vmax = _mm512_max_ps(vmax, a);
    }
    memset(xq, 128, (size_t)k4);
    const float absmax = _mm512_reduce_max_ps(vmax);
    if (bad) { *scale = NAN; return; }
    if (absmax == 0.0f) { *scale = 0.0f; return; }
    const float invs = 127.0f / absmax;
    *scale = absmax / 127.0f;
    const __m512 inv = _mm512_set1_ps(invs);
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127), off = _mm512_set1_epi32(128);
    for (ptrdiff_t c = 0; c < k; c += 16) {
        const __mmask16 m = (__mmask16)(k - c >= 16 ? 0xFFFF : (1u << (k - c)) - 1u);
        __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + c), inv));
        q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), off);
        _mm_mask_storeu_epi8(xq + c, m, _mm512_cvtepi32_epi8(q));
    }
}
#endif

int ss_q8_quantize_rows_isa(ss_qisa isa, const float *x, ptrdiff_t ldx, ptrdiff_t m, ptrdiff_t k,
                            uint8_t *xq, float *xscale) {
    if (m < 0 || k <= 0 || ldx < k) return SS_ERR_ARGUMENT;
    isa = ss_clamp_qisa(isa);
    const ptrdiff_t k4 = k4_of(k);
    for (ptrdiff_t i = 0; i < m; i++) {
#ifdef SS_X86
        if (isa >= SS_QISA_AVX512) { quantize_row_512(x + i * ldx, k, k4, xq + i * k4, xscale + i); continue; }
#endif
        quantize_row_portable(x + i * ldx, k, k4, xq + i * k4, xscale + i);
    }
    return SS_OK;
}

int ss_q8_pack(const int8_t *q, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldq, int8_t *wp, int32_t *correction) {
    if (n <= 0 || k <= 0 || ldq < k) return SS_ERR_ARGUMENT;
    const ptrdiff_t rows = ss_q8_padded_rows(n), quads = k4_of(k) / 4;
    memset(wp, 0, (size_t)ss_q8_packed_bytes(n, k));
    for (ptrdiff_t row = 0; row < rows; row++) {
        int32_t sum = 0;
        const ptrdiff_t p = row / SS_PANEL, j = row % SS_PANEL;
        for (ptrdiff_t c = 0; row < n && c < k; c++) {
            const int8_t v = q[row * ldq + c];
            sum += v;
            wp[(p * quads + c / 4) * Q8_PANEL_BYTES + j * 4 + c % 4] = v;
        }
        correction[row] = 128 * sum;
    }
    return SS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Tiles                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* One register tile: rows x[0..mr) (stride ldx bytes), panels w[0..np) (stride quads*64 bytes),
 * outputs y[0..mr)[0..cols); the per-column arrays start at the tile's first column. */
typedef struct {
    const int8_t *w;
    const uint8_t *x;
    float *y;
    const float *bias, *wscale, *xscale;
    const int32_t *correction;
    ptrdiff_t quads, ldx, ldy, cols;
    int relu;
} q8_tile;

typedef void (*q8_tile_fn)(const q8_tile *t);

static inline int32_t load_quad(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Scalar epilogue shared by the portable tile: same operation order as the vector ones. */
static inline float rescale(int32_t acc, int32_t correction, float xs, float ws, const float *bias, ptrdiff_t j, int relu) {
    const float s = xs * ws;
    float v = (float)(acc - correction) * s;
    if (bias) v = v + bias[j];
    return relu && v < 0.0f ? 0.0f : v;
}

static void tile_portable(const q8_tile *t, int mr) {
    int32_t acc[Q8_MR][SS_PANEL];
    memset(acc, 0, sizeof acc);
    for (ptrdiff_t q = 0; q < t->quads; q++) {
        const int8_t *w = t->w + q * Q8_PANEL_BYTES;
        for (int i = 0; i < mr; i++) {
            const uint8_t *x = t->x + i * t->ldx + 4 * q;
            for (int j = 0; j < SS_PANEL; j++)
                acc[i][j] += x[0] * w[4 * j] + x[1] * w[4 * j + 1] + x[2] * w[4 * j + 2] + x[3] * w[4 * j + 3];
        }
    }
    for (int i = 0; i < mr; i++)
        for (ptrdiff_t j = 0; j < t->cols; j++)
            t->y[i * t->ldy + j] = rescale(acc[i][j], t->correction[j], t->xscale[i], t->wscale[j], t->bias, j, t->relu);
}

#ifdef SS_X86
/* AVX-512: DOT selects vpdpbusd, otherwise even/odd bytes widened to 16 bits and vpmaddwd. */
SS_T512DOT SS_AI void tile512(const q8_tile *t, const int MR, const int NP, const int DOT) {
    __m512i acc[Q8_MR][Q8_NP_GEMV];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NP; j++) acc[i][j] = _mm512_setzero_si512();
    const ptrdiff_t ps = t->quads * Q8_PANEL_BYTES;
    const __m512i low_bytes = _mm512_set1_epi16(0x00FF);
    for (ptrdiff_t q = 0; q < t->quads; q++) {
        __m512i w[Q8_NP_GEMV], wo[Q8_NP_GEMV];
        for (int j = 0; j < NP; j++) {
            w[j] = _mm512_loadu_si512(t->w + j * ps + q * Q8_PANEL_BYTES);
            if (!DOT) {
                wo[j] = _mm512_srai_epi16(w[j], 8);
                w[j] = _mm512_srai_epi16(_mm512_slli_epi16(w[j], 8), 8);
            }
        }
        for (int i = 0; i < MR; i++) {
            const __m512i xb = _mm512_set1_epi32(load_quad(t->x + i * t->ldx + 4 * q));
            if (DOT) {
                for (int j = 0; j < NP; j++) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], xb, w[j]);
            } else {
                const __m512i xe = _mm512_and_si512(xb, low_bytes), xo = _mm512_srli_epi16(xb, 8);
                for (int j = 0; j < NP; j++)
                    acc[i][j] = _mm512_add_epi32(acc[i][j], _mm512_add_epi32(_mm512_madd_epi16(w[j], xe),
                                                                             _mm512_madd_epi16(wo[j], xo)));
            }
        }
    }
    for (int j = 0; j < NP; j++) {
        const ptrdiff_t valid = t->cols - j * SS_PANEL;
        const __mmask16 m = valid >= SS_PANEL ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1u);
        const __m512i corr = _mm512_loadu_si512(t->correction + j * SS_PANEL);
        const __m512 ws = _mm512_loadu_ps(t->wscale + j * SS_PANEL);
        const __m512 b = t->bias ? _mm512_maskz_loadu_ps(m, t->bias + j * SS_PANEL) : _mm512_setzero_ps();
        for (int i = 0; i < MR; i++) {
            const __m512 s = _mm512_mul_ps(_mm512_set1_ps(t->xscale[i]), ws);
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][j], corr)), s);
            if (t->bias) v = _mm512_add_ps(v, b);
            if (t->relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);
            _mm512_mask_storeu_ps(t->y + i * t->ldy + j * SS_PANEL, m, v);
        }
    }
}

#define DEF512(MR, NP) \
    SS_T512DOT static void dot_##MR##_##NP(const q8_tile *t) { tile512(t, MR, NP, 1); } \
    SS_T512DOT static void bw_##MR##_##NP(const q8_tile *t) { tile512(t, MR, NP, 0); }
SS_TILES_8X3(DEF512)
static const q8_tile_fn dot512[Q8_NP_GEMV + 1][Q8_MR + 1] = SS_TILE_TABLE_8X3(dot);
static const q8_tile_fn bw512[Q8_NP_GEMV + 1][Q8_MR + 1] = SS_TILE_TABLE_8X3(bw);

/* AVX2: one 16-row panel is two ymm of 8 rows x 4 bytes; even/odd 16-bit vpmaddwd. */
enum { Q8_MR_256 = 4, Q8_NP_256 = 2 };

SS_T256 SS_AI void tile256(const q8_tile *t, const int MR, const int NP) {
    __m256i acc[Q8_MR_256][2 * Q8_NP_256];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < 2 * NP; v++) acc[i][v] = _mm256_setzero_si256();
    const ptrdiff_t ps = t->quads * Q8_PANEL_BYTES;
    const __m256i low_bytes = _mm256_set1_epi16(0x00FF);
    for (ptrdiff_t q = 0; q < t->quads; q++) {
        __m256i we[2 * Q8_NP_256], wo[2 * Q8_NP_256];
        for (int v = 0; v < 2 * NP; v++) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)(t->w + (v / 2) * ps + q * Q8_PANEL_BYTES + (v % 2) * 32));
            wo[v] = _mm256_srai_epi16(w, 8);
            we[v] = _mm256_srai_epi16(_mm256_slli_epi16(w, 8), 8);
        }
        for (int i = 0; i < MR; i++) {
            const __m256i xb = _mm256_set1_epi32(load_quad(t->x + i * t->ldx + 4 * q));
            const __m256i xe = _mm256_and_si256(xb, low_bytes), xo = _mm256_srli_epi16(xb, 8);
            for (int v = 0; v < 2 * NP; v++)
                acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_add_epi32(_mm256_madd_epi16(we[v], xe), _mm256_madd_epi16(wo[v], xo)));
        }
    }
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int v = 0; v < 2 * NP; v++) {
        const ptrdiff_t valid = t->cols - v * 8;
        if (valid <= 0) break;
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid >= 8 ? 8 : (int)valid), lanes);
        const __m256i corr = _mm256_loadu_si256((const __m256i *)(t->correction + v * 8));
        const __m256 ws = _mm256_loadu_ps(t->wscale + v * 8);
        const __m256 b = t->bias ? _mm256_maskload_ps(t->bias + v * 8, m) : _mm256_setzero_ps();
        for (int i = 0; i < MR; i++) {
            const __m256 s = _mm256_mul_ps(_mm256_set1_ps(t->xscale[i]), ws);
            __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc[i][v], corr)), s);
            if (t->bias) y = _mm256_add_ps(y, b);
            if (t->relu) y = _mm256_max_ps(_mm256_setzero_ps(), y);
            _mm256_maskstore_ps(t->y + i * t->ldy + v * 8, m, y);
        }
    }
}

#define DEF256(MR, NP) SS_T256 static void avx2_##MR##_##NP(const q8_tile *t) { tile256(t, MR, NP); }
DEF256(1, 1) DEF256(2, 1) DEF256(3, 1) DEF256(4, 1) DEF256(1, 2) DEF256(2, 2)
static const q8_tile_fn avx2[Q8_NP_256 + 1][Q8_MR_256 + 1] = {
    { NULL }, { NULL, avx2_1_1, avx2_2_1, avx2_3_1, avx2_4_1 }, { NULL, avx2_1_2, avx2_2_2, NULL, NULL },
};
#endif

/* ------------------------------------------------------------------------------------------ */
/* Driver                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static ss_tile_shape shape_of(ss_qisa isa) {
#ifdef SS_X86
    if (isa >= SS_QISA_AVX512) return (ss_tile_shape){ Q8_MR, Q8_NP, Q8_NP_GEMV };
    if (isa == SS_QISA_AVX2) return (ss_tile_shape){ Q8_MR_256, 1, Q8_NP_256 };
#endif
    (void)isa;
    return (ss_tile_shape){ Q8_MR, 1, 1 };
}

/* One call's operands; q8_visit fills in a tile's pointers. */
typedef struct {
    ss_qisa isa;
    q8_tile call;  /* pointers at row 0, column 0 */
} q8_job;

static void q8_visit(void *ctx, ptrdiff_t row, int mr, ptrdiff_t panel, int np, ptrdiff_t col0, ptrdiff_t cols) {
    const q8_job *job = ctx;
    q8_tile t = job->call;
    t.w += panel * t.quads * Q8_PANEL_BYTES;
    t.x += row * t.ldx;
    t.y += row * t.ldy + col0;
    t.bias = t.bias ? t.bias + col0 : NULL;
    t.wscale += col0;
    t.xscale += row;
    t.correction += col0;
    t.cols = cols;
#ifdef SS_X86
    if (job->isa >= SS_QISA_AVX512_DOT) { dot512[np][mr](&t); return; }
    if (job->isa == SS_QISA_AVX512) { bw512[np][mr](&t); return; }
    if (job->isa == SS_QISA_AVX2) { avx2[np][mr](&t); return; }
#endif
    tile_portable(&t, mr);
}

int ss_q8_gemm_quantized_cols_isa(ss_qisa isa, const int8_t *wp, const int32_t *correction, const float *wscale,
                                  const float *bias, ptrdiff_t n, ptrdiff_t k, const uint8_t *xq, const float *xscale,
                                  ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end) {
    const int status = ss_check_columns(n, k, m, n_begin, n_end);
    if (status != SS_OK || k > 65536) return status != SS_OK ? status : SS_ERR_ARGUMENT;
    if (m == 0 || n_begin == n_end) return SS_OK;
    isa = ss_clamp_qisa(isa);
    const ptrdiff_t k4 = k4_of(k);
    if (isa >= SS_QISA_AMX) {
        const ptrdiff_t done = ss_q8_amx_rows(wp, correction, wscale, bias, k, xq, xscale, m, y, ldy, act, n_begin, n_end);
        xq += done * k4;
        xscale += done;
        y += done * ldy;
        m -= done;
        isa = SS_QISA_AVX512_DOT;
        if (m == 0) return SS_OK;
    }
    q8_job job = {
        .isa = isa,
        .call = { .w = wp, .x = xq, .y = y, .bias = bias, .wscale = wscale, .xscale = xscale, .correction = correction,
                  .quads = k4 / 4, .ldx = k4, .ldy = ldy, .relu = act == SS_ACT_RELU },
    };
    const ss_tile_visitor visitor = { .ctx = &job, .chunk_begin = NULL, .tile = q8_visit };
    ss_panel_tiles(shape_of(isa), m, m, n_begin, n_end, ss_qisa_base(isa), act, y, ldy, &visitor);
    return SS_OK;
}

int ss_q8_gemm_cols_isa(ss_qisa isa, const int8_t *wp, const int32_t *correction, const float *wscale,
                        const float *bias, ptrdiff_t n, ptrdiff_t k, const float *x, ptrdiff_t ldx,
                        ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end) {
    const int status = ss_check_columns(n, k, m, n_begin, n_end);
    if (status != SS_OK || ldx < k) return status != SS_OK ? status : SS_ERR_ARGUMENT;
    const ptrdiff_t k4 = k4_of(k);
    /* Row chunks of ~256 KB of quantized X (a whole number of 8-row tiles), reused from L2. */
    const ptrdiff_t chunk = ss_max(Q8_MR, (262144 / k4) / Q8_MR * Q8_MR);
    const ptrdiff_t rows = ss_min(m, chunk);
    /* bytes for the rows, then (16-byte aligned) their scales */
    const size_t bytes = (size_t)(rows * k4 + 16) / 16 * 16 + (size_t)rows * sizeof(float);
    float *scratch = ss_thread_scratch(SS_SCRATCH_QUANT, (bytes + 3) / 4);
    if (!scratch && m > 0) return SS_ERR_NO_MEMORY;
    uint8_t *xq = (uint8_t *)scratch;
    float *xs = (float *)(xq + (size_t)(rows * k4 + 16) / 16 * 16);
    for (ptrdiff_t r0 = 0; r0 < m; r0 += chunk) {
        const ptrdiff_t count = ss_min(chunk, m - r0);
        ss_q8_quantize_rows_isa(isa, x + r0 * ldx, ldx, count, k, xq, xs);
        const int s = ss_q8_gemm_quantized_cols_isa(isa, wp, correction, wscale, bias, n, k, xq, xs, count,
                                                    y + r0 * ldy, ldy, act, n_begin, n_end);
        if (s != SS_OK) return s;
    }
    return SS_OK;
}
