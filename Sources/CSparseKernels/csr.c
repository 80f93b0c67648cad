/*
 * CSR (unstructured sparse) linear layers: gathered-dot GEMV and weight-broadcast GEMM.
 * See include/csr.h.
 */
#include "csr.h"
#include "internal.h"
#include "status.h"
#include "weight_broadcast.h"
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* GEMV                                                                                         */
/* ------------------------------------------------------------------------------------------ */

static void gemv_portable(const int32_t *row_ptr, const int32_t *col, const float *val, const float *bias,
                          ptrdiff_t r0, ptrdiff_t r1, const float *x, float *y) {
    for (ptrdiff_t row = r0; row < r1; row++) {
        float a0 = 0.0f, a1 = 0.0f;
        int32_t e = row_ptr[row];
        const int32_t end = row_ptr[row + 1];
        for (; e + 2 <= end; e += 2) {
            a0 += val[e] * x[col[e]];
            a1 += val[e + 1] * x[col[e + 1]];
        }
        if (e < end) a0 += val[e] * x[col[e]];
        y[row] = a0 + a1 + (bias ? bias[row] : 0.0f);
    }
}

#ifdef SS_X86
SS_T512 static void gemv512(const int32_t *row_ptr, const int32_t *col, const float *val, const float *bias,
                            ptrdiff_t r0, ptrdiff_t r1, const float *x, float *y) {
    for (ptrdiff_t row = r0; row < r1; row++) {
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        int32_t e = row_ptr[row];
        const int32_t end = row_ptr[row + 1];
        for (; e + 32 <= end; e += 32) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(val + e),
                                 _mm512_i32gather_ps(_mm512_loadu_si512(col + e), x, 4), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(val + e + 16),
                                 _mm512_i32gather_ps(_mm512_loadu_si512(col + e + 16), x, 4), a1);
        }
        for (; e < end; e += 16) {
            const int left = end - e;
            const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
            const __m512i idx = _mm512_maskz_loadu_epi32(m, col + e);
            const __m512 xv = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, x, 4);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, val + e), xv, a0);
        }
        y[row] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + (bias ? bias[row] : 0.0f);
    }
}

SS_T256 static void gemv256(const int32_t *row_ptr, const int32_t *col, const float *val, const float *bias,
                            ptrdiff_t r0, ptrdiff_t r1, const float *x, float *y) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (ptrdiff_t row = r0; row < r1; row++) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int32_t e = row_ptr[row];
        const int32_t end = row_ptr[row + 1];
        for (; e + 16 <= end; e += 16) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(val + e),
                                 _mm256_i32gather_ps(x, _mm256_loadu_si256((const __m256i *)(col + e)), 4), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(val + e + 8),
                                 _mm256_i32gather_ps(x, _mm256_loadu_si256((const __m256i *)(col + e + 8)), 4), a1);
        }
        for (; e < end; e += 8) {
            const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(end - e), lanes);
            const __m256i idx = _mm256_maskload_epi32(col + e, m);
            const __m256 xv = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), x, idx, _mm256_castsi256_ps(m), 4);
            a0 = _mm256_fmadd_ps(_mm256_maskload_ps(val + e, m), xv, a0);
        }
        const __m256 s = _mm256_add_ps(a0, a1);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        y[row] = _mm_cvtss_f32(h) + (bias ? bias[row] : 0.0f);
    }
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* GEMM                                                                                         */
/* ------------------------------------------------------------------------------------------ */

enum { TILE = SS_TILE };

static void row_portable(const int32_t *col, const float *val, int32_t e0, int32_t e1, const float *xt,
                         ptrdiff_t ldt, ptrdiff_t tokens, float *out, float b) {
    for (ptrdiff_t t = 0; t < tokens; t++) out[t] = b;
    for (int32_t e = e0; e < e1; e++) {
        const float w = val[e];
        const float *xr = xt + (ptrdiff_t)col[e] * ldt;
        for (ptrdiff_t t = 0; t < tokens; t++) out[t] += w * xr[t];
    }
}

#ifdef SS_X86
/* Rows c0 .. c0+cols-1 into yt, MV vectors of tokens (wb_csr_row, weight_broadcast.h). */
#define CSR_PANEL(ISA, MAXMV)                                                                                \
    SS_T##ISA static void panel##ISA(const int32_t *row_ptr, const int32_t *col, const float *val,          \
                                     const float *bias, ptrdiff_t c0, ptrdiff_t cols, const float *xt,       \
                                     float *yt, ptrdiff_t ldt, int mv) {                                     \
        for (ptrdiff_t j = 0; j < cols; j++) {                                                               \
            const int32_t e0 = row_ptr[c0 + j], e1 = row_ptr[c0 + j + 1];                                    \
            const float b = bias ? bias[c0 + j] : 0.0f;                                                      \
            switch (mv) {                                                                                    \
            case 1: wb_csr_row##ISA(col, val, e0, e1, xt, ldt, yt + j * ldt, b, 1); break;                   \
            case 2: wb_csr_row##ISA(col, val, e0, e1, xt, ldt, yt + j * ldt, b, 2); break;                   \
            case 3: wb_csr_row##ISA(col, val, e0, e1, xt, ldt, yt + j * ldt, b, MAXMV >= 3 ? 3 : 2); break;  \
            default: wb_csr_row##ISA(col, val, e0, e1, xt, ldt, yt + j * ldt, b, MAXMV >= 4 ? 4 : 2); break; \
            }                                                                                                \
        }                                                                                                    \
    }
CSR_PANEL(512, 4)
CSR_PANEL(256, 4)
#endif

/* Rows [r0, r1) of the batched kernel over prepared token tiles xt_all (K rows each). */
static int csr_gemm(ss_isa isa, const int32_t *row_ptr, const int32_t *col, const float *val, const float *bias,
                     ptrdiff_t k, const float *xt_all, float *y, ptrdiff_t ldy,
                     ptrdiff_t r, ss_act_kind act, ptrdiff_t r0, ptrdiff_t r1) {
    float *yt = ss_thread_scratch(SS_SCRATCH_PANEL, (size_t)(SS_PANEL * TILE));
    if (!yt) return SS_ERR_NO_MEMORY;
    for (ptrdiff_t t0 = 0; t0 < r; t0 += TILE) {
        const ptrdiff_t tokens = ss_min(TILE, r - t0);
        const ptrdiff_t ldt = ss_tile_ldt(isa, tokens);
        const float *xt = xt_all + t0 / TILE * k * TILE;
        for (ptrdiff_t c0 = r0; c0 < r1; c0 += SS_PANEL) {
            const ptrdiff_t cols = ss_min(SS_PANEL, r1 - c0);
            const int mv = (int)ss_ceil_div(tokens, isa == SS_ISA_AVX512 ? 16 : 8);
#ifdef SS_X86
            if (isa == SS_ISA_AVX512) panel512(row_ptr, col, val, bias, c0, cols, xt, yt, ldt, mv);
            else if (isa == SS_ISA_AVX2) {
                /* up to 32 tokens (four ymm) per pass */
                for (ptrdiff_t tb = 0; tb < tokens; tb += 32)
                    panel256(row_ptr, col, val, bias, c0, cols, xt + tb, yt + tb, ldt, (int)ss_min(4, ss_ceil_div(tokens - tb, 8)));
            } else
#endif
                for (ptrdiff_t j = 0; j < cols; j++)
                    row_portable(col, val, row_ptr[c0 + j], row_ptr[c0 + j + 1], xt, ldt, tokens, yt + j * ldt,
                                 bias ? bias[c0 + j] : 0.0f);
            (void)mv;
            ss_panel_store(isa, act, yt, ldt, tokens, cols, y + t0 * ldy + c0, ldy);
        }
    }
    return SS_OK;
}

ptrdiff_t ss_csr_input_floats(ss_isa isa, ptrdiff_t k, ptrdiff_t r) {
    (void)isa;
    return k > 0 && r > 2 ? ss_tiles_floats(k, r) : 0;
}

void ss_csr_prepare_input_isa(ss_isa isa, const float *x, ptrdiff_t ldx, ptrdiff_t r, ptrdiff_t k, float *xt) {
    if (k <= 0 || r <= 2) return;
    ss_tiles_transpose(ss_clamp_isa(isa), x, ldx, r, k, k, xt);
}

int ss_csr_gemm_prepared_rows_isa(ss_isa isa, const int32_t *row_ptr, const int32_t *col, const float *val,
                                  const float *bias, ptrdiff_t rows, ptrdiff_t k,
                                  const float *x, ptrdiff_t ldx, const float *xt, float *y, ptrdiff_t ldy, ptrdiff_t r,
                                  ss_act_kind act, ptrdiff_t row_begin, ptrdiff_t row_end) {
    if (rows < 0 || k < 0 || r < 0) return SS_ERR_ARGUMENT;
    row_begin = ss_max(0, row_begin);
    row_end = ss_min(rows, row_end);
    if (row_begin >= row_end || k == 0 || r == 0) return SS_OK;
    isa = ss_clamp_isa(isa);
    if (r <= 2) {
        for (ptrdiff_t i = 0; i < r; i++) {
            const float *xi = x + i * ldx;
            float *out = y + i * ldy;
#ifdef SS_X86
            if (isa == SS_ISA_AVX512) gemv512(row_ptr, col, val, bias, row_begin, row_end, xi, out);
            else if (isa == SS_ISA_AVX2) gemv256(row_ptr, col, val, bias, row_begin, row_end, xi, out);
            else
#endif
                gemv_portable(row_ptr, col, val, bias, row_begin, row_end, xi, out);
            if (act != SS_ACT_NONE) ss_act_apply_isa(isa, act, out + row_begin, row_end - row_begin);
        }
        return SS_OK;
    }
    if (!xt) return SS_ERR_ARGUMENT;
    return csr_gemm(isa, row_ptr, col, val, bias, k, xt, y, ldy, r, act, row_begin, row_end);
}

int ss_csr_gemm_rows_isa(ss_isa isa, const int32_t *row_ptr, const int32_t *col, const float *val,
                         const float *bias, ptrdiff_t rows, ptrdiff_t k,
                         const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                         ss_act_kind act, ptrdiff_t row_begin, ptrdiff_t row_end) {
    const ptrdiff_t floats = ss_csr_input_floats(isa, k, r);
    float *xt = NULL;
    if (floats > 0) {
        xt = ss_thread_scratch(SS_SCRATCH_TILES, (size_t)floats);
        if (!xt) return SS_ERR_NO_MEMORY;
        ss_csr_prepare_input_isa(isa, x, ldx, r, k, xt);
    }
    return ss_csr_gemm_prepared_rows_isa(isa, row_ptr, col, val, bias, rows, k, x, ldx, xt, y, ldy, r, act, row_begin, row_end);
}

int ss_csr_gemm_isa(ss_isa isa, const int32_t *row_ptr, const int32_t *col, const float *val,
                    const float *bias, ptrdiff_t rows, ptrdiff_t k,
                    const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                    ss_act_kind act) {
    return ss_csr_gemm_rows_isa(isa, row_ptr, col, val, bias, rows, k, x, ldx, y, ldy, r, act, 0, rows);
}
