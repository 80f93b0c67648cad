/*
 * Transformer-encoder kernels: residual add + LayerNorm, multi-head self-attention, mean pooling.
 *
 * LayerNorm has AVX-512, AVX2+FMA and portable-C row kernels (picked at run time, clamped to the
 * hardware). Attention is built from the other kernels rather than new microkernels: per sequence
 * and head it packs K (scaled by 1/sqrt(d)) and V into the dense GEMM's 16-wide panels, then for
 * blocks of query rows computes the scores S = Q K^T with the dense GEMM, normalises each score
 * row with the vectorised softmax (activations.c) and writes S V with the dense GEMM again. Those
 * kernels carry their own AVX-512 / AVX2 / portable paths, so every ISA is covered.
 */
#include "transformer.h"
#include "activations.h"
#include "dense.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SS_TF_X86 1
#endif

/* Query rows per score block: S is at most 64 x length floats (64 KB at 256 tokens, L2-resident). */
#define SS_TF_QUERY_BLOCK 64
#define SS_TF_PANEL SS_DENSE_PANEL

static ptrdiff_t round_up(ptrdiff_t v, ptrdiff_t to) { return (v + to - 1) / to * to; }

/* ------------------------------------------------------------------------------------------ */
/* Residual add + LayerNorm                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void add_ln_row_portable(float *x, const float *res, ptrdiff_t n, const float *gamma, const float *beta, float eps) {
    float sum = 0.0f;
    for (ptrdiff_t j = 0; j < n; j++) {
        float v = res ? x[j] + res[j] : x[j];
        x[j] = v;
        sum += v;
    }
    const float mean = sum / (float)n;
    float sq = 0.0f;
    for (ptrdiff_t j = 0; j < n; j++) sq += (x[j] - mean) * (x[j] - mean);
    const float inv = 1.0f / sqrtf(sq / (float)n + eps);
    for (ptrdiff_t j = 0; j < n; j++) {
        float y = (x[j] - mean) * inv;
        x[j] = (gamma ? y * gamma[j] : y) + (beta ? beta[j] : 0.0f);
    }
}

#ifdef SS_TF_X86
#define TF512 __attribute__((target("avx512f,fma")))
#define TF256 __attribute__((target("avx2,fma")))

TF512 static void add_ln_row_512(float *x, const float *res, ptrdiff_t n, const float *gamma, const float *beta, float eps) {
    __m512 acc = _mm512_setzero_ps();
    for (ptrdiff_t j = 0; j < n; j += 16) {
        const __mmask16 m = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(m, x + j);
        if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + j));
        _mm512_mask_storeu_ps(x + j, m, v);
        acc = _mm512_add_ps(acc, v);
    }
    const __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(acc) / (float)n);
    acc = _mm512_setzero_ps();
    for (ptrdiff_t j = 0; j < n; j += 16) {
        const __mmask16 m = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1u);
        const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + j), mean);
        acc = _mm512_fmadd_ps(d, d, acc);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(acc) / (float)n + eps));
    const __m512 one = _mm512_set1_ps(1.0f);
    for (ptrdiff_t j = 0; j < n; j += 16) {
        const __mmask16 m = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1u);
        const __m512 y = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), mean), inv);
        const __m512 g = gamma ? _mm512_maskz_loadu_ps(m, gamma + j) : one;
        const __m512 b = beta ? _mm512_maskz_loadu_ps(m, beta + j) : _mm512_setzero_ps();
        _mm512_mask_storeu_ps(x + j, m, _mm512_fmadd_ps(y, g, b));
    }
}

TF256 static inline __m256i first_lanes_256(ptrdiff_t count) {
    const int c = count >= 8 ? 8 : (int)count;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

TF256 static inline float sum_lanes_256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

TF256 static void add_ln_row_256(float *x, const float *res, ptrdiff_t n, const float *gamma, const float *beta, float eps) {
    __m256 acc = _mm256_setzero_ps();
    for (ptrdiff_t j = 0; j < n; j += 8) {
        const __m256i m = first_lanes_256(n - j);
        __m256 v = _mm256_maskload_ps(x + j, m);
        if (res) v = _mm256_add_ps(v, _mm256_maskload_ps(res + j, m));
        _mm256_maskstore_ps(x + j, m, v);
        acc = _mm256_add_ps(acc, v);
    }
    const __m256 mean = _mm256_set1_ps(sum_lanes_256(acc) / (float)n);
    acc = _mm256_setzero_ps();
    for (ptrdiff_t j = 0; j < n; j += 8) {
        const __m256i m = first_lanes_256(n - j);
        const __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + j, m), mean), _mm256_castsi256_ps(m));
        acc = _mm256_fmadd_ps(d, d, acc);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / sqrtf(sum_lanes_256(acc) / (float)n + eps));
    for (ptrdiff_t j = 0; j < n; j += 8) {
        const __m256i m = first_lanes_256(n - j);
        const __m256 y = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + j, m), mean), inv);
        const __m256 g = gamma ? _mm256_maskload_ps(gamma + j, m) : _mm256_set1_ps(1.0f);
        const __m256 b = beta ? _mm256_maskload_ps(beta + j, m) : _mm256_setzero_ps();
        _mm256_maskstore_ps(x + j, m, _mm256_fmadd_ps(y, g, b));
    }
}
#endif /* SS_TF_X86 */

void ss_tf_add_layer_norm_isa(ss_isa isa, float *x, ptrdiff_t ldx, const float *residual, ptrdiff_t ldr,
                              ptrdiff_t rows, ptrdiff_t cols, const float *gamma, const float *beta, float eps) {
    if (rows <= 0 || cols <= 0) return;
    isa = ss_clamp_isa(isa);
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = x + r * ldx;
        const float *res = residual ? residual + r * ldr : NULL;
#ifdef SS_TF_X86
        if (isa == SS_ISA_AVX512) { add_ln_row_512(row, res, cols, gamma, beta, eps); continue; }
        if (isa == SS_ISA_AVX2) { add_ln_row_256(row, res, cols, gamma, beta, eps); continue; }
#endif
        add_ln_row_portable(row, res, cols, gamma, beta, eps);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Attention                                                                                   */
/* ------------------------------------------------------------------------------------------ */

ptrdiff_t ss_tf_attention_scratch_floats(ptrdiff_t max_length, ptrdiff_t head_dim) {
    if (max_length <= 0 || head_dim <= 0) return 0;
    const ptrdiff_t keys = round_up(max_length, SS_TF_PANEL) * head_dim;      /* packed scale*K_h */
    const ptrdiff_t values = round_up(head_dim, SS_TF_PANEL) * max_length;    /* packed V_h^T */
    const ptrdiff_t block = max_length < SS_TF_QUERY_BLOCK ? max_length : SS_TF_QUERY_BLOCK;
    return keys + values + block * max_length + 16;                          /* + 64-byte alignment slack */
}

/* Panels of scale*K_h as the dense GEMM's weight (N = length keys, K = d):
 * kp[p][t][j] = scale * k[(16p + j) * ldk + t], zero past the last key. */
static void pack_keys(const float *k, ptrdiff_t ldk, ptrdiff_t length, ptrdiff_t d, float scale, float *kp) {
    const ptrdiff_t panels = (length + SS_TF_PANEL - 1) / SS_TF_PANEL;
    for (ptrdiff_t p = 0; p < panels; p++) {
        float *dst = kp + p * d * SS_TF_PANEL;
        for (ptrdiff_t j = 0; j < SS_TF_PANEL; j++) {
            const ptrdiff_t key = p * SS_TF_PANEL + j;
            if (key < length) {
                const float *src = k + key * ldk;
                for (ptrdiff_t t = 0; t < d; t++) dst[t * SS_TF_PANEL + j] = scale * src[t];
            } else {
                for (ptrdiff_t t = 0; t < d; t++) dst[t * SS_TF_PANEL + j] = 0.0f;
            }
        }
    }
}

/* Panels of V_h^T as the dense GEMM's weight (N = d outputs, K = length):
 * vp[p][j][c] = v[j * ldv + 16p + c], zero past column d. */
static void pack_values(const float *v, ptrdiff_t ldv, ptrdiff_t length, ptrdiff_t d, float *vp) {
    const ptrdiff_t panels = (d + SS_TF_PANEL - 1) / SS_TF_PANEL;
    for (ptrdiff_t p = 0; p < panels; p++) {
        const ptrdiff_t c0 = p * SS_TF_PANEL;
        const ptrdiff_t width = d - c0 < SS_TF_PANEL ? d - c0 : SS_TF_PANEL;
        float *dst = vp + p * length * SS_TF_PANEL;
        for (ptrdiff_t j = 0; j < length; j++) {
            memcpy(dst + j * SS_TF_PANEL, v + j * ldv + c0, (size_t)width * sizeof(float));
            for (ptrdiff_t c = width; c < SS_TF_PANEL; c++) dst[j * SS_TF_PANEL + c] = 0.0f;
        }
    }
}

int ss_tf_attention_isa(ss_isa isa, const float *q, ptrdiff_t ldq, const float *k, ptrdiff_t ldk,
                        const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo, ptrdiff_t length,
                        ptrdiff_t head_begin, ptrdiff_t head_end, ptrdiff_t head_dim, float scale,
                        const ss_pwl_table *exp_table, float *scratch) {
    if (length < 0 || head_dim <= 0 || head_begin < 0 || head_end < head_begin) return -1;
    if (length == 0 || head_begin == head_end) return 0;
    const ptrdiff_t last_col = head_end * head_dim;
    if (ldq < last_col || ldk < last_col || ldv < last_col || ldo < last_col) return -1;

    float *owned = NULL;
    if (!scratch) {
        owned = malloc((size_t)ss_tf_attention_scratch_floats(length, head_dim) * sizeof(float));
        if (!owned) return -1;
        scratch = owned;
    }
    /* 64-byte align the packed panels (the GEMM streams them with full-width loads). */
    float *kp = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    float *vp = kp + round_up(length, SS_TF_PANEL) * head_dim;
    float *s = vp + round_up(head_dim, SS_TF_PANEL) * length;
    const ptrdiff_t block = length < SS_TF_QUERY_BLOCK ? length : SS_TF_QUERY_BLOCK;

    for (ptrdiff_t h = head_begin; h < head_end; h++) {
        const ptrdiff_t col = h * head_dim;
        pack_keys(k + col, ldk, length, head_dim, scale, kp);
        pack_values(v + col, ldv, length, head_dim, vp);
        for (ptrdiff_t r0 = 0; r0 < length; r0 += block) {
            const ptrdiff_t rows = length - r0 < block ? length - r0 : block;
            /* S = (Q_h rows) (scale K_h)^T, softmax per row, then S V_h into the output columns. */
            ss_dense_gemm_cols_isa(isa, kp, NULL, length, head_dim, q + r0 * ldq + col, ldq, s, length, rows,
                                   SS_ACT_NONE, 0, length);
            if (exp_table)
                ss_pwl_softmax_rows_isa(isa, exp_table, s, rows, length, length);
            else
                ss_act_softmax_rows_isa(isa, s, rows, length, length);
            ss_dense_gemm_cols_isa(isa, vp, NULL, head_dim, length, s, length, out + r0 * ldo + col, ldo, rows,
                                   SS_ACT_NONE, 0, head_dim);
        }
    }
    free(owned);
    return 0;
}

int ss_tf_attention_batch_isa(ss_isa isa, const float *q, ptrdiff_t ldq, const float *k, ptrdiff_t ldk,
                              const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo,
                              const ptrdiff_t *starts, const ptrdiff_t *lengths, ptrdiff_t sequences,
                              ptrdiff_t heads, ptrdiff_t head_dim, float scale, const ss_pwl_table *exp_table) {
    ptrdiff_t longest = 0;
    for (ptrdiff_t i = 0; i < sequences; i++) {
        if (starts[i] < 0 || lengths[i] < 0) return -1;
        if (lengths[i] > longest) longest = lengths[i];
    }
    if (longest == 0) return 0;
    float *scratch = malloc((size_t)ss_tf_attention_scratch_floats(longest, head_dim) * sizeof(float));
    if (!scratch) return -1;
    int status = 0;
    for (ptrdiff_t i = 0; i < sequences && status == 0; i++) {
        const ptrdiff_t r = starts[i];
        status = ss_tf_attention_isa(isa, q + r * ldq, ldq, k + r * ldk, ldk, v + r * ldv, ldv, out + r * ldo, ldo,
                                     lengths[i], 0, heads, head_dim, scale, exp_table, scratch);
    }
    free(scratch);
    return status;
}

/* ------------------------------------------------------------------------------------------ */
/* Pooling                                                                                     */
/* ------------------------------------------------------------------------------------------ */

void ss_tf_mean_pool(const float *x, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t cols, int normalize, float *out) {
    if (rows <= 0 || cols <= 0) return;
    double *acc = calloc((size_t)cols, sizeof(double));
    if (!acc) {  /* fall back to accumulating in the output */
        memset(out, 0, (size_t)cols * sizeof(float));
        for (ptrdiff_t r = 0; r < rows; r++)
            for (ptrdiff_t c = 0; c < cols; c++) out[c] += x[r * ldx + c];
        for (ptrdiff_t c = 0; c < cols; c++) out[c] /= (float)rows;
    } else {
        for (ptrdiff_t r = 0; r < rows; r++)
            for (ptrdiff_t c = 0; c < cols; c++) acc[c] += x[r * ldx + c];
        for (ptrdiff_t c = 0; c < cols; c++) out[c] = (float)(acc[c] / (double)rows);
        free(acc);
    }
    if (normalize) {
        double sq = 0.0;
        for (ptrdiff_t c = 0; c < cols; c++) sq += (double)out[c] * out[c];
        if (sq > 0.0) {
            const float inv = (float)(1.0 / sqrt(sq));
            for (ptrdiff_t c = 0; c < cols; c++) out[c] *= inv;
        }
    }
}
