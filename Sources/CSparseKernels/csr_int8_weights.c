/*
 * CSR weight-only int8 linear layers: gathered-dot GEMV and weight-broadcast GEMM with the int8
 * values widened in registers and the row scale applied with the bias. See include/csr_int8_weights.h.
 */
#include "csr_int8_weights.h"
#include "internal.h"
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* GEMV                                                                                         */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    const int32_t *row_ptr, *col;
    const int8_t *val;
    const float *scale, *bias;
} csrw8_op;

static float finish(const csrw8_op *op, ptrdiff_t row, float sum) {
    return sum * op->scale[row] + (op->bias ? op->bias[row] : 0.0f);
}

static void gemv_portable(const csrw8_op *op, ptrdiff_t r0, ptrdiff_t r1, const float *x, float *y) {
    for (ptrdiff_t row = r0; row < r1; row++) {
        float a0 = 0.0f, a1 = 0.0f;
        int32_t e = op->row_ptr[row];
        const int32_t end = op->row_ptr[row + 1];
        for (; e + 2 <= end; e += 2) {
            a0 += (float)op->val[e] * x[op->col[e]];
            a1 += (float)op->val[e + 1] * x[op->col[e + 1]];
        }
        if (e < end) a0 += (float)op->val[e] * x[op->col[e]];
        y[row] = finish(op, row, a0 + a1);
    }
}

#ifdef SS_X86
SS_T512 SS_AI __m512 widen512(__m128i bytes) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes)); }

SS_T512 static void gemv512(const csrw8_op *op, ptrdiff_t r0, ptrdiff_t r1, const float *x, float *y) {
    const int32_t *col = op->col;
    const int8_t *val = op->val;
    for (ptrdiff_t row = r0; row < r1; row++) {
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        int32_t e = op->row_ptr[row];
        const int32_t end = op->row_ptr[row + 1];
        for (; e + 32 <= end; e += 32) {
            a0 = _mm512_fmadd_ps(widen512(_mm_loadu_si128((const __m128i *)(val + e))),
                                 _mm512_i32gather_ps(_mm512_loadu_si512(col + e), x, 4), a0);
            a1 = _mm512_fmadd_ps(widen512(_mm_loadu_si128((const __m128i *)(val + e + 16))),
                                 _mm512_i32gather_ps(_mm512_loadu_si512(col + e + 16), x, 4), a1);
        }
        for (; e < end; e += 16) {
            const int left = end - e;
            const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
            const __m512 xv = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, _mm512_maskz_loadu_epi32(m, col + e), x, 4);
            a0 = _mm512_fmadd_ps(widen512(_mm_maskz_loadu_epi8(m, val + e)), xv, a0);
        }
        y[row] = finish(op, row, _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)));
    }
}

SS_T256 SS_AI __m256 widen256(const int8_t *v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)v))); }

SS_T256 static void gemv256(const csrw8_op *op, ptrdiff_t r0, ptrdiff_t r1, const float *x, float *y) {
    const int32_t *col = op->col;
    const int8_t *val = op->val;
    for (ptrdiff_t row = r0; row < r1; row++) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int32_t e = op->row_ptr[row];
        const int32_t end = op->row_ptr[row + 1];
        for (; e + 16 <= end; e += 16) {
            a0 = _mm256_fmadd_ps(widen256(val + e), _mm256_i32gather_ps(x, _mm256_loadu_si256((const __m256i *)(col + e)), 4), a0);
            a1 = _mm256_fmadd_ps(widen256(val + e + 8), _mm256_i32gather_ps(x, _mm256_loadu_si256((const __m256i *)(col + e + 8)), 4), a1);
        }
        if (e + 8 <= end) {
            a0 = _mm256_fmadd_ps(widen256(val + e), _mm256_i32gather_ps(x, _mm256_loadu_si256((const __m256i *)(col + e)), 4), a0);
            e += 8;
        }
        const __m256 s = _mm256_add_ps(a0, a1);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        float sum = _mm_cvtss_f32(h);
        for (; e < end; e++) sum += (float)val[e] * x[col[e]];  /* under 8 left: no 8-byte load past the row */
        y[row] = finish(op, row, sum);
    }
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* GEMM: weight broadcast over transposed token tiles                                            */
/* ------------------------------------------------------------------------------------------ */

enum { TILE = SS_TILE };

static void row_portable(const csrw8_op *op, ptrdiff_t row, const float *xt, ptrdiff_t ldt, ptrdiff_t tokens, float *out) {
    for (ptrdiff_t t = 0; t < tokens; t++) out[t] = 0.0f;
    for (int32_t e = op->row_ptr[row]; e < op->row_ptr[row + 1]; e++) {
        const float w = (float)op->val[e];
        const float *xr = xt + (ptrdiff_t)op->col[e] * ldt;
        for (ptrdiff_t t = 0; t < tokens; t++) out[t] += w * xr[t];
    }
    for (ptrdiff_t t = 0; t < tokens; t++) out[t] = finish(op, row, out[t]);
}

#ifdef SS_X86
/* One output row into out (MV vectors of W tokens), U independent chains (U * MV <= 8). */
#define CSRW8_ROW(ISA, VEC, W, SET1, LOAD, STORE, FMA, ADD, ZERO)                                                    \
    SS_T##ISA SS_AI void row##ISA(const csrw8_op *op, ptrdiff_t row, const float *xt, ptrdiff_t ldt, float *out,    \
                                  const int MV) {                                                                   \
        enum { UMAX = 4 };                                                                                          \
        const int U = MV == 1 ? 4 : MV == 2 ? 2 : 1;                                                                \
        VEC a[UMAX][4];                                                                                             \
        for (int u = 0; u < U; u++)                                                                                 \
            for (int v = 0; v < MV; v++) a[u][v] = ZERO();                                                          \
        int32_t e = op->row_ptr[row];                                                                               \
        const int32_t e1 = op->row_ptr[row + 1];                                                                    \
        for (; e + U <= e1; e += U)                                                                                 \
            for (int u = 0; u < U; u++) {                                                                           \
                const VEC w = SET1((float)op->val[e + u]);                                                          \
                const float *xr = xt + (ptrdiff_t)op->col[e + u] * ldt;                                             \
                for (int v = 0; v < MV; v++) a[u][v] = FMA(w, LOAD(xr + W * v), a[u][v]);                          \
            }                                                                                                       \
        for (; e < e1; e++) {                                                                                       \
            const VEC w = SET1((float)op->val[e]);                                                                  \
            const float *xr = xt + (ptrdiff_t)op->col[e] * ldt;                                                     \
            for (int v = 0; v < MV; v++) a[0][v] = FMA(w, LOAD(xr + W * v), a[0][v]);                              \
        }                                                                                                           \
        const VEC s = SET1(op->scale[row]), b = SET1(op->bias ? op->bias[row] : 0.0f);                              \
        for (int v = 0; v < MV; v++) {                                                                              \
            for (int u = 1; u < U; u++) a[0][v] = ADD(a[0][v], a[u][v]);                                            \
            STORE(out + W * v, FMA(a[0][v], s, b));                                                                 \
        }                                                                                                           \
    }                                                                                                               \
    SS_T##ISA static void panel##ISA(const csrw8_op *op, ptrdiff_t c0, ptrdiff_t cols, const float *xt, float *yt,  \
                                     ptrdiff_t ldt, int mv) {                                                       \
        for (ptrdiff_t j = 0; j < cols; j++) {                                                                      \
            switch (mv) {                                                                                           \
            case 1: row##ISA(op, c0 + j, xt, ldt, yt + j * ldt, 1); break;                                          \
            case 2: row##ISA(op, c0 + j, xt, ldt, yt + j * ldt, 2); break;                                          \
            case 3: row##ISA(op, c0 + j, xt, ldt, yt + j * ldt, 3); break;                                          \
            default: row##ISA(op, c0 + j, xt, ldt, yt + j * ldt, 4); break;                                         \
            }                                                                                                       \
        }                                                                                                           \
    }
CSRW8_ROW(512, __m512, 16, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_setzero_ps)
CSRW8_ROW(256, __m256, 8, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_setzero_ps)
#endif

/* Rows [r0, r1) over the transposed token tiles xt_all (K rows each). */
static int csrw8_gemm(ss_isa isa, const csrw8_op *op, ptrdiff_t k, const float *xt_all, float *y, ptrdiff_t ldy,
                      ptrdiff_t m, ss_act_kind act, ptrdiff_t r0, ptrdiff_t r1) {
    float *yt = ss_thread_scratch(SS_SCRATCH_PANEL, (size_t)(SS_PANEL * TILE));
    if (!yt) return SS_ERR_NO_MEMORY;
    for (ptrdiff_t t0 = 0; t0 < m; t0 += TILE) {
        const ptrdiff_t tokens = ss_min(TILE, m - t0), ldt = ss_tile_ldt(isa, tokens);
        const float *xt = xt_all + t0 / TILE * k * TILE;
        for (ptrdiff_t c0 = r0; c0 < r1; c0 += SS_PANEL) {
            const ptrdiff_t cols = ss_min(SS_PANEL, r1 - c0);
#ifdef SS_X86
            if (isa == SS_ISA_AVX512) panel512(op, c0, cols, xt, yt, ldt, (int)(ldt / 16));
            else if (isa == SS_ISA_AVX2)
                for (ptrdiff_t tb = 0; tb < tokens; tb += 32)  /* up to 32 tokens (four ymm) per pass */
                    panel256(op, c0, cols, xt + tb, yt + tb, ldt, (int)ss_min(4, ss_ceil_div(tokens - tb, 8)));
            else
#endif
                for (ptrdiff_t j = 0; j < cols; j++) row_portable(op, c0 + j, xt, ldt, tokens, yt + j * ldt);
            ss_panel_store(isa, act, yt, ldt, tokens, cols, y + t0 * ldy + c0, ldy);
        }
    }
    return SS_OK;
}

int ss_csrw8_gemm_rows_isa(ss_isa isa, const int32_t *row_ptr, const int32_t *col, const int8_t *val,
                           const float *scale, const float *bias, ptrdiff_t rows, ptrdiff_t k,
                           const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t m,
                           ss_act_kind act, ptrdiff_t row_begin, ptrdiff_t row_end) {
    if (rows < 0 || k < 0 || m < 0 || (m > 0 && ldx < k)) return SS_ERR_ARGUMENT;
    row_begin = ss_max(0, row_begin);
    row_end = ss_min(rows, row_end);
    if (row_begin >= row_end || m == 0) return SS_OK;
    isa = ss_clamp_isa(isa);
    const csrw8_op op = { .row_ptr = row_ptr, .col = col, .val = val, .scale = scale, .bias = bias };
    if (m <= 2 || k == 0) {
        for (ptrdiff_t i = 0; i < m; i++) {
            float *out = y + i * ldy;
#ifdef SS_X86
            if (isa == SS_ISA_AVX512) gemv512(&op, row_begin, row_end, x + i * ldx, out);
            else if (isa == SS_ISA_AVX2) gemv256(&op, row_begin, row_end, x + i * ldx, out);
            else
#endif
                gemv_portable(&op, row_begin, row_end, x + i * ldx, out);
            if (act != SS_ACT_NONE) ss_act_apply_isa(isa, act, out + row_begin, row_end - row_begin);
        }
        return SS_OK;
    }
    float *xt = ss_thread_scratch(SS_SCRATCH_TILES, (size_t)ss_tiles_floats(k, m));
    if (!xt) return SS_ERR_NO_MEMORY;
    ss_tiles_transpose(isa, x, ldx, m, k, k, xt);
    return csrw8_gemm(isa, &op, k, xt, y, ldy, m, act, row_begin, row_end);
}
