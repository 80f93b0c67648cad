/*
 * Transposable N:M masks (TSENOR), one m x m block at a time. See include/tsenor.h.
 */
#include "tsenor.h"
#include "internal.h"
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

enum { MAXM = SS_TSENOR_MAX_M, MAXE = MAXM * MAXM };

/* ------------------------------------------------------------------------------------------ */
/* 2:4: the 90 patterns                                                                         */
/* ------------------------------------------------------------------------------------------ */

static unsigned short patterns24[90];
static pthread_once_t patterns24_once = PTHREAD_ONCE_INIT;

static void build_patterns24(void) {
    int count = 0;
    for (unsigned bits = 0; bits < 65536u; bits++) {
        int ok = 1;
        for (int i = 0; i < 4 && ok; i++) ok = __builtin_popcount((bits >> (4 * i)) & 15u) == 2;
        for (int j = 0; j < 4 && ok; j++) ok = __builtin_popcount(bits & (0x1111u << j)) == 2;
        if (ok && count < 90) patterns24[count++] = (unsigned short)bits;
    }
}

unsigned ss_tsenor_2of4(const float *w, ptrdiff_t ldw) {
    pthread_once(&patterns24_once, build_patterns24);
    float a[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            const float v = fabsf(w[i * ldw + j]);
            a[4 * i + j] = v == v ? v : 0.0f;  /* NaN keeps nothing */
        }
    float best = -1.0f;
    unsigned winner = patterns24[0];
    for (int p = 0; p < 90; p++) {
        const unsigned bits = patterns24[p];
        float s = 0.0f;
        for (int e = 0; e < 16; e++)
            if (bits & (1u << e)) s += a[e];
        if (s > best) { best = s; winner = bits; }
    }
    return winner;
}

/* ------------------------------------------------------------------------------------------ */
/* Rounding, repair, 2-opt                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Indices 0..count-1 by key descending, ties by index (stable LSD radix sort on the float bits;
 * keys are non-negative). */
static void order_desc(const float *key, int count, uint16_t *out) {
    uint32_t k[MAXE];
    uint16_t tmp[MAXE];
    for (int e = 0; e < count; e++) {
        uint32_t bits;
        memcpy(&bits, &key[e], 4);
        k[e] = ~bits;
        out[e] = (uint16_t)e;
    }
    uint16_t *src = out, *dst = tmp;
    for (int shift = 0; shift < 32; shift += 8) {
        int hist[256] = {0};
        for (int e = 0; e < count; e++) hist[(k[src[e]] >> shift) & 255u]++;
        if (hist[(k[src[0]] >> shift) & 255u] == count) continue;  /* every key shares this byte */
        int sum = 0;
        for (int b = 0; b < 256; b++) { const int h = hist[b]; hist[b] = sum; sum += h; }
        for (int e = 0; e < count; e++) dst[hist[(k[src[e]] >> shift) & 255u]++] = src[e];
        uint16_t *t = src; src = dst; dst = t;
    }
    if (src != out) memcpy(out, src, (size_t)count * sizeof(uint16_t));
}

/* One augmenting path from deficient row `row` to a deficient column, by breadth-first search
 * over "add (r, c)" (unkept) and "remove (r', c)" (kept) steps; flips it. Such a path always
 * exists while a row is deficient. Returns 0 if none was found (cannot happen). */
static int augment(int m, int n, uint8_t *mk, int *rc, int *cc, int row) {
    int prev_row_of_col[MAXM], prev_col_of_row[MAXM], queue[MAXM];
    for (int x = 0; x < m; x++) { prev_row_of_col[x] = -1; prev_col_of_row[x] = -1; }
    int head = 0, tail = 0;
    queue[tail++] = row;
    prev_col_of_row[row] = m;  /* the start */
    while (head < tail) {
        const int r = queue[head++];
        for (int c = 0; c < m; c++) {
            if (mk[r * m + c] || prev_row_of_col[c] >= 0) continue;
            prev_row_of_col[c] = r;
            if (cc[c] < n) {  /* flip the path back to `row` */
                int col = c;
                for (;;) {
                    const int rr = prev_row_of_col[col];
                    mk[rr * m + col] = 1;
                    const int back = prev_col_of_row[rr];
                    if (back == m) break;
                    mk[rr * m + back] = 0;
                    col = back;
                }
                rc[row]++;
                cc[c]++;
                return 1;
            }
            for (int r2 = 0; r2 < m; r2++) {
                if (mk[r2 * m + c] && prev_col_of_row[r2] < 0) {
                    prev_col_of_row[r2] = c;
                    queue[tail++] = r2;
                }
            }
        }
    }
    return 0;
}

/* Greedy on `prio` (descending), then repair to exactly n per row and column: add (i, j) for a
 * deficient row i and column j, else the best exchange through a kept (i', j') (add (i, j'),
 * (i', j), drop (i', j')), else any augmenting path. */
static void round_greedy(const float *prio, const float *w, int m, int n, uint8_t *mk) {
    uint16_t order[MAXE];
    order_desc(prio, m * m, order);
    int rc[MAXM] = {0}, cc[MAXM] = {0};
    memset(mk, 0, (size_t)(m * m));
    int kept = 0;
    for (int t = 0; t < m * m && kept < n * m; t++) {
        const int e = order[t], i = e / m, j = e % m;
        if (rc[i] < n && cc[j] < n) { mk[e] = 1; rc[i]++; cc[j]++; kept++; }
    }
    for (;;) {
        int i = -1, j = -1;
        for (int a = 0; a < m && i < 0; a++) if (rc[a] < n) i = a;
        if (i < 0) return;
        for (int b = 0; b < m && j < 0; b++) if (cc[b] < n) j = b;
        if (!mk[i * m + j]) { mk[i * m + j] = 1; rc[i]++; cc[j]++; continue; }
        float best = -FLT_MAX;
        int bi = -1, bj = -1;
        for (int a = 0; a < m; a++) {
            if (a == i || mk[a * m + j]) continue;
            for (int b = 0; b < m; b++) {
                if (!mk[a * m + b] || mk[i * m + b]) continue;
                const float gain = w[i * m + b] + w[a * m + j] - w[a * m + b];
                if (gain > best) { best = gain; bi = a; bj = b; }
            }
        }
        if (bi >= 0) {
            mk[i * m + bj] = 1; mk[bi * m + j] = 1; mk[bi * m + bj] = 0;
            rc[i]++; cc[j]++;
        } else if (!augment(m, n, mk, rc, cc, i)) {
            return;  /* unreachable; the caller's check would report it */
        }
    }
}

/* 2-opt: for rows a < c, move kept (a, b) -> (c, b) and kept (c, d) -> (a, d) (row and column
 * counts unchanged) when it keeps more. The best pair (b, d) of a row pair separates into two
 * independent maxima over the columns where the rows differ (bit masks), so a sweep costs at
 * most O(m^3) and usually much less. */
static void two_opt(const float *w, int m, uint8_t *mk, int rounds) {
    uint32_t row[MAXM];
    for (int a = 0; a < m; a++) {
        row[a] = 0;
        for (int x = 0; x < m; x++) row[a] |= (uint32_t)mk[a * m + x] << x;
    }
    for (int round = 0; round < rounds; round++) {
        int improved = 0;
        for (int a = 0; a < m; a++) {
            const float *wa = w + a * m;
            for (int c = a + 1; c < m; c++) {
                const float *wc = w + c * m;
                uint32_t only_a = row[a] & ~row[c], only_c = row[c] & ~row[a];
                if (!only_a) continue;  /* equal rows (same count) */
                float g1 = -FLT_MAX, g2 = -FLT_MAX;
                int b = -1, d = -1;
                while (only_a) {
                    const int x = __builtin_ctz(only_a);
                    only_a &= only_a - 1;
                    const float g = wc[x] - wa[x];
                    if (g > g1) { g1 = g; b = x; }
                }
                while (only_c) {
                    const int x = __builtin_ctz(only_c);
                    only_c &= only_c - 1;
                    const float g = wa[x] - wc[x];
                    if (g > g2) { g2 = g; d = x; }
                }
                if (g1 + g2 > 0.0f) {
                    row[a] ^= (1u << b) | (1u << d);
                    row[c] ^= (1u << b) | (1u << d);
                    improved = 1;
                }
            }
        }
        if (!improved) break;
    }
    for (int a = 0; a < m; a++)
        for (int x = 0; x < m; x++) mk[a * m + x] = (uint8_t)((row[a] >> x) & 1u);
}

static float kept_sum(const float *w, const uint8_t *mk, int count) {
    float s = 0.0f;
    for (int e = 0; e < count; e++) if (mk[e]) s += w[e];
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Entropic OT (Dykstra)                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Each iteration: row scales r_i = n / (row sum) (from the previous pass), column sums of r_i s_ij
 * give column scales c_j = n / (column sum), then p = s_ij r_i c_j q_ij is clipped at 1 with
 * Dykstra's correction (s = min(p, 1), q = p / s = max(p, 1)) while the next row sums are taken.
 * Stops once every row and column sum is within 0.1 % of n. Entries below 1e-30 become 0 (no
 * denormals, which are ~100x slower; such entries never win the rounding). */
static void dykstra_portable(float *s, int m, int n, int iterations) {
    float q[MAXE], r[MAXM], c[MAXM];
    const float target = (float)n, tolerance = 1e-3f * (float)n;
    for (int e = 0; e < m * m; e++) q[e] = 1.0f;
    for (int i = 0; i < m; i++) {
        float sum = 0.0f;
        for (int j = 0; j < m; j++) sum += s[i * m + j];
        r[i] = sum > 0.0f ? target / sum : 1.0f;
    }
    for (int t = 0; t < iterations; t++) {
        float worst = 0.0f;
        for (int j = 0; j < m; j++) c[j] = 0.0f;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) c[j] += s[i * m + j] * r[i];
        for (int j = 0; j < m; j++) {
            const float dev = fabsf(c[j] - target);
            if (dev > worst) worst = dev;
            c[j] = c[j] > 0.0f ? target / c[j] : 1.0f;
        }
        for (int i = 0; i < m; i++) {
            float sum = 0.0f;
            for (int j = 0; j < m; j++) {
                const int e = i * m + j;
                float p = s[e] * r[i] * c[j] * q[e];
                if (p < 1e-30f) p = 0.0f;
                s[e] = p < 1.0f ? p : 1.0f;
                q[e] = p > 1.0f ? p : 1.0f;
                sum += s[e];
            }
            const float dev = fabsf(sum - target);
            if (dev > worst) worst = dev;
            r[i] = sum > 0.0f ? target / sum : 1.0f;
        }
        if (worst < tolerance) return;
    }
}

#ifdef SS_X86
SS_T256 SS_AI __m256 dykstra_scales256(__m256 sums, __m256 target) {
    /* target / sums where sums > 0, else 1 */
    const __m256 positive = _mm256_cmp_ps(sums, _mm256_setzero_ps(), _CMP_GT_OQ);
    return _mm256_blendv_ps(_mm256_set1_ps(1.0f), _mm256_div_ps(target, sums), positive);
}

/* The same for m a multiple of 8 (up to 32), 8 columns per vector. */
SS_T256 static void dykstra_avx2(float *s, int m, int n, int iterations) {
    float q[MAXE] __attribute__((aligned(32)));
    float r[MAXM] __attribute__((aligned(32)));
    const int v = m / 8;
    const __m256 one = _mm256_set1_ps(1.0f), target = _mm256_set1_ps((float)n), tiny = _mm256_set1_ps(1e-30f);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const float tolerance = 1e-3f * (float)n;
    for (int e = 0; e < m * m; e += 8) _mm256_storeu_ps(q + e, one);
    for (int i = 0; i < m; i++) {
        __m256 acc = _mm256_setzero_ps();
        for (int k = 0; k < v; k++) acc = _mm256_add_ps(acc, _mm256_loadu_ps(s + i * m + 8 * k));
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        h = _mm_hadd_ps(h, h);
        h = _mm_hadd_ps(h, h);
        const float sum = _mm_cvtss_f32(h);
        r[i] = sum > 0.0f ? (float)n / sum : 1.0f;
    }
    for (int t = 0; t < iterations; t++) {
        __m256 c[4], worst = _mm256_setzero_ps();
        for (int k = 0; k < v; k++) c[k] = _mm256_setzero_ps();
        for (int i = 0; i < m; i++) {
            const __m256 ri = _mm256_set1_ps(r[i]);
            for (int k = 0; k < v; k++) c[k] = _mm256_fmadd_ps(_mm256_loadu_ps(s + i * m + 8 * k), ri, c[k]);
        }
        for (int k = 0; k < v; k++) {
            worst = _mm256_max_ps(worst, _mm256_andnot_ps(sign, _mm256_sub_ps(c[k], target)));
            c[k] = dykstra_scales256(c[k], target);
        }
        for (int i = 0; i < m; i++) {
            const __m256 ri = _mm256_set1_ps(r[i]);
            __m256 acc = _mm256_setzero_ps();
            for (int k = 0; k < v; k++) {
                float *se = s + i * m + 8 * k, *qe = q + i * m + 8 * k;
                __m256 p = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(se), ri), _mm256_mul_ps(c[k], _mm256_loadu_ps(qe)));
                p = _mm256_and_ps(p, _mm256_cmp_ps(p, tiny, _CMP_GE_OQ));
                const __m256 clipped = _mm256_min_ps(p, one);
                _mm256_storeu_ps(se, clipped);
                _mm256_storeu_ps(qe, _mm256_max_ps(p, one));
                acc = _mm256_add_ps(acc, clipped);
            }
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
            h = _mm_hadd_ps(h, h);
            h = _mm_hadd_ps(h, h);
            const float sum = _mm_cvtss_f32(h);
            const float dev = fabsf(sum - (float)n);
            worst = _mm256_max_ps(worst, _mm256_set1_ps(dev));
            r[i] = sum > 0.0f ? (float)n / sum : 1.0f;
        }
        __m128 w4 = _mm_max_ps(_mm256_castps256_ps128(worst), _mm256_extractf128_ps(worst, 1));
        w4 = _mm_max_ps(w4, _mm_movehl_ps(w4, w4));
        w4 = _mm_max_ss(w4, _mm_shuffle_ps(w4, w4, 1));
        if (_mm_cvtss_f32(w4) < tolerance) return;
    }
}
#endif

static void dykstra(ss_isa isa, float *s, int m, int n, int iterations) {
#ifdef SS_X86
    if (ss_clamp_isa(isa) >= SS_ISA_AVX2 && m % 8 == 0) { dykstra_avx2(s, m, n, iterations); return; }
#endif
    (void)isa;
    dykstra_portable(s, m, n, iterations);
}

/* ------------------------------------------------------------------------------------------ */
/* Blocks                                                                                       */
/* ------------------------------------------------------------------------------------------ */

float ss_tsenor_block(const ss_tsenor_params *p, const float *w, ptrdiff_t ldw, uint8_t *mask, ptrdiff_t ldmask) {
    const int m = p->m, n = p->n;
    if (m == 4 && n == 2) {
        const unsigned bits = ss_tsenor_2of4(w, ldw);
        float s = 0.0f;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                const int keep = (bits >> (4 * i + j)) & 1u;
                mask[i * ldmask + j] = (uint8_t)keep;
                if (keep) s += fabsf(w[i * ldw + j]);
            }
        return s;
    }
    float a[MAXE], s[MAXE];
    float total = 0.0f, top = 0.0f;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            float v = fabsf(w[i * ldw + j]);
            if (v != v) v = 0.0f;       /* NaN keeps nothing */
            if (v > FLT_MAX) v = FLT_MAX;
            a[i * m + j] = v;
            total += v;
            top = fmaxf(top, v);
        }
    const float mean = total / (float)(m * m);
    for (int e = 0; e < m * m; e++) s[e] = mean > 0.0f ? expf(p->tau * ((a[e] - top) / mean)) : 1.0f;
    dykstra(p->isa, s, m, n, p->iterations);

    /* The OT rounding or (safeguard) greedy rounding on |w|, whichever keeps more, then 2-opt. */
    uint8_t from_ot[MAXE], from_greedy[MAXE];
    round_greedy(s, a, m, n, from_ot);
    round_greedy(a, a, m, n, from_greedy);
    uint8_t *best = kept_sum(a, from_ot, m * m) >= kept_sum(a, from_greedy, m * m) ? from_ot : from_greedy;
    two_opt(a, m, best, p->two_opt_rounds);
    for (int i = 0; i < m; i++) memcpy(mask + i * ldmask, best + i * m, (size_t)m);
    return kept_sum(a, best, m * m);
}

void ss_tsenor_blocks(const ss_tsenor_params *p, const float *w, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld,
                      ptrdiff_t begin, ptrdiff_t end, uint8_t *mask) {
    const ptrdiff_t m = p->m, grid = cols / m;
    (void)rows;
    for (ptrdiff_t b = begin; b < end; b++) {
        const ptrdiff_t bi = b / grid, bj = b % grid;
        ss_tsenor_block(p, w + bi * m * ld + bj * m, ld, mask + bi * m * cols + bj * m, cols);
    }
}
