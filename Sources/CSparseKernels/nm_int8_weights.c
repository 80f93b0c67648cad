/*
 * N:M-sparse weight-only int8 linear layers: the nm.h pack with int8 values, widened to fp32 in
 * registers by the in-register-selection kernel. Layout and outline in include/nm_int8_weights.h.
 */
#include "nm_int8_weights.h"
#include "internal.h"
#include <string.h>

static int m_ok(int m) { return m == 4 || m == 8 || m == 16; }
static int group_ok(int m, ptrdiff_t group) { return group == 0 || (group > 0 && group % m == 0); }
static ptrdiff_t scale_groups(ptrdiff_t k, ptrdiff_t group) { return group == 0 ? 1 : ss_ceil_div(k, group); }

ptrdiff_t ss_nmw8_scale_count(ptrdiff_t rows, ptrdiff_t k, int m, ptrdiff_t group) {
    if (rows <= 0 || k <= 0 || !m_ok(m) || !group_ok(m, group)) return 0;
    return ss_ceil_div(rows, SS_PANEL) * SS_PANEL * scale_groups(k, group);
}

int ss_nmw8_pack_scales(const float *scales, ptrdiff_t rows, ptrdiff_t k, int m, ptrdiff_t group, float *sp) {
    if (ss_nmw8_scale_count(rows, k, m, group) == 0) return SS_ERR_ARGUMENT;
    const ptrdiff_t GS = scale_groups(k, group), P = ss_ceil_div(rows, SS_PANEL);
    for (ptrdiff_t p = 0; p < P; p++)
        for (ptrdiff_t gs = 0; gs < GS; gs++)
            for (int j = 0; j < SS_PANEL; j++) {
                const ptrdiff_t row = p * SS_PANEL + j;
                sp[(p * GS + gs) * SS_PANEL + j] = row < rows ? scales[row * GS + gs] : 0.0f;
            }
    return SS_OK;
}

/* One call's weights: G N:M groups of m inputs, GS scale groups, gpg N:M groups per scale group
 * (0: one scale per row). */
typedef struct {
    const int8_t *values;
    const char *indices;
    const float *sp, *bias;
    int n, m, relu;
    ptrdiff_t G, GS, gpg, rows;
} nmw8_op;

static const int8_t *panel_values(const nmw8_op *op, ptrdiff_t p) { return op->values + p * op->G * op->n * SS_PANEL; }
static const char *panel_indices(const nmw8_op *op, ptrdiff_t p) {
    return op->indices + p * op->G * op->n * (op->m == 4 ? 4 : 8);
}

/* Lane j's position (0..m-1) in index word e of a panel (nm.h layout). */
static int lane_pos(const char *ip, int m, ptrdiff_t e, int j) {
    if (m == 4) return (int)((((const uint32_t *)ip)[e] >> (2 * j)) & 3u);
    return (int)((((const uint64_t *)ip)[e] >> (32 * (j & 1) + 4 * (j >> 1))) & 15u);
}

/* One token row (xp zero padded past K) over panels [p0, p1). */
static void rows_portable(const nmw8_op *op, ptrdiff_t p0, ptrdiff_t p1, const float *xp, float *y) {
    for (ptrdiff_t p = p0; p < p1; p++) {
        const int8_t *vp = panel_values(op, p);
        const char *ip = panel_indices(op, p);
        const float *spp = op->sp + p * op->GS * SS_PANEL;
        float acc[SS_PANEL] = { 0 };
        for (ptrdiff_t g = 0; g < op->G; g++) {
            const float *xg = xp + g * op->m, *sg = op->gpg ? spp + g / op->gpg * SS_PANEL : NULL;
            for (int s = 0; s < op->n; s++) {
                const ptrdiff_t e = g * op->n + s;
                for (int j = 0; j < SS_PANEL; j++) {
                    const float w = sg ? (float)vp[e * SS_PANEL + j] * sg[j] : (float)vp[e * SS_PANEL + j];
                    acc[j] += w * xg[lane_pos(ip, op->m, e, j)];
                }
            }
        }
        for (ptrdiff_t j = 0; j < SS_PANEL && p * SS_PANEL + j < op->rows; j++) {
            float v = (op->gpg ? acc[j] : acc[j] * spp[j]) + (op->bias ? op->bias[p * SS_PANEL + j] : 0.0f);
            y[p * SS_PANEL + j] = op->relu && v < 0.0f ? 0.0f : v;
        }
    }
}

#ifdef SS_X86
/* The inputs of group g where every lane's permute index can reach them: m = 4 repeated in each
 * 128-bit lane (the decoded index carries the next lanes' bits above bit 1), m = 8 in the low
 * half, m = 16 the whole register. */
SS_T512 SS_AI __m512 inputs512(const float *x, ptrdiff_t g, const int MC) {
    if (MC == 4) return _mm512_broadcast_f32x4(_mm_loadu_ps(x + 4 * g));
    if (MC == 8) return _mm512_castps256_ps512(_mm256_loadu_ps(x + 8 * g));
    return _mm512_loadu_ps(x + 16 * g);
}

SS_T512 SS_AI __m512i lanes512(const char *ip, ptrdiff_t e, const int MC) {
    const __m512i shifts = MC == 4 ? _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
                                   : _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
    const __m512i word = MC == 4 ? _mm512_set1_epi32((int)((const uint32_t *)ip)[e])
                                 : _mm512_set1_epi64((long long)((const uint64_t *)ip)[e]);
    return _mm512_srlv_epi32(word, shifts);
}

SS_T512 SS_AI __m512 widen512(const int8_t *v) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)v))); }

enum { UMAX = 4 };

/* Groups [g, g + US) of one panel into the T rows' accumulators (chain u for group g + u); US is a
 * constant, so every accumulator index is one (a run-time group count kept them on the stack). */
SS_T512 SS_AI void groups512(const nmw8_op *op, const int8_t *vp, const char *ip, const float *spp, const float *x,
                             ptrdiff_t ldxp, ptrdiff_t g, __m512 a[][UMAX], const int US, const int MC, const int T,
                             const int GROUPED) {
    __m512 xg[8][UMAX], sv[UMAX];
    for (int u = 0; u < US; u++) {
        if (GROUPED) sv[u] = _mm512_loadu_ps(spp + (g + u) / op->gpg * SS_PANEL);
        for (int i = 0; i < T; i++) xg[i][u] = inputs512(x + i * ldxp, g + u, MC);
    }
    for (int s = 0; s < op->n; s++)
        for (int u = 0; u < US; u++) {
            const ptrdiff_t e = (g + u) * op->n + s;
            const __m512i iv = lanes512(ip, e, MC);
            __m512 w = widen512(vp + e * SS_PANEL);
            if (GROUPED) w = _mm512_mul_ps(w, sv[u]);
            for (int i = 0; i < T; i++) a[i][u] = _mm512_fmadd_ps(w, _mm512_permutexvar_ps(iv, xg[i][u]), a[i][u]);
        }
}

/* T token rows (stride ldxp) sharing each slot's decode and widening; U groups in flight. */
SS_T512 SS_AI void select512(const nmw8_op *op, ptrdiff_t p0, ptrdiff_t p1, const float *x, ptrdiff_t ldxp, float *y,
                             ptrdiff_t ldy, const int MC, const int T, const int GROUPED) {
    const int U = T == 1 ? 4 : T == 2 ? 2 : 1;
    const ptrdiff_t G = op->G;
    for (ptrdiff_t p = p0; p < p1; p++) {
        const int8_t *vp = panel_values(op, p);
        const char *ip = panel_indices(op, p);
        const float *spp = op->sp + p * op->GS * SS_PANEL;
        __m512 a[8][UMAX];
        for (int i = 0; i < T; i++)
            for (int u = 0; u < U; u++) a[i][u] = _mm512_setzero_ps();
        ptrdiff_t g = 0;
        for (; g + U <= G; g += U) groups512(op, vp, ip, spp, x, ldxp, g, a, U, MC, T, GROUPED);
        for (; g < G; g++) groups512(op, vp, ip, spp, x, ldxp, g, a, 1, MC, T, GROUPED);
        const ptrdiff_t valid = op->rows - p * SS_PANEL;
        const __mmask16 mask = valid >= SS_PANEL ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1u);
        const __m512 b = op->bias ? _mm512_maskz_loadu_ps(mask, op->bias + p * SS_PANEL) : _mm512_setzero_ps();
        const __m512 scale = _mm512_loadu_ps(spp);
        for (int i = 0; i < T; i++) {
            __m512 sum = a[i][0];
            for (int u = 1; u < U; u++) sum = _mm512_add_ps(sum, a[i][u]);
            __m512 v = GROUPED ? _mm512_add_ps(sum, b) : _mm512_fmadd_ps(sum, scale, b);
            if (op->relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
            _mm512_mask_storeu_ps(y + i * ldy + p * SS_PANEL, mask, v);
        }
    }
}

typedef void (*select512_fn)(const nmw8_op *, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t, float *, ptrdiff_t);
#define SEL512(MC, T)                                                                                                  \
    SS_T512 static void s512_##MC##_##T(const nmw8_op *op, ptrdiff_t p0, ptrdiff_t p1, const float *x, ptrdiff_t ldxp, \
                                        float *y, ptrdiff_t ldy) { select512(op, p0, p1, x, ldxp, y, ldy, MC, T, 0); }  \
    SS_T512 static void g512_##MC##_##T(const nmw8_op *op, ptrdiff_t p0, ptrdiff_t p1, const float *x, ptrdiff_t ldxp, \
                                        float *y, ptrdiff_t ldy) { select512(op, p0, p1, x, ldxp, y, ldy, MC, T, 1); }
#define SEL512_M(MC) SEL512(MC, 1) SEL512(MC, 2) SEL512(MC, 4) SEL512(MC, 8)
SEL512_M(4) SEL512_M(8) SEL512_M(16)
/* [grouped][m = 4, 8, 16][rows 1, 2, 4, 8] */
static const select512_fn table512[2][3][4] = {
    { { s512_4_1, s512_4_2, s512_4_4, s512_4_8 }, { s512_8_1, s512_8_2, s512_8_4, s512_8_8 },
      { s512_16_1, s512_16_2, s512_16_4, s512_16_8 } },
    { { g512_4_1, g512_4_2, g512_4_4, g512_4_8 }, { g512_8_1, g512_8_2, g512_8_4, g512_8_8 },
      { g512_16_1, g512_16_2, g512_16_4, g512_16_8 } },
};

/* AVX2: the 16 lanes of a slot as two halves of 8; the selected inputs of each half. */
SS_T256 SS_AI void pick256(const char *ip, ptrdiff_t e, const float *x, ptrdiff_t g, const int MC, __m256 *lo, __m256 *hi) {
    if (MC == 4) {
        const __m256 xg = _mm256_broadcast_ps((const __m128 *)(x + 4 * g));
        const __m256i w = _mm256_set1_epi32((int)((const uint32_t *)ip)[e]);
        *lo = _mm256_permutevar8x32_ps(xg, _mm256_srlv_epi32(w, _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)));
        *hi = _mm256_permutevar8x32_ps(xg, _mm256_srlv_epi32(w, _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30)));
        return;
    }
    const __m256i w = _mm256_set1_epi64x((long long)((const uint64_t *)ip)[e]);
    const __m256i il = _mm256_srlv_epi32(w, _mm256_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12));
    const __m256i ih = _mm256_srlv_epi32(w, _mm256_setr_epi32(16, 16, 20, 20, 24, 24, 28, 28));
    const __m256 x0 = _mm256_loadu_ps(x + MC * g);
    if (MC == 8) {
        *lo = _mm256_permutevar8x32_ps(x0, il);
        *hi = _mm256_permutevar8x32_ps(x0, ih);
        return;
    }
    const __m256 x1 = _mm256_loadu_ps(x + MC * g + 8);  /* bit 3 of a position picks these */
    *lo = _mm256_blendv_ps(_mm256_permutevar8x32_ps(x0, il), _mm256_permutevar8x32_ps(x1, il), _mm256_castsi256_ps(_mm256_slli_epi32(il, 28)));
    *hi = _mm256_blendv_ps(_mm256_permutevar8x32_ps(x0, ih), _mm256_permutevar8x32_ps(x1, ih), _mm256_castsi256_ps(_mm256_slli_epi32(ih, 28)));
}

SS_T256 SS_AI __m256 widen256(const int8_t *v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)v))); }

/* One token row; two groups in flight. */
SS_T256 SS_AI void select256(const nmw8_op *op, ptrdiff_t p0, ptrdiff_t p1, const float *x, float *y, const int MC, const int GROUPED) {
    for (ptrdiff_t p = p0; p < p1; p++) {
        const int8_t *vp = panel_values(op, p);
        const char *ip = panel_indices(op, p);
        const float *spp = op->sp + p * op->GS * SS_PANEL;
        __m256 lo[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() }, hi[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() };
        for (ptrdiff_t g = 0; g < op->G; g++) {
            const int u = (int)(g & 1);
            __m256 sl = _mm256_setzero_ps(), sh = sl;
            if (GROUPED) {
                sl = _mm256_loadu_ps(spp + g / op->gpg * SS_PANEL);
                sh = _mm256_loadu_ps(spp + g / op->gpg * SS_PANEL + 8);
            }
            for (int s = 0; s < op->n; s++) {
                const ptrdiff_t e = g * op->n + s;
                __m256 xl, xh, wl = widen256(vp + e * SS_PANEL), wh = widen256(vp + e * SS_PANEL + 8);
                pick256(ip, e, x, g, MC, &xl, &xh);
                if (GROUPED) { wl = _mm256_mul_ps(wl, sl); wh = _mm256_mul_ps(wh, sh); }
                lo[u] = _mm256_fmadd_ps(wl, xl, lo[u]);
                hi[u] = _mm256_fmadd_ps(wh, xh, hi[u]);
            }
        }
        __m256 sl = _mm256_add_ps(lo[0], lo[1]), sh = _mm256_add_ps(hi[0], hi[1]);
        if (!GROUPED) { sl = _mm256_mul_ps(sl, _mm256_loadu_ps(spp)); sh = _mm256_mul_ps(sh, _mm256_loadu_ps(spp + 8)); }
        float out[SS_PANEL];
        _mm256_storeu_ps(out, sl);
        _mm256_storeu_ps(out + 8, sh);
        for (ptrdiff_t j = 0; j < SS_PANEL && p * SS_PANEL + j < op->rows; j++) {
            const float v = out[j] + (op->bias ? op->bias[p * SS_PANEL + j] : 0.0f);
            y[p * SS_PANEL + j] = op->relu && v < 0.0f ? 0.0f : v;
        }
    }
}

typedef void (*select256_fn)(const nmw8_op *, ptrdiff_t, ptrdiff_t, const float *, float *);
#define SEL256(MC)                                                                                                      \
    SS_T256 static void s256_##MC(const nmw8_op *op, ptrdiff_t p0, ptrdiff_t p1, const float *x, float *y) {          \
        select256(op, p0, p1, x, y, MC, 0);                                                                           \
    }                                                                                                                   \
    SS_T256 static void g256_##MC(const nmw8_op *op, ptrdiff_t p0, ptrdiff_t p1, const float *x, float *y) {          \
        select256(op, p0, p1, x, y, MC, 1);                                                                           \
    }
SEL256(4) SEL256(8) SEL256(16)
static const select256_fn table256[2][3] = { { s256_4, s256_8, s256_16 }, { g256_4, g256_8, g256_16 } };
#endif

/* `count` prepared rows (stride padded) over panels [p0, p1): AVX-512 in blocks of 8, 4, 2, 1
 * rows sharing each decode, elsewhere row by row. */
static void select_rows(ss_isa isa, const nmw8_op *op, ptrdiff_t p0, ptrdiff_t p1, const float *xp, ptrdiff_t padded,
                        ptrdiff_t count, float *y, ptrdiff_t ldy) {
    const int mi = op->m == 4 ? 0 : op->m == 8 ? 1 : 2, grouped = op->gpg != 0;
#ifdef SS_X86
    if (isa == SS_ISA_AVX512) {
        for (ptrdiff_t done = 0; done < count;) {
            const ptrdiff_t left = count - done;
            const int ti = left >= 8 ? 3 : left >= 4 ? 2 : left >= 2 ? 1 : 0;
            table512[grouped][mi][ti](op, p0, p1, xp + done * padded, padded, y + done * ldy, ldy);
            done += (ptrdiff_t)1 << ti;
        }
        return;
    }
    if (isa == SS_ISA_AVX2) {
        for (ptrdiff_t i = 0; i < count; i++) table256[grouped][mi](op, p0, p1, xp + i * padded, y + i * ldy);
        return;
    }
#endif
    (void)mi;
    (void)grouped;
    for (ptrdiff_t i = 0; i < count; i++) rows_portable(op, p0, p1, xp + i * padded, y + i * ldy);
}

/* Weight bytes per pass over a batch of rows (as nm.c's selection kernel). */
enum { CHUNK = 32, BLOCK_BYTES = 65536 };

int ss_nmw8_gemm_panels_isa(ss_isa isa, const int8_t *values, const void *indices, const float *sp, int n, int m,
                            ptrdiff_t group, const float *bias, ptrdiff_t rows, ptrdiff_t k,
                            const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                            ss_act_kind act, ptrdiff_t panel_begin, ptrdiff_t panel_end) {
    if (!m_ok(m) || n < 1 || n >= m || !group_ok(m, group) || rows <= 0 || k <= 0 || r < 0 || ldx < k) return SS_ERR_ARGUMENT;
    panel_begin = ss_max(0, panel_begin);
    panel_end = ss_min(ss_ceil_div(rows, SS_PANEL), panel_end);
    if (panel_begin >= panel_end || r == 0) return SS_OK;
    isa = ss_clamp_isa(isa);
    const nmw8_op op = { .values = values, .indices = indices, .sp = sp, .bias = bias, .n = n, .m = m,
                         .relu = act == SS_ACT_RELU, .G = ss_ceil_div(k, m), .GS = scale_groups(k, group),
                         .gpg = group / m, .rows = rows };
    const ptrdiff_t padded = op.G * m + 16, block = ss_max(1, BLOCK_BYTES / (op.G * n * SS_PANEL));
    float *xp = ss_thread_scratch(SS_SCRATCH_ROWS, (size_t)(ss_min(CHUNK, r) * padded));
    if (!xp) return SS_ERR_NO_MEMORY;
    for (ptrdiff_t i0 = 0; i0 < r; i0 += CHUNK) {
        const ptrdiff_t count = ss_min(CHUNK, r - i0);
        for (ptrdiff_t i = 0; i < count; i++) {
            memcpy(xp + i * padded, x + (i0 + i) * ldx, (size_t)k * sizeof(float));
            memset(xp + i * padded + k, 0, (size_t)(padded - k) * sizeof(float));
        }
        for (ptrdiff_t p = panel_begin; p < panel_end; p += block)
            select_rows(isa, &op, p, ss_min(panel_end, p + block), xp, padded, count, y + i0 * ldy, ldy);
    }
    if (act != SS_ACT_NONE && act != SS_ACT_RELU) {
        const ptrdiff_t c0 = panel_begin * SS_PANEL, c1 = ss_min(panel_end * SS_PANEL, rows);
        for (ptrdiff_t i = 0; i < r; i++) ss_act_apply_isa(isa, act, y + i * ldy + c0, c1 - c0);
    }
    return SS_OK;
}
