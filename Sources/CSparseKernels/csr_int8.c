/*
 * CSR W8A8 linear layers: gathered int16 dot products (GEMV) and weight-broadcast int32 GEMM.
 * Layout, exactness and kernel outline in include/csr_int8.h.
 */
#include "csr_int8.h"
#include "int8.h"
#include "internal.h"
#include <string.h>

#define SS_T512DOT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

enum { TILE = SS_TILE };

/* An int8 activation widened into a 32-bit lane: value in the low 16 bits, zero above, so that
 * vpmaddwd / vpdpwssd against a sign-extended weight yield exactly their product. */
static inline int32_t widen(int v) { return (int32_t)(uint16_t)(int16_t)v; }

/* ------------------------------------------------------------------------------------------ */
/* GEMV: one widened token row xw (K lanes) over output rows [r0, r1) -> int32 sums             */
/* ------------------------------------------------------------------------------------------ */

static int32_t dot_portable(const int32_t *col, const int8_t *val, int32_t e0, int32_t e1, const int32_t *xw) {
    int32_t acc = 0;
    for (int32_t e = e0; e < e1; e++) acc += (int32_t)(int16_t)xw[col[e]] * val[e];
    return acc;
}

#ifdef SS_X86
/* acc + exact products of 16-bit lanes: vpdpwssd (VNNI), or vpmaddwd + vpaddd (same sums). */
SS_T512DOT SS_AI __m512i madd512_dot(__m512i acc, __m512i x, __m512i w) { return _mm512_dpwssd_epi32(acc, x, w); }
SS_T512 SS_AI __m512i madd512_bw(__m512i acc, __m512i x, __m512i w) { return _mm512_add_epi32(acc, _mm512_madd_epi16(x, w)); }

/* Gathered dot product of one output row, 16 non-zeros per step (masked tail). */
#define DOT512(TARGET, NAME, MADD)                                                                          \
    TARGET static int32_t NAME(const int32_t *col, const int8_t *val, int32_t e0, int32_t e1, const int32_t *xw) { \
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();                                   \
        int32_t e = e0;                                                                                     \
        for (; e + 32 <= e1; e += 32) {                                                                     \
            const __m512i x0 = _mm512_i32gather_epi32(_mm512_loadu_si512(col + e), xw, 4);                  \
            const __m512i x1 = _mm512_i32gather_epi32(_mm512_loadu_si512(col + e + 16), xw, 4);             \
            a0 = MADD(a0, x0, _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(val + e))));          \
            a1 = MADD(a1, x1, _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(val + e + 16))));     \
        }                                                                                                   \
        for (; e < e1; e += 16) {                                                                           \
            const int left = e1 - e;                                                                        \
            const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);            \
            const __m512i idx = _mm512_maskz_loadu_epi32(m, col + e);                                       \
            const __m512i xv = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, xw, 4);          \
            a0 = MADD(a0, xv, _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, val + e)));                      \
        }                                                                                                   \
        return _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1));                                           \
    }
DOT512(SS_T512DOT, dot512_dot, madd512_dot)
DOT512(SS_T512, dot512_bw, madd512_bw)

SS_T256 static int32_t dot256(const int32_t *col, const int8_t *val, int32_t e0, int32_t e1, const int32_t *xw) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i a0 = _mm256_setzero_si256();
    for (int32_t e = e0; e < e1; e += 8) {
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(e1 - e), lanes);
        const __m256i xv = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), xw, _mm256_maskload_epi32(col + e, m), m, 4);
        int64_t bytes = 0;
        memcpy(&bytes, val + e, (size_t)(e1 - e >= 8 ? 8 : e1 - e));
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(xv, _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(bytes))));
    }
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(a0), _mm256_extracti128_si256(a0, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
    return _mm_cvtsi128_si32(h);
}
#endif

typedef int32_t (*dot_fn)(const int32_t *, const int8_t *, int32_t, int32_t, const int32_t *);

static dot_fn dot_for(ss_qisa isa) {
#ifdef SS_X86
    if (isa >= SS_QISA_AVX512_DOT) return dot512_dot;
    if (isa == SS_QISA_AVX512) return dot512_bw;
    if (isa == SS_QISA_AVX2) return dot256;
#endif
    (void)isa;
    return dot_portable;
}

/* ------------------------------------------------------------------------------------------ */
/* GEMM: weight broadcast against transposed widened tokens                                    */
/* ------------------------------------------------------------------------------------------ */

static void row_gemm_portable(const int32_t *col, const int8_t *val, int32_t e0, int32_t e1, const int32_t *xt,
                              ptrdiff_t ldt, ptrdiff_t tokens, int32_t *out) {
    for (ptrdiff_t t = 0; t < tokens; t++) out[t] = 0;
    for (int32_t e = e0; e < e1; e++) {
        const int32_t *xr = xt + (ptrdiff_t)col[e] * ldt;
        for (ptrdiff_t t = 0; t < tokens; t++) out[t] += (int32_t)(int16_t)xr[t] * val[e];
    }
}

#ifdef SS_X86
/* One output row, MV vectors of 16 tokens, two chains per vector. */
#define ROW512(TARGET, NAME, MADD)                                                                          \
    TARGET SS_AI void NAME(const int32_t *col, const int8_t *val, int32_t e0, int32_t e1, const int32_t *xt,   \
                           ptrdiff_t ldt, int32_t *out, const int MV) {                                     \
        __m512i a[2][4];                                                                                    \
        for (int u = 0; u < 2; u++)                                                                         \
            for (int v = 0; v < MV; v++) a[u][v] = _mm512_setzero_si512();                                  \
        int32_t e = e0;                                                                                     \
        for (; e + 2 <= e1; e += 2)                                                                         \
            for (int u = 0; u < 2; u++) {                                                                   \
                const __m512i w = _mm512_set1_epi32(val[e + u]);                                            \
                const int32_t *xr = xt + (ptrdiff_t)col[e + u] * ldt;                                       \
                for (int v = 0; v < MV; v++) a[u][v] = MADD(a[u][v], _mm512_loadu_si512(xr + 16 * v), w);   \
            }                                                                                               \
        if (e < e1) {                                                                                       \
            const __m512i w = _mm512_set1_epi32(val[e]);                                                    \
            const int32_t *xr = xt + (ptrdiff_t)col[e] * ldt;                                               \
            for (int v = 0; v < MV; v++) a[0][v] = MADD(a[0][v], _mm512_loadu_si512(xr + 16 * v), w);      \
        }                                                                                                   \
        for (int v = 0; v < MV; v++) _mm512_storeu_si512(out + 16 * v, _mm512_add_epi32(a[0][v], a[1][v])); \
    }
ROW512(SS_T512DOT, row512_dot, madd512_dot)
ROW512(SS_T512, row512_bw, madd512_bw)

#define ROW512_MV(TARGET, BODY, MV)                                                                         \
    TARGET static void BODY##_##MV(const int32_t *c, const int8_t *v, int32_t e0, int32_t e1, const int32_t *xt, \
                                   ptrdiff_t ldt, int32_t *out) { BODY(c, v, e0, e1, xt, ldt, out, MV); }
ROW512_MV(SS_T512DOT, row512_dot, 1) ROW512_MV(SS_T512DOT, row512_dot, 2) ROW512_MV(SS_T512DOT, row512_dot, 3)
ROW512_MV(SS_T512DOT, row512_dot, 4)
ROW512_MV(SS_T512, row512_bw, 1) ROW512_MV(SS_T512, row512_bw, 2) ROW512_MV(SS_T512, row512_bw, 3) ROW512_MV(SS_T512, row512_bw, 4)

/* AVX2: one output row over `vectors` (1..8) vectors of 8 tokens. */
SS_T256 static void row256(const int32_t *col, const int8_t *val, int32_t e0, int32_t e1, const int32_t *xt,
                           ptrdiff_t ldt, int32_t *out, int vectors) {
    for (int v0 = 0; v0 < vectors; v0 += 4) {
        const int count = vectors - v0 < 4 ? vectors - v0 : 4;
        __m256i a[4] = { _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256() };
        for (int32_t e = e0; e < e1; e++) {
            const __m256i w = _mm256_set1_epi32(val[e]);
            const int32_t *xr = xt + (ptrdiff_t)col[e] * ldt + 8 * v0;
            for (int v = 0; v < count; v++)
                a[v] = _mm256_add_epi32(a[v], _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(xr + 8 * v)), w));
        }
        for (int v = 0; v < count; v++) _mm256_storeu_si256((__m256i *)(out + 8 * (v0 + v)), a[v]);
    }
}
#endif

typedef void (*row_fn)(const int32_t *, const int8_t *, int32_t, int32_t, const int32_t *, ptrdiff_t, int32_t *);

/* int32 sums of one output row for `tokens` tokens of a transposed tile (row stride ldt). */
static void row_sums(ss_qisa isa, const int32_t *col, const int8_t *val, int32_t e0, int32_t e1, const int32_t *xt,
                     ptrdiff_t ldt, ptrdiff_t tokens, int32_t *out) {
#ifdef SS_X86
    if (isa >= SS_QISA_AVX512) {
        static const row_fn dot[4] = { row512_dot_1, row512_dot_2, row512_dot_3, row512_dot_4 };
        static const row_fn bw[4] = { row512_bw_1, row512_bw_2, row512_bw_3, row512_bw_4 };
        (isa >= SS_QISA_AVX512_DOT ? dot : bw)[ss_ceil_div(tokens, 16) - 1](col, val, e0, e1, xt, ldt, out);
        return;
    }
    if (isa == SS_QISA_AVX2) { row256(col, val, e0, e1, xt, ldt, out, (int)ss_ceil_div(tokens, 8)); return; }
#endif
    row_gemm_portable(col, val, e0, e1, xt, ldt, tokens, out);
}

/* ------------------------------------------------------------------------------------------ */
/* Driver                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Where a chunk of token rows comes from: fp32 rows quantized here, or int8 rows with scales. */
typedef struct {
    const float *x;
    ptrdiff_t ldx;
    const int8_t *xq;
    ptrdiff_t ldq;
    const float *xscale;
} csr8_input;

/* Quantized value c of token row t (chunk-relative) as int, from `bytes` (u8 +128 rows of k4). */
static inline int input_value(const csr8_input *in, const uint8_t *bytes, ptrdiff_t k4, ptrdiff_t t, ptrdiff_t c) {
    return in->x ? (int)bytes[t * k4 + c] - 128 : (int)in->xq[t * in->ldq + c];
}

/* As the dense int8 kernel rescales (int8.c): the same float for the same int32 sum. */
static float out_value(int32_t sum, float xs, float ws, const float *bias, ptrdiff_t row) {
    const float v = (float)sum * (xs * ws);
    return bias ? v + bias[row] : v;
}

/* One chunk of `count` <= TILE token rows: quantize (fp32 input), widen, run GEMV or GEMM. */
static int csr8_chunk(ss_qisa isa, const int32_t *row_ptr, const int32_t *col, const int8_t *val, const float *wscale,
                      const float *bias, ptrdiff_t k, const csr8_input *in, ptrdiff_t t0, ptrdiff_t count,
                      float *y, ptrdiff_t ldy, ss_act_kind act, ptrdiff_t r0, ptrdiff_t r1) {
    const ptrdiff_t k4 = ss_q8_row_bytes(k);
    const ptrdiff_t ldt = isa >= SS_QISA_AVX512 ? ss_ceil_div(count, 16) * 16 : isa == SS_QISA_AVX2 ? ss_ceil_div(count, 8) * 8 : count;
    const ptrdiff_t widened = count <= 2 ? count * k : k * ldt;
    float *scratch = ss_thread_scratch(SS_SCRATCH_QUANT, (size_t)(widened + TILE + (in->x ? count * k4 / 4 + 1 : 0)));
    float *panel = ss_thread_scratch(SS_SCRATCH_PANEL, (size_t)(2 * SS_PANEL * TILE));
    if (!scratch || !panel) return SS_ERR_NO_MEMORY;
    int32_t *xw = (int32_t *)scratch;
    float *xs = scratch + widened;
    uint8_t *bytes = (uint8_t *)(xs + TILE);
    if (in->x) ss_q8_quantize_rows_isa(isa, in->x + t0 * in->ldx, in->ldx, count, k, bytes, xs);
    else memcpy(xs, in->xscale + t0, (size_t)count * sizeof(float));
    const csr8_input local = { in->x, in->ldx, in->xq ? in->xq + t0 * in->ldq : NULL, in->ldq, NULL };
    const ss_isa base = ss_qisa_base(isa);
    if (count <= 2) {
        const dot_fn dot = dot_for(isa);
        for (ptrdiff_t t = 0; t < count; t++) {
            for (ptrdiff_t c = 0; c < k; c++) xw[t * k + c] = widen(input_value(&local, bytes, k4, t, c));
            float *yt = y + (t0 + t) * ldy;
            for (ptrdiff_t row = r0; row < r1; row++)
                yt[row] = out_value(dot(col, val, row_ptr[row], row_ptr[row + 1], xw + t * k), xs[t], wscale[row], bias, row);
            if (act != SS_ACT_NONE) ss_act_apply_isa(base, act, yt + r0, r1 - r0);
        }
        return SS_OK;
    }
    for (ptrdiff_t c = 0; c < k; c++)
        for (ptrdiff_t t = 0; t < ldt; t++) xw[c * ldt + t] = t < count ? widen(input_value(&local, bytes, k4, t, c)) : 0;
    int32_t *sums = (int32_t *)panel;
    float *yt = panel + SS_PANEL * TILE;
    for (ptrdiff_t c0 = r0; c0 < r1; c0 += SS_PANEL) {
        const ptrdiff_t cols = ss_min(SS_PANEL, r1 - c0);
        for (ptrdiff_t j = 0; j < cols; j++) {
            row_sums(isa, col, val, row_ptr[c0 + j], row_ptr[c0 + j + 1], xw, ldt, count, sums + j * ldt);
            for (ptrdiff_t t = 0; t < count; t++) yt[j * ldt + t] = out_value(sums[j * ldt + t], xs[t], wscale[c0 + j], bias, c0 + j);
        }
        ss_panel_store(base, act, yt, ldt, count, cols, y + t0 * ldy + c0, ldy);
    }
    return SS_OK;
}

static int csr8_run(ss_qisa isa, const int32_t *row_ptr, const int32_t *col, const int8_t *val, const float *wscale,
                    const float *bias, ptrdiff_t rows, ptrdiff_t k, const csr8_input *in, float *y, ptrdiff_t ldy,
                    ptrdiff_t m, ss_act_kind act, ptrdiff_t row_begin, ptrdiff_t row_end) {
    if (rows <= 0 || k <= 0 || m < 0 || !row_ptr || !wscale) return SS_ERR_ARGUMENT;
    row_begin = ss_max(0, row_begin);
    row_end = ss_min(rows, row_end);
    for (ptrdiff_t row = row_begin; row < row_end; row++) {
        const int64_t length = (int64_t)row_ptr[row + 1] - row_ptr[row];
        if (length < 0 || length > SS_CSR8_MAX_ROW_NONZEROS || row_ptr[row] < 0) return SS_ERR_ARGUMENT;
    }
    if (row_begin >= row_end || m == 0) return SS_OK;
    isa = ss_clamp_qisa(isa);
    for (ptrdiff_t t0 = 0; t0 < m; t0 += TILE) {
        const int status = csr8_chunk(isa, row_ptr, col, val, wscale, bias, k, in, t0, ss_min(TILE, m - t0), y, ldy, act,
                                      row_begin, row_end);
        if (status != SS_OK) return status;
    }
    return SS_OK;
}

int ss_csr8_gemm_rows_isa(ss_qisa isa, const int32_t *row_ptr, const int32_t *col, const int8_t *val,
                          const float *wscale, const float *bias, ptrdiff_t rows, ptrdiff_t k,
                          const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t m,
                          ss_act_kind act, ptrdiff_t row_begin, ptrdiff_t row_end) {
    if (!x || ldx < k) return SS_ERR_ARGUMENT;
    const csr8_input in = { x, ldx, NULL, 0, NULL };
    return csr8_run(isa, row_ptr, col, val, wscale, bias, rows, k, &in, y, ldy, m, act, row_begin, row_end);
}

int ss_csr8_gemm_quantized_rows_isa(ss_qisa isa, const int32_t *row_ptr, const int32_t *col, const int8_t *val,
                                    const float *wscale, const float *bias, ptrdiff_t rows, ptrdiff_t k,
                                    const int8_t *xq, ptrdiff_t ldq, const float *xscale, float *y, ptrdiff_t ldy,
                                    ptrdiff_t m, ss_act_kind act, ptrdiff_t row_begin, ptrdiff_t row_end) {
    if (!xq || !xscale || ldq < k) return SS_ERR_ARGUMENT;
    const csr8_input in = { NULL, 0, xq, ldq, xscale };
    return csr8_run(isa, row_ptr, col, val, wscale, bias, rows, k, &in, y, ldy, m, act, row_begin, row_end);
}
