/*
 * 2:4-sparse W8A8 GEMV (layout and kernel in include/nm_int8.h).
 */
#include "nm_int8.h"
#include "int8.h"
#include "internal.h"
#include <string.h>

#define SS_T512VBMI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi")))

enum { BLOCK = 8, LANE_BYTES = 4 };

static ptrdiff_t blocks_of(ptrdiff_t k) { return ss_ceil_div(k, BLOCK); }
ptrdiff_t ss_nm8_value_bytes(ptrdiff_t n, ptrdiff_t k) { return n <= 0 || k <= 0 ? 0 : ss_q8_padded_rows(n) * blocks_of(k) * LANE_BYTES; }
ptrdiff_t ss_nm8_code_bytes(ptrdiff_t n, ptrdiff_t k) {
    return n <= 0 || k <= 0 ? 0 : ss_q8_padded_rows(n) * ss_ceil_div(blocks_of(k), SS_NM8_CODE_BLOCKS) * SS_NM8_CODE_BLOCKS;
}

/* Row `row`'s group g (4 inputs from 4g): its two slots' values and positions. */
static int pack_group(const int8_t *w, ptrdiff_t k, ptrdiff_t g, int8_t value[2], int position[2]) {
    int used = 0, taken = 0;
    for (int c = 0; c < 4 && 4 * g + c < k; c++) {
        if (w[4 * g + c] == 0) continue;
        if (used == 2) return SS_ERR_ARGUMENT;
        value[used] = w[4 * g + c];
        position[used++] = c;
        taken |= 1 << c;
    }
    for (int c = 0; used < 2; c++)
        if (!(taken & (1 << c))) { value[used] = 0; position[used++] = c; taken |= 1 << c; }
    return SS_OK;
}

int ss_nm8_pack(const int8_t *q, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldq, int8_t *values, uint8_t *codes,
                int32_t *correction) {
    if (n <= 0 || k <= 0 || ldq < k || k > 65536) return SS_ERR_ARGUMENT;
    const ptrdiff_t B = blocks_of(k), rows = ss_q8_padded_rows(n);
    memset(values, 0, (size_t)ss_nm8_value_bytes(n, k));
    memset(codes, SS_NM8_FILLER_CODE, (size_t)ss_nm8_code_bytes(n, k));
    for (ptrdiff_t row = 0; row < rows; row++) {
        const ptrdiff_t p = row / SS_PANEL, j = row % SS_PANEL;
        int32_t sum = 0;
        for (ptrdiff_t b = 0; b < B; b++) {
            const ptrdiff_t lane = (p * B + b) * SS_PANEL + j;
            uint8_t code = 0;
            for (int half = 0; half < 2; half++) {
                int8_t v[2] = { 0, 0 };
                int pos[2] = { 0, 1 };
                if (row < n && pack_group(q + row * ldq, k, 2 * b + half, v, pos) != SS_OK) return SS_ERR_ARGUMENT;
                for (int s = 0; s < 2; s++) {
                    values[lane * LANE_BYTES + 2 * half + s] = v[s];
                    code |= (uint8_t)(pos[s] << (2 * (2 * half + s)));
                    sum += v[s];
                }
            }
            codes[ss_nm8_code_offset(p, b, j, B)] = code;
        }
        correction[row] = 128 * sum;
    }
    return SS_OK;
}

/* One token row (xq: K8 bytes, +128 offset) over panels [p0, p1): int32 sums into acc_out. */
static void row_portable(const int8_t *values, const uint8_t *codes, ptrdiff_t B, const uint8_t *xq,
                         ptrdiff_t p0, ptrdiff_t p1, int32_t *sums) {
    for (ptrdiff_t p = p0; p < p1; p++)
        for (int j = 0; j < SS_PANEL; j++) {
            int32_t acc = 0;
            for (ptrdiff_t b = 0; b < B; b++) {
                const ptrdiff_t lane = (p * B + b) * SS_PANEL + j;
                const uint8_t code = codes[ss_nm8_code_offset(p, b, j, B)];
                for (int q = 0; q < 4; q++)
                    acc += xq[BLOCK * b + 4 * (q >> 1) + ((code >> (2 * q)) & 3)] * values[lane * LANE_BYTES + q];
            }
            sums[(p - p0) * SS_PANEL + j] = acc;
        }
}

#ifdef SS_X86
/* Block t (0..3) of a 4-block code group (one zmm, include/nm_int8.h) as vpshufb indices: byte q of
 * lane j = 4*(q>>1) + position q, picked from the lane pair's qword by one vpmultishiftqb. */
SS_T512VBMI SS_AI __m512i decode(__m512i group, const int t) {
    const long long base = 0x0E0C0A0806040200LL;  /* bit offsets 0,2,4,6 (row 2w) | 8,10,12,14 (row 2w+1) */
    const __m512i fields = _mm512_multishift_epi64_epi8(_mm512_set1_epi64(base + 0x1010101010101010LL * t), group);
    /* (fields & 3) | (0, 0, 4, 4) per lane */
    return _mm512_ternarylogic_epi32(fields, _mm512_set1_epi32(0x03030303), _mm512_set1_epi32(0x04040000), 0xEA);
}

/* Block b (= t of its code group) of one panel for T token rows into accumulator chain c. */
SS_T512VBMI SS_AI void block512(const int8_t *vp, __m512i group, ptrdiff_t b, const int t, const uint8_t *xq, ptrdiff_t k8,
                                const int T, __m512i acc[][4], const int c) {
    const __m512i positions = decode(group, t);
    const __m512i w = _mm512_loadu_si512(vp + b * SS_PANEL * LANE_BYTES);
    for (int i = 0; i < T; i++) {
        long long xb;
        memcpy(&xb, xq + i * k8 + BLOCK * b, 8);
        const __m512i xs = _mm512_shuffle_epi8(_mm512_set1_epi64(xb), positions);
        acc[i][c] = _mm512_dpbusd_epi32(acc[i][c], xs, w);
    }
}

/* Panel p for T token rows (xq: T rows of K8 bytes, stride k8) sharing each block's decode: the
 * rows' int32 sums in total[0..T). Four (one row), two (2 or 4 rows) or one (8 rows) blocks
 * in flight per row. (16 rows per decode measured slower than two passes of 8.) One code load
 * per 4 blocks; every accumulator index is a constant (a `b % chains` index kept them on the
 * stack: a store-to-load chain per block). */
SS_T512VBMI SS_AI void panel512(const int8_t *values, const uint8_t *codes, ptrdiff_t B, const uint8_t *xq, ptrdiff_t k8,
                                ptrdiff_t p, const int T, __m512i total[]) {
    enum { CHAINS = 4, G = SS_NM8_CODE_BLOCKS };
    const int chains = T == 1 ? 4 : T <= 4 ? 2 : 1;  /* independent vpdpbusd chains per row */
    const ptrdiff_t groups = ss_ceil_div(B, G);
    const int8_t *vp = values + p * B * SS_PANEL * LANE_BYTES;
    const uint8_t *cp = codes + p * groups * G * SS_PANEL;
    __m512i acc[8][CHAINS];
    for (int i = 0; i < T; i++)
        for (int c = 0; c < CHAINS; c++) acc[i][c] = _mm512_setzero_si512();
    ptrdiff_t b = 0;
    for (; b + G <= B; b += G) {
        const __m512i group = _mm512_loadu_si512(cp + b * SS_PANEL);
        for (int t = 0; t < G; t++) block512(vp, group, b + t, t, xq, k8, T, acc, t % chains);
    }
    if (b < B) {
        const __m512i group = _mm512_loadu_si512(cp + b * SS_PANEL);
        for (int t = 0; t < G - 1; t++)
            if (b + t < B) block512(vp, group, b + t, t, xq, k8, T, acc, t % chains);
    }
    for (int i = 0; i < T; i++) {
        total[i] = acc[i][0];
        for (int c = 1; c < chains; c++) total[i] = _mm512_add_epi32(total[i], acc[i][c]);
    }
}

/* Panels [p0, p1) for T token rows: their int32 sums into `sums` (T rows, stride `ls`). */
SS_T512VBMI SS_AI void rows512_body(const int8_t *values, const uint8_t *codes, ptrdiff_t B, const uint8_t *xq, ptrdiff_t k8,
                                    ptrdiff_t p0, ptrdiff_t p1, int32_t *sums, ptrdiff_t ls, const int T) {
    for (ptrdiff_t p = p0; p < p1; p++) {
        __m512i total[8];
        panel512(values, codes, B, xq, k8, p, T, total);
        for (int i = 0; i < T; i++) _mm512_storeu_si512(sums + i * ls + (p - p0) * SS_PANEL, total[i]);
    }
}

SS_T512VBMI static void rows512_1(const int8_t *v, const uint8_t *c, ptrdiff_t B, const uint8_t *xq, ptrdiff_t k8, ptrdiff_t p0,
                                  ptrdiff_t p1, int32_t *sums, ptrdiff_t ls) { rows512_body(v, c, B, xq, k8, p0, p1, sums, ls, 1); }
SS_T512VBMI static void rows512_2(const int8_t *v, const uint8_t *c, ptrdiff_t B, const uint8_t *xq, ptrdiff_t k8, ptrdiff_t p0,
                                  ptrdiff_t p1, int32_t *sums, ptrdiff_t ls) { rows512_body(v, c, B, xq, k8, p0, p1, sums, ls, 2); }
SS_T512VBMI static void rows512_4(const int8_t *v, const uint8_t *c, ptrdiff_t B, const uint8_t *xq, ptrdiff_t k8, ptrdiff_t p0,
                                  ptrdiff_t p1, int32_t *sums, ptrdiff_t ls) { rows512_body(v, c, B, xq, k8, p0, p1, sums, ls, 4); }
SS_T512VBMI static void rows512_8(const int8_t *v, const uint8_t *c, ptrdiff_t B, const uint8_t *xq, ptrdiff_t k8, ptrdiff_t p0,
                                  ptrdiff_t p1, int32_t *sums, ptrdiff_t ls) { rows512_body(v, c, B, xq, k8, p0, p1, sums, ls, 8); }

/* y[c..c+16) ∩ [.., c1) = act?(xs * wscale * (sum - correction) + bias) from one panel's int32
 * sums, the int8.c rescaling. */
SS_T512 SS_AI void rescale_panel512(__m512i sum, const int32_t *correction, const float *wscale, const float *bias, __m512 xv,
                                    ptrdiff_t c, ptrdiff_t c1, int relu, float *y) {
    const __mmask16 m = c1 - c >= SS_PANEL ? (__mmask16)0xFFFF : (__mmask16)((1u << (c1 - c)) - 1u);
    const __m512 s = _mm512_mul_ps(xv, _mm512_loadu_ps(wscale + c));
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(sum, _mm512_loadu_si512(correction + c))), s);
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + c));
    if (relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);
    _mm512_mask_storeu_ps(y + c, m, v);
}

/* One row's columns [c0, c1) (sums relative to c0 = a panel boundary) rescaled into y. */
SS_T512 static void rescale_row512(const int32_t *sums, const int32_t *correction, const float *wscale, const float *bias,
                                   float xs, ptrdiff_t c0, ptrdiff_t c1, int relu, float *y) {
    const __m512 xv = _mm512_set1_ps(xs);
    for (ptrdiff_t c = c0; c < c1; c += SS_PANEL)
        rescale_panel512(_mm512_loadu_si512(sums + c - c0), correction, wscale, bias, xv, c, c1, relu, y);
}

/* One token row (the GEMV): each panel's sums rescaled into y at once (no sums round trip). */
SS_T512VBMI static void gemv512(const int8_t *values, const uint8_t *codes, ptrdiff_t B, const uint8_t *xq, ptrdiff_t p0,
                                ptrdiff_t p1, const int32_t *correction, const float *wscale, const float *bias, float xs,
                                ptrdiff_t c1, int relu, float *y) {
    const __m512 xv = _mm512_set1_ps(xs);
    for (ptrdiff_t p = p0; p < p1; p++) {
        __m512i total[1];
        panel512(values, codes, B, xq, 0, p, 1, total);
        rescale_panel512(total[0], correction, wscale, bias, xv, p * SS_PANEL, c1, relu, y);
    }
}
#endif

/* Rows [0, count) of int32 sums (stride ls, relative to column n_begin) rescaled into y's columns
 * [n_begin, n_end), ReLU fused. */
static void rescale_rows(ss_qisa isa, const int32_t *sums, ptrdiff_t ls, const int32_t *correction, const float *wscale,
                         const float *bias, const float *xs, int count, ptrdiff_t n_begin, ptrdiff_t n_end, int relu,
                         float *y, ptrdiff_t ldy) {
    for (int i = 0; i < count; i++) {
        float *yi = y + i * ldy;
#ifdef SS_X86
        if (isa >= SS_QISA_AVX512) {
            rescale_row512(sums + i * ls, correction, wscale, bias, xs[i], n_begin, n_end, relu, yi);
            continue;
        }
#endif
        for (ptrdiff_t c = n_begin; c < n_end; c++) {
            const float s = xs[i] * wscale[c];
            float v = (float)(sums[i * ls + c - n_begin] - correction[c]) * s;
            if (bias) v = v + bias[c];
            yi[c] = relu && v < 0.0f ? 0.0f : v;
        }
    }
}

int ss_nm8_gemm_cols_isa(ss_qisa isa, const int8_t *values, const uint8_t *codes, const int32_t *correction,
                         const float *wscale, const float *bias, ptrdiff_t n, ptrdiff_t k, const float *x, ptrdiff_t ldx,
                         ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end) {
    if (ss_check_columns(n, k, m, n_begin, n_end) != SS_OK || ldx < k || k > 65536) return SS_ERR_ARGUMENT;
    if (m == 0 || n_begin == n_end) return SS_OK;
    isa = ss_clamp_qisa(isa);
    const ptrdiff_t B = blocks_of(k), k8 = B * BLOCK, p0 = n_begin / SS_PANEL, p1 = ss_ceil_div(n_end, SS_PANEL);
    const ptrdiff_t ls = (p1 - p0) * SS_PANEL;
    const int relu = act == SS_ACT_RELU;
    enum { CHUNK = 16 };
    /* up to 16 quantized rows (K8 bytes each, padding = 128 i.e. zero) and their panels' int32 sums */
    float *scratch = ss_thread_scratch(SS_SCRATCH_QUANT, (size_t)(CHUNK * (k8 / 4 + 1 + ls)));
    if (!scratch) return SS_ERR_NO_MEMORY;
    int32_t *sums = (int32_t *)scratch;
    uint8_t *xq = (uint8_t *)(sums + CHUNK * ls);
    float xs[CHUNK];
    for (ptrdiff_t i0 = 0; i0 < m; i0 += CHUNK) {
        const int count = (int)ss_min(CHUNK, m - i0);
        float *yc = y + i0 * ldy;
        memset(xq, 128, (size_t)(count * k8));
        for (int i = 0; i < count; i++) ss_q8_quantize_rows_isa(isa, x + (i0 + i) * ldx, ldx, 1, k, xq + i * k8, xs + i);
#ifdef SS_X86
        if (isa >= SS_QISA_AVX512_DOT && count == 1) {
            gemv512(values, codes, B, xq, p0, p1, correction, wscale, bias, xs[0], n_end, relu, yc);
        } else if (isa >= SS_QISA_AVX512_DOT) {
            typedef void (*rows_fn)(const int8_t *, const uint8_t *, ptrdiff_t, const uint8_t *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                    int32_t *, ptrdiff_t);
            static const rows_fn table[4] = { rows512_1, rows512_2, rows512_4, rows512_8 };
            for (int done = 0; done < count;) {
                const int left = count - done, ti = left >= 8 ? 3 : left >= 4 ? 2 : left >= 2 ? 1 : 0;
                table[ti](values, codes, B, xq + done * k8, k8, p0, p1, sums + done * ls, ls);
                done += 1 << ti;
            }
            rescale_rows(isa, sums, ls, correction, wscale, bias, xs, count, n_begin, n_end, relu, yc, ldy);
        } else
#endif
        {
            for (int i = 0; i < count; i++) row_portable(values, codes, B, xq + i * k8, p0, p1, sums + i * ls);
            rescale_rows(isa, sums, ls, correction, wscale, bias, xs, count, n_begin, n_end, relu, yc, ldy);
        }
        if (act != SS_ACT_NONE && !relu)
            for (int i = 0; i < count; i++) ss_act_apply_isa(ss_qisa_base(isa), act, yc + i * ldy + n_begin, n_end - n_begin);
    }
    return SS_OK;
}
