/*
 * N:M-sparse linear layers: packing, the in-register-selection GEMV and the weight-broadcast
 * GEMM. Layout and kernel outline in include/nm.h. Every kernel has AVX-512, AVX2 and portable
 * C forms; the instruction set is chosen per call and clamped to what the CPU has.
 */
#include "nm.h"
#include "internal.h"
#include "status.h"
#include "weight_broadcast.h"
#include <stdlib.h>
#include <string.h>

static int m_supported(int m) { return m == 4 || m == 8 || m == 16; }
static int nm_supported(int n, int m) { return m_supported(m) && n >= 1 && n < m; }
static ptrdiff_t panels_of(ptrdiff_t rows) { return ss_ceil_div(rows, SS_PANEL); }
static ptrdiff_t groups_of(ptrdiff_t k, int m) { return ss_ceil_div(k, m); }

ptrdiff_t ss_nm_value_count(ptrdiff_t rows, ptrdiff_t k, int n, int m) {
    if (rows <= 0 || k <= 0 || !nm_supported(n, m)) return 0;
    return panels_of(rows) * groups_of(k, m) * n * SS_PANEL;
}

ptrdiff_t ss_nm_index_count(ptrdiff_t rows, ptrdiff_t k, int n, int m) {
    if (rows <= 0 || k <= 0 || !nm_supported(n, m)) return 0;
    return panels_of(rows) * groups_of(k, m) * n;
}

/* Bit offset of lane j's position inside its index word. */
static inline int lane_shift(int m, int j) { return m == 4 ? 2 * j : 32 * (j & 1) + 4 * (j >> 1); }

static inline int lane_position(const void *indices, int m, ptrdiff_t word, int j) {
    if (m == 4) return (int)((((const uint32_t *)indices)[word] >> lane_shift(4, j)) & 3u);
    return (int)((((const uint64_t *)indices)[word] >> lane_shift(m, j)) & 15u);
}

static inline void set_position(void *indices, int m, ptrdiff_t word, int j, int c) {
    if (m == 4) ((uint32_t *)indices)[word] |= (uint32_t)c << lane_shift(4, j);
    else ((uint64_t *)indices)[word] |= (uint64_t)c << lane_shift(m, j);
}

int ss_nm_pack(const float *w, ptrdiff_t rows, ptrdiff_t k, ptrdiff_t ldw, int n, int m,
               float *values, void *indices) {
    if (!nm_supported(n, m) || rows <= 0 || k <= 0) return -1;
    const ptrdiff_t P = panels_of(rows), G = groups_of(k, m);
    memset(values, 0, (size_t)(P * G * n * SS_PANEL) * sizeof(float));
    memset(indices, 0, (size_t)(P * G * n) * (m == 4 ? sizeof(uint32_t) : sizeof(uint64_t)));
    for (ptrdiff_t p = 0; p < P; p++) {
        for (int j = 0; j < SS_PANEL; j++) {
            const ptrdiff_t row = p * SS_PANEL + j;
            for (ptrdiff_t g = 0; g < G; g++) {
                int used[16] = { 0 };
                int slot = 0;
                const ptrdiff_t base = (p * G + g) * n;
                if (row < rows) {
                    for (int c = 0; c < m && g * m + c < k; c++) {
                        const float v = w[row * ldw + g * m + c];
                        if (v == 0.0f) continue;
                        if (slot >= n) return -1;
                        values[(base + slot) * SS_PANEL + j] = v;
                        set_position(indices, m, base + slot, j, c);
                        used[c] = 1;
                        slot++;
                    }
                }
                for (int c = 0; slot < n && c < m; c++) {
                    if (used[c]) continue;
                    set_position(indices, m, base + slot, j, c);
                    slot++;
                }
            }
        }
    }
    return 0;
}

void ss_nm_unpack(const float *values, const void *indices, ptrdiff_t rows, ptrdiff_t k, int n, int m,
                  float *w, ptrdiff_t ldw) {
    if (!nm_supported(n, m) || rows <= 0 || k <= 0) return;
    const ptrdiff_t G = groups_of(k, m);
    for (ptrdiff_t row = 0; row < rows; row++) {
        memset(w + row * ldw, 0, (size_t)k * sizeof(float));
        const ptrdiff_t p = row / SS_PANEL;
        const int j = (int)(row % SS_PANEL);
        for (ptrdiff_t g = 0; g < G; g++)
            for (int s = 0; s < n; s++) {
                const ptrdiff_t word = (p * G + g) * n + s;
                const float v = values[word * SS_PANEL + j];
                const ptrdiff_t col = g * m + lane_position(indices, m, word, j);
                if (v != 0.0f && col < k) w[row * ldw + col] = v;
            }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* GEMV (one or two token rows): in-register selection                                         */
/* ------------------------------------------------------------------------------------------ */

/* y[0..cols) (+ bias) for panels [p0, p1) of token rows xp (and xq when two), inputs padded with
 * zeros to G*m + 16 floats. */
/* Value e*16 + j of a pack, fp32 or bf16 bits (bf16 != 0). */
static inline float value_at(const void *values, int bf16, ptrdiff_t i) {
    if (!bf16) return ((const float *)values)[i];
    const uint32_t u = (uint32_t)((const uint16_t *)values)[i] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void gemv_portable(const void *values, int bf16, const void *indices, int n, int m, ptrdiff_t G,
                          const float *bias, ptrdiff_t rows, ptrdiff_t p0, ptrdiff_t p1,
                          const float *xp, float *y) {
    for (ptrdiff_t p = p0; p < p1; p++) {
        float acc[SS_PANEL] = { 0 };
        for (ptrdiff_t g = 0; g < G; g++) {
            const float *xg = xp + g * m;
            for (int s = 0; s < n; s++) {
                const ptrdiff_t word = (p * G + g) * n + s;
                float v[SS_PANEL];
                for (int j = 0; j < SS_PANEL; j++) v[j] = value_at(values, bf16, word * SS_PANEL + j);
                if (m == 4) {
                    const uint32_t w = ((const uint32_t *)indices)[word];
                    for (int j = 0; j < SS_PANEL; j++) acc[j] += v[j] * xg[(w >> (2 * j)) & 3u];
                } else {
                    const uint64_t w = ((const uint64_t *)indices)[word];
                    for (int j = 0; j < SS_PANEL; j += 2) {
                        acc[j] += v[j] * xg[(w >> (2 * j)) & 15u];
                        acc[j + 1] += v[j + 1] * xg[(w >> (32 + 2 * j)) & 15u];
                    }
                }
            }
        }
        for (ptrdiff_t j = 0; j < SS_PANEL && p * SS_PANEL + j < rows; j++)
            y[p * SS_PANEL + j] = acc[j] + (bias ? bias[p * SS_PANEL + j] : 0.0f);
    }
}

#ifdef SS_X86
/* Loads the inputs of group g (MC floats) so that every lane can select any of them. m = 4 rows
 * come expanded (expand_row4_512: each group's 4 inputs already repeated in all four 128-bit
 * lanes), so this is a plain load: a vbroadcastf32x4 from memory takes an FP-pipe slot on Zen 4
 * and made the selection loop 1.45x slower (measured 2.1 vs 1.45 cycles per FMA). */
SS_T512 SS_AI __m512 group512(const float *x, ptrdiff_t g, const int MC, const int EXPANDED) {
    if (MC == 4) return EXPANDED ? _mm512_loadu_ps(x + 16 * g) : _mm512_broadcast_f32x4(_mm_loadu_ps(x + 4 * g));
    if (MC == 8) return _mm512_castps256_ps512(_mm256_loadu_ps(x + 8 * g));
    return _mm512_loadu_ps(x + 16 * g);
}

/* Per-lane positions of index word e in the low bits of each lane. */
SS_T512 SS_AI __m512i decode512(const void *ip, ptrdiff_t e, const int MC, __m512i shifts) {
    if (MC == 4) return _mm512_srlv_epi32(_mm512_set1_epi32((int)((const uint32_t *)ip)[e]), shifts);
    return _mm512_srlv_epi32(_mm512_set1_epi64((long long)((const uint64_t *)ip)[e]), shifts);
}

/* 16 values of slot e of a panel's values vp: fp32, or bf16 bits widened in registers. */
SS_T512 SS_AI __m512 values512(const char *vp, ptrdiff_t e, const int BF16) {
    if (!BF16) return _mm512_loadu_ps((const float *)vp + e * SS_PANEL);
    const __m256i bits = _mm256_loadu_si256((const __m256i *)((const uint16_t *)vp + e * SS_PANEL));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

/* x[0..k) of one row as G groups of 16 floats, group g = inputs 4g..4g+3 (zero past k) repeated
 * four times, then 16 zeros. */
SS_T512 static void expand_row4_512(const float *x, ptrdiff_t k, ptrdiff_t G, float *out) {
    for (ptrdiff_t g = 0; g < G; g++) {
        const ptrdiff_t left = k - 4 * g;
        const __mmask8 m = left >= 4 ? (__mmask8)0xF : (__mmask8)((1u << left) - 1u);
        _mm512_storeu_ps(out + 16 * g, _mm512_broadcast_f32x4(_mm_maskz_loadu_ps(m, x + 4 * g)));
    }
    _mm512_storeu_ps(out + 16 * G, _mm512_setzero_ps());
}

/* T token rows (1, 2, 4 or 8) sharing each slot's decode; U groups in flight so that T * U >= 4
 * accumulator chains hide the FMA latency. Inputs of token i at x + i * ldxp (zero padded). */
SS_T512 SS_AI void gemv512_body(const void *values, const void *indices, int n, ptrdiff_t G,
                                const float *bias, ptrdiff_t rows, ptrdiff_t p0, ptrdiff_t p1,
                                const float *x, ptrdiff_t ldxp, float *y, ptrdiff_t ldy, const int MC, const int T,
                                const int BF16, const int EXPANDED) {
    enum { UMAX = 4 };
    const int U = T == 1 ? 4 : T == 2 ? 2 : 1;
    const __m512i shifts = MC == 4 ? _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
                                   : _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
    for (ptrdiff_t p = p0; p < p1; p++) {
        const char *vp = (const char *)values + p * G * n * SS_PANEL * (BF16 ? 2 : 4);
        const char *ip = (const char *)indices + p * G * n * (MC == 4 ? 4 : 8);
        __m512 a[8][UMAX];
        for (int i = 0; i < T; i++)
            for (int u = 0; u < U; u++) a[i][u] = _mm512_setzero_ps();
        ptrdiff_t g = 0;
        for (; g + U <= G; g += U) {
            __m512 xg[8][UMAX];
            for (int i = 0; i < T; i++)
                for (int u = 0; u < U; u++) xg[i][u] = group512(x + i * ldxp, g + u, MC, EXPANDED);
            for (int s = 0; s < n; s++)
                for (int u = 0; u < U; u++) {
                    const ptrdiff_t e = (g + u) * n + s;
                    const __m512i iv = decode512(ip, e, MC, shifts);
                    const __m512 w = values512(vp, e, BF16);
                    for (int i = 0; i < T; i++) a[i][u] = _mm512_fmadd_ps(w, _mm512_permutexvar_ps(iv, xg[i][u]), a[i][u]);
                }
        }
        for (; g < G; g++) {
            __m512 xg[8];
            for (int i = 0; i < T; i++) xg[i] = group512(x + i * ldxp, g, MC, EXPANDED);
            for (int s = 0; s < n; s++) {
                const ptrdiff_t e = g * n + s;
                const __m512i iv = decode512(ip, e, MC, shifts);
                const __m512 w = values512(vp, e, BF16);
                for (int i = 0; i < T; i++) a[i][0] = _mm512_fmadd_ps(w, _mm512_permutexvar_ps(iv, xg[i]), a[i][0]);
            }
        }
        const ptrdiff_t valid = rows - p * SS_PANEL;
        const __mmask16 mask = valid >= SS_PANEL ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1u);
        const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + p * SS_PANEL) : _mm512_setzero_ps();
        for (int i = 0; i < T; i++) {
            __m512 sum = bv;
            for (int u = 0; u < U; u++) sum = _mm512_add_ps(sum, a[i][u]);
            _mm512_mask_storeu_ps(y + i * ldy + p * SS_PANEL, mask, sum);
        }
    }
}

#define GEMV512_(MC, T, EXP, NAME, NAMEB)                                                               \
    SS_T512 static void NAME(const void *values, const void *indices, int n, ptrdiff_t G,  \
                                            const float *bias, ptrdiff_t rows, ptrdiff_t p0, ptrdiff_t p1, \
                                            const float *x, ptrdiff_t ldxp, float *y, ptrdiff_t ldy) {  \
        gemv512_body(values, indices, n, G, bias, rows, p0, p1, x, ldxp, y, ldy, MC, T, 0, EXP);            \
    }                                                                                                   \
    SS_T512 static void NAMEB(const void *values, const void *indices, int n, ptrdiff_t G, \
                                             const float *bias, ptrdiff_t rows, ptrdiff_t p0, ptrdiff_t p1, \
                                             const float *x, ptrdiff_t ldxp, float *y, ptrdiff_t ldy) { \
        gemv512_body(values, indices, n, G, bias, rows, p0, p1, x, ldxp, y, ldy, MC, T, 1, EXP);            \
    }
#define GEMV512(MC, T) GEMV512_(MC, T, 0, gemv512_##MC##_##T, gemv512b_##MC##_##T)
/* m = 4 over expanded rows (expand_row4_512) */
#define GEMV512E(T) GEMV512_(4, T, 1, gemv512e_4_##T, gemv512eb_4_##T)
GEMV512(4, 1) GEMV512(4, 2) GEMV512(4, 4) GEMV512(4, 8)
GEMV512E(1) GEMV512E(2) GEMV512E(4) GEMV512E(8)
GEMV512(8, 1) GEMV512(8, 2) GEMV512(8, 4) GEMV512(8, 8)
GEMV512(16, 1) GEMV512(16, 2) GEMV512(16, 4) GEMV512(16, 8)

/* m = 4 over expanded rows, t of up to 16 token rows (t >= 9) in one pass: each slot's weights
 * and decode are loaded once for all the rows (the 8-row blocks above load them once per block,
 * twice or three times for 9-16 rows, and the server's weights come from L3 or memory). NN = n
 * (1-3) as a constant, so the slot's weights and positions stay in registers; 16 accumulators
 * (one chain per row; t >= 9 chains hide the FMA latency). */
SS_T512 SS_AI void gemv512e16_body(const void *values, const void *indices, ptrdiff_t G, const float *bias, ptrdiff_t rows,
                                   ptrdiff_t p0, ptrdiff_t p1, const float *x, ptrdiff_t ldxp, float *y, ptrdiff_t ldy,
                                   int t, const int NN, const int BF16) {
    const __m512i shifts = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (ptrdiff_t p = p0; p < p1; p++) {
        const char *vp = (const char *)values + p * G * NN * SS_PANEL * (BF16 ? 2 : 4);
        const char *ip = (const char *)indices + p * G * NN * 4;
        __m512 a[16];
        for (int i = 0; i < 16; i++) a[i] = _mm512_setzero_ps();
        for (ptrdiff_t g = 0; g < G; g++) {
            __m512i iv[3];
            __m512 w[3];
            for (int s = 0; s < NN; s++) {
                iv[s] = decode512(ip, g * NN + s, 4, shifts);
                w[s] = values512(vp, g * NN + s, BF16);
            }
#pragma clang loop unroll(full)
            for (int i = 0; i < 16; i++) {
                if (i < t) {  /* (a test, not a break: the unrolled rows keep constant accumulator indices) */
                    const __m512 xg = group512(x + i * ldxp, g, 4, 1);
                    for (int s = 0; s < NN; s++) a[i] = _mm512_fmadd_ps(w[s], _mm512_permutexvar_ps(iv[s], xg), a[i]);
                }
            }
        }
        const ptrdiff_t valid = rows - p * SS_PANEL;
        const __mmask16 mask = valid >= SS_PANEL ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1u);
        const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + p * SS_PANEL) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
        for (int i = 0; i < 16; i++)
            if (i < t) _mm512_mask_storeu_ps(y + i * ldy + p * SS_PANEL, mask, _mm512_add_ps(bv, a[i]));
    }
}

typedef void (*gemv16_fn)(const void *, const void *, ptrdiff_t, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *,
                          ptrdiff_t, float *, ptrdiff_t, int);
#define GEMV512E16(NN, BF16, NAME)                                                                                            \
    SS_T512 static void NAME(const void *values, const void *indices, ptrdiff_t G, const float *bias, ptrdiff_t rows,         \
                             ptrdiff_t p0, ptrdiff_t p1, const float *x, ptrdiff_t ldxp, float *y, ptrdiff_t ldy, int t) {    \
        gemv512e16_body(values, indices, G, bias, rows, p0, p1, x, ldxp, y, ldy, t, NN, BF16);                              \
    }
GEMV512E16(1, 0, gemv512e16_1) GEMV512E16(2, 0, gemv512e16_2) GEMV512E16(3, 0, gemv512e16_3)
GEMV512E16(1, 1, gemv512e16b_1) GEMV512E16(2, 1, gemv512e16b_2) GEMV512E16(3, 1, gemv512e16b_3)

/* AVX2: each 16-lane slot is two 8-lane halves. */
SS_T256 SS_AI void select256(const void *ip, ptrdiff_t e, const float *x, ptrdiff_t g, const int MC,
                             __m256 *lo, __m256 *hi) {
    if (MC == 4) {
        const __m256 xg = _mm256_broadcast_ps((const __m128 *)(x + 4 * g));
        const __m256i w = _mm256_set1_epi32((int)((const uint32_t *)ip)[e]);
        *lo = _mm256_permutevar8x32_ps(xg, _mm256_srlv_epi32(w, _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)));
        *hi = _mm256_permutevar8x32_ps(xg, _mm256_srlv_epi32(w, _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30)));
    } else {
        const __m256i w = _mm256_set1_epi64x((long long)((const uint64_t *)ip)[e]);
        const __m256i il = _mm256_srlv_epi32(w, _mm256_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12));
        const __m256i ih = _mm256_srlv_epi32(w, _mm256_setr_epi32(16, 16, 20, 20, 24, 24, 28, 28));
        if (MC == 8) {
            const __m256 xg = _mm256_loadu_ps(x + 8 * g);
            *lo = _mm256_permutevar8x32_ps(xg, il);
            *hi = _mm256_permutevar8x32_ps(xg, ih);
        } else {
            const __m256 x0 = _mm256_loadu_ps(x + 16 * g), x1 = _mm256_loadu_ps(x + 16 * g + 8);
            /* bit 3 of the position picks the upper eight inputs */
            *lo = _mm256_blendv_ps(_mm256_permutevar8x32_ps(x0, il), _mm256_permutevar8x32_ps(x1, il),
                                   _mm256_castsi256_ps(_mm256_slli_epi32(il, 28)));
            *hi = _mm256_blendv_ps(_mm256_permutevar8x32_ps(x0, ih), _mm256_permutevar8x32_ps(x1, ih),
                                   _mm256_castsi256_ps(_mm256_slli_epi32(ih, 28)));
        }
    }
}

/* Values h*8 .. h*8+7 of slot e: fp32, or bf16 bits widened. */
SS_T256 SS_AI __m256 values256(const char *vp, ptrdiff_t e, int h, const int BF16) {
    if (!BF16) return _mm256_loadu_ps((const float *)vp + e * SS_PANEL + 8 * h);
    const __m128i bits = _mm_loadu_si128((const __m128i *)((const uint16_t *)vp + e * SS_PANEL + 8 * h));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
}

SS_T256 SS_AI void gemv256_body(const void *values, const void *indices, int n, ptrdiff_t G,
                                const float *bias, ptrdiff_t rows, ptrdiff_t p0, ptrdiff_t p1,
                                const float *x0, float *y0, const int MC, const int BF16) {
    for (ptrdiff_t p = p0; p < p1; p++) {
        const char *vp = (const char *)values + p * G * n * SS_PANEL * (BF16 ? 2 : 4);
        const char *ip = (const char *)indices + p * G * n * (MC == 4 ? 4 : 8);
        __m256 lo[2], hi[2];
        lo[0] = lo[1] = hi[0] = hi[1] = _mm256_setzero_ps();
        ptrdiff_t g = 0;
        for (; g + 2 <= G; g += 2)
            for (int s = 0; s < n; s++)
                for (int u = 0; u < 2; u++) {
                    const ptrdiff_t e = (g + u) * n + s;
                    __m256 sl, sh;
                    select256(ip, e, x0, g + u, MC, &sl, &sh);
                    lo[u] = _mm256_fmadd_ps(values256(vp, e, 0, BF16), sl, lo[u]);
                    hi[u] = _mm256_fmadd_ps(values256(vp, e, 1, BF16), sh, hi[u]);
                }
        for (; g < G; g++)
            for (int s = 0; s < n; s++) {
                const ptrdiff_t e = g * n + s;
                __m256 sl, sh;
                select256(ip, e, x0, g, MC, &sl, &sh);
                lo[0] = _mm256_fmadd_ps(values256(vp, e, 0, BF16), sl, lo[0]);
                hi[0] = _mm256_fmadd_ps(values256(vp, e, 1, BF16), sh, hi[0]);
            }
        float out[SS_PANEL];
        _mm256_storeu_ps(out, _mm256_add_ps(lo[0], lo[1]));
        _mm256_storeu_ps(out + 8, _mm256_add_ps(hi[0], hi[1]));
        for (ptrdiff_t j = 0; j < SS_PANEL && p * SS_PANEL + j < rows; j++)
            y0[p * SS_PANEL + j] = out[j] + (bias ? bias[p * SS_PANEL + j] : 0.0f);
    }
}

#define GEMV256(MC)                                                                                    \
    SS_T256 static void gemv256_##MC(const void *values, const void *indices, int n, ptrdiff_t G,       \
                                     const float *bias, ptrdiff_t rows, ptrdiff_t p0, ptrdiff_t p1,     \
                                     const float *x0, float *y0) {                                      \
        gemv256_body(values, indices, n, G, bias, rows, p0, p1, x0, y0, MC, 0);                        \
    }                                                                                                  \
    SS_T256 static void gemv256b_##MC(const void *values, const void *indices, int n, ptrdiff_t G,      \
                                      const float *bias, ptrdiff_t rows, ptrdiff_t p0, ptrdiff_t p1,    \
                                      const float *x0, float *y0) {                                     \
        gemv256_body(values, indices, n, G, bias, rows, p0, p1, x0, y0, MC, 1);                        \
    }
GEMV256(4) GEMV256(8) GEMV256(16)
#endif

/* Copies rows [i0, i0 + count) of x into xp (row stride padded): expanded (expand_row4_512) or
 * zero-padded. */
static void prepare_rows(const float *x, ptrdiff_t ldx, ptrdiff_t k, ptrdiff_t G, int expand, ptrdiff_t padded,
                         ptrdiff_t count, float *xp) {
    for (ptrdiff_t i = 0; i < count; i++) {
#ifdef SS_X86
        if (expand) { expand_row4_512(x + i * ldx, k, G, xp + i * padded); continue; }
#endif
        (void)G;
        (void)expand;
        memcpy(xp + i * padded, x + i * ldx, (size_t)k * sizeof(float));
        memset(xp + i * padded + k, 0, (size_t)(padded - k) * sizeof(float));
    }
}

/* From this many rows the expanded m = 4 rows run up to 16 at a time (gemv512e16_body). */
#ifndef SS_NM_ROWS16_FROM
#define SS_NM_ROWS16_FROM 9
#endif

/* The selection kernels for `count` prepared rows (stride padded) over panels [p0, p1): on
 * AVX-512 in blocks of 8, 4, 2 and 1 rows sharing each slot's decode (expanded rows from 9 on: up
 * to 16 a pass, gemv512e16_body), elsewhere row by row. */
static void select_rows(ss_isa isa, const void *values, int bf16, const void *indices, int n, int m, ptrdiff_t G,
                        const float *bias, ptrdiff_t rows, ptrdiff_t p0, ptrdiff_t p1, int expand,
                        const float *xp, ptrdiff_t padded, ptrdiff_t count, float *y, ptrdiff_t ldy) {
    const int mi = m == 4 ? 0 : m == 8 ? 1 : 2;
#ifdef SS_X86
    if (isa == SS_ISA_AVX512) {
        typedef void (*fn)(const void *, const void *, int, ptrdiff_t, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                           const float *, ptrdiff_t, float *, ptrdiff_t);
        /* [bf16][m = 4, 8, 16, 4 expanded][rows 1, 2, 4, 8] */
        static const fn table[2][4][4] = {
            { { gemv512_4_1, gemv512_4_2, gemv512_4_4, gemv512_4_8 }, { gemv512_8_1, gemv512_8_2, gemv512_8_4, gemv512_8_8 },
              { gemv512_16_1, gemv512_16_2, gemv512_16_4, gemv512_16_8 }, { gemv512e_4_1, gemv512e_4_2, gemv512e_4_4, gemv512e_4_8 } },
            { { gemv512b_4_1, gemv512b_4_2, gemv512b_4_4, gemv512b_4_8 }, { gemv512b_8_1, gemv512b_8_2, gemv512b_8_4, gemv512b_8_8 },
              { gemv512b_16_1, gemv512b_16_2, gemv512b_16_4, gemv512b_16_8 },
              { gemv512eb_4_1, gemv512eb_4_2, gemv512eb_4_4, gemv512eb_4_8 } } };
        static const gemv16_fn rows16[2][3] = { { gemv512e16_1, gemv512e16_2, gemv512e16_3 },
                                                { gemv512e16b_1, gemv512e16b_2, gemv512e16b_3 } };
        ptrdiff_t done = 0;
        while (done < count) {
            const ptrdiff_t left = count - done;
            if (expand && left >= SS_NM_ROWS16_FROM) {
                /* 17-24 rows: the first 9-16 here and 8 after (not 16 and a lone row) */
                const int t = (int)(left <= 16 ? left : left < 25 ? left - 8 : 16);
                rows16[bf16 != 0][n - 1](values, indices, G, bias, rows, p0, p1, xp + done * padded, padded, y + done * ldy, ldy, t);
                done += t;
                continue;
            }
            const int ti = left >= 8 ? 3 : left >= 4 ? 2 : left >= 2 ? 1 : 0;
            table[bf16 != 0][expand ? 3 : mi][ti](values, indices, n, G, bias, rows, p0, p1, xp + done * padded, padded, y + done * ldy, ldy);
            done += (ptrdiff_t)1 << ti;
        }
        return;
    }
    if (isa == SS_ISA_AVX2) {
        typedef void (*fn)(const void *, const void *, int, ptrdiff_t, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                           const float *, float *);
        static const fn table[2][3] = { { gemv256_4, gemv256_8, gemv256_16 }, { gemv256b_4, gemv256b_8, gemv256b_16 } };
        for (ptrdiff_t i = 0; i < count; i++) table[bf16 != 0][mi](values, indices, n, G, bias, rows, p0, p1, xp + i * padded, y + i * ldy);
        return;
    }
#endif
    (void)mi;
    (void)expand;
    for (ptrdiff_t i = 0; i < count; i++)
        gemv_portable(values, bf16, indices, n, m, G, bias, rows, p0, p1, xp + i * padded, y + i * ldy);
}

/* Weight bytes per pass over a batch of rows: every row of the batch runs on a block of panels
 * while its weights are in L2, so a call streams its weights from L3 or memory once, not once per
 * block of 8 rows (14 rows were 3 passes). At least one panel per block. */
#ifndef SS_NM_SELECT_BLOCK_BYTES
#define SS_NM_SELECT_BLOCK_BYTES 65536
#endif

/* What a thread's scratch slot holds the prepared input of: a thread that runs several parts
 * (output panel ranges) of one split call (`call`, nonzero, one per call) prepares its input once,
 * not per part (the pool hands out 4 parts a thread; 14 rows of K = 1536 expand to 344 KB).
 * Sharing one preparation between the threads measured slower: the other core then reads it
 * across cores. prepared_rows: the selection kernel's rows (SS_SCRATCH_ROWS, one chunk);
 * prepared_tiles: the whole prepared input (SS_SCRATCH_TILES). */
typedef struct { uint64_t call; const float *x; ptrdiff_t ldx, r, k; } prepared_from;
static _Thread_local prepared_from prepared_rows, prepared_tiles;

/* Whether `slot` holds what call `call` prepares from x (r rows of k, stride ldx); forgets it
 * either way (the caller prepares again or uses it, then calls keep_prepared). */
static int still_prepared(prepared_from *slot, uint64_t call, const float *x, ptrdiff_t ldx, ptrdiff_t r, ptrdiff_t k) {
    const int same = call != 0 && slot->call == call && slot->x == x && slot->ldx == ldx && slot->r == r && slot->k == k;
    slot->call = 0;
    return same;
}

static void keep_prepared(prepared_from *slot, uint64_t call, const float *x, ptrdiff_t ldx, ptrdiff_t r, ptrdiff_t k) {
    *slot = (prepared_from){ .call = call, .x = x, .ldx = ldx, .r = r, .k = k };
}

/* In-register-selection kernel for r token rows over panels [p0, p1): rows prepared in batches
 * of up to CHUNK, each batch run panel block by panel block; rows of one chunk are kept for the
 * thread's next part of the same split call (`call`, see prepared_rows). */
static int nm_gemv(ss_isa isa, const void *values, int bf16, const void *indices, int n, int m, const float *bias,
                   ptrdiff_t rows, ptrdiff_t k, const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy,
                   ptrdiff_t r, ss_act_kind act, ptrdiff_t p0, ptrdiff_t p1, uint64_t call) {
    const ptrdiff_t G = groups_of(k, m);
    /* AVX-512, m = 4, three rows or more of at most 4096 inputs: rows expanded (expand_row4_512),
     * else copied with zero padding (the one- and two-row GEMV measured slower expanded; at
     * K = 1536 and 2048, 8-16 rows run 1.2-1.25x faster expanded, at 4096 up to 1.1x, at 8192
     * 0.9x: the 4x copy falls out of L2). */
    const int expand = isa == SS_ISA_AVX512 && m == 4 && r > 2 && k <= 4096;
    const ptrdiff_t padded = expand ? G * 16 + 16 : G * m + 16;
    enum { CHUNK = 32 };
    const ptrdiff_t block = ss_max(1, SS_NM_SELECT_BLOCK_BYTES / (G * n * SS_PANEL * (bf16 ? 2 : 4)));
    float *xp = ss_thread_scratch(SS_SCRATCH_ROWS, (size_t)(ss_min(CHUNK, r) * padded));
    if (!xp) return SS_ERR_NO_MEMORY;
    /* the rows of this call are in the scratch already (one chunk, prepared by an earlier part) */
    const int kept = r <= CHUNK && still_prepared(&prepared_rows, call, x, ldx, r, k);
    for (ptrdiff_t i0 = 0; i0 < r; i0 += CHUNK) {
        const ptrdiff_t count = ss_min(CHUNK, r - i0);
        if (!kept) prepare_rows(x + i0 * ldx, ldx, k, G, expand, padded, count, xp);
        for (ptrdiff_t p = p0; p < p1; p += block)
            select_rows(isa, values, bf16, indices, n, m, G, bias, rows, p, ss_min(p1, p + block), expand,
                        xp, padded, count, y + i0 * ldy, ldy);
    }
    if (r <= CHUNK) keep_prepared(&prepared_rows, call, x, ldx, r, k);
    if (act != SS_ACT_NONE) {
        const ptrdiff_t c0 = p0 * SS_PANEL, c1 = ss_min(p1 * SS_PANEL, rows);
        for (ptrdiff_t i = 0; i < r; i++) ss_act_apply_isa(isa, act, y + i * ldy + c0, c1 - c0);
    }
    return SS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* GEMM: weight-broadcast x transposed-activation vectors                                       */
/* ------------------------------------------------------------------------------------------ */

/* Tokens per tile: up to TILE = SS_TILE (MV zmm / 2 MV ymm), ~KBLOCK inputs per K block. */
#ifndef SS_NM_KBLOCK
#define SS_NM_KBLOCK 64
#endif
/* Up to this many token rows run on the in-register-selection kernel. */
#ifndef SS_NM_GEMV_ROWS
#define SS_NM_GEMV_ROWS 2
#endif
enum { TILE = SS_TILE, KBLOCK = SS_NM_KBLOCK, RB = 4 };

/* Portable: one output row at a time over the whole K. */
static void gemm_panel_portable(const float *vp, const void *ip, int n, int m, ptrdiff_t G,
                                const float *xt, ptrdiff_t ldt, ptrdiff_t tokens, float *yt,
                                const float *bias, int valid) {
    for (int j = 0; j < valid; j++) {
        float *acc = yt + j * ldt;
        const float b = bias ? bias[j] : 0.0f;
        for (ptrdiff_t t = 0; t < tokens; t++) acc[t] = b;
        for (ptrdiff_t g = 0; g < G; g++)
            for (int s = 0; s < n; s++) {
                const ptrdiff_t e = g * n + s;
                const float w = vp[e * SS_PANEL + j];
                const float *xr = xt + (g * m + lane_position(ip, m, e, j)) * ldt;
                for (ptrdiff_t t = 0; t < tokens; t++) acc[t] += w * xr[t];
            }
    }
}

#ifdef SS_X86
/* One panel: K blocks of ~KBLOCK inputs, output rows in fours (wb_nm_rows, weight_broadcast.h). */
#define PANEL_FN(ISA, WIDTH, MC, MV)                                                                       \
    SS_T##ISA static void panel##ISA##_##MC##_##MV(const float *vp, const void *ip, int n, ptrdiff_t G,   \
                                                   const float *xt, ptrdiff_t ldt, float *yt,              \
                                                   const float *bias, int valid) {                         \
        const ptrdiff_t GB = KBLOCK / MC;                                                                   \
        (void)ldt;                                                                                          \
        for (ptrdiff_t g0 = 0; g0 < G; g0 += GB) {                                                          \
            const ptrdiff_t g1 = ss_min(G, g0 + GB);                                                        \
            for (int j = 0; j < valid; j += RB)                                                             \
                wb_nm_rows##ISA(vp, ip, n, g0, g1, j, xt, ISA == 512 ? WIDTH * MV : TILE, yt, bias, g0 == 0, MC, MV); \
        }                                                                                                   \
    }
PANEL_FN(512, 16, 4, 1) PANEL_FN(512, 16, 4, 2) PANEL_FN(512, 16, 4, 3) PANEL_FN(512, 16, 4, 4)
PANEL_FN(512, 16, 8, 1) PANEL_FN(512, 16, 8, 2) PANEL_FN(512, 16, 8, 3) PANEL_FN(512, 16, 8, 4)
PANEL_FN(512, 16, 16, 1) PANEL_FN(512, 16, 16, 2) PANEL_FN(512, 16, 16, 3) PANEL_FN(512, 16, 16, 4)
PANEL_FN(256, 8, 4, 1) PANEL_FN(256, 8, 4, 2) PANEL_FN(256, 8, 8, 1) PANEL_FN(256, 8, 8, 2)
PANEL_FN(256, 8, 16, 1) PANEL_FN(256, 8, 16, 2)
#endif

typedef void (*panel_fn)(const float *vp, const void *ip, int n, ptrdiff_t G, const float *xt, ptrdiff_t ldt,
                         float *yt, const float *bias, int valid);

/* Up to this many token rows, m = 4 on AVX-512 runs entirely on the multi-row selection kernel
 * (with expanded rows it beat the 16-token weight-broadcast form at M = 16..31; from 32 tokens
 * the weight broadcast amortises each broadcast over two or more vectors). */
#ifndef SS_NM_SELECT_ROWS
#define SS_NM_SELECT_ROWS 31
#endif

/* Rows of the batched kernel: whole 16-token vectors on AVX-512 (the rest, batches under 16, and
 * m = 4 batches up to SS_NM_SELECT_ROWS go to the multi-row selection kernel, which wastes no
 * lanes); all rows from 3 on elsewhere. */
static ptrdiff_t gemm_rows_of(ss_isa isa, int m, ptrdiff_t r) {
    if (isa == SS_ISA_AVX512) return m == 4 && r <= SS_NM_SELECT_ROWS ? 0 : r / 16 * 16;
    return r <= SS_NM_GEMV_ROWS ? 0 : r;
}

/* Panels [p0, p1) of the batched kernel over prepared token tiles xt. */
static int nm_gemm(ss_isa isa, const float *values, const void *indices, int n, int m, const float *bias,
                    ptrdiff_t rows, ptrdiff_t k, const float *xt_all, float *y, ptrdiff_t ldy,
                    ptrdiff_t r, ss_act_kind act, ptrdiff_t p0, ptrdiff_t p1) {
    const ptrdiff_t G = groups_of(k, m), kpad = G * m;
    const size_t index_bytes = m == 4 ? 4 : 8;
    float *yt = ss_thread_scratch(SS_SCRATCH_PANEL, (size_t)(SS_PANEL * TILE));
    if (!yt) return SS_ERR_NO_MEMORY;
    const int mi = m == 4 ? 0 : m == 8 ? 1 : 2;
    for (ptrdiff_t t0 = 0; t0 < r; t0 += TILE) {
        const ptrdiff_t tokens = ss_min(TILE, r - t0);
        const ptrdiff_t ldt = ss_tile_ldt(isa, tokens);
        const float *xt = xt_all + t0 / TILE * kpad * TILE;
        float *ys = y + t0 * ldy;
        panel_fn panel = NULL;
#ifdef SS_X86
        if (isa == SS_ISA_AVX512) {
            static const panel_fn table[3][4] = { { panel512_4_1, panel512_4_2, panel512_4_3, panel512_4_4 },
                                                  { panel512_8_1, panel512_8_2, panel512_8_3, panel512_8_4 },
                                                  { panel512_16_1, panel512_16_2, panel512_16_3, panel512_16_4 } };
            panel = table[mi][ldt / 16 - 1];
        } else if (isa == SS_ISA_AVX2) {
            static const panel_fn table[3][2] = { { panel256_4_1, panel256_4_2 }, { panel256_8_1, panel256_8_2 },
                                                  { panel256_16_1, panel256_16_2 } };
            panel = table[mi][1];
        }
#endif
        for (ptrdiff_t p = p0; p < p1; p++) {
            const float *vp = values + p * G * n * SS_PANEL;
            const void *ip = (const char *)indices + p * G * n * index_bytes;
            const int cols = (int)ss_min(SS_PANEL, rows - p * SS_PANEL);
            const int valid = (cols + RB - 1) / RB * RB;
            const float *bp = NULL;
            float bias_tile[SS_PANEL] = { 0 };
            if (bias) {
                memcpy(bias_tile, bias + p * SS_PANEL, (size_t)cols * sizeof(float));
                bp = bias_tile;
            }
#ifdef SS_X86
            if (isa == SS_ISA_AVX2) {
                /* 16-token passes (two ymm), the last one with one ymm when 8 tokens or fewer remain */
                for (ptrdiff_t tb = 0; tb < tokens; tb += 16) {
                    const panel_fn pass = tokens - tb > 8 ? panel : (m == 4 ? panel256_4_1 : m == 8 ? panel256_8_1 : panel256_16_1);
                    pass(vp, ip, n, G, xt + tb, ldt, yt + tb, bp, valid);
                }
            } else if (panel) {
                panel(vp, ip, n, G, xt, ldt, yt, bp, valid);
            } else
#endif
            {
                gemm_panel_portable(vp, ip, n, m, G, xt, ldt, tokens, yt, bp, cols);
            }
            ss_panel_store(isa, act, yt, ldt, tokens, cols, ys + p * SS_PANEL, ldy);
        }
    }
    return SS_OK;
}

/* The prepared input of r rows: the batched kernel's transposed tiles (floats; 0 when none). */
static ptrdiff_t input_floats(ss_isa isa, ptrdiff_t k, int m, ptrdiff_t r) {
    if (!m_supported(m) || k <= 0 || r <= 0) return 0;
    return ss_tiles_floats(groups_of(k, m) * m, gemm_rows_of(ss_clamp_isa(isa), m, r));
}

static void prepare_input(ss_isa isa, const float *x, ptrdiff_t ldx, ptrdiff_t r, ptrdiff_t k, int m, float *xt) {
    if (!m_supported(m) || k <= 0 || r <= 0) return;
    isa = ss_clamp_isa(isa);
    ss_tiles_transpose(isa, x, ldx, gemm_rows_of(isa, m, r), k, groups_of(k, m) * m, xt);
}

/* Panels [panel_begin, panel_end) over the prepared input xt (NULL when input_floats is 0). */
static int gemm_prepared_panels(ss_isa isa, const float *values, const void *indices, int n, int m,
                                const float *bias, ptrdiff_t rows, ptrdiff_t k,
                                const float *x, ptrdiff_t ldx, const float *xt, float *y, ptrdiff_t ldy, ptrdiff_t r,
                                ss_act_kind act, ptrdiff_t panel_begin, ptrdiff_t panel_end, uint64_t call) {
    if (!nm_supported(n, m) || rows <= 0 || k <= 0 || r < 0) return SS_ERR_ARGUMENT;
    panel_begin = ss_max(0, panel_begin);
    panel_end = ss_min(panels_of(rows), panel_end);
    if (panel_begin >= panel_end || r == 0) return SS_OK;
    isa = ss_clamp_isa(isa);
    const ptrdiff_t gemm_rows = gemm_rows_of(isa, m, r);
    if (gemm_rows > 0) {
        if (!xt) return SS_ERR_ARGUMENT;
        const int status = nm_gemm(isa, values, indices, n, m, bias, rows, k, xt, y, ldy, gemm_rows, act, panel_begin, panel_end);
        if (status != SS_OK) return status;
    }
    if (r > gemm_rows)
        return nm_gemv(isa, values, 0, indices, n, m, bias, rows, k, x + gemm_rows * ldx, ldx, y + gemm_rows * ldy, ldy,
                       r - gemm_rows, act, panel_begin, panel_end, call);
    return SS_OK;
}

int ss_nm_gemm_panels_isa(ss_isa isa, const float *values, const void *indices, int n, int m,
                          const float *bias, ptrdiff_t rows, ptrdiff_t k,
                          const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                          ss_act_kind act, ptrdiff_t panel_begin, ptrdiff_t panel_end, uint64_t call) {
    if (!nm_supported(n, m) || rows <= 0 || k <= 0 || r < 0) return SS_ERR_ARGUMENT;
    const ptrdiff_t floats = input_floats(isa, k, m, r);
    float *xt = NULL;
    if (floats > 0) {
        xt = ss_thread_scratch(SS_SCRATCH_TILES, (size_t)floats);
        if (!xt) return SS_ERR_NO_MEMORY;
        if (!still_prepared(&prepared_tiles, call, x, ldx, r, k)) prepare_input(isa, x, ldx, r, k, m, xt);
        keep_prepared(&prepared_tiles, call, x, ldx, r, k);
    }
    return gemm_prepared_panels(isa, values, indices, n, m, bias, rows, k, x, ldx, xt, y, ldy, r, act, panel_begin, panel_end, call);
}

int ss_nm_gemm_isa(ss_isa isa, const float *values, const void *indices, int n, int m,
                   const float *bias, ptrdiff_t rows, ptrdiff_t k,
                   const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                   ss_act_kind act) {
    return ss_nm_gemm_panels_isa(isa, values, indices, n, m, bias, rows, k, x, ldx, y, ldy, r, act, 0, panels_of(rows), 0);
}

int ss_nm_bf16_gemv_panels_isa(ss_isa isa, const uint16_t *values, const void *indices, int n, int m,
                               const float *bias, ptrdiff_t rows, ptrdiff_t k,
                               const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                               ss_act_kind act, ptrdiff_t panel_begin, ptrdiff_t panel_end) {
    if (!nm_supported(n, m) || rows <= 0 || k <= 0 || r < 0) return SS_ERR_ARGUMENT;
    panel_begin = ss_max(0, panel_begin);
    panel_end = ss_min(panels_of(rows), panel_end);
    if (panel_begin >= panel_end || r == 0) return SS_OK;
    return nm_gemv(ss_clamp_isa(isa), values, 1, indices, n, m, bias, rows, k, x, ldx, y, ldy, r, act, panel_begin, panel_end, 0);
}
