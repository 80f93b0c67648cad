/*
 * l1,inf projections: group maxima, clipping, the l1-ball threshold, and the exact projection.
 * See include/l1inf.h.
 */
#include "l1inf.h"
#include "internal.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Group maxima                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static float row_max_portable(const float *r, ptrdiff_t cols) {
    float t0 = 0.0f, t1 = 0.0f, t2 = 0.0f, t3 = 0.0f;
    ptrdiff_t c = 0;
    for (; c + 4 <= cols; c += 4) {
        const float a = fabsf(r[c]), b = fabsf(r[c + 1]), d = fabsf(r[c + 2]), e = fabsf(r[c + 3]);
        t0 = a > t0 ? a : t0; t1 = b > t1 ? b : t1; t2 = d > t2 ? d : t2; t3 = e > t3 ? e : t3;
    }
    for (; c < cols; c++) { const float a = fabsf(r[c]); t0 = a > t0 ? a : t0; }
    t0 = t1 > t0 ? t1 : t0; t2 = t3 > t2 ? t3 : t2;
    return t2 > t0 ? t2 : t0;
}

#ifdef SS_X86
SS_T512 static float row_max512(const float *r, ptrdiff_t cols) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    ptrdiff_t c = 0;
    for (; c + 64 <= cols; c += 64) {
        a0 = _mm512_max_ps(a0, _mm512_andnot_ps(sign, _mm512_loadu_ps(r + c)));
        a1 = _mm512_max_ps(a1, _mm512_andnot_ps(sign, _mm512_loadu_ps(r + c + 16)));
        a2 = _mm512_max_ps(a2, _mm512_andnot_ps(sign, _mm512_loadu_ps(r + c + 32)));
        a3 = _mm512_max_ps(a3, _mm512_andnot_ps(sign, _mm512_loadu_ps(r + c + 48)));
    }
    for (; c < cols; c += 16) {
        const ptrdiff_t left = cols - c;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        a0 = _mm512_max_ps(a0, _mm512_andnot_ps(sign, _mm512_maskz_loadu_ps(m, r + c)));
    }
    return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(a0, a1), _mm512_max_ps(a2, a3)));
}

SS_T256 static float row_max256(const float *r, ptrdiff_t cols) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    ptrdiff_t c = 0;
    for (; c + 32 <= cols; c += 32) {
        a0 = _mm256_max_ps(a0, _mm256_andnot_ps(sign, _mm256_loadu_ps(r + c)));
        a1 = _mm256_max_ps(a1, _mm256_andnot_ps(sign, _mm256_loadu_ps(r + c + 8)));
        a2 = _mm256_max_ps(a2, _mm256_andnot_ps(sign, _mm256_loadu_ps(r + c + 16)));
        a3 = _mm256_max_ps(a3, _mm256_andnot_ps(sign, _mm256_loadu_ps(r + c + 24)));
    }
    __m256 a = _mm256_max_ps(_mm256_max_ps(a0, a1), _mm256_max_ps(a2, a3));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    float t = _mm_cvtss_f32(h);
    for (; c < cols; c++) { const float v = fabsf(r[c]); t = v > t ? v : t; }
    return t;
}

/* Column maxima over a column range: row after row, the range's running maxima (out[begin..end),
 * L1-resident) take the max with the row's contiguous slice, so memory is read sequentially. */
SS_T512 static void col_max512(const float *w, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t begin, ptrdiff_t end, float *out) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (ptrdiff_t c = begin; c < end; c++) out[c] = 0.0f;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *p = w + r * ld;
        ptrdiff_t c = begin;
        for (; c + 16 <= end; c += 16)
            _mm512_storeu_ps(out + c, _mm512_max_ps(_mm512_loadu_ps(out + c), _mm512_andnot_ps(sign, _mm512_loadu_ps(p + c))));
        if (c < end) {
            const __mmask16 m = (__mmask16)((1u << (end - c)) - 1u);
            _mm512_mask_storeu_ps(out + c, m, _mm512_max_ps(_mm512_maskz_loadu_ps(m, out + c),
                                                            _mm512_andnot_ps(sign, _mm512_maskz_loadu_ps(m, p + c))));
        }
    }
}

SS_T256 static void col_max256(const float *w, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t begin, ptrdiff_t end, float *out) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (ptrdiff_t c = begin; c < end; c++) out[c] = 0.0f;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *p = w + r * ld;
        ptrdiff_t c = begin;
        for (; c + 8 <= end; c += 8)
            _mm256_storeu_ps(out + c, _mm256_max_ps(_mm256_loadu_ps(out + c), _mm256_andnot_ps(sign, _mm256_loadu_ps(p + c))));
        for (; c < end; c++) { const float v = fabsf(p[c]); out[c] = v > out[c] ? v : out[c]; }
    }
}
#endif

void ss_l1inf_row_max(ss_isa isa, const float *w, ptrdiff_t cols, ptrdiff_t ld, ptrdiff_t begin, ptrdiff_t end, float *out) {
    isa = ss_clamp_isa(isa);
    for (ptrdiff_t r = begin; r < end; r++) {
#ifdef SS_X86
        if (isa == SS_ISA_AVX512) { out[r] = row_max512(w + r * ld, cols); continue; }
        if (isa == SS_ISA_AVX2) { out[r] = row_max256(w + r * ld, cols); continue; }
#endif
        out[r] = row_max_portable(w + r * ld, cols);
    }
}

void ss_l1inf_col_max(ss_isa isa, const float *w, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t begin, ptrdiff_t end, float *out) {
    isa = ss_clamp_isa(isa);
#ifdef SS_X86
    if (isa == SS_ISA_AVX512) { col_max512(w, rows, ld, begin, end, out); return; }
    if (isa == SS_ISA_AVX2) { col_max256(w, rows, ld, begin, end, out); return; }
#endif
    for (ptrdiff_t c = begin; c < end; c++) out[c] = 0.0f;
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t c = begin; c < end; c++) {
            const float v = fabsf(w[r * ld + c]);
            out[c] = v > out[c] ? v : out[c];
        }
}

/* ------------------------------------------------------------------------------------------ */
/* Clipping                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static inline float clip1(float v, float u) { return v > u ? u : (v < -u ? -u : v); }

#ifdef SS_X86
/* Streaming (non-temporal) stores skip reading the destination into the cache first: for outputs
 * far larger than the cache that is a third of the memory traffic. The destination is peeled to a
 * 64-byte boundary with ordinary stores. */
static inline ptrdiff_t peel_to_64(const float *x, ptrdiff_t n) {
    const ptrdiff_t misaligned = (ptrdiff_t)(((uintptr_t)x & 63u) / sizeof(float));
    const ptrdiff_t peel = misaligned ? 16 - misaligned : 0;
    return peel < n ? peel : n;
}

SS_T512 static void clip_row512(const float *r, ptrdiff_t cols, float u, float *x, int streaming) {
    const __m512 hi = _mm512_set1_ps(u), lo = _mm512_set1_ps(-u);
    ptrdiff_t c = 0;
    if (streaming && ((uintptr_t)x & 3u) == 0) {
        for (const ptrdiff_t peel = peel_to_64(x, cols); c < peel; c++) x[c] = clip1(r[c], u);
        for (; c + 16 <= cols; c += 16)
            _mm512_stream_ps(x + c, _mm512_min_ps(_mm512_max_ps(_mm512_loadu_ps(r + c), lo), hi));
    }
    for (; c + 32 <= cols; c += 32) {
        _mm512_storeu_ps(x + c, _mm512_min_ps(_mm512_max_ps(_mm512_loadu_ps(r + c), lo), hi));
        _mm512_storeu_ps(x + c + 16, _mm512_min_ps(_mm512_max_ps(_mm512_loadu_ps(r + c + 16), lo), hi));
    }
    for (; c < cols; c += 16) {
        const ptrdiff_t left = cols - c;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        _mm512_mask_storeu_ps(x + c, m, _mm512_min_ps(_mm512_max_ps(_mm512_maskz_loadu_ps(m, r + c), lo), hi));
    }
}

SS_T256 static void clip_row256(const float *r, ptrdiff_t cols, float u, float *x, int streaming) {
    const __m256 hi = _mm256_set1_ps(u), lo = _mm256_set1_ps(-u);
    ptrdiff_t c = 0;
    if (streaming && ((uintptr_t)x & 3u) == 0) {
        for (const ptrdiff_t peel = peel_to_64(x, cols); c < peel; c++) x[c] = clip1(r[c], u);
        for (; c + 8 <= cols; c += 8)
            _mm256_stream_ps(x + c, _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(r + c), lo), hi));
    }
    for (; c + 16 <= cols; c += 16) {
        _mm256_storeu_ps(x + c, _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(r + c), lo), hi));
        _mm256_storeu_ps(x + c + 8, _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(r + c + 8), lo), hi));
    }
    for (; c < cols; c++) x[c] = clip1(r[c], u);
}

SS_T512 static void clip_cols512(const float *r, const float *bound, ptrdiff_t begin, ptrdiff_t end, float *x, int streaming) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    ptrdiff_t c = begin;
    if (streaming && ((uintptr_t)x & 3u) == 0) {
        for (const ptrdiff_t peel = begin + peel_to_64(x + begin, end - begin); c < peel; c++) x[c] = clip1(r[c], bound[c]);
        for (; c + 16 <= end; c += 16) {
            const __m512 hi = _mm512_loadu_ps(bound + c), lo = _mm512_xor_ps(hi, sign);
            _mm512_stream_ps(x + c, _mm512_min_ps(_mm512_max_ps(_mm512_loadu_ps(r + c), lo), hi));
        }
    }
    for (; c < end; c += 16) {
        const ptrdiff_t left = end - c;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        const __m512 hi = _mm512_maskz_loadu_ps(m, bound + c), lo = _mm512_xor_ps(hi, sign);
        _mm512_mask_storeu_ps(x + c, m, _mm512_min_ps(_mm512_max_ps(_mm512_maskz_loadu_ps(m, r + c), lo), hi));
    }
}

SS_T256 static void clip_cols256(const float *r, const float *bound, ptrdiff_t begin, ptrdiff_t end, float *x, int streaming) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    ptrdiff_t c = begin;
    if (streaming && ((uintptr_t)x & 3u) == 0) {
        for (const ptrdiff_t peel = begin + peel_to_64(x + begin, end - begin); c < peel; c++) x[c] = clip1(r[c], bound[c]);
        for (; c + 8 <= end; c += 8) {
            const __m256 hi = _mm256_loadu_ps(bound + c), lo = _mm256_xor_ps(hi, sign);
            _mm256_stream_ps(x + c, _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(r + c), lo), hi));
        }
    }
    for (; c + 8 <= end; c += 8) {
        const __m256 hi = _mm256_loadu_ps(bound + c), lo = _mm256_xor_ps(hi, sign);
        _mm256_storeu_ps(x + c, _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(r + c), lo), hi));
    }
    for (; c < end; c++) x[c] = clip1(r[c], bound[c]);
}
#endif

void ss_l1inf_clip_rows(ss_isa isa, const float *w, ptrdiff_t cols, ptrdiff_t ld, const float *bound,
                        ptrdiff_t begin, ptrdiff_t end, float *x, ptrdiff_t ldx, int streaming) {
    isa = ss_clamp_isa(isa);
    for (ptrdiff_t r = begin; r < end; r++) {
        const float *src = w + r * ld;
        float *dst = x + r * ldx;
#ifdef SS_X86
        if (isa == SS_ISA_AVX512) { clip_row512(src, cols, bound[r], dst, streaming); continue; }
        if (isa == SS_ISA_AVX2) { clip_row256(src, cols, bound[r], dst, streaming); continue; }
#endif
        for (ptrdiff_t c = 0; c < cols; c++) dst[c] = clip1(src[c], bound[r]);
    }
#ifdef SS_X86
    if (streaming && isa >= SS_ISA_AVX2) _mm_sfence();
#endif
    (void)streaming;
}

void ss_l1inf_clip_cols(ss_isa isa, const float *w, ptrdiff_t rows, ptrdiff_t ld, const float *bound,
                        ptrdiff_t begin, ptrdiff_t end, float *x, ptrdiff_t ldx, int streaming) {
    isa = ss_clamp_isa(isa);
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *src = w + r * ld;
        float *dst = x + r * ldx;
#ifdef SS_X86
        if (isa == SS_ISA_AVX512) { clip_cols512(src, bound, begin, end, dst, streaming); continue; }
        if (isa == SS_ISA_AVX2) { clip_cols256(src, bound, begin, end, dst, streaming); continue; }
#endif
        for (ptrdiff_t c = begin; c < end; c++) dst[c] = clip1(src[c], bound[c]);
    }
#ifdef SS_X86
    if (streaming && isa >= SS_ISA_AVX2) _mm_sfence();
#endif
    (void)streaming;
}

/* ------------------------------------------------------------------------------------------ */
/* l1-ball threshold (Condat)                                                                   */
/* ------------------------------------------------------------------------------------------ */

double ss_l1_ball_threshold(const float *v, ptrdiff_t n, double radius, double *scratch) {
    double total = 0.0;
    for (ptrdiff_t k = 0; k < n; k++) total += v[k];
    if (total <= radius || n == 0) return 0.0;
    if (radius <= 0.0) {  /* everything goes */
        double top = 0.0;
        for (ptrdiff_t k = 0; k < n; k++) top = v[k] > top ? v[k] : top;
        return top;
    }
    /* Candidates `active` (a run whose mean-minus-radius threshold rho they exceed) and the ones
     * set aside; rho = (sum of active - radius) / |active| is refined as values come and go. */
    double *active = scratch, *aside = scratch + n;
    ptrdiff_t na = 0, ns = 0;
    active[na++] = v[0];
    double rho = v[0] - radius;
    for (ptrdiff_t k = 1; k < n; k++) {
        const double y = v[k];
        if (y <= rho) continue;
        rho += (y - rho) / (double)(na + 1);
        if (rho > y - radius) {
            active[na++] = y;
        } else {
            for (ptrdiff_t i = 0; i < na; i++) aside[ns++] = active[i];
            na = 0;
            active[na++] = y;
            rho = y - radius;
        }
    }
    for (ptrdiff_t i = 0; i < ns; i++) {
        const double y = aside[i];
        if (y > rho) {
            active[na++] = y;
            rho += (y - rho) / (double)na;
        }
    }
    for (;;) {
        const ptrdiff_t before = na;
        ptrdiff_t kept = 0;
        for (ptrdiff_t i = 0; i < na; i++) {
            const double y = active[i];
            if (y <= rho) {
                if (na - (i - kept) - 1 > 0) rho += (rho - y) / (double)(na - (i - kept) - 1);
            } else {
                active[kept++] = y;
            }
        }
        na = kept;
        if (na == before) break;
    }
    return rho > 0.0 ? rho : 0.0;
}

/* ------------------------------------------------------------------------------------------ */
/* Exact projection                                                                             */
/* ------------------------------------------------------------------------------------------ */

/* Sorts non-negative floats descending (stable LSD radix sort on their bits). */
static void sort_desc(float *values, ptrdiff_t n, uint32_t *keys, uint32_t *tmp) {
    for (ptrdiff_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &values[i], 4);
        keys[i] = ~bits;
    }
    uint32_t *src = keys, *dst = tmp;
    for (int shift = 0; shift < 32; shift += 8) {
        ptrdiff_t hist[256] = {0};
        for (ptrdiff_t i = 0; i < n; i++) hist[(src[i] >> shift) & 255u]++;
        if (hist[(src[0] >> shift) & 255u] == n) continue;
        ptrdiff_t sum = 0;
        for (int b = 0; b < 256; b++) { const ptrdiff_t h = hist[b]; hist[b] = sum; sum += h; }
        for (ptrdiff_t i = 0; i < n; i++) dst[hist[(src[i] >> shift) & 255u]++] = src[i];
        uint32_t *t = src; src = dst; dst = t;
    }
    for (ptrdiff_t i = 0; i < n; i++) {
        const uint32_t bits = ~src[i];
        memcpy(&values[i], &bits, 4);
    }
}

void ss_l1inf_sort_groups(const float *w, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld, int column_groups,
                          ptrdiff_t begin, ptrdiff_t end, float *sorted, float *prefix) {
    const ptrdiff_t len = column_groups ? rows : cols;
    uint32_t *keys = malloc((size_t)len * 2 * sizeof(uint32_t));
    if (!keys) return;
    for (ptrdiff_t g = begin; g < end; g++) {
        float *s = sorted + g * len, *p = prefix + g * len;
        for (ptrdiff_t k = 0; k < len; k++) {
            const float v = column_groups ? w[k * ld + g] : w[g * ld + k];
            s[k] = v == v ? fabsf(v) : 0.0f;
        }
        sort_desc(s, len, keys, keys + len);
        double run = 0.0;
        for (ptrdiff_t k = 0; k < len; k++) { run += s[k]; p[k] = (float)run; }
    }
    free(keys);
}

/* Group g's bound for theta, and the slope d mu / d theta there, with `*k` (1-based count of
 * values above the bound) advanced monotonically as theta grows. */
static double group_bound(const float *s, const float *p, ptrdiff_t len, double theta, ptrdiff_t *k, double *slope) {
    if ((double)p[len - 1] <= theta) { *k = len; *slope = 0.0; return 0.0; }
    /* piece k: theta in [P_k - k a_k, P_k - k a_{k+1}), mu = (P_k - theta) / k */
    while (*k < len && (double)p[*k - 1] - (double)(*k) * (double)s[*k] <= theta) (*k)++;
    *slope = -1.0 / (double)(*k);
    const double mu = ((double)p[*k - 1] - theta) / (double)(*k);
    return mu > 0.0 ? mu : 0.0;
}

int ss_l1inf_exact_bounds(const float *sorted, const float *prefix, ptrdiff_t groups, ptrdiff_t len, double radius,
                          float *mu) {
    double norm = 0.0;
    for (ptrdiff_t g = 0; g < groups; g++) norm += sorted[g * len];
    if (norm <= radius) {
        for (ptrdiff_t g = 0; g < groups; g++) mu[g] = sorted[g * len];
        return 0;
    }
    ptrdiff_t *k = malloc((size_t)groups * sizeof(ptrdiff_t));
    if (!k) return -1;
    for (ptrdiff_t g = 0; g < groups; g++) k[g] = 1;
    /* S(theta) = sum_g mu_g(theta) is convex, decreasing and piecewise linear; Newton from theta = 0
     * (where S > radius) stays left of the root and lands on it once in the root's piece. */
    double theta = 0.0;
    int steps = 0;
    for (; steps < 1000; steps++) {
        double s = 0.0, slope = 0.0;
        for (ptrdiff_t g = 0; g < groups; g++) {
            double d;
            s += group_bound(sorted + g * len, prefix + g * len, len, theta, &k[g], &d);
            slope += d;
        }
        if (s - radius <= 1e-12 * radius || slope >= 0.0) break;
        const double next = theta + (s - radius) / (-slope);
        if (next <= theta) break;
        theta = next;
    }
    for (ptrdiff_t g = 0; g < groups; g++) {
        double d;
        mu[g] = (float)group_bound(sorted + g * len, prefix + g * len, len, theta, &k[g], &d);
    }
    free(k);
    return steps;
}
