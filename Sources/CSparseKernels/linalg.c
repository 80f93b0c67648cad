/*
 * Small double-precision linear algebra (see include/linalg.h). Everything is written as dot
 * products and axpys over contiguous rows, which run on AVX2 (FMA) when the CPU has it.
 */
#include "linalg.h"
#include "cpu_features.h"
#include "internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* y += a x over n doubles */
static void axpy_portable(ptrdiff_t n, double a, const double *x, double *y) {
    for (ptrdiff_t i = 0; i < n; i++) y[i] += a * x[i];
}

static double dot_portable(ptrdiff_t n, const double *x, const double *y) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i] * y[i]; s1 += x[i + 1] * y[i + 1]; s2 += x[i + 2] * y[i + 2]; s3 += x[i + 3] * y[i + 3];
    }
    for (; i < n; i++) s0 += x[i] * y[i];
    return (s0 + s1) + (s2 + s3);
}

#ifdef SS_X86
SS_T512 static void axpy512(ptrdiff_t n, double a, const double *x, double *y) {
    const __m512d av = _mm512_set1_pd(a);
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm512_storeu_pd(y + i, _mm512_fmadd_pd(av, _mm512_loadu_pd(x + i), _mm512_loadu_pd(y + i)));
        _mm512_storeu_pd(y + i + 8, _mm512_fmadd_pd(av, _mm512_loadu_pd(x + i + 8), _mm512_loadu_pd(y + i + 8)));
    }
    if (i < n) {
        const __mmask8 m0 = n - i >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_pd(y + i, m0, _mm512_fmadd_pd(av, _mm512_maskz_loadu_pd(m0, x + i), _mm512_maskz_loadu_pd(m0, y + i)));
        if (n - i > 8) {
            const __mmask8 m1 = (__mmask8)((1u << (n - i - 8)) - 1u);
            _mm512_mask_storeu_pd(y + i + 8, m1, _mm512_fmadd_pd(av, _mm512_maskz_loadu_pd(m1, x + i + 8), _mm512_maskz_loadu_pd(m1, y + i + 8)));
        }
    }
}

SS_T512 static double dot512(ptrdiff_t n, const double *x, const double *y) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm512_fmadd_pd(_mm512_loadu_pd(x + i), _mm512_loadu_pd(y + i), s0);
        s1 = _mm512_fmadd_pd(_mm512_loadu_pd(x + i + 8), _mm512_loadu_pd(y + i + 8), s1);
    }
    for (; i < n; i += 8) {
        const __mmask8 m = n - i >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (n - i)) - 1u);
        s0 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(m, x + i), _mm512_maskz_loadu_pd(m, y + i), s0);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

SS_T256 static void axpy256(ptrdiff_t n, double a, const double *x, double *y) {
    const __m256d av = _mm256_set1_pd(a);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_pd(y + i, _mm256_fmadd_pd(av, _mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i)));
        _mm256_storeu_pd(y + i + 4, _mm256_fmadd_pd(av, _mm256_loadu_pd(x + i + 4), _mm256_loadu_pd(y + i + 4)));
    }
    for (; i < n; i++) y[i] += a * x[i];
}

SS_T256 static double dot256(ptrdiff_t n, const double *x, const double *y) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i), s0);
        s1 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i + 4), _mm256_loadu_pd(y + i + 4), s1);
    }
    const __m256d s = _mm256_add_pd(s0, s1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double r = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; i < n; i++) r += x[i] * y[i];
    return r;
}
#endif

/* The fits below keep the AVX2 forms (their results are pinned by tests); callers of the public
 * forms choose the level. */
static int use_avx2(void) { return ss_detect_isa() >= SS_ISA_AVX2; }

static void axpy(int avx2, ptrdiff_t n, double a, const double *x, double *y) {
    ss_daxpy(avx2 ? SS_ISA_AVX2 : SS_ISA_PORTABLE, n, a, x, y);
}

static double dot(int avx2, ptrdiff_t n, const double *x, const double *y) {
    return ss_ddot(avx2 ? SS_ISA_AVX2 : SS_ISA_PORTABLE, n, x, y);
}

void ss_daxpy(ss_isa isa, ptrdiff_t n, double a, const double *x, double *y) {
#ifdef SS_X86
    isa = ss_clamp_isa(isa);
    if (isa == SS_ISA_AVX512) { axpy512(n, a, x, y); return; }
    if (isa == SS_ISA_AVX2) { axpy256(n, a, x, y); return; }
#endif
    (void)isa;
    axpy_portable(n, a, x, y);
}

double ss_ddot(ss_isa isa, ptrdiff_t n, const double *x, const double *y) {
#ifdef SS_X86
    isa = ss_clamp_isa(isa);
    if (isa == SS_ISA_AVX512) return dot512(n, x, y);
    if (isa == SS_ISA_AVX2) return dot256(n, x, y);
#endif
    (void)isa;
    return dot_portable(n, x, y);
}

void ss_dgram(const double *a, ptrdiff_t rows, ptrdiff_t cols, double *out) {
    const int avx2 = use_avx2();
    memset(out, 0, (size_t)(cols * cols) * sizeof(double));
    for (ptrdiff_t x = 0; x < rows; x++) {  /* upper triangle += a_x a_x^T */
        const double *ax = a + x * cols;
        for (ptrdiff_t i = 0; i < cols; i++)
            if (ax[i] != 0.0) axpy(avx2, cols - i, ax[i], ax + i, out + i * cols + i);
    }
    for (ptrdiff_t i = 0; i < cols; i++)
        for (ptrdiff_t j = 0; j < i; j++) out[i * cols + j] = out[j * cols + i];
}

void ss_dcholesky(double *a, ptrdiff_t r, double jitter) {
    const int avx2 = use_avx2();
    for (ptrdiff_t j = 0; j < r; j++) {
        double *aj = a + j * r;
        double d = aj[j] - dot(avx2, j, aj, aj);
        d = d > jitter ? d : jitter;
        const double ljj = sqrt(d);
        aj[j] = ljj;
        for (ptrdiff_t i = j + 1; i < r; i++) {
            double *ai = a + i * r;
            ai[j] = (ai[j] - dot(avx2, j, ai, aj)) / ljj;
        }
        for (ptrdiff_t k = j + 1; k < r; k++) aj[k] = 0.0;
    }
}

void ss_dcholesky_solve_rows(const double *l, ptrdiff_t r, double *b, ptrdiff_t count) {
    const int avx2 = use_avx2();
    for (ptrdiff_t row = 0; row < count; row++) {
        double *x = b + row * r;
        for (ptrdiff_t i = 0; i < r; i++) x[i] = (x[i] - dot(avx2, i, l + i * r, x)) / l[i * r + i];  /* L y = b */
        for (ptrdiff_t i = r - 1; i >= 0; i--) {  /* L^T x = y: x_i /= l_ii, then remove it from the rows above */
            x[i] /= l[i * r + i];
            const double xi = x[i];
            const double *li = l + i * r;
            for (ptrdiff_t k = 0; k < i; k++) x[k] -= li[k] * xi;
        }
    }
}

void ss_dlower_inverse(const double *l, ptrdiff_t r, double *inv) {
    const int avx2 = use_avx2();
    /* row_i of M = L^-1 (lower) = (e_i - sum_{k<i} L_ik row_k) / L_ii */
    memset(inv, 0, (size_t)(r * r) * sizeof(double));
    for (ptrdiff_t i = 0; i < r; i++) {
        double *mi = inv + i * r;
        const double *li = l + i * r;
        mi[i] = 1.0;
        for (ptrdiff_t k = 0; k < i; k++)
            if (li[k] != 0.0) axpy(avx2, k + 1, -li[k], inv + k * r, mi);
        const double d = 1.0 / li[i];
        for (ptrdiff_t k = 0; k <= i; k++) mi[k] *= d;
    }
}

void ss_dcholesky_inverse(const double *l, ptrdiff_t r, double *inv) {
    const int avx2 = use_avx2();
    double *m = inv;
    ss_dlower_inverse(l, r, m);
    /* (L L^T)^-1 = M^T M. Upper row i: sum over rows k >= i of M_ki * M_k[i..k] (contiguous), then
     * stored over row i of M, which no later row needs (they only read rows below themselves). */
    double *row = malloc((size_t)(r > 0 ? r : 1) * sizeof(double));
    if (!row) return;
    for (ptrdiff_t i = 0; i < r; i++) {
        memset(row + i, 0, (size_t)(r - i) * sizeof(double));
        for (ptrdiff_t k = i; k < r; k++) {
            const double c = m[k * r + i];
            if (c != 0.0) axpy(avx2, k - i + 1, c, m + k * r + i, row + i);
        }
        memcpy(m + i * r + i, row + i, (size_t)(r - i) * sizeof(double));
    }
    free(row);
    for (ptrdiff_t i = 0; i < r; i++)
        for (ptrdiff_t j = 0; j < i; j++) inv[i * r + j] = inv[j * r + i];
}
