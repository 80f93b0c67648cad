/*
 * Element-wise kernels of recovery training: activation backward (ReLU, exact GELU), bias
 * gradients (column sums), a masked AdamW step, sums of squares and scaling; the losses.
 *
 * The vector code is written once over a few primitives (VLOAD, VFMA, VSEL_GT, ...) and this file
 * includes itself twice to instantiate it for AVX-512 (suffix _512) and AVX2 (_256). Each vector
 * kernel handles whole vectors and leaves the tail to the portable element function, so every
 * element of every path computes the same formula. GELU backward takes Phi(x) = GELU(x) / x and
 * e^{-x^2/2} from the vectorised activation kernels (ss_act_apply_isa) in L1-sized chunks.
 */
#ifndef SS_TRAIN_VECTOR_PASS
#include "train.h"
#include "internal.h"
#include <math.h>
#include <string.h>

#define INV_SQRT_2PI 0.39894228040143268f
#define GELU_SMALL 1e-3f /* below: Phi(x) = 1/2 + x / sqrt(2 pi) (error < 1e-10) */
enum { GELU_CHUNK = 512 };

/* ---- portable element functions (also the vector paths' tails) ---- */

static inline float relu_grad(float x, float dy) { return x > 0.0f ? dy : 0.0f; }

/* g = GELU(x), e = exp(-x^2/2). */
static inline float gelu_grad(float x, float dy, float g, float e) {
    float cdf = fabsf(x) > GELU_SMALL ? g / x : 0.5f + x * INV_SQRT_2PI;
    return dy * (cdf + x * e * INV_SQRT_2PI);
}

typedef struct {
    float lr, b1, b2, eps, wd, c1, c2; /* c1 = 1 / (1 - b1^t), c2 = 1 / (1 - b2^t) */
} adam_k;

static inline void adam_one(const adam_k *k, float *p, float g, float *m, float *v) {
    float mm = k->b1 * *m + (1.0f - k->b1) * g;
    float vv = k->b2 * *v + (1.0f - k->b2) * g * g;
    *m = mm;
    *v = vv;
    *p -= k->lr * (mm * k->c1 / (sqrtf(vv * k->c2) + k->eps) + k->wd * *p);
}

static void relu_portable(const float *x, const float *dy, float *dx, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) dx[i] = relu_grad(x[i], dy[i]);
}

static void gelu_combine_portable(const float *x, const float *dy, float *dx, const float *g, const float *e, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) dx[i] = gelu_grad(x[i], dy[i], g[i], e[i]);
}

static void colsum_portable(const float *dy, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld, float *db, ptrdiff_t j0) {
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t j = j0; j < cols; j++) db[j] += dy[r * ld + j];
}

static void adam_portable(const adam_k *k, float *p, const float *g, float *m, float *v, const uint8_t *mask, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++)
        if (!mask || mask[i]) adam_one(k, p + i, g[i], m + i, v + i);
}

static double sumsq_portable(const float *x, ptrdiff_t n) {
    double s = 0;
    for (ptrdiff_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

static void scale_portable(float *x, ptrdiff_t n, float s) {
    for (ptrdiff_t i = 0; i < n; i++) x[i] *= s;
}

/* Row reductions and updates of the norm and softmax backward passes (portable forms and tails). */
static double dot_portable(const float *a, const float *b, ptrdiff_t n, ptrdiff_t i0) {
    double s = 0;
    for (ptrdiff_t i = i0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* out[i] = scale * (g[i] * w[i] - k1 - k2 * h[i]) with w NULL meaning 1 (norm: g = dy, w = gamma). */
static void combine_portable(const float *g, const float *w, const float *h, float *out, ptrdiff_t n, ptrdiff_t i0, float scale, float k1, float k2) {
    for (ptrdiff_t i = i0; i < n; i++) out[i] = scale * (g[i] * (w ? w[i] : 1.0f) - k1 - k2 * h[i]);
}

#ifdef SS_X86
#define SS_TRAIN_VECTOR_PASS 512
#include __FILE__
#undef SS_TRAIN_VECTOR_PASS
#define SS_TRAIN_VECTOR_PASS 256
#include __FILE__
#undef SS_TRAIN_VECTOR_PASS
#endif

/* ---- dispatch ---- */

/* The vector kernels return how many leading elements they handled. */
#ifdef SS_X86
#define DISPATCH(isa, call512, call256, done) \
    switch (ss_clamp_isa(isa)) { \
    case SS_ISA_AVX512: done = call512; break; \
    case SS_ISA_AVX2: done = call256; break; \
    default: done = 0; break; \
    }
#else
#define DISPATCH(isa, call512, call256, done) ((void)(isa), done = 0)
#endif

/* GELU backward on one chunk (n <= GELU_CHUNK): g and e from the activation kernels. */
static void gelu_chunk(ss_isa isa, const float *x, const float *dy, float *dx, ptrdiff_t n) {
    float g[GELU_CHUNK] __attribute__((aligned(64))), e[GELU_CHUNK] __attribute__((aligned(64)));
    memcpy(g, x, (size_t)n * sizeof(float));
    for (ptrdiff_t i = 0; i < n; i++) e[i] = -0.5f * x[i] * x[i];
    ss_act_apply_isa(isa, SS_ACT_GELU, g, n);
    ss_act_apply_isa(isa, SS_ACT_EXP, e, n);
    ptrdiff_t done;
    DISPATCH(isa, gelu_combine_512(x, dy, dx, g, e, n), gelu_combine_256(x, dy, dx, g, e, n), done);
    gelu_combine_portable(x + done, dy + done, dx + done, g + done, e + done, n - done);
}

ss_status ss_train_act_backward_isa(ss_isa isa, ss_act_kind act, const float *x, const float *dy, float *dx, ptrdiff_t n) {
    if (n <= 0) return SS_OK;
    ptrdiff_t done;
    switch (act) {
    case SS_ACT_NONE:
        if (dx != dy) memmove(dx, dy, (size_t)n * sizeof(float));
        return SS_OK;
    case SS_ACT_RELU:
        DISPATCH(isa, relu_512(x, dy, dx, n), relu_256(x, dy, dx, n), done);
        relu_portable(x + done, dy + done, dx + done, n - done);
        return SS_OK;
    case SS_ACT_GELU:
        for (ptrdiff_t i = 0; i < n; i += GELU_CHUNK) gelu_chunk(isa, x + i, dy + i, dx + i, ss_min(GELU_CHUNK, n - i));
        return SS_OK;
    default:
        return SS_ERR_ARGUMENT;
    }
}

void ss_train_column_sums_isa(ss_isa isa, const float *dy, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld, float *db) {
    if (rows <= 0 || cols <= 0) return;
    ptrdiff_t done;
    DISPATCH(isa, colsum_512(dy, rows, cols, ld, db), colsum_256(dy, rows, cols, ld, db), done);
    colsum_portable(dy, rows, cols, ld, db, done);
}

void ss_train_adam_isa(ss_isa isa, const ss_adam_config *config, float *p, const float *g, float *m, float *v,
                       const uint8_t *mask, ptrdiff_t n) {
    if (n <= 0 || config->step < 1) return;
    adam_k k = {config->lr, config->beta1, config->beta2, config->eps, config->weight_decay,
                (float)(1.0 / (1.0 - pow(config->beta1, (double)config->step))),
                (float)(1.0 / (1.0 - pow(config->beta2, (double)config->step)))};
    ptrdiff_t done;
    DISPATCH(isa, adam_512(&k, p, g, m, v, mask, n), adam_256(&k, p, g, m, v, mask, n), done);
    adam_portable(&k, p + done, g + done, m + done, v + done, mask ? mask + done : NULL, n - done);
}

double ss_train_sum_squares_isa(ss_isa isa, const float *x, ptrdiff_t n) {
    if (n <= 0) return 0;
    double s = 0;
    ptrdiff_t done;
    DISPATCH(isa, sumsq_512(x, n, &s), sumsq_256(x, n, &s), done);
    return s + sumsq_portable(x + done, n - done);
}

void ss_train_scale_isa(ss_isa isa, float *x, ptrdiff_t n, float s) {
    if (n <= 0) return;
    ptrdiff_t done;
    DISPATCH(isa, scale_512(x, n, s), scale_256(x, n, s), done);
    scale_portable(x + done, n - done, s);
}

/* a.b over i < n (vector body, portable tail). */
static double dot(ss_isa isa, const float *a, const float *b, ptrdiff_t n) {
    double s = 0;
    ptrdiff_t done;
    DISPATCH(isa, dot_512(a, b, n, &s), dot_256(a, b, n, &s), done);
    return s + dot_portable(a, b, n, done);
}

static void combine(ss_isa isa, const float *g, const float *w, const float *h, float *out, ptrdiff_t n, float scale, float k1, float k2) {
    ptrdiff_t done;
    DISPATCH(isa, combine_512(g, w, h, out, n, scale, k1, k2), combine_256(g, w, h, out, n, scale, k1, k2), done);
    combine_portable(g, w, h, out, n, done, scale, k1, k2);
}

enum { NORM_MAX_COLS = 8192 };

void ss_train_layer_norm_backward_isa(ss_isa isa, const float *x, const float *dy, float *dx, ptrdiff_t rows, ptrdiff_t cols,
                                      ptrdiff_t ld, const float *gamma, float eps, float *dgamma, float *dbeta) {
    if (rows <= 0 || cols <= 0 || cols > NORM_MAX_COLS) return;
    float xhat[NORM_MAX_COLS], g[NORM_MAX_COLS];
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *xr = x + r * ld, *dyr = dy + r * ld;
        double sum = 0, sq = 0;
        for (ptrdiff_t j = 0; j < cols; j++) sum += xr[j];
        double mean = sum / cols;
        for (ptrdiff_t j = 0; j < cols; j++) sq += (xr[j] - mean) * (xr[j] - mean);
        float rstd = (float)(1.0 / sqrt(sq / cols + eps));
        double g_sum = 0;
        for (ptrdiff_t j = 0; j < cols; j++) {
            xhat[j] = (float)((xr[j] - mean) * rstd);
            g[j] = dyr[j] * (gamma ? gamma[j] : 1.0f);
            g_sum += g[j];
        }
        if (dgamma) {
            for (ptrdiff_t j = 0; j < cols; j++) dgamma[j] += dyr[j] * xhat[j];
        }
        if (dbeta) {
            for (ptrdiff_t j = 0; j < cols; j++) dbeta[j] += dyr[j];
        }
        double gx_sum = dot(isa, g, xhat, cols);
        combine(isa, g, NULL, xhat, dx + r * ld, cols, rstd, (float)(g_sum / cols), (float)(gx_sum / cols));
    }
}

void ss_train_softmax_backward_isa(ss_isa isa, const float *p, const float *dp, float *ds, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        double pdp = dot(isa, p + r * ld, dp + r * ld, cols);
        /* ds = dp * p - pdp * p */
        combine(isa, dp + r * ld, p + r * ld, p + r * ld, ds + r * ld, cols, 1.0f, 0.0f, (float)pdp);
    }
}

/* ---- losses (O(rows * cols), scalar, double accumulation) ---- */

/* Softmax of row[0..cols) / temperature into out (double), returns log of its normaliser. */
static double log_softmax_row(const float *row, ptrdiff_t cols, double inv_t, double *out) {
    double mx = -INFINITY;
    for (ptrdiff_t j = 0; j < cols; j++) mx = fmax(mx, row[j] * inv_t);
    double z = 0;
    for (ptrdiff_t j = 0; j < cols; j++) z += exp(row[j] * inv_t - mx);
    for (ptrdiff_t j = 0; j < cols; j++) out[j] = exp(row[j] * inv_t - mx) / z;
    return mx + log(z);
}

enum { XENT_MAX_COLS = 4096 };

double ss_train_distill_xent(const float *s, const float *teacher, const int32_t *labels, ptrdiff_t rows, ptrdiff_t cols,
                             ptrdiff_t ld, float alpha, float temperature, float *grad) {
    if (rows <= 0 || cols <= 0 || cols > XENT_MAX_COLS) return rows == 0 ? 0 : -1;
    double label_w = labels ? (teacher ? 1.0 - alpha : 1.0) : 0.0, teach_w = teacher ? (labels ? alpha : 1.0) : 0.0;
    double t = temperature > 0 ? temperature : 1.0, inv_t = 1.0 / t, loss = 0;
    double ps[XENT_MAX_COLS], pt[XENT_MAX_COLS], pst[XENT_MAX_COLS];
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *row = s + r * ld;
        double lz = log_softmax_row(row, cols, 1.0, ps);
        for (ptrdiff_t j = 0; j < cols; j++) grad[r * ld + j] = 0.0f;
        if (labels) {
            int32_t y = labels[r];
            if (y < 0 || y >= cols) return -1;
            loss += label_w * (lz - row[y]);
            for (ptrdiff_t j = 0; j < cols; j++) grad[r * ld + j] += (float)(label_w * (ps[j] - (j == y)) / rows);
        }
        if (teacher) {
            double lzs = log_softmax_row(row, cols, inv_t, pst);
            double lzt = log_softmax_row(teacher + r * ld, cols, inv_t, pt);
            double kl = 0;
            for (ptrdiff_t j = 0; j < cols; j++) {
                if (pt[j] > 0) kl += pt[j] * ((teacher[r * ld + j] * inv_t - lzt) - (row[j] * inv_t - lzs));
                grad[r * ld + j] += (float)(teach_w * t * (pst[j] - pt[j]) / rows);
            }
            loss += teach_w * t * t * kl;
        }
    }
    return loss / rows;
}

double ss_train_mse(const float *p, const float *t, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld, float scale, float *grad) {
    if (rows <= 0) return 0;
    double loss = 0;
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t j = 0; j < cols; j++) {
            double d = (double)p[r * ld + j] - (double)t[r * ld + j];
            loss += d * d;
            if (grad) grad[r * ld + j] = (float)(2.0 * scale * d / rows);
        }
    return scale * loss / rows;
}

#else /* SS_TRAIN_VECTOR_PASS: one instantiation of the vector kernels */

#if SS_TRAIN_VECTOR_PASS == 512
#define TGT SS_T512
#define FN(name) name##_512
#define W 16
#define V __m512
#define VLOAD _mm512_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VSET1 _mm512_set1_ps
#define VZERO _mm512_setzero_ps
#define VADD _mm512_add_ps
#define VMUL _mm512_mul_ps
#define VFMA _mm512_fmadd_ps
#define VDIV _mm512_div_ps
#define VSQRT _mm512_sqrt_ps
#define VABS(x) _mm512_abs_ps(x)
/* a > b ? x : y */
#define VSEL_GT(a, b, x, y) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), y, x)
#define VMASK8(ptr) _mm512_cmp_epi32_mask(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ptr))), _mm512_setzero_si512(), _MM_CMPINT_NE)
#define VSTORE_MASKED(ptr, mk, x) _mm512_mask_storeu_ps(ptr, mk, x)
#define MASK_T __mmask16
#define ALL_MASK ((__mmask16)0xFFFF)
#define VHSUM_D(x) (_mm512_reduce_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(x))) + \
                    _mm512_reduce_add_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)))))
#else
#define TGT SS_T256
#define FN(name) name##_256
#define W 8
#define V __m256
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VSET1 _mm256_set1_ps
#define VZERO _mm256_setzero_ps
#define VADD _mm256_add_ps
#define VMUL _mm256_mul_ps
#define VFMA _mm256_fmadd_ps
#define VDIV _mm256_div_ps
#define VSQRT _mm256_sqrt_ps
#define VABS(x) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)
#define VSEL_GT(a, b, x, y) _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GT_OQ))
#define VMASK8(ptr) _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(ptr))), _mm256_setzero_si256()))
#define VSTORE_MASKED(ptr, mk, x) _mm256_maskstore_ps(ptr, _mm256_castps_si256(mk), x)
#define MASK_T __m256
#define ALL_MASK _mm256_castsi256_ps(_mm256_set1_epi32(-1))
#define VHSUM_D(x) hsum_d_256(x)
TGT static inline double hsum_d_256(__m256 x) {
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(x)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
    __m256d s = _mm256_add_pd(lo, hi);
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}
#endif

TGT static ptrdiff_t FN(relu)(const float *x, const float *dy, float *dx, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + W <= n; i += W) VSTORE(dx + i, VSEL_GT(VLOAD(x + i), VZERO(), VLOAD(dy + i), VZERO()));
    return i;
}

TGT static ptrdiff_t FN(gelu_combine)(const float *x, const float *dy, float *dx, const float *g, const float *e, ptrdiff_t n) {
    const V c = VSET1(INV_SQRT_2PI), half = VSET1(0.5f), small = VSET1(GELU_SMALL);
    ptrdiff_t i = 0;
    for (; i + W <= n; i += W) {
        V xv = VLOAD(x + i);
        V cdf = VSEL_GT(VABS(xv), small, VDIV(VLOAD(g + i), xv), VFMA(xv, c, half));
        V d = VFMA(VMUL(xv, VLOAD(e + i)), c, cdf);
        VSTORE(dx + i, VMUL(VLOAD(dy + i), d));
    }
    return i;
}

TGT static ptrdiff_t FN(colsum)(const float *dy, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld, float *db) {
    ptrdiff_t j = 0;
    for (; j + W <= cols; j += W) {
        V acc = VZERO();
        for (ptrdiff_t r = 0; r < rows; r++) acc = VADD(acc, VLOAD(dy + r * ld + j));
        VSTORE(db + j, VADD(VLOAD(db + j), acc));
    }
    return j;
}

TGT static ptrdiff_t FN(adam)(const adam_k *k, float *p, const float *g, float *m, float *v, const uint8_t *mask, ptrdiff_t n) {
    const V b1 = VSET1(k->b1), b2 = VSET1(k->b2), a1 = VSET1(1.0f - k->b1), a2 = VSET1(1.0f - k->b2);
    const V c1 = VSET1(k->c1), c2 = VSET1(k->c2), eps = VSET1(k->eps), lr = VSET1(-k->lr), wd = VSET1(k->wd);
    ptrdiff_t i = 0;
    for (; i + W <= n; i += W) {
        MASK_T keep = mask ? VMASK8(mask + i) : ALL_MASK;
        V gv = VLOAD(g + i), pv = VLOAD(p + i);
        V mv = VFMA(b1, VLOAD(m + i), VMUL(a1, gv));
        V vv = VFMA(b2, VLOAD(v + i), VMUL(a2, VMUL(gv, gv)));
        V step = VDIV(VMUL(mv, c1), VADD(VSQRT(VMUL(vv, c2)), eps));
        V pn = VFMA(lr, VFMA(wd, pv, step), pv);
        VSTORE_MASKED(m + i, keep, mv);
        VSTORE_MASKED(v + i, keep, vv);
        VSTORE_MASKED(p + i, keep, pn);
    }
    return i;
}

/* Whole vectors, accumulated in float over blocks of 64 vectors and in double across blocks. */
TGT static ptrdiff_t FN(sumsq)(const float *x, ptrdiff_t n, double *out) {
    ptrdiff_t i = 0;
    double total = 0;
    while (i + W <= n) {
        V acc = VZERO();
        for (int b = 0; b < 64 && i + W <= n; b++, i += W) {
            V xv = VLOAD(x + i);
            acc = VFMA(xv, xv, acc);
        }
        total += VHSUM_D(acc);
    }
    *out = total;
    return i;
}

/* Whole vectors of a.b (float lanes, summed in double at the end). */
TGT static ptrdiff_t FN(dot)(const float *a, const float *b, ptrdiff_t n, double *out) {
    ptrdiff_t i = 0;
    V acc = VZERO();
    for (; i + W <= n; i += W) acc = VFMA(VLOAD(a + i), VLOAD(b + i), acc);
    *out = VHSUM_D(acc);
    return i;
}

TGT static ptrdiff_t FN(combine)(const float *g, const float *w, const float *h, float *out, ptrdiff_t n, float scale, float k1, float k2) {
    const V sv = VSET1(scale), k1v = VSET1(k1), k2v = VSET1(-k2);
    ptrdiff_t i = 0;
    for (; i + W <= n; i += W) {
        V gv = w ? VMUL(VLOAD(g + i), VLOAD(w + i)) : VLOAD(g + i);
        V t = VFMA(k2v, VLOAD(h + i), VADD(gv, VMUL(k1v, VSET1(-1.0f)))); /* g*w - k1 - k2*h */
        VSTORE(out + i, VMUL(sv, t));
    }
    return i;
}

TGT static ptrdiff_t FN(scale)(float *x, ptrdiff_t n, float s) {
    const V sv = VSET1(s);
    ptrdiff_t i = 0;
    for (; i + W <= n; i += W) VSTORE(x + i, VMUL(VLOAD(x + i), sv));
    return i;
}

#undef TGT
#undef FN
#undef W
#undef V
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VZERO
#undef VADD
#undef VMUL
#undef VFMA
#undef VDIV
#undef VSQRT
#undef VABS
#undef VSEL_GT
#undef VMASK8
#undef VSTORE_MASKED
#undef MASK_T
#undef ALL_MASK
#undef VHSUM_D
#endif
