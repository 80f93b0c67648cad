/*
 * Batched 2:4 W8A8 kernel for M >= 2 token rows (layout and contract in include/nm_int8.h).
 *
 * Loop nest: token chunks whose quantized rows (stride a multiple of 64 bytes) stay in L2, then
 * 16-row panels (the panel's values and byte indices, 16 bytes per input, stay in L1 across the
 * chunk), then balanced token tiles of at most TILE_MAX rows with one int32 accumulator zmm per
 * token. Per 64-input window: 8 index and 8 value zmm are loaded once for the whole tile; per
 * token one zmm of its 64 activation bytes, then per block of 8 inputs one `vpermb` (each lane's
 * 4 kept inputs) and one `vpdpbusd` (16 rows x 4 kept weights).
 */
#include "nm_int8.h"
#include "int8.h"
#include "internal.h"
#include <string.h>

enum { BLOCK = 8, LANE_BYTES = 4, SLOTS = 8, WINDOW = BLOCK * SLOTS, TILE_MAX = 8, HALF = 4, MIN_ROWS = 2 };

ptrdiff_t ss_nm8_index_bytes(ptrdiff_t n, ptrdiff_t k) { return ss_nm8_value_bytes(n, k); }

int ss_nm8_expand_indices(const uint8_t *codes, ptrdiff_t n, ptrdiff_t k, uint8_t *indices) {
    if (n <= 0 || k <= 0 || k > 65536) return SS_ERR_ARGUMENT;
    const ptrdiff_t B = ss_ceil_div(k, BLOCK), lanes = ss_nm8_index_bytes(n, k) / LANE_BYTES;
    for (ptrdiff_t lane = 0; lane < lanes; lane++) {
        const ptrdiff_t p = lane / SS_PANEL / B, b = (lane / SS_PANEL) % B;
        const uint8_t code = codes[ss_nm8_code_offset(p, b, lane % SS_PANEL, B)];
        for (int q = 0; q < LANE_BYTES; q++)
            indices[lane * LANE_BYTES + q] = (uint8_t)(BLOCK * (b % SLOTS) + 4 * (q >> 1) + ((code >> (2 * q)) & 3));
    }
    return SS_OK;
}

#ifdef SS_X86
#define SS_T512VBMI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi")))

/* One call's operands; x at the chunk's first row (stride kw bytes), xs its scales. */
typedef struct {
    const int8_t *values;
    const uint8_t *indices, *x;
    const int32_t *correction;
    const float *wscale, *bias, *xs;
    float *y;
    ptrdiff_t blocks, kw, ldy;
    int relu;
} nm8_batch;

/* S blocks (of one window, from block b0) of one panel into T tokens' accumulators (C chains
 * each), in groups of HALF blocks so that indices, values, T windows and T accumulators fit the
 * 32 zmm registers. */
SS_T512VBMI SS_AI void window512(__m512i acc[][4], const int8_t *vp, const uint8_t *ip, const uint8_t *x, ptrdiff_t kw,
                                 ptrdiff_t b0, const int S, const int T, const int C) {
    for (int h = 0; h < S; h += HALF) {
        __m512i idx[HALF], w[HALF];
        const int count = S - h < HALF ? S - h : HALF;
        for (int s = 0; s < count; s++) {
            idx[s] = _mm512_loadu_si512(ip + (b0 + h + s) * SS_PANEL * LANE_BYTES);
            w[s] = _mm512_loadu_si512(vp + (b0 + h + s) * SS_PANEL * LANE_BYTES);
        }
        for (int t = 0; t < T; t++) {
            const __m512i xw = _mm512_loadu_si512(x + t * kw + b0 * BLOCK);
            for (int s = 0; s < count; s++)
                acc[t][(h + s) % C] = _mm512_dpbusd_epi32(acc[t][(h + s) % C], _mm512_permutexvar_epi8(idx[s], xw), w[s]);
        }
    }
}

/* Tokens [t0, t0 + T) x panel p over the whole K, rescaled into columns [16p, 16p + cols). */
SS_T512VBMI SS_AI void tile512(const nm8_batch *c, ptrdiff_t p, ptrdiff_t t0, ptrdiff_t cols, const int T) {
    const int C = T >= 4 ? 1 : T >= 2 ? 2 : 4;
    __m512i acc[TILE_MAX][4];
    for (int t = 0; t < T; t++)
        for (int h = 0; h < C; h++) acc[t][h] = _mm512_setzero_si512();
    const ptrdiff_t B = c->blocks, full = B / SLOTS * SLOTS;
    const int8_t *vp = c->values + p * B * SS_PANEL * LANE_BYTES;
    const uint8_t *ip = c->indices + p * B * SS_PANEL * LANE_BYTES, *x = c->x + t0 * c->kw;
    for (ptrdiff_t b0 = 0; b0 < full; b0 += SLOTS) window512(acc, vp, ip, x, c->kw, b0, SLOTS, T, C);
    if (full < B) window512(acc, vp, ip, x, c->kw, full, (int)(B - full), T, C);
    const ptrdiff_t col0 = p * SS_PANEL;
    const __mmask16 m = cols >= SS_PANEL ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1u);
    const __m512i corr = _mm512_loadu_si512(c->correction + col0);
    const __m512 ws = _mm512_loadu_ps(c->wscale + col0);
    const __m512 b = c->bias ? _mm512_maskz_loadu_ps(m, c->bias + col0) : _mm512_setzero_ps();
    for (int t = 0; t < T; t++) {
        __m512i total = acc[t][0];
        for (int h = 1; h < C; h++) total = _mm512_add_epi32(total, acc[t][h]);
        const __m512 s = _mm512_mul_ps(_mm512_set1_ps(c->xs[t0 + t]), ws);
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(total, corr)), s);
        if (c->bias) v = _mm512_add_ps(v, b);
        if (c->relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);
        _mm512_mask_storeu_ps(c->y + (t0 + t) * c->ldy + col0, m, v);
    }
}

typedef void (*tile_fn)(const nm8_batch *, ptrdiff_t, ptrdiff_t, ptrdiff_t);
#define DEF_TILE(T) SS_T512VBMI static void tile512_##T(const nm8_batch *c, ptrdiff_t p, ptrdiff_t t0, ptrdiff_t cols) \
    { tile512(c, p, t0, cols, T); }
DEF_TILE(1) DEF_TILE(2) DEF_TILE(3) DEF_TILE(4) DEF_TILE(5) DEF_TILE(6)
DEF_TILE(7) DEF_TILE(8)
static const tile_fn tiles512[TILE_MAX + 1] = {
    NULL, tile512_1, tile512_2, tile512_3, tile512_4, tile512_5, tile512_6,
    tile512_7, tile512_8,
};

/* Every panel of [p0, p1) for the chunk's `count` tokens, in balanced tiles of <= TILE_MAX. */
static void chunk512(const nm8_batch *c, ptrdiff_t count, ptrdiff_t p0, ptrdiff_t p1, ptrdiff_t n_end) {
    const ptrdiff_t tiles = ss_ceil_div(count, TILE_MAX);
    for (ptrdiff_t p = p0; p < p1; p++) {
        const ptrdiff_t cols = ss_min(SS_PANEL, n_end - p * SS_PANEL);
        for (ptrdiff_t i = 0, t0 = 0; i < tiles; i++) {
            const ptrdiff_t rows = (count - t0) / (tiles - i);
            tiles512[rows](c, p, t0, cols);
            t0 += rows;
        }
    }
}
#endif

ptrdiff_t ss_nm8_quantized_row_bytes(ptrdiff_t k) { return k <= 0 ? 0 : ss_ceil_div(k, WINDOW) * WINDOW; }

int ss_nm8_quantize_rows_isa(ss_qisa isa, const float *x, ptrdiff_t ldx, ptrdiff_t m, ptrdiff_t k, uint8_t *xq, float *xs) {
    if (m < 0 || k <= 0 || k > 65536 || ldx < k) return SS_ERR_ARGUMENT;
    const ptrdiff_t kw = ss_nm8_quantized_row_bytes(k);
    memset(xq, 128, (size_t)(m * kw));
    for (ptrdiff_t i = 0; i < m; i++) ss_q8_quantize_rows_isa(isa, x + i * ldx, ldx, 1, k, xq + i * kw, xs + i);
    return SS_OK;
}

int ss_nm8_gemm_quantized_indexed_cols_isa(ss_qisa isa, const int8_t *values, const uint8_t *indices, const int32_t *correction,
                                           const float *wscale, const float *bias, ptrdiff_t n, ptrdiff_t k, const uint8_t *xq,
                                           const float *xs, ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act,
                                           ptrdiff_t n_begin, ptrdiff_t n_end) {
    if (ss_clamp_qisa(isa) < SS_QISA_AVX512_DOT || !indices || k > 65536) return SS_ERR_ARGUMENT;
    if (ss_check_columns(n, k, m, n_begin, n_end) != SS_OK) return SS_ERR_ARGUMENT;
    if (n_begin == n_end) return SS_OK;
#ifdef SS_X86
    const nm8_batch c = { .values = values, .indices = indices, .x = xq, .correction = correction, .wscale = wscale,
                          .bias = bias, .xs = xs, .y = y, .blocks = ss_ceil_div(k, BLOCK), .kw = ss_nm8_quantized_row_bytes(k),
                          .ldy = ldy, .relu = act == SS_ACT_RELU };
    chunk512(&c, m, n_begin / SS_PANEL, ss_ceil_div(n_end, SS_PANEL), n_end);
    if (act != SS_ACT_NONE && act != SS_ACT_RELU)
        for (ptrdiff_t i = 0; i < m; i++) ss_act_apply_isa(SS_ISA_AVX512, act, y + i * ldy + n_begin, n_end - n_begin);
    return SS_OK;
#else
    (void)values; (void)correction; (void)wscale; (void)bias; (void)xq; (void)xs; (void)y; (void)ldy;
    return SS_ERR_ARGUMENT;
#endif
}

int ss_nm8_gemm_indexed_cols_isa(ss_qisa isa, const int8_t *values, const uint8_t *codes, const uint8_t *indices,
                                 const int32_t *correction, const float *wscale, const float *bias, ptrdiff_t n, ptrdiff_t k,
                                 const float *x, ptrdiff_t ldx, ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act,
                                 ptrdiff_t n_begin, ptrdiff_t n_end) {
    isa = ss_clamp_qisa(isa);
    if (isa < SS_QISA_AVX512_DOT || m < MIN_ROWS || !indices)
        return ss_nm8_gemm_cols_isa(isa, values, codes, correction, wscale, bias, n, k, x, ldx, m, y, ldy, act, n_begin, n_end);
    if (ss_check_columns(n, k, m, n_begin, n_end) != SS_OK || ldx < k || k > 65536) return SS_ERR_ARGUMENT;
    if (n_begin == n_end) return SS_OK;
    const ptrdiff_t kw = ss_nm8_quantized_row_bytes(k);
    /* chunks of ~256 KB of quantized rows (whole tiles), then their scales */
    const ptrdiff_t chunk = ss_max(TILE_MAX, 262144 / kw / TILE_MAX * TILE_MAX), rows = ss_min(chunk, m);
    float *scratch = ss_thread_scratch(SS_SCRATCH_QUANT, (size_t)(rows * kw / 4 + rows));
    if (!scratch) return SS_ERR_NO_MEMORY;
    uint8_t *xq = (uint8_t *)(scratch + rows);
    for (ptrdiff_t r0 = 0; r0 < m; r0 += chunk) {
        const ptrdiff_t count = ss_min(chunk, m - r0);
        ss_nm8_quantize_rows_isa(isa, x + r0 * ldx, ldx, count, k, xq, scratch);
        const int s = ss_nm8_gemm_quantized_indexed_cols_isa(isa, values, indices, correction, wscale, bias, n, k, xq, scratch,
                                                             count, y + r0 * ldy, ldy, act, n_begin, n_end);
        if (s != SS_OK) return s;
    }
    return SS_OK;
}
